"""The cache-blocked CPU kernels (numba): one row's state in passes over tiles that stay in L2.

A row's state is two real arrays (real and imaginary parts, ``2**n`` each). A *pass* names ``k`` of
the ``n`` index bits (always the lowest few, so a tile is made of contiguous runs); its tiles are the
``2**(n-k)`` sets of amplitudes that agree on every other bit. Each tile is copied into a ``2**k``
buffer, every gate of the pass (all on those bits) is applied to it in turn, and it is copied back:
one read and one write of the state per pass instead of per gate. What a pass runs is a list of ops
``(kind, a, b)`` on *local* bits (a tile's bit ``i`` is the pass's ``i``-th lowest index bit):

- ``GATE``: the 2×2 gate ``b`` on local bit ``a``;
- ``PHASE``: the diagonal ``a`` (a group of RZ gates), given per row as the product of two small
  tables, one over the tile's low ``PHASE_SPLIT`` bits and one over its high bits;
- ``LINEAR``: the run of CNOTs ``a`` as one permutation of the tile (out of place);
- ``CZ``: on local bits ``a`` and ``b``.

The backward pass is the adjoint method on the same passes in reverse: the state ``ψ`` and ``λ`` are
tiled together, each gate is undone on both while its rotation's ``Im⟨λ|P|ψ⟩`` is summed, and a
phase's RZ gradients come from the overlap ``Im conj(λ)ψ`` summed per low and per high tile index.
:mod:`hqf.backends.torch.blocked` builds the passes and drives these loops. All kernels release the GIL.
"""

from __future__ import annotations

import numba
import numpy as np

from hqf.backends.torch.gates_cpu import gate_matrices, rotate

#: the kinds of a pass's ops
GATE, PHASE, LINEAR, CZ = 0, 1, 2, 3
#: a phase's table is split between a tile's low bits (this many) and its high bits
PHASE_SPLIT = 7

_JIT = dict(cache=True, nogil=True, fastmath=True)


@numba.njit(inline="always", **_JIT)
def _unrotate(ar, br, ai, bi, ur, vr, ui, vi, inverse, real, kind):
    """Apply ``inverse`` (a gate's adjoint) on the state ``(a, b)`` and on ``λ = (u, v)``; returns
    ``Im⟨λ|P|ψ⟩`` before it for the Pauli ``P`` of a rotation (``kind`` 1: X, 2: Y; 0: none)."""
    total = 0.0
    if kind == 1:
        for t in range(ar.shape[0]):
            total += ur[t] * bi[t] - ui[t] * br[t] + vr[t] * ai[t] - vi[t] * ar[t]
    elif kind == 2:
        for t in range(ar.shape[0]):
            total += vr[t] * ar[t] + vi[t] * ai[t] - ur[t] * br[t] - ui[t] * bi[t]
    rotate(ar, br, ai, bi, inverse, real)
    rotate(ur, vr, ui, vi, inverse, real)
    return total


@numba.njit(**_JIT)
def _halves(x, bit):
    """The bit-0 and bit-1 halves of a tile array for local ``bit``: contiguous runs (a 2-D view by
    run) when they are long, strided columns otherwise (as ``[rows, runs]`` views either way)."""
    span = 1 << bit
    grid = x.reshape(-1, 2 * span)
    return grid[:, :span], grid[:, span:]


@numba.njit(**_JIT)
def apply_gate(re, im, bit, m, real):
    """Apply the 2×2 ``m`` on local ``bit`` of a tile (``real``: its entries are real)."""
    span = 1 << bit
    if span >= 8:
        for lo in range(0, re.shape[0], 2 * span):
            rotate(
                re[lo : lo + span],
                re[lo + span : lo + 2 * span],
                im[lo : lo + span],
                im[lo + span : lo + 2 * span],
                m,
                real,
            )
    else:
        r0, r1 = _halves(re, bit)
        i0, i1 = _halves(im, bit)
        for c in range(span):
            rotate(r0[:, c], r1[:, c], i0[:, c], i1[:, c], m, real)


