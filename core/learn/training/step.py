"""One training iteration (Algorithm 1): the composite loss (eq. 10), backward, the gradient norm
``g_t``, one optimizer step.

Common random numbers: while an iteration runs, every backend of the model draws its random branches
from the iteration number (``Backend.fix_randomness(step)``), so the forward pass, every regularizer's
extra passes (the curvature term's finite differences on the first rows) and the backward all see the
same noise branches, row by row; afterwards the backends draw fresh again (validation, evaluation).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import attrs
import torch
import torch.nn.functional as F

from hqf.learn.training.terms import Term
from hqf.quantum.interfaces import Backend
from hqf.registry.contracts import RegularizerInputs


def grad_norm(params: Sequence[torch.Tensor]) -> float:
    """``‖∇‖₂`` over all parameters that have a gradient (float64 accumulation)."""
    squares = [p.grad.detach().double().pow(2).sum() for p in params if p.grad is not None]
    return math.sqrt(float(torch.stack(squares).sum())) if squares else 0.0


def model_backends(model: torch.nn.Module) -> list[Backend]:
    """The distinct backends held by ``model``'s modules (a quantum layer's ``backend``)."""
    found: dict[int, Backend] = {}
    for module in model.modules():
        backend = getattr(module, "backend", None)
        if isinstance(backend, Backend):
            found.setdefault(id(backend), backend)
    return list(found.values())


@contextlib.contextmanager
def common_randomness(model: torch.nn.Module, key: int) -> Iterator[None]:
    """While entered, every backend of ``model`` draws its random branches from ``key``
    (``Backend.fix_randomness``); fresh draws again on leaving."""
    backends = model_backends(model)
    for backend in backends:
        backend.fix_randomness(key)
    try:
        yield
    finally:
        for backend in backends:
            backend.fix_randomness(None)


@attrs.frozen
class StepResult:
    """The numbers of one iteration. A ``loss`` that is not finite means no backward pass and no
    optimizer step were taken (``grad_norm`` is then NaN)."""

    loss: float  # L_total
    loss_ce: float
    penalties: dict[str, float]  # by curve column, for the terms computed at this iteration
    grad_norm: float = math.nan


def composite_loss(
    model: torch.nn.Module,
    params: Sequence[torch.Tensor],
    terms: Sequence[Term],
    xb: torch.Tensor,
    yb: torch.Tensor,
    step: int,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """``(L_total, L_ce, the penalties by curve column)`` of iteration ``step`` on ``(xb, yb)`` (eq. 10):
    the terms due at ``step`` with a positive weight."""
    features, logits = model.forward_features(xb)
    ce = F.cross_entropy(logits.float(), yb)
    total = ce
    penalties: dict[str, float] = {}
    inputs = RegularizerInputs(features, logits, ce, tuple(params))
    for term in terms:
        if term.due(step) and term.weight > 0:
            penalty = term.regularizer.penalty(term.inputs(model, xb, yb, inputs))
            total = total + term.weight * penalty
            penalties[term.column] = float(penalty.detach())
    return total, ce, penalties


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.nn.Parameter],
    terms: Sequence[Term],
    xb: torch.Tensor,
    yb: torch.Tensor,
    step: int,
) -> StepResult:
    """Iteration ``step`` on the mini-batch ``(xb, yb)``: forward, composite loss (eq. 10), backward,
    the gradient norm ``g_t`` over ``params``, one optimizer step; the backends' random branches are
    drawn from ``step`` throughout (:func:`common_randomness`)."""
    with common_randomness(model, step):
        total, ce, penalties = composite_loss(model, params, terms, xb, yb, step)
        optimizer.zero_grad(set_to_none=True)
        loss = float(total.detach())
        if not math.isfinite(loss):
            return StepResult(loss, float(ce.detach()), penalties)
        total.backward()
    norm = grad_norm(params)
    optimizer.step()
    return StepResult(loss, float(ce.detach()), penalties, norm)
