"""``hqf report`` on constructed runs: statistics against scipy, pairing by seed, tables and figures."""

from __future__ import annotations

import csv
import json
import pathlib
import random

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from hqf.cli import main
from hqf.errors import ConfigError
from hqf.studies.figures import CURVE_GRAD, CURVE_LOSS, CURVE_STEP, RELIABILITY
from hqf.studies.report import make_report
from hqf.studies.runs import KEYS

SEEDS = [0, 1, 2, 3, 4]
RNG = np.random.default_rng(7)
#: variant -> seed -> accuracy; strongly seed-dependent so that a wrong pairing shows
ACC = {
    v: {s: 0.70 + 0.03 * s + shift + float(RNG.normal(0, 0.004)) for s in SEEDS}
    for v, shift in (("adam", 0.0), ("sgd", -0.02), ("full", 0.01))
}


def _write_run(directory: pathlib.Path, variant: str, seed: int, extra: dict | None = None) -> None:
    directory.mkdir(parents=True)
    acc = ACC[variant][seed]
    metrics = {
        KEYS["accuracy"]: acc,
        KEYS["macro_f1"]: acc - 0.05,
        KEYS["ece"]: 0.05 - 0.01 * seed / 4,
        KEYS["iterations"]: None if (variant == "sgd" and seed == 0) else 100 + 10 * seed,
        KEYS["vai"]: 0.2,
        KEYS["latency"]: 1.0 + seed,
        RELIABILITY: {"confidence": [0.25, 0.75, None], "accuracy": [0.2, 0.8, None], "count": [10, 30, 0]},
        "steps": 50,
        **({"search_total_steps": 200} if variant == "sgd" else {}),
        **(extra or {}),
    }
    (directory / "metrics.json").write_text(json.dumps(metrics))
    steps = np.arange(1, 21)
    with open(directory / "curves.csv", "w") as fh:
        fh.write(f"{CURVE_STEP},{CURVE_LOSS},{CURVE_GRAD}\n")
        for k in steps:
            fh.write(f"{k},{2.0 / k + 0.01 * seed},{1.0 / k}\n")


def _sweep(root: pathlib.Path, shuffle: bool = False, report: dict | None = None) -> pathlib.Path:
    rows = []
    for variant in ACC:
        for level in (0.0, 0.05):
            for seed in SEEDS:
                d = f"{variant}/depolarizing={level}/seed{seed}"
                _write_run(root / d, variant, seed, {KEYS["accuracy"]: ACC[variant][seed] - level})
                rows.append({"dir": d, "variant": variant, "seed": seed, "depolarizing": level})
    if shuffle:
        random.Random(1).shuffle(rows)
    (root / "sweep.json").write_text(json.dumps({"runs": rows, "report": report or {"baseline": "adam"}}))
    return root


def _csv(path: pathlib.Path) -> list[dict]:
    return list(csv.DictReader(open(path)))


def test_table1_statistics_match_scipy(tmp_path):
    report = make_report([_sweep(tmp_path / "sweep")], tmp_path / "out")
    rows = {(r["variant"], r["metric"]): r for r in _csv(tmp_path / "out" / "table1.csv")}
    full = [100 * ACC["full"][s] for s in SEEDS]
    adam = [100 * ACC["adam"][s] for s in SEEDS]
    r = rows[("full", "Accuracy (%)")]
    assert float(r["mean"]) == pytest.approx(np.mean(full))
    assert float(r["std"]) == pytest.approx(np.std(full, ddof=1))
    low, high = sps.t.interval(0.95, 4, loc=np.mean(full), scale=sps.sem(full))
    assert (float(r["ci_low"]), float(r["ci_high"])) == pytest.approx((low, high))
    assert float(r["t_pvalue"]) == pytest.approx(sps.ttest_rel(full, adam).pvalue)
    assert float(r["wilcoxon_pvalue"]) == pytest.approx(sps.wilcoxon(full, adam).pvalue)
    assert rows[("adam", "Accuracy (%)")]["t_pvalue"] == ""  # the baseline is not tested against itself
    # a run that never reached ε is left out of that metric's statistics, and the cell says so
    it = rows[("sgd", "Iterations to ε")]
    assert int(it["n"]) == 4 and int(it["n_pairs"]) == 4
    assert "(4/5 seeds)" in (tmp_path / "out" / "table1.md").read_text()
    assert set(report.tables) >= {"table1", "table3"}


