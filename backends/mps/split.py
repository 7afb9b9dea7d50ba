"""The truncated SVD split of one bond, and its backward with the gauge freedom of an MPS bond used.

``split_left(A)`` turns a batch of matrices ``A[B, m, n]`` (a two-site tensor with the bond to cut
between its row and column indices) into ``(U[B, m, k], W[B, k, n])``, ``U`` the top ``k`` left
singular vectors and ``W = D Uᴴ A`` (``D`` masks the singular values dropped in a row), so that
``U W`` is ``A`` with its dropped singular values removed. ``split_right`` is the mirror image
(``A ≈ W V``, ``V`` with orthonormal rows). ``k`` is shared by the batch: the most any row keeps.

Backward. What follows a split depends on ``(U, W)`` only through the MPS's state, which is unchanged
by ``U → U Q, W → Qᴴ W`` for any unitary ``Q`` on the bond. So ``L(U, Uᴴ A)`` depends on ``U`` only
through the projector onto the kept subspace, and with ``G = ḡU + A ḡWᴴ D`` (``ḡ``: incoming
gradients), ``s`` the singular values, kept ``i`` and not-kept ``j``:

    ḡA = U D ḡW + U_r (K∘F) S_k V_kᴴ + U_k (K∘F)ᴴ S_r V_rᴴ + (1 − U_r U_rᴴ) G S_k⁻¹ V_kᴴ,
    K = U_rᴴ G,  F_ji = 1 / (s_i² − s_j²)   (i kept, j not kept; 0 elsewhere)

(``_r``: all ``min(m, n)`` singular triplets; the last term only when ``m > n``). Only kept–dropped
pairs appear: degenerate singular values inside the kept block (a Bell pair's ``1/√2, 1/√2``) or
inside the dropped block cost nothing, unlike the plain SVD backward, whose ``1/(s_i² − s_j²)`` over
all pairs is infinite there. Where the cut itself falls inside a (near-)degenerate multiplet the
truncated state is not a differentiable function of ``A``; there ``1/Δ`` (``Δ = s_i² − s_j²``) is
replaced by the Lorentzian ``Δ / (Δ² + (η s_i²)²)`` (``η``: ``broadening``), which is ``1/Δ`` to a
relative ``η²`` wherever ``Δ ≫ η s_i²`` and at most ``1/(2 η s_i²)`` at ``Δ = 0``.
"""

from __future__ import annotations

import torch


def keep_mask(s: torch.Tensor, chi: int | None, cutoff: float) -> tuple[torch.Tensor, int]:
    """``(mask[B, r], k)``: the singular values ``s[B, r]`` (descending) each row keeps — at most ``chi``,
    and only those above ``cutoff`` times the row's largest — and ``k``, the most any row keeps."""
    mask = s > cutoff * s[:, :1]
    mask[:, 0] = True
    if chi is not None:
        mask[:, chi:] = False
    k = int(mask.sum(dim=1).max())
    return mask, k


class _SplitLeft(torch.autograd.Function):
    """``(U, W, discarded)`` of :func:`split_left`; the backward is the module docstring's formula."""

    @staticmethod
    def forward(ctx, a, chi, cutoff, broadening):
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        mask, k = keep_mask(s, chi, cutoff)
        total = (s * s).sum(dim=1)
        kept = torch.where(mask, s, torch.zeros_like(s))
        discarded = (total - (kept * kept).sum(dim=1)).clamp_min(0) / total
        ctx.save_for_backward(a, u, s, vh, mask)
        ctx.k, ctx.broadening = k, broadening
        ctx.mark_non_differentiable(discarded)
        w = kept[:, :k, None].to(vh.dtype) * vh[:, :k]
        return u[:, :, :k], w, discarded

    @staticmethod
    def backward(ctx, g_u, g_w, _g_discarded):
        a, u, s, vh, mask = ctx.saved_tensors
        k, eta = ctx.k, ctx.broadening
        m, n = a.shape[1], a.shape[2]
        dtype = a.dtype
        kept = mask[:, :k]
        d = kept.to(dtype)
        u_k, vh_k, s_k = u[:, :, :k], vh[:, :k], s[:, :k]
        g_u = torch.zeros_like(u_k) if g_u is None else g_u
        g_w = torch.zeros(a.shape[0], k, n, dtype=dtype, device=a.device) if g_w is None else g_w
        g_w = d[:, :, None] * g_w
        grad = u_k @ g_w
        big = a @ g_w.mH
        g = (g_u + big) * d[:, None, :]
        kk = u.mH @ g  # [B, r, k]
        s2 = s * s
        delta = s2[:, :k, None].transpose(1, 2) - s2[:, :, None]  # [B, r, k]: s_i² − s_j², j rows, i columns
        width = (eta * s2[:, None, :k]) ** 2
        f = delta / (delta * delta + width)
        pair = kept[:, None, :] & ~mask[:, :, None]
        kf = kk * torch.where(pair, f, torch.zeros_like(f)).to(dtype)
        grad = grad + u @ (kf * s_k[:, None, :].to(dtype)) @ vh_k
        grad = grad + u_k @ (kf.mH * s[:, None, :].to(dtype)) @ vh
        if m > n:
            inv = torch.where(kept, 1 / torch.where(kept, s_k, torch.ones_like(s_k)), torch.zeros_like(s_k))
            rest = g - u @ (u.mH @ g)
            grad = grad + (rest * inv[:, None, :].to(dtype)) @ vh_k
        return grad, None, None, None


def split_left(a: torch.Tensor, chi: int | None, cutoff: float, broadening: float):
    """``(U[B, m, k], W[B, k, n], discarded[B])``: ``A ≈ U W`` with ``U`` an isometry (the centre moves
    right); ``discarded`` is each row's dropped weight ``Σ_dropped s² / Σ s²``."""
    return _SplitLeft.apply(a, chi, cutoff, broadening)


def split_right(a: torch.Tensor, chi: int | None, cutoff: float, broadening: float):
    """``(W[B, m, k], V[B, k, n], discarded[B])``: ``A ≈ W V`` with ``V``'s rows orthonormal (the centre
    moves left)."""
    v, w, discarded = _SplitLeft.apply(a.mH, chi, cutoff, broadening)
    return w.mH, v.mH, discarded
