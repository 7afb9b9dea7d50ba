"""The batched matrix-product state: one list of site tensors ``[B, χ_left, 2, χ_right]`` for all rows,
run through a lowered circuit (:mod:`hqf.backends.mps.program`) in mixed canonical form.

Sites left of the orthogonality centre are left-orthonormal and those right of it right-orthonormal,
so the singular values of a two-site tensor at the centre are the state's Schmidt values across that
bond, and dropping the smallest is the best approximation of the state at that bond dimension. Each
split renormalises the row (the dropped weight is ``ε`` of that row, relative), so the state stays a
unit vector; ``discarded`` sums the ``ε`` of every split per row and ``error_bound`` sums their square
roots (docs/mps.md: ``‖ψ − φ‖ ≤ Σ √ε``).
"""

from __future__ import annotations

import torch

from hqf.backends.mps.program import EXTRA, Step
from hqf.backends.mps.split import split_left, split_right
from hqf.quantum.gates import gate_matrices


class Chain:
    """The state of ``batch`` rows on ``n`` qubits, ``|0…0⟩`` to start, and its truncation record."""

    def __init__(
        self, n: int, batch: int, dtype: torch.dtype, device, chi: int | None, cutoff: float, broadening: float
    ) -> None:
        zero = torch.zeros(batch, 1, 2, 1, dtype=dtype, device=device)
        zero[:, 0, 0, 0] = 1
        self.sites = [zero] * n
        self.batch, self.dtype, self.device = batch, dtype, device
        self.chi, self.cutoff, self.broadening = chi, cutoff, broadening
        real = torch.empty((), dtype=dtype).real.dtype
        self.discarded = torch.zeros(batch, dtype=real, device=device)
        self.error_bound = torch.zeros(batch, dtype=real, device=device)
        self.max_bond = 1

    def matrices(self, step: Step, angles: torch.Tensor) -> torch.Tensor:
        """``[B or 1, d, d]``: the step's gate matrix per row."""
        if step.gate in EXTRA:
            return torch.as_tensor(EXTRA[step.gate], dtype=self.dtype, device=self.device)[None]
        if step.param is None:
            return gate_matrices(step.gate, None, 1, self.dtype, self.device)
        return gate_matrices(step.gate, angles[:, step.param], self.batch, self.dtype, self.device)

    def _record(self, discarded: torch.Tensor) -> None:
        discarded = discarded.detach()
        self.discarded = self.discarded + discarded
        self.error_bound = self.error_bound + discarded.sqrt()

    def _split(self, theta: torch.Tensor, right: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``theta[B, m, n] ≈ X Y``, the centre in ``Y`` if ``right`` else in ``X``, renormalised."""
        if right:
            x, y, discarded = split_left(theta, self.chi, self.cutoff, self.broadening)
            y = y / torch.linalg.vector_norm(y, dim=(1, 2), keepdim=True)
        else:
            x, y, discarded = split_right(theta, self.chi, self.cutoff, self.broadening)
            x = x / torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
        self._record(discarded)
        self.max_bond = max(self.max_bond, x.shape[2])
        return x, y

    def one(self, site: int, gate: torch.Tensor) -> None:
        self.sites[site] = torch.einsum("bts,blsr->bltr", gate.expand(self.batch, 2, 2), self.sites[site])

    def two(self, site: int, gate: torch.Tensor, flipped: bool, right: bool) -> None:
        a, b = self.sites[site], self.sites[site + 1]
        left, mid, right_dim = a.shape[1], a.shape[3], b.shape[3]
        g = gate.reshape(-1, 2, 2, 2, 2)
        if flipped:
            g = g.permute(0, 2, 1, 4, 3)
        theta = torch.einsum("blsm,bmtr->blstr", a, b)
        theta = torch.einsum("bxyst,blstr->blxyr", g.expand(self.batch, 2, 2, 2, 2), theta)
        del mid
        x, y = self._split(theta.reshape(self.batch, left * 2, 2 * right_dim), right)
        self.sites[site] = x.reshape(self.batch, left, 2, -1)
        self.sites[site + 1] = y.reshape(self.batch, -1, 2, right_dim)

    def move(self, site: int, right: bool) -> None:
        """Move the centre from ``site`` to its right (or left) neighbour."""
        a = self.sites[site]
        left, right_dim = a.shape[1], a.shape[3]
        if right:
            x, y = self._split(a.reshape(self.batch, left * 2, right_dim), True)
            self.sites[site] = x.reshape(self.batch, left, 2, -1)
            self.sites[site + 1] = torch.einsum("bkm,bmsr->bksr", y, self.sites[site + 1])
        else:
            x, y = self._split(a.reshape(self.batch, left, 2 * right_dim), False)
            self.sites[site] = y.reshape(self.batch, -1, 2, right_dim)
            self.sites[site - 1] = torch.einsum("blsm,bmk->blsk", self.sites[site - 1], x)

    def run(self, steps: tuple[Step, ...], angles: torch.Tensor) -> None:
        """Apply ``steps`` with the angle matrix ``angles[B, P]``."""
        for step in steps:
            if step.kind == "one":
                self.one(step.site, self.matrices(step, angles))
            elif step.kind == "two":
                self.two(step.site, self.matrices(step, angles), step.flipped, step.right)
            else:
                self.move(step.site, step.right)
