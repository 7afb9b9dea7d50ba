"""The frozen-weight matrix: at inference, the whole circuit as one real matrix per row's data.

With every angle but the data fixed (the weights, the same in every row), the final state is
``ψ = U' r``: ``r = ⊗_w (cos(x_w/2), sin(x_w/2))`` is a real product vector of the data angles read
first on each wire, and ``U' = U · ⊗_w Q_w`` folds everything else (the 2×2 after the data gate on
each wire, the rest of the circuit ``U``) into one matrix, kept as ``[Re U'; Im U']``. Used when
every observable is a Z word and one real product per row costs less than running the circuit (small
batches; at 8 qubits, any batch). It is built the second time the same frozen angles are seen in a row
(inference), so changing weights (training) never pay for it (:meth:`Cache.frozen_matrix`).
"""

from __future__ import annotations

import attrs
import torch

from hqf.backends.torch.cache import Cache, CompiledCircuit
from hqf.backends.torch.plan import PlanTables, StepPlan
from hqf.backends.torch.steps import (
    StepOperands,
    chain_matrices,
    kron_block,
    product_rows,
    product_vector,
    run,
    small_product,
)

#: largest circuit whose frozen-weight matrix (``2·4**n`` reals) is cached for inference
MAX_CACHED_UNITARY_QUBITS = 10
#: multiply-adds that one matrix product in place of a circuit's per-run calls is worth (measured)
UNITARY_CALL_SAVINGS = 2**18


@attrs.frozen(eq=False)
class FrozenMatrix:
    """``parts = [Re U'; Im U']`` (``[2·2**n, 2**n]``) and the Z words' sign table twice over
    (``[R, 2·2**n]``), which reads the Z words from ``[Re ψ; Im ψ]²`` in one product."""

    parts: torch.Tensor
    signs: torch.Tensor


def frozen_key(tables: PlanTables, angles: torch.Tensor) -> torch.Tensor | None:
    """The angles of the columns that are not data (first row), if they are equal in every row."""
    values = angles.index_select(1, tables.frozen_index)
    if angles.shape[0] > 1 and not bool((values == values[:1]).all()):
        return None
    return values[0]


def pays(plan: StepPlan, n_rows: int) -> bool:
    """Whether the frozen-weight matrix applies to ``plan`` (Z words only, at most
    ``MAX_CACHED_UNITARY_QUBITS``) and costs fewer multiply-adds than running ``n_rows`` rows."""
    dim = 2**plan.n_qubits
    if plan.other_words or plan.z_signs is None or plan.n_qubits > MAX_CACHED_UNITARY_QUBITS:
        return False
    return n_rows * 2 * dim * dim <= max(n_rows * 4 * dim * plan.block_work, UNITARY_CALL_SAVINGS)  # real multiply-adds


def cached_matrix(
    cache: Cache, compiled: CompiledCircuit, n_rows: int, key: torch.Tensor | None
) -> FrozenMatrix | None:
    """The frozen-weight matrix of ``compiled`` at the frozen angles ``key`` (the same in all
    ``n_rows`` rows), when it pays and the same key came in the call before; else ``None``."""
    if key is None or not pays(compiled.plan, n_rows):
        return None

    def build() -> FrozenMatrix:
        angles = torch.zeros(1, compiled.circuit.n_params, dtype=key.dtype, device=key.device)
        angles[:, compiled.tables.frozen_index] = key
        return frozen_matrix(compiled.plan, compiled.tables, angles, compiled.operands)

    return cache.frozen_matrix(compiled.circuit, key, build)


def frozen_matrix(
    plan: StepPlan, tables: PlanTables, angles: torch.Tensor, memo: dict[int, StepOperands] | None = None
) -> FrozenMatrix:
    """The :class:`FrozenMatrix` with ``final state = U' r`` at the frozen angles of ``angles[:1]``,
    ``r = ⊗_w (cos(x_w/2), sin(x_w/2))`` over the wires whose first gate reads data (``(1, 0)`` on
    the others).

    A rotation ``exp(-ix/2 P)`` on ``|0⟩`` is ``cos(x/2)|0⟩ + sin(x/2)(−iP)|0⟩``; the gates after it on
    that wire, then the rest of the circuit ``U`` (its columns: the basis states run through it), map
    those two vectors to the columns of ``U'``.
    """
    n, dim = plan.n_qubits, 2**plan.n_qubits
    complex_dtype = tables.complex_dtype
    first = tables.steps[0]
    if plan.steps[0].chain.depth:
        mats, _ = chain_matrices(first, angles[:1])
    else:
        mats = [torch.eye(2, dtype=complex_dtype, device=angles.device).expand(1, n, 2, 2)]
    after = mats[1:]
    basis = torch.zeros(n, 2, 2, dtype=complex_dtype, device=angles.device)  # per wire: the two input columns
    basis[:, :, 0] = mats[0][0, :, :, 0]  # the first gate on |0⟩ (the identity where there is none)
    wires = tables.data_wires
    if len(wires):
        basis[wires, :, 0] = 0
        basis[wires, 0, 0] = 1
        basis[wires, :, 1] = first.c[0, wires, :, 0]  # (−iP)|0⟩
    q = basis
    for m in after:
        q = m[0] @ q
    product = kron_block(q.unsqueeze(0), 0, n)[0]  # ⊗_w Q_w, wire 0 most significant
    identity = torch.eye(dim, dtype=complex_dtype, device=angles.device)
    suffix = run(
        plan, tables, angles[:1], start=1, state=identity, memo=memo
    )  # U: column j is basis state j run through
    full = suffix @ product
    return FrozenMatrix(torch.cat([full.real, full.imag]).contiguous(), torch.cat([tables.z_signs.T] * 2, dim=1))


def frozen_expval(tables: PlanTables, frozen: FrozenMatrix, angles: torch.Tensor) -> torch.Tensor:
    """``[B, R]`` Z-word expectation values from a :class:`FrozenMatrix` and the data angles of ``angles``.

    Few operator calls: this is the whole circuit at inference (batch 1 is dispatch-bound).
    """
    n = tables.n_qubits
    columns = tables.data_slice
    data = angles[:, columns] if columns is not None else angles.index_select(1, tables.data_columns)
    # [B, D, 2]: cos(x/2 − 0), cos(x/2 − π/2) = cos(x/2), sin(x/2)
    pairs = torch.cos(torch.addcmul(tables.minus_quarter_turn, data.unsqueeze(-1), tables.half))
    if tables.n_data_wires < n:  # wires without data: (1, 0)
        full = angles.new_zeros(angles.shape[0], n, 2)
        full[:, :, 0] = 1
        full[:, tables.data_wires] = pairs
        pairs = full
    if small_product(pairs):  # rows first: no transposed copies
        return (product_rows(pairs) @ frozen.parts.T).square() @ frozen.signs.T
    parts = frozen.parts @ product_vector(pairs)  # [Re ψ; Im ψ]: [2·2**n, B]
    return (frozen.signs @ parts.square()).transpose(0, 1)
