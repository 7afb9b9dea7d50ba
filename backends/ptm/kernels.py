"""The compiled PTM kernels (numba): a circuit's steps applied to each row's Pauli vector, and the adjoint
pass back through them.

A row's state is ``r[4^n]`` float64 (:mod:`hqf.backends.ptm.transfer`). A step acts on the base-4 digits
of ``m`` wires (``d = 4^m`` coordinates): for every assignment of the other digits it gathers the ``d``
entries, multiplies them by the step's sparse real matrix (CSR: ``rowptr``, ``cols`` and this row's
``vals``) and writes them back, one pass per step. The other digits are walked in blocks of ``CHUNK``
entries, gathered from runs of consecutive indices below the smallest stride of the step's wires, so
the arithmetic runs in long vectorised loops whatever the wires.

Backward (the Heisenberg picture): ``λ`` starts as the observables' Pauli vector weighted by the output
cotangents; undoing step ``k`` is ``λ ← M_kᵀ λ`` (the Hilbert–Schmidt adjoint), and where ``M_k`` depends on
angles the kernel also accumulates ``G_k[p] = Σ λ_out[row_p] · r_in[col_p]`` over the other digits, for
each stored entry ``p``: then ``∂L/∂θ = Σ_p ∂M_k[p]/∂θ · G_k[p]`` (done by the caller). The input state of
each step comes from checkpoints (one every ``every`` steps) and a recomputed segment, so a row holds
``checkpoints + every`` states whatever the depth.

All kernels release the GIL (the caller splits the rows between threads) and are compiled without
fastmath: every sum is taken in the order written, so results do not depend on the machine's vector width.
"""

from __future__ import annotations

import numba
import numpy as np

#: the longest run of consecutive indices one inner loop handles
CHUNK = 256


@numba.njit(cache=True, nogil=True, fastmath=False)
def _bases(first, count, step, nw, sorted_strides, out):
    """``out[e]`` for ``e < count``: the index with zero digits at the step's wires (``sorted_strides``,
    ascending) whose other digits count ``first + e·step`` among all such indices."""
    for e in range(count):
        idx = first + e * step
        for q in range(nw):  # a stride is a power of 4: (idx // s) · 4s + idx % s without dividing
            low = idx & (sorted_strides[q] - 1)
            idx = ((idx - low) << 2) + low
        out[e] = idx


@numba.njit(cache=True, nogil=True, fastmath=False)
def _load(x, bases, count, run, offsets, d, buf):
    """``buf[j, i·run + r] = x[bases[i] + offsets[j] + r]`` for the ``count`` runs of length ``run``."""
    for j in range(d):
        dst = buf[j]
        offset = offsets[j]
        if run == 1:
            for i in range(count):
                dst[i] = x[bases[i] + offset]
            continue
        if run == 4:
            for i in range(count):
                start = bases[i] + offset
                dst[4 * i] = x[start]
                dst[4 * i + 1] = x[start + 1]
                dst[4 * i + 2] = x[start + 2]
                dst[4 * i + 3] = x[start + 3]
            continue
        for i in range(count):
            src = x[bases[i] + offset : bases[i] + offset + run]
            part = dst[i * run : (i + 1) * run]
            for r in range(run):
                part[r] = src[r]


@numba.njit(cache=True, nogil=True, fastmath=False)
def _store(buf, bases, count, run, offsets, d, x):
    """The inverse of :func:`_load`."""
    for j in range(d):
        src = buf[j]
        offset = offsets[j]
        if run == 1:
            for i in range(count):
                x[bases[i] + offset] = src[i]
            continue
        if run == 4:
            for i in range(count):
                start = bases[i] + offset
                x[start] = src[4 * i]
                x[start + 1] = src[4 * i + 1]
                x[start + 2] = src[4 * i + 2]
                x[start + 3] = src[4 * i + 3]
            continue
        for i in range(count):
            dst = x[bases[i] + offset : bases[i] + offset + run]
            part = src[i * run : (i + 1) * run]
            for r in range(run):
                dst[r] = part[r]


