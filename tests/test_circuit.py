import math
import re

import pytest

from hqf.errors import InvalidCircuitError
from hqf.quantum.circuit import GATES, Circuit, Hamiltonian, Operation, PauliWord, compose


def test_operation_validation_messages():
    with pytest.raises(InvalidCircuitError, match="needs a parameter column"):
        Operation("RX", 0)
    with pytest.raises(InvalidCircuitError, match="takes no parameter"):
        Operation("H", 0, 3)
    with pytest.raises(InvalidCircuitError, match="distinct wires"):
        Operation("CNOT", (1, 1))
    with pytest.raises(InvalidCircuitError, match="acts on 2 wire"):
        Operation("CZ", 0)
    with pytest.raises(InvalidCircuitError, match="unknown gate 'TOFOLI'"):
        Operation("TOFOLI", (0, 1, 2))


def test_circuit_checks_wires_and_columns():
    z0 = [PauliWord.z(0)]
    with pytest.raises(InvalidCircuitError, match="outside"):
        Circuit(2, [Operation("RX", 2, 0)], z0)
    with pytest.raises(InvalidCircuitError, match="exactly one gate"):
        Circuit(2, [Operation("RX", 0, 0), Operation("RY", 1, 0)], z0)
    with pytest.raises(InvalidCircuitError, match="exactly one gate"):
        Circuit(2, [Operation("RX", 0, 1)], z0)
    with pytest.raises(InvalidCircuitError, match="observable"):
        Circuit(2, [], [])
    with pytest.raises(ValueError, match="n_qubits"):
        Circuit(0, [], z0)


def test_circuit_is_hashable_value():
    a = Circuit(2, [Operation("RY", 0, 0), Operation("CNOT", (0, 1))], [PauliWord.z(1)])
    b = Circuit(2, (Operation("RY", 0, 0), Operation("CNOT", [0, 1])), (PauliWord.z(1),))
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a.n_params == 1 and a.n_outputs == 1
    assert "RY(θ0) q0" in a.diagram() and "<Z1>" in a.diagram()


def test_compose_renumbers_blocks_and_defaults_to_z_everywhere():
    enc = [Operation("RY", 0, 0), Operation("RY", 1, 1)]
    ans = [Operation("RZ", 1, 0), Operation("CNOT", (1, 0)), Operation("RX", 0, 1)]
    c = compose(2, [enc, ans])
    assert [op.param for op in c.operations] == [0, 1, 2, None, 3]
    assert c.observables == (PauliWord.z(0), PauliWord.z(1))


def test_pauli_word_parse_and_errors():
    w = PauliWord.parse("X3 z0")
    assert w.terms == ((0, "Z"), (3, "X")) and str(w) == "Z0 X3"
    with pytest.raises(InvalidCircuitError):
        PauliWord.parse("Q1")
    with pytest.raises(InvalidCircuitError):
        PauliWord.parse("Z0 X0")
    with pytest.raises(InvalidCircuitError):
        PauliWord.parse("")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("IsingZZ", "RZZ"), ("Hadamard", "H"), ("PauliY", "Y"), ("ControlledPhaseShift", "CPhase"), ("cx", "CNOT"),
     ("rz", "RZ"), ("toffoli", "Toffoli"), ("CCX", "Toffoli")],
)  # fmt: skip
def test_pennylane_and_qiskit_gate_names_are_aliases(given, canonical):
    n_wires, parameterized = GATES[canonical]
    op = Operation(given, tuple(range(n_wires)), 0 if parameterized else None)
    assert op.gate == canonical


@pytest.mark.parametrize(
    ("given", "suggestion"), [("IsingZX", "'IsingZZ'"), ("Hadamrd", "'Hadamard'"), ("CNOTT", "'CNOT'")]
)
def test_an_unknown_gate_is_one_line_with_the_closest_name(given, suggestion):
    with pytest.raises(InvalidCircuitError) as caught:
        Operation(given, 0)
    message = str(caught.value)
    assert f"unknown gate {given!r}; did you mean {suggestion}?" in message
    assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize(
    "build",
    [lambda: Hamiltonian([(1j, "Z0")]), lambda: Hamiltonian([("half", "Z0")]), lambda: PauliWord([("a", "Z")])],
    ids=["complex coefficient", "text coefficient", "text wire"],
)
def test_bad_observable_parts_are_circuit_errors(build):
    with pytest.raises(InvalidCircuitError):
        build()


