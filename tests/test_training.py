import math

import attrs
import numpy as np
import pytest
import torch

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.training.curves import curve_columns
from hqf.learn.training.loop import train
from hqf.learn.training.model import build_model
from hqf.learn.training.settings import TrainSettings
from hqf.learn.training.terms import build_terms
from hqf.registry.contracts import Regularizer, RegularizerInputs
from hqf.registry.options import integer, number, option


def _blobs(n=96, d=4, classes=3):
    """Training and validation samples of three well-separated Gaussian blobs (easy: criteria trigger fast)."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(classes, d, generator=g) * 2
    y = torch.arange(n) % classes
    return [(centres[y] + 0.3 * torch.randn(n, d, generator=g), y) for _ in range(2)]


def _run(config: RunConfig, **settings):
    (x, y), (xv, yv) = _blobs()
    model = build_model(config, x.shape[1], 3)
    base = TrainSettings.from_config(config)
    return model, train(model, x, y, xv, yv, build_terms(config), attrs.evolve(base, **settings))


CLASSICAL = RunConfig(fusion="classical-only", regularizers=[], hidden=16, latent=8, batch_size=16)


def test_stops_when_smoothed_gradient_norm_reaches_eps():
    _, result = _run(CLASSICAL, eps=0.3, epochs=50, lr=0.05, delta=0.0)
    assert result.stop_reason == "grad_norm"
    ema = result.curves["grad_norm_ema"]
    assert result.iterations_to_eps == result.steps == len(ema)
    assert ema[-1] <= 0.3 and all(v > 0.3 for v in ema[:-1])
    # the smoothed value is the bias-corrected EMA of the raw norms
    raw, beta = np.array(result.curves["grad_norm"]), 0.9
    m = 0.0
    for g in raw:
        m = beta * m + (1 - beta) * g
    assert ema[-1] == pytest.approx(m / (1 - beta ** len(raw)))


def test_stops_when_validation_loss_stops_changing():
    _, result = _run(CLASSICAL, eps=0.0, delta=10.0, epochs=20)
    assert result.stop_reason == "val_loss_change" and result.iterations_to_eps is None
    assert len(result.evals) == 2 and result.steps == 2 * math.ceil(96 / 16)  # validated once per epoch


def test_budget_by_epochs_and_by_iterations_and_eval_every():
    _, by_epochs = _run(CLASSICAL, eps=0.0, delta=0.0, epochs=2)
    assert by_epochs.stop_reason == "epochs" and by_epochs.steps == 12 and by_epochs.epochs_completed == 2
    assert [row["step"] for row in by_epochs.evals] == [6, 12]
    _, by_steps = _run(CLASSICAL, eps=0.0, delta=0.0, epochs=5, max_iterations=8, eval_every=3)
    assert by_steps.stop_reason == "max_iterations" and by_steps.steps == 8
    assert [row["step"] for row in by_steps.evals] == [3, 6, 8]  # every 3 iterations, then the final model
    assert by_steps.curves["step"] == list(range(1, 9))


def test_optimizers_all_decrease_the_loss():
    for name, extra in (("sgd", {"momentum": 0.9}), ("rmsprop", {}), ("adam", {})):
        _, result = _run(CLASSICAL, eps=0.0, delta=0.0, epochs=4, optimizer=name, lr=0.01, **extra)
        losses = [row["val_loss"] for row in result.evals]
        assert losses[-1] < losses[0], (name, losses)


def test_composite_loss_and_curvature_every_k():
    config = RunConfig(
        ansatz="hea2x1", hidden=6, latent=4, batch_size=32, curvature_every=2, lambda_stab=0.5, gamma_curv=0.1
    )
    _, result = _run(config, eps=0.0, delta=0.0, epochs=2)
    c = result.curves
    assert result.steps == 6
    curv_steps = [s for s, v in zip(c["step"], c["curv"]) if not math.isnan(v)]
    assert curv_steps == [1, 3, 5]
    for ce, stab, curv, total in zip(c["loss_ce"], c["stab"], c["curv"], c["loss"]):
        expected = ce + 0.5 * stab + (0.1 * curv if not math.isnan(curv) else 0.0)
        assert total == pytest.approx(expected, rel=1e-6)


def test_curvature_on_a_sub_batch():
    config = RunConfig(ansatz="hea2x1", hidden=6, latent=4, batch_size=32, curvature_every=1, curvature_batch=8)
    [_, curvature] = build_terms(config)
    assert (curvature.name, curvature.batch, curvature.every) == ("curvature", 8, 1)
    _, result = _run(config, eps=0.0, delta=0.0, epochs=1)
    assert all(v > 0 for v in result.curves["curv"])


def test_surrogates_when_eps_is_not_reached():
    _, result = _run(CLASSICAL, eps=0.0, delta=0.0, epochs=3)
    s = result.surrogates()
    assert result.iterations_to_eps is None
    best = min(row["val_loss"] for row in result.evals)
    first = next(row["step"] for row in result.evals if row["val_loss"] <= 1.01 * best)
    assert s["iterations_to_val_within_1pct"] == first
    assert s["grad_norm_ema_min"] == min(result.curves["grad_norm_ema"])


def test_same_seed_same_curves():
    _, a = _run(CLASSICAL, eps=0.0, delta=0.0, epochs=2)
    _, b = _run(CLASSICAL, eps=0.0, delta=0.0, epochs=2)
    assert a.curves["loss"] == b.curves["loss"] and a.curves["grad_norm"] == b.curves["grad_norm"]


def test_first_iterations_agree_across_backends():
    """Loss, both penalties (the curvature through double backward) and the gradient norm are exact
    on every exact backend, whatever its gradient method."""
    from hqf.registry.loader import registry

    if not registry().get("backend", "pennylane").availability().ok:
        pytest.skip("pennylane backend unavailable here")
    rows = {}
    for backend in ("torch", "pennylane"):
        config = RunConfig(backend=backend, ansatz="hea2x1", hidden=6, latent=4, batch_size=32, curvature_every=1)
        _, result = _run(config, eps=0.0, delta=0.0, epochs=1, max_iterations=2)
        rows[backend] = [result.curves[k] for k in ("loss", "stab", "curv", "grad_norm")]
    np.testing.assert_allclose(rows["pennylane"], rows["torch"], rtol=1e-6)


def test_curvature_scope_holds_quantum_features_constant_without_backprop():
    shift = RunConfig(ansatz="hea2x1", hidden=6, latent=4, batch_size=16, gradient="parameter-shift", curvature_every=1)
    backprop = attrs.evolve(shift, gradient="auto")
    model = build_model(shift, 4, 3)
    assert model.quantum_gradient == "parameter-shift"
    assert [t.quantum_constant for t in build_terms(shift, model)] == [False, True]  # stability, curvature
    assert not build_terms(backprop, build_model(backprop, 4, 3))[1].quantum_constant
    assert not build_terms(attrs.evolve(shift, curvature_scope="full"), model)[1].quantum_constant
    assert build_terms(attrs.evolve(backprop, curvature_scope="classical"))[1].quantum_constant
    [_, curv] = build_terms(shift, model)
    (x, y), _ = _blobs()
    xb, yb = x[:16], y[:16]
    features, logits = model.forward_features(xb)
    full = RegularizerInputs(features, logits, torch.nn.functional.cross_entropy(logits, yb), tuple(model.parameters()))
    penalty = curv.regularizer.penalty(curv.inputs(model, xb, yb, full))
    weights_grad, head_grad = torch.autograd.grad(
        penalty, [model.quantum.weights, model.head.weight], allow_unused=True
    )
    assert weights_grad is None or not weights_grad.any()
    assert head_grad is not None and head_grad.abs().sum() > 0


def test_terms_read_each_regularizers_options_and_the_flat_keys_override_the_table():
    config = RunConfig(lambda_stab=0.25, gamma_curv=0.5, curvature_every=3, curvature_batch=None, curvature_probes=2,
                       seed=7, regularizer_options={"curvature": {"probes": 4, "method": "autograd"}})  # fmt: skip
    stability, curvature = build_terms(config)
    assert (stability.weight, stability.column, stability.every, stability.batch) == (0.25, "stab", 1, None)
    assert (curvature.weight, curvature.column, curvature.every, curvature.batch) == (0.5, "curv", 3, None)
    regularizer = curvature.regularizer
    assert (regularizer.probes, regularizer.seed, regularizer.method) == (2, 7, "autograd")
    assert config.regularizer_options["curvature"]["batch"] == "all" and config.value("curvature_batch") is None


def test_option_tables_read_from_toml_and_refuse_bad_values_in_one_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('regularizers = ["curvature"]\n[regularizer_options.curvature]\nevery = 4\nbatch = "all"\n')
    config = RunConfig.from_toml(path)
    assert config.value("curvature_every") == 4 and build_terms(config)[0].batch is None
    assert config == RunConfig(regularizers=["curvature"], curvature_every=4, curvature_batch=None)
    with pytest.raises(ConfigError, match=r"regularizer_options.curvature: 'every' must be an integer >= 1 \(got 0\)$"):
        RunConfig.from_dict({"curvature_every": 0})
    with pytest.raises(ConfigError, match="regularizer_options.curvature: unknown option 'evry'; known: weight, every"):
        RunConfig(regularizer_options={"curvature": {"evry": 2}})
    with pytest.raises(ConfigError, match="'scope' must be one of auto, full, classical"):
        RunConfig(curvature_scope="half")


@attrs.frozen
class _SpreadOptions:
    weight: float = option(1.0, number(0.0))
    every: int = option(1, integer(1), flat_key="spread_every")


class _Spread(Regularizer):
    """A third party's regularizer: the stability penalty under its own name, with its own options."""

    name = "spread"
    options = _SpreadOptions
    column = "spread"

    def penalty(self, inputs):
        return inputs.features.var(dim=0, unbiased=False).sum()


