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

Other read-outs: a ``Probs`` output is a frequency ``p̂`` of ``N`` draws, half the ±1 case,
``b_p(p) = atol + (L/3 + sqrt(L²/9 + 2·N·L·p(1 − p))) / N``; a Hamiltonian ``Σ c_k P_k`` (each word
measured with its own ``N`` shots) is held to ``Σ |c_k| · b(0)``, the largest ``b`` over ``E``.

Derived quantities are linear in the values: a shift-rule derivative is ``(E₊ − E₋)/2`` and a gradient is
a sum ``Σ cᵢ Eᵢ``. Their bound is ``Σ |cᵢ| b(Eᵢ)``, which holds whatever the correlation between the
estimates (observables measured from the same shots are correlated); by the union bound the chance that a
comparison fails by noise alone is at most (number of values) × δ.
"""

from __future__ import annotations

import math

import attrs
import torch

from hqf.quantum.circuit import Circuit, Hamiltonian, Probs

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

    def output_bound(self, circuit: Circuit, exact: torch.Tensor) -> torch.Tensor:
        """``[..., R]`` bounds for the exact outputs ``exact[..., R]`` of ``circuit``, by observable kind."""
        exact = exact.to(torch.float64)
        if self.shots is None:
            return torch.full_like(exact, self.atol)
        parts, at = [], 0
        for obs in circuit.observables:
            values = exact[..., at : at + obs.n_outputs]
            if isinstance(obs, Probs):
                parts.append((self.value_bound(1 - 2 * values) - self.atol) / 2 + self.atol)
            elif isinstance(obs, Hamiltonian):
                weight = sum(abs(c) for c, _ in obs.terms)
                parts.append(weight * (self.value_bound(torch.zeros_like(values)) - self.atol) + self.atol)
            else:
                parts.append(self.value_bound(values))
            at += obs.n_outputs
        return torch.cat(parts, dim=-1)

    def describe(self) -> str:
        if self.shots is None:
            return f"|Δ| ≤ {self.atol:g} per expectation value"
        return f"Bernstein bound, {self.shots} shots, δ = {self.delta:g} per value (+{self.atol:g})"


#: failure probability per value of the trajectory bound (:class:`Hoeffding`)
HOEFFDING_DELTA = 1e-6


@attrs.frozen
class Hoeffding:
    """The per-value bound for a trajectory estimate: the mean of ``K`` independent trajectories.

    One trajectory's value of a Pauli word lies in ``[−c, c]``, with ``c`` the circuit's trajectory range
    (:func:`hqf.testing.noisy.trajectory_range`; 1 under Pauli noise); a Hamiltonian's in ``Σ|c_k|·[−c, c]``
    and a probability's in ``[0, c]``. Hoeffding's inequality for the mean of ``K`` values in an interval of
    width ``w``, ``P(|mean − E| ≥ t) ≤ 2·exp(−2Kt²/w²)``, solved at failure probability ``δ`` per value:

        b = atol + w·sqrt(ln(2/δ) / (2K))      (= atol + c·sqrt(2 ln(2/δ) / K) for a Pauli word).
    """

    atol: float
    trajectories: int
    #: the circuit's trajectory range ``c``
    spread: float = 1.0
    delta: float = HOEFFDING_DELTA
    shots = None  # not shot-based: the Jacobian bounds of the noiseless properties do not apply

    def width(self, circuit: Circuit) -> torch.Tensor:
        """``[R]``: the width ``w`` of the interval one trajectory's output lies in, per output column."""
        widths = []
        for obs in circuit.observables:
            if isinstance(obs, Probs):
                widths += [self.spread] * obs.n_outputs
            elif isinstance(obs, Hamiltonian):
                widths.append(2 * self.spread * sum(abs(c) for c, _ in obs.terms))
            else:
                widths.append(2 * self.spread)
        return torch.tensor(widths, dtype=torch.float64)

    def output_bound(self, circuit: Circuit, exact: torch.Tensor) -> torch.Tensor:
        """``[..., R]`` bounds for the exact outputs ``exact[..., R]`` of ``circuit``."""
        scale = math.sqrt(math.log(2 / self.delta) / (2 * self.trajectories))
        return (self.atol + self.width(circuit) * scale).expand_as(exact.to(torch.float64)).clone()

    def describe(self) -> str:
        return (
            f"Hoeffding bound, {self.trajectories} trajectories, each circuit's range c, "
            f"δ = {self.delta:g} per value (+{self.atol:g})"
        )