@numba.njit(**_JIT)
def undo_gate(re, im, lre, lim, bit, m, real, kind):
    """Undo ``m`` on local ``bit`` of a tile of ``ψ`` and of ``λ``; returns ``Im⟨λ|P|ψ⟩`` before it."""
    span = 1 << bit
    total = 0.0
    m = m.conj().T.copy()
    if span >= 8:
        for lo in range(0, re.shape[0], 2 * span):
            a, b = slice(lo, lo + span), slice(lo + span, lo + 2 * span)
            total += _unrotate(re[a], re[b], im[a], im[b], lre[a], lre[b], lim[a], lim[b], m, real, kind)
        return total
    # short spans: one pair at a time, by unsigned index (no wraparound tests)
    shift, one, mask = np.uint64(bit), np.uint64(1), np.uint64(span - 1)
    r00, i00, r01, i01 = m[0, 0].real, m[0, 0].imag, m[0, 1].real, m[0, 1].imag
    r10, i10, r11, i11 = m[1, 0].real, m[1, 0].imag, m[1, 1].real, m[1, 1].imag
    for i in range(np.uint64(re.shape[0] >> 1)):
        a = ((i >> shift) << (shift + one)) | (i & mask)
        b = a + np.uint64(span)
        xr, yr, xi, yi, ur, vr, ui, vi = re[a], re[b], im[a], im[b], lre[a], lre[b], lim[a], lim[b]
        if kind == 1:
            total += ur * yi - ui * yr + vr * xi - vi * xr
        elif kind == 2:
            total += vr * xr + vi * xi - ur * yr - ui * yi
        re[a], im[a] = r00 * xr - i00 * xi + r01 * yr - i01 * yi, r00 * xi + i00 * xr + r01 * yi + i01 * yr
        re[b], im[b] = r10 * xr - i10 * xi + r11 * yr - i11 * yi, r10 * xi + i10 * xr + r11 * yi + i11 * yr
        lre[a], lim[a] = r00 * ur - i00 * ui + r01 * vr - i01 * vi, r00 * ui + i00 * ur + r01 * vi + i01 * vr
        lre[b], lim[b] = r10 * ur - i10 * ui + r11 * vr - i11 * vi, r10 * ui + i10 * ur + r11 * vi + i11 * vr
    return total


@numba.njit(**_JIT)
def apply_phase(re, im, low_re, low_im, high_re, high_im, sign):
    """Multiply a tile by ``high[j >> PHASE_SPLIT] · low[j mod 2**PHASE_SPLIT]`` (``sign`` −1: its conjugate)."""
    width = low_re.shape[0]
    for h in range(high_re.shape[0]):
        hr, hi = high_re[h], sign * high_im[h]
        r, m = re[h * width : (h + 1) * width], im[h * width : (h + 1) * width]
        for t in range(width):
            pr = hr * low_re[t] - hi * sign * low_im[t]
            pi = hr * sign * low_im[t] + hi * low_re[t]
            xr, xi = r[t], m[t]
            r[t] = pr * xr - pi * xi
            m[t] = pr * xi + pi * xr


@numba.njit(**_JIT)
def overlap_sums(re, im, lre, lim, low_sum, high_sum):
    """Add ``Im conj(λ_j)ψ_j`` of a tile to ``low_sum[j mod width]`` and ``high_sum[j // width]``."""
    width = low_sum.shape[0]
    for h in range(high_sum.shape[0]):
        a = slice(h * width, (h + 1) * width)
        r, m, u, v = re[a], im[a], lre[a], lim[a]
        acc = 0.0
        for t in range(width):
            o = u[t] * m[t] - v[t] * r[t]
            low_sum[t] += o
            acc += o
        high_sum[h] += acc


