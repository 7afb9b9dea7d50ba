import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_expval
from strategies import angle_batches, circuits

from hqf.backends.torch import TorchBackend, parallel
from hqf.backends.torch.backend import FUSED_OVER_FROZEN_ROWS, choose_path
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.studies.bench import Workload


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
    c = Circuit(
        3,
        [Operation("RY", 0, 0), Operation("CNOT", (0, 2)), Operation("RX", 1, 1)],
        [PauliWord.parse("Z0 Z2"), PauliWord.parse("Y1")],
    )
    angles = torch.rand(5, 2, dtype=torch.float64) * math.tau
    cpu = TorchBackend().expval(c, angles)
    gpu = TorchBackend(device="cuda").expval(c, angles.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-12, rtol=0)


# -- which path runs a call, and on how many threads (hqf.backends.torch.backend.choose_path, .parallel) --


def _asked_never() -> bool:
    raise AssertionError("frozen_ready asked off its line")


@pytest.mark.parametrize(
    ("blocked", "fused", "gradient", "rows", "frozen", "want"),
    [
        (True, True, True, 1, False, "blocked"),
        (True, False, False, 100, True, "blocked"),
        (False, True, True, 1, True, "fused"),
        (False, False, True, 100, True, "plan"),
        (False, True, False, FUSED_OVER_FROZEN_ROWS, True, "fused"),
        (False, True, False, FUSED_OVER_FROZEN_ROWS - 1, True, "frozen"),
        (False, True, False, FUSED_OVER_FROZEN_ROWS - 1, False, "fused"),
        (False, False, False, 1000, True, "frozen"),
        (False, False, False, 1000, False, "plan"),
    ],
)
def test_choose_path_reads_its_table_from_the_top(blocked, fused, gradient, rows, frozen, want):
    asked = []

    def frozen_ready() -> bool:
        asked.append(True)
        return frozen

    assert choose_path(blocked, fused, gradient, rows, frozen_ready) == want
    # the frozen-weight matrix is looked up (which remembers the weights) only on its own line
    assert bool(asked) == (not blocked and not gradient and not (fused and rows >= FUSED_OVER_FROZEN_ROWS))
    if asked:
        return
    assert choose_path(blocked, fused, gradient, rows, _asked_never) == want


def _broadcast_call(ansatz: str, batch: int):
    workload = Workload(ansatz, batch)
    x, weights = workload.inputs()
    return workload.circuit(), x, weights.reshape(-1)


class _CountingPool(parallel.Pool):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def run(self, calls):
        self.calls += 1
        return super().run(calls)


def test_set_threads_goes_to_the_kernels_through_the_settings(monkeypatch):
    pool = _CountingPool()
    monkeypatch.setattr(parallel, "POOL", pool)
    circuit, x, flat = _broadcast_call("hea8x6", 256)  # large enough for the pool
    backend = TorchBackend()
    backend.set_threads(1)
    assert backend.settings.threads == 1 and backend.threads == 1
    one = backend.expval_broadcast(circuit, x, flat)
    assert backend.last_path == "fused" and pool.calls == 0
    backend.set_threads(2)
    two = backend.expval_broadcast(circuit, x, flat)
    assert backend.settings.threads == 2 and pool.calls == 1
    assert torch.equal(one, two)  # the same tiles, only their split differs


def test_a_small_call_stays_on_the_calling_thread(monkeypatch):
    pool = _CountingPool()
    monkeypatch.setattr(parallel, "POOL", pool)
    circuit, x, flat = _broadcast_call("hea4x2", 24)  # three tiles of 8 rows, 384 amplitudes
    backend = TorchBackend()
    backend.set_threads(2)
    threads = torch.get_num_threads()
    seen, set_num_threads = [], torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(n) or set_num_threads(n))
    backend.expval_broadcast(circuit, x.requires_grad_(), flat.requires_grad_()).sum().backward()
    assert backend.last_path == "fused" and pool.calls == 0  # two parts, both on the calling thread
    assert torch.get_num_threads() == threads  # restored after every call
    if threads > 1:  # torch's operators ran on one thread, then got their count back
        assert seen and set(seen) == {1, threads}


@pytest.mark.parametrize("n_items", [0, 1, 5, 17])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_in_parallel_gives_the_same_parts_inline_and_on_the_pool(n_items, threads):
    parts = parallel.ranges(n_items, threads)
    assert parts[0][0] == 0 and parts[-1][1] == n_items and len(parts) == max(1, min(threads, n_items))
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    small, large = parallel.SERIAL_UPDATES - 1, parallel.SERIAL_UPDATES
    assert parallel.in_parallel(lambda a, b: (a, b), n_items, threads, small) == parts
    assert parallel.in_parallel(lambda a, b: (a, b), n_items, threads, large) == parts


def test_state_is_the_dense_reference_state_and_differentiable():
    from reference import gate_unitary

    ops = [
        Operation("H", 0),
        Operation("RY", 1, 0),
        Operation("CRX", (0, 2), 1),
        Operation("RZZ", (1, 2), 2),
        Operation("T", 2),
        Operation("CNOT", (2, 0)),
    ]
    circuit = Circuit(3, ops, [PauliWord.parse("Z0 X2")])
    angles = torch.tensor([[0.3, -1.1, 0.7], [2.2, 0.4, -0.9]], dtype=torch.float64, requires_grad=True)
    backend = TorchBackend()
    states = backend.state(circuit, angles)
    for row, got in zip(angles.detach().numpy(), states.detach().numpy(), strict=True):
        psi = np.zeros(8, dtype=complex)
        psi[0] = 1
        for op in ops:
            psi = gate_unitary(3, op.gate, op.wires, None if op.param is None else row[op.param]) @ psi
        np.testing.assert_allclose(got, psi, atol=1e-12)
    z0x2 = torch.kron(
        torch.kron(torch.diag(torch.tensor([1.0, -1.0])), torch.eye(2)), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    )
    from_state = torch.einsum("bi,ij,bj->b", states.conj(), z0x2.to(states.dtype), states).real
    (grad_state,) = torch.autograd.grad(from_state.sum(), angles)
    values = backend.expval(circuit, angles)[:, 0]
    (grad_expval,) = torch.autograd.grad(values.sum(), angles)
    torch.testing.assert_close(from_state, values, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_state, grad_expval, rtol=0, atol=1e-12)
