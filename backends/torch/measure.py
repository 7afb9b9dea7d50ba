"""The read-out of amplitude-major states ``[2**n, B]``: expectation values ``⟨O_r⟩``, cross terms
``Re⟨a|O_r|b⟩`` (the paired shift rule) and ``λ = Σ_r g_r O_r ψ`` (the adjoint pass's start).

All-Z words read the probabilities through the plan's ±1 table in one matrix product; any other
Pauli word moves and scales the amplitudes by its action (``pauli_actions``: ``(source, coeff)`` per
non-Z word, in the plan's ``other_words`` order).
"""

from __future__ import annotations

import functools

import torch

from hqf.backends.torch.plan import PlanTables, StepPlan
from hqf.quantum.circuit import Circuit
from hqf.quantum.gates import pauli_action


@functools.lru_cache(maxsize=256)
@torch.inference_mode(False)
def pauli_actions(circuit: Circuit, dtype: torch.dtype, device: torch.device) -> tuple:
    """``(source, coeff)`` on ``device`` for each observable that is not all-Z (cached)."""
    out = []
    for word in circuit.observables:
        if not all(p == "Z" for _, p in word.terms):
            source, coeff = pauli_action(circuit.n_qubits, word.terms)
            out.append((source.to(device), coeff.to(device=device, dtype=dtype)))
    return tuple(out)


def probabilities(state: torch.Tensor) -> torch.Tensor:
    """``|ψ|²`` as a contiguous real tensor."""
    return state.real.square() + state.imag.square()


def measure(plan: StepPlan, tables: PlanTables, state: torch.Tensor, actions: tuple) -> torch.Tensor:
    """``[B, R]`` expectation values of the plan's observables on ``[2**n, B]``."""
    z_signs = tables.z_signs
    z_part = (z_signs.T @ probabilities(state)).transpose(0, 1) if z_signs is not None else None
    if not plan.other_words:
        return z_part
    columns: dict[int, torch.Tensor] = {}
    if z_part is not None:
        columns.update(zip(plan.z_words, z_part.unbind(1)))
    for (k, _), (source, coeff) in zip(plan.other_words, actions):
        moved = state.index_select(0, source) * coeff[:, None]
        columns[k] = (state.conj() * moved).sum(dim=0).real
    return torch.stack([columns[k] for k in range(plan.n_outputs)], dim=1)


def measure_cross(
    plan: StepPlan, tables: PlanTables, bra: torch.Tensor, ket: torch.Tensor, actions: tuple
) -> torch.Tensor:
    """``[N, R]`` real parts ``Re⟨bra|O_r|ket⟩`` for the columns of ``ket[2**n, …]`` (``bra`` broadcasts to it)."""
    z_signs = tables.z_signs
    dim = ket.shape[0]
    columns: dict[int, torch.Tensor] = {}
    if z_signs is not None:  # the real part first: the sign table stays real (a real product, not a complex one)
        product = (bra.conj() * ket).real.reshape(dim, -1)
        columns.update(zip(plan.z_words, (z_signs.T @ product).unbind(0)))
    for (k, _), (source, coeff) in zip(plan.other_words, actions):
        moved = ket.index_select(0, source) * coeff.reshape(dim, *[1] * (ket.ndim - 1))
        columns[k] = (bra.conj() * moved).reshape(dim, -1).sum(dim=0).real
    return torch.stack([columns[k] for k in range(plan.n_outputs)], dim=1)


def observable_times_state(
    plan: StepPlan, tables: PlanTables, state: torch.Tensor, grad_output: torch.Tensor, actions: tuple
) -> torch.Tensor:
    """``λ = Σ_r g_r O_r ψ`` (``[2**n, B]``) for cotangents ``g[B, R]``."""
    z_signs = tables.z_signs
    lam = state * (z_signs @ grad_output[:, plan.z_words].T) if z_signs is not None else torch.zeros_like(state)
    for (k, _), (source, coeff) in zip(plan.other_words, actions):
        lam = lam + grad_output[None, :, k] * (state.index_select(0, source) * coeff[:, None])
    return lam
