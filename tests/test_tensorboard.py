"""``hqf run --tensorboard``: event files in the run directory, read back with TensorBoard's own reader."""

from __future__ import annotations

import csv
import importlib.util
import json
import math

import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing import event_accumulator

import hqf.learn.experiment
from hqf.cli import main
from hqf.learn.config import RunConfig
from hqf.learn.experiment import TIMING_KEYS, run
from hqf.learn.process import tensorboard as tb

TINY = dict(
    samples=300, epochs=2, ansatz="hea2x2", batch_size=64, hidden=8, latent=4, vai_samples=64, latency_repeats=1
)
TINY_ARGS = [
    "--samples", "300", "--epochs", "2", "--ansatz", "hea2x2", "--batch-size", "64",
    "--set", "hidden=8", "--set", "latent=4", "--set", "vai_samples=64", "--set", "latency_repeats=1",
]  # fmt: skip


def _events(folder) -> event_accumulator.EventAccumulator:
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return accumulator


def _rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _series(events, tag) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.fixture(scope="module")
def board_run(tmp_path_factory):
    """One tiny run with TensorBoard through the CLI (its folder), shared by the read-back tests."""
    out = tmp_path_factory.mktemp("tb") / "run"
    result = CliRunner().invoke(main, ["run", "--quiet", *TINY_ARGS, "--tensorboard", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_scalars_per_iteration_match_the_curves(board_run):
    events = _events(board_run / tb.FOLDER)
    curves = _rows(board_run / "curves.csv")
    assert [int(r["step"]) for r in curves] == list(range(1, 9))
    for column in ("loss", "loss_ce", "grad_norm", "grad_norm_ema", "lr", "stab"):
        logged = _series(events, f"train/{column}")
        assert [s for s, _ in logged] == list(range(1, 9)), column
        assert [v for _, v in logged] == pytest.approx([float(r[column]) for r in curves], rel=1e-6), column
    # the curvature term is computed every 10th iteration (t = 1 here): logged only where computed
    assert _series(events, "train/curv") == [(1, pytest.approx(float(curves[0]["curv"]), rel=1e-6))]
    assert "train/wall_time_s" not in events.Tags()["scalars"] and "train/step" not in events.Tags()["scalars"]


def test_validation_metrics_and_the_fusion_gate_per_epoch(board_run):
    events = _events(board_run / tb.FOLDER)
    epochs = _rows(board_run / "epochs.csv")
    steps = [int(r["step"]) for r in epochs]
    assert steps == [4, 8]
    for column, tag in tb.VALIDATION_TAGS.items():
        logged = _series(events, tag)
        assert [s for s, _ in logged] == steps
        assert [v for _, v in logged] == pytest.approx([float(r[column]) for r in epochs], rel=1e-6), tag
    gate = _series(events, "fusion/gate_mean")
    assert [s for s, _ in gate] == steps and all(0 < v < 1 for _, v in gate)


def test_hparams_carry_the_settings_and_the_final_metrics(board_run):
    events = _events(board_run / tb.FOLDER)
    metrics = json.loads((board_run / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "ece", "gate_mean", "steps"):
        (value,) = [v for _, v in _series(events, f"final/{key}")]
        assert value == pytest.approx(metrics[key], rel=1e-6), key
    assert "final/iterations_to_eps" not in events.Tags()["scalars"]  # None: not reached
    plugin = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(plugin)
    start = plugin["_hparams_/session_start_info"].decode("latin-1")
    assert "ansatz" in start and "hea2x2" in start and "regularizers" in start and "stability,curvature" in start


def test_tensorboard_changes_no_result(tmp_path):
    config = RunConfig.from_dict(TINY)
    with_board = run(config.replace(tensorboard=True), tmp_path / "a")
    without = run(config, tmp_path / "b")
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMING_KEYS}  # noqa: E731
    assert strip(with_board) == strip(without)
    assert (tmp_path / "a" / tb.FOLDER).is_dir() and not (tmp_path / "b" / tb.FOLDER).exists()
    assert RunConfig.from_toml(tmp_path / "a" / "config.toml").tensorboard is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no live folder left behind


def test_a_failed_run_keeps_its_events_in_its_directory_and_nothing_beside_it(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(hqf.learn.experiment, "evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        run(RunConfig.from_dict({**TINY, "tensorboard": True}), tmp_path / "r")
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    assert [s for s, _ in _series(_events(tmp_path / "r" / tb.FOLDER), "train/loss")] == list(range(1, 9))


def test_without_the_package_it_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = CliRunner().invoke(main, ["run", "--quiet", "--tensorboard", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        "Error: 'tensorboard' needs the tensorboard package: pip install 'hqf[tensorboard]'"
    ]
    assert not (tmp_path / "x").exists()


def test_settings_for_the_hparams_view():
    settings = tb.hparams({"a": 1, "b": None, "c": ("x", "y"), "d": {"k": 1}, "e": [], "f": True, "g": math.pi})
    assert settings == {"a": 1, "c": "x,y", "d": '{"k": 1}', "e": "none", "f": True, "g": math.pi}