class _Undeclared(_Spread):
    name = "undeclared"
    options = None
    column = None


class _Misdeclared(_Spread):
    name = "misdeclared"
    options = None
    run_keys = (("seed", "spread_seed"),)


def test_a_third_party_regularizer_is_scheduled_by_its_declaration(fake_plugins):
    fake_plugins(_Spread, _Undeclared, _Misdeclared)
    config = RunConfig(
        fusion="classical-only",
        hidden=16,
        latent=8,
        batch_size=16,
        regularizers=("spread", "undeclared"),
        spread_every=2,
        regularizer_options={"spread": {"weight": 0.5}, "undeclared": {"weight": 0.25}},
    )
    spread, undeclared = build_terms(config)
    assert (spread.weight, spread.column, spread.every) == (0.5, "spread", 2)
    assert (undeclared.weight, undeclared.column, undeclared.every, undeclared.batch) == (
        0.25,
        "reg_undeclared",
        1,
        None,
    )
    assert curve_columns([spread, undeclared])[:7] == ["step", "epoch", "loss", "loss_ce", "stab", "curv", "spread"]
    _, result = _run(config, eps=0.0, delta=0.0, epochs=1)
    c = result.curves
    assert [s for s, v in zip(c["step"], c["spread"]) if not math.isnan(v)] == [1, 3, 5]
    assert not any(math.isnan(v) for v in c["reg_undeclared"]) and all(math.isnan(v) for v in c["stab"])
    for ce, spread_value, other, total in zip(c["loss_ce"], c["spread"], c["reg_undeclared"], c["loss"]):
        expected = ce + (0.5 * spread_value if not math.isnan(spread_value) else 0.0) + 0.25 * other
        assert total == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ConfigError, match="regularizer 'misdeclared' reads run-configuration key 'spread_seed'"):
        build_terms(attrs.evolve(config, regularizers=("misdeclared",)))