@numba.njit(**_JIT)
def _insert_zeros(i, low, high):
    """``i`` with zero bits inserted at positions ``low < high`` (of the result)."""
    i = ((i >> low) << (low + 1)) | (i & ((1 << low) - 1))
    return ((i >> high) << (high + 1)) | (i & ((1 << high) - 1))


@numba.njit(**_JIT)
def permute(re, im, out_re, out_im, low, high):
    """``out[j] = in[high[j >> PHASE_SPLIT] ^ low[j mod 2**PHASE_SPLIT]]``: a run of CNOTs (a linear
    map of the local bits, so its source index is the XOR of a low and a high table)."""
    width = low.shape[0]
    for h in range(high.shape[0]):
        source, r, m = high[h], out_re[h * width : (h + 1) * width], out_im[h * width : (h + 1) * width]
        for t in range(width):
            r[t], m[t] = re[source ^ low[t]], im[source ^ low[t]]


@numba.njit(**_JIT)
def apply_cz(re, im, first, second):
    """CZ on local bits (self-inverse): negate the amplitudes with both bits 1."""
    low, high = min(first, second), max(first, second)
    for i in range(re.shape[0] >> 2):
        a = _insert_zeros(i, low, high) | (1 << first) | (1 << second)
        re[a], im[a] = -re[a], -im[a]


@numba.njit(**_JIT)
def gather(full, base, offsets, run, tile):
    """Copy a tile out of a row's array: run ``h`` (``run`` amplitudes) starts at ``base + offsets[h]``."""
    for h in range(offsets.shape[0]):
        tile[h * run : (h + 1) * run] = full[base + offsets[h] : base + offsets[h] + run]


@numba.njit(**_JIT)
def scatter(tile, base, offsets, run, full):
    """The inverse of :func:`gather`."""
    for h in range(offsets.shape[0]):
        full[base + offsets[h] : base + offsets[h] + run] = tile[h * run : (h + 1) * run]


@numba.njit(**_JIT)
def phase_tables(mats, phase_gate, phase_bit, tile_bits):
    """``(low, high)`` complex ``[n_phases, 2**PHASE_SPLIT]``, ``[n_phases, 2**(tile_bits − PHASE_SPLIT)]``:
    each phase's diagonal over a tile's low and high bits (the product of its RZ gates' diagonals)."""
    low = np.ones((phase_gate.shape[0], 1 << PHASE_SPLIT), dtype=np.complex128)
    high = np.ones((phase_gate.shape[0], 1 << (tile_bits - PHASE_SPLIT)), dtype=np.complex128)
    for p in range(phase_gate.shape[0]):
        for q in range(phase_gate.shape[1]):
            g, bit = phase_gate[p, q], phase_bit[p, q]
            if g < 0:
                break
            table, shift = (low[p], bit) if bit < PHASE_SPLIT else (high[p], bit - PHASE_SPLIT)
            for j in range(table.shape[0]):
                table[j] *= mats[g, 1, 1] if (j >> shift) & 1 else mats[g, 0, 0]
    return low, high


@numba.njit(**_JIT)
def partial_products(vectors, first, count):
    """``out[x] = Π_{i<count} vectors[first+i, x_i]`` with ``x_i`` bit ``count-1-i`` of ``x`` (wire
    ``first`` most significant): the product state of those wires."""
    out = np.ones(1 << count, dtype=np.complex128)
    for i in range(count):
        for x in range((1 << i) - 1, -1, -1):
            y = out[x]
            out[2 * x], out[2 * x + 1] = y * vectors[first + i, 0], y * vectors[first + i, 1]
    return out


@numba.njit(**_JIT)
def _product_state(vectors, high_wires, re, im):
    """A row's product state ``⊗_w vectors[w]`` into ``re``, ``im`` (high half of the wires times the low half)."""
    n = vectors.shape[0]
    high, low = partial_products(vectors, 0, high_wires), partial_products(vectors, high_wires, n - high_wires)
    width = low.shape[0]
    for xh in range(high.shape[0]):
        r, m = re[xh * width : (xh + 1) * width], im[xh * width : (xh + 1) * width]
        for xl in range(width):
            y = high[xh] * low[xl]
            r[xl], m[xl] = y.real, y.imag


