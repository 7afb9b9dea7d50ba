"""Every gate and observable of the vocabulary on the PennyLane, Qiskit Aer, cuQuantum (CPU double) and
noiseless density-matrix adapters, against the shipped reference simulator: fixed cases (each gate on
chosen angles and on both wire orders, each observable kind on a generic state), the parameter-shift
gradient of every parametric gate (two- and four-term recipes) and the native gradients; and the clean
refusal of what a backend does not declare."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from test_backend_cuquantum import CpuDouble, FakeCuStateVec

from hqf.backends.cuquantum import binding as cuquantum_binding
from hqf.backends.readout import readout
from hqf.errors import UnsupportedCircuitError
from hqf.quantum.circuit import GATES, Circuit, Hamiltonian, Operation, PauliWord, Probs
from hqf.quantum.gradients import expval
from hqf.quantum.interfaces import Availability
from hqf.registry.make import make_backend
from hqf.testing import ReferenceBackend

N = 3
PREPARE = [
    Operation("RY", 0, 0),
    Operation("RY", 1, 1),
    Operation("RY", 2, 2),
    Operation("RX", 1, 3),
    Operation("CNOT", (0, 2)),
]
OBSERVABLES = [PauliWord(((w, p),)) for w in range(N) for p in "XYZ"] + [
    PauliWord.parse("Z0 X2"),
    Hamiltonian(((0.7, "Z0 Z1"), (-1.3, "X2"), (0.25, "Y0 Y1 Y2"))),
    Probs((2, 0)),
    Probs((0, 1, 2)),
]
ROWS = torch.tensor([[0.3, -1.1, 2.0, 0.7, 0.9], [2.4, 0.5, -0.6, -1.8, -2.2]], dtype=torch.float64)


def _wire_orders(n_wires: int) -> list[tuple[int, ...]]:
    return {1: [(0,), (2,)], 2: [(0, 2), (2, 0), (1, 0)], 3: [(0, 1, 2), (2, 0, 1), (1, 2, 0)]}[n_wires]


def _cases():
    for gate, (n_wires, parameterized) in sorted(GATES.items()):
        for wires in _wire_orders(n_wires):
            op = Operation(gate, wires, 4 if parameterized else None)
            columns = 5 if parameterized else 4
            yield gate, Circuit(N, [*PREPARE, op, Operation("H", 1)], OBSERVABLES), ROWS[:, :columns]


CASES = list(_cases())


def _double(batching: str):
    def build():
        binding = FakeCuStateVec()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(cuquantum_binding, "probe", lambda: Availability(True))
            mp.setattr(cuquantum_binding, "load_binding", lambda: binding)
            return CpuDouble(device="cpu", batching=batching, adjoint=True)

    return build


FACTORIES = {
    "pennylane": lambda: make_backend("pennylane"),
    "pennylane-lightning": lambda: make_backend("pennylane", pl_device="lightning.qubit"),
    "qiskit-aer": lambda: make_backend("qiskit-aer"),
    "qiskit-aer-density": lambda: make_backend("qiskit-aer", method="density_matrix"),
    "pennylane-mixed": lambda: make_backend("pennylane-mixed"),
    "qiskit-aer-dm": lambda: make_backend("qiskit-aer-dm"),
    "cuquantum-double-batched": _double("batched"),
    "cuquantum-double-loop": _double("loop"),
}


#: in the default run: one adapter per simulator and each new native-gradient path; the rest are slow
FAST = {"pennylane", "qiskit-aer", "qiskit-aer-dm", "pennylane-mixed", "cuquantum-double-batched"}
FAST_GRADIENTS = {"pennylane-lightning", "cuquantum-double-batched"}


def _params(fast: set[str]) -> list:
    return [pytest.param(name, marks=() if name in fast else pytest.mark.slow) for name in sorted(FACTORIES)]


@pytest.fixture(scope="module")
def backends():
    return {}


def _backend(backends: dict, name: str):
    if name not in backends:
        backends[name] = FACTORIES[name]()
    return backends[name]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_declares_the_whole_vocabulary(backends, name):
    backend = _backend(backends, name)
    assert backend.capabilities.gates - {"QubitUnitary"} == frozenset(GATES)  # QubitUnitary: where declared
    assert backend.capabilities.observables == frozenset({"pauli", "hamiltonian", "probs"})


@pytest.mark.parametrize("name", _params(FAST))
def test_every_gate_on_both_wire_orders_and_every_observable_match_the_reference(backends, name):
    backend, reference = _backend(backends, name), ReferenceBackend()
    for _gate, circuit, angles in CASES:
        got = backend.expval(circuit, angles)
        want = reference.expval(circuit, angles)
        assert got.shape == want.shape == (2, circuit.n_outputs)
        torch.testing.assert_close(got, want, atol=1e-9, rtol=0, msg=lambda m, c=circuit: f"{c.diagram()}\n{m}")


@pytest.mark.parametrize("name", _params(FAST_GRADIENTS))
def test_parametric_gates_shift_rule_and_native_gradients_match_the_reference(backends, name):
    backend, reference = _backend(backends, name), ReferenceBackend()
    cotangent = torch.linspace(-1, 1, CASES[0][1].n_outputs, dtype=torch.float64).expand(2, -1)
    methods = ["parameter-shift", *sorted(backend.capabilities.gradients)]
    for gate, circuit, angles in CASES:
        if not GATES[gate][1]:
            continue
        a = angles.clone().requires_grad_()
        (reference.expval(circuit, a) * cotangent).sum().backward()
        for method in methods:
            b = angles.clone().requires_grad_()
            (expval(backend, circuit, b, gradient=method) * cotangent).sum().backward()
            label = f"{gate} {method}"
            torch.testing.assert_close(b.grad, a.grad, atol=1e-8, rtol=0, msg=lambda m, label=label: f"{label}: {m}")


def test_readout_expresses_probabilities_and_hamiltonians_through_pauli_words():
    circuit = Circuit(2, [Operation("RY", 0, 0)], [Probs((1, 0)), Hamiltonian(((2.0, "Z0"), (0.5, "Z0")))])
    out = readout(circuit)
    assert out.words == (PauliWord.z(1), PauliWord.z(0), PauliWord.parse("Z0 Z1"))
    # outcome b = (bit of wire 1, bit of wire 0): P(b) = (1 + s1 <Z1> + s0 <Z0> + s1 s0 <Z0 Z1>) / 4
    signs = np.array([[s1, s0, s1 * s0] for s1, s0 in itertools.product((1, -1), repeat=2)])
    np.testing.assert_allclose(out.matrix[:4], signs / 4)
    np.testing.assert_allclose(out.offset, [0.25] * 4 + [0.0])
    np.testing.assert_allclose(out.matrix[4], [0.0, 2.5, 0.0])  # equal words merge
    assert not out.identity and readout(Circuit(1, [], [PauliWord.z(0)])).identity


def test_a_backend_that_declares_the_base_set_is_refused_cleanly(monkeypatch):
    import attrs

    backend = make_backend("qiskit-aer")
    backend.capabilities = attrs.evolve(backend.capabilities, gates={"RX", "CNOT"}, observables={"pauli"})
    circuit = Circuit(2, [Operation("CRX", (0, 1), 0)], [PauliWord.z(1)])
    with pytest.raises(UnsupportedCircuitError, match="'qiskit-aer' does not support gate 'CRX'"):
        expval(backend, circuit, torch.zeros(1, 1, dtype=torch.float64))
    with pytest.raises(UnsupportedCircuitError, match="'qiskit-aer' does not support"):
        backend.expval(Circuit(2, [], [Probs((0,))]), torch.zeros(1, 0, dtype=torch.float64))


def test_qiskit_shots_give_observed_frequencies_and_hamiltonians_within_their_bound():
    shots = 4000
    backend = make_backend("qiskit-aer", shots=shots, seed=11)
    assert backend.capabilities.exact is False
    _, circuit, angles = next(case for case in CASES if case[0] == "CRY")
    got = backend.expval(circuit, angles).numpy()
    want = ReferenceBackend().expval(circuit, angles).numpy()
    probs = slice(circuit.n_outputs - 12, circuit.n_outputs)  # probs(q2,q0) then probs(q0,q1,q2)
    counts = got[:, probs] * shots
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)  # frequencies of whole shots
    np.testing.assert_allclose(got[:, probs][:, :4].sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(got[:, probs][:, 4:].sum(axis=1), 1.0, atol=1e-12)
    p = want[:, probs]
    assert np.all(np.abs(got[:, probs] - p) <= 5 * np.sqrt(p * (1 - p) / shots) + 1e-12)
    hamiltonian = OBSERVABLES.index(next(o for o in OBSERVABLES if isinstance(o, Hamiltonian)))
    bound = 5 * (0.7 + 1.3 + 0.25) / np.sqrt(shots)
    assert np.all(np.abs(got[:, hamiltonian] - want[:, hamiltonian]) <= bound)


def test_qiskit_shot_probabilities_come_from_one_set_of_shots():
    # a Bell state: outcomes 01 and 10 never occur; Z0 would otherwise be measured with Y1, apart from Z1
    circuit = Circuit(2, [Operation("H", 0), Operation("CNOT", (0, 1))], [PauliWord.parse("Z0 Y1"), Probs((1, 0))])
    got = make_backend("qiskit-aer", shots=500, seed=3).expval(circuit, torch.zeros(3, 0, dtype=torch.float64))
    probabilities = got[:, 1:].numpy()
    np.testing.assert_array_equal(probabilities[:, [1, 2]], 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.abs(probabilities[:, 0] - 0.5) < 0.15)
