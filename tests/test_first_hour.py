"""A new user's first hour (issue 18): the quick run, --baseline, resolved settings, the slow-run warning,
the report's summary and the convergence plot."""

from __future__ import annotations

import json
import math
import pathlib
import re

import pytest
from click.testing import CliRunner

from hqf.cli import main
from hqf.cli.run_cmd import QUICK, resolve_config
from hqf.learn.config import RunConfig, read_resolved
from hqf.learn.evaluation import TIMING_KEYS
from hqf.learn.experiment import run
from hqf.learn.process import pace
from hqf.learn.resolution import resolution_notes
from hqf.learn.rundir.folder import plot_convergence
from hqf.learn.training import plotting
from hqf.learn.training.model import build_model

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
TINY = [
    "--samples", "300", "--epochs", "1", "--ansatz", "hea2x2", "--batch-size", "64",
    "--set", "hidden=8", "--set", "latent=4", "--set", "vai_samples=64", "--set", "latency_repeats=2",
]  # fmt: skip
TINY_CONFIG = dict(
    samples=300, epochs=1, ansatz="hea2x2", batch_size=64, hidden=8, latent=4, vai_samples=64, latency_repeats=1
)


def _invoke(*args):
    return CliRunner().invoke(main, ["run", "--quiet", *args])


def _help() -> str:
    return " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())


# -- item 2: --quick ---------------------------------------------------------------------------
def test_quick_sets_a_small_run_and_explicit_options_still_win(tmp_path):
    quick = resolve_config(None, {}, (), (), quick=True)
    assert all(getattr(quick, key) == value for key, value in QUICK.items())
    assert quick.ansatz == RunConfig().ansatz  # the default model, only smaller
    chosen = resolve_config(None, {"epochs": 1}, (), ("samples=500",), quick=True)
    assert (chosen.epochs, chosen.samples, chosen.vai_samples) == (1, 500, QUICK["vai_samples"])
    config_file = tmp_path / "c.toml"
    config_file.write_text("samples = 60000\nseed = 4\n")
    from_file = resolve_config(str(config_file), {}, (), (), quick=True)
    assert (from_file.samples, from_file.seed) == (QUICK["samples"], 4)


def test_help_and_readme_state_the_quick_and_default_sizes():
    text = _help()
    assert f"{QUICK['samples']:,} samples, {QUICK['epochs']} epochs" in text
    default = RunConfig()
    assert f"{default.samples:,}-sample" in text and f"{default.epochs} epochs" in text
    readme = " ".join(README.read_text().split())
    assert "hqf run --quick" in readme and f"{QUICK['samples']:,} samples, {QUICK['epochs']} epochs" in readme
    assert f"{default.samples:,} samples, {default.epochs} epochs" in readme


