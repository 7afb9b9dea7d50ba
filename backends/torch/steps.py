"""The forward kernels that run a :class:`~hqf.backends.torch.plan.StepPlan`: gate matrices, product
states, Kronecker blocks, signed permutations, and :func:`run`, the state after a plan's steps.

States are **amplitude-major**: ``[2**n, B]``, one column per row of the batch (wire 0 is the most
significant bit of the row index). One matrix for the whole batch (the ansatz weights) is then one
plain matrix product over a contiguous ``[K, rest·B]`` view, and a signed permutation (a CNOT ring)
moves whole contiguous rows of ``B`` amplitudes: ~8× cheaper than gathering columns of ``[B, 2**n]``
(docs/performance.md). Per-row matrices need one row per sample; those few steps transpose to
``[B, 2**n]`` and back.

:func:`run` is plain differentiable torch code, so autograd (double backward included) goes through
it; the adjoint pass (:mod:`hqf.backends.torch.adjoint`) undoes what it records.
"""

from __future__ import annotations

import functools

import attrs
import numpy as np
import torch

from hqf.backends.torch.plan import (
    ChainTables,
    PermutationStep,
    PermutationTables,
    PlanTables,
    ProductStep,
    RotationStep,
    StepPlan,
)
from hqf.quantum import gates

#: below this many trailing amplitudes per block row, a common block is applied as one product on a copy
SMALL_TRAILING = 16


