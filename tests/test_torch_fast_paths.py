"""Every fast path of the torch backend against its plain gate-by-gate path (and the dense reference).

Which path ran a call is read from the backend's one diagnostic, ``backend.last_path``."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_expval
from strategies import circuits as any_circuits
from strategies import encoded

from hqf.backends.torch import TorchBackend, adjoint, fused, steps
from hqf.backends.torch.backend import FUSED_OVER_FROZEN_ROWS
from hqf.backends.torch.plan import Chain, PermutationStep, ProductStep, RotationStep, compile_plan, lower
from hqf.quantum.circuit import BASE_GATES, Circuit, Operation, PauliWord, compose
from hqf.quantum.gates import full_angles, shifted_rows
from hqf.quantum.gradients import default_gradient, expval, shift_jacobian
from hqf.quantum.layer import QuantumLayer
from hqf.registry.contracts import RegularizerInputs
from hqf.registry.make import make_ansatz, make_encoder, make_regularizer


def circuits(**kwargs):
    """Circuits of the gates the plan and its fast paths cover (others run gate by gate: tests/test_vocabulary.py)."""
    return any_circuits(gates=BASE_GATES, **kwargs)


def _angles(circuit, batch, seed, shared_fraction=0.5):
    """Random angles where about ``shared_fraction`` of the columns are equal in every row (like weights)."""
    gen = torch.Generator().manual_seed(seed)
    angles = (torch.rand(batch, circuit.n_params, generator=gen, dtype=torch.float64) - 0.5) * 4 * math.pi
    shared = torch.rand(circuit.n_params, generator=gen) < shared_fraction
    angles[:, shared] = angles[:1, shared]
    return angles


def _hea(n_qubits, n_layers):
    encoding = [Operation("RY", q, q) for q in range(n_qubits)]
    return compose(n_qubits, [encoding, make_ansatz(f"hea{n_qubits}x{n_layers}").operations()])


@given(circuit=circuits(max_qubits=7), batch=st.integers(1, 5), seed=st.integers(0, 2**16), block=st.integers(1, 5))
def test_plan_forward_equals_plain_path(circuit, batch, seed, block):
    angles = _angles(circuit, batch, seed)
    backend = TorchBackend(block=block, chunk=2)
    got, want = backend.expval(circuit, angles), backend.expval_plain(circuit, angles)
    assert torch.max(torch.abs(got - want)).item() <= 1e-10, circuit.diagram()


@given(
    circuit=circuits(max_qubits=6).filter(lambda c: c.n_params >= 1),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_adjoint_vjp_equals_autograd_of_plain_path(circuit, batch, seed):
    angles = _angles(circuit, batch, seed)
    cotangent = torch.randn(
        batch, circuit.n_outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    backend = TorchBackend(block=1 + seed % 4)
    leaf = angles.clone().requires_grad_()
    (want,) = torch.autograd.grad((backend.expval_plain(circuit, leaf) * cotangent).sum(), leaf, allow_unused=True)
    want = torch.zeros_like(angles) if want is None else want
    got = backend.vjp(circuit, angles, cotangent)
    assert torch.max(torch.abs(got - want)).item() <= 1e-10, circuit.diagram()


@given(circuit=circuits(max_qubits=6), batch=st.integers(1, 4), seed=st.integers(0, 2**16), chunk=st.integers(1, 9))
def test_paired_shifted_values_equal_the_shifted_circuits(circuit, batch, seed, chunk):
    # one propagated state per column gives both ±π/2 values: against running every shifted row plainly
    angles = _angles(circuit, batch, seed)
    backend = TorchBackend(chunk=chunk)
    got = backend.expval_shifted(circuit, angles)
    assert got.shape == (2, circuit.n_params, batch, circuit.n_outputs)
    if circuit.n_params:
        want = backend.expval_plain(circuit, shifted_rows(angles)).reshape(got.shape)
        assert torch.max(torch.abs(got - want)).item() <= 1e-10, circuit.diagram()


def test_shifted_product_state_columns_come_from_one_run_per_wire_and_stay_exact():
    # a batch larger than the chunk: the product state's columns (encoding and first layer) are
    # shifted by linearity from one extra run per wire; every value against the plain shifted circuits
    circuit = _hea(4, 2)
    angles = _angles(circuit, 5, seed=3, shared_fraction=0.0)
    angles[:, 4:] = angles[:1, 4:]
    backend = TorchBackend(chunk=2, fused=False)  # the torch path (the fused one: tests/test_shift_fused.py)
    got = backend.expval_shifted(circuit, angles)
    want = backend.expval_plain(circuit, shifted_rows(angles)).reshape(got.shape)
    assert torch.max(torch.abs(got - want)).item() <= 1e-10
    assert len(compile_plan(circuit, backend.settings.block).product_columns) == 12  # RY(x), RY, RZ on 4 wires


@pytest.mark.parametrize("checkpoint_mib", [0, 256])  # undo the circuit on the state, or keep checkpoints
@given(circuit=circuits(max_qubits=6).filter(lambda c: c.n_params >= 1), seed=st.integers(0, 2**16))
def test_autograd_backward_equals_plain_path(checkpoint_mib, circuit, seed):
    angles = _angles(circuit, 3, seed)
    cotangent = torch.randn(3, circuit.n_outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    backend = TorchBackend(checkpoint_mib=checkpoint_mib)
    grads = []
    for run in (backend.expval, backend.expval_plain):
        leaf = angles.clone().requires_grad_()
        out = run(circuit, leaf)
        (g,) = torch.autograd.grad((out * cotangent).sum(), leaf, allow_unused=True)
        grads.append(torch.zeros_like(angles) if g is None else g)
    assert torch.max(torch.abs(grads[0] - grads[1])).item() <= 1e-10, circuit.diagram()


def test_per_row_jacobian_is_exact_when_every_row_is_equal():
    # equal rows take the shared-matrix path; the Jacobian must still be per row (not summed into row 0)
    circuit = _hea(3, 2)
    angles = _angles(circuit, 4, seed=3, shared_fraction=1.0)
    backend = TorchBackend()
    fast = torch.autograd.functional.jacobian(lambda a: backend.expval(circuit, a), angles)
    plain = torch.autograd.functional.jacobian(lambda a: backend.expval_plain(circuit, a), angles)
    assert torch.max(torch.abs(fast - plain)).item() <= 1e-12


def test_default_gradient_supports_double_backward():
    # the curvature regularizer differentiates the gradient again: Hessian of a scalar of expval under
    # the default gradient (auto → backprop) against the shift rule applied twice
    circuit = _hea(3, 2)
    backend = TorchBackend()
    angles = _angles(circuit, 2, seed=5)
    weights = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)

    def loss(method):
        return lambda a: (expval(backend, circuit, a, gradient=method) ** 2 * weights).sum()

    auto = torch.autograd.functional.hessian(loss("auto"), angles)
    shift = torch.autograd.functional.hessian(loss("parameter-shift"), angles)
    assert auto.abs().max() > 0.1
    assert torch.max(torch.abs(auto - shift)).item() <= 1e-10


def test_quantum_layer_curvature_term_runs_vectorized():
    # double backward with vmap over the probes (the curvature regularizer's vectorize=True)
    torch.manual_seed(0)
    layer = QuantumLayer(
        make_encoder("angle", 5, 3), make_ansatz("hea3x2"), TorchBackend(), generator=torch.Generator().manual_seed(0)
    )
    x = torch.randn(4, 5, dtype=torch.float64)
    out = layer(x)
    loss = out.square().sum()
    params = tuple(p for p in layer.parameters())
    inputs = RegularizerInputs(out, out, loss, params)
    values = [make_regularizer("curvature", probes=3, seed=1, vectorize=v).penalty(inputs) for v in (False, True)]
    assert torch.isfinite(values[0]) and values[0] > 0
    assert torch.allclose(values[0], values[1], atol=1e-10, rtol=0)


def test_adjoint_gradient_through_the_core_equals_backprop():
    circuit = _hea(4, 3)
    backend = TorchBackend()
    assert default_gradient_is_backprop(backend)
    grads = {}
    for method in ("backprop", "adjoint"):
        x = torch.rand(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
        w = torch.rand(
            circuit.n_params - 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
        ).requires_grad_()
        out = expval(backend, circuit, torch.cat([x, w.expand(5, -1)], dim=1), gradient=method)
        grads[method] = torch.autograd.grad(out[:, ::2].sum() - out[:, 1].sum(), [x, w])
    for a, b in zip(grads["backprop"], grads["adjoint"]):
        assert torch.max(torch.abs(a - b)).item() <= 1e-10


def default_gradient_is_backprop(backend):
    return default_gradient(backend) == "backprop" and "adjoint" in backend.capabilities.gradients


@given(circuit=circuits(max_qubits=6), seed=st.integers(0, 2**16))
def test_complex64_plan_matches_reference(circuit, seed):
    angles = _angles(circuit, 3, seed)
    got = TorchBackend(dtype="complex64").expval(circuit, angles)
    assert got.dtype == torch.float32
    assert np.max(np.abs(got.numpy() - reference_expval(circuit, angles.numpy()))) <= 1e-5, circuit.diagram()


def test_plan_of_hea_is_product_state_then_one_permutation_and_one_run_per_layer():
    plan = compile_plan(_hea(8, 6))
    kinds = [type(step) for step in plan.steps]
    # encoding + first layer's rotations are one product state; the last CNOT ring is absorbed by the Z read-out
    assert kinds == [ProductStep] + [PermutationStep, RotationStep] * 5
    assert all(step.blocks == ((0, 4), (4, 4)) for step in plan.steps if isinstance(step, RotationStep))


def test_final_permutation_is_kept_for_non_diagonal_observables():
    circuit = Circuit(2, [Operation("RY", 0, 0), Operation("CNOT", (0, 1))], [PauliWord.parse("X1")])
    assert isinstance(compile_plan(circuit).steps[-1], PermutationStep)
    angles = torch.tensor([[0.3], [1.2]], dtype=torch.float64)
    backend = TorchBackend()
    torch.testing.assert_close(
        backend.expval(circuit, angles), backend.expval_plain(circuit, angles), atol=1e-12, rtol=0
    )


def test_a_subclass_that_changes_expval_gets_the_generic_shift_and_broadcast():
    # the plan's own shift and broadcast paths are declared per class (plan_values): a subclass that
    # changes the values is shifted and broadcast through its own expval unless it declares otherwise
    class Doubled(TorchBackend):
        def expval(self, circuit, angles):
            return 2 * super().expval(circuit, angles)

    class Declared(TorchBackend):
        plan_values = True

    assert TorchBackend.plan_values and not Doubled.plan_values and Declared.plan_values
    circuit = _hea(3, 1)
    angles = _angles(circuit, 2, seed=4)
    backend, plain = Doubled(), TorchBackend()
    shifted = backend.expval_shifted(circuit, angles)
    want = 2 * plain.expval_plain(circuit, shifted_rows(angles)).reshape(shifted.shape)
    assert torch.max(torch.abs(shifted - want)).item() <= 1e-10
    broadcast = backend.expval_broadcast(circuit, angles[:, :3], angles[0, 3:])
    assert (
        torch.max(
            torch.abs(broadcast - 2 * plain.expval_plain(circuit, full_angles(angles[:, :3], angles[0, 3:])))
        ).item()
        <= 1e-10
    )


def test_rejects_bad_plan_options():
    with pytest.raises(ValueError, match="'block' must be >= 1"):
        TorchBackend(block=0)
    with pytest.raises(ValueError, match="'chunk' must be >= 1"):
        TorchBackend(chunk=0)


@given(circuit=circuits(max_qubits=6).filter(lambda c: c.n_params > 0), seed=st.integers(0, 2**16))
def test_cache_sized_passes_equal_plain_path(circuit, seed):
    # a cache budget below one row: forward, autograd backward and vjp all run row by row
    angles = _angles(circuit, 3, seed)
    cotangent = torch.randn(3, circuit.n_outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    backend = TorchBackend(cache_mib=1e-6)
    leaf = angles.clone().requires_grad_()
    out = backend.expval(circuit, leaf)
    (got,) = torch.autograd.grad((out * cotangent).sum(), leaf, allow_unused=True)
    leaf = angles.clone().requires_grad_()
    (want,) = torch.autograd.grad((backend.expval_plain(circuit, leaf) * cotangent).sum(), leaf, allow_unused=True)
    if want is None:
        assert got is None or got.abs().max() == 0
    else:
        assert torch.max(torch.abs(got - want)).item() <= 1e-10, circuit.diagram()
        assert torch.max(torch.abs(backend.vjp(circuit, angles, cotangent) - want)).item() <= 1e-10
    assert torch.max(torch.abs(out.detach() - backend.expval_plain(circuit, angles))).item() <= 1e-10


def test_frozen_weights_use_the_cached_unitary_and_stay_exact():
    circuit = _hea(4, 3)
    backend = TorchBackend()
    x = torch.rand(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = torch.rand(circuit.n_params - 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        for row in range(6):  # batch 1, same weights: the frozen-weight matrix is built on the second call
            angles = torch.cat([x[row : row + 1], w[None]], dim=1)
            got = backend.expval(circuit, angles)
            assert backend.last_path == ("plan" if row == 0 else "frozen")
            assert torch.max(torch.abs(got - backend.expval_plain(circuit, angles))).item() <= 1e-12
        w2 = w + 0.1  # new weights: no stale unitary
        angles = torch.cat([x[:1], w2[None]], dim=1)
        got = backend.expval(circuit, angles)
        assert backend.last_path == "plan"
        assert torch.max(torch.abs(got - backend.expval_plain(circuit, angles))).item() <= 1e-12
    # tables first built under inference mode still work with autograd afterwards
    leaf = torch.cat([x, w.expand(6, -1)], dim=1).requires_grad_()
    backend.expval(circuit, leaf).sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


@given(circuit=circuits(max_qubits=6), batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_frozen_weight_matrix_equals_plain_path(circuit, batch, seed):
    # every angle but the data read first on each wire is equal in every row: after two sightings the
    # circuit runs as one real matrix product per row (its observables made Z words: the path's condition)
    words = tuple(PauliWord.z(q) for q in range(circuit.n_qubits)) + (
        PauliWord.parse(" ".join(f"Z{q}" for q in range(circuit.n_qubits))),
    )
    circuit = Circuit(circuit.n_qubits, circuit.operations, words)
    backend = TorchBackend()
    angles = _angles(circuit, batch, seed, shared_fraction=0.0)
    frozen = list(compile_plan(circuit).frozen_columns)  # every column but the data read first on each wire
    angles[:, frozen] = angles[:1, frozen]
    want = backend.expval_plain(circuit, angles)
    with torch.no_grad():
        for _ in range(3):
            assert torch.max(torch.abs(backend.expval(circuit, angles) - want)).item() <= 1e-10, circuit.diagram()
    assert backend.last_path == "frozen"


@given(circuit=circuits(max_qubits=6), batch=st.integers(1, 3), seed=st.integers(0, 2**16), split=st.integers(0, 40))
def test_frozen_broadcast_weights_equal_plain_path(circuit, batch, seed, split):
    # shared angles (the last S columns, broadcast over the rows): when they are exactly the frozen
    # columns, the frozen-weight matrix is keyed by them; otherwise the full matrix runs as usual
    words = tuple(PauliWord.z(q) for q in range(circuit.n_qubits))
    circuit = Circuit(circuit.n_qubits, circuit.operations, words)
    backend = TorchBackend()
    n_shared = circuit.n_params - min(split, circuit.n_params)
    full = _angles(circuit, batch, seed, shared_fraction=0.0)
    full[:, circuit.n_params - n_shared :] = full[:1, circuit.n_params - n_shared :]
    angles, shared = full[:, : circuit.n_params - n_shared], full[0, circuit.n_params - n_shared :]
    want = backend.expval_plain(circuit, full)
    with torch.no_grad():
        for _ in range(3):
            got = expval(backend, circuit, angles, shared=shared)
            assert torch.max(torch.abs(got - want)).item() <= 1e-10, circuit.diagram()
        keyed = compile_plan(circuit).frozen_start == circuit.n_params - n_shared and n_shared > 0
        if keyed:
            assert backend.last_path == "frozen"
        moved = shared + 0.25  # new weights: never a stale matrix
        want = backend.expval_plain(circuit, torch.cat([angles, moved.expand(batch, -1)], dim=1))
        assert torch.max(torch.abs(expval(backend, circuit, angles, shared=moved) - want)).item() <= 1e-10


def test_changing_broadcast_weights_never_build_the_frozen_matrix():
    # training: new weights on every call must not pay for the frozen-weight matrix (built only when
    # the same weights come twice in a row), and each call's values are exact
    circuit = _hea(4, 3)
    backend = TorchBackend()
    x = torch.rand(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for k in range(4):
            w = torch.full((circuit.n_params - 4,), 0.1 * k, dtype=torch.float64)
            got = expval(backend, circuit, x, shared=w)
            assert backend.last_path != "frozen"  # (the matrix is built only where it is used)
            assert (
                torch.max(torch.abs(got - backend.expval_plain(circuit, torch.cat([x, w.expand(5, -1)], 1)))).item()
                <= 1e-12
            )
        expval(backend, circuit, x, shared=w)
        assert backend.last_path == "frozen"


@given(circuit=circuits(max_qubits=5, max_ops=16).filter(lambda c: c.n_params >= 1), seed=st.integers(0, 2**16))
def test_prefix_reuse_across_passes_is_exact(circuit, seed):
    # the shift rule's chunks differ from the previous chunk in one or two columns: each pass resumes
    # from the previous pass's state where the angles allow (after a shared run whose gates changed on
    # at most two wires: from the state after it, updated wire by wire); compare with no reuse and the
    # plain path
    angles = _angles(circuit, 2, seed)
    reuse, fresh = TorchBackend(chunk=2), TorchBackend(chunk=2, prefix_mib=0)
    got = shift_jacobian(lambda a: reuse.expval(circuit, a), angles)
    want = shift_jacobian(lambda a: fresh.expval(circuit, a), angles)
    plain = shift_jacobian(lambda a: fresh.expval_plain(circuit, a), angles)
    assert torch.max(torch.abs(got - want)).item() <= 1e-12, circuit.diagram()
    assert torch.max(torch.abs(got - plain)).item() <= 1e-10, circuit.diagram()


def test_prefix_reuse_survives_in_place_changes_of_the_callers_buffer():
    circuit = _hea(3, 2)
    backend = TorchBackend()
    buffer = _angles(circuit, 4, seed=0)
    first = backend.expval(circuit, buffer)
    buffer[:, 9] += 0.5  # same tensor object, new values (RY on wire 0, second layer)
    second = backend.expval(circuit, buffer)
    assert not torch.allclose(first, second)
    assert torch.max(torch.abs(second - backend.expval_plain(circuit, buffer))).item() <= 1e-12


@pytest.mark.parametrize("cache_mib", [4, 1e-6])  # one recorded pass, or one row per pass (recomputed)
@given(
    circuit=circuits(max_qubits=6).filter(lambda c: c.n_params >= 1), seed=st.integers(0, 2**16), split=st.floats(0, 1)
)
def test_broadcast_weights_give_the_plain_gradients(
    cache_mib, circuit, seed, split
):  # (the torch kernels: fused=False)
    # expval(..., shared=w): the shared columns' gradient is summed over the rows inside the backend
    n_data = int(split * circuit.n_params)
    gen = torch.Generator().manual_seed(seed)
    data = (torch.rand(3, n_data, dtype=torch.float64, generator=gen) - 0.5) * 4 * math.pi
    shared = (torch.rand(circuit.n_params - n_data, dtype=torch.float64, generator=gen) - 0.5) * 4 * math.pi
    cotangent = torch.randn(3, circuit.n_outputs, dtype=torch.float64, generator=gen)
    backend = TorchBackend(cache_mib=cache_mib, fused=False)
    grads = []
    for fast in (True, False):
        d, w = data.clone().requires_grad_(), shared.clone().requires_grad_()
        if fast:
            out = expval(backend, circuit, d, shared=w)
        else:
            out = backend.expval_plain(circuit, torch.cat([d, w.expand(3, -1)], dim=1))
        g = torch.autograd.grad((out * cotangent).sum(), [d, w], allow_unused=True)
        grads.append([torch.zeros_like(t) if x is None else x for x, t in zip(g, (d, w))])
    for a, b in zip(*grads):
        assert a.shape == b.shape
        if a.numel():
            assert torch.max(torch.abs(a - b)).item() <= 1e-10, circuit.diagram()


def test_broadcast_weights_support_double_backward():
    circuit = _hea(3, 2)
    backend = TorchBackend()
    x = torch.rand(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w0 = torch.rand(circuit.n_params - 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def loss(fast):
        def f(w):
            out = (
                expval(backend, circuit, x, shared=w)
                if fast
                else backend.expval_plain(circuit, torch.cat([x, w.expand(4, -1)], 1))
            )
            return out.square().sum()

        return f

    fast, plain = (torch.autograd.functional.hessian(loss(f), w0) for f in (True, False))
    assert plain.abs().max() > 0.1
    assert torch.max(torch.abs(fast - plain)).item() <= 1e-10


@given(n=st.integers(1, 7), batch=st.integers(1, 4), block=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_product_state_transitions_equal_the_general_ones(n, batch, block, seed):
    gen = torch.Generator().manual_seed(seed)
    vectors = torch.randn(batch, n, 2, dtype=torch.complex128, generator=gen)
    lam = torch.randn(2**n, batch, dtype=torch.complex128, generator=gen)
    blocks = tuple((s, min(block, n - s)) for s in range(0, n, block))
    got = adjoint.product_cotangents(lam, vectors)[..., :, None] * vectors[..., None, :]  # T_w = μ_w v_wᵀ
    want = adjoint.wire_transitions(lam, steps.product_vector(vectors), n, blocks)
    assert torch.max(torch.abs(got - want)).item() <= 1e-12


@given(
    gates=st.lists(st.sampled_from(["RY", "RZ", "RX", "H"]), min_size=1, max_size=4),
    n=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_real_then_phase_runs_apply_like_their_fused_matrices(gates, n, seed):
    # the same gate sequence on every wire: split (real blocks, then a phase) exactly when it is
    # RY/H first and RZ after; applying it (and undoing it) must equal the fused complex matrices
    ops, column = [], 0
    for gate in gates:
        for q in range(n):
            ops.append(Operation(gate, q, None if gate == "H" else column))
            column += gate != "H"
    chain = Chain(n, ops)
    kinds = "".join("R" if g in ("RY", "H") else "Z" if g == "RZ" else "X" for g in gates)
    assert (chain.split is not None) == ("X" not in kinds and "ZR" not in kinds)
    if chain.split is None:
        return
    prefix = [Operation("H", q) for q in range(n)] + [Operation("CZ", (0, 1))]  # the run is not the first
    circuit = Circuit(n, prefix + ops, [PauliWord.z(0)])
    plan = compile_plan(circuit, 3)
    tables = lower(plan, torch.complex128, torch.device("cpu"))
    k = next(i for i, s in enumerate(plan.steps) if isinstance(s, RotationStep))
    angles = torch.rand(1, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 7
    mats, fused_matrices = steps.chain_matrices(tables.steps[k], angles)
    state = torch.randn(2**n, 3, dtype=torch.complex128, generator=torch.Generator().manual_seed(seed + 1))
    step = plan.steps[k]
    split = steps.rotation_operands(step, mats, fused_matrices)
    assert split.real
    fused_blocks = steps.RunOperands(
        [steps.kron_block(fused_matrices, s, z)[0] for s, z in step.blocks], None, real=False, rows=False
    )
    for inverse in (False, True):
        got = steps.apply_rotations(state, split, step, n, inverse=inverse)
        want = steps.apply_rotations(state, fused_blocks, step, n, inverse=inverse)
        assert torch.max(torch.abs(got - want)).item() <= 1e-12


def test_real_then_phase_runs_rebuild_large_phases_with_the_same_result(monkeypatch):
    # above MAX_KEPT_PHASE amplitudes a run keeps only the per-wire diagonals of its phase (memory)
    circuit = _hea(5, 3)
    angles = _angles(circuit, 3, seed=7, shared_fraction=0.0)
    angles[:, 5:] = angles[:1, 5:]  # the weights: equal in every row
    want = TorchBackend().expval(circuit, angles)
    monkeypatch.setattr(steps, "MAX_KEPT_PHASE", 2)
    backend = TorchBackend()  # (a backend keeps its own operands: these are built anew)
    got = backend.expval(circuit, angles)
    assert backend.last_path == "plan"
    assert torch.max(torch.abs(got - want)).item() <= 1e-13
    assert torch.max(torch.abs(got - backend.expval_plain(circuit, angles))).item() <= 1e-12
    plan = compile_plan(circuit)  # the operands of its runs, built as the plan builds them for constant angles
    tables = lower(plan, torch.complex128, torch.device("cpu"))
    runs = [(step, tables.steps[k]) for k, step in enumerate(plan.steps) if isinstance(step, RotationStep)]
    ops = [steps.rotation_operands(step, *steps.chain_matrices(t, angles[:1])) for step, t in runs]
    assert ops and all(o.kept_phase is None and o.diagonals is not None for o in ops)


@pytest.mark.parametrize("cache_mib", [4, 1e-6])  # the states kept before each phase, or recomputed
@given(
    layer=st.lists(st.sampled_from(["RY", "H", "RZ"]), min_size=1, max_size=4)
    .map(sorted)
    .filter(lambda g: g != ["H"] * len(g)),  # real first
    n=st.integers(2, 6),
    n_layers=st.integers(1, 3),
    observable=st.sampled_from(["Z", "X"]),
    seed=st.integers(0, 2**16),
)
def test_real_then_phase_layers_give_the_plain_broadcast_gradients(cache_mib, layer, n, n_layers, observable, seed):
    # hea-like layers (real gates, then RZ, then a CNOT ring) with broadcast weights: the adjoint pass
    # reads such runs before their phase; the summed weight gradient and the data gradient must be exact
    ops = [Operation("RY", q, q) for q in range(n)]
    column = n
    for _ in range(n_layers):
        for gate in layer:
            for q in range(n):
                ops.append(Operation(gate, q, None if gate == "H" else column))
                column += gate != "H"
        ops += [Operation("CNOT", (q, (q + 1) % n)) for q in range(n)]
    circuit = Circuit(n, ops, [PauliWord(((q, observable),)) for q in range(n)])
    gen = torch.Generator().manual_seed(seed)
    data = ((torch.rand(3, n, dtype=torch.float64, generator=gen) - 0.5) * 4 * math.pi).requires_grad_()
    weights = ((torch.rand(column - n, dtype=torch.float64, generator=gen) - 0.5) * 4 * math.pi).requires_grad_()
    cotangent = torch.randn(3, n, dtype=torch.float64, generator=gen)
    backend = TorchBackend(cache_mib=cache_mib, fused=False)  # (the fused kernels: the test below)
    got = torch.autograd.grad(
        (expval(backend, circuit, data, shared=weights) * cotangent).sum(), [data, weights], allow_unused=True
    )
    plain = backend.expval_plain(circuit, torch.cat([data, weights.expand(3, -1)], dim=1))
    want = torch.autograd.grad((plain * cotangent).sum(), [data, weights], allow_unused=True)
    for a, b in zip(got, want):
        a = torch.zeros_like(b) if a is None else a
        assert torch.max(torch.abs(a - b)).item() <= 1e-10, circuit.diagram()


@given(
    body=circuits(max_qubits=6, max_ops=30, paulis="Z"),
    encoding=st.lists(st.sampled_from(["RY", "RX", "RZ", "H"]), min_size=1, max_size=3).filter(
        lambda g: g != ["H"] * len(g)
    ),
    batch=st.integers(1, 19),  # rows that are not a multiple of the tile width are padded
    seed=st.integers(0, 2**16),
)
def test_fused_kernels_give_the_plain_values_and_gradients(body, encoding, batch, seed):
    # everything after the leading product state runs in the fused kernels when its angles are
    # broadcast weights: values, data gradients and summed weight gradients against the plain path
    circuit = encoded(body, encoding)
    n_data = circuit.n_params - body.n_params
    gen = torch.Generator().manual_seed(seed)
    data = ((torch.rand(batch, n_data, dtype=torch.float64, generator=gen) - 0.5) * 4 * math.pi).requires_grad_()
    weights = ((torch.rand(body.n_params, dtype=torch.float64, generator=gen) - 0.5) * 4 * math.pi).requires_grad_()
    cotangent = torch.randn(batch, circuit.n_outputs, dtype=torch.float64, generator=gen)
    backend = TorchBackend()
    got = expval(backend, circuit, data, shared=weights)
    assert backend.last_path == "fused", circuit.diagram()
    got_grads = torch.autograd.grad((got * cotangent).sum(), [data, weights], allow_unused=True)
    plain = TorchBackend().expval_plain(circuit, torch.cat([data, weights.expand(batch, -1)], dim=1))
    want_grads = torch.autograd.grad((plain * cotangent).sum(), [data, weights], allow_unused=True)
    assert torch.max(torch.abs(got - plain)).item() <= 1e-12, circuit.diagram()
    for a, b in zip(got_grads, want_grads):
        a = torch.zeros_like(b) if a is None else a
        if b.numel():
            assert torch.max(torch.abs(a - b)).item() <= 1e-10, circuit.diagram()
    with torch.no_grad():  # the forward without autograd (new weights: no frozen matrix)
        assert torch.max(torch.abs(expval(TorchBackend(), circuit, data, shared=weights) - plain)).item() <= 1e-12


def test_fused_kernels_run_hea_and_only_where_they_apply():
    circuit = _hea(4, 2)
    data, weights = torch.rand(5, 4, dtype=torch.float64), torch.rand(circuit.n_params - 4, dtype=torch.float64)

    def path(backend, circuit, data, weights):
        expval(backend, circuit, data, shared=weights.clone().requires_grad_()).sum().backward()
        return backend.last_path

    assert path(TorchBackend(), circuit, data, weights) == "fused"
    assert path(TorchBackend(fused=False), circuit, data, weights) == "plan"  # switched off
    assert path(TorchBackend(dtype="complex64"), circuit, data.float(), weights.float()) == "plan"
    x_read_out = Circuit(4, circuit.operations, [PauliWord(((0, "X"),))])
    assert path(TorchBackend(), x_read_out, data, weights) == "plan"
    # a data column read after the product state (layer 2's first RY)
    assert path(TorchBackend(), circuit, torch.rand(5, 4 + 8 + 1, dtype=torch.float64), weights[9:]) == "plan"
    wide = _hea(fused.MAX_QUBITS + 1, 1)
    n = fused.MAX_QUBITS + 1
    wide_path = path(
        TorchBackend(), wide, torch.rand(2, n, dtype=torch.float64), torch.rand(wide.n_params - n, dtype=torch.float64)
    )
    assert wide_path == "blocked"  # past the fused kernels' size: the cache-blocked ones (tests/test_blocked.py)


def test_frozen_weights_at_large_batches_run_the_fused_kernels():
    # from FUSED_OVER_FROZEN_ROWS rows on, the fused kernels beat the frozen-weight matrix: it is never built
    circuit = _hea(4, 2)
    backend = TorchBackend()
    x = torch.rand(FUSED_OVER_FROZEN_ROWS, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = torch.rand(circuit.n_params - 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want = backend.expval_plain(circuit, torch.cat([x, w.expand(len(x), -1)], 1))
    with torch.no_grad():
        for _ in range(3):
            assert torch.max(torch.abs(expval(backend, circuit, x, shared=w) - want)).item() <= 1e-12
            assert backend.last_path == "fused"
        # small batches still use it: built on the second small call, so the large ones never keyed it
        expval(backend, circuit, x[:4], shared=w)
        assert backend.last_path == "fused"
        expval(backend, circuit, x[:4], shared=w)
        assert backend.last_path == "frozen"
