"""The scalability study: gradient variance against an independent simulator, the CLI end to end."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from reference import reference_expval

from hqf.cli import main
from hqf.registry.make import make_backend
from hqf.studies.scale import VariancePoint, decay_rate, gradient_variance, study_circuit


@pytest.mark.parametrize("cost", ["local", "global"])
def test_gradient_variance_matches_reference_shift_rule(cost):
    n, layers, inits, seed = 3, 2, 12, 5
    point = gradient_variance(make_backend("torch"), n, layers, cost, inits, seed)
    circuit = study_circuit(n, layers, cost)
    angles = torch.rand(inits, circuit.n_params, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    angles = angles.numpy() * 2 * math.pi
    shift = np.zeros(circuit.n_params)
    shift[n] = math.pi / 2  # the first ansatz angle follows the n encoding angles
    grads = (reference_expval(circuit, angles + shift) - reference_expval(circuit, angles - shift))[:, 0] / 2
    assert point.variance == pytest.approx(np.var(grads, ddof=1), rel=1e-10)
    assert point.mean_abs == pytest.approx(np.mean(np.abs(grads)), rel=1e-10)


def test_decay_rate_is_the_log2_slope():
    points = [VariancePoint(q, 1, "global", 10, 0.5 * 2.0 ** (-1.5 * q), 0.0) for q in (2, 4, 6)]
    assert decay_rate(points) == pytest.approx(-1.5)
    assert math.isnan(decay_rate(points[:1]))


def test_study_circuit_observables():
    assert str(study_circuit(4, 1, "local").observables[0]) == "Z0 Z1"
    assert str(study_circuit(4, 1, "global").observables[0]) == "Z0 Z1 Z2 Z3"
    with pytest.raises(ValueError, match="'cost'"):
        study_circuit(2, 1, "medium")


def test_scale_command_writes_tables_and_plot(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "scale",
            "--qubits",
            "2,3",
            "--layers",
            "1,2",
            "--samples",
            "8",
            "--batch-size",
            "4",
            "--inits",
            "8",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "variance.csv")))
    assert len(rows) == 2 * 2 * 2 and {r["cost"] for r in rows} == {"local", "global"}
    assert len(list(csv.DictReader(open(tmp_path / "cost.csv")))) == 4
    assert (tmp_path / "scale.png").stat().st_size > 10_000
    assert "per qubit" in result.output


def test_scale_command_rejects_bad_lists():
    result = CliRunner().invoke(main, ["scale", "--qubits", "2,x"])
    assert result.exit_code == 2 and "comma-separated integers" in result.output
