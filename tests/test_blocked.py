"""The cache-blocked CPU path (13–24 qubits): values and gradients in float64 against an independent
tensor simulator and against the plan path, with tiles small enough to cut a circuit into many passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hqf.backends.torch import TorchBackend
from hqf.backends.torch.blocked import BlockedProgram, program
from hqf.quantum.circuit import Circuit, Operation, PauliWord, compose
from hqf.quantum.gradients import expval
from hqf.registry.make import make_ansatz
from hqf.studies.peers import QulacsLayer

TOL = 1e-10


def _matrix(gate: str, theta: torch.Tensor | None) -> torch.Tensor:
    """A gate's matrix written out (one row's angle), independent of hqf's gate tables."""
    if gate in ("RX", "RY", "RZ"):
        c, s = torch.cos(theta / 2).to(torch.complex128), torch.sin(theta / 2).to(torch.complex128)
        rows = {
            "RX": [[c, -1j * s], [-1j * s, c]],
            "RY": [[c, -s], [s, c]],
            "RZ": [[c - 1j * s, 0 * c], [0 * c, c + 1j * s]],
        }[gate]
        return torch.stack([torch.stack(row) for row in rows])
    if gate == "H":
        return torch.tensor([[1, 1], [1, -1]], dtype=torch.complex128) / math.sqrt(2)
    if gate == "X":
        return torch.tensor([[0, 1], [1, 0]], dtype=torch.complex128)
    flip = torch.tensor([[0, 1], [1, 0]] if gate == "CNOT" else [[1, 0], [0, -1]], dtype=torch.complex128)
    out = torch.eye(4, dtype=torch.complex128)
    out[2:, 2:] = flip
    return out.reshape(2, 2, 2, 2)


