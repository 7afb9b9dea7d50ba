"""The fused CPU kernels (numba): a whole circuit gate by gate on tiles of ``LANES`` rows that stay in cache.

A tile's state is ``2**n × LANES`` real and imaginary parts (32 KiB at 8 qubits). Its product state is
built from the rows' per-wire vectors, then each gate is one vectorised pass over the tile, a run's
trailing RZ gates one diagonal phase, a CNOT/CZ run one signed row permutation, and the Z read-out comes
last: no operator calls between gates. The backward pass is the adjoint method on the same tiles: it
undoes each gate on the state and on ``λ`` and reads the rotation's gradient ``Im⟨λ|P|ψ⟩`` in the same
loop, summed over the rows; a phase's RZ gradients come from one overlap vector; at the product state,
per-wire cotangent 2-vectors give the per-row gradients of its angles.

What the kernels run is a :class:`~hqf.backends.torch.fused.FusedProgram` (its ``ops``: ``(kind, index)``
with the kinds below); :mod:`hqf.backends.torch.fused` builds it from a plan and drives these loops.
All kernels release the GIL.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from hqf.backends.torch.gates_cpu import rotate

#: rows per tile: one AVX-512 vector of float64
LANES = 8

#: the kinds of a program's ops: a one-qubit gate, a diagonal phase, a signed permutation
GATE, PHASE, PERMUTATION = 0, 1, 2


@numba.njit(cache=True, nogil=True, fastmath=True)
def phases(n, mats, wires, phase_gates):
    """``[n_phases, 2**n]`` complex: each phase's diagonal, the product of its gates' diagonals."""
    dim = 1 << n
    out = np.ones((phase_gates.shape[0], dim), dtype=np.complex128)
    for p in range(phase_gates.shape[0]):
        for q in range(phase_gates.shape[1]):
            g = phase_gates[p, q]
            if g < 0:
                break
            shift = n - 1 - wires[g]
            d0, d1 = mats[g, 0, 0], mats[g, 1, 1]
            for i in range(dim):
                out[p, i] *= d1 if (i >> shift) & 1 else d0
    return out


# Every inner loop below runs over ``range(k)`` on slices: an index that numba cannot prove
# non-negative (``t + span``) gets a wraparound test on every access, which stops LLVM from vectorising
# (measured: 40 gates 1.4 → 0.43 ms a batch).


@numba.njit(cache=True, nogil=True, fastmath=True)
def apply_gate(re, im, n, wire, m, real):
    """Apply one 2×2 gate ``m`` (``real``: its entries are real) on ``wire`` of a tile (``re``, ``im``:
    ``[2**n · LANES]``)."""
    span = (1 << (n - 1 - wire)) * LANES  # the rows with the wire's bit 0, then those with bit 1
    for lo in range(0, re.shape[0], 2 * span):
        rotate(
            re[lo : lo + span],
            re[lo + span : lo + 2 * span],
            im[lo : lo + span],
            im[lo + span : lo + 2 * span],
            m,
            real,
        )


@numba.njit(cache=True, nogil=True, fastmath=True)
def apply_phase(re, im, phase_re, phase_im):
    """Multiply a tile by a diagonal phase given per element (``[2**n · LANES]``)."""
    for t in range(re.shape[0]):
        xr, xi, pr, pi = re[t], im[t], phase_re[t], phase_im[t]
        re[t] = pr * xr - pi * xi
        im[t] = pr * xi + pi * xr


@numba.njit(cache=True, nogil=True, fastmath=True)
def _undo_phase(re, im, lre, lim, phase_re, phase_im, overlap):
    """Undo a phase on the state and on ``λ`` (one pass), adding ``Im conj(λ)ψ`` to ``overlap``."""
    for t in range(re.shape[0]):
        xr, xi, ur, ui, pr, pi = re[t], im[t], lre[t], lim[t], phase_re[t], phase_im[t]
        overlap[t] += ur * xi - ui * xr
        re[t], im[t] = pr * xr + pi * xi, pr * xi - pi * xr
        lre[t], lim[t] = pr * ur + pi * ui, pr * ui - pi * ur


@numba.njit(cache=True, nogil=True, fastmath=True)
def permute(re, im, out_re, out_im, index, sign):
    """``out[i] = sign[i]·in[index[i]]`` on the rows (``LANES`` elements) of a tile."""
    dim = index.shape[0]
    r, m = re.reshape(dim, LANES), im.reshape(dim, LANES)
    out_r, out_m = out_re.reshape(dim, LANES), out_im.reshape(dim, LANES)
    for i in range(dim):
        k, s = index[i], sign[i]
        for t in range(LANES):
            out_r[i, t] = s * r[k, t]
            out_m[i, t] = s * m[k, t]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _undo_gate(re, im, lre, lim, n, wire, m, kind):
    """Undo a gate ``M`` on ``wire`` of the state and of ``λ`` (one pass over both); returns
    ``Σ_lanes Im⟨λ|P|ψ⟩`` before the undo for the Pauli ``P`` of a rotation (``kind`` 1: X, 2: Y,
    3: Z; 0: none)."""
    span = (1 << (n - 1 - wire)) * LANES
    m00, m01, m10, m11 = m[0, 0].conjugate(), m[1, 0].conjugate(), m[0, 1].conjugate(), m[1, 1].conjugate()
    r00, i00, r01, i01, r10, i10, r11, i11 = (
        m00.real,
        m00.imag,
        m01.real,
        m01.imag,
        m10.real,
        m10.imag,
        m11.real,
        m11.imag,
    )
    total = 0.0
    for lo in range(0, re.shape[0], 2 * span):
        ar, br, ai, bi = (
            re[lo : lo + span],
            re[lo + span : lo + 2 * span],
            im[lo : lo + span],
            im[lo + span : lo + 2 * span],
        )
        lar, lbr, lai, lbi = (
            lre[lo : lo + span],
            lre[lo + span : lo + 2 * span],
            lim[lo : lo + span],
            lim[lo + span : lo + 2 * span],
        )
        for t in range(span):
            xr, yr, xi, yi = ar[t], br[t], ai[t], bi[t]
            ur, vr, ui, vi = lar[t], lbr[t], lai[t], lbi[t]
            if kind == 1:  # Im(conj(la)·b + conj(lb)·a)
                total += ur * yi - ui * yr + vr * xi - vi * xr
            elif kind == 2:  # Im(-i conj(la)·b + i conj(lb)·a) = Re(conj(lb)·a) − Re(conj(la)·b)
                total += vr * xr + vi * xi - ur * yr - ui * yi
            elif kind == 3:  # Im(conj(la)·a − conj(lb)·b)
                total += ur * xi - ui * xr - vr * yi + vi * yr
            ar[t] = r00 * xr - i00 * xi + r01 * yr - i01 * yi
            ai[t] = r00 * xi + i00 * xr + r01 * yi + i01 * yr
            br[t] = r10 * xr - i10 * xi + r11 * yr - i11 * yi
            bi[t] = r10 * xi + i10 * xr + r11 * yi + i11 * yr
            lar[t] = r00 * ur - i00 * ui + r01 * vr - i01 * vi
            lai[t] = r00 * ui + i00 * ur + r01 * vi + i01 * vr
            lbr[t] = r10 * ur - i10 * ui + r11 * vr - i11 * vi
            lbi[t] = r10 * ui + i10 * ur + r11 * vi + i11 * vr
    return total


@numba.njit(cache=True, nogil=True, fastmath=True)
def product_matrices(angles, columns, rotation, a, b, c):
    """``(mats [B, D, n, 2, 2], vectors [B, n, 2])``: the product state's gate matrices
    ``a + cos(θ/2)·b + sin(θ/2)·c`` for every row, depth and wire, and each wire's vector (the first
    column of the wire's gates multiplied together)."""
    batch, (depth, n) = angles.shape[0], columns.shape
    mats = np.empty((batch, depth, n, 2, 2), dtype=np.complex128)
    vectors = np.empty((batch, n, 2), dtype=np.complex128)
    for r in range(batch):
        for w in range(n):
            v0, v1 = 1.0 + 0j, 0j
            for d in range(depth):
                h = 0.5 * angles[r, columns[d, w]] if rotation[d, w] else 0.0
                cos, sin = math.cos(h), math.sin(h)
                m = mats[r, d, w]
                for i in range(2):
                    for j in range(2):
                        m[i, j] = a[d, w, i, j] + cos * b[d, w, i, j] + sin * c[d, w, i, j]
                v0, v1 = m[0, 0] * v0 + m[0, 1] * v1, m[1, 0] * v0 + m[1, 1] * v1
            vectors[r, w, 0], vectors[r, w, 1] = v0, v1
    return mats, vectors


