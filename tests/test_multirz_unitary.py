"""PennyLane's ``MultiRZ`` (any number of wires, lowered to CNOTs and one RZ) and ``QubitUnitary`` (a fixed matrix
on 1 to 3 wires, run natively where a backend declares it): values against an independent float64 numpy state
vector, gradients against PennyLane's ``default.qubit``, the one-line errors, and the ``hqf.torch`` device."""

import math

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given, settings

import hqf
from hqf.backends.torch import TorchBackend
from hqf.backends.torch.plan import fits
from hqf.errors import InvalidCircuitError, UnsupportedCircuitError
from hqf.quantum.circuit import BASE_GATES, Circuit, Operation, PauliWord, adjoint
from hqf.quantum.interfaces import Backend, Capabilities
from hqf.quantum.lowering import UserCircuit
from hqf.testing import check_property, default_settings
from hqf.testing.reference import ReferenceBackend
from hqf.testing.strategies import circuits

# -- an independent float64 numpy state vector (wire 0 the most significant bit) -----------------------------
_H = np.array([[1, 1], [1, -1]]) / math.sqrt(2)
_CNOT = np.eye(4)[[0, 1, 3, 2]]


def _rotation(letter: str, theta: float) -> np.ndarray:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    return {
        "RX": np.array([[c, -1j * s], [-1j * s, c]]),
        "RY": np.array([[c, -s], [s, c]]),
        "RZ": np.diag([np.exp(-1j * theta / 2), np.exp(1j * theta / 2)]),
    }[letter]


def _apply(state: np.ndarray, n: int, matrix: np.ndarray, wires) -> np.ndarray:
    k = len(wires)
    tensor = np.moveaxis(state.reshape([2] * n), list(wires), list(range(k)))
    out = (matrix @ tensor.reshape(2**k, -1)).reshape([2] * n)
    return np.moveaxis(out, list(range(k)), list(wires)).reshape(-1)


def _multi_rz(n_wires: int, theta: float) -> np.ndarray:
    """``exp(−iθ Z⊗…⊗Z/2)``: a diagonal of phases by the parity of each basis index."""
    parity = np.array([bin(i).count("1") % 2 for i in range(2**n_wires)])
    return np.diag(np.exp(-1j * theta / 2 * (1 - 2 * parity)))


def numpy_values(n: int, ops, words, row) -> np.ndarray:
    """The expectation values of Pauli words after ``ops``, each ``(name, wires, column or None, matrix)``."""
    state = np.zeros(2**n, dtype=complex)
    state[0] = 1
    for name, wires, column, matrix in ops:
        theta = None if column is None else float(row[column])
        if name == "MultiRZ":
            matrix = _multi_rz(len(wires), theta)
        elif name in ("RX", "RY", "RZ"):
            matrix = _rotation(name, theta)
        elif name == "H":
            matrix = _H
        elif name == "CNOT":
            matrix = _CNOT
        state = _apply(state, n, matrix, wires)
    paulis = {"X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.diag([1, -1])}
    values = []
    for word in words:
        moved = state
        for wire, letter in word:
            moved = _apply(moved, n, paulis[letter], (wire,))
        values.append(float(np.vdot(state, moved).real))
    return np.array(values)


def random_unitary(dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)) + 1j * rng.normal(size=(dim, dim)))
    return q * (np.diag(r) / np.abs(np.diag(r)))


def hqf_ops(ops) -> list[Operation]:
    return [Operation(name, wires, column, matrix=matrix) for name, wires, column, matrix in ops]


WORDS = (((0, "Z"),), ((1, "X"),), ((2, "Y"), (3, "Z")), ((0, "X"), (3, "X")))
U1, U2, U3 = random_unitary(2, 1), random_unitary(4, 2), random_unitary(8, 3)
#: MultiRZ on 1 to 4 wires (unordered, non-adjacent) and QubitUnitary on 1 to 3 wires between rotations
OPS = [
    ("H", (0,), None, None), ("H", (2,), None, None),
    ("RY", (1,), 0, None), ("RX", (3,), 1, None),
    ("MultiRZ", (3, 0, 2), 2, None),
    ("QubitUnitary", (2, 0), None, U2),
    ("RY", (0,), 3, None),
    ("MultiRZ", (1,), 4, None),
    ("QubitUnitary", (1,), None, U1),
    ("MultiRZ", (0, 1, 2, 3), 5, None),
    ("QubitUnitary", (3, 1, 0), None, U3),
    ("RX", (2,), 6, None),
    ("MultiRZ", (2, 1), 7, None),
]  # fmt: skip
ROWS = torch.tensor(np.random.default_rng(5).uniform(-math.pi, math.pi, (3, 8)), dtype=torch.float64)