@numba.njit(**_JIT)
def _run(prog, mats, re_full, im_full, tiles):
    """Every pass of the program forward on one row's state."""
    k, run, offsets, bases, bounds, ops = prog[0], prog[1], prog[2], prog[3], prog[4], prog[5]
    real, phase_gate, phase_bit, linear_low, linear_high = prog[9], prog[10], prog[11], prog[12], prog[13]
    low, high = phase_tables(mats, phase_gate, phase_bit, k)
    low_re, low_im, high_re, high_im = low.real.copy(), low.imag.copy(), high.real.copy(), high.imag.copy()
    re, im, re2, im2 = tiles[0], tiles[1], tiles[2], tiles[3]
    for p in range(bounds.shape[0]):
        for t in range(bases.shape[1]):
            gather(re_full, bases[p, t], offsets[p], run, re)
            gather(im_full, bases[p, t], offsets[p], run, im)
            for o in range(bounds[p, 0], bounds[p, 1]):
                kind, a, b = ops[o, 0], ops[o, 1], ops[o, 2]
                if kind == GATE:
                    apply_gate(re, im, a, mats[b], real[b])
                elif kind == PHASE:
                    apply_phase(re, im, low_re[a], low_im[a], high_re[a], high_im[a], 1.0)
                elif kind == LINEAR:
                    permute(re, im, re2, im2, linear_low[a, 0], linear_high[a, 0])
                    re, im, re2, im2 = re2, im2, re, im
                else:
                    apply_cz(re, im, a, b)
            scatter(re, bases[p, t], offsets[p], run, re_full)
            scatter(im, bases[p, t], offsets[p], run, im_full)


@numba.njit(**_JIT)
def _unrun(prog, mats, re_full, im_full, lre_full, lim_full, tiles, grad):
    """Every pass in reverse on ``ψ`` and ``λ`` of one row, adding the gates' gradients to ``grad[P]``."""
    k, run, offsets, bases, bounds, ops = prog[0], prog[1], prog[2], prog[3], prog[4], prog[5]
    columns, kinds, real, phase_gate, phase_bit, linear_low, linear_high = (
        prog[6],
        prog[7],
        prog[9],
        prog[10],
        prog[11],
        prog[12],
        prog[13],
    )
    low, high = phase_tables(mats, phase_gate, phase_bit, k)
    low_re, low_im, high_re, high_im = low.real.copy(), low.imag.copy(), high.real.copy(), high.imag.copy()
    low_sum, high_sum = np.zeros(low.shape), np.zeros(high.shape)
    re, im, lre, lim, re2, im2 = tiles[0], tiles[1], tiles[2], tiles[3], tiles[4], tiles[5]
    for p in range(bounds.shape[0] - 1, -1, -1):
        for t in range(bases.shape[1]):
            for full, tile in ((re_full, re), (im_full, im), (lre_full, lre), (lim_full, lim)):
                gather(full, bases[p, t], offsets[p], run, tile)
            for o in range(bounds[p, 1] - 1, bounds[p, 0] - 1, -1):
                kind, a, b = ops[o, 0], ops[o, 1], ops[o, 2]
                if kind == GATE:
                    value = undo_gate(re, im, lre, lim, a, mats[b], real[b], kinds[b] if columns[b] >= 0 else 0)
                    if columns[b] >= 0:
                        grad[columns[b]] += value
                elif kind == PHASE:
                    overlap_sums(re, im, lre, lim, low_sum[a], high_sum[a])
                    apply_phase(re, im, low_re[a], low_im[a], high_re[a], high_im[a], -1.0)
                    apply_phase(lre, lim, low_re[a], low_im[a], high_re[a], high_im[a], -1.0)
                elif kind == LINEAR:
                    permute(re, im, re2, im2, linear_low[a, 1], linear_high[a, 1])
                    re, im, re2, im2 = re2, im2, re, im
                    permute(lre, lim, re2, im2, linear_low[a, 1], linear_high[a, 1])
                    lre, lim, re2, im2 = re2, im2, lre, lim
                else:
                    apply_cz(re, im, a, b)
                    apply_cz(lre, lim, a, b)
            for full, tile in ((re_full, re), (im_full, im), (lre_full, lre), (lim_full, lim)):
                scatter(tile, bases[p, t], offsets[p], run, full)
    for p in range(phase_gate.shape[0]):  # RZ on local bit b: Σ_j z_b(j) Im conj(λ_j)ψ_j
        for q in range(phase_gate.shape[1]):
            g, bit = phase_gate[p, q], phase_bit[p, q]
            if g < 0:
                break
            sums, shift = (low_sum[p], bit) if bit < PHASE_SPLIT else (high_sum[p], bit - PHASE_SPLIT)
            for j in range(sums.shape[0]):
                grad[columns[g]] += -sums[j] if (j >> shift) & 1 else sums[j]


