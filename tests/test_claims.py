"""examples/reproduce/claims.py's pure functions: calibration slopes, Hutchinson trace, power iteration."""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib

import numpy as np
import pytest
import torch

PATH = pathlib.Path(__file__).resolve().parents[1] / "examples" / "reproduce" / "claims.py"


@pytest.fixture(scope="module")
def claims():
    spec = importlib.util.spec_from_file_location("claims", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _draw(rng: np.random.Generator, n: int, classes: int, temperature: float):
    """Logits and labels drawn from softmax(logits): calibrated at temperature 1; the returned logits are
    divided by ``temperature`` (< 1: over-confident)."""
    logits = rng.normal(scale=2.0, size=(n, classes))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits / temperature, labels


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_calibrated_data_has_slope_one(claims):
    logits, labels = _draw(np.random.default_rng(0), 200_000, 12, 1.0)
    top = claims.calibration_slope(_softmax(logits), labels)
    assert top["slope"] == pytest.approx(1.0, abs=0.03)
    assert top["slope_error"] < 0.03
    assert claims.temperature_slope(logits, labels) == pytest.approx(1.0, abs=0.02)


def test_over_confident_data_has_slope_below_one(claims):
    logits, labels = _draw(np.random.default_rng(1), 200_000, 12, 0.5)
    assert claims.calibration_slope(_softmax(logits), labels)["slope"] < 0.8
    assert claims.temperature_slope(logits, labels) == pytest.approx(0.5, abs=0.02)


def test_logistic_fit_recovers_known_coefficients(claims):
    rng = np.random.default_rng(2)
    x = rng.normal(size=100_000)
    y = (rng.random(x.size) < 1 / (1 + np.exp(-(0.3 + 1.7 * x)))).astype(float)
    a, b = claims._logistic_fit(x, y)
    assert a == pytest.approx(0.3, abs=0.05)
    assert b == pytest.approx(1.7, abs=0.05)


def _quadratic(dim: int = 12):
    """Hessian-vector products of ``xᵀAx/2`` for a fixed symmetric ``A`` split into two blocks."""
    generator = torch.Generator().manual_seed(3)
    root = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    matrix = root @ root.T + torch.diag(torch.arange(dim, dtype=torch.float64))
    shapes = [(3, 2), (dim - 6,)]

    def hvp(vectors):
        flat = torch.cat([v.reshape(-1) for v in vectors])
        product = matrix @ flat
        return [product[:6].reshape(3, 2), product[6:]]

    return matrix, shapes, hvp


def test_hutchinson_trace_of_a_quadratic(claims):
    matrix, shapes, hvp = _quadratic()
    estimate = claims.hutchinson_trace(hvp, shapes, 4000, torch.Generator().manual_seed(4))
    exact = float(torch.trace(matrix))
    assert abs(estimate["trace"] - exact) < 4 * estimate["trace_se"]
    assert estimate["trace_se"] < 0.05 * exact


def test_power_iteration_finds_the_top_eigenvalue(claims):
    matrix, shapes, hvp = _quadratic()
    top = float(torch.linalg.eigvalsh(matrix)[-1])
    assert claims.power_iteration(hvp, shapes, 200, torch.Generator().manual_seed(5)) == pytest.approx(top, rel=1e-6)


def test_paired_summary_by_seed(claims):
    summary = claims.paired_summary({0: 1.0, 1: 2.0, 2: 3.5}, {2: 3.0, 0: 0.5, 1: 1.0})
    assert summary["difference"]["mean"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    low, high = summary["difference"]["ci95"]
    assert low < summary["difference"]["mean"] < high
    assert summary["seeds"] == [0, 1, 2]


def test_summary_pairs_the_run_files_by_seed(claims, tmp_path):
    for variant, offset in (("adam", 0.0), ("full", 0.1)):
        (tmp_path / variant).mkdir()
        for seed in range(3):
            slope = 1.2 - offset + 0.01 * seed
            record = {
                "calibration_top_label": {"slope": slope, "slope_error": abs(1 - slope)},
                "calibration_temperature": {"slope_error": 0.2},
                "hessian": {"trace": 100 + seed, "trace_per_parameter": 0.01, "top_eigenvalue": 5.0, "anisotropy": 500},
            }
            (tmp_path / variant / f"seed{seed}.json").write_text(json.dumps(record))
    claims.command_summary(argparse.Namespace(out=tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["calibration_slope_error"]["difference"]["mean"] == pytest.approx(-0.1)
    assert summary["hessian_trace"]["difference"]["mean"] == pytest.approx(0.0)
    assert summary["calibration_slope_error"]["seeds"] == [0, 1, 2]