def circuit() -> Circuit:
    return Circuit(4, hqf_ops(OPS), [PauliWord(word) for word in WORDS])


@pytest.mark.parametrize("backend", [TorchBackend(), ReferenceBackend()], ids=["torch", "reference"])
def test_values_match_an_independent_numpy_state_vector(backend):
    want = np.stack([numpy_values(4, OPS, WORDS, row) for row in ROWS.numpy()])
    got = hqf.expval(backend, circuit(), ROWS)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["pennylane", "qiskit-aer"])
def test_adapters_run_both_natively_with_the_same_values(name):
    pytest.importorskip({"pennylane": "pennylane", "qiskit-aer": "qiskit_aer"}[name])
    backend = hqf.make_backend(name)
    assert "QubitUnitary" in backend.capabilities.gates
    want = np.stack([numpy_values(4, OPS, WORDS, row) for row in ROWS.numpy()])
    np.testing.assert_allclose(backend.expval(circuit(), ROWS).numpy(), want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("pl_device", ["default.qubit", "lightning.qubit"])
def test_the_pennylane_adapters_adjoint_keeps_a_fixed_unitary_out_of_the_trainable_parameters(pl_device):
    pytest.importorskip("pennylane_lightning" if pl_device == "lightning.qubit" else "pennylane")
    backend = hqf.make_backend("pennylane", pl_device=pl_device)
    cotangent = torch.linspace(-1, 1, 3 * len(WORDS), dtype=torch.float64).reshape(3, -1)
    leaf = ROWS.clone().requires_grad_()
    (ReferenceBackend().expval(circuit(), leaf) * cotangent).sum().backward()
    torch.testing.assert_close(backend.vjp(circuit(), ROWS, cotangent), leaf.grad, atol=1e-10, rtol=0)


def pennylane_values(qml, row):
    """The same circuit written in PennyLane, on ``default.qubit`` (torch interface)."""
    dev = qml.device("default.qubit", wires=4)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def run(angles):
        for name, wires, column, matrix in OPS:
            if name == "QubitUnitary":
                qml.QubitUnitary(matrix, wires=list(wires))
            elif name == "MultiRZ":
                qml.MultiRZ(angles[column], wires=list(wires))
            else:
                gate = getattr(qml, {"H": "Hadamard"}.get(name, name))
                gate(*([] if column is None else [angles[column]]), wires=list(wires))
        return [qml.expval(qml.prod(*(getattr(qml, p)(w) for w, p in word))) for word in WORDS]

    return torch.stack(run(row))


@pytest.mark.parametrize("gradient", ["backprop", "adjoint", "parameter-shift"])
def test_gradients_of_the_other_gates_angles_match_default_qubit(gradient):
    qml = pytest.importorskip("pennylane")
    cotangent = torch.tensor([0.3, -1.0, 0.7, 0.2], dtype=torch.float64)
    want = []
    for row in ROWS:
        leaf = row.clone().requires_grad_()
        (pennylane_values(qml, leaf) @ cotangent).backward()
        want.append(leaf.grad)
    angles = ROWS.clone().requires_grad_()
    (hqf.expval(TorchBackend(), circuit(), angles, gradient=gradient) @ cotangent).sum().backward()
    torch.testing.assert_close(angles.grad, torch.stack(want), atol=1e-10, rtol=0)


def test_multirz_is_cnots_and_one_rz_so_the_plan_and_fast_paths_run_it():
    strict = Circuit(3, [Operation("RY", 0, 0), Operation("MultiRZ", (0, 1, 2), 1)], [PauliWord.z(2)])
    assert [op.gate for op in strict.operations] == ["RY", "CNOT", "CNOT", "RZ", "CNOT", "CNOT"]
    assert strict.column_gates == ("RY", "RZ") and strict.gate_names <= BASE_GATES and fits(strict)
    backend = TorchBackend()
    angles = torch.tensor([[0.4, 1.1]], dtype=torch.float64)
    backend.expval(strict, angles)
    assert backend.last_path != "plain"


def test_a_multirz_angle_may_be_shared_or_fixed():
    row = np.array([0.9, -0.4])
    head = [Operation("RY", 0, 0), Operation("RX", 2, 1)]
    shared = UserCircuit(3, [*head, Operation("MultiRZ", (2, 0), 0)], [hqf.X(0)])
    fixed = UserCircuit(3, [*head, Operation("MultiRZ", (2, 0), angle=0.3)], [hqf.X(0)])
    ops = [("RY", (0,), 0, None), ("RX", (2,), 1, None), ("MultiRZ", (2, 0), 0, None)]
    x0 = [((0, "X"),)]
    got = hqf.expval(TorchBackend(), shared, torch.tensor(row)).numpy().ravel()
    np.testing.assert_allclose(got, numpy_values(3, ops, x0, row), atol=1e-12)
    fixed_ops = [*ops[:2], ("MultiRZ", (2, 0), 2, None)]
    got = hqf.expval(TorchBackend(), fixed, torch.tensor(row)).numpy().ravel()
    np.testing.assert_allclose(got, numpy_values(3, fixed_ops, x0, np.append(row, 0.3)), atol=1e-12)
    # the shared column's gradient sums both gates' (the shift rule): against central differences of numpy
    angles = torch.tensor(row).requires_grad_()
    hqf.expval(TorchBackend(), shared, angles, gradient="parameter-shift").sum().backward()
    step = np.array([1e-6, 0])
    slope = (numpy_values(3, ops, x0, row + step) - numpy_values(3, ops, x0, row - step)) / 2e-6
    assert angles.grad[0].item() == pytest.approx(slope[0], abs=1e-8)


def test_a_user_circuit_keeps_a_qubit_unitary_between_gates_sharing_a_column():
    ops = [("RY", (0,), 0, None), ("QubitUnitary", (1, 0), None, U2), ("RY", (1,), 0, None), ("RX", (0,), 1, None)]
    user = UserCircuit(2, hqf_ops(ops), [hqf.Z(0) @ hqf.X(1) + 0.25])
    row = np.array([0.7, -1.3])
    want = numpy_values(2, ops, [((0, "Z"), (1, "X"))], row) + 0.25
    np.testing.assert_allclose(hqf.expval(TorchBackend(), user, torch.tensor(row)).numpy(), want, atol=1e-12)


def test_adjoint_of_a_qubit_unitary_is_its_dagger():
    ops = [Operation("H", 0), Operation("QubitUnitary", (0, 1), matrix=U2)]
    state = hqf.state(TorchBackend(), Circuit(2, [*ops, *adjoint(ops[1:])], [PauliWord.z(0)]), torch.zeros(1, 0))
    np.testing.assert_allclose(state.numpy().ravel(), [2**-0.5, 0, 2**-0.5, 0], atol=1e-12)


class BaseOnly(Backend):
    """A backend that declares the base gates only and must never be asked to run anything."""

    name = "base-only"
    capabilities = Capabilities(gates=BASE_GATES)

    def expval(self, circuit, angles):
        raise AssertionError("ran a circuit it does not declare")


def test_a_backend_that_does_not_declare_qubit_unitary_refuses_in_one_line():
    unitary = Circuit(1, [Operation("QubitUnitary", 0, matrix=U1)], [PauliWord.z(0)])
    with pytest.raises(
        UnsupportedCircuitError, match=r"^backend 'base-only' does not support gate 'QubitUnitary'"
    ) as e:
        hqf.expval(BaseOnly(), unitary, torch.zeros(1, 0))
    assert "\n" not in str(e.value)
    multi = Circuit(3, [Operation("MultiRZ", (0, 1, 2), 0)], [PauliWord.z(0)])
    assert multi.gate_names <= BASE_GATES  # MultiRZ needs nothing a backend must declare


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(gate="QubitUnitary", wires=0, matrix=[[1, 0], [0, 2]]),
            r"must be unitary to 1e-10; got max \|U†U − 1\| = 3$",
        ),
        (dict(gate="QubitUnitary", wires=0, matrix=[[1, 0, 0]]), r"square and 2, 4 or 8 wide .*; got shape \(1, 3\)$"),
        (dict(gate="QubitUnitary", wires=range(4), matrix=np.eye(16)), r"got shape \(16, 16\)$"),
        (dict(gate="QubitUnitary", wires=0, matrix="abc"), r"square array of numbers; got 'abc'$"),
        (
            dict(gate="QubitUnitary", wires=(0, 1), matrix=np.eye(2)),
            r"of a 2x2 matrix acts on 1 wire\(s\); got \(0, 1\)$",
        ),
        (dict(gate="QubitUnitary", wires=0), r"needs its matrix: Operation\('QubitUnitary', wires, matrix=U\)$"),
        (dict(gate="QubitUnitary", wires=0, matrix=[[1, 0], [0, np.nan]]), r"must be finite"),
        (dict(gate="RX", wires=0, param=0, matrix=np.eye(2)), r"^RX takes no matrix \(only QubitUnitary does\)$"),
        (
            dict(gate="QubitUnitary", wires=0, param=0, matrix=np.eye(2)),
            r"^QubitUnitary takes no parameter; got column 0$",
        ),
        (dict(gate="MultiRZ", wires=(), param=0), r"^MultiRZ acts on 1 wire\(s\); got wires \(\)$"),
        (dict(gate="MultiRZ", wires=(0, 0), param=0), r"^MultiRZ needs distinct wires; got \(0, 0\)$"),
        (dict(gate="MultiRZ", wires=(0, 1)), r"^MultiRZ needs a parameter column >= 0"),
        (dict(gate="MultiRy", wires=(0, 1), param=0), r"^unknown gate 'MultiRy'; did you mean 'MultiRZ'\?"),
    ],
)
def test_mistakes_are_one_line_errors_naming_what_was_given(kwargs, message):
    gate, wires = kwargs.pop("gate"), kwargs.pop("wires")
    with pytest.raises(InvalidCircuitError, match=message) as e:
        Operation(gate, wires, **kwargs)
    assert "\n" not in str(e.value)


