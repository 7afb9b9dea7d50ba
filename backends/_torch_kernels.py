"""The batched kernels that run a :class:`~hqf.backends._torch_plan.Plan`: forward, measurement, adjoint.

States are **amplitude-major**: ``[2**n, B]``, one column per row of the batch (wire 0 is the most
significant bit of the row index). A matrix shared by the whole batch (the ansatz weights) is then one
plain matrix product over a contiguous ``[K, rest·B]`` view, and a signed permutation (a CNOT ring)
moves whole contiguous rows of ``B`` amplitudes: ~8× cheaper than gathering columns of ``[B, 2**n]``
(docs/performance.md). Per-row matrices and per-row transition matrices need one row per sample; those
few steps transpose to ``[B, 2**n]`` and back.

:func:`run` and :func:`measure` are plain differentiable torch code, so autograd (double backward
included) goes through them. :func:`adjoint_vjp` computes the vector-Jacobian product itself: one
forward pass, then the circuit is undone run by run on ``λ = Hψ`` (and on the state, unless the forward
kept a checkpoint after each run), so memory is a few states whatever the depth.

Gradient of a rotation ``exp(-iθ/2 P)`` in the adjoint pass: ``∂L/∂θ = Im⟨λ|P|ψ⟩`` at the point right
after the gate. Within a run of one-qubit gates this only needs, per wire ``w``, the 2×2 transition
matrix ``T_w[i, j] = Σ_rest conj(λ[…i…]) ψ[…j…]``: gates on the other wires leave it unchanged, and
undoing a gate ``M`` on wire ``w`` maps it to ``Mᵀ T conj(M)``. A run shared by the rows that is real
gates then RZ is read between the two (:func:`split_run_gradients`: real transitions, one overlap
for the RZ); at the leading product state ``T_w = μ_w v_wᵀ`` has rank one (:func:`product_cotangents`).
"""

from __future__ import annotations

import functools

import torch

from hqf.backends._torch_plan import PermutationStep, Plan, ProductStep, RotationStep


#: below this many trailing amplitudes per block row, a shared block is applied as one product on a copy
SMALL_TRAILING = 16