@attrs.frozen
class _ClashingOptions:
    weight: float = option(1.0, number(0.0), flat_key="lambda_stab")


class _Clashing(_Spread):
    name = "clashing"
    options = _ClashingOptions


def test_a_flat_key_declared_twice_is_an_error_naming_both(fake_plugins):
    fake_plugins(_Clashing)
    with pytest.raises(
        ConfigError,
        match="regularizer 'stability' declares the flat key 'lambda_stab', already a "
        "flat key of regularizer 'clashing'",
    ):
        RunConfig()


def test_the_classical_surrogate_trains_with_the_curvature_term():
    config = RunConfig(
        baseline="classical-surrogate", ansatz="hea2x2", hidden=6, latent=4, batch_size=32, curvature_every=1
    )
    model, result = _run(config, eps=0.0, delta=0.0, epochs=1, max_iterations=2)
    assert model.quantum_gradient == "backprop" and not build_terms(config, model)[1].quantum_constant
    assert all(v > 0 for v in result.curves["curv"])


def test_a_non_finite_loss_stops_before_the_step():
    model = build_model(CLASSICAL, 4, 3)
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    (x, y), (xv, yv) = _blobs()
    before = [p.detach().clone() for p in model.parameters()]
    result = train(model, x, y, xv, yv, [], attrs.evolve(TrainSettings.from_config(CLASSICAL), epochs=3))
    assert (result.stop_reason, result.steps, result.epochs_completed) == ("non_finite_loss", 1, 0)
    assert result.curves["step"] == [] and [row["step"] for row in result.evals] == [1]
    assert all(torch.allclose(a, b, rtol=0, atol=0, equal_nan=True) for a, b in zip(before, model.parameters()))
