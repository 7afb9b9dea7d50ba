"""Depolarizing gate noise: the same ``p`` means the same channel on every noisy backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hqf.quantum.circuit import GATES, Circuit, Hamiltonian, Operation, PauliWord, Probs
from hqf.quantum.gradients import expval
from hqf.registry.make import make_backend
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


# -- the whole vocabulary on the noisy adapters ------------------------------------------------------
def _embed(n: int, wires: tuple[int, ...], matrix: np.ndarray) -> np.ndarray:
    """``matrix`` (over ``wires``, ``wires[0]`` most significant) as a ``2**n`` matrix, by basis index."""
    full = np.zeros((2**n, 2**n), dtype=complex)
    for i in range(2**n):
        bits = [(i >> (n - 1 - w)) & 1 for w in range(n)]
        column = int("".join(str(bits[w]) for w in wires), 2)
        for row in range(2 ** len(wires)):
            out = list(bits)
            for k, w in enumerate(wires):
                out[w] = (row >> (len(wires) - 1 - k)) & 1
            full[int("".join(map(str, out)), 2), i] += matrix[row, column]
    return full


def _noisy_reference(circuit: Circuit, row: np.ndarray, p: float) -> np.ndarray:
    """ρ after each gate and a D_p on each of its wires; then ⟨P⟩ = tr(ρP) and the probabilities."""
    from hqf.quantum.gates import matrix

    n = circuit.n_qubits
    paulis = {"X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.diag([1, -1])}
    rho = np.zeros((2**n, 2**n), dtype=complex)
    rho[0, 0] = 1
    for op in circuit.operations:
        u = _embed(n, op.wires, matrix(op.gate, None if op.param is None else row[op.param]))
        rho = u @ rho @ u.conj().T
        for w in op.wires:
            errors = [_embed(n, (w,), paulis[letter]) for letter in "XYZ"]
            rho = (1 - p) * rho + p / 3 * sum(e @ rho @ e.conj().T for e in errors)
    out = []
    for obs in circuit.observables:
        if isinstance(obs, Probs):
            diagonal = np.real(np.diag(rho)).reshape((2,) * n)
            kept = np.moveaxis(diagonal, obs.wires, range(len(obs.wires)))
            out += list(kept.reshape(2 ** len(obs.wires), -1).sum(axis=1))
        else:
            words = obs.terms if isinstance(obs, Hamiltonian) else ((1.0, obs),)
            value = 0.0
            for coefficient, word in words:
                full = np.eye(1)
                for w in range(n):
                    full = np.kron(full, paulis[dict(word.terms)[w]] if w in word.wires else np.eye(2))
                value += coefficient * np.real(np.trace(rho @ full))
            out.append(value)
    return np.array(out)


@pytest.mark.parametrize("name", ["pennylane-mixed", "qiskit-aer-dm"])
def test_every_gate_and_observable_with_noise_matches_the_density_matrix_written_out(name):
    ops = [Operation("RY", 0, 0), Operation("H", 1), Operation("RX", 2, 1)]
    column = 2
    for gate, (n_wires, parameterized) in sorted(GATES.items()):
        wires = {1: (1,), 2: (2, 0), 3: (1, 2, 0)}[n_wires]
        ops.append(Operation(gate, wires, column if parameterized else None))
        column += parameterized
    observables = [PauliWord.parse("Z0 X2"), PauliWord.parse("Y1"), Hamiltonian(((0.5, "Z1"), (-2.0, "X0 Y2"))), Probs((2, 0))]
    circuit = Circuit(3, ops, observables)
    angles = np.random.default_rng(5).uniform(-math.pi, math.pi, (2, column))
    want = np.stack([_noisy_reference(circuit, row, 0.02) for row in angles])
    np.testing.assert_allclose(_run(name, circuit, angles, 0.02), want, atol=1e-10)