def chain_matrices(tables: ChainTables, angles: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-depth gate matrices ``[B, W, 2, 2]`` of a run and their product (the fused matrices)."""
    columns = tables.columns
    depth, wires = columns.shape
    batch = angles.shape[0]
    if angles.shape[1] == 0:
        half = angles.new_zeros(batch, depth, wires)
    else:
        half = angles[:, columns.reshape(-1)].reshape(batch, depth, wires) * 0.5
    cos, sin = torch.cos(half)[..., None, None], torch.sin(half)[..., None, None]
    per_depth = torch.addcmul(torch.addcmul(tables.a, cos, tables.b), sin, tables.c)  # [B, D, W, 2, 2]
    mats = list(per_depth.unbind(1))
    fused = mats[0]
    for m in mats[1:]:
        fused = m @ fused
    return mats, fused


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def bit_table(n: int, device: torch.device) -> torch.Tensor:
    """``[n, 2**n]``: bit ``w`` (wire 0 most significant) of every basis index, on ``device``."""
    return torch.as_tensor(np.stack([gates.bit_table(n, w) for w in range(n)]), device=device)


def product_state(fused: torch.Tensor) -> torch.Tensor:
    """``⊗_w M_w|0⟩`` for per-wire matrices ``[B, n, 2, 2]`` (wire 0 most significant) → ``[2**n, B]``."""
    return product_vector(fused[..., 0])


def small_product(vectors: torch.Tensor) -> bool:
    """Few enough rows that one gather and one product beat a loop over wires (fewer calls)."""
    batch, n = vectors.shape[:2]
    return batch * n * 2**n <= 2**15


def product_rows(vectors: torch.Tensor) -> torch.Tensor:
    """``⊗_w v_w`` for per-wire vectors ``[B, n, 2]`` as rows ``[B, 2**n]`` (one gather, one product)."""
    batch, n = vectors.shape[:2]
    return torch.gather(vectors, 2, bit_table(n, vectors.device).expand(batch, n, 2**n)).prod(dim=1)


def product_vector(vectors: torch.Tensor) -> torch.Tensor:
    """``⊗_w v_w`` for per-wire vectors ``[B, n, 2]`` (wire 0 most significant) → ``[2**n, B]``."""
    batch, n = vectors.shape[:2]
    if small_product(vectors):
        return product_rows(vectors).transpose(0, 1).contiguous()
    return columns_product(vectors.permute(1, 2, 0).contiguous())  # from [n, 2, B]


def columns_product(columns: torch.Tensor) -> torch.Tensor:
    """``⊗_w c_w`` of ``columns [k, 2, B]`` → ``[2**k, B]`` (wire 0 most significant)."""
    out = columns[0]
    for c in columns[1:]:
        out = (out[:, None] * c[None]).reshape(-1, out.shape[-1])
    return out


def basis_state(batch: int, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    state = torch.zeros(2**n, batch, dtype=dtype, device=device)
    state[0] = 1
    return state


def rows_to_columns(state: torch.Tensor) -> torch.Tensor:
    """``[B, 2**n]`` ↔ ``[2**n, B]`` (a contiguous copy; its own inverse)."""
    return state.transpose(0, 1).contiguous()


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _kron_index(size: int, device: torch.device) -> torch.Tensor:
    """``[size, 4**size]``: for entry ``(I, J)`` of a ``size``-wire Kronecker product, the flat index of
    ``M_w[bit_w(I), bit_w(J)]`` in the ``[size, 2, 2]`` factors."""
    k = 2**size
    index_bits = bit_table(size, device)  # [size, K]: bit w of I (rows) and of J (columns) alike
    flat = 4 * torch.arange(size, device=device)[:, None, None] + 2 * index_bits[:, :, None] + index_bits[:, None, :]
    return flat.reshape(size, k * k)


def kron_block(fused: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """``M_start ⊗ … ⊗ M_{start+size-1}``, ``[B, 2**size, 2**size]``.

    A few matrices: one gather and one product (fewer calls); many: wire by wire (fewer multiplications).
    """
    batch, k = fused.shape[0], 2**size
    if batch * k * k <= 2**12:
        factors = fused[:, start : start + size].reshape(batch, 4 * size)
        return factors[:, _kron_index(size, fused.device)].prod(dim=1).reshape(batch, k, k)
    out = fused[:, start]
    for w in range(start + 1, start + size):
        d = out.shape[-1]
        out = (out[:, :, None, :, None] * fused[:, w, None, :, None, :]).reshape(batch, 2 * d, 2 * d)
    return out


def apply_common_block(state: torch.Tensor, matrix: torch.Tensor, n: int, start: int, size: int) -> torch.Tensor:
    """Apply one ``[K, K]`` matrix to wires ``start … start+size-1`` of every column of ``[2**n, B]``."""
    left, k = 2**start, 2**size
    view = state.reshape(left, k, -1)
    if left == 1:
        return (matrix @ view[0]).reshape(state.shape)
    if view.shape[2] < SMALL_TRAILING:  # many tiny products (a few rows, low wires): one large one on a copy
        out = matrix @ view.transpose(0, 1).reshape(k, -1)
        return out.reshape(k, left, -1).transpose(0, 1).reshape(state.shape)
    return torch.matmul(matrix, view).reshape(state.shape)


def apply_block(state: torch.Tensor, matrix: torch.Tensor, n: int, start: int, size: int) -> torch.Tensor:
    """Apply per-row ``[B, K, K]`` matrices to wires ``start … start+size-1`` of ``[B, 2**n]`` (rows)."""
    batch = state.shape[0]
    left, k, right = 2**start, 2**size, 2 ** (n - start - size)
    if left == 1:
        return torch.bmm(matrix, state.reshape(batch, k, right)).reshape(batch, -1)
    if right == 1:
        return torch.bmm(state.reshape(batch, left, k), matrix.transpose(1, 2)).reshape(batch, -1)
    return torch.matmul(matrix.unsqueeze(1), state.reshape(batch, left, k, right)).reshape(batch, -1)


#: largest state whose phase vector a run keeps (larger ones are rebuilt from the per-wire diagonals
#: when applied: at 20 qubits five kept phases held 80 MiB)
MAX_KEPT_PHASE = 2**16


class RunOperands:
    """What applying one run takes: a matrix per block (one for the batch, ``[K, K]``, real or complex, or per row
    ``[B, K, K]``) and, for a real-then-phase run, the per-wire diagonals ``[1, n, 2]`` of the phase
    applied after them (and the phase itself, ``[2**n, 1]``, for states up to ``MAX_KEPT_PHASE``)."""

    __slots__ = ("blocks", "diagonals", "kept_phase", "real", "rows")

    def __init__(self, blocks: list | None, diagonals: torch.Tensor | None, real: bool, rows: bool) -> None:
        self.blocks, self.diagonals, self.real, self.rows = blocks, diagonals, real, rows
        small = diagonals is not None and 2 ** diagonals.shape[1] <= MAX_KEPT_PHASE
        self.kept_phase = product_vector(diagonals) if small else None

    def phase(self) -> torch.Tensor | None:
        """``[2**n, 1]``, or ``None`` for no phase."""
        if self.diagonals is None:
            return None
        return self.kept_phase if self.kept_phase is not None else product_vector(self.diagonals)


def rotation_operands(step: RotationStep, mats: list[torch.Tensor], fused: torch.Tensor) -> RunOperands:
    """The :class:`RunOperands` of a run from its per-depth ``mats`` and fused matrices ``[1 or B, n, 2, 2]``.

    A constant run (one matrix per block for the batch) that is real gates then RZ
    (``step.chain.split``: hea's RY·RZ layers) becomes real Kronecker blocks, applied to the real and
    imaginary parts at once (half the arithmetic of complex blocks), then one diagonal phase.
    """
    if fused.shape[0] == 1 and step.chain.split is not None:
        real, diagonals = split_factors(mats, step.chain.split)
        blocks = None if real is None else [kron_block(real, start, size)[0] for start, size in step.blocks]
        return RunOperands(blocks, diagonals, real=True, rows=False)
    if fused.shape[0] == 1:
        return RunOperands(
            [kron_block(fused, start, size)[0] for start, size in step.blocks], None, real=False, rows=False
        )
    return RunOperands([kron_block(fused, start, size) for start, size in step.blocks], None, real=False, rows=True)


def apply_rotations(
    state: torch.Tensor, ops: RunOperands, step: RotationStep, n: int, inverse: bool = False, with_phase: bool = True
) -> torch.Tensor:
    """Apply (or undo) a run's :class:`RunOperands` to ``[2**n, B]`` (``with_phase=False``: all but the
    diagonal phase of a real-then-phase run, which comes last when applying, first when undoing).

    Matrices for the whole batch are applied in place in the column layout; per-row matrices on the rows (one
    transpose there and back).
    """
    if ops.rows:
        rows = rows_to_columns(state)
        for (start, size), matrix in zip(step.blocks, ops.blocks):
            rows = apply_block(rows, matrix.mH if inverse else matrix, n, start, size)
        return rows_to_columns(rows)
    phase = ops.phase() if with_phase else None
    if inverse and phase is not None:
        state = state * phase.conj()
    if ops.blocks is not None:
        dim = state.shape[0]
        parts = torch.view_as_real(state).reshape(dim, -1) if ops.real else state  # real: (Re, Im) side by side
        for (start, size), matrix in zip(step.blocks, ops.blocks):
            parts = apply_common_block(
                parts, (matrix.mT if ops.real else matrix.mH) if inverse else matrix, n, start, size
            )
        state = torch.view_as_complex(parts.reshape(dim, -1, 2)) if ops.real else parts
    return state if inverse or phase is None else state * phase


def split_factors(mats: list[torch.Tensor], split: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(R, D)`` of a constant run whose depths ``< split`` are real and the others diagonal: the run is
    ``⊗_w diag(D_w) · ⊗_w R_w`` with ``R [1, n, 2, 2]`` real and ``D [1, n, 2]`` (``None``: identity)."""
    real = None
    for m in mats[:split]:
        real = m if real is None else m @ real
    diag = None
    for m in mats[split:]:
        d = m.diagonal(dim1=-2, dim2=-1)  # [1, n, 2]
        diag = d if diag is None else diag * d
    return (None if real is None else real.real), diag


def apply_wire(state: torch.Tensor, matrix: torch.Tensor, n: int, wire: int) -> torch.Tensor:
    """Apply one ``[2, 2]`` matrix to ``wire`` of every column of ``[2**n, B]``."""
    return torch.matmul(matrix, state.reshape(2**wire, 2, -1)).reshape(state.shape)


def permute(state: torch.Tensor, tables: PermutationTables, inverse: bool = False) -> torch.Tensor:
    """Apply (or undo) a signed permutation to ``[2**n, B]``: whole rows move."""
    sign = tables.sign
    if inverse:
        if sign is not None:
            state = state * sign[:, None]
        return state.index_select(0, tables.inverse)
    state = state.index_select(0, tables.source)
    return state if sign is None else state * sign[:, None]


def constant_columns(angles: torch.Tensor) -> frozenset[int]:
    """The columns of ``angles[B, P]`` equal in every row (all of them when ``B == 1``)."""
    if angles.shape[0] == 1:
        return frozenset(range(angles.shape[1]))
    same = (angles == angles[:1]).all(dim=0)
    return frozenset(torch.nonzero(same).flatten().tolist())


@attrs.frozen(eq=False)
class Record:
    """What the adjoint pass needs from one run of the forward pass: its matrices and, with a
    checkpoint, its state (``kept``) after the run, or right before the phase of a real-then-phase
    run (``before_phase``: where that run's gradients are read)."""

    mats: list[torch.Tensor]
    fused: torch.Tensor
    ops: RunOperands | None
    kept: torch.Tensor | None = None
    before_phase: bool = False

    def state_after(self) -> torch.Tensor | None:
        """The kept state after the run (``None`` without a checkpoint)."""
        if self.kept is None or not self.before_phase:
            return self.kept
        return self.kept * self.ops.phase()


@attrs.frozen(eq=False)
class StepOperands:
    """A constant run's matrices as built at the angles ``key`` it read (first row, every table
    column): what :func:`run` reuses while the run's angles stay bitwise equal."""

    key: torch.Tensor
    mats: list[torch.Tensor]
    fused: torch.Tensor
    ops: RunOperands


def run(
    plan: StepPlan,
    tables: PlanTables,
    angles: torch.Tensor,
    constant: frozenset[int] = frozenset(),
    records: list | None = None,
    checkpoint: bool = False,
    start: int = 0,
    state: torch.Tensor | None = None,
    trace: dict | None = None,
    memo: dict[int, StepOperands] | None = None,
) -> torch.Tensor:
    """The state ``[2**n, B]`` after the plan's steps from ``start`` on (all by default; from ``state`` if given).

    A later run whose columns are all in ``constant`` (equal in every row) builds its matrices once and
    applies them as plain matrix products. With ``records`` a list, each run appends a :class:`Record`
    (``None`` for an empty product); ``checkpoint`` keeps the state after each run in it too. With
    ``trace`` a dict, ``trace[k]`` is the state entering step ``k`` (and ``trace[len(steps)]`` the last).
    Without autograd, given ``memo`` (step index → :class:`StepOperands`), a constant run reuses the
    matrices it built last time while its angles are unchanged (the shift rule's passes differ in one
    column), and records the ones it builds.
    """
    n = plan.n_qubits
    last = None if torch.is_grad_enabled() else memo
    batch = angles.shape[0] if state is None else state.shape[1]
    for k in range(start, len(plan.steps)):
        step, step_tables = plan.steps[k], tables.steps[k]
        if trace is not None:
            trace[k] = state
        if isinstance(step, PermutationStep):
            state = permute(state, step_tables)
            continue
        if step.chain.depth == 0:  # no gates at all: |0…0⟩
            state = basis_state(batch, n, tables.complex_dtype, angles.device)
            if records is not None:
                records.append(None)
            continue
        ops = None
        if isinstance(step, ProductStep):
            mats, fused = chain_matrices(step_tables, angles)
            state = product_state(fused)
        else:
            one = angles.shape[0] == 1 or step.chain.angle_columns <= constant
            key = angles[0, step_tables.columns.reshape(-1)] if one and last is not None and angles.shape[1] else None
            hit = last.get(k) if key is not None else None
            if hit is not None and torch.equal(hit.key, key):
                mats, fused, ops = hit.mats, hit.fused, hit.ops
            else:
                mats, fused = chain_matrices(step_tables, angles[:1] if one else angles)
                ops = rotation_operands(step, mats, fused)
                if key is not None:
                    last[k] = StepOperands(key, mats, fused, ops)
            if checkpoint and records is not None and ops.diagonals is not None:  # keep the state before the phase
                state = apply_rotations(state, ops, step, n, with_phase=False)
                records.append(Record(mats, fused, ops, state, before_phase=True))
                state = state * ops.phase()
                continue
            state = apply_rotations(state, ops, step, n)
        if records is not None:
            records.append(Record(mats, fused, ops, state if checkpoint else None))
    if trace is not None:
        trace[len(plan.steps)] = state
    return state
