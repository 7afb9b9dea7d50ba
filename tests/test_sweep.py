"""Sweeps: grid expansion, parallel runs, and resuming runs each configuration exactly once."""

from __future__ import annotations

import json
import pathlib

import pytest

from hqf.errors import ConfigError
from hqf.studies.sweep import ABLATIONS, expand, is_finished, run_sweep

GRID = {
    "sweep": {"seeds": [0, 1, 2]},
    "base": {"epochs": 1, "samples": 50},
    "variants": {"adam": {"optimizer": "adam"}, "full": "full"},
    "axes": {"label_noise": [0.0, 0.02]},
}


def fake_runner(config: dict, directory: pathlib.Path) -> dict:
    """Logs the call (append-only, safe across processes) and writes a run directory."""
    log = pathlib.Path(config["log"])
    with open(log, "a") as fh:
        fh.write(json.dumps({k: v for k, v in config.items() if k != "log"}, sort_keys=True) + "\n")
    if config.get("fail"):
        raise RuntimeError("boom")
    directory.mkdir(parents=True, exist_ok=True)
    metrics = {"accuracy": 0.5 + 0.01 * config["seed"]}
    (directory / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def _calls(log: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_expand_is_the_product_of_variants_axes_and_seeds(tmp_path):
    runs = expand(GRID, tmp_path)
    assert len(runs) == 2 * 2 * 3
    full = [r for r in runs if r.variant == "full"]
    assert all(r.config["fusion"] == ABLATIONS["full"]["fusion"] for r in full)
    assert runs[0].directory == tmp_path / "adam" / "label_noise=0.0" / "seed0"
    assert runs[0].config == {"epochs": 1, "samples": 50, "optimizer": "adam", "label_noise": 0.0, "seed": 0}
    assert runs[0].labels() == {"variant": "adam", "seed": 0, "label_noise": 0.0}


def test_variant_axes_and_dotted_keys(tmp_path):
    grid = {
        "sweep": {"seeds": [0]},
        "base": {"backend_options": {"dtype": "complex128"}},
        "variants": {
            "adam": {"optimizer": "adam"},
            "noisy": {
                "ablation": "full",
                "backend": "torch-dm",
                "axes": {"backend_options.depolarizing": [0.0, 0.05]},
                "seeds": [3],
            },
        },
    }
    runs = expand(grid, tmp_path)
    assert [r.variant for r in runs] == ["adam", "noisy", "noisy"]  # the variant's axes are its own
    assert [r.seed for r in runs] == [0, 3, 3]  # ... and so are its seeds
    noisy = runs[2]
    assert noisy.config["backend_options"] == {"dtype": "complex128", "depolarizing": 0.05}
    assert noisy.config["fusion"] == ABLATIONS["full"]["fusion"] and noisy.config["backend"] == "torch-dm"
    assert runs[0].config["backend_options"] == {"dtype": "complex128"}  # base not mutated across runs
    assert noisy.directory == tmp_path / "noisy" / "backend_options.depolarizing=0.05" / "seed3"


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"sweep": {"seeds": []}}, "seeds"),
        ({"variants": {"x": "nonexistent"}}, "unknown built-in"),
        ({"axes": {"lr": 0.1}}, "non-empty list"),
        ({"extra": {}}, "unknown sweep section"),
    ],
)
def test_bad_grids_are_clear_errors(tmp_path, grid, message):
    with pytest.raises(ConfigError, match=message):
        expand(grid, tmp_path)


@pytest.mark.parametrize("jobs", [1, 2])
def test_interrupted_sweep_resumes_each_configuration_exactly_once(tmp_path, jobs):
    log = tmp_path / "calls.log"
    grid = {**GRID, "base": {**GRID["base"], "log": str(log)}}
    out = tmp_path / "out"
    runs = expand(grid, out)
    # the state a killed sweep leaves: one finished run, one half-written run directory
    finished, half = runs[0], runs[1]
    finished.directory.mkdir(parents=True)
    (finished.directory / "metrics.json").write_text('{"accuracy": 0.9}')
    half.directory.mkdir(parents=True)
    (half.directory / "metrics.json").write_text('{"accur')  # cut off mid-write
    (half.directory / "curves.csv").write_text("step,loss\n")

    result = run_sweep(runs, out, jobs=jobs, runner=fake_runner)
    calls = _calls(log)
    key = lambda c: json.dumps({k: v for k, v in c.items() if k != "log"}, sort_keys=True)  # noqa: E731
    assert sorted(map(key, calls)) == sorted(key(r.config) for r in runs[1:])  # each exactly once
    assert result.skipped == (finished.directory,) and len(result.ran) == len(runs) - 1 and not result.failed
    assert json.loads((finished.directory / "metrics.json").read_text()) == {"accuracy": 0.9}  # untouched
    assert not (half.directory / "curves.csv").exists()  # the half-written run was redone from scratch
    assert all(is_finished(r.directory) for r in runs)
    manifest = json.loads((out / "sweep.json").read_text())["runs"]
    assert len(manifest) == len(runs) and manifest[0]["variant"] == "adam"

    # resuming a complete sweep runs nothing
    again = run_sweep(runs, out, jobs=jobs, runner=fake_runner)
    assert again.ran == () and len(_calls(log)) == len(runs) - 1