@numba.njit(**_JIT)
def _z_values(re, im, signs_high, signs_low, kinds, out):
    """``out[K]``: the Z words' values (``kinds``: 0 high wires only, 1 low only, 2 both; a word's sign
    is ``signs_high[q, xh] · signs_low[q, xl]``)."""
    width = signs_low.shape[1]
    rows, cols = np.zeros(signs_high.shape[1]), np.zeros(width)
    spanning = np.nonzero(kinds == 2)[0]
    out[:] = 0.0
    for xh in range(rows.shape[0]):
        r, m = re[xh * width : (xh + 1) * width], im[xh * width : (xh + 1) * width]
        for xl in range(width):
            p = r[xl] * r[xl] + m[xl] * m[xl]
            rows[xh] += p
            cols[xl] += p
            for q in spanning:
                out[q] += p * signs_high[q, xh] * signs_low[q, xl]
    for q in range(kinds.shape[0]):
        if kinds[q] == 0:
            out[q] = np.sum(rows * signs_high[q])
        elif kinds[q] == 1:
            out[q] = np.sum(cols * signs_low[q])


@numba.njit(**_JIT)
def _cotangents(lre, lim, vectors, high_wires):
    """``mu[w, i] = Σ_{x: x_w = i} conj(λ[x]) Π_{u≠w} v_u[x_u]`` at the product state (each half of the
    wires contracted with the other half's product in one pass, then the halves wire by wire)."""
    n = vectors.shape[0]
    high, low = partial_products(vectors, 0, high_wires), partial_products(vectors, high_wires, n - high_wires)
    f_high, f_low = np.zeros(high.shape[0], dtype=np.complex128), np.zeros(low.shape[0], dtype=np.complex128)
    width = low.shape[0]
    for xh in range(high.shape[0]):
        for xl in range(width):
            lam = lre[xh * width + xl] - 1j * lim[xh * width + xl]
            f_high[xh] += lam * low[xl]
            f_low[xl] += lam * high[xh]
    mu = np.zeros((n, 2), dtype=np.complex128)
    for w in range(n):
        part, first, count = (f_high, 0, high_wires) if w < high_wires else (f_low, high_wires, n - high_wires)
        for x in range(part.shape[0]):
            y = part[x]
            for i in range(count):
                if first + i != w:
                    y *= vectors[first + i, (x >> (count - 1 - i)) & 1]
            mu[w, (x >> (count - 1 - (w - first))) & 1] += y
    return mu