def test_pairing_is_by_seed_whatever_the_run_order(tmp_path):
    make_report([_sweep(tmp_path / "a")], tmp_path / "out_a")
    make_report([_sweep(tmp_path / "b", shuffle=True)], tmp_path / "out_b")
    a, b = _csv(tmp_path / "out_a" / "table1.csv"), _csv(tmp_path / "out_b" / "table1.csv")
    key = lambda rows: sorted((r["variant"], r["metric"], r["t_pvalue"], r["wilcoxon_pvalue"]) for r in rows)  # noqa: E731
    assert key(a) == key(b)
    # the accuracy differences are nearly constant by seed, so the paired test is far more
    # significant than an unpaired comparison of the same numbers would be
    p = float(next(r for r in a if r["variant"] == "sgd" and r["metric"] == "Accuracy (%)")["t_pvalue"])
    unpaired = sps.ttest_ind([ACC["sgd"][s] for s in SEEDS], [ACC["adam"][s] for s in SEEDS]).pvalue
    assert p < 1e-3 < unpaired


def test_table3_has_a_column_per_noise_level(tmp_path):
    make_report([_sweep(tmp_path / "s")], tmp_path / "out")
    rows = _csv(tmp_path / "out" / "table3.csv")
    metrics = {r["metric"] for r in rows}
    assert "Accuracy (%) at depolarizing=0.05" in metrics
    full = next(r for r in rows if r["variant"] == "full" and r["metric"] == "Accuracy (%) at depolarizing=0.05")
    assert float(full["mean"]) == pytest.approx(np.mean([100 * (ACC["full"][s] - 0.05) for s in SEEDS]))
    assert {r["model"] for r in rows} == {"adam", "sgd", "full"}  # one row per variant, noise in columns


def test_table3_reads_the_runs_gate_noise_evaluations(tmp_path):
    """Each kind of ``hqf evaluate --out RUN/evaluations/…`` result is a Table III column, by seed."""
    sweep = _sweep(tmp_path / "s")
    drop = {0.0: 0.0, 0.02: 0.01, 0.05: 0.03}
    for seed in SEEDS:
        run = sweep / f"full/depolarizing=0.0/seed{seed}"
        (run / "evaluations").mkdir()
        for p, d in drop.items():
            backend = "torch" if p == 0 else "torch-dm"
            record = {
                "accuracy": 0.8 + 0.01 * seed - d,
                "backend": backend,
                "depolarizing": p,
                "input_noise": 0.0,
                "test_samples": 1024,
            }
            (run / "evaluations" / f"{backend}_p{p:g}_n1024.json").write_text(json.dumps(record))
        (run / "evaluations" / "broken.json").write_text("{not json")
    make_report([sweep], tmp_path / "out")
    rows = _csv(tmp_path / "out" / "table3.csv")
    title = "Accuracy (%), torch-dm, gate noise p=0.05, 1,024 test rows"
    full = next(r for r in rows if r["variant"] == "full" and r["metric"] == title)
    assert float(full["mean"]) == pytest.approx(np.mean([100 * (0.8 + 0.01 * s - 0.03) for s in SEEDS]))
    assert int(full["n"]) == 5
    clean = next(
        r
        for r in rows
        if r["variant"] == "full" and r["metric"] == "Accuracy (%), torch, gate noise p=0, 1,024 test rows"
    )
    assert float(clean["mean"]) == pytest.approx(np.mean([100 * (0.8 + 0.01 * s) for s in SEEDS]))
    adam = next(r for r in rows if r["variant"] == "adam" and r["metric"] == title)
    assert int(adam["n"]) == 0  # no evaluations kept: n/a, never zero
    metrics = [r["metric"] for r in rows if r["variant"] == "full"]
    assert metrics.index("Accuracy (%), torch, gate noise p=0, 1,024 test rows") < metrics.index(title)


def test_table3_labels_an_evaluation_by_its_noise_text(tmp_path):
    """An ``hqf evaluate --noise`` result is labelled by its noise model, not by ``depolarizing`` (0 there)."""
    sweep = _sweep(tmp_path / "s")
    texts = {"none": 0.0, "depolarizing=0.02": 0.01, "amplitude_damping=0.05,readout=0.03:0.03": 0.03}
    for seed in SEEDS:
        run = sweep / f"full/depolarizing=0.0/seed{seed}"
        (run / "evaluations").mkdir()
        for i, (text, d) in enumerate(texts.items()):
            record = {
                "accuracy": 0.8 - d,
                "backend": "ptm",
                "noise": text,
                "depolarizing": 0.0,
                "input_noise": 0.0,
                "test_samples": 1024,
            }
            (run / "evaluations" / f"ptm_{i}_n1024.json").write_text(json.dumps(record))
    make_report([sweep], tmp_path / "out")
    metrics = {r["metric"] for r in _csv(tmp_path / "out" / "table3.csv") if r["variant"] == "full"}
    assert {
        "Accuracy (%), ptm, no noise, 1,024 test rows",
        "Accuracy (%), ptm, noise depolarizing=0.02, 1,024 test rows",
        "Accuracy (%), ptm, noise amplitude_damping=0.05,readout=0.03:0.03, 1,024 test rows",
    } <= metrics
    assert not any("gate noise p=0" in m for m in metrics)


