"""Inputs that used to escape as tracebacks or silent wrong results: one line and exit 2, or a failed
run the report lists and leaves out."""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np
import pytest
from click.testing import CliRunner

import hqf.learn.run_data
from hqf.cli import main
from hqf.errors import DataError
from hqf.learn.data.load import load_dataset
from hqf.studies.report import make_report
from hqf.studies.runs import MetricTypeWarning

BINARY = bytes(range(256)) * 4


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if a run loads its data (the error must come before)."""
    monkeypatch.setattr(hqf.learn.run_data, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))


def test_a_binary_file_as_config_or_grid_is_one_line(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(BINARY)
    result = CliRunner().invoke(main, ["run", "--config", str(binary), "--out", str(tmp_path / "r")])
    _one_line_error(result, f"{binary}: not a TOML file (not UTF-8 text")
    result = CliRunner().invoke(main, ["sweep", str(binary), "--out", str(tmp_path / "s")])
    _one_line_error(result, f"{binary}: not a TOML file (not UTF-8 text")
    text = tmp_path / "nul.toml"
    text.write_text("epochs = 1\x00\n")
    _one_line_error(CliRunner().invoke(main, ["run", "--config", str(text)]), "not valid TOML")
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()


def test_a_sweep_grid_of_the_wrong_shape_is_one_line(tmp_path):
    for text, fragment in [
        ("sweep = 3\n", "[sweep] must be a table"),
        ("variants = [1, 2]\n", "[variants] must be a table"),
        ("[sweep]\njobs = 'two'\n", "'jobs' must be an integer >= 1 (got 'two')"),
        ("[sweep]\nseeds = [true]\n", "seeds must be a non-empty list of integers"),
    ]:
        grid = tmp_path / "grid.toml"
        grid.write_text(text)
        _one_line_error(CliRunner().invoke(main, ["sweep", str(grid), "--out", str(tmp_path / "s")]), fragment)


def test_an_npz_with_object_arrays_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "owned"

    class Payload:  # unpickling it would create the marker file
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    path = tmp_path / "evil.npz"
    np.savez(path, X=np.array([Payload()] * 30, dtype=object), y=np.arange(30) % 2)
    with pytest.raises(DataError, match="holds object arrays, which hqf does not load"):
        load_dataset(str(path))
    result = CliRunner().invoke(main, ["run", "--dataset", str(path), "--out", str(tmp_path / "r")])
    _one_line_error(result, "object arrays")
    labels = tmp_path / "labels.npz"
    np.savez(labels, X=np.zeros((30, 2)), y=np.array([{"a": 1}] * 30, dtype=object))
    with pytest.raises(DataError, match="object arrays"):
        load_dataset(str(labels))
    assert not marker.exists()


def test_an_unknown_or_unsupported_gradient_stops_before_the_data_loads(tmp_path, no_data):
    result = CliRunner().invoke(main, ["run", "--gradient", "magic", "--out", str(tmp_path / "r")])
    _one_line_error(result, "'gradient' must be auto or one of backprop, adjoint, parameter-shift (got 'magic')")
    result = CliRunner().invoke(
        main, ["run", "--backend", "torch-dm", "--gradient", "adjoint", "--out", str(tmp_path / "r")]
    )
    _one_line_error(result, "backend 'torch-dm' has no native 'adjoint' gradient (native: backprop;")
    assert not (tmp_path / "r").exists()


def _sweep_folder(tmp_path: pathlib.Path) -> pathlib.Path:
    """A sweep folder by hand: two finished runs, one failed run, one run of the old kind whose loss became NaN."""
    out = tmp_path / "sweep"
    rows = []
    for i, (variant, status) in enumerate([("a", "ok"), ("a", "ok"), ("a", "failed"), ("a", "nan")]):
        directory = out / variant / f"seed{i}"
        directory.mkdir(parents=True)
        rows.append({"dir": f"{variant}/seed{i}", "variant": variant, "seed": i})
        if status == "failed":
            (directory / "status.json").write_text(
                json.dumps({"status": "failed", "reason": "the loss became NaN at 3"})
            )
            continue
        metrics = {
            "accuracy": 0.5 + 0.1 * i,
            "macro_f1": 0.4,
            "steps": 10,
            "stop_reason": "non_finite_loss" if status == "nan" else "epochs",
        }
        if status == "nan":
            metrics["accuracy"] = 0.158
        (directory / "metrics.json").write_text(json.dumps(metrics))
    (out / "sweep.json").write_text(json.dumps({"runs": rows, "report": {}}))
    return out


def test_the_report_lists_failed_runs_and_leaves_them_out(tmp_path):
    out = _sweep_folder(tmp_path)
    report = make_report([out], tmp_path / "report")
    assert [(d.name, reason) for d, reason in report.failed] == [
        ("seed2", "the loss became NaN at 3"),
        ("seed3", "the loss became NaN or infinite (stop_reason non_finite_loss)"),
    ]  # fmt: skip
    assert "2 failed runs, left out of every statistic:" in report.markdown and "FAILED" in report.markdown
    with open(tmp_path / "report" / "table1.csv", newline="") as handle:
        accuracy = next(r for r in csv.DictReader(handle) if r["metric"] == "Accuracy (%)")
    assert int(accuracy["n"]) == 2 and float(accuracy["mean"]) == pytest.approx(55.0)  # seeds 0 and 1 only


def test_a_metric_of_the_wrong_type_gives_a_warning(tmp_path):
    out = _sweep_folder(tmp_path)
    path = out / "a" / "seed1" / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "accuracy": "0.9"}))
    with pytest.warns(MetricTypeWarning, match=r"'accuracy' is str '0.9', not a number"):
        report = make_report([out], tmp_path / "report")
    assert "Warnings:" in report.markdown and "'accuracy' is str" in report.markdown


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"runs": [', "not a readable sweep manifest (JSONDecodeError"),
        ('{"report": {}}', "a JSON object with a list 'runs'"),
        ("[1, 2]", "a JSON object with a list 'runs'"),
        ('{"runs": [{"dir": "a"}]}', "run 0 needs 'dir', 'variant' and an integer 'seed'"),
        ('{"runs": [{"dir": "../../etc", "variant": "a", "seed": 0}]}', "'dir' must lie inside the sweep folder"),
    ],
)
def test_a_corrupt_sweep_manifest_is_one_line(tmp_path, text, fragment):
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "sweep.json").write_text(text)
    _one_line_error(CliRunner().invoke(main, ["report", str(folder)]), fragment)


def test_a_wide_csv_loads(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 20_000)), np.arange(50) % 2
    path = tmp_path / "wide.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{j}" for j in range(20_000)] + ["label"])
        writer.writerows([[f"{v:.6g}" for v in row] + [label] for row, label in zip(x, y)])
    data = load_dataset(str(path))
    assert data.n_features == 20_000 and len(data.train) + len(data.val) + len(data.test) == 50
    assert data.train.x.dtype == np.float32


def test_a_csv_that_is_not_text_is_a_data_error(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(BINARY)
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        load_dataset(str(path))
    path.write_text("a,b\n1," + "2" * 200_000 + "\n")  # one field past the csv module's limit
    with pytest.raises(DataError, match="not a readable CSV file"):
        load_dataset(str(path))
