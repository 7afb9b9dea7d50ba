"""The trajectories' numba kernels: a circuit gate by gate on tiles of ``LANES`` rows, each row (lane) with
its own branches, and the adjoint backward pass on the same tiles.

A tile holds ``2**n × LANES`` real and imaginary parts (amplitude ``i`` of lane ``t`` at ``i·LANES + t``),
as in the torch backend's fused kernels. A gate whose angle is equal in every row (a weight) is one
2×2 matrix for the tile (``hqf.backends.torch.gates_cpu.rotate``); a gate reading per-row angles (the
data) and a damping site are a 2×2 matrix per lane. At a Pauli channel's site only the lanes that drew
an error are touched, each by a swap and/or sign of its own amplitudes (:func:`pauli_lane`).

Backward: ``λ = Σ_q g_q Z_q ψ`` per lane, then each operation undone in reverse on ``ψ`` and ``λ``
(``λ ← M† λ``); a rotation ``exp(−iθP/2)`` adds ``Im⟨λ|P|ψ⟩`` to its row's gradient before it is undone.
A unitary (a gate, a drawn Pauli) is undone on ``ψ`` by ``M†``. A damping branch ``K_k/√q_k`` is not
unitary and may be singular, so it is never inverted: the backward first reruns the tile's forward,
keeping the state before each such site, and restores ``ψ`` from it.

Under Pauli noise alone a lane's errors are not applied where they are drawn: each lane keeps a Pauli
frame ``X^x Z^z`` (two bit masks; the global phase is dropped, it changes no value or gradient) that
travels with the state. A drawn Pauli multiplies the frame; a CNOT or CZ conjugates it (CNOT(c, t):
``x_t ^= x_c``, ``z_c ^= z_t``; CZ(a, b): ``z_a ^= x_b``, ``z_b ^= x_a``), so a whole run of CNOT/CZ is one
permutation of the tile; before a gate on a wire the frame touches, and at the end, the frame is applied
to that lane (:func:`flip_lane`) and cleared. The backward walks the same way in reverse (``ψ`` and ``λ``
share the frame: both are transformed by the same operators), starting from an empty frame.

The kinds of a program's operations: ``GATE`` (index into the gate tables), ``PERMUTATION`` (a signed
permutation: CNOT, CZ, without frames), ``SITE`` (a noise site, without frames), ``CLIFFORD`` (a CNOT or
CZ with frames; the last of a run applies the run's permutation), ``FRAME_SITE`` (a Pauli site with frames),
``PHASE`` (with frames: a run of shared RZ gates on distinct wires as one diagonal, applied where the run
starts; the errors drawn inside the run commute with its later gates, so they join the frame after it;
before it, a lane whose frame has an X or Y on one of its wires is applied). All kernels release the GIL.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from hqf.backends.torch.gates_cpu import rotate
from hqf.backends.trajectories.product import prefix_backward, product_tile, wire_cotangents, wire_states

#: rows per tile: one AVX-512 vector of float64
LANES = 8

GATE, PERMUTATION, SITE, CLIFFORD, FRAME_SITE, PHASE = 0, 1, 2, 3, 4, 5
#: how a call runs a gate (``mode[g]``): a matrix per lane, one matrix for the tile, inside its phase
PER_LANE, SHARED, IN_PHASE = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def row_matrices(angles, columns, kinds, fixed, per_row):
    """``[rows, G, 2, 2]`` complex: each gate's matrix at the rows' angles (``kinds``: 1 RX, 2 RY, 3 RZ,
    0 a fixed gate ``fixed[g]``): in every row for a gate with ``per_row[g]``, in row 0 for the others
    (the kernels read a shared gate's matrix there; the other rows are left unset)."""
    rows, gates = angles.shape[0], columns.shape[0]
    out = np.empty((rows, gates, 2, 2), dtype=np.complex128)
    for r in range(rows):
        for g in range(gates):
            if r and not per_row[g]:
                continue
            if columns[g] < 0:
                out[r, g] = fixed[g]
                continue
            c, s = math.cos(0.5 * angles[r, columns[g]]), math.sin(0.5 * angles[r, columns[g]])
            k = kinds[g]
            if k == 1:
                out[r, g, 0, 0], out[r, g, 0, 1], out[r, g, 1, 0], out[r, g, 1, 1] = c, -1j * s, -1j * s, c
            elif k == 2:
                out[r, g, 0, 0], out[r, g, 0, 1], out[r, g, 1, 0], out[r, g, 1, 1] = c, -s, s, c
            else:
                out[r, g, 0, 0], out[r, g, 0, 1], out[r, g, 1, 0], out[r, g, 1, 1] = c - 1j * s, 0, 0, c + 1j * s
    return out


@numba.njit(cache=True, nogil=True)
def coefficients(m, adjoint, c):
    """``c[8, LANES]``: the real and imaginary parts of ``m[t]`` (or of ``m[t]†`` when ``adjoint``) per lane,
    in the order ``00, 01, 10, 11``."""
    for t in range(LANES):
        for e in range(4):
            i, j = e >> 1, e & 1
            x = m[t, j, i].conjugate() if adjoint else m[t, i, j]
            c[2 * e, t], c[2 * e + 1, t] = x.real, x.imag


@numba.njit(cache=True, nogil=True, fastmath=True)
def lane_gate(re, im, n, wire, c):
    """Apply lane ``t``'s 2×2 matrix (coefficients ``c[:, t]``, :func:`coefficients`) on ``wire`` of every lane."""
    r00, i00, r01, i01, r10, i10, r11, i11 = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    span = 1 << (n - 1 - wire)
    for lo in range(0, 1 << n, 2 * span):
        for i in range(lo, lo + span):
            ar, ai = re[i * LANES : (i + 1) * LANES], im[i * LANES : (i + 1) * LANES]
            br, bi = re[(i + span) * LANES : (i + span + 1) * LANES], im[(i + span) * LANES : (i + span + 1) * LANES]
            for t in range(LANES):
                xr, yr, xi, yi = ar[t], br[t], ai[t], bi[t]
                ar[t] = r00[t] * xr - i00[t] * xi + r01[t] * yr - i01[t] * yi
                ai[t] = r00[t] * xi + i00[t] * xr + r01[t] * yi + i01[t] * yr
                br[t] = r10[t] * xr - i10[t] * xi + r11[t] * yr - i11[t] * yi
                bi[t] = r10[t] * xi + i10[t] * xr + r11[t] * yi + i11[t] * yr


@numba.njit(cache=True, nogil=True, fastmath=True)
def lane_gate_real(re, im, n, wire, c):
    """:func:`lane_gate` for matrices with real entries (RY, H, X): half the products."""
    r00, r01, r10, r11 = c[0], c[2], c[4], c[6]
    span = 1 << (n - 1 - wire)
    for lo in range(0, 1 << n, 2 * span):
        for i in range(lo, lo + span):
            ar, ai = re[i * LANES : (i + 1) * LANES], im[i * LANES : (i + 1) * LANES]
            br, bi = re[(i + span) * LANES : (i + span + 1) * LANES], im[(i + span) * LANES : (i + span + 1) * LANES]
            for t in range(LANES):
                xr, yr, xi, yi = ar[t], br[t], ai[t], bi[t]
                ar[t] = r00[t] * xr + r01[t] * yr
                ai[t] = r00[t] * xi + r01[t] * yi
                br[t] = r10[t] * xr + r11[t] * yr
                bi[t] = r10[t] * xi + r11[t] * yi


@numba.njit(cache=True, nogil=True, fastmath=True)
def shared_gate(re, im, n, wire, m, real):
    """Apply one 2×2 ``m`` (``real``: its entries are real) on ``wire`` of every lane of a tile."""
    span = (1 << (n - 1 - wire)) * LANES
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
def pauli_lane(re, im, n, wire, t, letter):
    """Apply the Pauli ``letter`` (1 X, 2 Y, 3 Z) on ``wire`` of lane ``t`` only."""
    span = 1 << (n - 1 - wire)
    for lo in range(0, 1 << n, 2 * span):
        for i in range(lo, lo + span):
            a, b = i * LANES + t, (i + span) * LANES + t
            xr, xi, yr, yi = re[a], im[a], re[b], im[b]
            if letter == 1:
                re[a], im[a], re[b], im[b] = yr, yi, xr, xi
            elif letter == 2:  # Y|0⟩ = i|1⟩, Y|1⟩ = −i|0⟩
                re[a], im[a], re[b], im[b] = yi, -yr, -xi, xr
            else:
                re[b], im[b] = -yr, -yi


@numba.njit(cache=True, nogil=True, fastmath=True)
def flip_lane(re, im, n, t, x, z, parity_sign):
    """Lane ``t`` ← ``X^x Z^z`` lane ``t`` (up to a global phase), in place: ``out[i] = (−1)^{|(i ⊕ x) ∧ z|}
    in[i ⊕ x]`` (``parity_sign[j]``: ``(−1)^{|j|}``)."""
    for i in range(1 << n):
        j = i ^ x
        if j < i:
            continue
        a, b = i * LANES + t, j * LANES + t
        si, sj = parity_sign[j & z], parity_sign[i & z]
        ar, ai, br, bi = re[a], im[a], re[b], im[b]
        re[a], im[a] = si * br, si * bi
        if j != i:
            re[b], im[b] = sj * ar, sj * ai


@numba.njit(cache=True, nogil=True)
def conjugate_frames(fx, fz, kind, bit_a, bit_b):
    """Every lane's frame conjugated by CNOT (``kind`` 0; ``a`` control, ``b`` target) or CZ (1) on the
    wires of bits ``bit_a``, ``bit_b``."""
    for t in range(LANES):
        if kind == 0:
            if fx[t] & bit_a:
                fx[t] ^= bit_b
            if fz[t] & bit_b:
                fz[t] ^= bit_a
        else:
            xa, xb = fx[t] & bit_a, fx[t] & bit_b
            if xb:
                fz[t] ^= bit_a
            if xa:
                fz[t] ^= bit_b


@numba.njit(cache=True, nogil=True)
def draw_into_frames(fx, fz, drawn, b0, bit):
    """Multiply each lane's frame by the Pauli it drew (``drawn[b0 + t]``: 0 I, 1 X, 2 Y, 3 Z) on ``bit``'s wire."""
    for t in range(LANES):
        letter = drawn[b0 + t]
        if letter == 1 or letter == 2:
            fx[t] ^= bit
        if letter == 2 or letter == 3:
            fz[t] ^= bit


@numba.njit(cache=True, nogil=True, fastmath=True)
def flush(re, im, n, fx, fz, mask, parity_sign):
    """Apply and clear the frame of every lane whose frame touches a wire of ``mask``."""
    for t in range(LANES):
        if (fx[t] | fz[t]) & mask:
            flip_lane(re, im, n, t, fx[t], fz[t], parity_sign)
            fx[t], fz[t] = 0, 0


@numba.njit(cache=True, nogil=True, fastmath=True)
def flush_x(re, im, n, fx, fz, mask, parity_sign):
    """Apply and clear the frame of every lane whose frame has an X or Y on a wire of ``mask``."""
    for t in range(LANES):
        if fx[t] & mask:
            flip_lane(re, im, n, t, fx[t], fz[t], parity_sign)
            fx[t], fz[t] = 0, 0


@numba.njit(cache=True, nogil=True, fastmath=True)
def apply_phase(re, im, phase_re, phase_im):
    """Multiply a tile by a diagonal given per element (``[2**n · LANES]``)."""
    for x in range(re.shape[0]):
        xr, xi, pr, pi = re[x], im[x], phase_re[x], phase_im[x]
        re[x] = pr * xr - pi * xi
        im[x] = pr * xi + pi * xr


@numba.njit(cache=True, nogil=True, fastmath=True)
def undo_phase(re, im, lre, lim, phase_re, phase_im, overlap):
    """Undo a diagonal on the state and on ``λ``, adding ``Im conj(λ)ψ`` (before the undo) to ``overlap``."""
    for x in range(re.shape[0]):
        xr, xi, ur, ui, pr, pi = re[x], im[x], lre[x], lim[x], phase_re[x], phase_im[x]
        overlap[x] += ur * xi - ui * xr
        re[x], im[x] = pr * xr + pi * xi, pr * xi - pi * xr
        lre[x], lim[x] = pr * ur + pi * ui, pr * ui - pi * ur


@numba.njit(cache=True, nogil=True, fastmath=True)
def permute(re, im, out_re, out_im, index, sign):
    """``out[i] = sign[i]·in[index[i]]`` for every lane of a tile."""
    for i in range(index.shape[0]):
        k, s = index[i], sign[i]
        src_r, src_i = re[k * LANES : (k + 1) * LANES], im[k * LANES : (k + 1) * LANES]
        dst_r, dst_i = out_re[i * LANES : (i + 1) * LANES], out_im[i * LANES : (i + 1) * LANES]
        for t in range(LANES):
            dst_r[t] = s * src_r[t]
            dst_i[t] = s * src_i[t]


@numba.njit(cache=True, nogil=True)
def site_lanes(branches, b0, s, matrices, out):
    """Fill ``out[t]`` with lane ``t``'s branch matrix at site ``s``."""
    for t in range(LANES):
        out[t] = matrices[branches[b0 + t, s]]


@numba.njit(cache=True, nogil=True)
def tile_branch(branches, b0, s):
    """The branch every lane of the tile at row ``b0`` drew at site ``s``, or −1 when they differ."""
    branch = branches[b0, s]
    for t in range(1, LANES):
        if branches[b0 + t, s] != branch:
            return -1
    return branch


@numba.njit(cache=True, nogil=True)
def is_real(m):
    """Whether the 2×2 ``m`` has real entries."""
    return m[0, 0].imag == 0 and m[0, 1].imag == 0 and m[1, 0].imag == 0 and m[1, 1].imag == 0


@numba.njit(cache=True, nogil=True)
def gate_lanes(row_mats, b0, g, out):
    """Fill ``out[t]`` with gate ``g``'s matrix in lane ``t``'s row."""
    for t in range(LANES):
        out[t] = row_mats[b0 + t, g]


@numba.njit(cache=True, nogil=True, fastmath=True)
def run_tile(
    re,
    im,
    re2,
    im2,
    b0,
    n,
    ops,
    gate_wire,
    gate_real,
    mode,
    row_mats,
    source,
    sign,
    site_wire,
    site_channel,
    site_matrices_,
    letters,
    branches,
    drawn,
    hit,
    store,
    store_slot,
    m,
    c,
    clifford,
    parity_sign,
    phase_active,
    phase_mask,
    phase_re,
    phase_im,
    prefix,
    prefix_wire,
    v,
    history,
):
    """Run the program on one tile from ``|0…0⟩``: its leading product layer (``prefix``, on wires
    ``prefix_wire``) in closed form into ``v`` and ``history`` (:func:`~hqf.backends.trajectories.product.wire_states`),
    then its ops; keeps the state before each site with a ``store_slot`` ``>= 0`` in ``store[slot]`` when
    ``store`` has rows. Returns the arrays holding the final state (every frame applied)."""
    wire_states(prefix, prefix_wire, b0, n, mode, row_mats, site_channel, site_matrices_, letters, branches, v, history)
    product_tile(re, im, n, v)
    keep = store.shape[0] > 0
    fx, fz = np.zeros(LANES, dtype=np.int64), np.zeros(LANES, dtype=np.int64)
    for o in range(ops.shape[0]):
        kind, k = ops[o, 0], ops[o, 1]
        if kind == FRAME_SITE:
            if hit[k, b0 // LANES]:
                draw_into_frames(fx, fz, drawn[k], b0, 1 << (n - 1 - site_wire[k]))
        elif kind == CLIFFORD:
            conjugate_frames(fx, fz, clifford[k, 0], 1 << (n - 1 - clifford[k, 1]), 1 << (n - 1 - clifford[k, 2]))
            if clifford[k, 3] >= 0:
                permute(re, im, re2, im2, source[clifford[k, 3]], sign[clifford[k, 3]])
                re, re2, im, im2 = re2, re, im2, im
        elif kind == PHASE:
            if phase_active[k]:
                flush_x(re, im, n, fx, fz, phase_mask[k], parity_sign)
                apply_phase(re, im, phase_re[k], phase_im[k])
        elif kind == GATE:
            if mode[k] == IN_PHASE:
                continue
            flush(re, im, n, fx, fz, 1 << (n - 1 - gate_wire[k]), parity_sign)
            if mode[k] == SHARED:
                shared_gate(re, im, n, gate_wire[k], row_mats[0, k], gate_real[k])
            else:
                gate_lanes(row_mats, b0, k, m)
                coefficients(m, False, c)
                if gate_real[k]:
                    lane_gate_real(re, im, n, gate_wire[k], c)
                else:
                    lane_gate(re, im, n, gate_wire[k], c)
        elif kind == PERMUTATION:
            permute(re, im, re2, im2, source[k], sign[k])
            re, re2, im, im2 = re2, re, im2, im
        else:
            channel = site_channel[k]
            if letters[channel, 0] >= 0:  # a Pauli channel: only the lanes that drew an error
                for t in range(LANES if hit[k, b0 // LANES] else 0):
                    letter = drawn[k, b0 + t]
                    if letter > 0:
                        pauli_lane(re, im, n, site_wire[k], t, letter)
            else:
                if keep:
                    store[store_slot[k], 0] = re
                    store[store_slot[k], 1] = im
                branch = tile_branch(branches, b0, k)
                if branch >= 0:  # every lane drew the same branch: one matrix for the tile
                    drawn_matrix = site_matrices_[channel, branch]
                    shared_gate(re, im, n, site_wire[k], drawn_matrix, is_real(drawn_matrix))
                else:
                    site_lanes(branches, b0, k, site_matrices_[channel], m)
                    coefficients(m, False, c)
                    lane_gate(re, im, n, site_wire[k], c)
    flush(re, im, n, fx, fz, (1 << n) - 1, parity_sign)
    return re, im, re2, im2


@numba.njit(cache=True, nogil=True, fastmath=True)
def forward_tiles(
    first,
    last,
    n,
    ops,
    gate_wire,
    gate_real,
    mode,
    row_mats,
    source,
    sign,
    site_wire,
    site_channel,
    site_matrices_,
    letters,
    branches,
    drawn,
    hit,
    clifford,
    parity_sign,
    phase_active,
    phase_mask,
    phase_re,
    phase_im,
    prefix,
    prefix_wire,
    z_signs_t,
    out,
    final,
):
    """Run tiles ``first … last-1``: ``out[Q, rows]`` gets each row's ``⟨Z word q⟩`` (``z_signs_t[Q, 2**n]``)
    and ``final[tile]`` (``[tiles, 2, 2**n · LANES]``) the final state when it has tiles."""
    dim = 1 << n
    size = dim * LANES
    re, im, re2, im2 = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    store = np.empty((0, 2, size))
    no_slot = np.empty(0, dtype=np.int64)
    m = np.empty((LANES, 2, 2), dtype=np.complex128)
    c = np.empty((8, LANES))
    probs = np.empty(size)
    v = np.empty((n, LANES, 2), dtype=np.complex128)
    history = np.empty((prefix.shape[0], LANES, 2), dtype=np.complex128)
    for tile in range(first, last):
        b0 = tile * LANES
        fr, fi, _, _ = run_tile(
            re,
            im,
            re2,
            im2,
            b0,
            n,
            ops,
            gate_wire,
            gate_real,
            mode,
            row_mats,
            source,
            sign,
            site_wire,
            site_channel,
            site_matrices_,
            letters,
            branches,
            drawn,
            hit,
            store,
            no_slot,
            m,
            c,
            clifford,
            parity_sign,
            phase_active,
            phase_mask,
            phase_re,
            phase_im,
            prefix,
            prefix_wire,
            v,
            history,
        )
        if final.shape[0]:
            final[tile, 0] = fr
            final[tile, 1] = fi
        for x in range(size):
            probs[x] = fr[x] * fr[x] + fi[x] * fi[x]
        for q in range(z_signs_t.shape[0]):
            acc = out[q, b0 : b0 + LANES]
            signs = z_signs_t[q]
            for t in range(LANES):
                acc[t] = 0.0
            for i in range(dim):
                p, s = probs[i * LANES : (i + 1) * LANES], signs[i]
                for t in range(LANES):
                    acc[t] += s * p[t]


@numba.njit(cache=True, nogil=True, fastmath=True)
def undo_gate(re, im, lre, lim, n, wire, c, kind, grad):
    """``ψ ← M†ψ`` and ``λ ← M†λ`` on ``wire`` of every lane (``c``: the coefficients of lane ``t``'s
    ``M†``); before that, ``grad[t] = Im⟨λ|P|ψ⟩`` for the Pauli ``P`` of ``kind`` (1 X, 2 Y, 3 Z; 0: none)."""
    r00, i00, r01, i01, r10, i10, r11, i11 = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    span = 1 << (n - 1 - wire)
    for t in range(LANES):
        grad[t] = 0.0
    for lo in range(0, 1 << n, 2 * span):
        for i in range(lo, lo + span):
            ar, ai = re[i * LANES : (i + 1) * LANES], im[i * LANES : (i + 1) * LANES]
            br, bi = re[(i + span) * LANES : (i + span + 1) * LANES], im[(i + span) * LANES : (i + span + 1) * LANES]
            lar, lai = lre[i * LANES : (i + 1) * LANES], lim[i * LANES : (i + 1) * LANES]
            lbr = lre[(i + span) * LANES : (i + span + 1) * LANES]
            lbi = lim[(i + span) * LANES : (i + span + 1) * LANES]
            for t in range(LANES):
                xr, yr, xi, yi = ar[t], br[t], ai[t], bi[t]
                ur, vr, ui, vi = lar[t], lbr[t], lai[t], lbi[t]
                if kind == 1:  # Im(conj(u)·y + conj(v)·x)
                    grad[t] += ur * yi - ui * yr + vr * xi - vi * xr
                elif kind == 2:  # Im(−i conj(u)·y + i conj(v)·x)
                    grad[t] += vr * xr + vi * xi - ur * yr - ui * yi
                elif kind == 3:  # Im(conj(u)·x − conj(v)·y)
                    grad[t] += ur * xi - ui * xr - vr * yi + vi * yr
                ar[t] = r00[t] * xr - i00[t] * xi + r01[t] * yr - i01[t] * yi
                ai[t] = r00[t] * xi + i00[t] * xr + r01[t] * yi + i01[t] * yr
                br[t] = r10[t] * xr - i10[t] * xi + r11[t] * yr - i11[t] * yi
                bi[t] = r10[t] * xi + i10[t] * xr + r11[t] * yi + i11[t] * yr
                lar[t] = r00[t] * ur - i00[t] * ui + r01[t] * vr - i01[t] * vi
                lai[t] = r00[t] * ui + i00[t] * ur + r01[t] * vi + i01[t] * vr
                lbr[t] = r10[t] * ur - i10[t] * ui + r11[t] * vr - i11[t] * vi
                lbi[t] = r10[t] * ui + i10[t] * ur + r11[t] * vi + i11[t] * vr


@numba.njit(cache=True, nogil=True, fastmath=True)
def undo_gate_real(re, im, lre, lim, n, wire, c, kind, grad):
    """:func:`undo_gate` for matrices with real entries (RY, H, X; ``kind`` 2 or 0)."""
    r00, r01, r10, r11 = c[0], c[2], c[4], c[6]
    span = 1 << (n - 1 - wire)
    for t in range(LANES):
        grad[t] = 0.0
    for lo in range(0, 1 << n, 2 * span):
        for i in range(lo, lo + span):
            ar, ai = re[i * LANES : (i + 1) * LANES], im[i * LANES : (i + 1) * LANES]
            br, bi = re[(i + span) * LANES : (i + span + 1) * LANES], im[(i + span) * LANES : (i + span + 1) * LANES]
            lar, lai = lre[i * LANES : (i + 1) * LANES], lim[i * LANES : (i + 1) * LANES]
            lbr = lre[(i + span) * LANES : (i + span + 1) * LANES]
            lbi = lim[(i + span) * LANES : (i + span + 1) * LANES]
            for t in range(LANES):
                xr, yr, xi, yi = ar[t], br[t], ai[t], bi[t]
                ur, vr, ui, vi = lar[t], lbr[t], lai[t], lbi[t]
                if kind == 2:
                    grad[t] += vr * xr + vi * xi - ur * yr - ui * yi
                ar[t] = r00[t] * xr + r01[t] * yr
                ai[t] = r00[t] * xi + r01[t] * yi
                br[t] = r10[t] * xr + r11[t] * yr
                bi[t] = r10[t] * xi + r11[t] * yi
                lar[t] = r00[t] * ur + r01[t] * vr
                lai[t] = r00[t] * ui + r01[t] * vi
                lbr[t] = r10[t] * ur + r11[t] * vr
                lbi[t] = r10[t] * ui + r11[t] * vi


@numba.njit(cache=True, nogil=True, fastmath=True)
def undo_shared(re, im, lre, lim, n, wire, m, kind):
    """``ψ ← m†ψ`` and ``λ ← m†λ`` on ``wire`` of every lane for one 2×2 ``m``; returns ``Σ_lanes Im⟨λ|P|ψ⟩``
    before the undo for the Pauli ``P`` of ``kind`` (1 X, 2 Y, 3 Z; 0: none)."""
    span = (1 << (n - 1 - wire)) * LANES
    m00, m01, m10, m11 = m[0, 0].conjugate(), m[1, 0].conjugate(), m[0, 1].conjugate(), m[1, 1].conjugate()
    r00, i00, r01, i01 = m00.real, m00.imag, m01.real, m01.imag
    r10, i10, r11, i11 = m10.real, m10.imag, m11.real, m11.imag
    total = 0.0
    for lo in range(0, re.shape[0], 2 * span):
        ar, br, ai, bi = (
            re[lo : lo + span],
            re[lo + span : lo + 2 * span],
            im[lo : lo + span],
            im[lo + span : lo + 2 * span],
        )
        lar, lbr = lre[lo : lo + span], lre[lo + span : lo + 2 * span]
        lai, lbi = lim[lo : lo + span], lim[lo + span : lo + 2 * span]
        for t in range(span):
            xr, yr, xi, yi = ar[t], br[t], ai[t], bi[t]
            ur, vr, ui, vi = lar[t], lbr[t], lai[t], lbi[t]
            if kind == 1:
                total += ur * yi - ui * yr + vr * xi - vi * xr
            elif kind == 2:
                total += vr * xr + vi * xi - ur * yr - ui * yi
            elif kind == 3:
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


@numba.njit(cache=True, nogil=True)
def undo_frame_phase(re, im, lre, lim, n, t, v):
    """Lane ``t``'s ``λ ← λ/c`` where ``ψ = c·⊗_w v[w, t]`` (``c``: 1, i, −1 or −i, the phase the frames
    dropped, read at the product's largest amplitude; a zero product leaves ``λ``, then zero too)."""
    index, product = 0, 1.0 + 0.0j
    for w in range(n):
        b = 1 if abs(v[w, t, 1]) > abs(v[w, t, 0]) else 0
        index, product = 2 * index + b, product * v[w, t, b]
    if product == 0:
        return
    c = complex(re[index * LANES + t], im[index * LANES + t]) / product
    if abs(c.real) >= abs(c.imag):
        if c.real < 0:
            for i in range(1 << n):
                lre[i * LANES + t], lim[i * LANES + t] = -lre[i * LANES + t], -lim[i * LANES + t]
    else:
        sign = 1.0 if c.imag > 0 else -1.0  # λ/(±i) = ∓i·λ
        for i in range(1 << n):
            x, y = lre[i * LANES + t], lim[i * LANES + t]
            lre[i * LANES + t], lim[i * LANES + t] = sign * y, -sign * x


@numba.njit(cache=True, nogil=True, fastmath=True)
def backward_tiles(
    first,
    last,
    n,
    ops,
    gate_wire,
    gate_column,
    gate_kind,
    gate_real,
    mode,
    row_mats,
    source,
    sign,
    inverse,
    inverse_sign,
    site_wire,
    site_channel,
    site_matrices_,
    letters,
    branches,
    drawn,
    hit,
    store_slot,
    n_slots,
    clifford,
    parity_sign,
    phase_active,
    phase_mask,
    phase_re,
    phase_im,
    prefix,
    prefix_wire,
    overlap,
    z_signs,
    grad_output_t,
    final,
    grad_rows,
    grad_shared,
):
    """The adjoint pass on tiles ``first … last-1`` for ``L = Σ grad_output ⊙ ⟨Z words⟩``
    (``grad_output_t[Q, rows]``, ``z_signs[2**n, Q]``): ``grad_rows[row, column]`` gets the gradient of each
    rotation reading per-row angles, ``grad_shared[column]`` that of each shared one summed over the rows,
    and ``overlap[p]`` (``[2**n · LANES]``) phase ``p``'s ``Σ Im conj(λ)ψ`` (its RZ gates' gradients follow).
    The tiles start from ``final`` (the forward's final states) unless some site keeps a state
    (``n_slots > 0``): then each tile's forward runs again first, keeping them."""
    dim = 1 << n
    size = dim * LANES
    re, im, re2, im2 = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    lre, lim = np.empty(size), np.empty(size)
    store = np.empty((n_slots, 2, size))
    m = np.empty((LANES, 2, 2), dtype=np.complex128)
    c = np.empty((8, LANES))
    grad = np.empty(LANES)
    weight = np.empty(size)
    v = np.empty((n, LANES, 2), dtype=np.complex128)
    mu = np.empty((n, LANES, 2), dtype=np.complex128)
    history = np.empty((prefix.shape[0], LANES, 2), dtype=np.complex128)
    for tile in range(first, last):
        b0 = tile * LANES
        if n_slots:
            fr, fi, _, _ = run_tile(
                re,
                im,
                re2,
                im2,
                b0,
                n,
                ops,
                gate_wire,
                gate_real,
                mode,
                row_mats,
                source,
                sign,
                site_wire,
                site_channel,
                site_matrices_,
                letters,
                branches,
                drawn,
                hit,
                store,
                store_slot,
                m,
                c,
                clifford,
                parity_sign,
                phase_active,
                phase_mask,
                phase_re,
                phase_im,
                prefix,
                prefix_wire,
                v,
                history,
            )
            re[:], im[:] = fr, fi
        else:
            wire_states(
                prefix, prefix_wire, b0, n, mode, row_mats, site_channel, site_matrices_, letters, branches, v, history
            )
            re[:], im[:] = final[tile, 0], final[tile, 1]
        weight[:] = 0.0
        for i in range(dim):
            w = weight[i * LANES : (i + 1) * LANES]
            for q in range(z_signs.shape[1]):
                s, g = z_signs[i, q], grad_output_t[q, b0 : b0 + LANES]
                for t in range(LANES):
                    w[t] += s * g[t]
        for x in range(size):
            lre[x], lim[x] = weight[x] * re[x], weight[x] * im[x]
        fx, fz = np.zeros(LANES, dtype=np.int64), np.zeros(LANES, dtype=np.int64)
        for o in range(ops.shape[0] - 1, -1, -1):
            kind, k = ops[o, 0], ops[o, 1]
            if kind == FRAME_SITE:
                if hit[k, tile]:
                    draw_into_frames(fx, fz, drawn[k], b0, 1 << (n - 1 - site_wire[k]))
                continue
            if kind == CLIFFORD:
                p = clifford[k, 3]
                if p >= 0:
                    permute(re, im, re2, im2, inverse[p], inverse_sign[p])
                    re, re2, im, im2 = re2, re, im2, im
                    permute(lre, lim, re2, im2, inverse[p], inverse_sign[p])
                    lre, re2, lim, im2 = re2, lre, im2, lim
                conjugate_frames(fx, fz, clifford[k, 0], 1 << (n - 1 - clifford[k, 1]), 1 << (n - 1 - clifford[k, 2]))
                continue
            if kind == PHASE:
                if phase_active[k]:
                    for t in range(LANES):
                        if fx[t] & phase_mask[k]:
                            flip_lane(re, im, n, t, fx[t], fz[t], parity_sign)
                            flip_lane(lre, lim, n, t, fx[t], fz[t], parity_sign)
                            fx[t], fz[t] = 0, 0
                    undo_phase(re, im, lre, lim, phase_re[k], phase_im[k], overlap[k])
                continue
            if kind == GATE and mode[k] == IN_PHASE:
                continue
            if kind == GATE:
                mask = 1 << (n - 1 - gate_wire[k])
                for t in range(LANES):
                    if (fx[t] | fz[t]) & mask:
                        flip_lane(re, im, n, t, fx[t], fz[t], parity_sign)
                        flip_lane(lre, lim, n, t, fx[t], fz[t], parity_sign)
                        fx[t], fz[t] = 0, 0
            if kind == GATE and mode[k] == SHARED:
                rotation = gate_column[k] >= 0
                total = undo_shared(re, im, lre, lim, n, gate_wire[k], row_mats[0, k], gate_kind[k] if rotation else 0)
                if rotation:
                    grad_shared[gate_column[k]] += total
            elif kind == GATE:
                gate_lanes(row_mats, b0, k, m)
                coefficients(m, True, c)
                rotation = gate_column[k] >= 0
                if gate_real[k]:
                    undo_gate_real(re, im, lre, lim, n, gate_wire[k], c, gate_kind[k] if rotation else 0, grad)
                else:
                    undo_gate(re, im, lre, lim, n, gate_wire[k], c, gate_kind[k] if rotation else 0, grad)
                if rotation:
                    for t in range(LANES):
                        grad_rows[b0 + t, gate_column[k]] += grad[t]
            elif kind == PERMUTATION:
                permute(re, im, re2, im2, inverse[k], inverse_sign[k])
                re, re2, im, im2 = re2, re, im2, im
                permute(lre, lim, re2, im2, inverse[k], inverse_sign[k])
                lre, re2, lim, im2 = re2, lre, im2, lim
            else:
                channel = site_channel[k]
                if letters[channel, 0] >= 0:  # a Pauli is its own inverse and adjoint
                    for t in range(LANES if hit[k, tile] else 0):
                        letter = drawn[k, b0 + t]
                        if letter > 0:
                            pauli_lane(re, im, n, site_wire[k], t, letter)
                            pauli_lane(lre, lim, n, site_wire[k], t, letter)
                else:  # λ ← M†λ; ψ from the state kept before the site (M may be singular)
                    branch = tile_branch(branches, b0, k)
                    if branch >= 0:
                        adjoint = site_matrices_[channel, branch].conj().T.copy()
                        shared_gate(lre, lim, n, site_wire[k], adjoint, is_real(adjoint))
                    else:
                        site_lanes(branches, b0, k, site_matrices_[channel], m)
                        coefficients(m, True, c)
                        lane_gate(lre, lim, n, site_wire[k], c)
                    re[:], im[:] = store[store_slot[k], 0], store[store_slot[k], 1]
        for t in range(LANES):  # λ at the product layer: the frames left applied, the dropped phases undone
            if fx[t] | fz[t]:
                flip_lane(re, im, n, t, fx[t], fz[t], parity_sign)
                flip_lane(lre, lim, n, t, fx[t], fz[t], parity_sign)
            undo_frame_phase(re, im, lre, lim, n, t, v)
        wire_cotangents(lre, lim, re, im, n, v, mu)
        prefix_backward(
            prefix,
            prefix_wire,
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
        )
