"""The trajectories' leading product layer in closed form: the one-qubit gates and noise sites before a
circuit's first two-qubit gate, run on each lane's per-wire 2-vectors instead of the tile.

Before any entangling gate a lane's state is a product ``⊗_w v_w``, and a gate, a drawn Pauli or a damping
branch on wire ``w`` changes ``v_w`` alone, so the layer costs ``O(n)`` per lane and the tile is built once
(:func:`product_tile`). Backward: the cotangent ``λ`` reaching the layer is contracted with every other
wire's ``conj(v_u)`` into one 2-vector ``μ_w`` per wire (:func:`wire_cotangents`), since
``⟨λ|⊗_{u≠w} v_u ⊗ x⟩ = ⟨μ_w|x⟩``; each wire's chain is then undone on 2-vectors, a rotation adding
``Im⟨μ|P|v⟩`` to its gradient (:func:`prefix_backward`).

The layer's ops are ``(kind, index)`` with the kernels' ``GATE`` and ``SITE`` kinds; a gate reads its
row's matrix when its ``mode`` is ``PER_LANE``, else the tile's (row 0).
"""

from __future__ import annotations

import numba
import numpy as np

#: rows per tile (the kernels' ``LANES``)
LANES = 8
#: the op kinds the layer holds (the kernels' ``GATE`` and ``SITE``) and a per-lane gate's mode
GATE, SITE, PER_LANE = 0, 2, 0


@numba.njit(cache=True, nogil=True)
def op_matrix(kind, k, t, b0, mode, row_mats, site_channel, site_matrices_, branches):
    """Lane ``t``'s 2×2 matrix of the layer's op ``(kind, k)``: the gate's, or the site's drawn branch's."""
    if kind == GATE:
        return row_mats[b0 + t, k] if mode[k] == PER_LANE else row_mats[0, k]
    return site_matrices_[site_channel[k], branches[b0 + t, k]]


@numba.njit(cache=True, nogil=True)
def apply_op(v, kind, k, t, b0, mode, row_mats, site_channel, site_matrices_, letters, branches):
    """``v ← M v`` (a 2-vector) for lane ``t``'s matrix ``M`` of the op; a drawn Pauli as a swap and signs."""
    if kind == SITE and letters[site_channel[k], 0] >= 0:
        letter = letters[site_channel[k], branches[b0 + t, k]]
        x, y = v[0], v[1]
        if letter == 1:
            v[0], v[1] = y, x
        elif letter == 2:  # Y|0⟩ = i|1⟩, Y|1⟩ = −i|0⟩
            v[0], v[1] = -1j * y, 1j * x
        elif letter == 3:
            v[1] = -y
        return
    m = op_matrix(kind, k, t, b0, mode, row_mats, site_channel, site_matrices_, branches)
    x, y = v[0], v[1]
    v[0], v[1] = m[0, 0] * x + m[0, 1] * y, m[1, 0] * x + m[1, 1] * y


@numba.njit(cache=True, nogil=True)
def wire_states(prefix, op_wire, b0, n, mode, row_mats, site_channel, site_matrices_, letters, branches, v, history):
    """``v[w, t]`` (complex ``[n, LANES, 2]``): lane ``t``'s vector on wire ``w`` after the layer, from
    ``|0⟩``; ``history[p, t]`` its op ``p``'s wire's vector right after op ``p``."""
    for w in range(n):
        for t in range(LANES):
            v[w, t, 0], v[w, t, 1] = 1.0, 0.0
    for p in range(prefix.shape[0]):
        kind, k, w = prefix[p, 0], prefix[p, 1], op_wire[p]
        for t in range(LANES):
            apply_op(v[w, t], kind, k, t, b0, mode, row_mats, site_channel, site_matrices_, letters, branches)
            history[p, t, 0], history[p, t, 1] = v[w, t, 0], v[w, t, 1]


@numba.njit(cache=True, nogil=True, fastmath=True)
def product_tile(re, im, n, v):
    """The tile ``re``, ``im`` (``[2**n · LANES]``) ← every lane's ``⊗_w v[w, t]`` (wire 0 the highest bit)."""
    vr, vi = np.empty((2, LANES)), np.empty((2, LANES))
    for t in range(LANES):
        re[t], im[t] = 1.0, 0.0
    size = 1
    for w in range(n):
        for t in range(LANES):
            for b in range(2):
                vr[b, t], vi[b, t] = v[w, t, b].real, v[w, t, b].imag
        for j in range(size - 1, -1, -1):  # amplitude j of the first w wires → 2j, 2j + 1 (in place)
            ar, ai = re[j * LANES : (j + 1) * LANES], im[j * LANES : (j + 1) * LANES]
            zr, zi = re[2 * j * LANES : (2 * j + 1) * LANES], im[2 * j * LANES : (2 * j + 1) * LANES]
            orr, oi = re[(2 * j + 1) * LANES : (2 * j + 2) * LANES], im[(2 * j + 1) * LANES : (2 * j + 2) * LANES]
            for t in range(LANES):
                xr, xi = ar[t], ai[t]
                orr[t], oi[t] = xr * vr[1, t] - xi * vi[1, t], xr * vi[1, t] + xi * vr[1, t]
                zr[t], zi[t] = xr * vr[0, t] - xi * vi[0, t], xr * vi[0, t] + xi * vr[0, t]
        size *= 2


