"""``UserCircuit``: columns shared by several gates, fixed angles, constant terms and 1-D angle vectors, through
``hqf.expval``, against the hand-expanded strict circuit and the dense reference (float64, 1e-12)."""

import math

import numpy as np
import pytest
import torch
from reference import gate_unitary, observable, reference_expval

from hqf.errors import InvalidCircuitError, UnsupportedCircuitError
from hqf.quantum.circuit import Circuit, Hamiltonian, I, Operation, PauliWord, Probs, Var, X, Z
from hqf.quantum.gradients import expval
from hqf.quantum.lowering import UserCircuit
from hqf.registry.make import make_backend

TOL = {"rtol": 0, "atol": 1e-12}
FIXED_RX, FIXED_PHASE = math.pi / 4, -0.4
OBSERVABLES = [Probs((0,)), 0.5 * Z(0) @ Z(1) - 0.25, X(2)]
OFFSETS = np.array([0.0, 0.0, -0.25, 0.0])  # the constant of the second observable, its output index 2
# user column read by each gate of the expanded circuit below (None: a fixed angle, given after it)
READS = [0, None, 0, 1, 2, 1, None, 2]


def user_circuit() -> UserCircuit:
    ops = [
        Operation("RY", 0, 0),
        Operation("RX", 1, angle=FIXED_RX),
        Operation("IsingZZ", (0, 1), 0),
        Operation("CRX", (1, 2), 1),  # a four-term recipe on a shared column
        Operation("RZ", 2, 2),
        Operation("CNOT", (0, 2)),
        Operation("RY", 1, 1),
        Operation("PhaseShift", 2, angle=FIXED_PHASE),
        Operation("RXX", (0, 2), 2),
    ]
    return UserCircuit(3, ops, OBSERVABLES)


def expanded_circuit() -> Circuit:
    """The same gates written by hand in the strict form: one column per gate, in gate order."""
    gates = [("RY", 0), ("RX", 1), ("RZZ", (0, 1)), ("CRX", (1, 2)), ("RZ", 2), ("RY", 1), ("PhaseShift", 2)]
    gates.append(("RXX", (0, 2)))
    ops = [Operation(gate, wires, k) for k, (gate, wires) in enumerate(gates)]
    ops.insert(5, Operation("CNOT", (0, 2)))
    strict = [Probs((0,)), 0.5 * Z(0) @ Z(1), X(2)]
    return Circuit(3, ops, strict)


def expanded_angles(a: torch.Tensor) -> torch.Tensor:
    """``[B, 3]`` user angles as the expanded circuit's ``[B, 8]``, written out column by column."""
    fixed = {1: FIXED_RX, 6: FIXED_PHASE}
    columns = [a[:, c] if c is not None else torch.full_like(a[:, 0], fixed[k]) for k, c in enumerate(READS)]
    return torch.stack(columns, dim=1)


def dense_gradient(circuit: Circuit, angles: np.ndarray) -> np.ndarray:
    """``d values / d user column`` ``[B, R, 3]`` on the dense reference: the textbook shift rule of each
    expanded column (two terms; four for a controlled rotation), summed over the gates reading a column."""
    plus, minus = (math.sqrt(2) + 1) / (4 * math.sqrt(2)), (math.sqrt(2) - 1) / (4 * math.sqrt(2))

    def at(column: int, shift: float) -> np.ndarray:
        shifted = angles.copy()
        shifted[:, column] += shift
        return reference_expval(circuit, shifted)

    out = np.zeros((angles.shape[0], circuit.n_outputs, 3))
    for column, user in enumerate(READS):
        if user is None:
            continue
        if circuit.column_gates[column] == "CRX":
            d = plus * (at(column, math.pi / 2) - at(column, -math.pi / 2))
            d -= minus * (at(column, 3 * math.pi / 2) - at(column, -3 * math.pi / 2))
        else:
            d = (at(column, math.pi / 2) - at(column, -math.pi / 2)) / 2
        out[:, :, user] += d
    return out


ANGLES = [[0.3, -0.7, 1.1], [1.4, 0.2, -0.5], [-2.2, 0.9, 0.4]]


