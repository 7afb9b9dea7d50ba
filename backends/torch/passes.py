"""Passes without autograd: a batch runs through the plan a cache's worth of rows at a time, each pass
resuming from the previous pass's states where its angles allow; the adjoint pass in the same slices.

They read the backend's :class:`~hqf.backends.torch.settings.Settings` (``chunk``, ``cache_bytes``,
``prefix_bytes``) and its :class:`~hqf.backends.torch.cache.Cache`, nothing else.
"""

from __future__ import annotations

import torch

from hqf.backends.torch.adjoint import adjoint_vjp
from hqf.backends.torch.cache import Cache, CompiledCircuit, Prefix
from hqf.backends.torch.measure import measure
from hqf.backends.torch.plan import RotationStep, StepPlan
from hqf.backends.torch.settings import Settings
from hqf.backends.torch.steps import apply_wire, chain_matrices, constant_columns, run

#: at most this many wires changed in a run: updating them beats running it again (measured)
MAX_UPDATED_WIRES = 2


def row_bytes(settings: Settings, plan: StepPlan) -> int:
    """Bytes of one row's state."""
    return 2**plan.n_qubits * torch.empty(0, dtype=settings.complex_dtype).element_size()


def rows_per_pass(settings: Settings, plan: StepPlan) -> int:
    """Rows whose states fit the cache budget: bigger states are run a few rows at a time."""
    return max(1, int(settings.cache_bytes // row_bytes(settings, plan)))


def expectations(settings: Settings, cache: Cache, compiled: CompiledCircuit, angles: torch.Tensor) -> torch.Tensor:
    """Expectation values without autograd, ``chunk`` rows (at most a cache's worth) per pass."""
    rows = min(settings.chunk, rows_per_pass(settings, compiled.plan))
    parts = [forward(settings, cache, compiled, part) for part in angles.split(rows)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def forward(settings: Settings, cache: Cache, compiled: CompiledCircuit, angles: torch.Tensor) -> torch.Tensor:
    """Expectation values of one pass without autograd (see :func:`final_state`)."""
    return measure(compiled.plan, compiled.tables, final_state(settings, cache, compiled, angles), compiled.actions)


def final_state(settings: Settings, cache: Cache, compiled: CompiledCircuit, angles: torch.Tensor) -> torch.Tensor:
    """The final state ``[2**n, B]`` of one pass without autograd, resuming from the previous pass's
    states where the angles allow.

    If the previous pass had the same shape and bitwise-equal angles in every column that the
    first ``k`` steps read, the state entering step ``k`` is the same: it is reused. Consecutive
    chunks of the shift rule's batch differ in one or two columns, so each starts where its
    shifted gate is (exact; the states kept are at most ``prefix_mib``). When that gate belongs to
    a run constant over the rows, the pass starts after the run instead (:func:`_after_changed_run`).
    """
    plan = compiled.plan
    start, resume, state = 0, 0, None
    previous = cache.prefix
    constant = constant_columns(angles)
    if previous is not None and previous.plan is plan and previous.angles.shape == angles.shape:
        same = (previous.angles == angles).all(dim=0)
        changed = frozenset(range(angles.shape[1])) - frozenset(torch.nonzero(same).flatten().tolist())
        start = resume = plan.first_step_reading(changed)
        state = previous.states[start]
        after = _after_changed_run(compiled, previous, angles, changed, start, constant)
        if after is not None:
            resume, state = start + 1, after
    trace: dict | None = (
        {} if len(plan.steps) * angles.shape[0] * row_bytes(settings, plan) <= settings.prefix_bytes else None
    )
    if trace is not None and resume > start:
        trace[resume] = state
    if resume < len(plan.steps):
        state = run(
            plan, compiled.tables, angles, constant, start=resume, state=state, trace=trace, memo=compiled.operands
        )
    if trace is not None:
        if start:  # the states up to ``start`` are the previous pass's
            trace = {**{k: v for k, v in previous.states.items() if k <= start}, **trace}
        cache.prefix = Prefix(plan, angles.clone(), trace, constant)  # a copy: the caller may reuse its buffer
    else:
        cache.prefix = None
    return state


def _after_changed_run(
    compiled: CompiledCircuit,
    previous: Prefix,
    angles: torch.Tensor,
    changed: frozenset[int],
    k: int,
    constant: frozenset[int],
) -> torch.Tensor | None:
    """The state after step ``k`` from the previous pass's, when every changed column is read by that
    run, the run is constant over the rows in both passes, and at most ``MAX_UPDATED_WIRES`` wires changed.

    Each changed wire's fused matrix ``F`` became ``F'``; since the run is ``⊗_w F_w``, the new state
    after it is the old one times ``F' F†`` on those wires: one 2×2 per wire instead of the run's
    blocks (the shift rule's passes change one column, i.e. one gate, each).
    """
    plan = compiled.plan
    step = plan.steps[k] if k < len(plan.steps) else None
    if not isinstance(step, RotationStep) or k + 1 not in previous.states or not changed <= step.chain.angle_columns:
        return None
    wires = sorted({step.chain.wire_of[c] for c in changed})
    columns = step.chain.angle_columns
    if len(wires) > MAX_UPDATED_WIRES or not columns <= constant or not columns <= previous.constant:
        return None
    _, old = chain_matrices(compiled.tables.steps[k], previous.angles[:1])
    _, new = chain_matrices(compiled.tables.steps[k], angles[:1])
    state = previous.states[k + 1]
    for w in wires:
        state = apply_wire(state, new[0, w] @ old[0, w].mH, plan.n_qubits, w)
    return state


def adjoint(
    settings: Settings,
    compiled: CompiledCircuit,
    angles: torch.Tensor,
    grad_output: torch.Tensor,
    summed: frozenset[int] | None = None,
):
    """:func:`~hqf.backends.torch.adjoint.adjoint_vjp` in cache-sized passes (with ``summed``: its
    ``(grad, grad_sum)``)."""
    rows = rows_per_pass(settings, compiled.plan)
    parts = [
        adjoint_vjp(compiled.plan, compiled.tables, a, g, compiled.actions, summed=summed, memo=compiled.operands)
        for a, g in zip(angles.split(rows), grad_output.to(angles.dtype).split(rows))
    ]
    if summed is None:
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    return torch.cat([p[0] for p in parts]), torch.stack([p[1] for p in parts]).sum(0)