def test_operation_names_and_hashing():
    op = Operation("qubitunitary", (1, 0), matrix=U2)
    assert op.gate == "QubitUnitary" and op == Operation("QubitUnitary", (1, 0), matrix=U2.tolist())
    same = Circuit(2, [Operation("QubitUnitary", (1, 0), matrix=U2)], [hqf.Z(0)])
    assert hash(Circuit(2, [op], [hqf.Z(0)])) == hash(same)
    assert Operation("multirz", (0, 1), 0).gate == "MultiRZ"


def test_the_pennylane_device_runs_both_and_keeps_qubit_unitary_whole():
    qml = pytest.importorskip("pennylane")
    dev = qml.device("hqf.torch", wires=4)
    program = dev.preprocess_transforms()

    def body(angles):
        qml.Hadamard(0)
        qml.RY(angles[0], wires=1)
        qml.MultiRZ(angles[1], wires=[3, 0, 2])
        qml.QubitUnitary(U2, wires=[2, 0])
        qml.QubitUnitary(U3, wires=[3, 1, 0])
        qml.RX(angles[2], wires=2)
        return [qml.expval(qml.Z(0)), qml.expval(qml.X(1) @ qml.Y(2))]

    tape = qml.tape.make_qscript(body)(torch.tensor([0.3, -0.8, 1.2]))
    (processed,), _ = program((tape,))
    names = [op.name for op in processed.operations]
    assert names.count("QubitUnitary") == 2 and "MultiRZ" in names
    for method in ("backprop", "adjoint"):
        got_dev, want_dev = (qml.device(name, wires=4) for name in ("hqf.torch", "default.qubit"))
        results = []
        for device in (got_dev, want_dev):
            angles = torch.tensor([0.3, -0.8, 1.2], dtype=torch.float64, requires_grad=True)
            values = torch.stack(qml.QNode(body, device, interface="torch", diff_method=method)(angles))
            (values @ torch.tensor([1.0, -0.5], dtype=torch.float64)).backward()
            results.append((values.detach(), angles.grad))
        torch.testing.assert_close(results[0][0], results[1][0], atol=1e-12, rtol=0)
        torch.testing.assert_close(results[0][1], results[1][1], atol=1e-12, rtol=0)