def test_observables_written_as_operator_arithmetic():
    import torch

    from hqf.quantum.circuit import X, Y, Z
    from hqf.registry.make import make_backend

    h = 0.5 * Z(0) @ Z(1) + X(2) - 2 * (Y(1) @ X(0))
    assert h == Hamiltonian([(0.5, "Z0 Z1"), (1.0, "X2"), (-2.0, "X0 Y1")])
    assert Z(0) @ (X(1) + Y(2)) == Hamiltonian([(1.0, "Z0 X1"), (1.0, "Z0 Y2")])
    ops = [Operation("RY", 0, 0), Operation("RX", 1, 1), Operation("CNOT", (0, 1)), Operation("RY", 2, 2)]
    angles = torch.tensor([[0.3, -0.7, 1.1], [1.4, 0.2, -0.5]], dtype=torch.float64)
    backend = make_backend("torch")
    words = backend.expval(Circuit(3, ops, [PauliWord.parse("Z0 Z1"), X(2), PauliWord.parse("X0 Y1")]), angles)
    value = backend.expval(Circuit(3, ops, [h]), angles)
    torch.testing.assert_close(value[:, 0], 0.5 * words[:, 0] + words[:, 1] - 2 * words[:, 2], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda Z, X: Z(0) @ X(0), "needs distinct wires; both act on [0]"),
        (lambda Z, X: Circuit(1, [], [Z(0) + 1]), "has a constant (identity) term; hqf.UserCircuit takes"),
        (lambda Z, X: Z(0) @ X(1) + 1j, "must be a finite real number; got 1j"),
        (lambda Z, X: PauliWord.parse("I0 I1"), "at least one X, Y or Z factor"),
        (lambda Z, X: 1j * Z(0), "coefficient of Z0 must be a finite real number"),
    ],
    ids=["same wire", "constant in a strict circuit", "complex constant", "identity word", "complex"],
)
def test_operator_arithmetic_mistakes_are_one_line(build, message):
    from hqf.quantum.circuit import X, Z

    with pytest.raises(InvalidCircuitError, match=re.escape(message)):
        build(Z, X)


def test_identity_terms_are_a_hamiltonians_constant():
    from hqf.quantum.circuit import I, X, Z

    assert Z(0) + 1 == 1 + Z(0) == Hamiltonian([(1.0, "Z0")], constant=1.0)
    assert 1 - Z(0) == Hamiltonian([(-1.0, "Z0")], constant=1.0)
    assert Hamiltonian([(0.5, "I"), (1.0, "Z0"), (0.25, "I0 I3")]) == Hamiltonian([(1.0, "Z0")], constant=0.75)
    assert I(0) @ Z(1) == Z(1) @ I(0) == Hamiltonian([(1.0, "Z1")])
    assert PauliWord([(0, "I"), (2, "X")]) == X(2)
    product = (Z(0) + 1) @ (2 * X(1) + 3)
    assert product == Hamiltonian([(2.0, "Z0 X1"), (2.0, "X1"), (3.0, "Z0")], constant=3.0)
    assert -2 * (Z(0) - 0.5) == Hamiltonian([(-2.0, "Z0")], constant=1.0)
    assert str(Z(0) + 0.5) == "1·Z0 + 0.5" and str(0.5 * I(0)) == "0.5"


def test_a_backend_refuses_a_circuit_wider_than_it_runs_before_any_work():
    import torch

    import hqf
    from hqf.errors import UnsupportedCircuitError
    from hqf.registry.make import make_backend

    n = 40
    wide = Circuit(n, [Operation("RY", w, w) for w in range(n)], [PauliWord.z(0), PauliWord.z(n - 1)])
    angles = torch.full((2, n), 0.3, dtype=torch.float64)
    with pytest.raises(UnsupportedCircuitError, match="circuits of 40 qubits \\(it runs at most 26 qubits\\)"):
        hqf.expval(make_backend("torch"), wide, angles)
    values = hqf.expval(make_backend("torch-mps", chi=2), wide, angles)
    torch.testing.assert_close(values, torch.full((2, 2), math.cos(0.3), dtype=torch.float64))
