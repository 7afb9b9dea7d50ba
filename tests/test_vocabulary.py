"""The circuit vocabulary: every gate's matrix against an independent definition, every gate on the torch
backends against the reference, the declared-subset refusal, and the fixed conformance cases that catch
a CZ-ignoring or control-swapping backend whatever the example count."""

import importlib.util
import itertools
import math
import pathlib

import attrs
import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import settings
from reference import FIXED, P0, P1, PAULI, embed, gate_unitary, reference_expval

from hqf.backends.density_torch import TorchDensityMatrixBackend
from hqf.backends.torch import TorchBackend
from hqf.errors import HqfError, InvalidCircuitError, UnsupportedCircuitError
from hqf.quantum import gates
from hqf.quantum.circuit import BASE_GATES, GATES, Circuit, Hamiltonian, Operation, PauliWord, Probs, rot, u3
from hqf.quantum.gradients import expval
from hqf.quantum.interfaces import Backend, Capabilities
from hqf.testing import Limits, ReferenceBackend, check_backend, check_property

ANGLES = (0.0, 0.3, -1.7, math.pi, 5.1)
PARAMETRIC = sorted(g for g, (_, p) in GATES.items() if p)
EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "hqf-numpy-backend" / "hqf_numpy_backend.py"


def _independent(gate: str, theta: float | None) -> np.ndarray:
    """The gate over its own wires, from tests/reference.py's textbook definitions."""
    arity = GATES[gate][0]
    return gate_unitary(arity, gate, tuple(range(arity)), theta)


# -- the gate maths -------------------------------------------------------------------------------------
@pytest.mark.parametrize("gate", sorted(GATES))
def test_every_gate_matrix_equals_its_independent_definition(gate):
    for theta in ANGLES if GATES[gate][1] else (None,):
        want = _independent(gate, theta)
        np.testing.assert_allclose(gates.matrix(gate, theta), want, atol=1e-15, rtol=0, err_msg=gate)
        batch = None if theta is None else torch.tensor([theta, theta], dtype=torch.float64)
        got = gates.gate_matrices(gate, batch, 2, torch.complex128, "cpu")
        assert got.shape == (2, *want.shape)
        np.testing.assert_allclose(got[1].numpy(), want, atol=1e-15, rtol=0, err_msg=gate)


@pytest.mark.parametrize("gate", PARAMETRIC)
def test_generators_give_the_matrices_and_the_declared_recipe(gate):
    for theta in ANGLES:
        np.testing.assert_allclose(
            scipy.linalg.expm(-1j * theta * gates.GENERATORS[gate]), _independent(gate, theta), atol=1e-13
        )
    four = gate.startswith("CR")
    assert len(gates.SHIFT_RULES[gate]) == (4 if four else 2)
    assert gates.frequencies(gate) == ((0.5, 1.0) if four else (1.0,))


def test_fixed_gates_by_name():
    np.testing.assert_allclose(gates.matrix("SX") @ gates.matrix("SX"), PAULI["X"], atol=1e-15)
    np.testing.assert_allclose(gates.matrix("S"), np.diag([1, 1j]))
    np.testing.assert_allclose(gates.matrix("T") @ gates.matrix("T"), gates.matrix("S"), atol=1e-15)
    assert set(FIXED) == set(gates.FIXED_1Q)
    # wires[0] is the control: CNOT on (0, 1) flips wire 1 where wire 0 is 1
    np.testing.assert_array_equal(gates.matrix("CNOT"), np.kron(P0, np.eye(2)) + np.kron(P1, PAULI["X"]))


def test_rot_and_u3_are_products_of_one_parameter_gates():
    phi, theta, omega = 0.4, -1.1, 2.2
    rz = lambda a: gates.matrix("RZ", a)  # noqa: E731
    ry = lambda a: gates.matrix("RY", a)  # noqa: E731
    rot_circuit = Circuit(1, rot(0, (0, 1, 2)), [PauliWord.z(0)])
    assert [op.gate for op in rot_circuit.operations] == ["RZ", "RY", "RZ"]
    assert [op.param for op in rot_circuit.operations] == [0, 1, 2]
    # applied in order RZ(φ), RY(θ), RZ(ω): the matrix RZ(ω) RY(θ) RZ(φ)
    state = ReferenceBackend().state(rot_circuit, torch.tensor([phi, theta, omega], dtype=torch.float64))
    np.testing.assert_allclose(state.numpy(), (rz(omega) @ ry(theta) @ rz(phi))[:, 0], atol=1e-15)
    # U3(θ, φ, λ) as Qiskit writes it, up to the global phase e^{i(φ+λ)/2}
    lam = 0.9
    qiskit_u3 = np.array(
        [
            [math.cos(theta / 2), -np.exp(1j * lam) * math.sin(theta / 2)],
            [np.exp(1j * phi) * math.sin(theta / 2), np.exp(1j * (phi + lam)) * math.cos(theta / 2)],
        ]
    )
    u3_circuit = Circuit(1, u3(0, (0, 1, 2)), [PauliWord.z(0)])
    state = ReferenceBackend().state(u3_circuit, torch.tensor([theta, phi, lam], dtype=torch.float64))
    np.testing.assert_allclose(np.exp(1j * (phi + lam) / 2) * state.numpy(), qiskit_u3[:, 0], atol=1e-15)