# -- item 7: --baseline ------------------------------------------------------------------------
def test_baseline_option_is_listed_and_runs(tmp_path):
    assert "--baseline" in _help() and "logistic" in _help()
    out = tmp_path / "logistic"
    result = _invoke(*TINY, "--baseline", "logistic", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert RunConfig.from_toml(out / "config.toml").baseline == "logistic"
    assert json.loads((out / "metrics.json").read_text())["n_quantum_parameters"] == 0


def test_unknown_baseline_is_one_line(tmp_path):
    result = _invoke("--baseline", "oracle", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "'oracle'" in result.output
    assert not (tmp_path / "x").exists()


# -- item 5: resolved values -------------------------------------------------------------------
def test_config_records_what_auto_resolved_to_and_reads_back(tmp_path):
    out = tmp_path / "backprop"
    result = _invoke(*TINY, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert read_resolved(out / "config.toml") == {"gradient": "backprop", "curvature_scope": "full"}
    assert "note:" not in result.output
    assert RunConfig.from_toml(out / "config.toml") == RunConfig.from_dict({**TINY_CONFIG, "latency_repeats": 2})


def test_a_resolution_other_than_with_backprop_is_recorded_and_printed(tmp_path):
    out = tmp_path / "adjoint"
    result = _invoke(*TINY, "--gradient", "adjoint", "--out", str(out))
    assert result.exit_code == 0, result.output
    resolved = read_resolved(out / "config.toml")
    assert resolved == {"gradient": "adjoint", "curvature_scope": "classical"}
    config = RunConfig.from_toml(out / "config.toml")
    assert config.gradient == "adjoint" and config.value("curvature_scope") == "auto"
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "curvature_scope" in notes[0] and "'classical'" in notes[0] and "'full'" in notes[0]
    # an explicit scope is what the user asked for: no note
    assert resolution_notes(config.replace(curvature_scope="classical"), resolved) == []
    assert len(resolution_notes(config.replace(gradient="auto"), resolved)) == 2


# -- item 8: the slow-run warning ---------------------------------------------------------------
@pytest.fixture
def tiny_model():
    config = RunConfig(ansatz="hea2x2", latent=4, hidden=8, batch_size=32)
    import torch

    return config, build_model(config, 6, 3), torch.randn(40, 6, generator=torch.Generator().manual_seed(0))


def test_probe_times_the_layer_and_a_slow_run_is_warned(tiny_model, monkeypatch):
    config, model, x = tiny_model
    chosen = pace.timed(config, model.quantum, pace.data_angles(model, x), "auto")
    assert chosen.gradient == "backprop" and 0 < chosen.per_iteration_s < math.inf and 1 <= chosen.probed_rows <= 32
    assert pace.slow_run_warning(config, model, x, iterations=10) is None  # milliseconds: not slow
    monkeypatch.setattr(pace, "SLOW_RUN_S", 0.0)
    text = pace.slow_run_warning(config, model, x, iterations=10)
    assert text.startswith("warning: slow run ahead") and "backend torch, gradient backprop" in text
    assert "for 10 iterations" in text


def test_the_warning_names_the_faster_choices():
    chosen = pace.Pace("pennylane", "parameter-shift", 14.0, probed_rows=16)
    faster = [
        pace.Pace("torch", "backprop", 0.02, "--backend torch", 256),
        pace.Pace("pennylane", "adjoint", 2.0, "--gradient adjoint", 64),
    ]
    text = pace.describe(chosen, 256, 1320, faster)
    assert "about 14 s per iteration" in text and "timed at 16 of the batch's 256 rows and extrapolated" in text
    assert "about 5.1 h for 1320 iterations" in text
    assert "--backend torch (about 0.02 s per iteration; gradient backprop)" in text
    assert "--gradient adjoint (about 2 s per iteration; this backend declares adjoint)" in text
    assert "No faster choice" in pace.describe(chosen, 256, 1320, [])


def test_alternatives_are_the_default_backend_and_the_declared_gradients(tiny_model, monkeypatch):
    config, _, x = tiny_model
    config = config.replace(gradient="parameter-shift")
    model = build_model(config, 6, 3)
    monkeypatch.setattr(pace, "BUDGET_S", math.inf)
    found = pace.alternatives(config, model.quantum, pace.data_angles(model, x), 0.0)
    assert [(p.backend, p.gradient, p.options) for p in found] == [
        ("torch", "backprop", "--gradient backprop"), ("torch", "adjoint", "--gradient adjoint"),
    ]  # fmt: skip


def test_the_probe_changes_no_result(tmp_path):
    config = RunConfig.from_dict(TINY_CONFIG)
    warnings: list[str] = []
    with_probe = run(config, tmp_path / "a", warn=warnings.append)
    without = run(config, tmp_path / "b")
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMING_KEYS}  # noqa: E731
    assert strip(with_probe) == strip(without) and warnings == []


# -- item 3: the report's summary ----------------------------------------------------------------
def test_report_prints_a_short_summary_and_where_the_files_are(tmp_path):
    from test_report import _sweep

    sweep = _sweep(tmp_path / "sweep")
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["report", str(sweep), "--baseline", "sgd", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "|" not in result.output  # no Markdown table: those are in the files
    assert max(len(line) for line in lines if str(out) not in line) <= 100 and len(lines) <= 20
    assert f"full report: {out / 'report.md'}" in lines
    assert any("fig2_convergence.png" in line for line in lines)
    rows = {line.split()[0]: line for line in lines if re.match(r"^(adam|sgd|full)\s", line)}
    assert set(rows) == {"adam", "sgd", "full"} and "p vs sgd: accuracy (t / W)" in result.output
    assert rows["sgd"].rstrip().endswith("—")  # the baseline is not tested against itself
    table = (out / "table1.md").read_text()
    adam_accuracy = re.search(r"\| adam \| [^|]+ \| [^|]+ \| ([\d.]+) ± ([\d.]+)", table).groups()
    assert f"{adam_accuracy[0]} ± {adam_accuracy[1]}" in rows["adam"]


# -- item 4: the convergence plot ------------------------------------------------------------------
def _captured_figure(monkeypatch, tmp_path, curves, evals, eps=1e-3):
    figures = []
    monkeypatch.setattr(plotting, "save", lambda fig, path: figures.append(fig))
    plot_convergence(tmp_path / "c.png", curves, evals, eps, "title")
    fig = figures[0]
    fig.canvas.draw()
    return fig


def test_convergence_plot_axes_ticks_and_legends(monkeypatch, tmp_path):
    steps = list(range(1, 101))
    curves = {
        "step": steps,
        "loss": [2.5 - 0.007 * k for k in steps],  # 2.5 → 1.8: under a decade
        "loss_ce": [2.45 - 0.008 * k for k in steps],
        "grad_norm": [0.2 + 0.001 * k for k in steps],
        "grad_norm_ema": [0.2 + 0.001 * k for k in steps],
    }
    evals = [{"step": 100, "val_loss": 1.6}]
    fig = _captured_figure(monkeypatch, tmp_path, curves, evals)
    loss, grad = fig.axes
    assert loss.get_yscale() == "linear"  # 2.5 to 1.6 spans under a decade
    assert grad.get_yscale() == "log"  # 0.3 down to ε = 0.001: over two decades
    assert grad.get_ylim()[0] <= 1e-3  # ε is in view
    for ax in (loss, grad):
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert labels and not any("times" in label or "^" in label or "×" in label for label in labels), labels
        assert ax.get_legend().get_texts()[0].get_fontsize() >= plotting.LEGEND_SIZE
    plotting.pyplot().close(fig)


def test_convergence_plot_takes_a_log_loss_axis_over_a_decade(monkeypatch, tmp_path):
    steps = list(range(1, 51))
    curves = {"step": steps, "loss": [10.0 / k for k in steps], "loss_ce": [9.0 / k for k in steps],
              "grad_norm": [1.0] * 50, "grad_norm_ema": [1.0] * 50}  # fmt: skip
    fig = _captured_figure(monkeypatch, tmp_path, curves, [], eps=0.5)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    plotting.pyplot().close(fig)


def test_the_summary_counts_failed_runs_and_warnings(tmp_path):
    from hqf.studies.report import Report
    from hqf.studies.summary import summary_lines

    report = Report({}, (), "", n_runs=3, failed=((tmp_path / "a", "non-finite loss"),), warnings=("x", "y"))
    lines = summary_lines(report, tmp_path)
    assert lines[:3] == [
        "3 finished runs; baseline: none",
        "1 failed runs, left out of every statistic (listed in report.md)",
        "2 warnings on metric values (listed in report.md)",
    ]
    assert f"full report: {tmp_path / 'report.md'}" in lines