def tensor_expval(circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` Z-word values by contracting each gate into a ``[2]*n`` state (wire ``w`` is axis ``w``),
    differentiable by torch autograd."""
    n, rows = circuit.n_qubits, []
    for row in angles:
        state = torch.zeros([2] * n, dtype=torch.complex128)
        state[(0,) * n] = 1
        for op in circuit.operations:
            m = _matrix(op.gate, None if op.param is None else row[op.param])
            k = len(op.wires)
            state = torch.tensordot(m, state, dims=(list(range(k, 2 * k)), list(op.wires)))
            state = torch.movedim(state, list(range(k)), list(op.wires))
        probs = state.abs() ** 2
        values = []
        for word in circuit.observables:
            signs = torch.ones([2] * n, dtype=torch.float64)
            for w in word.wires:
                shape = [1] * n
                shape[w] = 2
                signs = signs * torch.tensor([1.0, -1.0], dtype=torch.float64).reshape(shape)
            values.append((probs * signs).sum())
        rows.append(torch.stack(values))
    return torch.stack(rows)


def mixed_circuit(n: int, seed: int, leading_run: bool = True) -> Circuit:
    """A leading rotation run (or none: a CZ first), then layers of every gate the path runs, CNOTs
    and CZs both ways and across the whole register, and Z words on one wire, on both halves and on
    neighbours."""
    rng = np.random.default_rng(seed)
    ops = (
        [Operation("RY", w, w) for w in range(n)] + [Operation("RX", 0, n)]
        if leading_run
        else [Operation("CZ", (0, n - 1))]
    )
    column = len(ops) if leading_run else 0
    for _ in range(3):
        for w in rng.permutation(n):
            gate = str(rng.choice(["RX", "RY", "RZ", "H", "X", "RZ"]))
            if gate.startswith("R"):
                ops.append(Operation(gate, int(w), column))
                column += 1
            else:
                ops.append(Operation(gate, int(w)))
        for _ in range(n):
            a, b = (int(v) for v in rng.choice(n, 2, replace=False))
            ops.append(Operation(str(rng.choice(["CNOT", "CNOT", "CZ"])), (a, b)))
    words = [
        PauliWord.z(0),
        PauliWord.z(n - 1),
        PauliWord.parse(f"Z1 Z{n - 2}"),
        PauliWord.parse("Z2 Z3"),
        PauliWord.parse(f"Z{n // 2} Z{n - 3}"),
    ]
    return Circuit(n, ops, words)


def hea_circuit(n: int, layers: int) -> Circuit:
    """RY data encoding, then ``hea{n}x{layers}``, ⟨Z⟩ on every wire (what ``hqf bench`` runs)."""
    ansatz = make_ansatz(f"hea{n}x{layers}")
    return compose(n, [[Operation("RY", q, q) for q in range(n)], ansatz.operations()])


@pytest.mark.parametrize("tile_qubits, leading_run", [(9, True), (13, True), (9, False)])
def test_values_and_gradients_equal_an_independent_tensor_simulator(tile_qubits, leading_run):
    circuit = mixed_circuit(13, seed=3, leading_run=leading_run)
    generator = torch.Generator().manual_seed(0)
    angles = torch.rand(2, circuit.n_params, generator=generator, dtype=torch.float64) * 2 * math.pi
    grad_output = torch.randn(2, circuit.n_outputs, generator=generator, dtype=torch.float64)
    blocked = BlockedProgram(circuit, tile_qubits)
    assert blocked.passes.count > (1 if tile_qubits < 13 else 0)
    leaf = angles.clone().requires_grad_()
    reference = tensor_expval(circuit, leaf)
    (reference_grad,) = torch.autograd.grad(reference, leaf, grad_output)
    values, final = blocked.values(angles.numpy(), 1, keep=True)
    np.testing.assert_allclose(values, reference.detach().numpy(), atol=TOL)
    for kept in (final, None):  # from the kept final states, and recomputed
        np.testing.assert_allclose(
            blocked.vjp(angles.numpy(), grad_output.numpy(), 2, kept), reference_grad.numpy(), atol=TOL
        )


def test_every_pass_keeps_the_lowest_bits_and_fits_its_tile():
    circuit = hea_circuit(16, 3)
    passes = BlockedProgram(circuit, 10).passes
    for wires in passes.wire_sets:
        assert len(wires) == 10 and {10, 11, 12, 13, 14, 15} <= wires
    kinds = passes.kernel_arguments[5][:, 0]
    assert len(kinds) < len(circuit.operations)  # CNOT runs and RZ groups are one op each


@pytest.mark.parametrize("n", [13, 14])
def test_backend_runs_broadcast_weights_blocked_with_the_plan_paths_values_and_gradients(n):
    circuit = hea_circuit(n, 2)
    generator = torch.Generator().manual_seed(n)
    x = torch.rand(3, n, generator=generator, dtype=torch.float64) * math.pi
    weights = torch.rand(circuit.n_params - n, generator=generator, dtype=torch.float64) * 2 * math.pi
    results = []
    for backend in (
        TorchBackend(),
        TorchBackend(checkpoint_mib=0),
        TorchBackend(fused=False),
    ):  # kept, recomputed, plan
        xs, ws = x.clone().requires_grad_(), weights.clone().requires_grad_()
        out = expval(backend, circuit, xs, shared=ws)
        (out * torch.arange(1.0, n + 1, dtype=torch.float64)).sum().backward()
        results.append((backend.last_path, out.detach(), xs.grad, ws.grad))
    assert [path for path, *_ in results] == ["blocked", "blocked", "plan"]
    for _, *fast in results[:2]:
        for a, b in zip(fast, results[2][1:]):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_adjoint_gradient_and_no_grad_values_go_blocked():
    circuit = hea_circuit(13, 1)
    generator = torch.Generator().manual_seed(1)
    angles = torch.rand(2, circuit.n_params, generator=generator, dtype=torch.float64) * math.pi
    backend, plan = TorchBackend(), TorchBackend(fused=False)
    with torch.no_grad():
        torch.testing.assert_close(backend.expval(circuit, angles), plan.expval(circuit, angles), atol=TOL, rtol=0)
    assert backend.last_path == "blocked"
    grads = []
    for b in (backend, plan):
        leaf = angles.clone().requires_grad_()
        expval(b, circuit, leaf, gradient="adjoint").sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=TOL, rtol=0)


def test_double_backward_goes_through_the_plan():
    circuit = hea_circuit(13, 1)
    angles = torch.rand(1, circuit.n_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    hessian_rows = []
    for backend in (TorchBackend(), TorchBackend(fused=False)):
        leaf = angles.clone().requires_grad_()
        (grad,) = torch.autograd.grad(backend.expval(circuit, leaf).sum(), leaf, create_graph=True)
        (second,) = torch.autograd.grad(grad[0, 0], leaf)
        hessian_rows.append(second)
    torch.testing.assert_close(hessian_rows[0], hessian_rows[1], atol=TOL, rtol=0)


def test_other_read_outs_and_sizes_keep_their_paths():
    x_word = Circuit(13, [Operation("RY", w, w) for w in range(13)], [PauliWord.parse("X0")])
    assert program(x_word) is None
    assert program(hea_circuit(12, 1)) is None and program(hea_circuit(13, 1)) is not None


def test_sixteen_qubits_equal_the_plan_path():
    circuit = hea_circuit(16, 3)
    generator = torch.Generator().manual_seed(16)
    x = torch.rand(2, 16, generator=generator, dtype=torch.float64) * math.pi
    weights = torch.rand(circuit.n_params - 16, generator=generator, dtype=torch.float64) * 2 * math.pi
    results = []
    for backend in (TorchBackend(), TorchBackend(fused=False)):
        xs, ws = x.clone().requires_grad_(), weights.clone().requires_grad_()
        out = expval(backend, circuit, xs, shared=ws)
        out.sum().backward()
        results.append((out.detach(), xs.grad, ws.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_the_qulacs_peer_runs_the_same_circuit():
    pytest.importorskip("qulacs")  # optional (hqf[peers]): the peer that `hqf bench --peers` times at 20 qubits
    circuit = mixed_circuit(7, seed=4)
    generator = torch.Generator().manual_seed(5)
    x = torch.rand(3, 7, generator=generator, dtype=torch.float64) * math.pi
    weights = torch.rand(circuit.n_params - 7, generator=generator, dtype=torch.float64) * 2 * math.pi
    want = tensor_expval(circuit, torch.cat([x, weights.expand(3, -1)], 1))
    torch.testing.assert_close(QulacsLayer(circuit, 7, weights)(x), want, atol=TOL, rtol=0)