# -- every backend of this package on every gate and wire order ----------------------------------------
def _generic(n_qubits: int) -> tuple[list[Operation], list[float]]:
    ops, angles = [], []
    for w in range(n_qubits):
        ops += [Operation("RY", w, len(angles)), Operation("RZ", w, len(angles) + 1)]
        angles += [0.8 + 0.3 * w, -0.5 + 0.7 * w]
    return ops, angles


def _gate_circuits():
    for gate, (arity, parameterized) in GATES.items():
        for wires in itertools.permutations(range(3), arity):
            prep, angles = _generic(3)
            op = Operation(gate, wires, len(angles) if parameterized else None)
            observables = [
                PauliWord(((a, p), (b, q))) for a, b in [(0, 1), (1, 2), (0, 2)] for p in "XYZ" for q in "XYZ"
            ]
            yield (
                Circuit(3, prep + [op], observables + [PauliWord.z(w) for w in range(3)]),
                angles + [1.3] * parameterized,
            )


@pytest.mark.parametrize("make", [TorchBackend, lambda: TorchBackend(dtype="complex64"), TorchDensityMatrixBackend])
def test_torch_backends_run_every_gate_on_every_wire_order(make):
    backend = make()
    atol = 1e-12 if backend.dtype == "complex128" else 1e-5
    for circuit, row in _gate_circuits():
        angles = torch.tensor([row], dtype=torch.float64)
        want = reference_expval(circuit, angles.numpy())
        got = backend.expval(circuit, angles.to(backend.real_dtype))
        np.testing.assert_allclose(got.double().numpy(), want, atol=atol, rtol=0, err_msg=circuit.diagram())


def _kraus_depolarize(rho: np.ndarray, n: int, wire: int, p: float) -> np.ndarray:
    out = (1 - p) * rho
    for pauli in PAULI.values():
        k = embed(n, (wire,), pauli)
        out = out + p / 3 * k @ rho @ k.conj().T
    return out


def test_density_matrix_noise_follows_every_new_gate_on_each_of_its_wires():
    p = 0.07
    prep, angles = _generic(3)
    ops = prep + [
        Operation("CRY", (2, 0), 6),
        Operation("Toffoli", (1, 2, 0)),
        Operation("SX", 1),
        Operation("CPhase", (0, 1), 7),
    ]
    circuit = Circuit(3, ops, [PauliWord.parse("X0 Y1"), Hamiltonian([(0.5, "Z2"), (-2, "X0 X2")]), Probs((2, 0))])
    row = angles + [0.9, -2.0]
    rho = np.zeros((8, 8), dtype=complex)
    rho[0, 0] = 1
    for op in ops:
        theta = None if op.param is None else row[op.param]
        u = gate_unitary(3, op.gate, op.wires, theta)
        rho = u @ rho @ u.conj().T
        for w in op.wires:
            rho = _kraus_depolarize(rho, 3, w, p)
    x0y1 = np.kron(np.kron(PAULI["X"], PAULI["Y"]), np.eye(2))
    ham = 0.5 * embed(3, (2,), PAULI["Z"]) - 2 * embed(3, (0, 2), np.kron(PAULI["X"], PAULI["X"]))
    diag = np.real(np.diag(rho)).reshape(2, 2, 2)
    want = [np.trace(x0y1 @ rho).real, np.trace(ham @ rho).real] + list(diag.sum(axis=1).T.reshape(-1))
    got = TorchDensityMatrixBackend(depolarizing=p).expval(circuit, torch.tensor([row], dtype=torch.float64))
    np.testing.assert_allclose(got[0].numpy(), want, atol=1e-12)


def test_torch_runs_the_plan_for_the_original_gates_and_plain_for_the_rest():
    backend = TorchBackend()
    base = Circuit(2, [Operation("RY", 0, 0), Operation("CNOT", (0, 1))], [PauliWord.z(1)])
    backend.expval(base, torch.zeros(1, 1, dtype=torch.float64))
    assert backend.last_path == "plan"
    wider = Circuit(2, [Operation("RY", 0, 0), Operation("CRX", (0, 1), 1)], [PauliWord.z(1)])
    angles = torch.tensor([[0.3, 1.2]], dtype=torch.float64, requires_grad=True)
    out = backend.expval(wider, angles)
    assert backend.last_path == "plain"
    (grad,) = torch.autograd.grad(out.sum(), angles)
    torch.testing.assert_close(grad, ReferenceBackend().jacobian(wider, angles.detach()).sum(1), atol=1e-12, rtol=0)
    vjp = backend.vjp(wider, angles.detach(), torch.ones(1, 1, dtype=torch.float64))
    torch.testing.assert_close(vjp, grad, atol=1e-12, rtol=0)
    probs = Circuit(2, [Operation("RY", 0, 0)], [Probs((0,))])
    backend.expval(probs, torch.zeros(1, 1, dtype=torch.float64))
    assert backend.last_path == "plain"