@numba.njit(**_JIT)
def _product_gradients(mu, vectors, mats, columns, rotation, generator, grad):
    """Add each product-state rotation's ``Im μᵀPv`` to ``grad[column]``, walking every wire's gates
    backwards (``μ → Mᵀμ``, ``v → Mᴴv``)."""
    depth, n = columns.shape
    for w in range(n):
        m0, m1, v0, v1 = mu[w, 0], mu[w, 1], vectors[w, 0], vectors[w, 1]
        for d in range(depth - 1, -1, -1):
            if rotation[d, w]:
                p = generator[d, w]
                grad[columns[d, w]] += (m0 * (p[0, 0] * v0 + p[0, 1] * v1) + m1 * (p[1, 0] * v0 + p[1, 1] * v1)).imag
            if d:
                m = mats[d, w]
                m0, m1 = m[0, 0] * m0 + m[1, 0] * m1, m[0, 1] * m0 + m[1, 1] * m1
                v0, v1 = (
                    m[0, 0].conjugate() * v0 + m[1, 0].conjugate() * v1,
                    m[0, 1].conjugate() * v0 + m[1, 1].conjugate() * v1,
                )


@numba.njit(**_JIT)
def forward_rows(first, last, angles, vectors, prog, readout, out, final):
    """``out[row, K]``: the Z words' values of rows ``first … last-1`` (``readout``: the signs and kinds
    of :func:`_z_values`; the product state of row ``r`` is ``⊗_w vectors[r, w]``), and each row's
    final state in ``final[row] = (re, im)`` unless ``final`` is empty."""
    dim = 1 << vectors.shape[1]
    re_full, im_full, tiles = np.empty(dim), np.empty(dim), np.empty((4, 1 << prog[0]))
    for r in range(first, last):
        mats = gate_matrices(angles[r], prog[6], prog[7], prog[8])
        _product_state(vectors[r], readout[3], re_full, im_full)
        _run(prog, mats, re_full, im_full, tiles)
        _z_values(re_full, im_full, readout[0], readout[1], readout[2], out[r])
        if final.shape[0]:
            final[r, 0], final[r, 1] = re_full, im_full


@numba.njit(**_JIT)
def backward_rows(first, last, angles, vectors, product_mats, product, prog, readout, grad_output, grad, final):
    """``grad[row, P]`` of ``L = Σ grad_output ⊙ ⟨Z⟩`` for rows ``first … last-1``: each row's final
    state (``final[row]``, or recomputed where ``final`` is empty) is walked back with
    ``λ = Σ_q g_q Z_q ψ`` (``product``: the product state's columns, rotation flags and generators)."""
    n = vectors.shape[1]
    dim, high_wires = 1 << n, readout[3]
    signs_high, signs_low, kinds = readout[0], readout[1], readout[2]
    re_full, im_full, lre_full, lim_full = np.empty(dim), np.empty(dim), np.empty(dim), np.empty(dim)
    tiles = np.empty((6, 1 << prog[0]))
    width = signs_low.shape[1]
    for r in range(first, last):
        mats = gate_matrices(angles[r], prog[6], prog[7], prog[8])
        if final.shape[0]:
            re_full[:], im_full[:] = final[r, 0], final[r, 1]
        else:
            _product_state(vectors[r], high_wires, re_full, im_full)
            _run(prog, mats, re_full, im_full, tiles)
        weight_high, weight_low = np.zeros(signs_high.shape[1]), np.zeros(width)
        for q in range(kinds.shape[0]):
            if kinds[q] == 0:
                weight_high += grad_output[r, q] * signs_high[q]
            elif kinds[q] == 1:
                weight_low += grad_output[r, q] * signs_low[q]
        spanning = np.nonzero(kinds == 2)[0]
        for xh in range(weight_high.shape[0]):
            for xl in range(width):
                x = xh * width + xl
                w = weight_high[xh] + weight_low[xl]
                for q in spanning:
                    w += grad_output[r, q] * signs_high[q, xh] * signs_low[q, xl]
                lre_full[x], lim_full[x] = w * re_full[x], w * im_full[x]
        _unrun(prog, mats, re_full, im_full, lre_full, lim_full, tiles, grad[r])
        mu = _cotangents(lre_full, lim_full, vectors[r], high_wires)
        _product_gradients(mu, vectors[r], product_mats[r], product[0], product[1], product[2], grad[r])
