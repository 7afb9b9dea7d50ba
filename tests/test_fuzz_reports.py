"""Fuzzing what ``hqf report`` reads and the names and axes of sweep grids: arbitrary run folders (metrics,
status, config seeds, evaluations, manifest rows and ``[report]`` settings) and arbitrary variant names, axis
keys and axis values. Every input is reported or refused with hqf's own error (:class:`hqf.errors.HqfError`),
nothing is written outside the report's folder, and every run folder a grid names can be created."""

from __future__ import annotations

import json
import math
import pathlib
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hqf.errors import HqfError
from hqf.studies.grid import NAME_MAX, expand
from hqf.studies.report import make_report
from hqf.studies.runs import KEYS, load_runs
from hqf.studies.sweep import write_manifest

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
#: a metric of the wrong type is a warning by design (hqf.studies.runs.MetricTypeWarning): not a failure here
QUIET = pytest.mark.filterwarnings("ignore::hqf.studies.runs.MetricTypeWarning")

NUMBERS = st.one_of(
    st.floats(0, 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 7.5, -1, 1e308]),
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)
METRIC_KEYS = st.sampled_from([*KEYS.values(), "search_total_steps", "stop_reason", "reliability", "x"])
METRICS = st.one_of(
    st.dictionaries(METRIC_KEYS, st.one_of(NUMBERS, JSON), max_size=6),
    st.fixed_dictionaries(
        {"accuracy": st.floats(0, 1)}, optional={k: NUMBERS for k in KEYS.values() if k != "accuracy"}
    ),
    JSON,
)
AXIS_KEYS = st.sampled_from(["depolarizing", "imbalance", "features", "head", "dir", "variant", "seed", "ä b"])
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "variant": st.sampled_from(["adam", "full", "sgd", "", "a/b", "x" * 60]),
            "seed": st.one_of(st.integers(0, 3), st.integers(2**63, 2**64)),
            "metrics": METRICS,
            "axes": st.dictionaries(AXIS_KEYS, JSON, max_size=2),
        },
        optional={
            "status": st.sampled_from([{"status": "failed", "reason": "boom"}, {"status": "running"}, []]),
            "evaluation": st.dictionaries(
                st.sampled_from(["accuracy", "backend", "noise", "depolarizing", "input_noise", "test_samples"]),
                JSON,
                max_size=4,
            ),
        },
    ),
    min_size=1,
    max_size=4,
)
SETTINGS = st.dictionaries(
    st.sampled_from(["baseline", "baselines", "table1", "table3", "figure2", "noise_axis", "imbalance_axis"]),
    st.one_of(st.sampled_from(["adam", "full", "head", "depolarizing"]), JSON),
    max_size=3,
)
SEEDS = st.one_of(st.integers(-3, 3), st.integers(2**63, 2**65), JSON).map(lambda v: {"seed": v})


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write_sweep(root: pathlib.Path, rows: list[dict], report: dict) -> None:
    manifest = []
    for k, row in enumerate(rows):
        folder = root / f"r{k}"
        (folder / "evaluations").mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(row["metrics"]))
        if "status" in row:
            (folder / "status.json").write_text(json.dumps(row["status"]))
        if "evaluation" in row:
            (folder / "evaluations" / "e.json").write_text(json.dumps(row["evaluation"]))
        manifest.append({**row["axes"], "dir": f"r{k}", "variant": row["variant"], "seed": row["seed"]})
    (root / "sweep.json").write_text(json.dumps({"runs": manifest, "report": report}))


def _reported_or_refused(inputs: pathlib.Path, out: pathlib.Path) -> None:
    before = _files(inputs)
    try:
        report = make_report([inputs], out)
    except HqfError:
        assert not out.exists()  # refused before anything was written
    else:
        assert (out / "report.md").read_text() == report.markdown
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left
    assert _files(inputs) == before  # nothing written or removed among the runs


@QUIET
@FUZZ
@given(ROWS, SETTINGS)
def test_arbitrary_sweep_folders_are_reported_or_refused_in_one_line(rows, report):
    with tempfile.TemporaryDirectory(prefix="hqf-fuzz-") as folder:
        root = pathlib.Path(folder)
        _write_sweep(root / "sweep", rows, report)
        _reported_or_refused(root / "sweep", root / "report")


@QUIET
@FUZZ
@given(METRICS, SEEDS)
def test_an_arbitrary_run_folder_is_reported_or_refused_in_one_line(metrics, config):
    with tempfile.TemporaryDirectory(prefix="hqf-fuzz-") as folder:
        run = pathlib.Path(folder) / "run"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps(metrics))
        (run / "config.toml").write_text(_toml_line(config["seed"]))
        _reported_or_refused(run, pathlib.Path(folder) / "report")


def _toml_line(value) -> str:
    """``seed = <value>`` in TOML where it has a spelling (None and NaN do not round-trip: a string then)."""
    import tomli_w  # noqa: PLC0415 — only these tests write TOML

    try:
        return tomli_w.dumps({"seed": value})
    except (TypeError, ValueError):
        return f"seed = {json.dumps(str(value))}\n"


NAMES = st.one_of(
    st.text(max_size=20), st.text(alphabet="aé_", min_size=120, max_size=300), st.sampled_from(["..", ".", "a b"])
)
AXIS_VALUES = st.lists(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=200)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=2)),
        max_leaves=4,
    ),
    min_size=1,
    max_size=3,
)


@FUZZ
@given(
    st.dictionaries(NAMES, st.just({}), min_size=1, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=12), st.sampled_from(["a.b", "epochs"])), AXIS_VALUES, max_size=2),
)
def test_arbitrary_grid_names_and_axes_give_folders_inside_out_or_one_line(variants, axes):
    with tempfile.TemporaryDirectory(prefix="hqf-fuzz-") as folder:
        out = pathlib.Path(folder) / "out"
        try:
            runs = expand({"variants": variants, "axes": axes}, out)
        except HqfError:
            return
        assert len({str(r.directory).casefold() for r in runs}) == len(runs)
        for run in runs:
            relative = run.directory.relative_to(out)
            assert ".." not in relative.parts and all(len(p.encode()) <= NAME_MAX for p in relative.parts)
            run.directory.mkdir(parents=True)  # every folder name is one this file system takes
            (run.directory / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
        write_manifest(runs, out)
        loaded = load_runs([out])
        assert len(loaded.runs) == len(runs)
        assert all(math.isclose(r.value("accuracy"), 0.5) for r in loaded.runs)
