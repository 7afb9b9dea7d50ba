"""The 2×2 gate maths both sets of numba kernels share (:mod:`~hqf.backends.torch.fused_cpu`,
:mod:`~hqf.backends.torch.blocked_cpu`): each gate's matrix at given angles, and one gate applied to the
pairs of amplitudes it mixes. Both release the GIL."""

from __future__ import annotations

import math

import numba
import numpy as np

#: the Pauli of a rotation as the kernels number a gate's kind (0: a fixed gate)
GENERATOR = {"RX": 1, "RY": 2, "RZ": 3}
#: the gates whose matrices are real (the kernels' cheaper loop)
REAL_GATES = frozenset({"RY", "H", "X"})


@numba.njit(cache=True, nogil=True, fastmath=True)
def gate_matrices(angles, columns, kinds, fixed):
    """``[G, 2, 2]`` complex: each gate's matrix at the shared ``angles``."""
    out = np.empty((columns.shape[0], 2, 2), dtype=np.complex128)
    for g in range(columns.shape[0]):
        if columns[g] < 0:
            out[g] = fixed[g]
            continue
        c, s = math.cos(0.5 * angles[columns[g]]), math.sin(0.5 * angles[columns[g]])
        k = kinds[g]
        if k == 1:  # RX
            out[g, 0, 0], out[g, 0, 1], out[g, 1, 0], out[g, 1, 1] = c, -1j * s, -1j * s, c
        elif k == 2:  # RY
            out[g, 0, 0], out[g, 0, 1], out[g, 1, 0], out[g, 1, 1] = c, -s, s, c
        else:  # RZ
            out[g, 0, 0], out[g, 0, 1], out[g, 1, 0], out[g, 1, 1] = c - 1j * s, 0, 0, c + 1j * s
    return out


@numba.njit(inline="always", cache=True, nogil=True, fastmath=True)
def rotate(ar, br, ai, bi, m, real):
    """``(a, b) ← m·(a, b)`` on equal-length views (``a``: the bit-0 amplitudes, ``b``: bit 1)."""
    r00, i00, r01, i01 = m[0, 0].real, m[0, 0].imag, m[0, 1].real, m[0, 1].imag
    r10, i10, r11, i11 = m[1, 0].real, m[1, 0].imag, m[1, 1].real, m[1, 1].imag
    if real:
        for t in range(ar.shape[0]):
            xr, yr, xi, yi = ar[t], br[t], ai[t], bi[t]
            ar[t] = r00 * xr + r01 * yr
            br[t] = r10 * xr + r11 * yr
            ai[t] = r00 * xi + r01 * yi
            bi[t] = r10 * xi + r11 * yi
    else:
        for t in range(ar.shape[0]):
            xr, yr, xi, yi = ar[t], br[t], ai[t], bi[t]
            ar[t] = r00 * xr - i00 * xi + r01 * yr - i01 * yi
            ai[t] = r00 * xi + i00 * xr + r01 * yi + i01 * yr
            br[t] = r10 * xr - i10 * xi + r11 * yr - i11 * yi
            bi[t] = r10 * xi + i10 * xr + r11 * yi + i11 * yr
