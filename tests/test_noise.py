"""Depolarizing gate noise: the same ``p`` means the same channel on every noisy backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.quantum.gradients import expval
from hqf.quantum.make import make_backend
from hqf.quantum.noise import check_probability, count_channels, qiskit_lambda
from hqf.testing import ReferenceBackend
from hqf.testing.strategies import angle_batches, circuits

NOISY = ("torch-dm", "pennylane-mixed", "qiskit-aer-dm")
LEVELS = (0.0, 0.01, 0.05, 0.3)


def _run(name: str, circuit: Circuit, angles: np.ndarray, p: float) -> np.ndarray:
    backend = make_backend(name, depolarizing=p)
    return backend.expval(circuit, torch.as_tensor(angles, dtype=torch.float64)).numpy()


@settings(max_examples=12)
@given(data=st.data(), p=st.sampled_from(LEVELS))
def test_noisy_backends_agree_on_random_circuits(data, p):
    circuit = data.draw(circuits(max_qubits=4, max_ops=14))
    angles = data.draw(angle_batches(circuit))
    results = {name: _run(name, circuit, angles, p) for name in NOISY}
    for name in NOISY[1:]:
        np.testing.assert_allclose(results[name], results["torch-dm"], atol=1e-8, err_msg=f"{name}, p={p}")


@settings(max_examples=10)
@given(data=st.data())
def test_zero_noise_equals_noiseless_state_vector(data):
    circuit = data.draw(circuits(max_qubits=4, max_ops=14))
    angles = data.draw(angle_batches(circuit))
    pure = ReferenceBackend().expval(circuit, torch.as_tensor(angles)).numpy()
    for name in NOISY:
        np.testing.assert_allclose(_run(name, circuit, angles, 0.0), pure, atol=1e-10, err_msg=name)


def test_single_qubit_channel_matches_closed_form():
    """RX(θ) then D_p: ⟨Z⟩ = (1 − 4p/3) cos θ; ⟨Y⟩ = −(1 − 4p/3) sin θ."""
    circuit = Circuit(1, [Operation("RX", 0, 0)], [PauliWord.z(0), PauliWord(((0, "Y"),))])
    theta = np.array([[0.3], [1.9]])
    p = 0.05
    shrink = 1 - 4 * p / 3
    expected = np.stack([shrink * np.cos(theta[:, 0]), -shrink * np.sin(theta[:, 0])], axis=1)
    for name in NOISY:
        np.testing.assert_allclose(_run(name, circuit, theta, p), expected, atol=1e-12, err_msg=name)


def test_two_qubit_gate_depolarizes_both_wires():
    """X on wire 0, CNOT(0,1): ⟨Z1⟩ = −(1−4p/3)² (X's channel on wire 0, then both after CNOT)."""
    circuit = Circuit(2, [Operation("X", 0), Operation("CNOT", (0, 1))], [PauliWord.z(1), PauliWord.z(0)])
    p = 0.04
    s = 1 - 4 * p / 3
    expected = np.array([[-(s**2), -(s**2)]])
    assert count_channels(circuit) == 3
    for name in NOISY:
        np.testing.assert_allclose(_run(name, circuit, np.zeros((1, 0)), p), expected, atol=1e-12, err_msg=name)


def test_torch_dm_gradients_match_parameter_shift():
    circuit = Circuit(
        2,
        [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RX", 1, 1), Operation("RZ", 0, 2)],
        [PauliWord.parse("Z0 Z1"), PauliWord.parse("X0")],
    )
    angles = torch.tensor([[0.4, -1.1, 0.7], [2.0, 0.3, -0.5]], dtype=torch.float64, requires_grad=True)
    backend = make_backend("torch-dm", depolarizing=0.03)
    (grad_auto,) = torch.autograd.grad(expval(backend, circuit, angles).sum(), angles)
    (grad_shift,) = torch.autograd.grad(expval(backend, circuit, angles, "parameter-shift").sum(), angles)
    torch.testing.assert_close(grad_auto, grad_shift, atol=1e-12, rtol=0)


def test_conventions_and_validation():
    assert qiskit_lambda(0.03) == pytest.approx(0.04)
    assert check_probability(0) == 0.0
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="'depolarizing' must be a probability"):
            check_probability(bad)
    with pytest.raises(ValueError):
        make_backend("torch-dm", depolarizing=2.0)