@pytest.mark.parametrize("gradient", ["backprop", "adjoint", "parameter-shift"])
def test_shared_columns_and_fixed_angles_equal_the_hand_expanded_circuit_and_the_dense_reference(gradient):
    backend = make_backend("torch")
    a = torch.tensor(ANGLES, dtype=torch.float64, requires_grad=True)
    values = expval(backend, user_circuit(), a, gradient)
    jac = torch.stack([torch.autograd.grad(values[:, r].sum(), a, retain_graph=True)[0] for r in range(4)], 1)

    b = a.detach().clone().requires_grad_(True)
    by_hand = expval(backend, expanded_circuit(), expanded_angles(b), gradient)
    by_hand = by_hand + torch.tensor(OFFSETS)
    hand_jac = torch.stack([torch.autograd.grad(by_hand[:, r].sum(), b, retain_graph=True)[0] for r in range(4)], 1)
    torch.testing.assert_close(values, by_hand, **TOL)
    torch.testing.assert_close(jac, hand_jac, **TOL)

    full = expanded_angles(a.detach()).numpy()
    dense = reference_expval(expanded_circuit(), full) + OFFSETS
    torch.testing.assert_close(values.detach(), torch.from_numpy(dense), **TOL)
    torch.testing.assert_close(jac, torch.from_numpy(dense_gradient(expanded_circuit(), full)), **TOL)


