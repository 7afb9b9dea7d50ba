"""``hqf run --encoder iqp`` and ``--encoder reupload`` train end to end, on the torch backend and on
PennyLane (slow: Qiskit Aer too), on a tiny configuration."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from hqf.cli import main

TINY = (
    "--samples", "300", "--epochs", "1", "--ansatz", "hea3x2", "--batch-size", "64", "--regularizer", "none",
    "--set", "hidden=8", "--set", "latent=4", "--set", "vai_samples=32", "--set", "latency_repeats=1",
    "--set", "max_iterations=4",
)  # fmt: skip


def _train(tmp_path, backend: str, encoder: str, *extra: str) -> dict:
    out = tmp_path / f"{backend}-{encoder}"
    args = ["run", "--quiet", *TINY, "--backend", backend, "--encoder", encoder, *extra, "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and math.isfinite(metrics["val_loss"]) and math.isfinite(metrics["nll"])
    return metrics


def _quantum_parameters(encoder: str) -> int:
    weights = 2 * 3 * 2  # hea3x2
    projection = 4 * 3 + 3  # latent 4 -> 3 qubits
    scalings = {"iqp": 0, "reupload": 2 * 4}[encoder]  # one input scaling per ansatz layer
    return weights + projection + scalings


CASES = [
    pytest.param("torch", "iqp", id="torch-iqp"),
    pytest.param("torch", "reupload", id="torch-reupload"),
    pytest.param("pennylane", "iqp", id="pennylane-iqp", marks=pytest.mark.slow),
    pytest.param("pennylane", "reupload", id="pennylane-reupload"),
    pytest.param("qiskit-aer", "iqp", id="qiskit-iqp", marks=pytest.mark.slow),
    pytest.param("qiskit-aer", "reupload", id="qiskit-reupload", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("backend", "encoder"), CASES)
def test_trains_end_to_end(tmp_path, backend, encoder):
    metrics = _train(tmp_path, backend, encoder)
    assert metrics["n_quantum_parameters"] == _quantum_parameters(encoder)


@pytest.mark.slow
def test_reupload_over_iqp_trains_with_options(tmp_path):
    _train(tmp_path, "torch", "reupload", "--set", "encoder_options={encoder = 'iqp', reps = 1, pairs = 'linear'}")


def test_a_bad_encoder_option_is_one_line(tmp_path):
    args = [
        "run",
        "--quiet",
        *TINY,
        "--encoder",
        "iqp",
        "--set",
        "encoder_options={reps = 0}",
        "--out",
        str(tmp_path / "r"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "'reps' must be an integer >= 1 (got 0)" in result.output and "Traceback" not in result.output
