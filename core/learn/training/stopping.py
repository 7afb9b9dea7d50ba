"""When training stops: the smoothed gradient norm, the validations and their δ-criterion, and the
stopping rules checked after every step (:data:`STOP_RULES`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from hqf.learn.training.settings import TrainSettings


@torch.inference_mode()
def evaluate_loss(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)`` (eval mode restored afterwards)."""
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size]).float()
        target = y[start : start + batch_size]
        total += F.cross_entropy(logits, target, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == target).sum())
    model.train(was_training)
    return total / len(y), correct / len(y)


@attrs.define
class SmoothedNorm:
    """The bias-corrected moving average ``ĝ_t`` of the gradient norms (weight ``beta``; 0: the raw ``g_t``)."""

    beta: float
    average: float = 0.0
    count: int = 0

    def update(self, g: float) -> float:
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * g
        return self.average / (1 - self.beta**self.count) if self.beta > 0 else g


@attrs.define
class Validation:
    """Validation rows (``EVAL_COLUMNS``) and the δ-criterion on the validation loss."""

    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    delta: float
    started: float  # perf_counter() when training started
    rows: list[dict] = attrs.field(factory=list)
    #: called with each new row (e.g. to log it to TensorBoard)
    on_record: Callable[[dict], None] | None = None

    @property
    def last_step(self) -> int | None:
        return self.rows[-1]["step"] if self.rows else None

    def record(
        self, epoch: int, step: int, train_losses: Sequence[float], epoch_start: float, full_epoch: bool
    ) -> bool:
        """Validate the model now and record a row; True when ``|L_val − L_val(previous)| < delta``."""
        val_loss, val_acc = evaluate_loss(self.model, self.x, self.y)
        now = time.perf_counter()
        previous = self.rows[-1]["val_loss"] if self.rows else None
        row = {
            "epoch": epoch,
            "step": step,
            "train_loss": float(np.mean(train_losses)) if train_losses else float("nan"),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "wall_time_s": now - self.started,
            "epoch_time_s": now - epoch_start if full_epoch else float("nan"),
        }
        self.rows.append(row)
        if self.on_record is not None:
            self.on_record(row)
        return previous is not None and abs(val_loss - previous) < self.delta


@attrs.frozen
class AfterStep:
    """What the stopping rules see after an iteration's optimizer step."""

    step: int
    smoothed_grad_norm: float
    settings: TrainSettings
    #: validate now (a mid-epoch validation row); True when the δ-criterion holds
    validate: Callable[[], bool]


def _eps_reached(after: AfterStep) -> bool:
    return after.smoothed_grad_norm <= after.settings.eps


def _val_loss_settled(after: AfterStep) -> bool:
    every = after.settings.eval_every
    return bool(every) and after.step % every == 0 and after.validate()


def _iterations_spent(after: AfterStep) -> bool:
    limit = after.settings.max_iterations
    return limit is not None and after.step >= limit


#: the stopping rules checked after every step, in this order: (stop_reason, rule)
STOP_RULES: tuple[tuple[str, Callable[[AfterStep], bool]], ...] = (
    ("grad_norm", _eps_reached),
    ("val_loss_change", _val_loss_settled),
    ("max_iterations", _iterations_spent),
)


def stop_reason_after(after: AfterStep) -> str | None:
    """The first stopping rule that holds after a step, or None."""
    return next((reason for reason, holds in STOP_RULES if holds(after)), None)