def chain_matrices(tables: dict[str, torch.Tensor], angles: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-depth gate matrices ``[B, W, 2, 2]`` of a run and their product (the fused matrices)."""
    columns = tables["columns"]
    depth, wires = columns.shape
    batch = angles.shape[0]
    if angles.shape[1] == 0:
        half = angles.new_zeros(batch, depth, wires)
    else:
        half = angles[:, columns.reshape(-1)].reshape(batch, depth, wires) * 0.5
    cos, sin = torch.cos(half)[..., None, None], torch.sin(half)[..., None, None]
    per_depth = torch.addcmul(torch.addcmul(tables["a"], cos, tables["b"]), sin, tables["c"])  # [B, D, W, 2, 2]
    mats = list(per_depth.unbind(1))
    fused = mats[0]
    for m in mats[1:]:
        fused = m @ fused
    return mats, fused


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _bit_table(n: int, device: torch.device) -> torch.Tensor:
    """``[n, 2**n]``: bit ``w`` (wire 0 most significant) of every basis index."""
    return (torch.arange(2**n, device=device)[None, :] >> (n - 1 - torch.arange(n, device=device)[:, None])) & 1


def product_state(fused: torch.Tensor) -> torch.Tensor:
    """``⊗_w M_w|0⟩`` for per-wire matrices ``[B, n, 2, 2]`` (wire 0 most significant) → ``[2**n, B]``."""
    return product_vector(fused[..., 0])


def _small(vectors: torch.Tensor) -> bool:
    """Few enough rows that one gather and one product beat a loop over wires (fewer calls)."""
    batch, n = vectors.shape[:2]
    return batch * n * 2**n <= 2**15


def product_rows(vectors: torch.Tensor) -> torch.Tensor:
    """``⊗_w v_w`` for per-wire vectors ``[B, n, 2]`` as rows ``[B, 2**n]`` (one gather, one product)."""
    batch, n = vectors.shape[:2]
    return torch.gather(vectors, 2, _bit_table(n, vectors.device).expand(batch, n, 2**n)).prod(dim=1)


def product_vector(vectors: torch.Tensor) -> torch.Tensor:
    """``⊗_w v_w`` for per-wire vectors ``[B, n, 2]`` (wire 0 most significant) → ``[2**n, B]``."""
    batch, n = vectors.shape[:2]
    if _small(vectors):
        return product_rows(vectors).transpose(0, 1).contiguous()
    return _columns_product(vectors.permute(1, 2, 0).contiguous())  # from [n, 2, B]


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
    index = torch.arange(k, device=device)
    shift = size - 1 - torch.arange(size, device=device)[:, None]
    bits = (index[None, :] >> shift) & 1  # [size, K]: bit w of I (rows) and of J (columns) alike
    flat = 4 * torch.arange(size, device=device)[:, None, None] + 2 * bits[:, :, None] + bits[:, None, :]
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


def apply_shared_block(state: torch.Tensor, matrix: torch.Tensor, n: int, start: int, size: int) -> torch.Tensor:
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


class Operands:
    """What applying one run takes: a matrix per block (shared ``[K, K]``, real or complex, or per row
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


def rotation_operands(step: RotationStep, mats: list[torch.Tensor], fused: torch.Tensor) -> Operands:
    """The :class:`Operands` of a run from its per-depth ``mats`` and fused matrices ``[1 or B, n, 2, 2]``.

    A shared run that is real gates then RZ (``step.chain.split``: hea's RY·RZ layers) becomes real
    Kronecker blocks, applied to the real and imaginary parts at once (half the arithmetic of complex
    blocks), then one diagonal phase.
    """
    if fused.shape[0] == 1 and step.chain.split is not None:
        real, diagonals = split_factors(mats, step.chain.split)
        blocks = None if real is None else [kron_block(real, start, size)[0] for start, size in step.blocks]
        return Operands(blocks, diagonals, real=True, rows=False)
    if fused.shape[0] == 1:
        return Operands([kron_block(fused, start, size)[0] for start, size in step.blocks], None, real=False, rows=False)
    return Operands([kron_block(fused, start, size) for start, size in step.blocks], None, real=False, rows=True)


def apply_rotations(
    state: torch.Tensor, ops: Operands, step: RotationStep, n: int, inverse: bool = False, with_phase: bool = True
) -> torch.Tensor:
    """Apply (or undo) a run's :class:`Operands` to ``[2**n, B]`` (``with_phase=False``: all but the
    diagonal phase of a real-then-phase run, which comes last when applying, first when undoing).

    Shared matrices are applied in place in the column layout; per-row matrices on the rows (one
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
            parts = apply_shared_block(parts, (matrix.mT if ops.real else matrix.mH) if inverse else matrix, n, start, size)
        state = torch.view_as_complex(parts.reshape(dim, -1, 2)) if ops.real else parts
    return state if inverse or phase is None else state * phase


def split_factors(mats: list[torch.Tensor], split: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(R, D)`` of a shared run whose depths ``< split`` are real and the others diagonal: the run is
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


def permute(state: torch.Tensor, tables: dict[str, torch.Tensor], inverse: bool = False) -> torch.Tensor:
    """Apply (or undo) a signed permutation to ``[2**n, B]``: whole rows move."""
    sign = tables["sign"]
    if inverse:
        if sign is not None:
            state = state * sign[:, None]
        return state.index_select(0, tables["inverse"])
    state = state.index_select(0, tables["source"])
    return state if sign is None else state * sign[:, None]


def constant_columns(angles: torch.Tensor) -> frozenset[int]:
    """The columns of ``angles[B, P]`` equal in every row (all of them when ``B == 1``)."""
    if angles.shape[0] == 1:
        return frozenset(range(angles.shape[1]))
    same = (angles == angles[:1]).all(dim=0)
    return frozenset(torch.nonzero(same).flatten().tolist())


class Record:
    """What the adjoint pass needs from one run of the forward pass: its matrices and, with a
    checkpoint, its state (``kept``) after the run, or right before the phase of a real-then-phase
    run (``before_phase``: where that run's gradients are read)."""

    __slots__ = ("mats", "fused", "ops", "kept", "before_phase")

    def __init__(self, mats, fused, ops, kept=None, before_phase=False) -> None:
        self.mats, self.fused, self.ops, self.kept, self.before_phase = mats, fused, ops, kept, before_phase

    def state_after(self) -> torch.Tensor | None:
        """The kept state after the run (``None`` without a checkpoint)."""
        if self.kept is None or not self.before_phase:
            return self.kept
        return self.kept * self.ops.phase()


def run(
    plan: Plan,
    lowered: dict,
    angles: torch.Tensor,
    shared: frozenset[int] = frozenset(),
    records: list | None = None,
    checkpoint: bool = False,
    start: int = 0,
    state: torch.Tensor | None = None,
    stop: int | None = None,
    trace: dict | None = None,
) -> torch.Tensor:
    """The state ``[2**n, B]`` after steps ``start … stop-1`` (all by default; from ``state`` if given).

    A later run whose columns are all in ``shared`` (equal in every row) builds its matrices once and
    applies them as plain matrix products. With ``records`` a list, each run appends a :class:`Record`
    (``None`` for an empty product); ``checkpoint`` keeps the state after each run in it too. With
    ``trace`` a dict, ``trace[k]`` is the state entering step ``k`` (and ``trace[len(steps)]`` the last).
    Without autograd, a shared run reuses the matrices it built last time while its angles are
    unchanged (``lowered[-1]["last_operands"]``: the shift rule's passes differ in one column).
    """
    n = plan.n_qubits
    last = None if torch.is_grad_enabled() else lowered[-1]["last_operands"]
    batch = angles.shape[0] if state is None else state.shape[1]
    complex_dtype = lowered[-1]["complex_dtype"]
    for k in range(start, len(plan.steps) if stop is None else stop):
        step, tables = plan.steps[k], lowered[k]
        if trace is not None:
            trace[k] = state
        if isinstance(step, PermutationStep):
            state = permute(state, tables)
            continue
        if step.chain.a.shape[0] == 0:  # no gates at all: |0…0⟩
            state = basis_state(batch, n, complex_dtype, angles.device)
            if records is not None:
                records.append(None)
            continue
        ops = None
        if isinstance(step, ProductStep):
            mats, fused = chain_matrices(tables, angles)
            state = product_state(fused)
        else:
            one = angles.shape[0] == 1 or step.chain.angle_columns <= shared
            values = angles[0, tables["columns"].reshape(-1)] if one and last is not None and angles.shape[1] else None
            hit = last.get(k) if values is not None else None
            if hit is not None and torch.equal(hit[0], values):
                mats, fused, ops = hit[1:]
            else:
                mats, fused = chain_matrices(tables, angles[:1] if one else angles)
                ops = rotation_operands(step, mats, fused)
                if values is not None:
                    last[k] = (values, mats, fused, ops)
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


def frozen_map(plan: Plan, lowered: dict, angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``([Re U'; Im U'], [Zᵀ Zᵀ])``: ``[2·2**n, 2**n]`` with ``final state = U' r`` at the frozen angles of
    ``angles[:1]``, ``r = ⊗_w (cos(x_w/2), sin(x_w/2))`` over the wires whose first gate reads data
    (``(1, 0)`` on the others).

    A rotation ``exp(-ix/2 P)`` on ``|0⟩`` is ``cos(x/2)|0⟩ + sin(x/2)(−iP)|0⟩``; the gates after it on
    that wire, then the rest of the circuit ``U`` (its columns: the basis states run through it), map
    those two vectors to the columns of ``U'``. The sign table twice over (``[R, 2·2**n]``) reads the
    Z words from ``[Re ψ; Im ψ]²`` in one product.
    """
    n, dim = plan.n_qubits, 2**plan.n_qubits
    complex_dtype = lowered[-1]["complex_dtype"]
    tables = lowered[0]
    if plan.steps[0].chain.a.shape[0]:
        mats, _ = chain_matrices(tables, angles[:1])
    else:
        mats = [torch.eye(2, dtype=complex_dtype, device=angles.device).expand(1, n, 2, 2)]
    after = mats[1:]
    basis = torch.zeros(n, 2, 2, dtype=complex_dtype, device=angles.device)  # per wire: the two input columns
    basis[:, :, 0] = mats[0][0, :, :, 0]  # the first gate on |0⟩ (the identity where there is none)
    wires = lowered[-1]["data_wires"]
    if len(wires):
        basis[wires, :, 0] = 0
        basis[wires, 0, 0] = 1
        basis[wires, :, 1] = tables["c"][0, wires, :, 0]  # (−iP)|0⟩
    q = basis
    for m in after:
        q = m[0] @ q
    product = kron_block(q.unsqueeze(0), 0, n)[0]  # ⊗_w Q_w, wire 0 most significant
    identity = torch.eye(dim, dtype=complex_dtype, device=angles.device)
    suffix = run(plan, lowered, angles[:1], start=1, state=identity)  # U: column j is basis state j run through
    full = suffix @ product
    return torch.cat([full.real, full.imag]).contiguous(), torch.cat([lowered[-1]["z_signs"].T] * 2, dim=1)


def frozen_expval(lowered: dict, frozen: tuple[torch.Tensor, torch.Tensor], angles: torch.Tensor) -> torch.Tensor:
    """``[B, R]`` Z-word expectation values from a :func:`frozen_map` and the data angles of ``angles``.

    Few operator calls: this is the whole circuit at inference (batch 1 is dispatch-bound).
    """
    tables = lowered[-1]
    n = tables["n_qubits"]
    columns = tables["data_slice"]
    data = angles[:, columns] if columns is not None else angles.index_select(1, tables["data_columns"])
    # [B, D, 2]: cos(x/2 − 0), cos(x/2 − π/2) = cos(x/2), sin(x/2)
    pairs = torch.cos(torch.addcmul(tables["minus_quarter_turn"], data.unsqueeze(-1), tables["half"]))
    wires = tables["data_wires"]
    if tables["n_data_wires"] < n:  # wires without data: (1, 0)
        full = angles.new_zeros(angles.shape[0], n, 2)
        full[:, :, 0] = 1
        full[:, wires] = pairs
        pairs = full
    matrix, signs = frozen
    if _small(pairs):  # rows first: no transposed copies
        return (product_rows(pairs) @ matrix.T).square() @ signs.T
    parts = matrix @ product_vector(pairs)  # [Re ψ; Im ψ]: [2·2**n, B]
    return (signs @ parts.square()).transpose(0, 1)


def probabilities(state: torch.Tensor) -> torch.Tensor:
    """``|ψ|²`` as a contiguous real tensor."""
    return state.real.square() + state.imag.square()


def measure(plan: Plan, lowered: dict, state: torch.Tensor, pauli_actions: list) -> torch.Tensor:
    """``[B, R]`` expectation values of the plan's observables on ``[2**n, B]``."""
    z_signs = lowered[-1]["z_signs"]
    z_part = (z_signs.T @ probabilities(state)).transpose(0, 1) if z_signs is not None else None
    if not plan.other_words:
        return z_part
    columns: dict[int, torch.Tensor] = {}
    if z_part is not None:
        columns.update(zip(plan.z_words, z_part.unbind(1)))
    for (k, _), (source, coeff) in zip(plan.other_words, pauli_actions):
        moved = state.index_select(0, source) * coeff[:, None]
        columns[k] = (state.conj() * moved).sum(dim=0).real
    return torch.stack([columns[k] for k in range(plan.n_outputs)], dim=1)


def measure_cross(plan: Plan, lowered: dict, bra: torch.Tensor, ket: torch.Tensor, pauli_actions: list) -> torch.Tensor:
    """``[N, R]`` real parts ``Re⟨bra|O_r|ket⟩`` for the columns of ``ket[2**n, …]`` (``bra`` broadcasts to it)."""
    z_signs = lowered[-1]["z_signs"]
    dim = ket.shape[0]
    columns: dict[int, torch.Tensor] = {}
    if z_signs is not None:  # the real part first: the sign table stays real (a real product, not a complex one)
        product = (bra.conj() * ket).real.reshape(dim, -1)
        columns.update(zip(plan.z_words, (z_signs.T @ product).unbind(0)))
    for (k, _), (source, coeff) in zip(plan.other_words, pauli_actions):
        moved = ket.index_select(0, source) * coeff.reshape(dim, *[1] * (ket.ndim - 1))
        columns[k] = (bra.conj() * moved).reshape(dim, -1).sum(dim=0).real
    return torch.stack([columns[k] for k in range(plan.n_outputs)], dim=1)


def observable_times_state(plan: Plan, lowered: dict, state: torch.Tensor, grad_output: torch.Tensor, pauli_actions: list) -> torch.Tensor:
    """``λ = Σ_r g_r O_r ψ`` (``[2**n, B]``) for cotangents ``g[B, R]``."""
    z_signs = lowered[-1]["z_signs"]
    lam = state * (z_signs @ grad_output[:, plan.z_words].T) if z_signs is not None else torch.zeros_like(state)
    for (k, _), (source, coeff) in zip(plan.other_words, pauli_actions):
        lam = lam + grad_output[None, :, k] * (state.index_select(0, source) * coeff[:, None])
    return lam


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
    """For rows ``[B, 2**n]``: ``T[B, K, K]`` with ``T[I, J] = Σ_rest conj(λ)[…I…] ψ[…J…]`` over the wires outside the block."""
    batch = state.shape[0]
    left, k, right = 2**start, 2**size, 2 ** (n - start - size)
    if left == 1:  # Tᵀ = ψ λᴴ: the conjugate-transposed operand goes to BLAS without a copy
        return torch.bmm(state.reshape(batch, k, right), lam.reshape(batch, k, right).transpose(1, 2).conj()).transpose(1, 2)
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
    first = (view * _columns_product(columns[h:])[None]).sum(1)
    second = (view * _columns_product(columns[:h])[:, None]).sum(0)
    return torch.cat([_contract_all_but_one(first, columns[:h]), _contract_all_but_one(second, columns[h:])])


def _columns_product(columns: torch.Tensor) -> torch.Tensor:
    """``⊗_w c_w`` of ``columns [k, 2, B]`` → ``[2**k, B]`` (wire 0 most significant)."""
    out = columns[0]
    for c in columns[1:]:
        out = (out[:, None] * c[None]).reshape(-1, out.shape[-1])
    return out


def product_cotangents(lam: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``μ[B, n, 2]`` with ``μ_w[i] = Σ conj(λ[x]) Π_{u≠w} v_u[x_u]`` over the ``x`` whose bit ``w`` is
    ``i``, at a product state ``ψ = ⊗_w v_w`` (``vectors [B, n, 2]``, ``λ [2**n, B]``).

    The transitions of :func:`wire_transitions` at that state are then ``T_w = μ_w v_wᵀ``: two
    passes over ``λ`` (each half of the wires contracted with the other half's product vector),
    then the same on ever smaller tensors.
    """
    columns = vectors.permute(1, 2, 0).conj().resolve_conj().contiguous()
    return _contract_all_but_one(lam, columns).conj().permute(2, 0, 1)


def product_gradients(tables: dict, mats: list[torch.Tensor], cotangents: torch.Tensor, vectors: torch.Tensor, grad: torch.Tensor) -> None:
    """:func:`chain_gradients` of the leading product state from its rank-one transitions
    ``T_w = μ_w v_wᵀ`` (``cotangents`` μ and ``vectors`` v, ``[B, n, 2]``): undoing a gate ``M`` maps
    ``μ → Mᵀμ`` and ``v → Mᴴv`` (2-vectors, not 2×2 matrices)."""
    generator = tables["generator"]
    mu, v = cotangents, vectors
    for d in range(len(mats) - 1, -1, -1):
        wires, columns = tables["rotation_wires"][d], tables["rotation_columns"][d]
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

    For a run whose angles every row shares, only this sum reaches the gradient of those angles: no
    per-row matrices, no transposes.
    """

    def block_matrix(start: int, size: int) -> torch.Tensor:  # T[1, K, K], T[I, J] = Σ conj λ[I] ψ[J]
        left, k = 2**start, 2**size
        ket, bra = state.reshape(left, k, -1), lam.reshape(left, k, -1)
        if left > 1 and ket.shape[2] < SMALL_TRAILING:  # many tiny products: one large one on copies
            ket, bra = ket.transpose(0, 1).reshape(1, k, -1), bra.transpose(0, 1).reshape(1, k, -1)
        return torch.matmul(ket, bra.mH).sum(0).transpose(0, 1).unsqueeze(0)

    return _per_wire(blocks, n, block_matrix, state)


def chain_gradients(tables: dict, mats: list[torch.Tensor], transitions: torch.Tensor, grad: torch.Tensor) -> None:
    """Write ``∂L/∂θ`` of every rotation of a run into ``grad[B, P]``, walking each wire backwards."""
    generator = tables["generator"]
    t = transitions
    for d in range(len(mats) - 1, -1, -1):
        wires, columns = tables["rotation_wires"][d], tables["rotation_columns"][d]
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
    return (1 - 2 * _bit_table(n, device)).to(dtype)


def split_run_gradients(tables: dict, step: RotationStep, mats: list[torch.Tensor], lam: torch.Tensor, state: torch.Tensor, grad: torch.Tensor) -> None:
    """Write ``∂L/∂θ`` summed over the rows of a shared real-then-phase run into ``grad[1, P]``, from
    ``λ`` and ``ψ`` (``[2**n, B]``) between its real gates and its phase.

    The phase's RZ gates need ``Im Σ_x z_w(x) Σ_rows conj(λ(x)) ψ(x)`` (the phase cancels in
    ``conj(λ)ψ``); the real gates only the real part of the transition matrices, which is one real
    product per block on ``[Re | Im]`` side by side.
    """
    n, split = step.chain.n_qubits, step.chain.split
    wires, columns = tables["rotation_wires"], tables["rotation_columns"]
    phase_depths = [d for d in range(split, len(mats)) if len(wires[d])]
    if phase_depths:
        overlap = (lam.conj() * state).sum(1).imag  # [2**n]
        per_wire = _z_table(n, overlap.dtype, overlap.device) @ overlap
        for d in phase_depths:
            grad[0, columns[d]] = per_wire[wires[d]]
    if any(len(wires[d]) for d in range(split)):
        dim = state.shape[0]
        real = summed_wire_transitions(torch.view_as_real(lam).reshape(dim, -1), torch.view_as_real(state).reshape(dim, -1), n, step.blocks)
        chain_gradients(tables, mats[:split], real.to(lam.dtype), grad)


def adjoint_vjp(
    plan: Plan,
    lowered: dict,
    angles: torch.Tensor,
    grad_output: torch.Tensor,
    pauli_actions: list,
    records: list | None = None,
    state: torch.Tensor | None = None,
    summed: frozenset[int] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``Σ_r g_r ∂⟨O_r⟩/∂angles`` as ``[B, P]`` by the adjoint method (no autograd graph kept).

    ``records`` and the final ``state`` of an earlier :func:`run` are reused if given; a record that
    holds its state (``checkpoint``) spares undoing that run on the state. Given ``summed`` (columns
    equal in every row whose gradient is only wanted summed over the rows), returns ``(grad [B, P],
    grad_sum [P])``: a run that reads only such columns adds to ``grad_sum`` (one transition matrix
    for the whole batch) instead of ``grad``; the caller adds ``grad[:, summed].sum(0)`` itself.
    """
    n = plan.n_qubits
    with torch.no_grad():
        if records is None:
            records = []
            state = run(plan, lowered, angles, constant_columns(angles), records, checkpoint=True)
        lam = observable_times_state(plan, lowered, state, grad_output.to(angles.dtype), pauli_actions)
        grad = torch.zeros_like(angles)
        grad_sum = angles.new_zeros(1, angles.shape[1])
        runs = iter(reversed(records))
        for k in range(len(plan.steps) - 1, -1, -1):
            step, tables = plan.steps[k], lowered[k]
            if isinstance(step, PermutationStep):
                lam = permute(lam, tables, inverse=True)
                if state is not None:
                    state = permute(state, tables, inverse=True)
                continue
            record = next(runs)
            if record is None:
                continue
            if isinstance(step, ProductStep):
                vectors = record.fused[..., 0]
                product_gradients(tables, record.mats, product_cotangents(lam, vectors), vectors, grad)
                continue
            whole_batch = summed is not None and record.fused.shape[0] == 1 and step.chain.angle_columns <= summed
            ops = record.ops
            if whole_batch and ops.diagonals is not None:  # a shared real-then-phase run: read it before its phase
                undo_phase = ops.phase().conj()
                lam = lam * undo_phase
                state = record.kept if record.kept is not None else state * undo_phase
                split_run_gradients(tables, step, record.mats, lam, state, grad_sum)
                lam = apply_rotations(lam, ops, step, n, inverse=True, with_phase=False)
                state = None if record.kept is not None else apply_rotations(state, ops, step, n, inverse=True, with_phase=False)
                continue
            if record.kept is not None:
                state = record.state_after()
            if step.chain.rotation.any():  # (a run of fixed gates has nothing to differentiate)
                transitions = (summed_wire_transitions if whole_batch else wire_transitions)(lam, state, n, step.blocks)
                chain_gradients(tables, record.mats, transitions, grad_sum if whole_batch else grad)
            lam = apply_rotations(lam, ops, step, n, inverse=True)
            state = None if record.kept is not None else apply_rotations(state, ops, step, n, inverse=True)
    return grad if summed is None else (grad, grad_sum[0])