@numba.njit(cache=True, nogil=True, fastmath=True)
def partial_products(vectors, b0, first, count, out):
    """``out[x · LANES + t] = Π_{k<count} v_{first+k}[x_k]`` (complex) for each lane ``t``, where
    ``x_k`` is bit ``count-1-k`` of ``x`` (wire ``first`` most significant): the product state of those
    wires."""
    for t in range(LANES):
        out[t] = 1.0
    for k in range(count):
        w = first + k
        for x in range((1 << k) - 1, -1, -1):
            for t in range(LANES):
                y = out[x * LANES + t]
                out[2 * x * LANES + t] = y * vectors[b0 + t, w, 0]
                out[(2 * x + 1) * LANES + t] = y * vectors[b0 + t, w, 1]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _cotangents(lre, lim, vectors, b0, n, mu):
    """``mu[t, w, i] = Σ_{x: x_w = i} conj(λ[x]) Π_{u≠w} v_u[x_u]`` for the lanes of a tile at the
    product state: two passes over ``λ`` (each half of the wires contracted with the other half's
    product), then the small halves wire by wire."""
    high = n // 2
    low = n - high
    p_low, p_high = (
        np.empty((1 << low) * LANES, dtype=np.complex128),
        np.empty((1 << high) * LANES, dtype=np.complex128),
    )
    partial_products(vectors, b0, high, low, p_low)
    partial_products(vectors, b0, 0, high, p_high)
    f_high, f_low = (
        np.zeros((1 << high) * LANES, dtype=np.complex128),
        np.zeros((1 << low) * LANES, dtype=np.complex128),
    )
    for xh in range(1 << high):
        for xl in range(1 << low):
            x = (xh << low) | xl
            for t in range(LANES):
                lam = lre[x * LANES + t] - 1j * lim[x * LANES + t]
                f_high[xh * LANES + t] += lam * p_low[xl * LANES + t]
                f_low[xl * LANES + t] += lam * p_high[xh * LANES + t]
    for t in range(LANES):
        for w in range(n):
            mu[t, w, 0], mu[t, w, 1] = 0j, 0j
            part, first, count = (f_high, 0, high) if w < high else (f_low, high, low)
            for x in range(1 << count):
                y = part[x * LANES + t]
                for k in range(count):
                    if first + k != w:
                        y *= vectors[b0 + t, first + k, (x >> (count - 1 - k)) & 1]
                mu[t, w, (x >> (count - 1 - (w - first))) & 1] += y


