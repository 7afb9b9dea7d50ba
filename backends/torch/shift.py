"""The shift rule's ``±π/2`` values from one ``π``-shifted run per column (the paired shift rule), and
the leading product state's columns from one extra run per wire.

For a gate ``exp(-iθ/2 P)`` the shifted gate is ``exp(∓iπ/4 P)`` after it, ``(1 ∓ iP)/√2``, so the
shifted final states are ``(a ∓ i b)/√2`` with ``a`` the unshifted final state and ``b = i ψ_π`` the
final state of the circuit with that column shifted by ``π``. Hence
``⟨O⟩(θ ± π/2) = (⟨a|O|a⟩ + ⟨ψ_π|O|ψ_π⟩ ± 2 Re⟨a|O|ψ_π⟩) / 2``: the same ``2·P·B`` values exactly,
from ``P·B`` circuit runs instead of ``2·P·B``.
"""

from __future__ import annotations

import math

import torch

from hqf.backends.torch.cache import Cache, CompiledCircuit
from hqf.backends.torch.measure import measure, measure_cross
from hqf.backends.torch.passes import final_state, rows_per_pass
from hqf.backends.torch.settings import Settings
from hqf.backends.torch.steps import chain_matrices, constant_columns, product_vector, run


def shifted_values(
    settings: Settings, cache: Cache, compiled: CompiledCircuit, angles: torch.Tensor, chunk: int | None
) -> torch.Tensor:
    """``[2, P, B, R]`` values at every column shifted by ``±π/2``, from one propagated state per column.

    Runs go ``chunk`` rows at a time (default: the settings' ``chunk``), resuming from the previous
    run where their angles agree (:func:`~hqf.backends.torch.passes.final_state`). A batch small
    enough for two copies to fit one pass runs several whole columns per pass; otherwise the columns
    of the leading product state take one run per wire instead of one per column
    (:func:`product_shifted`).
    """
    plan, tables, actions = compiled.plan, compiled.tables, compiled.actions
    batch, n_params = angles.shape
    rows = max(1, min(chunk or settings.chunk, rows_per_pass(settings, plan)))
    with torch.no_grad():
        final = torch.cat([final_state(settings, cache, compiled, part) for part in angles.split(rows)], dim=1)
        values = measure(plan, tables, final, actions)  # [B, R]
        pieces: dict[int, list] = {c: [] for c in range(n_params)}  # per column: (plus, minus) per row chunk

        def add(columns: list[int], b0: int, b1: int, state: torch.Tensor) -> None:
            """Both shifted values of ``columns`` from their π-shifted final states ``[2**n, g·b]``."""
            g, b = len(columns), b1 - b0
            bra = final[:, b0:b1].unsqueeze(1)  # [2**n, 1, b]
            cross = measure_cross(plan, tables, bra, state.reshape(-1, g, b), actions)
            mean = (values[b0:b1].repeat(g, 1) + measure(plan, tables, state, actions)) / 2
            for i, c in enumerate(columns):
                pieces[c].append((mean + cross)[i * b : (i + 1) * b])
                pieces[c].append((mean - cross)[i * b : (i + 1) * b])

        groups = max(1, rows // batch)  # whole columns per pass when the batch is small
        on_wire: dict[int, list[int]] = {}  # large batches: the product state's columns, by wire
        for c, w in plan.steps[0].chain.wire_of.items() if groups == 1 else ():
            on_wire.setdefault(w, []).append(c)
        for b0 in range(0, batch, rows) if on_wire else ():
            b1 = min(batch, b0 + rows)
            for w, columns in on_wire.items():
                add(columns, b0, b1, product_shifted(compiled, angles[b0:b1], final[:, b0:b1], w, columns))
        for c0 in range(0, n_params, groups):
            g = min(groups, n_params - c0)
            if groups == 1 and pieces[c0]:  # (done above)
                continue
            for b0 in range(0, batch, rows) if groups == 1 else (0,):
                b1 = batch if groups > 1 else min(batch, b0 + rows)
                columns = list(range(c0, c0 + g))
                add(columns, b0, b1, final_state(settings, cache, compiled, shifted_by_pi(angles[b0:b1], columns)))
        plus = [torch.cat(pieces[c][0::2]) for c in range(n_params)]  # row chunks in order
        minus = [torch.cat(pieces[c][1::2]) for c in range(n_params)]
        return torch.stack([torch.stack(plus), torch.stack(minus)])


def product_shifted(
    compiled: CompiledCircuit, angles: torch.Tensor, final: torch.Tensor, wire: int, columns: list[int]
) -> torch.Tensor:
    """The final states ``[2**n, g·B]`` with each of ``columns`` (gates of the leading product state,
    all on ``wire``) shifted by ``π``, from one extra run.

    Shifting a gate on ``wire`` changes only that wire's vector ``v → v'`` in ``⊗_w v_w``, and
    everything after the product state is linear: with ``v⊥`` the unit vector orthogonal to ``v``,
    ``v' = ⟨v|v'⟩ v + ⟨v⊥|v'⟩ v⊥`` gives the shifted final state ``⟨v|v'⟩ a + ⟨v⊥|v'⟩ a⊥`` from the
    unshifted one ``a`` and the final state ``a⊥`` of the product state with ``v⊥`` on ``wire``
    (exact; one run per wire instead of one per column).
    """
    plan, tables = compiled.plan, compiled.tables
    _, fused = chain_matrices(tables.steps[0], angles)
    vectors = fused[..., 0]  # [B, n, 2], unit vectors
    v = vectors[:, wire]
    perp = torch.stack([-v[:, 1].conj(), v[:, 0].conj()], dim=-1)
    swapped = vectors.clone()
    swapped[:, wire] = perp
    other = run(
        plan, tables, angles, constant_columns(angles), start=1, state=product_vector(swapped), memo=compiled.operands
    )
    _, moved = chain_matrices(tables.steps[0], shifted_by_pi(angles, columns))
    moved = moved[:, wire, :, 0].reshape(len(columns), -1, 2)  # [g, B, 2]: v'
    along = (v.conj() * moved).sum(-1)  # ⟨v|v'⟩, [g, B]
    across = (perp.conj() * moved).sum(-1)  # ⟨v⊥|v'⟩
    return (final[:, None, :] * along + other[:, None, :] * across).reshape(final.shape[0], -1)


def shifted_by_pi(angles: torch.Tensor, columns: list[int]) -> torch.Tensor:
    """``[g·B, P]``: ``angles[B, P]`` once per column of ``columns``, with that column shifted by ``π``."""
    shifted = angles.repeat(len(columns), 1, 1)  # [g, B, P]
    shifted[torch.arange(len(columns)), :, columns] += math.pi
    return shifted.reshape(-1, angles.shape[1])
