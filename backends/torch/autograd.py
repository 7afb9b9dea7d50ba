"""The torch backend's two autograd Functions: the plan's expectation values of a full angle matrix
(:class:`PlanExpval`) and of data angles with broadcast weights (:class:`PlanExpvalBroadcast`).

The first-order backward is the adjoint method on the recorded forward (the fused kernels' own
backward where they ran the forward); a backward that must itself be differentiable
(``create_graph=True``, the curvature term) goes through the plan with torch autograd, so double
backward stays exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from hqf.backends.torch.adjoint import adjoint_vjp
from hqf.backends.torch.cache import Cache, CompiledCircuit
from hqf.backends.torch.measure import measure
from hqf.backends.torch.parallel import torch_threads_for
from hqf.backends.torch.passes import adjoint, forward, row_bytes, rows_per_pass
from hqf.backends.torch.plan import PermutationStep
from hqf.backends.torch.settings import Settings
from hqf.backends.torch.steps import constant_columns, run
from hqf.quantum.gates import full_angles

if TYPE_CHECKING:  # (annotations only: fused needs numba, which the backend imports only where it is installed)
    from hqf.backends.torch.fused import FusedProgram


def _recorded_forward(
    ctx, settings: Settings, cache: Cache, compiled: CompiledCircuit, angles: torch.Tensor
) -> torch.Tensor:
    """Expectation values of ``angles``, keeping in ``ctx`` what the adjoint backward needs.

    Large states run in cache-sized passes and keep nothing (the backward recomputes them).
    """
    plan = compiled.plan
    ctx.settings, ctx.compiled, ctx.records, ctx.state = settings, compiled, None, None
    rows = rows_per_pass(settings, plan)
    with torch.no_grad():
        if angles.shape[0] > rows:
            return torch.cat([forward(settings, cache, compiled, part) for part in angles.split(rows)])
        n_runs = sum(not isinstance(step, PermutationStep) for step in plan.steps)
        records: list = []
        checkpoint = n_runs * angles.shape[0] * row_bytes(settings, plan) <= settings.checkpoint_bytes
        state = run(
            plan,
            compiled.tables,
            angles,
            constant_columns(angles),
            records,
            checkpoint=checkpoint,
            memo=compiled.operands,
        )
        ctx.records, ctx.state = records, state
        return measure(plan, compiled.tables, state, compiled.actions)


def differentiable_vjp(
    compiled: CompiledCircuit, angles: torch.Tensor, grad_output: torch.Tensor, inputs: list
) -> list:
    """The VJP through the plan by torch autograd, itself differentiable (``create_graph=True``)."""
    tracked = [t for t in inputs if t.requires_grad]
    with torch.enable_grad():
        out = measure(compiled.plan, compiled.tables, run(compiled.plan, compiled.tables, angles), compiled.actions)
        grads = iter(torch.autograd.grad(out, tracked, grad_output, create_graph=True, allow_unused=True))
    found = [next(grads) if t.requires_grad else None for t in inputs]
    return [torch.zeros_like(t) if g is None else g for g, t in zip(found, inputs)]


def _adjoint_backward(ctx, angles: torch.Tensor, grad_output: torch.Tensor, summed: frozenset[int] | None = None):
    """The adjoint VJP of a recorded forward (recomputed in passes where it kept nothing)."""
    compiled = ctx.compiled
    if ctx.records is None:
        return adjoint(ctx.settings, compiled, angles, grad_output, summed)
    return adjoint_vjp(
        compiled.plan, compiled.tables, angles, grad_output, compiled.actions, ctx.records, ctx.state, summed=summed
    )


class PlanExpval(torch.autograd.Function):
    """The plan's expectation values of ``angles[B, P]``; backward by the adjoint method, or by
    autograd when it must be differentiable."""

    @staticmethod
    def forward(ctx, angles: torch.Tensor, settings: Settings, cache: Cache, compiled: CompiledCircuit):
        ctx.save_for_backward(angles)
        return _recorded_forward(ctx, settings, cache, compiled, angles)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (angles,) = ctx.saved_tensors
        with torch_threads_for(angles.shape[0] << ctx.compiled.plan.n_qubits):
            if torch.is_grad_enabled():  # create_graph=True: the backward must be differentiable itself
                (grad,) = differentiable_vjp(ctx.compiled, angles, grad_output, [angles])
                return grad, None, None, None
            return _adjoint_backward(ctx, angles, grad_output), None, None, None


class PlanExpvalBroadcast(torch.autograd.Function):
    """:class:`PlanExpval` of ``[angles, shared]`` (``shared`` appended to every row), run by the fused
    kernels when ``program`` (their :class:`~hqf.backends.torch.fused.FusedProgram`) is given; the adjoint
    backward sums the shared angles' gradient over the batch (one transition matrix per run of them)."""

    @staticmethod
    def forward(
        ctx,
        angles: torch.Tensor,
        shared: torch.Tensor,
        settings: Settings,
        cache: Cache,
        compiled: CompiledCircuit,
        program: FusedProgram | None,
    ):
        ctx.save_for_backward(angles, shared)
        ctx.settings, ctx.compiled, ctx.fused = settings, compiled, None
        if program is not None:
            with torch.no_grad():
                out, ctx.fused = program.expval(full_angles(angles, shared), settings.thread_count())
            return out
        return _recorded_forward(ctx, settings, cache, compiled, full_angles(angles, shared))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        angles, shared = ctx.saved_tensors
        with torch_threads_for(angles.shape[0] << ctx.compiled.plan.n_qubits):
            return PlanExpvalBroadcast._backward(ctx, angles, shared, grad_output) + (None, None, None, None)

    @staticmethod
    def _backward(ctx, angles: torch.Tensor, shared: torch.Tensor, grad_output: torch.Tensor) -> tuple:
        """The gradients of ``angles`` and ``shared``."""
        if torch.is_grad_enabled():  # create_graph=True: the backward must be differentiable itself
            with torch.enable_grad():
                full = full_angles(angles, shared)
            grad_angles, grad_shared = differentiable_vjp(ctx.compiled, full, grad_output, [angles, shared])
            return grad_angles, grad_shared
        n_data = angles.shape[1]
        if ctx.fused is not None:
            grad, grad_sum = ctx.fused.vjp(grad_output, ctx.compiled.circuit.n_params)
        else:
            full = full_angles(angles, shared)
            grad, grad_sum = _adjoint_backward(ctx, full, grad_output, frozenset(range(n_data, full.shape[1])))
        return grad[:, :n_data], grad[:, n_data:].sum(0) + grad_sum[n_data:]
