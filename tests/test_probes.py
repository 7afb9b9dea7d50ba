"""The full-batch gradient-norm probe (hqf.learn.training.probes): its value, its place in the curves and
metrics, and that its time stays out of the run's clocks."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from hqf.learn.config import RunConfig
from hqf.learn.experiment import run
from hqf.learn.training.loop import train
from hqf.learn.training.model import build_model
from hqf.learn.training.probes import FullBatchGradient, full_batch_metrics
from hqf.learn.training.settings import TrainSettings
from hqf.learn.training.terms import build_terms

TINY = dict(
    dataset="digits-4x4",
    samples=300,
    epochs=2,
    batch_size=32,
    ansatz="hea4x2",
    latent=4,
    hidden=8,
    vai_samples=32,
    latency_repeats=2,
    curvature_every=3,
    curvature_batch=16,
)


def _model_and_terms(**overrides):
    config = RunConfig(**{**TINY, **overrides})
    model = build_model(config, 16, 10)
    return config, model, build_terms(config, model)


def test_the_probe_is_the_gradient_norm_of_ce_plus_stability_on_its_rows():
    config, model, terms = _model_and_terms()
    torch.manual_seed(0)
    x, y = torch.randn(40, 16), torch.randint(0, 10, (40,))
    params = [p for p in model.parameters() if p.requires_grad]
    probe = FullBatchGradient(x, y, terms, every=5)
    assert [t.name for t in probe.terms] == ["stability"]  # the curvature term is left out
    features, logits = model.forward_features(x)
    ce = F.cross_entropy(logits.float(), y)
    stab = ((features - features.mean(0)) ** 2).sum(1).mean()  # L_stab = (1/n) Σ ‖F_i − F̄‖²
    grads = torch.autograd.grad(ce + config.value("lambda_stab") * stab, params)
    want = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    got = probe.measure(model, params)
    assert got == pytest.approx(want, rel=1e-5)
    assert all(p.grad is None for p in params)  # .grad untouched
    assert probe.due(10) and not probe.due(11)


def test_probe_time_is_kept_out_of_the_clocks():
    _, model, terms = _model_and_terms(regularizers=["stability"])
    torch.manual_seed(1)
    x, y = torch.randn(64, 16), torch.randint(0, 10, (64,))

    class Slow:
        column = "slow"

        def due(self, step):
            return True

        def measure(self, model, params):
            import time

            time.sleep(0.05)
            return 1.0

    settings = TrainSettings(batch_size=16, epochs=2, seed=0)
    result = train(model, x, y, x[:16], y[:16], terms, settings, probes=[Slow()])
    assert result.curves["slow"] == [1.0] * 8
    assert result.train_time_s < 8 * 0.05  # eight sleeps of 50 ms, none of them counted
    assert all(t < 4 * 0.05 for t in result.epoch_times_s)
    assert result.curves["wall_time_s"][-1] < 8 * 0.05


def test_full_batch_metrics_first_step_at_or_below_eps():
    curves = {"step": [1, 2, 3, 4], "full_grad_norm": [math.nan, 0.5, math.nan, 0.01]}
    assert full_batch_metrics(curves, eps=0.1) == {
        "iterations_to_eps_full": 4,
        "full_grad_norm_min": 0.01,
        "full_grad_norm_final": 0.01,
    }
    assert full_batch_metrics({"step": [1]}, eps=0.1)["iterations_to_eps_full"] is None


def test_a_run_records_the_probe_in_curves_and_metrics(tmp_path):
    config = RunConfig(**{**TINY, "full_grad_every": 4, "full_grad_samples": 64})
    metrics = run(config, tmp_path / "run")
    lines = (tmp_path / "run" / "curves.csv").read_text().splitlines()
    column = lines[0].split(",").index("full_grad_norm")
    rows = [line.split(",") for line in lines[1:]]
    probed = {int(r[0]): float(r[column]) for r in rows if r[column] != ""}
    assert sorted(probed) == [s for s in range(1, len(rows) + 1) if s % 4 == 0] and len(probed) >= 3
    curves = {"step": list(probed), "full_grad_norm": list(probed.values())}
    assert {
        k: metrics[k] for k in ("iterations_to_eps_full", "full_grad_norm_min", "full_grad_norm_final")
    } == pytest.approx(full_batch_metrics(curves, config.eps))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["full_grad_norm_min"] == pytest.approx(
        min(probed.values())
    )
    plain = run(RunConfig(**TINY), tmp_path / "plain")
    assert plain["iterations_to_eps_full"] is None and plain["full_grad_norm_min"] is None
    assert (
        plain["accuracy"] == metrics["accuracy"] and plain["nll"] == metrics["nll"]
    )  # the probe changes nothing in training
