import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hqf.backends.torch import TorchBackend
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from reference import reference_expval
from strategies import angle_batches, circuits


@given(data=st.data())
def test_matches_dense_reference_complex128(data):
    circuit = data.draw(circuits(max_qubits=8))
    angles = data.draw(angle_batches(circuit))
    got = TorchBackend().expval(circuit, torch.from_numpy(angles)).numpy()
    want = reference_expval(circuit, angles)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-10, circuit.diagram()


@given(data=st.data())
def test_matches_dense_reference_complex64(data):
    circuit = data.draw(circuits(max_qubits=6))
    angles = data.draw(angle_batches(circuit))
    got = TorchBackend(dtype="complex64").expval(circuit, torch.from_numpy(angles)).numpy()
    assert got.dtype == np.float32
    assert np.max(np.abs(got - reference_expval(circuit, angles))) <= 1e-5, circuit.diagram()


def test_wire_zero_is_most_significant_and_answer_is_asymmetric():
    # X on wire 0 of 3 qubits: |100>, basis index 4. <Z0> = -1, <Z1> = <Z2> = +1.
    c = Circuit(3, [Operation("X", 0)], [PauliWord.z(q) for q in range(3)])
    backend = TorchBackend()
    state = backend.apply(backend.initial_state(3, 1), 3, c.operations[0], torch.zeros(1, 0))
    assert torch.argmax(state.abs()).item() == 4
    assert backend.expval(c, torch.zeros(1, 0)).tolist() == [[-1.0, 1.0, 1.0]]


def test_closed_forms_for_single_rotations():
    theta = torch.linspace(-3, 3, 7, dtype=torch.float64).reshape(-1, 1)
    backend = TorchBackend()
    for gate, word, expected in [
        ("RY", "Z0", torch.cos(theta)),
        ("RX", "Z0", torch.cos(theta)),
        ("RY", "X0", torch.sin(theta)),
        ("RX", "Y0", -torch.sin(theta)),
    ]:
        c = Circuit(1, [Operation(gate, 0, 0)], [PauliWord.parse(word)])
        torch.testing.assert_close(backend.expval(c, theta), expected, atol=1e-12, rtol=0)


def test_sixteen_qubit_ghz_like_chain():
    n = 16
    ops = [Operation("RY", 0, 0)] + [Operation("CNOT", (q, q + 1)) for q in range(n - 1)]
    obs = [PauliWord.z(n - 1), PauliWord(((0, "Z"), (n - 1, "Z")))]
    theta = torch.tensor([[0.3], [1.1]], dtype=torch.float64)
    got = TorchBackend().expval(Circuit(n, ops, obs), theta)
    torch.testing.assert_close(got[:, 0], torch.cos(theta[:, 0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(got[:, 1], torch.ones(2, dtype=torch.float64), atol=1e-12, rtol=0)


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="dtype"):
        TorchBackend(dtype="float16")
    with pytest.raises(ValueError, match="runs on"):
        TorchBackend(device="mps")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    c = Circuit(3, [Operation("RY", 0, 0), Operation("CNOT", (0, 2)), Operation("RX", 1, 1)], [PauliWord.parse("Z0 Z2"), PauliWord.parse("Y1")])
    angles = torch.rand(5, 2, dtype=torch.float64) * math.tau
    cpu = TorchBackend().expval(c, angles)
    gpu = TorchBackend(device="cuda").expval(c, angles.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-12, rtol=0)
