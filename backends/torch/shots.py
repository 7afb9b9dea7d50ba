"""Finite-shot estimates, sampled from the exact distribution with a seeded generator.

Each observable is measured with its own ``shots`` samples:

- a Pauli word's outcome is ``±1`` with ``P(+1) = (1 + ⟨P⟩)/2``: the estimate is ``2k/N − 1`` for
  ``k ~ Binomial(N, P(+1))``;
- a Hamiltonian ``Σ c_k P_k`` is ``Σ c_k`` times each word's estimate (each word measured separately);
- ``Probs(wires)`` is the frequency of each outcome among ``N`` draws from the exact marginal.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hqf.quantum.circuit import Circuit, Hamiltonian, Probs


def words_circuit(circuit: Circuit) -> Circuit:
    """``circuit`` with each Hamiltonian replaced by its Pauli words (the values sampling starts from)."""
    observables = []
    for obs in circuit.observables:
        observables += [word for _, word in obs.terms] if isinstance(obs, Hamiltonian) else [obs]
    return Circuit(circuit.n_qubits, circuit.operations, observables)


def sample(
    circuit: Circuit,
    angles: torch.Tensor,
    exact: Callable[[Circuit, torch.Tensor], torch.Tensor],
    shots: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """``[B, R]`` shot estimates of ``circuit``'s outputs; ``exact(circuit, angles)`` gives exact values."""
    expanded = words_circuit(circuit)
    with torch.no_grad():
        values = exact(expanded, angles)
    count = torch.full_like(values[:, 0], float(shots))
    columns: list[torch.Tensor] = []
    at = 0  # the next column of ``values``
    for obs in circuit.observables:
        if isinstance(obs, Probs):
            probs = values[:, at : at + obs.n_outputs].clamp(min=0)
            draws = torch.multinomial(probs, shots, replacement=True, generator=generator)
            counts = torch.zeros_like(probs).scatter_add_(1, draws, torch.ones_like(draws, dtype=probs.dtype))
            columns += list((counts / shots).unbind(1))
            at += obs.n_outputs
            continue
        words = obs.terms if isinstance(obs, Hamiltonian) else ((1.0, obs),)
        total = torch.zeros_like(count)
        for coefficient, _ in words:
            plus = ((1 + values[:, at]) / 2).clamp(0, 1)
            k = torch.binomial(count, plus, generator=generator)
            total = total + coefficient * (2 * k / shots - 1)
            at += 1
        columns.append(total)
    return torch.stack(columns, dim=1)
