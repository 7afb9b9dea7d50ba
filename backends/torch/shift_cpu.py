"""The paired shift rule on the fused CPU kernels' tiles (numba), and its driver.

Each column's ``π``-shifted final state ``ψ_π`` gives both of its shifted values,
``⟨O⟩(θ ± π/2) = (⟨a|O|a⟩ + ⟨ψ_π|O|ψ_π⟩)/2 ± Re⟨a|O|ψ_π⟩`` with ``a`` the unshifted final state
(:mod:`hqf.backends.torch.shift`). On a tile of ``LANES`` rows (:mod:`hqf.backends.torch.fused_cpu`):

- a later rotation ``exp(-iθ/2 P)``: shifting ``θ`` by ``π`` multiplies the gate by ``exp(-iπ/2 P) = -iP``,
  so ``ψ_π`` is the state after the gate with ``-iP`` applied, run through the rest of the program. The
  tile's state is propagated once; each column branches off it. A branch starts as late as ``-iP``
  commutes with the ops in between (rotations on other wires, phases not on its wire or, for ``Z``,
  any phase), so a layer's columns branch from the state after the whole layer;
- the leading product state ``⊗_w v_w``: shifting a column on wire ``w`` changes ``v_w`` into ``v'``,
  and with ``v⊥`` orthogonal to ``v_w``, ``ψ_π = ⟨v_w|v'⟩ a + ⟨v⊥|v'⟩ a⊥`` where ``a⊥`` is the final
  state of the product state with ``v⊥`` on ``w``: one extra run per wire, not per column.

Only Z read-outs (the fused kernels' ``z_signs``); the values are exactly the shifted ones.
"""

from __future__ import annotations

import functools
import math

import attrs
import numba
import numpy as np
import torch

from hqf.backends.torch.fused import FusedOperands, FusedProgram, program
from hqf.backends.torch.fused_cpu import GATE, LANES, PHASE, apply_gate, apply_phase, partial_products, permute
from hqf.backends.torch.parallel import in_parallel
from hqf.backends.torch.plan import PermutationStep, StepPlan

#: the kind of op beyond the fused program's (:class:`Layout`): two real gates on two wires
PAIR = 3


def broadcast_program(plan: StepPlan, angles: torch.Tensor) -> FusedProgram | None:
    """The fused :class:`~hqf.backends.torch.fused.FusedProgram` of ``plan`` when every column read after
    the product state is equal in every row of ``angles[B, P]`` (ansatz weights; ``B ≥ 1``), else ``None``."""
    if angles.shape[0] == 0:
        return None
    later = set()
    for step in plan.steps[1:]:
        if not isinstance(step, PermutationStep):
            later |= step.chain.angle_columns
    if later:
        columns = sorted(later)
        if not bool((angles[:, columns] == angles[:1, columns]).all()):
            return None
    return program(plan, min(later, default=plan.n_params))


@attrs.frozen(eq=False)
class Layout:
    """A program's ops as the shift kernels run them, and where each column's branch starts.

    ``ops [N, 3]`` is ``(kind, index, second index)``: the program's ops, with two consecutive real
    gates on different wires as one ``PAIR`` (gate, gate). The branch of rotation gate ``gates[m]``
    starts from the state before op ``start[m]`` (``N``: the final state); sorted by ``start``.
    """

    ops: np.ndarray
    start: np.ndarray
    gates: np.ndarray