@numba.njit(cache=True, nogil=True, fastmath=True)
def _product_gradients(mu, vectors, mats, b0, columns, rotation, generator, grad_rows):
    """Add each product-state rotation's ``Im μᵀPv`` to ``grad_rows[row, column]`` for the lanes of
    a tile, walking every wire's gates backwards (``μ → Mᵀμ``, ``v → Mᴴv``)."""
    depth, n = columns.shape
    for t in range(LANES):
        r = b0 + t
        for w in range(n):
            m0, m1, v0, v1 = mu[t, w, 0], mu[t, w, 1], vectors[r, w, 0], vectors[r, w, 1]
            for d in range(depth - 1, -1, -1):
                if rotation[d, w]:
                    p = generator[d, w]
                    grad_rows[r, columns[d, w]] += (
                        m0 * (p[0, 0] * v0 + p[0, 1] * v1) + m1 * (p[1, 0] * v0 + p[1, 1] * v1)
                    ).imag
                if d:
                    m = mats[r, d, w]
                    m0, m1 = m[0, 0] * m0 + m[1, 0] * m1, m[0, 1] * m0 + m[1, 1] * m1
                    v0, v1 = (
                        m[0, 0].conjugate() * v0 + m[1, 0].conjugate() * v1,
                        m[0, 1].conjugate() * v0 + m[1, 1].conjugate() * v1,
                    )


@numba.njit(cache=True, nogil=True, fastmath=True)
def _load(state, b0, re, im):
    """A tile's parts from columns ``b0 … b0+LANES-1`` of a complex ``[2**n, B]``."""
    for i in range(state.shape[0]):
        row, r, m = state[i, b0 : b0 + LANES], re[i * LANES : (i + 1) * LANES], im[i * LANES : (i + 1) * LANES]
        for t in range(LANES):
            r[t], m[t] = row[t].real, row[t].imag


@numba.njit(cache=True, nogil=True, fastmath=True)
def _store(re, im, b0, state):
    """A tile's parts into columns ``b0 … b0+LANES-1`` of a complex ``[2**n, B]``."""
    for i in range(state.shape[0]):
        row, r, m = state[i, b0 : b0 + LANES], re[i * LANES : (i + 1) * LANES], im[i * LANES : (i + 1) * LANES]
        for t in range(LANES):
            row[t] = r[t] + 1j * m[t]