def test_a_row_may_have_its_own_baseline(tmp_path):
    """``[report] baselines``: full is tested against sgd (e.g. the same model family on another
    dataset), the other rows against adam."""
    sweep = _sweep(tmp_path / "s", report={"baseline": "adam", "baselines": {"full": "sgd"}})
    make_report([sweep], tmp_path / "out")
    rows = _csv(tmp_path / "out" / "table1.csv")
    full = next(r for r in rows if r["variant"] == "full" and r["metric"] == "Accuracy (%)")
    sgd = next(r for r in rows if r["variant"] == "sgd" and r["metric"] == "Accuracy (%)")
    assert full["baseline"] == "sgd" and sgd["baseline"] == "adam"
    expected = np.mean([100 * (ACC["full"][s] - ACC["sgd"][s]) for s in SEEDS])
    assert float(full["mean_difference"]) == pytest.approx(expected)
    assert "full is compared with sgd" in (tmp_path / "out" / "table1.md").read_text()
    with pytest.raises(ConfigError, match="baselines"):
        make_report([_sweep(tmp_path / "t", report={"baselines": ["sgd"]})], tmp_path / "out2")


def test_figures_are_written(tmp_path):
    report = make_report([_sweep(tmp_path / "s")], tmp_path / "out")
    names = {p.name for p in report.figures}
    assert {"fig2_convergence.png", "fig4_reliability.png"} <= names
    for p in report.figures:
        assert 10_000 < p.stat().st_size < 200_000
    assert "![fig2_convergence.png]" in (tmp_path / "out" / "report.md").read_text()