@pytest.mark.parametrize("gradient", ["backprop", "parameter-shift"])
def test_shared_weights_split_off_as_a_quantum_layer_passes_them(gradient):
    backend = make_backend("torch")
    data = torch.tensor([[0.3], [1.4], [-2.2]], dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([-0.7, 1.1], dtype=torch.float64, requires_grad=True)
    rows = torch.cat([data, weights.expand(3, -1)], 1).detach().requires_grad_(True)
    split = expval(backend, user_circuit(), data, gradient, shared=weights)
    full = expval(backend, user_circuit(), rows, gradient)
    torch.testing.assert_close(split, full, **TOL)
    grad_data, grad_weights = torch.autograd.grad(split.sum(), (data, weights))
    (grad_rows,) = torch.autograd.grad(full.sum(), rows)
    torch.testing.assert_close(grad_data, grad_rows[:, :1], **TOL)
    torch.testing.assert_close(grad_weights, grad_rows[:, 1:].sum(0), **TOL)


def test_fixed_angles_reach_the_backend_as_its_broadcast_tail(monkeypatch):
    backend, seen = make_backend("torch"), []
    broadcast = backend.expval_broadcast

    def spy(circuit, angles, shared):
        seen.append((angles.shape, shared.tolist()))
        return broadcast(circuit, angles, shared)

    monkeypatch.setattr(backend, "expval_broadcast", spy)
    expval(backend, user_circuit(), torch.tensor(ANGLES, dtype=torch.float64), "backprop")
    assert seen == [(torch.Size([3, 6]), [FIXED_RX, FIXED_PHASE])]


def test_a_circuit_already_strict_is_passed_through_unchanged():
    ops = [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RX", 1, 1)]
    lowered = UserCircuit(2, ops, [Z(1)]).lowered
    assert lowered.identity and lowered.circuit == Circuit(2, ops, [Z(1)])
    assert not user_circuit().lowered.identity


@pytest.mark.parametrize("strict", [True, False], ids=["Circuit", "UserCircuit"])
def test_a_1d_angle_vector_is_one_row(strict):
    backend = make_backend("torch")
    circuit = expanded_circuit() if strict else user_circuit()
    row = torch.tensor(ANGLES[1] * (3 if strict else 1), dtype=torch.float64)[: circuit.n_params]
    row.requires_grad_(True)
    values = expval(backend, circuit, row)
    assert values.shape == (circuit.n_outputs,)
    torch.testing.assert_close(values, expval(backend, circuit, row[None])[0], **TOL)
    (grad,) = torch.autograd.grad(values.sum(), row)
    assert grad.shape == row.shape


def test_a_constant_term_is_added_to_the_value_and_not_to_the_gradient():
    backend = make_backend("torch")
    ops = [Operation("RY", 0, 0), Operation("CNOT", (0, 1))]
    a = torch.tensor([[0.3], [1.9]], dtype=torch.float64, requires_grad=True)
    with_constant = UserCircuit(2, ops, [Z(0) @ Z(1) + 1.5 - Z(0), 0.5 * I(0), Hamiltonian([(2.0, "I")])])
    values = expval(backend, with_constant, a)
    bare = expval(backend, Circuit(2, ops, [Z(0) @ Z(1) - Z(0)]), a)
    torch.testing.assert_close(values[:, 0], bare[:, 0] + 1.5, **TOL)
    torch.testing.assert_close(values[:, 1:], torch.tensor([[0.5, 2.0]] * 2, dtype=torch.float64), **TOL)
    (grad,) = torch.autograd.grad(values.sum(), a)
    torch.testing.assert_close(grad, torch.autograd.grad(bare.sum(), a)[0], **TOL)


def dense_variance(circuit: Circuit, row: np.ndarray, word: PauliWord) -> float:
    """``⟨P²⟩ − ⟨P⟩²`` from the dense state of one row."""
    psi = np.zeros(2**circuit.n_qubits, dtype=complex)
    psi[0] = 1
    for op in circuit.operations:
        psi = gate_unitary(circuit.n_qubits, op.gate, op.wires, None if op.param is None else row[op.param]) @ psi
    (matrix,) = observable(circuit.n_qubits, word)
    return float(np.real(np.vdot(psi, matrix @ matrix @ psi) - np.vdot(psi, matrix @ psi) ** 2))


@pytest.mark.parametrize("gradient", ["backprop", "adjoint", "parameter-shift"])
def test_the_variance_of_a_pauli_word(gradient):
    backend = make_backend("torch")
    words = [Z(0) @ Z(1), X(2), PauliWord.parse("Y1 Z2")]
    circuit = UserCircuit(3, user_circuit().operations, [Var(words[0]), Z(0), Var(words[1]), Var("Y1 Z2")])
    a = torch.tensor(ANGLES, dtype=torch.float64, requires_grad=True)
    values = expval(backend, circuit, a, gradient)
    full = expanded_angles(a.detach()).numpy()
    dense = [[dense_variance(expanded_circuit(), row, word) for word in words] for row in full]
    torch.testing.assert_close(values[:, [0, 2, 3]].detach(), torch.tensor(dense, dtype=torch.float64), **TOL)
    (grad,) = torch.autograd.grad(values[:, [0, 2, 3]].sum(), a)
    b = a.detach().clone().requires_grad_(True)
    means = expval(backend, UserCircuit(3, user_circuit().operations, words), b, gradient)
    (chain,) = torch.autograd.grad((1 - means.square()).sum(), b)
    torch.testing.assert_close(grad, chain, **TOL)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: UserCircuit(2, [Operation("RY", 0, 0), Operation("RY", 1, 2)], [Z(0)]), "column 1 is read by no"),
        (lambda: Operation("H", 0, angle=0.5), "H takes no angle; got angle=0.5"),
        (lambda: Operation("RY", 0, 0, angle=0.5), "RY reads column 0 or holds angle=0.5, not both"),
        (lambda: Operation("RY", 0, 0.5), "(a fixed angle is angle=0.5)"),
        (lambda: Circuit(2, [Operation("RY", 0, 0), Operation("RX", 1, 0)], [Z(0)]), "hqf.UserCircuit takes"),
        (lambda: Circuit(1, [Operation("RY", 0, angle=0.5)], [Z(0)]), "hqf.UserCircuit takes shared columns"),
        (lambda: Circuit(1, [Operation("RY", 0, 0)], [Z(0) + 1]), "a constant (identity) term; hqf.UserCircuit"),
        (lambda: Z(0) + 1j, "a Hamiltonian's coefficient of the identity must be a finite real number; got 1j"),
        (lambda: Circuit(1, [], [Var(Z(0))]), "observable var(Z0): a Circuit reads expectation values; hqf.User"),
        (lambda: Var([Z(0)]), "Var reads a Pauli word or a Hamiltonian"),
        (
            lambda: expval(make_backend("torch", shots=100, seed=1), UserCircuit(1, [], [Var(Z(0))]), torch.zeros(0)),
            "does not support observable 'var (1 - <P>^2 of estimated values is biased)'",
        ),
        (
            lambda: expval(make_backend("torch"), user_circuit(), torch.zeros(2, 2, dtype=torch.float64)),
            "angles must have shape [B, 3]",
        ),
    ],
    ids=["column gap", "angle on a fixed gate", "column and angle", "float column", "strict shared column",
         "strict fixed angle", "strict constant", "complex constant", "strict var", "var of a sum", "var on shots",
         "angle width"],
)  # fmt: skip
def test_a_wrong_use_is_one_line(build, message):
    with pytest.raises((InvalidCircuitError, UnsupportedCircuitError)) as caught:
        build()
    assert message in str(caught.value) and "\n" not in str(caught.value)
