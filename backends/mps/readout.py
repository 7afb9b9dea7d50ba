"""Expectation values of an MPS by contraction: Pauli words, Hamiltonians and ``Probs`` on few wires.

The environments ``L[k]`` (sites ``0..k−1``) and ``R[k]`` (sites ``k..n−1``), ``[B, χ, χ]`` with the
ket index first, are built once per call; a word on sites ``a..b`` is then ``L[a]``, the transfer
matrices of sites ``a..b`` with its Paulis, and ``R[b+1]``: cost ``b − a + 1`` site contractions. Every
value is divided by the norm ``L[n]`` (1 up to rounding).
"""

from __future__ import annotations

import torch

from hqf.quantum.circuit import Hamiltonian, PauliWord, Probs
from hqf.quantum.gates import PAULI


def _transfer(env: torch.Tensor, site: torch.Tensor, op: torch.Tensor | None = None) -> torch.Tensor:
    """``env[B, l, l']`` carried across one site, with ``op`` (2×2) on it if given."""
    ket = site if op is None else torch.einsum("ts,blsr->bltr", op, site)
    return torch.einsum("blm,blsr,bmsq->brq", env, ket, site.conj())


class Reader:
    """The environments of one state, and the observables read from them."""

    def __init__(self, sites: list[torch.Tensor]) -> None:
        self.sites = sites
        batch, dtype, device = sites[0].shape[0], sites[0].dtype, sites[0].device
        one = torch.ones(batch, 1, 1, dtype=dtype, device=device)
        self.left = [one]
        for site in sites:
            self.left.append(_transfer(self.left[-1], site))
        right = [one]
        for site in reversed(sites):
            right.append(torch.einsum("brq,blsr,bmsq->blm", right[-1], site, site.conj()))
        self.right = right[::-1]
        self.norm = self.left[-1][:, 0, 0].real
        self.paulis = {p: torch.tensor(m, dtype=dtype, device=device) for p, m in PAULI.items()}

    def word(self, word: PauliWord) -> torch.Tensor:
        """``⟨word⟩`` per row, ``[B]``."""
        ops = {w: self.paulis[p] for w, p in word.terms}
        lo, hi = min(ops), max(ops)
        env = self.left[lo]
        for s in range(lo, hi + 1):
            env = _transfer(env, self.sites[s], ops.get(s))
        return torch.einsum("brq,brq->b", env, self.right[hi + 1]).real / self.norm

    def probs(self, probs: Probs) -> torch.Tensor:
        """The ``2**k`` outcome probabilities per row, ``[B, 2**k]``, ``wires[0]`` most significant."""
        wires = probs.wires
        lo, hi = min(wires), max(wires)
        env = self.left[lo][:, None]  # [B, outcomes, l, l']
        for s in range(lo, hi + 1):
            site = self.sites[s]
            if s in wires:
                env = torch.einsum("bolm,blsr,bmsq->bosrq", env, site, site.conj())
                env = env.reshape(env.shape[0], -1, *env.shape[3:])
            else:
                env = torch.einsum("bolm,blsr,bmsq->borq", env, site, site.conj())
        values = torch.einsum("borq,brq->bo", env, self.right[hi + 1]).real / self.norm[:, None]
        ordered = sorted(wires)
        k = len(wires)
        values = values.reshape(-1, *([2] * k)).permute(0, *[1 + ordered.index(w) for w in wires])
        return values.reshape(-1, 2**k)

    def read(self, observable) -> torch.Tensor:
        """The observable's outputs per row, ``[B, n_outputs]``."""
        if isinstance(observable, PauliWord):
            return self.word(observable)[:, None]
        if isinstance(observable, Hamiltonian):
            return sum(c * self.word(w) for c, w in observable.terms)[:, None]
        if isinstance(observable, Probs):
            return self.probs(observable)
        raise TypeError(f"not an observable: {observable!r}")