def test_report_command(tmp_path):
    sweep = _sweep(tmp_path / "s")
    result = CliRunner().invoke(main, ["report", str(sweep), "--baseline", "sgd", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "p vs sgd" in result.output and (tmp_path / "r" / "table1.md").exists()
    bad = CliRunner().invoke(main, ["report", str(sweep), "--baseline", "nadam"])
    assert bad.exit_code == 2 and "baseline 'nadam' is not among the variants" in bad.output


def test_no_finished_runs_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither sweep.json nor a finished run"):
        make_report([tmp_path / "empty"], tmp_path / "out")


def test_table2_counts_a_searchs_steps(tmp_path):
    make_report([_sweep(tmp_path / "s")], tmp_path / "out")
    rows = {(r["variant"], r["metric"]): r for r in _csv(tmp_path / "out" / "table2.csv")}
    metric = "Optimizer steps spent (search trials included)"
    assert float(rows[("sgd", metric)]["mean"]) == 200 and float(rows[("adam", metric)]["mean"]) == 50


def _run_folder(directory: pathlib.Path, metrics: dict, config: str = "seed = 0\n") -> pathlib.Path:
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    (directory / "config.toml").write_text(config)
    return directory


def test_two_runs_with_the_same_name_and_seed_are_refused_never_dropped(tmp_path):
    first = _run_folder(tmp_path / "a" / "run", {"accuracy": 0.8})
    second = _run_folder(tmp_path / "b" / "run", {"accuracy": 0.6})
    result = CliRunner().invoke(main, ["report", str(first), str(second), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output == (
        f"Error: two runs are both variant 'run', seed 0: {first} and {second}; seeds are paired by these "
        "labels, so report them separately or rename a folder\n"
    )
    assert make_report([first, first], tmp_path / "out").n_runs == 1  # one folder given twice is one run


def test_an_out_of_range_metric_is_refused_not_shown_as_750_percent(tmp_path):
    run = _run_folder(tmp_path / "run", {"accuracy": 7.5})
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output == (
        f"Error: {run}/metrics.json: 'accuracy' is 7.5, outside [0, 1]; fix or leave out that run\n"
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="'wall_time_s' is -3.0, below 0"):
        make_report([_run_folder(tmp_path / "slow", {"accuracy": 0.5, "wall_time_s": -3.0})], tmp_path / "out")


def test_an_empty_metrics_file_is_not_a_finished_run(tmp_path):
    run = _run_folder(tmp_path / "run", {})
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output == f"Error: {run}/metrics.json holds no results ('accuracy'): not a finished run\n"
    sweep = _sweep(tmp_path / "sweep")
    (sweep / "adam" / "depolarizing=0.0" / "seed0" / "metrics.json").write_text("{}")
    report = make_report([sweep], tmp_path / "out")
    assert report.n_runs == 3 * 2 * 5 - 1  # the empty one left out, and said so
    said = "1 runs of the sweep are not finished (no metrics.json with results):\n\n"
    assert f"{said}- `{sweep}/adam/depolarizing=0.0/seed0`" in report.markdown


@pytest.mark.parametrize(
    "seed, shown",
    [("[1, 2]", "list [1, 2]"), ("{ a = 1 }", "dict {'a': 1}"), ("true", "bool True"), ('"3"', "str '3'")],
)
def test_a_config_seed_that_is_not_an_integer_is_one_line(tmp_path, seed, shown):
    run = _run_folder(tmp_path / "run", {"accuracy": 0.5}, config=f"seed = {seed}\n")
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output == f"Error: {run}/config.toml: 'seed' must be an integer (got {shown})\n"


def test_list_valued_axes_group_and_show_as_lists(tmp_path):
    rows = []
    for head in ([4], [8]):
        for seed in (0, 1):
            directory = f"v/head={head[0]}/seed{seed}"
            _run_folder(tmp_path / directory, {"accuracy": 0.5 + 0.1 * seed + 0.01 * head[0]})
            rows.append({"dir": directory, "variant": "v", "seed": seed, "head": head, "opts": {"k": [1]}})
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": rows, "report": {}}))
    report = make_report([tmp_path], tmp_path / "out")
    assert [row.label for row, _ in report.tables["table1"][1]] == [
        "v [head=[4], opts={'k': [1]}]",
        "v [head=[8], opts={'k': [1]}]",
    ]
    assert [r["axes"] for r in _csv(tmp_path / "out" / "table1.csv")][:1] == ['{"head": [4], "opts": {"k": [1]}}']


def test_report_inputs_the_fuzzer_broke_are_one_line(tmp_path):
    bad_setting = _sweep(tmp_path / "a", report={"baseline": "adam", "table1": "adam"})
    with pytest.raises(ConfigError, match=r"^\[report\] table1 must be a list of variant names \(got 'adam'\)$"):
        make_report([bad_setting], tmp_path / "out")
    rows = []
    for seed, level in ((0, None), (1, [0.02])):
        _run_folder(tmp_path / "b" / f"s{seed}", {"accuracy": 0.5})
        rows.append({"dir": f"s{seed}", "variant": "v", "seed": seed, "depolarizing": level})
    (tmp_path / "b" / "sweep.json").write_text(json.dumps({"runs": rows, "report": {}}))
    with pytest.raises(ConfigError, match=r"^axis 'depolarizing' \(\[report\] noise_axis\) must hold numbers; "):
        make_report([tmp_path / "b"], tmp_path / "out")
    bins = {"count": [1, 2], "confidence": [0.5], "accuracy": ["x", 1]}
    run = _run_folder(tmp_path / "c", {"accuracy": 0.5, "reliability": bins})
    with pytest.raises(ConfigError, match="'reliability' must hold lists 'count', 'confidence' and 'accuracy'"):
        make_report([run], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_folders_that_differ_only_by_seed_are_pooled_and_the_report_says_so(tmp_path):
    accuracies = [0.61, 0.64, 0.70]
    folders = [
        _run_folder(tmp_path / f"s{seed}", {"accuracy": acc}, f"lr = 0.001\nseed = {seed}\n")
        for seed, acc in enumerate(accuracies)
    ]
    other = _run_folder(tmp_path / "other", {"accuracy": 0.5}, "lr = 0.01\nseed = 0\n")
    make_report([*folders, other], tmp_path / "out")
    rows = [r for r in _csv(tmp_path / "out" / "table1.csv") if r["metric"] == "Accuracy (%)"]
    by_variant = {r["variant"]: r for r in rows}
    assert set(by_variant) == {"s0", "other"}
    assert int(by_variant["s0"]["n"]) == 3
    assert float(by_variant["s0"]["mean"]) == pytest.approx(100 * np.mean(accuracies))
    assert float(by_variant["s0"]["std"]) == pytest.approx(100 * np.std(accuracies, ddof=1))
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Run folders pooled by seed:" in report
    assert "the same configuration but for the seed (seeds 0, 1, 2), reported as one group `s0`" in report


def test_an_undefined_p_value_is_explained_under_its_table(tmp_path):
    from hqf.studies.report import P_UNDEFINED

    make_report([_sweep(tmp_path / "s", report={"baseline": "adam"})], tmp_path / "out")
    table1 = (tmp_path / "out" / "table1.md").read_text()
    assert "n/a" in table1 and table1.count(P_UNDEFINED) == 1  # ECE is the same for every variant: zero differences