@numba.njit(cache=True, nogil=True, fastmath=True)
def forward_tiles(
    vectors, first, last, n, ops, mats, wires, real, phase_re, phase_im, source, sign, z_signs_t, out, final
):
    """Run tiles ``first … last-1`` from the product states ``⊗_w vectors[row, w]`` through the
    program; ``out[K, B]`` gets ⟨Z⟩ (``z_signs_t [K, 2**n]``) and ``final [2**n, B]`` the final state."""
    dim = 1 << n
    size = dim * LANES
    re, im, re2, im2 = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    probs, product = np.empty(size), np.empty(size, dtype=np.complex128)
    for tile in range(first, last):
        b0 = tile * LANES
        partial_products(vectors, b0, 0, n, product)
        for t in range(size):
            re[t], im[t] = product[t].real, product[t].imag
        for o in range(ops.shape[0]):
            kind, k = ops[o, 0], ops[o, 1]
            if kind == GATE:
                apply_gate(re, im, n, wires[k], mats[k], real[k])
            elif kind == PHASE:
                apply_phase(re, im, phase_re[k], phase_im[k])
            else:
                permute(re, im, re2, im2, source[k], sign[k])
                re, re2, im, im2 = re2, re, im2, im
        _store(re, im, b0, final)
        for t in range(size):
            probs[t] = re[t] * re[t] + im[t] * im[t]
        for q in range(z_signs_t.shape[0]):
            acc, signs = out[q, b0 : b0 + LANES], z_signs_t[q]
            for t in range(LANES):
                acc[t] = 0.0
            for i in range(dim):
                p, s = probs[i * LANES : (i + 1) * LANES], signs[i]
                for t in range(LANES):
                    acc[t] += s * p[t]


@numba.njit(cache=True, nogil=True, fastmath=True)
def backward_tiles(
    final,
    grad_output_t,
    first,
    last,
    n,
    ops,
    mats,
    wires,
    kinds,
    columns,
    phase_re,
    phase_im,
    inverse,
    inverse_sign,
    z_signs,
    grad,
    overlap,
    vectors,
    product_mats,
    product_columns,
    product_rotation,
    product_generator,
    grad_rows,
):
    """Undo the program on tiles ``first … last-1`` of ``final`` and ``λ = Σ_q g_q Z_q ψ``
    (``grad_output_t [K, B]``): ``grad[P]`` (summed over the rows) gets the gates' gradients,
    ``overlap[n_phases, 2**n · LANES]`` the phases' ``Σ_rows Im conj(λ)ψ``, and ``grad_rows [B, P]`` the
    gradients of the product state's angles (per row)."""
    dim = 1 << n
    size = dim * LANES
    re, im, lre, lim = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    re2, im2, weight = np.empty(size), np.empty(size), np.empty(size)
    mu = np.empty((LANES, n, 2), dtype=np.complex128)
    for tile in range(first, last):
        b0 = tile * LANES
        _load(final, b0, re, im)
        weight[:] = 0.0
        for i in range(dim):
            w = weight[i * LANES : (i + 1) * LANES]
            for q in range(z_signs.shape[1]):
                s, g = z_signs[i, q], grad_output_t[q, b0 : b0 + LANES]
                for t in range(LANES):
                    w[t] += s * g[t]
        for t in range(size):
            lre[t], lim[t] = weight[t] * re[t], weight[t] * im[t]
        for o in range(ops.shape[0] - 1, -1, -1):
            kind, k = ops[o, 0], ops[o, 1]
            if kind == GATE:
                g = _undo_gate(re, im, lre, lim, n, wires[k], mats[k], kinds[k] if columns[k] >= 0 else 0)
                if columns[k] >= 0:
                    grad[columns[k]] += g
            elif kind == PHASE:
                _undo_phase(re, im, lre, lim, phase_re[k], phase_im[k], overlap[k])
            else:
                permute(re, im, re2, im2, inverse[k], inverse_sign[k])
                re, re2, im, im2 = re2, re, im2, im
                permute(lre, lim, re2, im2, inverse[k], inverse_sign[k])
                lre, re2, lim, im2 = re2, lre, im2, lim
        _cotangents(lre, lim, vectors, b0, n, mu)
        _product_gradients(
            mu, vectors, product_mats, b0, product_columns, product_rotation, product_generator, grad_rows
        )
