import numpy as np
import pytest
import torch
from reference import reference_expval

from hqf.backends.torch import TorchBackend
from hqf.plugins.ansatze.basic import BasicEntangler
from hqf.plugins.ansatze.sel import StronglyEntangling, layer_range
from hqf.quantum.circuit import PauliWord, compose
from hqf.quantum.gradients import expval
from hqf.registry.loader import registry
from hqf.registry.make import make_ansatz


def test_families_are_registered():
    assert {"hea", "basic", "sel"} <= set(registry().names("ansatz"))
    assert make_ansatz("basic4x3").spec == "basic4x3"
    assert make_ansatz("sel8x6").n_weights == 8 * 6 * 3


def _gates(ansatz):
    return [(op.gate, op.wires, op.param) for op in ansatz.operations()]


def test_basic_structure():
    assert BasicEntangler.shape(4, 3) == (3, 4)
    ops = _gates(BasicEntangler(3, 2))
    assert ops == [
        ("RX", (0,), 0), ("RX", (1,), 1), ("RX", (2,), 2),
        ("CNOT", (0, 1), None), ("CNOT", (1, 2), None), ("CNOT", (2, 0), None),
        ("RX", (0,), 3), ("RX", (1,), 4), ("RX", (2,), 5),
        ("CNOT", (0, 1), None), ("CNOT", (1, 2), None), ("CNOT", (2, 0), None),
    ]  # fmt: skip
    assert [g for g, _, _ in _gates(BasicEntangler(2, 1))] == ["RX", "RX", "CNOT"]
    assert [g for g, _, _ in _gates(BasicEntangler(1, 2))] == ["RX", "RX"]


def test_sel_structure():
    assert StronglyEntangling.shape(4, 3) == (3, 4, 3)
    assert [layer_range(layer, 4) for layer in range(5)] == [1, 2, 3, 1, 2]
    ops = _gates(StronglyEntangling(3, 2))
    assert ops[:3] == [("RZ", (0,), 0), ("RY", (0,), 1), ("RZ", (0,), 2)]
    cnots = [w for g, w, _ in ops if g == "CNOT"]
    assert cnots == [(0, 1), (1, 2), (2, 0), (0, 2), (1, 0), (2, 1)]
    assert sum(g != "CNOT" for g, _, _ in ops) == 18
    assert [g for g, _, _ in _gates(StronglyEntangling(1, 2))] == ["RZ", "RY", "RZ"] * 2


CASES = [(1, 2), (2, 2), (3, 3), (4, 4), (5, 2)]


@pytest.mark.parametrize("family", ["basic", "sel", "hea"])
@pytest.mark.parametrize("n_qubits,n_layers", [(2, 2), (4, 3)])
def test_torch_backend_agrees_with_the_reference_simulator(family, n_qubits, n_layers):
    ansatz = make_ansatz(f"{family}{n_qubits}x{n_layers}")
    weights = ansatz.init_weights(torch.Generator().manual_seed(5)).reshape(1, -1)
    circuit = compose(n_qubits, [ansatz.operations()])
    got = expval(TorchBackend(), circuit, weights).numpy()
    np.testing.assert_allclose(got, reference_expval(circuit, weights.numpy()), atol=1e-12)


def _hqf_expvals(ansatz, weights, observables=None):
    circuit = compose(ansatz.n_qubits, [ansatz.operations()], observables)
    return expval(TorchBackend(), circuit, torch.as_tensor(weights).reshape(1, -1))[0].numpy()


@pytest.mark.parametrize("n_qubits,n_layers", CASES)
def test_basic_matches_pennylane_basic_entangler_layers(n_qubits, n_layers):
    qml = pytest.importorskip("pennylane")
    weights = np.random.default_rng(11).uniform(0, 2 * np.pi, BasicEntangler.shape(n_qubits, n_layers))
    dev = qml.device("default.qubit", wires=n_qubits)

    @qml.qnode(dev)
    def circuit(w):
        qml.BasicEntanglerLayers(w, wires=range(n_qubits))
        return [qml.expval(qml.PauliZ(q)) for q in range(n_qubits)]

    expected = np.array(circuit(weights), dtype=float)
    got = _hqf_expvals(BasicEntangler(n_qubits, n_layers), weights)
    np.testing.assert_allclose(got, expected, atol=1e-10)


@pytest.mark.parametrize("n_qubits,n_layers", CASES)
def test_sel_matches_pennylane_strongly_entangling_layers(n_qubits, n_layers):
    qml = pytest.importorskip("pennylane")
    weights = np.random.default_rng(12).uniform(0, 2 * np.pi, StronglyEntangling.shape(n_qubits, n_layers))
    assert qml.StronglyEntanglingLayers.shape(n_layers, n_qubits) == weights.shape
    dev = qml.device("default.qubit", wires=n_qubits)

    @qml.qnode(dev)
    def circuit(w):
        qml.StronglyEntanglingLayers(w, wires=range(n_qubits))
        return [qml.expval(qml.PauliZ(q)) for q in range(n_qubits)] + [qml.expval(qml.PauliX(0))]

    expected = np.array(circuit(weights), dtype=float)
    observables = [PauliWord.z(q) for q in range(n_qubits)] + [PauliWord.parse("X0")]
    got = _hqf_expvals(StronglyEntangling(n_qubits, n_layers), weights, observables)
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_layer_operations_default_splits_equal_layers_and_refuses_unequal_ones():
    from hqf.quantum.circuit import Operation
    from hqf.quantum.interfaces import Ansatz

    class Uneven(Ansatz):
        name = "uneven"

        @staticmethod
        def shape(n_qubits, n_layers):
            return (n_layers + 1,)

        def operations(self):
            return (Operation("RX", 0, 0), Operation("RY", 0, 1), Operation("RZ", 0, 2))

    with pytest.raises(NotImplementedError, match=r"ansatz uneven1x2: 3 gates do not split into 2 equal layers"):
        Uneven(1, 2).layer_operations(0)
    sel = make_ansatz("sel3x2")
    assert sel.layer_operations(1) == sel.operations()[len(sel.operations()) // 2 :]
    assert [op.param for op in sel.layer_operations(1) if op.param is not None] == list(range(9, 18))