@functools.lru_cache(maxsize=64)
def layout(p: FusedProgram) -> Layout:
    """The :class:`Layout` of ``p`` (cached): each branch starts as late as ``-iP`` commutes."""
    ops, o = [], 0
    while o < len(p.ops):
        (kind, k), (after, k2) = p.ops[o], p.ops[o + 1] if o + 1 < len(p.ops) else (-1, -1)
        if kind == GATE == after and p.gate_real[k] and p.gate_real[k2] and p.gate_wire[k] != p.gate_wire[k2]:
            ops.append((PAIR, k, k2))
        else:
            ops.append((kind, k, -1))
        o += 1 if ops[-1][2] < 0 else 2
    branches = []
    for o, (kind, k, k2) in enumerate(ops):
        if kind in (GATE, PAIR):  # -iP after the gate
            gates, start = [k] + ([k2] if kind == PAIR else []), o + 1
        elif kind == PHASE:  # -iZ before the phase: it commutes with the diagonal
            gates, start = [h for h in p.phase_gates[k] if h >= 0], o
        else:
            continue
        for g in gates:
            if p.gate_column[g] >= 0:
                s = start
                while s < len(ops) and _commutes(p, g, ops[s]):
                    s += 1
                branches.append((s, g))
    branches.sort()
    return Layout(
        np.array(ops, dtype=np.int64).reshape(-1, 3),
        np.array([s for s, _ in branches], dtype=np.int64),
        np.array([g for _, g in branches], dtype=np.int64),
    )


def _commutes(p: FusedProgram, g: int, op: tuple[int, int, int]) -> bool:
    """Whether the Pauli of gate ``g`` on its wire commutes with ``op`` (a :class:`Layout` op)."""
    wire, (kind, k, k2) = p.gate_wire[g], op
    if kind == GATE:
        return p.gate_wire[k] != wire
    if kind == PAIR:
        return wire not in (p.gate_wire[k], p.gate_wire[k2])
    if kind == PHASE:
        return p.gate_kind[g] == 3 or all(p.gate_wire[h] != wire for h in p.phase_gates[k] if h >= 0)
    return False


