"""The adjoint pass: ``Σ_r g_r ∂⟨O_r⟩/∂angles`` without an autograd graph (:func:`adjoint_vjp`).

One forward pass (:func:`~hqf.backends.torch.steps.run`), then the circuit is undone run by run on
``λ = Hψ`` (and on the state, unless the forward kept a checkpoint after each run), so memory is a few
states whatever the depth.

Gradient of a rotation ``exp(-iθ/2 P)``: ``∂L/∂θ = Im⟨λ|P|ψ⟩`` at the point right after the gate.
Within a run of one-qubit gates this only needs, per wire ``w``, the 2×2 transition matrix
``T_w[i, j] = Σ_rest conj(λ[…i…]) ψ[…j…]``: gates on the other wires leave it unchanged, and undoing a
gate ``M`` on wire ``w`` maps it to ``Mᵀ T conj(M)``. A constant real-then-phase run whose gradient is
wanted summed over the rows is read between the two (:func:`split_run_gradients`: real transitions,
one overlap for the RZ); at the leading product state ``T_w = μ_w v_wᵀ`` has rank one
(:func:`product_cotangents`).
"""

from __future__ import annotations

import functools

import torch

from hqf.backends.torch.measure import observable_times_state
from hqf.backends.torch.plan import ChainTables, PermutationStep, PlanTables, ProductStep, RotationStep, StepPlan
from hqf.backends.torch.steps import (
    SMALL_TRAILING,
    StepOperands,
    apply_rotations,
    bit_table,
    columns_product,
    constant_columns,
    permute,
    rows_to_columns,
    run,
)


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _trace_index(size: int, device: torch.device) -> torch.Tensor:
    """``[size·4, 2**(size-1)]``: for wire ``w`` and bits ``(i, j)``, the flat entries ``I·K + J`` of a
    block matrix whose bit ``w`` is ``i`` in ``I`` and ``j`` in ``J`` and whose other bits agree."""
    k = 2**size
    rows = []
    for w in range(size):
        shift = size - 1 - w
        for i in range(2):
            for j in range(2):
                others = [o for o in range(k) if not (o >> shift) & 1]
                rows.append([(o | i << shift) * k + (o | j << shift) for o in others])
    return torch.tensor(rows, device=device)


def block_transition(lam: torch.Tensor, state: torch.Tensor, n: int, start: int, size: int) -> torch.Tensor:
    """For rows ``[B, 2**n]``: ``T[B, K, K]`` with ``T[I, J] = Σ_rest conj(λ)[…I…] ψ[…J…]`` over the wires
    outside the block."""
    batch = state.shape[0]
    left, k, right = 2**start, 2**size, 2 ** (n - start - size)
    if left == 1:  # Tᵀ = ψ λᴴ: the conjugate-transposed operand goes to BLAS without a copy
        products = torch.bmm(state.reshape(batch, k, right), lam.reshape(batch, k, right).transpose(1, 2).conj())
        return products.transpose(1, 2)
    if right == 1:
        return torch.bmm(lam.reshape(batch, left, k).conj().transpose(1, 2), state.reshape(batch, left, k))
    # Tᵀ = Σ_l ψ_l λ_lᴴ over the [K, right] slices: batched products, no copies
    slices = torch.matmul(state.reshape(batch * left, k, right), lam.reshape(batch * left, k, right).mH)
    return slices.reshape(batch, left, k, k).sum(1).transpose(1, 2)


def _per_wire(blocks, n: int, block_matrix, like: torch.Tensor) -> torch.Tensor:
    """``T[b, n, 2, 2]`` from each block's ``T[b, K, K] = block_matrix(start, size)`` by partial traces
    over the block's other wires (each ``T_w[i, j]`` sums ``2**(size-1)`` entries); zero on wires no
    block covers."""
    parts, covered = [], []
    for start, size in blocks:
        block = block_matrix(start, size)
        rows = block.shape[0]
        parts.append(block.reshape(rows, -1)[:, _trace_index(size, block.device)].sum(-1).reshape(rows, size, 2, 2))
        covered += range(start, start + size)
    out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    if len(covered) == n:
        return out
    full = like.new_zeros(out.shape[0], n, 2, 2)
    full[:, covered] = out
    return full


def wire_transitions(lam: torch.Tensor, state: torch.Tensor, n: int, blocks) -> torch.Tensor:
    """``T[B, n, 2, 2]`` with ``T_w[i, j] = Σ_rest conj(λ)[…i…] ψ[…j…]`` for the wires of ``blocks``.

    ``λ`` and ``ψ`` are ``[2**n, B]``; the sums are per row, so both are transposed to rows once.
    """
    lam, state = rows_to_columns(lam), rows_to_columns(state)
    return _per_wire(blocks, n, lambda start, size: block_transition(lam, state, n, start, size), state)


