"""Read-outs a PennyLane user expects: the variance of a Hamiltonian, reduced density matrices, samples and counts.

Each is checked against a dense float64 state-vector simulation written here in numpy (independent of hqf's gate
maths), and against PennyLane's default.qubit where it is installed."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from hqf.errors import InvalidCircuitError, UnsupportedCircuitError
from hqf.quantum.circuit import Circuit, Operation, Var, X, Y, Z
from hqf.quantum.gradients import expval
from hqf.quantum.lowering import UserCircuit
from hqf.quantum.readouts import counts, density_matrix, sample, state
from hqf.registry.make import make_backend

# -- a dense numpy reference ---------------------------------------------------------------------------------------

PAULI = {"I": np.eye(2), "X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.diag([1, -1])}


def _rotation(pauli: str, theta: float) -> np.ndarray:
    return math.cos(theta / 2) * np.eye(2) - 1j * math.sin(theta / 2) * PAULI[pauli]


def _on(n: int, matrices: dict[int, np.ndarray]) -> np.ndarray:
    out = np.eye(1)
    for wire in range(n):
        out = np.kron(out, matrices.get(wire, np.eye(2)))
    return out


def _gate(n: int, name: str, wires: tuple[int, ...], theta: float | None) -> np.ndarray:
    if name in ("RX", "RY", "RZ"):
        return _on(n, {wires[0]: _rotation(name[1], theta)})
    if name == "H":
        return _on(n, {wires[0]: np.array([[1, 1], [1, -1]]) / math.sqrt(2)})
    if name == "CNOT":
        zero, one = np.diag([1, 0]), np.diag([0, 1])
        return _on(n, {wires[0]: zero}) + _on(n, {wires[0]: one, wires[1]: PAULI["X"]})
    if name == "IsingZZ":
        zz = _on(n, {wires[0]: PAULI["Z"], wires[1]: PAULI["Z"]})
        return math.cos(theta / 2) * np.eye(2**n) - 1j * math.sin(theta / 2) * zz
    raise AssertionError(name)


#: the circuit of these tests as (gate, wires, user column or fixed angle)
GATES = [
    ("RY", (0,), 0),
    ("RX", (1,), 1),
    ("CNOT", (0, 1), None),
    ("RY", (2,), 0),  # column 0 shared
    ("IsingZZ", (1, 2), 1),  # column 1 shared
    ("RZ", (1,), 0.4),  # a fixed angle
    ("H", (2,), None),
    ("RX", (0,), 2),
]
N = 3


def _reference_state(row: np.ndarray) -> np.ndarray:
    psi = np.zeros(2**N, dtype=complex)
    psi[0] = 1
    for name, wires, angle in GATES:
        theta = None if angle is None else (row[angle] if isinstance(angle, int) else angle)
        psi = _gate(N, name, wires, theta) @ psi
    return psi


def _user_circuit(observables) -> UserCircuit:
    ops = []
    for name, wires, angle in GATES:
        if angle is None:
            ops.append(Operation(name, wires))
        elif isinstance(angle, int):
            ops.append(Operation(name, wires, angle))
        else:
            ops.append(Operation(name, wires, angle=angle))
    return UserCircuit(N, ops, observables)


HAMILTONIAN = 0.5 * Z(0) @ Z(1) + 0.3 * X(0) - 0.7 * Y(1) @ X(2) + 0.2 * Z(2) + 1.5
DENSE_H = (
    0.5 * _on(N, {0: PAULI["Z"], 1: PAULI["Z"]})
    + 0.3 * _on(N, {0: PAULI["X"]})
    - 0.7 * _on(N, {1: PAULI["Y"], 2: PAULI["X"]})
    + 0.2 * _on(N, {2: PAULI["Z"]})
    + 1.5 * np.eye(2**N)
)
ANGLES = torch.tensor([[0.3, 0.9, -0.5], [1.1, -0.2, 2.0], [0.0, 0.0, 0.0]], dtype=torch.float64)


def _reference_variance(row: np.ndarray, dense: np.ndarray) -> float:
    psi = _reference_state(row)
    mean = np.vdot(psi, dense @ psi).real
    return np.vdot(psi, dense @ dense @ psi).real - mean**2


def _finite_differences(f, angles: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """``∂ Σ f / ∂angles`` by central differences."""
    grad = torch.zeros_like(angles)
    for index in np.ndindex(*angles.shape):
        up, down = angles.clone(), angles.clone()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up).sum() - f(down).sum()) / (2 * h)
    return grad


# -- the variance of a Hamiltonian -----------------------------------------------------------------------------------


def test_the_variance_of_a_hamiltonian_is_the_dense_states():
    circuit = _user_circuit([Var(HAMILTONIAN), Var(Y(1) @ X(2)), HAMILTONIAN, Var(2.0 * Z(0) - Z(0) + 3)])
    values = expval(make_backend("torch"), circuit, ANGLES)
    words = _on(N, {1: PAULI["Y"], 2: PAULI["X"]})
    for row, got in zip(ANGLES.numpy(), values, strict=True):
        psi = _reference_state(row)
        expected = [
            _reference_variance(row, DENSE_H),
            _reference_variance(row, words),
            np.vdot(psi, DENSE_H @ psi).real,
            _reference_variance(row, _on(N, {0: PAULI["Z"]})),  # Var(Z0 + 3) = Var(Z0)
        ]
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("gradient", ["backprop", "adjoint", "parameter-shift"])
def test_the_gradient_of_a_hamiltonians_variance_is_the_finite_differences_of_the_dense_one(gradient):
    circuit = _user_circuit([Var(HAMILTONIAN)])
    angles = ANGLES.clone().requires_grad_(True)
    expval(make_backend("torch"), circuit, angles, gradient=gradient).sum().backward()

    def dense(a: torch.Tensor) -> torch.Tensor:
        return torch.tensor([_reference_variance(row, DENSE_H) for row in a.numpy()])

    torch.testing.assert_close(angles.grad, _finite_differences(dense, ANGLES), atol=1e-7, rtol=0)


def test_the_variance_of_a_constant_is_zero_and_of_a_word_is_one_minus_its_square():
    circuit = _user_circuit([Var(Z(0) - Z(0) + 2), Var(X(0))])
    values = expval(make_backend("torch"), circuit, ANGLES)
    assert values[:, 0].abs().max() == 0
    x = expval(make_backend("torch"), _user_circuit([X(0)]), ANGLES)[:, 0]
    torch.testing.assert_close(values[:, 1], 1 - x.square(), atol=1e-15, rtol=0)


def test_var_refuses_what_is_not_an_observable_in_one_line():
    with pytest.raises(InvalidCircuitError, match=r"^Var reads a Pauli word or a Hamiltonian .*; got 3$"):
        Var(3)


# -- state and density_matrix --------------------------------------------------------------------------------------


def test_the_state_of_a_user_circuit_is_the_dense_one():
    got = state(make_backend("torch"), _user_circuit([Z(0)]), ANGLES)
    for row, psi in zip(ANGLES.numpy(), got, strict=True):
        np.testing.assert_allclose(psi.numpy(), _reference_state(row), atol=1e-12)
    one = state(make_backend("torch"), _user_circuit([Z(0)]), ANGLES[1])
    assert one.shape == (2**N,)


def _reference_density(row: np.ndarray, wires: tuple[int, ...]) -> np.ndarray:
    psi = _reference_state(row).reshape([2] * N)
    rest = [w for w in range(N) if w not in wires]
    psi = np.transpose(psi, [*wires, *rest]).reshape(2 ** len(wires), -1)
    return psi @ psi.conj().T


@pytest.mark.parametrize("wires", [(0,), (2, 0), (1, 2), (0, 1, 2), (2, 1, 0)])
def test_a_reduced_density_matrix_is_the_dense_partial_trace(wires):
    rho = density_matrix(make_backend("torch"), _user_circuit([Z(0)]), ANGLES, wires)
    assert rho.shape == (3, 2 ** len(wires), 2 ** len(wires))
    for row, got in zip(ANGLES.numpy(), rho, strict=True):
        np.testing.assert_allclose(got.numpy(), _reference_density(row, wires), atol=1e-12)


def test_a_reduced_density_matrix_is_differentiable():
    weights = torch.tensor([[0.2, -1.0], [0.7, 0.3]], dtype=torch.complex128)  # a Hermitian observable on 1 wire
    weights = weights + weights.conj().T

    def value(a: torch.Tensor) -> torch.Tensor:
        rho = density_matrix(make_backend("torch"), _user_circuit([Z(0)]), a, (1,))
        return torch.einsum("bij,ji->b", rho, weights).real

    angles = ANGLES.clone().requires_grad_(True)
    value(angles).sum().backward()

    def dense(a: torch.Tensor) -> torch.Tensor:
        w = weights.numpy()
        return torch.tensor([np.trace(_reference_density(row, (1,)) @ w).real for row in a.numpy()])

    torch.testing.assert_close(angles.grad, _finite_differences(dense, ANGLES), atol=1e-7, rtol=0)


# -- sample and counts --------------------------------------------------------------------------------------------


def test_samples_are_seeded_per_row_and_follow_the_exact_probabilities():
    backend, circuit = make_backend("torch"), _user_circuit([Z(0)])
    shots = 20_000
    bits = sample(backend, circuit, ANGLES, shots, wires=(2, 0), seed=7)
    assert bits.shape == (3, shots, 2) and bits.dtype == torch.long
    assert torch.equal(bits, sample(backend, circuit, ANGLES, shots, wires=(2, 0), seed=7))
    assert not torch.equal(bits, sample(backend, circuit, ANGLES, shots, wires=(2, 0), seed=8))
    for row, drawn in zip(ANGLES.numpy(), bits, strict=True):
        exact = np.diag(_reference_density(row, (2, 0))).real
        frequencies = np.bincount((2 * drawn[:, 0] + drawn[:, 1]).numpy(), minlength=4) / shots
        # 5 standard deviations of a frequency, at least 1e-12 where the probability is 0 or 1
        np.testing.assert_allclose(frequencies, exact, atol=5 * math.sqrt(0.25 / shots))


def test_sample_reads_the_wires_in_the_order_given():
    circuit = Circuit(2, [Operation("X", 1)], [Z(0)])  # |01>: wire 1 is 1
    bits = sample(make_backend("torch"), circuit, torch.zeros(0, dtype=torch.float64), 5, wires=(1, 0), seed=0)
    assert bits.tolist() == [[1, 0]] * 5
    assert counts(make_backend("torch"), circuit, torch.zeros(0, dtype=torch.float64), 5, seed=0) == {"01": 5}


def test_counts_are_the_samples_counted_per_row():
    backend, circuit = make_backend("torch"), _user_circuit([Z(0)])
    found = counts(backend, circuit, ANGLES, 1000, wires=(0, 1), seed=3)
    bits = sample(backend, circuit, ANGLES, 1000, wires=(0, 1), seed=3)
    assert len(found) == 3 and all(sum(row.values()) == 1000 for row in found)
    for row, drawn in zip(found, bits, strict=True):
        assert list(row) == sorted(row)
        for key, number in row.items():
            assert number == int((drawn == torch.tensor([int(b) for b in key])).all(dim=1).sum())


def test_samples_under_noise_come_from_the_noisy_probabilities():
    circuit = Circuit(1, [], [Z(0)])  # |0>, then readout error flips it with probability 0.25
    bits = sample(make_backend("torch-dm", noise="readout=0.25"), circuit, torch.zeros(0), 40_000, seed=1)
    assert abs(float(bits.double().mean()) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 40_000)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda b, c: density_matrix(b, c, ANGLES, (0, 3)),
            r"^density_matrix reads distinct integer wires in 0\.\.2, e\.g\. wires=\(0, 1\) \(got \(0, 3\)\)$",
        ),
        (
            lambda b, c: sample(b, c, ANGLES, 10, wires=(1, 1)),
            r"^sample reads distinct integer wires in 0\.\.2, e\.g\. wires=\(0, 1\) \(got \(1, 1\)\)$",
        ),
        (lambda b, c: sample(b, c, ANGLES, 0), r"^'shots' must be an integer >= 1 \(got 0\)$"),
        (lambda b, c: counts(b, c, ANGLES, 10, seed="x"), r"^'seed' must be an integer or None \(got 'x'\)$"),
        (
            lambda b, c: state(b, c, ANGLES[:, :2]),
            r"^angles must have shape \[B, 3\] for this circuit \(got \[3, 2\]\)$",
        ),
    ],
)
def test_a_misused_read_out_is_one_line_naming_what_was_given_and_what_is_accepted(call, message):
    with pytest.raises(InvalidCircuitError, match=message) as error:
        call(make_backend("torch"), _user_circuit([Z(0)]))
    assert "\n" not in str(error.value)


def test_a_backend_that_cannot_give_a_read_out_says_so_in_one_line():
    circuit = _user_circuit([Z(0)])
    with pytest.raises(UnsupportedCircuitError, match=r"^backend 'torch-dm' does not support read-out state \("):
        density_matrix(make_backend("torch-dm"), circuit, ANGLES, (0,))
    with pytest.raises(UnsupportedCircuitError, match=r"^backend 'torch' does not support read-out sample \(its prob"):
        sample(make_backend("torch", shots=100, seed=1), circuit, ANGLES, 10)


# -- against PennyLane ----------------------------------------------------------------------------------------------

needs_pennylane = pytest.mark.skipif(importlib.util.find_spec("pennylane") is None, reason="PennyLane not installed")


@needs_pennylane
def test_var_and_density_matrix_equal_pennylanes():
    import pennylane as qml

    def circuit(row):
        qml.RY(row[0], wires=0)
        qml.RX(row[1], wires=1)
        qml.CNOT(wires=(0, 1))
        qml.RY(row[0], wires=2)
        qml.IsingZZ(row[1], wires=(1, 2))
        qml.RZ(0.4, wires=1)
        qml.Hadamard(wires=2)
        qml.RX(row[2], wires=0)

    dev = qml.device("default.qubit", wires=N)
    observable = (
        0.5 * qml.Z(0) @ qml.Z(1) + 0.3 * qml.X(0) - 0.7 * qml.Y(1) @ qml.X(2) + 0.2 * qml.Z(2) + 1.5 * qml.Identity(0)
    )

    @qml.qnode(dev)
    def variance(row):
        circuit(row)
        return qml.var(observable)

    @qml.qnode(dev)
    def reduced(row):
        circuit(row)
        return qml.density_matrix(wires=[2, 0])

    values = expval(make_backend("torch"), _user_circuit([Var(HAMILTONIAN)]), ANGLES)[:, 0]
    rho = density_matrix(make_backend("torch"), _user_circuit([Z(0)]), ANGLES, (2, 0))
    for row, value, matrix in zip(ANGLES.numpy(), values, rho, strict=True):
        assert abs(float(variance(row)) - float(value)) < 1e-12
        np.testing.assert_allclose(np.asarray(reduced(row)), matrix.numpy(), atol=1e-12)
