"""Measurements taken during training that are not part of it: the full-batch gradient norm.

With mini-batch noise a smoothed mini-batch gradient norm stays well above ε = 10⁻³ (docs/method.md),
so "iterations to ε" needs a second definition: the norm of the gradient of the training objective on
a fixed subset of the training split, every ``full_grad_every`` iterations
(:class:`FullBatchGradient`). Its time is kept out of the run's wall-clock metrics
(:func:`hqf.learn.training.loop.train` pauses its clocks while a probe runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from hqf.learn.training.step import composite_loss
from hqf.learn.training.terms import Term

#: seed offset of the generator that picks the probe's fixed subset
SUBSET_SEED = 104729


class FullBatchGradient:
    """``‖∇(L_ce + Σ_k w_k L_k)‖₂`` over the trainable parameters, on fixed rows ``(x, y)``.

    The objective is the training loss without its scheduled or sub-batch terms: the cross-entropy and
    every first-order term computed at every iteration on the whole batch (``stability``); the
    curvature term, an every-``k``-iterations estimate on a sub-batch, is left out. The model stays in
    training mode; its buffers (batch-norm statistics), its parameters' ``.grad`` and torch's random
    state are left as they were.
    """

    column = "full_grad_norm"

    def __init__(self, x: torch.Tensor, y: torch.Tensor, terms: Sequence[Term], every: int) -> None:
        self.x, self.y, self.every = x, y, every
        self.terms = [
            t
            for t in terms
            if t.every == 1
            and t.batch is None
            and not t.quantum_constant
            and not t.regularizer.needs_second_derivatives
            and t.weight > 0
        ]

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def measure(self, model: torch.nn.Module, params: Sequence[torch.Tensor]) -> float:
        buffers = {name: b.clone() for name, b in model.named_buffers()}
        devices = [self.x.device] if self.x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            total, _, _ = composite_loss(model, params, self.terms, self.x, self.y, step=1)  # every kept term is due
            grads = torch.autograd.grad(total, list(params), allow_unused=True)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads if g is not None))


def full_batch_gradient(
    config, x_train: torch.Tensor, y_train: torch.Tensor, terms: Sequence[Term]
) -> FullBatchGradient | None:
    """The probe a run configuration asks for (``full_grad_every``, ``full_grad_samples``), or None.

    Its rows: ``full_grad_samples`` rows of the training split drawn once (seed ``config.seed``), or
    all of it when it is smaller.
    """
    if config.full_grad_every is None:
        return None
    generator = torch.Generator().manual_seed(config.seed + SUBSET_SEED)
    pick = torch.randperm(len(y_train), generator=generator)[: config.full_grad_samples].to(x_train.device)
    return FullBatchGradient(x_train[pick], y_train[pick], terms, config.full_grad_every)


def full_batch_metrics(curves: dict[str, list], eps: float) -> dict:
    """``iterations_to_eps_full`` (the first probed iteration whose full-batch norm is ≤ ``eps``, or
    None), ``full_grad_norm_min`` and ``full_grad_norm_final``; all None without the probe."""
    steps, values = curves.get("step", []), curves.get(FullBatchGradient.column)
    probed = [(s, v) for s, v in zip(steps, values or []) if math.isfinite(v)]
    return {
        "iterations_to_eps_full": next((s for s, v in probed if v <= eps), None),
        "full_grad_norm_min": min(v for _, v in probed) if probed else None,
        "full_grad_norm_final": probed[-1][1] if probed else None,
    }