def _contract_all_but_one(tensor: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``[k, 2, B]``: for each wire ``w`` of ``tensor [2**k, B]``, its contraction with the vectors
    ``columns [k, 2, B]`` of all the other wires (halving: each half is contracted with the other
    half's product vector, then recursively)."""
    k, batch = columns.shape[0], tensor.shape[-1]
    if k == 1:
        return tensor[None]
    h = k // 2
    view = tensor.reshape(2**h, 2 ** (k - h), batch)
    first = (view * columns_product(columns[h:])[None]).sum(1)
    second = (view * columns_product(columns[:h])[:, None]).sum(0)
    return torch.cat([_contract_all_but_one(first, columns[:h]), _contract_all_but_one(second, columns[h:])])


def product_cotangents(lam: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``μ[B, n, 2]`` with ``μ_w[i] = Σ conj(λ[x]) Π_{u≠w} v_u[x_u]`` over the ``x`` whose bit ``w`` is
    ``i``, at a product state ``ψ = ⊗_w v_w`` (``vectors [B, n, 2]``, ``λ [2**n, B]``).

    The transitions of :func:`wire_transitions` at that state are then ``T_w = μ_w v_wᵀ``: two
    passes over ``λ`` (each half of the wires contracted with the other half's product vector),
    then the same on ever smaller tensors.
    """
    columns = vectors.permute(1, 2, 0).conj().resolve_conj().contiguous()
    return _contract_all_but_one(lam, columns).conj().permute(2, 0, 1)


def product_gradients(
    tables: ChainTables, mats: list[torch.Tensor], cotangents: torch.Tensor, vectors: torch.Tensor, grad: torch.Tensor
) -> None:
    """:func:`chain_gradients` of the leading product state from its rank-one transitions
    ``T_w = μ_w v_wᵀ`` (``cotangents`` μ and ``vectors`` v, ``[B, n, 2]``): undoing a gate ``M`` maps
    ``μ → Mᵀμ`` and ``v → Mᴴv`` (2-vectors, not 2×2 matrices)."""
    generator = tables.generator
    mu, v = cotangents, vectors
    for d in range(len(mats) - 1, -1, -1):
        wires, columns = tables.rotation_wires[d], tables.rotation_columns[d]
        if len(wires):
            pv = _times(generator[d], v)
            g = (mu[..., 0] * pv[..., 0] + mu[..., 1] * pv[..., 1]).imag  # μᵀ P v, [B, n]
            grad[:, columns] = g[:, wires].to(grad.dtype)
        if d:
            m = mats[d]
            mu, v = _times(m.mT, mu), _times(m.mH, v)


def _times(matrices: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``M v`` for ``[…, 2, 2]`` matrices and ``[…, 2]`` vectors, as two products and a sum (at these
    sizes a batched matrix product, or a sum over the last axis, costs twice as much)."""
    return matrices[..., 0] * vectors[..., 0:1] + matrices[..., 1] * vectors[..., 1:2]


def summed_wire_transitions(lam: torch.Tensor, state: torch.Tensor, n: int, blocks) -> torch.Tensor:
    """``T[1, n, 2, 2]``: :func:`wire_transitions` summed over the batch, from one product per block.

    For a run whose angles are constant over the rows, only this sum reaches their gradient: no
    per-row matrices, no transposes.
    """

    def block_matrix(start: int, size: int) -> torch.Tensor:  # T[1, K, K], T[I, J] = Σ conj λ[I] ψ[J]
        left, k = 2**start, 2**size
        ket, bra = state.reshape(left, k, -1), lam.reshape(left, k, -1)
        if left > 1 and ket.shape[2] < SMALL_TRAILING:  # many tiny products: one large one on copies
            ket, bra = ket.transpose(0, 1).reshape(1, k, -1), bra.transpose(0, 1).reshape(1, k, -1)
        return torch.matmul(ket, bra.mH).sum(0).transpose(0, 1).unsqueeze(0)

    return _per_wire(blocks, n, block_matrix, state)


def chain_gradients(
    tables: ChainTables, mats: list[torch.Tensor], transitions: torch.Tensor, grad: torch.Tensor
) -> None:
    """Write ``∂L/∂θ`` of every rotation of a run into ``grad[B, P]``, walking each wire backwards."""
    generator = tables.generator
    t = transitions
    for d in range(len(mats) - 1, -1, -1):
        wires, columns = tables.rotation_wires[d], tables.rotation_columns[d]
        if len(wires):
            g = (generator[d] * t).sum((-1, -2)).imag  # [B, W]
            grad[:, columns] = g[:, wires].to(grad.dtype)
        if d:
            m = mats[d]
            t = m.transpose(-1, -2) @ t @ m.conj()


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _z_table(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[n, 2**n]``: the eigenvalue (±1) of ``Z_w`` on every basis state."""
    return (1 - 2 * bit_table(n, device)).to(dtype)


def split_run_gradients(
    tables: ChainTables,
    step: RotationStep,
    mats: list[torch.Tensor],
    lam: torch.Tensor,
    state: torch.Tensor,
    grad: torch.Tensor,
) -> None:
    """Write ``∂L/∂θ`` summed over the rows of a constant real-then-phase run into ``grad[1, P]``, from
    ``λ`` and ``ψ`` (``[2**n, B]``) between its real gates and its phase.

    The phase's RZ gates need ``Im Σ_x z_w(x) Σ_rows conj(λ(x)) ψ(x)`` (the phase cancels in
    ``conj(λ)ψ``); the real gates only the real part of the transition matrices, which is one real
    product per block on ``[Re | Im]`` side by side.
    """
    n, split = step.chain.n_qubits, step.chain.split
    wires, columns = tables.rotation_wires, tables.rotation_columns
    phase_depths = [d for d in range(split, len(mats)) if len(wires[d])]
    if phase_depths:
        overlap = (lam.conj() * state).sum(1).imag  # [2**n]
        per_wire = _z_table(n, overlap.dtype, overlap.device) @ overlap
        for d in phase_depths:
            grad[0, columns[d]] = per_wire[wires[d]]
    if any(len(wires[d]) for d in range(split)):
        dim = state.shape[0]
        real = summed_wire_transitions(
            torch.view_as_real(lam).reshape(dim, -1), torch.view_as_real(state).reshape(dim, -1), n, step.blocks
        )
        chain_gradients(tables, mats[:split], real.to(lam.dtype), grad)


def adjoint_vjp(
    plan: StepPlan,
    tables: PlanTables,
    angles: torch.Tensor,
    grad_output: torch.Tensor,
    actions: tuple,
    records: list | None = None,
    state: torch.Tensor | None = None,
    summed: frozenset[int] | None = None,
    memo: dict[int, StepOperands] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``Σ_r g_r ∂⟨O_r⟩/∂angles`` as ``[B, P]`` by the adjoint method (no autograd graph kept).

    ``records`` and the final ``state`` of an earlier :func:`run` are reused if given (else the forward
    runs here, with ``memo``); a record that holds its state (``checkpoint``) spares undoing that run on
    the state. Given ``summed`` (columns equal in every row whose gradient is only wanted summed over
    the rows), returns ``(grad [B, P], grad_sum [P])``: a run that reads only such columns adds to
    ``grad_sum`` (one transition matrix for the whole batch) instead of ``grad``; the caller adds
    ``grad[:, summed].sum(0)`` itself.
    """
    n = plan.n_qubits
    with torch.no_grad():
        if records is None:
            records = []
            state = run(plan, tables, angles, constant_columns(angles), records, checkpoint=True, memo=memo)
        lam = observable_times_state(plan, tables, state, grad_output.to(angles.dtype), actions)
        grad = torch.zeros_like(angles)
        grad_sum = angles.new_zeros(1, angles.shape[1])
        runs = iter(reversed(records))
        for k in range(len(plan.steps) - 1, -1, -1):
            step, step_tables = plan.steps[k], tables.steps[k]
            if isinstance(step, PermutationStep):
                lam = permute(lam, step_tables, inverse=True)
                if state is not None:
                    state = permute(state, step_tables, inverse=True)
                continue
            record = next(runs)
            if record is None:
                continue
            if isinstance(step, ProductStep):
                vectors = record.fused[..., 0]
                product_gradients(step_tables, record.mats, product_cotangents(lam, vectors), vectors, grad)
                continue
            whole_batch = summed is not None and record.fused.shape[0] == 1 and step.chain.angle_columns <= summed
            ops = record.ops
            if whole_batch and ops.diagonals is not None:  # a summed real-then-phase run: read it before its phase
                undo_phase = ops.phase().conj()
                lam = lam * undo_phase
                state = record.kept if record.kept is not None else state * undo_phase
                split_run_gradients(step_tables, step, record.mats, lam, state, grad_sum)
                lam = apply_rotations(lam, ops, step, n, inverse=True, with_phase=False)
                state = (
                    None
                    if record.kept is not None
                    else apply_rotations(state, ops, step, n, inverse=True, with_phase=False)
                )
                continue
            if record.kept is not None:
                state = record.state_after()
            if step.chain.rotation.any():  # (a run of fixed gates has nothing to differentiate)
                transitions = (summed_wire_transitions if whole_batch else wire_transitions)(lam, state, n, step.blocks)
                chain_gradients(step_tables, record.mats, transitions, grad_sum if whole_batch else grad)
            lam = apply_rotations(lam, ops, step, n, inverse=True)
            state = None if record.kept is not None else apply_rotations(state, ops, step, n, inverse=True)
    return grad if summed is None else (grad, grad_sum[0])