def test_the_pennylane_device_decomposes_a_trainable_or_wide_qubit_unitary():
    qml = pytest.importorskip("pennylane")
    from hqf.backends.pennylane_device.device import supported

    assert supported(qml.QubitUnitary(U1, wires=0))
    assert not supported(qml.QubitUnitary(torch.tensor(U1, requires_grad=True), wires=0))
    assert not supported(qml.QubitUnitary(random_unitary(16, 4), wires=range(4)))


class TransposedUnitary(TorchBackend):
    """The torch backend with a wrong QubitUnitary: the transpose of its matrix."""

    name = "transposed-unitary"

    def expval(self, circuit, angles):
        operations = [
            attrs.evolve(op, matrix=op.unitary.T) if op.matrix is not None else op for op in circuit.operations
        ]
        return super().expval(attrs.evolve(circuit, operations=operations), angles)


def test_the_conformance_strategies_draw_qubit_unitaries_on_one_to_three_wires_where_declared():
    seen: set[int] = set()

    @settings(max_examples=40, database=None, derandomize=True, deadline=None)
    @given(circuits(max_qubits=4, max_ops=12, gates={"RY", "CNOT", "QubitUnitary"}))
    def draw(circuit):
        assert circuit.gate_names <= {"RY", "CNOT", "QubitUnitary"}
        seen.update(len(op.wires) for op in circuit.operations if op.gate == "QubitUnitary")

    draw()
    assert seen == {1, 2, 3}


@pytest.mark.slow
def test_the_conformance_suite_catches_a_wrong_qubit_unitary():
    assert check_property(TorchBackend, "expval", hypothesis_settings=default_settings(25)).status == "pass"
    wrong = check_property(TransposedUnitary, "expval", hypothesis_settings=default_settings(25))
    assert wrong.status == "fail" and "QubitUnitary" in wrong.circuit