@numba.njit(cache=True, nogil=True, fastmath=True)
def contract_high(re, im, half, cr, ci):
    """``a[j] ← conj(c0)·a[j] + conj(c1)·a[half + j]`` per lane (``c = cr + i·ci``, ``[2, LANES]``): the
    highest remaining wire contracted with ``c``, in place."""
    for j in range(half):
        ar, ai = re[j * LANES : (j + 1) * LANES], im[j * LANES : (j + 1) * LANES]
        br, bi = re[(half + j) * LANES : (half + j + 1) * LANES], im[(half + j) * LANES : (half + j + 1) * LANES]
        for t in range(LANES):
            xr, xi, yr, yi = ar[t], ai[t], br[t], bi[t]
            ar[t] = cr[0, t] * xr + ci[0, t] * xi + cr[1, t] * yr + ci[1, t] * yi
            ai[t] = cr[0, t] * xi - ci[0, t] * xr + cr[1, t] * yi - ci[1, t] * yr


@numba.njit(cache=True, nogil=True, fastmath=True)
def contract_low(re, im, half, cr, ci):
    """``a[j] ← conj(c0)·a[2j] + conj(c1)·a[2j + 1]`` per lane: the lowest remaining wire contracted, in place."""
    for j in range(half):
        xr, xi = re[2 * j * LANES : (2 * j + 1) * LANES], im[2 * j * LANES : (2 * j + 1) * LANES]
        yr, yi = re[(2 * j + 1) * LANES : (2 * j + 2) * LANES], im[(2 * j + 1) * LANES : (2 * j + 2) * LANES]
        ar, ai = re[j * LANES : (j + 1) * LANES], im[j * LANES : (j + 1) * LANES]
        for t in range(LANES):
            a, b, c, d = xr[t], xi[t], yr[t], yi[t]
            ar[t] = cr[0, t] * a + ci[0, t] * b + cr[1, t] * c + ci[1, t] * d
            ai[t] = cr[0, t] * b - ci[0, t] * a + cr[1, t] * d - ci[1, t] * c


@numba.njit(cache=True, nogil=True, fastmath=True)
def wire_cotangents(lre, lim, scratch_re, scratch_im, n, v, mu):
    """``mu[w, t]`` (complex ``[n, LANES, 2]``): lane ``t``'s ``λ`` (the tile ``lre``, ``lim``, overwritten)
    contracted with ``conj(v[u, t])`` on every wire ``u ≠ w``."""
    cr, ci = np.empty((n, 2, LANES)), np.empty((n, 2, LANES))
    for u in range(n):
        for b in range(2):
            for t in range(LANES):
                cr[u, b, t], ci[u, b, t] = v[u, t, b].real, v[u, t, b].imag
    size = 1 << n  # lre, lim hold λ with wires 0 … w−1 contracted: 2**(n − w) amplitudes per lane
    for w in range(n):
        scratch_re[: size * LANES] = lre[: size * LANES]
        scratch_im[: size * LANES] = lim[: size * LANES]
        rest = size
        for u in range(n - 1, w, -1):
            rest //= 2
            contract_low(scratch_re, scratch_im, rest, cr[u], ci[u])
        for t in range(LANES):
            for b in range(2):
                mu[w, t, b] = scratch_re[b * LANES + t] + 1j * scratch_im[b * LANES + t]
        size //= 2
        if w < n - 1:
            contract_high(lre, lim, size, cr[w], ci[w])


@numba.njit(cache=True, nogil=True)
def prefix_backward(
    prefix,
    op_wire,
    b0,
    gate_column,
    gate_kind,
    mode,
    row_mats,
    site_channel,
    site_matrices_,
    letters,
    branches,
    history,
    mu,
    grad_rows,
    grad_shared,
):
    """Undo the layer on the wires' cotangents ``mu[w, t]`` (from :func:`wire_cotangents`), adding each
    rotation's ``Im⟨μ|P|v⟩`` (``v`` its wire's vector after it, from ``history``) to ``grad_rows[row, column]``
    (``PER_LANE``) or ``grad_shared[column]``."""
    for p in range(prefix.shape[0] - 1, -1, -1):
        kind, k, w = prefix[p, 0], prefix[p, 1], op_wire[p]
        for t in range(LANES):
            u, v_ = mu[w, t, 0], mu[w, t, 1]
            if kind == GATE and gate_column[k] >= 0:
                x, y = history[p, t, 0], history[p, t, 1]
                g = gate_kind[k]
                if g == 1:
                    px, py = y, x
                elif g == 2:
                    px, py = -1j * y, 1j * x
                else:
                    px, py = x, -y
                grad = (u.conjugate() * px + v_.conjugate() * py).imag
                if mode[k] == PER_LANE:
                    grad_rows[b0 + t, gate_column[k]] += grad
                else:
                    grad_shared[gate_column[k]] += grad
            if kind == SITE and letters[site_channel[k], 0] >= 0:  # a Pauli is its own adjoint
                apply_op(mu[w, t], kind, k, t, b0, mode, row_mats, site_channel, site_matrices_, letters, branches)
            else:
                m = op_matrix(kind, k, t, b0, mode, row_mats, site_channel, site_matrices_, branches)
                mu[w, t, 0] = m[0, 0].conjugate() * u + m[1, 0].conjugate() * v_
                mu[w, t, 1] = m[0, 1].conjugate() * u + m[1, 1].conjugate() * v_
