import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, log_loss

from hqf.learn.training import metrics as M


def _probs(rows):
    return np.asarray(rows, dtype=np.float64)


def test_accuracy_macro_f1_and_nll_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=300)
    logits = rng.normal(size=(300, 5)) + 2.0 * np.eye(5)[y] * (rng.random(300) < 0.6)[:, None]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    assert M.accuracy(y, pred) == pytest.approx(accuracy_score(y, pred))
    assert M.macro_f1(y, pred, 5) == pytest.approx(f1_score(y, pred, average="macro"))
    assert M.nll(probs, y) == pytest.approx(log_loss(y, probs, labels=range(5)))


def test_macro_f1_counts_a_never_predicted_class_as_zero():
    y, pred = np.array([0, 0, 1, 2]), np.array([0, 0, 1, 1])
    assert M.macro_f1(y, pred, 3) == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_ece_on_a_constructed_case():
    # two samples at confidence 0.9 (one right: bin accuracy 0.5, gap 0.4),
    # two at confidence 0.3 (both right: gap 0.7) -> ECE = 0.5·0.4 + 0.5·0.7 = 0.55
    probs = _probs([[0.9, 0.05, 0.05, 0.0], [0.9, 0.05, 0.05, 0.0], [0.3, 0.25, 0.25, 0.2], [0.2, 0.3, 0.25, 0.25]])
    y = np.array([0, 1, 0, 1])
    assert M.expected_calibration_error(probs, y) == pytest.approx(0.55)
    bins = M.reliability(probs, y)
    assert len(bins["count"]) == 15 and sum(bins["count"]) == 4
    assert bins["count"][13] == 2 and bins["accuracy"][13] == 0.5 and bins["confidence"][13] == pytest.approx(0.9)
    assert bins["count"][4] == 2 and bins["accuracy"][4] == 1.0  # 0.3 lies in (4/15, 5/15]
    assert bins["confidence"][0] is None


def test_ece_weights_each_bin_by_its_population():
    # three samples at confidence 0.9, all right (gap 0.1), one at confidence 0.7, wrong (gap 0.7):
    # weighted by population 0.75·0.1 + 0.25·0.7 = 0.25; the unweighted mean over the bins would be 0.4
    probs = _probs([[0.9, 0.1]] * 3 + [[0.7, 0.3]])
    y = np.array([0, 0, 0, 1])
    bins = M.reliability(probs, y)
    assert [bins["count"][13], bins["count"][10]] == [3, 1] and sum(bins["count"]) == 4
    gaps = [abs(a - c) for a, c in zip(bins["accuracy"], bins["confidence"]) if a is not None]
    assert np.mean(gaps) == pytest.approx(0.4)
    assert M.expected_calibration_error(probs, y) == pytest.approx(0.25)


def test_ece_bin_edges_and_perfect_calibration():
    # confidence exactly 1/15 belongs to the first bin, 1.0 to the last
    bins = M.reliability(_probs([[1 / 15] * 15, [1.0] + [0.0] * 14]), np.array([0, 0]))
    assert bins["count"][0] == 1 and bins["count"][14] == 1
    # within one bin, accuracy equal to the mean confidence gives ECE 0
    probs = _probs([[0.75, 0.25]] * 4)
    assert M.expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)


def test_vai_on_a_linear_map_matches_its_closed_form():
    generator = torch.Generator().manual_seed(0)
    d, k, n = 6, 4, 3000
    scales = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.5, 0.25], dtype=torch.float64)
    x = (torch.randn(n, d, generator=generator, dtype=torch.float64) * scales).float()
    A = torch.randn(k, d, generator=generator, dtype=torch.float64)
    embed = lambda v: v.double() @ A.T + 1.0  # noqa: E731
    sigma, draws = 0.05, 8
    result = M.variance_amplification(embed, x, sigma, draws, torch.Generator().manual_seed(1))
    cov = torch.cov(x.double().T)
    expected = (A.pow(2).sum() * cov.trace() / (d * (A @ cov @ A.T).trace())).item()
    # noise part: mean of n·k chi-square(draws-1) variance estimates, relative sd well below 1%
    assert result["vai"] == pytest.approx(expected, rel=0.03)
    assert result["noise_var"] == pytest.approx(sigma**2 * A.pow(2).sum().item(), rel=0.03)
    assert result["input_nsr"] == pytest.approx(sigma**2 * d / cov.trace().item(), rel=1e-4)
    # isotropic inputs: VAI = 1 for any linear map
    iso = torch.randn(n, d, generator=generator)
    assert M.variance_amplification(embed, iso, sigma, draws, torch.Generator().manual_seed(2))["vai"] == pytest.approx(
        1.0, rel=0.05
    )


def test_vai_is_invariant_to_rescaling_the_embedding():
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(3))
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh())
    one = M.variance_amplification(net, x, 0.1, 4, torch.Generator().manual_seed(4))["vai"]
    ten = M.variance_amplification(lambda v: 10 * net(v), x, 0.1, 4, torch.Generator().manual_seed(4))["vai"]
    assert ten == pytest.approx(one, rel=1e-5)


def test_latency_is_a_positive_time_per_instance_and_leaves_eval_mode():
    model = torch.nn.Linear(3, 2).train()
    x = torch.randn(10, 3)
    value = M.latency_per_instance(model, x, batch_size=32, repeats=3, warmup=1)  # rows repeated to 32
    assert math.isfinite(value) and value > 0 and not model.training


def test_classification_metrics_bundle():
    probs = _probs([[0.8, 0.2], [0.4, 0.6], [0.7, 0.3]])
    out = M.classification_metrics(probs, np.array([0, 1, 1]), 2)
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert set(out) == {"accuracy", "macro_f1", "ece", "nll", "reliability"}