def test_a_failed_run_is_reported_and_retried_on_resume(tmp_path):
    log = tmp_path / "calls.log"
    grid = {"sweep": {"seeds": [0, 1]}, "base": {"log": str(log)}, "variants": {"ok": {}, "bad": {"fail": True}}}
    runs = expand(grid, tmp_path / "out")
    result = run_sweep(runs, tmp_path / "out", runner=fake_runner)
    assert len(result.failed) == 2 and all("boom" in error for _, error in result.failed)
    assert (runs[2].directory / "error.txt").exists()
    kept = run_sweep(runs, tmp_path / "out", runner=fake_runner)  # a failed run is not rerun unless asked
    assert kept.ran == () and [d for d, _ in kept.failed_before] == [runs[2].directory, runs[3].directory]
    again = run_sweep(runs, tmp_path / "out", runner=fake_runner, retry_failed=True)
    assert again.skipped == (runs[0].directory, runs[1].directory) and len(again.ran) == 2


TINY = """
[sweep]
seeds = [0, 1]

[base]
dataset = "dataset-a"
samples = 300
epochs = 1
batch_size = 64
ansatz = "hea2x1"
hidden = 16
latent = 8
vai_samples = 16
latency_repeats = 1

[variants]
adam = { ablation = "backbone-only" }
full = "full"
bo = { ablation = "backbone-only", search = "bo", trials = 2, seeds = [0] }

[report]
baseline = "adam"
"""


def test_sweep_and_report_commands_end_to_end(tmp_path):
    from click.testing import CliRunner

    from hqf.cli import main

    grid = tmp_path / "tiny.toml"
    grid.write_text(TINY)
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "ran 5, skipped 0 finished, 0 failed" in result.output
    for run_dir in (out / "full" / "seed1", out / "bo" / "seed0"):
        for name in ("config.toml", "metrics.json", "curves.csv", "epochs.csv", "convergence.png"):
            assert (run_dir / name).exists(), run_dir / name
    search = json.loads((out / "bo" / "seed0" / "search.json").read_text())
    assert len(search["trials"]) == 2
    again = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(out)])
    assert "ran 0, skipped 5 finished" in again.output
    grid.write_text(TINY.replace("epochs = 1", "epochs = 2"))  # a changed grid never reuses old runs
    changed = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(out)])
    assert changed.exit_code == 2 and "other values of epochs" in changed.output
    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "p vs adam" in report.output and (out / "report" / "table1.csv").exists()


def test_sweep_command_checks_every_configuration_first(tmp_path):
    from click.testing import CliRunner

    from hqf.cli import main

    grid = tmp_path / "bad.toml"
    grid.write_text("[variants]\nok = { epochs = 1 }\nbad = { epoch = 1 }\n")
    result = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "variant 'bad': unknown key 'epoch'" in result.output
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_list_valued_axis_sweeps_and_reports(tmp_path):
    from hqf.studies.report import make_report

    log = tmp_path / "calls.log"
    grid = {"sweep": {"seeds": [0, 1]}, "base": {"log": str(log)}, "axes": {"head": [[4], [8]]}}
    runs = expand(grid, tmp_path / "out")
    assert [str(r.directory.relative_to(tmp_path / "out")) for r in runs][::2] == [
        "base/head=_4_/seed0",
        "base/head=_8_/seed0",
    ]
    result = run_sweep(runs, tmp_path / "out", runner=fake_runner)
    assert len(result.ran) == 4 and not result.failed
    report = make_report([tmp_path / "out"], tmp_path / "report")
    assert [row.label for row, _ in report.tables["table1"][1]] == ["base [head=[4]]", "base [head=[8]]"]


DEEP = {"lists": "[" * 5000 + "]" * 5000, "tables": "{b = " * 3000 + "1" + "}" * 3000}


@pytest.mark.parametrize("source", ["/dev/zero", "lists", "tables"])
def test_a_huge_or_deep_grid_is_one_line(tmp_path, source):
    from click.testing import CliRunner

    from hqf.cli import main

    if source == "/dev/zero":
        if not pathlib.Path(source).exists():
            pytest.skip("needs /dev/zero")
        grid, problem = pathlib.Path(source), "not a configuration file (larger than hqf's limit of 16 MiB)"
    else:
        grid, problem = tmp_path / "deep.toml", "tables or lists nested deeper than 32 levels (hqf's limit)"
        grid.write_text(f"[axes]\nhead = {DEEP[source]}\n")
    result = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [f"Error: {grid}: {problem}"], result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "metrics", ["{}", "[]", '{"loss": 0.1}', "[" * 5000 + "]" * 5000], ids=["empty", "list", "no-accuracy", "deep"]
)
def test_a_metrics_file_without_results_is_run_again_not_skipped(tmp_path, metrics):
    log = tmp_path / "calls.log"
    grid = {"sweep": {"seeds": [0]}, "base": {"log": str(log)}, "variants": {"v": {}}}
    runs = expand(grid, tmp_path / "out")
    runs[0].directory.mkdir(parents=True)
    (runs[0].directory / "metrics.json").write_text(metrics)
    assert not is_finished(runs[0].directory)
    result = run_sweep(runs, tmp_path / "out", jobs=1, runner=fake_runner)
    assert result.skipped == () and result.ran == (runs[0].directory,) and len(_calls(log)) == 1
    assert is_finished(runs[0].directory)