@numba.njit(cache=True, nogil=True, fastmath=False)
def _blocks(n4, d, sorted_strides):
    """``(run, runs per block, blocks)``: how the other digits of a step are walked. A run is a stretch of
    consecutive indices (at most the smallest stride ``s0``, at most ``CHUNK``); a block gathers runs up to
    ``CHUNK`` entries, so that every inner loop is long."""
    run = min(sorted_strides[0], CHUNK)
    per = min(CHUNK // run, n4 // (d * run))
    return run, per, n4 // (d * run * per)


@numba.njit(cache=True, nogil=True, fastmath=False)
def apply_step(src, x, d, nw, sorted_strides, offsets, rowptr, cols, vals, buf, acc, bases):
    """``x ← M src`` on the step's digits (``src`` may be ``x``); ``M`` in CSR (``rowptr[d+1]``, ``cols``,
    ``vals``)."""
    run, per, blocks = _blocks(x.shape[0], d, sorted_strides)
    width = run * per
    for block in range(blocks):
        _bases(block * width, per, run, nw, sorted_strides, bases)
        _load(src, bases, per, run, offsets, d, buf)
        for i in range(d):
            out = acc[i]
            for e in range(width):
                out[e] = 0.0
            for p in range(rowptr[i], rowptr[i + 1]):
                v = vals[p]
                row = buf[cols[p]]
                for e in range(width):
                    out[e] += v * row[e]
        _store(acc, bases, per, run, offsets, d, x)


@numba.njit(cache=True, nogil=True, fastmath=False)
def undo_step(lam, rho, gradient, d, nw, sorted_strides, offsets, rowptr, cols, vals, g, lbuf, rbuf, acc, bases, lanes):
    """``λ ← Mᵀ λ``; with ``gradient``, also ``g[p] += Σ λ[row_p] · ρ[col_p]`` (``λ`` before the update,
    ``ρ`` the step's input state). Each sum is kept per position of the block (``lanes[p, e]``) and summed
    once at the end, so the loop over a block vectorises without reordering any sum (no fastmath)."""
    run, per, blocks = _blocks(lam.shape[0], d, sorted_strides)
    width = run * per
    nnz = cols.shape[0]
    if gradient:
        for p in range(nnz):
            for e in range(width):
                lanes[p, e] = 0.0
    for block in range(blocks):
        _bases(block * width, per, run, nw, sorted_strides, bases)
        _load(lam, bases, per, run, offsets, d, lbuf)
        if gradient:
            _load(rho, bases, per, run, offsets, d, rbuf)
        for j in range(d):
            out = acc[j]
            for e in range(width):
                out[e] = 0.0
        for i in range(d):
            lrow = lbuf[i]
            for p in range(rowptr[i], rowptr[i + 1]):
                v = vals[p]
                c = cols[p]
                out = acc[c]
                if gradient:  # products summed per position (no reduction in the loop: it vectorises)
                    rrow = rbuf[c]
                    partial = lanes[p]
                    for e in range(width):
                        le = lrow[e]
                        out[e] += v * le
                        partial[e] += le * rrow[e]
                else:
                    for e in range(width):
                        out[e] += v * lrow[e]
        _store(acc, bases, per, run, offsets, d, lam)
    if gradient:
        for p in range(nnz):
            total = 0.0
            for e in range(width):
                total += lanes[p, e]
            g[p] += total


@numba.njit(cache=True, nogil=True, fastmath=False)
def _workspace(max_d):
    """A thread's buffers: three ``[max_d, CHUNK]`` blocks of coordinates and ``CHUNK`` run starts."""
    return (
        np.empty((max_d, CHUNK)),
        np.empty((max_d, CHUNK)),
        np.empty((max_d, CHUNK)),
        np.empty(CHUNK, dtype=np.int64),
    )


@numba.njit(cache=True, nogil=True, fastmath=False)
def _forward(src, x, first, last, tables, vals, buf, acc, bases):
    """Apply steps ``first .. last-1`` (``tables``: :attr:`hqf.backends.ptm.program.Program.tables`) to
    ``src`` (the first step reads it), leaving the result in ``x``."""
    dims, nws, strides, offsets, off_ptr, rowptr, row_ptr, cols, nnz_ptr = tables
    for k in range(first, last):
        d = dims[k]
        lo, hi = nnz_ptr[k], nnz_ptr[k + 1]
        apply_step(
            src if k == first else x,
            x,
            d,
            nws[k],
            strides[k],
            offsets[off_ptr[k] : off_ptr[k] + d],
            rowptr[row_ptr[k] : row_ptr[k] + d + 1],
            cols[lo:hi],
            vals[lo:hi],
            buf,
            acc,
            bases,
        )


@numba.njit(cache=True, nogil=True, fastmath=False)
def forward_rows(init, r0, r1, tables, vals, read_ptr, read_idx, read_coef, out, every, checkpoints):
    """Rows ``r0 .. r1-1``: run every step from ``init`` and read ``out[b, m] = Σ coef · r[idx]`` for each
    word ``m``; with ``every > 0``, keep the state before steps ``0, every, 2·every, …`` in
    ``checkpoints[b]``."""
    dims = tables[0]
    n_steps = dims.shape[0]
    buf, acc, _, bases = _workspace(max(np.max(dims) if n_steps else 1, 1))
    x = np.empty_like(init)
    for b in range(r0, r1):
        row_vals = vals[b]
        if every > 0 or n_steps == 0:
            x[:] = init
            for c in range(0, n_steps, max(every, 1)):
                last = min(c + every, n_steps)
                checkpoints[b, c // every, :] = x
                _forward(x, x, c, last, tables, row_vals, buf, acc, bases)
        else:  # the first step reads the initial state
            _forward(init, x, 0, n_steps, tables, row_vals, buf, acc, bases)
        for m in range(read_ptr.shape[0] - 1):
            total = 0.0
            for q in range(read_ptr[m], read_ptr[m + 1]):
                total += read_coef[q] * x[read_idx[q]]
            out[b, m] = total


@numba.njit(cache=True, nogil=True, fastmath=False)
def backward_rows(
    init,
    r0,
    r1,
    tables,
    vals,
    gradient,
    read_ptr,
    read_idx,
    read_coef,
    word_cotangents,
    every,
    checkpoints,
    have_checkpoints,
    g,
):
    """Rows ``r0 .. r1-1``: ``g[b, p]`` (:func:`undo_step`) for every stored entry of every step with
    ``gradient[k]``, from the words' cotangents ``word_cotangents[b, m]``. The states before every
    ``every``-th step come from ``checkpoints[b]`` when ``have_checkpoints``, else they are recomputed."""
    dims, nws, strides, offsets, off_ptr, rowptr, row_ptr, cols, nnz_ptr = tables
    n_steps = dims.shape[0]
    n4 = init.shape[0]
    max_d = max(np.max(dims) if n_steps else 1, 1)
    buf, acc, rbuf, bases = _workspace(max_d)
    lanes = np.empty((max_d * max_d, CHUNK))
    n_check = (n_steps + every - 1) // every
    own = np.empty((0 if have_checkpoints else n_check, n4))
    segment = np.empty((every, n4))
    lam = np.empty(n4)
    for b in range(r0, r1):
        row_vals = vals[b]
        row_g = g[b]
        if have_checkpoints:
            marks = checkpoints[b]
        else:
            marks = own
            segment[0, :] = init
            for c in range(n_check):
                marks[c, :] = segment[0]
                last = min((c + 1) * every, n_steps)
                _forward(segment[0], segment[0], c * every, last, tables, row_vals, buf, acc, bases)
        lam[:] = 0.0
        for m in range(read_ptr.shape[0] - 1):
            for q in range(read_ptr[m], read_ptr[m + 1]):
                lam[read_idx[q]] += read_coef[q] * word_cotangents[b, m]
        for c in range(n_check - 1, -1, -1):
            first = c * every
            last = min(first + every, n_steps)
            for k in range(first + 1, last):  # segment[j]: the state before step first + j (j ≥ 1)
                source = marks[c] if k == first + 1 else segment[k - first - 1]
                _forward(source, segment[k - first], k - 1, k, tables, row_vals, buf, acc, bases)
            for k in range(last - 1, first - 1, -1):
                d = dims[k]
                lo, hi = nnz_ptr[k], nnz_ptr[k + 1]
                undo_step(
                    lam,
                    marks[c] if k == first else segment[k - first],
                    gradient[k],
                    d,
                    nws[k],
                    strides[k],
                    offsets[off_ptr[k] : off_ptr[k] + d],
                    rowptr[row_ptr[k] : row_ptr[k] + d + 1],
                    cols[lo:hi],
                    row_vals[lo:hi],
                    row_g[lo:hi],
                    buf,
                    rbuf,
                    acc,
                    bases,
                    lanes,
                )
