"""How far a backend's numbers may be from the float64 reference, and why.

Every expectation value a backend returns is treated as ``E + e`` with ``|e| <= b(E)``:

- exact backends: ``b = atol`` of the state dtype — ``1e-8`` for ``complex128`` (observed errors are
  ~1e-15; the margin covers long circuits), ``1e-4`` for ``complex64`` (observed ~1e-6);
- shot-based backends (``capabilities.exact`` is False, ``shots = N``): one shot of a Pauli word gives
  ±1, so ``Ê`` is ``1 − 2·p̂`` with ``p̂`` a binomial frequency of ``p = (1 − E)/2``. Bernstein's
  inequality, ``P(|p̂ − p| ≥ t) ≤ 2·exp(−N t² / (2 p (1−p) + 2t/3))``, solved for a failure probability
  ``δ`` per value (``L = ln(2/δ)``), gives

      b(E) = atol + (2L/3 + sqrt(4L²/9 + 2·N·L·(1 − E²))) / N.

  For large ``N(1 − E²)`` this is ``sqrt(2L)·σ`` with ``σ = sqrt((1 − E²)/N)`` — 5.4σ at δ = 1e-6 — and,
  unlike a Gaussian kσ rule, it stays valid near eigenstates (``E ≈ ±1``), where a single odd shot is
  a 2/N jump that σ ≈ 0 would call impossible.

Derived quantities are linear in the values: a shift-rule derivative is ``(E₊ − E₋)/2`` and a gradient is
a sum ``Σ cᵢ Eᵢ``. Their bound is ``Σ |cᵢ| b(Eᵢ)``, which holds whatever the correlation between the
estimates (observables measured from the same shots are correlated); by the union bound the chance that a
comparison fails by noise alone is at most (number of values) × δ.
"""

from __future__ import annotations

import math

import attrs
import torch

#: per-value error allowed for exact backends, by state dtype
ATOL = {"complex128": 1e-8, "complex64": 1e-4}


@attrs.frozen
class Tolerance:
    """The per-value error bound ``b(E)`` for one backend configuration."""

    atol: float
    shots: int | None = None
    delta: float = 1e-6

    @classmethod
    def for_backend(cls, backend) -> Tolerance:
        """The bound for a backend instance: its dtype, and its ``shots`` if it is not exact."""
        atol = ATOL.get(backend.dtype, 1e-4)
        if backend.capabilities.exact:
            return cls(atol)
        shots = getattr(backend, "shots", None)
        if not isinstance(shots, int) or shots < 1:
            raise ValueError(
                f"backend {backend.name!r} declares exact=False but has no integer 'shots' attribute "
                f"(got {shots!r}); the statistical bound needs the shot count"
            )
        return cls(atol, shots)

    def value_bound(self, exact: torch.Tensor) -> torch.Tensor:
        """``b(E)`` elementwise for the exact values ``E`` (float64)."""
        exact = exact.to(torch.float64)
        if self.shots is None:
            return torch.full_like(exact, self.atol)
        n, log_term = self.shots, math.log(2 / self.delta)
        variance = (1 - exact**2).clamp(min=0)
        spread = (2 * log_term / 3 + torch.sqrt(4 * log_term**2 / 9 + 2 * n * log_term * variance)) / n
        return self.atol + spread

    def describe(self) -> str:
        if self.shots is None:
            return f"|Δ| ≤ {self.atol:g} per expectation value"
        return f"Bernstein bound, {self.shots} shots, δ = {self.delta:g} per value (+{self.atol:g})"