# -- a backend declaring a subset ---------------------------------------------------------------------------
class _Minimal(Backend):
    """Declares nothing: the default vocabulary (the original seven gates, Pauli words)."""

    name = "minimal"

    def expval(self, circuit, angles):  # never reached for refused circuits
        raise AssertionError("a refused circuit must not reach expval")


def test_default_declaration_is_the_original_vocabulary():
    caps = Capabilities()
    assert caps.gates == BASE_GATES == {"RX", "RY", "RZ", "H", "X", "CNOT", "CZ"}
    assert caps.observables == {"pauli"}


@pytest.mark.parametrize(
    "circuit, message",
    [
        (
            Circuit(2, [Operation("CRX", (0, 1), 0)], [PauliWord.z(0)]),
            "backend 'minimal' does not support gate 'CRX' (it supports: CNOT, CZ, H, RX, RY, RZ, X)",
        ),
        (
            Circuit(1, [Operation("RX", 0, 0)], [Probs((0,))]),
            "backend 'minimal' does not support observable 'probs' (it supports: pauli)",
        ),
        (
            Circuit(1, [Operation("RX", 0, 0)], [Hamiltonian([(1.0, "Z0")])]),
            "backend 'minimal' does not support observable 'hamiltonian' (it supports: pauli)",
        ),
    ],
)
def test_a_backend_is_refused_what_it_does_not_declare_before_any_work(circuit, message):
    with pytest.raises(UnsupportedCircuitError) as info:
        expval(_Minimal(), circuit, torch.zeros(1, circuit.n_params, dtype=torch.float64))
    assert str(info.value) == message and isinstance(info.value, HqfError) and isinstance(info.value, ValueError)


def _numpy_example():
    spec = importlib.util.spec_from_file_location("hqf_numpy_backend_under_test", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Backend) and v is not Backend)


def test_the_unchanged_numpy_example_is_checked_on_the_original_gates_only():
    numpy_backend = _numpy_example()
    assert numpy_backend.capabilities.gates == BASE_GATES
    results = check_backend(numpy_backend, examples=5, seed=0, properties=["expval", "shift-gradient"])
    assert [r.status for r in results] == ["pass", "pass"], [r.report() for r in results]
    assert all(r.fixed_cases > 0 for r in results)
    with pytest.raises(UnsupportedCircuitError, match="gate 'SWAP'"):
        expval(numpy_backend(), Circuit(2, [Operation("SWAP", (0, 1))], [PauliWord.z(0)]), torch.zeros(1, 0))


# -- the fixed cases catch what few random examples miss --------------------------------------------------
class IgnoresCZ(ReferenceBackend):
    """Wrong on purpose: runs CZ as the identity."""

    name = "ignores-cz"

    def expval(self, circuit, angles):
        kept = [op for op in circuit.operations if op.gate != "CZ"]
        return super().expval(Circuit(circuit.n_qubits, kept, circuit.observables), angles)


class SwapsControls(ReferenceBackend):
    """Wrong on purpose: runs CRY with control and target exchanged."""

    name = "swaps-controls"

    def expval(self, circuit, angles):
        ops = [attrs.evolve(op, wires=op.wires[::-1]) if op.gate == "CRY" else op for op in circuit.operations]
        return super().expval(Circuit(circuit.n_qubits, ops, circuit.observables), angles)


@pytest.mark.parametrize("double, gate", [(IgnoresCZ, "CZ"), (SwapsControls, "CRY")])
def test_fixed_cases_catch_a_wrong_gate_whatever_the_example_count(double, gate):
    result = check_property(double, "expval", seed=0, limits=Limits(max_qubits=3, shrink_seconds=2))
    assert result.status == "fail", result.report()
    # and with a single Hypothesis example, which alone would rarely see the gate
    one = check_property(double, "expval", hypothesis_settings=settings(max_examples=1, database=None, deadline=None))
    assert one.status == "fail" and gate in one.report() and "fixed case" in one.report(), one.report()
    assert "backend:" in one.report() and "reference:" in one.report()


def test_operation_refuses_wrong_wire_counts_for_new_gates():
    with pytest.raises(InvalidCircuitError, match="Toffoli acts on 3 wire"):
        Operation("Toffoli", (0, 1))
    with pytest.raises(InvalidCircuitError, match="needs a parameter column"):
        Operation("CRZ", (0, 1))


def test_capabilities_refuse_unknown_gate_and_observable_names():
    with pytest.raises(ValueError, match=r"'gates' must name gates .* \(got \['CRXX'\]\)"):
        Capabilities(gates={"RX", "CRXX"})
    with pytest.raises(ValueError, match=r"'observables' must be among .* \(got \['density'\]\)"):
        Capabilities(observables={"pauli", "density"})