def shifted_values(p: FusedProgram, angles: torch.Tensor, threads: int) -> torch.Tensor:
    """``[2, P, B, K]``: the ``⟨Z⟩`` values at every column of ``angles[B, P]`` shifted by ``+π/2``
    (``[0]``) and ``−π/2`` (``[1]``); the tiles split over ``threads``."""
    values = angles.detach().double().numpy()
    operands = FusedOperands(p, values)
    rows = operands.vectors.shape[0]
    padded = np.zeros((rows, values.shape[1]))
    padded[: values.shape[0]] = values
    lay = layout(p)
    out = np.empty((2, values.shape[1], p.z_signs.shape[1], rows))

    def part(first: int, last: int) -> None:
        shift_tiles(
            first,
            last,
            p.n_qubits,
            padded,
            operands.vectors,
            p.product_columns,
            p.product_rotation,
            p.product_a,
            p.product_b,
            p.product_c,
            lay.ops,
            operands.mats,
            p.gate_wire,
            p.gate_real,
            operands.phase_re,
            operands.phase_im,
            p.source,
            p.sign,
            p.z_signs_t,
            lay.start,
            lay.gates,
            p.gate_kind,
            p.gate_column,
            out,
        )

    updates = (rows << p.n_qubits) * (len(lay.ops) + 1) * (len(lay.gates) + 1)  # at most a run per branch
    in_parallel(part, rows // LANES, threads, updates)
    return torch.from_numpy(out[..., : values.shape[0]]).permute(0, 1, 3, 2)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _apply_pair(re, im, n, wire_a, ma, wire_b, mb):
    """Apply two real 2×2 gates on two different wires of a tile in one pass."""
    if wire_a > wire_b:
        wire_a, wire_b, ma, mb = wire_b, wire_a, mb, ma
    outer, inner = (1 << (n - 1 - wire_a)) * LANES, (1 << (n - 1 - wire_b)) * LANES
    a00, a01, a10, a11 = ma[0, 0].real, ma[0, 1].real, ma[1, 0].real, ma[1, 1].real
    b00, b01, b10, b11 = mb[0, 0].real, mb[0, 1].real, mb[1, 0].real, mb[1, 1].real
    for hi in range(0, re.shape[0], 2 * outer):
        for lo in range(hi, hi + outer, 2 * inner):
            for x in (re, im):
                x00, x01 = x[lo : lo + inner], x[lo + inner : lo + 2 * inner]
                x10, x11 = x[lo + outer : lo + outer + inner], x[lo + outer + inner : lo + outer + 2 * inner]
                for t in range(inner):
                    y00, y01 = b00 * x00[t] + b01 * x01[t], b10 * x00[t] + b11 * x01[t]
                    y10, y11 = b00 * x10[t] + b01 * x11[t], b10 * x10[t] + b11 * x11[t]
                    x00[t], x10[t] = a00 * y00 + a01 * y10, a10 * y00 + a11 * y10
                    x01[t], x11[t] = a00 * y01 + a01 * y11, a10 * y01 + a11 * y11


@numba.njit(cache=True, nogil=True, fastmath=True)
def _minus_i_pauli(re, im, out_re, out_im, n, wire, kind):
    """``out = -iP ψ`` for the Pauli ``P`` (``kind`` 1: X, 2: Y, 3: Z) on ``wire`` of a tile ``ψ``."""
    span = (1 << (n - 1 - wire)) * LANES
    for lo in range(0, re.shape[0], 2 * span):
        r0, r1, i0, i1 = (
            re[lo : lo + span],
            re[lo + span : lo + 2 * span],
            im[lo : lo + span],
            im[lo + span : lo + 2 * span],
        )
        s0, s1, j0, j1 = (
            out_re[lo : lo + span],
            out_re[lo + span : lo + 2 * span],
            out_im[lo : lo + span],
            out_im[lo + span : lo + 2 * span],
        )
        for t in range(span):
            if kind == 1:  # -iX: (-i x1, -i x0)
                s0[t], j0[t], s1[t], j1[t] = i1[t], -r1[t], i0[t], -r0[t]
            elif kind == 2:  # -iY: (-x1, x0)
                s0[t], j0[t], s1[t], j1[t] = -r1[t], -i1[t], r0[t], i0[t]
            else:  # -iZ: (-i x0, i x1)
                s0[t], j0[t], s1[t], j1[t] = i0[t], -r0[t], -i1[t], r1[t]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _apply_op(re, im, re2, im2, n, op, mats, wires, real, phase_re, phase_im, source, sign):
    """Apply a :class:`Layout` op to a tile; returns the tile's buffers (a permutation moves it into ``re2, im2``)."""
    kind, k, k2 = op[0], op[1], op[2]
    if kind == GATE:
        apply_gate(re, im, n, wires[k], mats[k], real[k])
    elif kind == PAIR:
        _apply_pair(re, im, n, wires[k], mats[k], wires[k2], mats[k2])
    elif kind == PHASE:
        apply_phase(re, im, phase_re[k], phase_im[k])
    else:
        permute(re, im, re2, im2, source[k], sign[k])
        return re2, im2, re, im
    return re, im, re2, im2


@numba.njit(cache=True, nogil=True, fastmath=True)
def _z_sums(re, im, a_re, a_im, z_signs_t, parts, sums):
    """``sums[q, :LANES] = Σ_x z_q(x)·|ψ(x)|²`` and ``sums[q, LANES:] = Σ_x z_q(x)·Re(conj(a(x))ψ(x))``
    for the lanes of a tile ``ψ`` (``re, im``); ``parts [2**n, 2·LANES]`` is scratch."""
    for i in range(parts.shape[0]):
        x = i * LANES
        for t in range(LANES):
            xr, xi = re[x + t], im[x + t]
            parts[i, t] = xr * xr + xi * xi
            parts[i, LANES + t] = a_re[x + t] * xr + a_im[x + t] * xi
    np.dot(z_signs_t, parts, sums)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _write_values(re, im, a_re, a_im, z_signs_t, value, b0, column, out, parts, sums):
    """``out[0 / 1, column, q, lanes] = (⟨a|Z_q|a⟩ + ⟨ψ|Z_q|ψ⟩)/2 ± Re⟨a|Z_q|ψ⟩`` for the tile's ``ψ``
    (``re, im``), given ``value [K, LANES] = ⟨a|Z_q|a⟩``."""
    _z_sums(re, im, a_re, a_im, z_signs_t, parts, sums)
    for q in range(z_signs_t.shape[0]):
        for t in range(LANES):
            mean = 0.5 * (value[q, t] + sums[q, t])
            out[0, column, q, b0 + t] = mean + sums[q, LANES + t]
            out[1, column, q, b0 + t] = mean - sums[q, LANES + t]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _shifted_vector(angles, r, w, d0, columns, rotation, a, b, c):
    """Wire ``w``'s product-state vector of row ``r`` with the gate at depth ``d0`` shifted by ``π``."""
    v0, v1 = 1.0 + 0j, 0j
    for d in range(columns.shape[0]):
        h = 0.5 * angles[r, columns[d, w]] if rotation[d, w] else 0.0
        if d == d0:
            h += 0.5 * math.pi
        cos, sin = math.cos(h), math.sin(h)
        m00 = a[d, w, 0, 0] + cos * b[d, w, 0, 0] + sin * c[d, w, 0, 0]
        m01 = a[d, w, 0, 1] + cos * b[d, w, 0, 1] + sin * c[d, w, 0, 1]
        m10 = a[d, w, 1, 0] + cos * b[d, w, 1, 0] + sin * c[d, w, 1, 0]
        m11 = a[d, w, 1, 1] + cos * b[d, w, 1, 1] + sin * c[d, w, 1, 1]
        v0, v1 = m00 * v0 + m01 * v1, m10 * v0 + m11 * v1
    return v0, v1


@numba.njit(cache=True, nogil=True, fastmath=True)
def _run_from_product(vectors, n, ops, mats, wires, real, phase_re, phase_im, source, sign, product, re, im, re2, im2):
    """The final state of the product state ``⊗_w vectors[t, w]`` (lane ``t``) run through the whole
    program, in ``(re, im)`` as returned."""
    partial_products(vectors, 0, 0, n, product)
    for t in range(re.shape[0]):
        re[t], im[t] = product[t].real, product[t].imag
    for o in range(ops.shape[0]):
        re, im, re2, im2 = _apply_op(re, im, re2, im2, n, ops[o], mats, wires, real, phase_re, phase_im, source, sign)
    return re, im, re2, im2


@numba.njit(cache=True, nogil=True, fastmath=True)
def shift_tiles(
    first,
    last,
    n,
    angles,
    vectors,
    product_columns,
    product_rotation,
    product_a,
    product_b,
    product_c,
    ops,
    mats,
    wires,
    real,
    phase_re,
    phase_im,
    source,
    sign,
    z_signs_t,
    branch_start,
    branch_gates,
    kinds,
    columns,
    out,
):
    """Both shifted ``⟨Z⟩`` values of every column for tiles ``first … last-1`` into ``out [2, P, K, B]``
    (see the module docstring); a column no gate reads keeps the unshifted values."""
    dim = 1 << n
    size = dim * LANES
    n_out = z_signs_t.shape[0]
    buffers = np.empty((10, size))
    re, im, re2, im2, bre, bim, bre2, bim2 = (
        buffers[0],
        buffers[1],
        buffers[2],
        buffers[3],
        buffers[4],
        buffers[5],
        buffers[6],
        buffers[7],
    )
    a_re, a_im = buffers[8], buffers[9]
    parts, sums = np.empty((dim, 2 * LANES)), np.empty((n_out, 2 * LANES))
    perp_re, perp_im = np.empty(size), np.empty(size)
    product = np.empty(size, dtype=np.complex128)
    tile_vectors = np.empty((LANES, n, 2), dtype=np.complex128)
    value = np.empty((n_out, LANES))
    along, across = np.empty(LANES, dtype=np.complex128), np.empty(LANES, dtype=np.complex128)
    for tile in range(first, last):
        b0 = tile * LANES
        tile_vectors[:] = vectors[b0 : b0 + LANES]
        fr, fi, s2r, s2i = _run_from_product(
            tile_vectors, n, ops, mats, wires, real, phase_re, phase_im, source, sign, product, bre, bim, bre2, bim2
        )
        a_re[:] = fr
        a_im[:] = fi
        _z_sums(a_re, a_im, a_re, a_im, z_signs_t, parts, sums)  # ⟨a|Z_q|a⟩
        for q in range(n_out):
            for t in range(LANES):
                value[q, t] = sums[q, t]
            for col in range(out.shape[1]):  # every column's values until its own are written
                for t in range(LANES):
                    out[0, col, q, b0 + t] = value[q, t]
                    out[1, col, q, b0 + t] = value[q, t]
        for w in range(n):  # the product state's columns, one extra run per wire
            if not product_rotation[:, w].any():
                continue
            for t in range(LANES):
                v0, v1 = vectors[b0 + t, w, 0], vectors[b0 + t, w, 1]
                tile_vectors[t, w, 0], tile_vectors[t, w, 1] = -v1.conjugate(), v0.conjugate()
            fr, fi, s2r, s2i = _run_from_product(
                tile_vectors, n, ops, mats, wires, real, phase_re, phase_im, source, sign, product, bre, bim, bre2, bim2
            )
            perp_re[:] = fr
            perp_im[:] = fi
            for d in range(product_columns.shape[0]):
                if not product_rotation[d, w]:
                    continue
                for t in range(LANES):
                    u0, u1 = _shifted_vector(
                        angles, b0 + t, w, d, product_columns, product_rotation, product_a, product_b, product_c
                    )
                    v0, v1, p0, p1 = (
                        vectors[b0 + t, w, 0],
                        vectors[b0 + t, w, 1],
                        tile_vectors[t, w, 0],
                        tile_vectors[t, w, 1],
                    )
                    along[t] = v0.conjugate() * u0 + v1.conjugate() * u1
                    across[t] = p0.conjugate() * u0 + p1.conjugate() * u1
                for i in range(dim):
                    for t in range(LANES):
                        x = i * LANES + t
                        al, ac = along[t], across[t]
                        bre[x] = al.real * a_re[x] - al.imag * a_im[x] + ac.real * perp_re[x] - ac.imag * perp_im[x]
                        bim[x] = al.real * a_im[x] + al.imag * a_re[x] + ac.real * perp_im[x] + ac.imag * perp_re[x]
                _write_values(bre, bim, a_re, a_im, z_signs_t, value, b0, product_columns[d, w], out, parts, sums)
            for t in range(LANES):
                tile_vectors[t, w, 0], tile_vectors[t, w, 1] = vectors[b0 + t, w, 0], vectors[b0 + t, w, 1]
        partial_products(tile_vectors, 0, 0, n, product)  # the later columns: branch off one propagated state
        for t in range(size):
            re[t], im[t] = product[t].real, product[t].imag
        j = 0
        for o in range(ops.shape[0] + 1):
            while j < branch_start.shape[0] and branch_start[j] == o:
                g = branch_gates[j]
                br, bi, b2r, b2i = bre, bim, bre2, bim2
                _minus_i_pauli(re, im, br, bi, n, wires[g], kinds[g])
                for o2 in range(o, ops.shape[0]):
                    br, bi, b2r, b2i = _apply_op(
                        br, bi, b2r, b2i, n, ops[o2], mats, wires, real, phase_re, phase_im, source, sign
                    )
                _write_values(br, bi, a_re, a_im, z_signs_t, value, b0, columns[g], out, parts, sums)
                j += 1
            if o < ops.shape[0]:
                re, im, re2, im2 = _apply_op(
                    re, im, re2, im2, n, ops[o], mats, wires, real, phase_re, phase_im, source, sign
                )
