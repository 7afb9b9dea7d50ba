"""Training per Algorithm 1 of the seed paper (HQCCA), with its convergence criterion.

One iteration (optimizer step ``t = 1, 2, …``) on a mini-batch: forward, composite loss
``L_total = L_ce + λ·L_stab + γ·L_curv`` (eq. 10; the curvature term is estimated every
``curvature_every`` iterations — optionally on a sub-batch of ``curvature_batch`` samples — and is
absent, i.e. 0, in between), backward (autograd for the classical
parameters; the quantum weights get the backend's gradient — autograd, adjoint or the parameter-shift
rule, eq. 12), the gradient norm ``g_t = ‖∇L_total‖₂`` over all trainable parameters, one optimizer step.

Stopping (the first that holds, checked in this order after the step):

- ``grad_norm``: the bias-corrected exponential moving average ``ĝ_t`` of ``g_t`` (weight ``grad_ema``;
  0 means the raw ``g_t``) is ``≤ eps``. *Iterations to ε* is that ``t``.
- ``val_loss_change``: after a validation (once per epoch, or every ``eval_every`` iterations),
  ``|L_val − L_val(previous validation)| < delta``.
- ``max_iterations`` or ``epochs``: the budget is spent.
- ``non_finite_loss``: the loss became NaN or infinite (training stops; the run still reports).

See docs/method.md for why the moving average and for the surrogate recorded when ε is never reached.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from hqf.quantum.interfaces import Regularizer, RegularizerInputs

#: columns of the per-iteration curves, in order (``step`` is the iteration t; ``loss`` is L_total)
CURVE_COLUMNS = ("step", "epoch", "loss", "loss_ce", "stab", "curv", "grad_norm", "grad_norm_ema", "lr", "wall_time_s")
#: columns of the per-validation table
EVAL_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "val_accuracy", "wall_time_s", "epoch_time_s")
#: relative tolerance of the surrogate "iterations to within 1% of the best validation loss"
VAL_TOLERANCE = 0.01


@attrs.frozen
class Term:
    """A regularizer in the loss with its weight; computed on iterations ``t`` with ``(t−1) % every == 0``.

    ``batch``: evaluate the penalty on the first ``batch`` samples of the mini-batch only (a separate
    forward pass on that sub-batch; None: on the whole mini-batch, sharing its forward pass).
    """

    name: str
    regularizer: Regularizer
    weight: float
    every: int = 1
    column: str = ""
    batch: int | None = None
    #: evaluate the penalty with the quantum features held constant (a separate forward pass)
    quantum_constant: bool = False

    def due(self, step: int) -> bool:
        return (step - 1) % self.every == 0


@attrs.frozen
class TrainSettings:
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 1
    max_iterations: int | None = None
    eps: float = 1e-3
    delta: float = 1e-4
    grad_ema: float = 0.9
    eval_every: int | None = None  # None: once per epoch
    seed: int = 0

    @classmethod
    def from_config(cls, config) -> TrainSettings:
        return cls(**{f.name: getattr(config, f.name) for f in attrs.fields(cls)})


@attrs.define
class TrainResult:
    """What training did: per-iteration curves, per-validation rows, why and when it stopped."""

    curves: dict[str, list]
    evals: list[dict]
    stop_reason: str
    steps: int
    epochs_completed: int
    iterations_to_eps: int | None
    train_time_s: float
    epoch_times_s: list[float]

    def surrogates(self) -> dict:
        """Iteration counts that exist even when ε is never reached (see docs/method.md)."""
        ema = [v for v in self.curves["grad_norm_ema"] if math.isfinite(v)]
        vals = [(row["step"], row["val_loss"]) for row in self.evals if math.isfinite(row["val_loss"])]
        within = None
        if vals:
            best = min(v for _, v in vals)
            within = next(step for step, v in vals if v <= best * (1 + VAL_TOLERANCE))
        return {
            "iterations_to_val_within_1pct": within,
            "grad_norm_ema_min": min(ema) if ema else None,
            "grad_norm_ema_final": ema[-1] if ema else None,
        }


def make_optimizer(name: str, params: Sequence[torch.nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    raise ValueError(f"'optimizer' must be adam, sgd or rmsprop (got {name!r})")


@torch.inference_mode()
def evaluate_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
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


def grad_norm(params: Sequence[torch.Tensor]) -> float:
    """``‖∇‖₂`` over all parameters that have a gradient (float64 accumulation)."""
    squares = [p.grad.detach().double().pow(2).sum() for p in params if p.grad is not None]
    return math.sqrt(float(torch.stack(squares).sum())) if squares else 0.0


Progress = Callable[[int, dict], None]


def _inputs_for(term: Term, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor, full: RegularizerInputs) -> RegularizerInputs:
    """The regularizer inputs of the whole mini-batch, or of its first ``term.batch`` samples."""
    whole = term.batch is None or term.batch >= len(yb)
    if whole and not term.quantum_constant:
        return full
    size = len(yb) if whole else term.batch
    if term.quantum_constant:
        features, logits = model.forward_features(xb[:size], quantum_constant=True)
    else:
        features, logits = model.forward_features(xb[:size])
    ce = F.cross_entropy(logits.float(), yb[:size])
    return RegularizerInputs(features, logits, ce, full.parameters)


def train(
    model: torch.nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    terms: Sequence[Term],
    settings: TrainSettings,
    progress: Progress | None = None,
) -> TrainResult:
    """Train ``model`` in place (Algorithm 1) and return its curves and stopping facts.

    ``model`` must offer ``forward_features(x) -> (F, logits)``. The mini-batch order is drawn from a
    generator seeded with ``settings.seed`` (the model's initialization is the caller's business).
    ``progress(step, info)`` is called after every iteration.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(settings.optimizer, params, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    n = len(y_train)
    batches_per_epoch = math.ceil(n / settings.batch_size)
    curves: dict[str, list] = {c: [] for c in CURVE_COLUMNS}
    extra_columns = [t.column for t in terms if t.column not in CURVE_COLUMNS]
    for column in extra_columns:
        curves[column] = []
    evals: list[dict] = []
    ema, beta = 0.0, settings.grad_ema
    step, epoch, stop_reason, reached = 0, 0, "epochs", None
    epoch_times: list[float] = []
    previous_val: float | None = None
    start = time.perf_counter()
    model.train()

    def validate(epoch_index: int, train_losses: list[float], epoch_start: float, full_epoch: bool) -> bool:
        """Record a validation row; True when the val-loss-change criterion holds."""
        nonlocal previous_val
        val_loss, val_acc = evaluate_loss(model, x_val, y_val)
        now = time.perf_counter()
        row = {
            "epoch": epoch_index,
            "step": step,
            "train_loss": float(np.mean(train_losses)) if train_losses else float("nan"),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "wall_time_s": now - start,
            "epoch_time_s": now - epoch_start if full_epoch else float("nan"),
        }
        evals.append(row)
        changed = previous_val is not None and abs(val_loss - previous_val) < settings.delta
        previous_val = val_loss
        return changed

    stopped = False
    while epoch < settings.epochs and not stopped:
        epoch += 1
        epoch_start = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(x_train.device)
        train_losses: list[float] = []
        for batch_index in range(batches_per_epoch):
            index = order[batch_index * settings.batch_size : (batch_index + 1) * settings.batch_size]
            xb, yb = x_train[index], y_train[index]
            step += 1
            features, logits = model.forward_features(xb)
            ce = F.cross_entropy(logits.float(), yb)
            total = ce
            values: dict[str, float] = {}
            inputs = RegularizerInputs(features, logits, ce, tuple(params))
            for term in terms:
                if term.due(step) and term.weight > 0:
                    penalty = term.regularizer.penalty(_inputs_for(term, model, xb, yb, inputs))
                    total = total + term.weight * penalty
                    values[term.column] = float(penalty.detach())
            optimizer.zero_grad(set_to_none=True)
            loss_value = float(total.detach())
            if not math.isfinite(loss_value):
                stop_reason, stopped = "non_finite_loss", True
                break
            total.backward()
            g = grad_norm(params)
            optimizer.step()
            ema = beta * ema + (1 - beta) * g
            smoothed = ema / (1 - beta**step) if beta > 0 else g
            train_losses.append(float(ce.detach()))
            row = {
                "step": step,
                "epoch": epoch,
                "loss": loss_value,
                "loss_ce": float(ce.detach()),
                "stab": values.get("stab", float("nan")),
                "curv": values.get("curv", float("nan")),
                "grad_norm": g,
                "grad_norm_ema": smoothed,
                "lr": optimizer.param_groups[0]["lr"],
                "wall_time_s": time.perf_counter() - start,
            }
            for column in extra_columns:
                row[column] = values.get(column, float("nan"))
            for key, value in row.items():
                curves[key].append(value)
            if progress is not None:
                progress(step, row)
            if smoothed <= settings.eps:
                reached, stop_reason, stopped = step, "grad_norm", True
                break
            if settings.eval_every and step % settings.eval_every == 0 and validate(epoch, train_losses, epoch_start, False):
                stop_reason, stopped = "val_loss_change", True
                break
            if settings.max_iterations is not None and step >= settings.max_iterations:
                stop_reason, stopped = "max_iterations", True
                break
        full_epoch = not stopped
        if not settings.eval_every:
            if validate(epoch, train_losses, epoch_start, full_epoch) and not stopped:
                stop_reason, stopped = "val_loss_change", True
        elif (stopped or epoch == settings.epochs) and (not evals or evals[-1]["step"] != step):
            validate(epoch, train_losses, epoch_start, full_epoch)  # the final model's validation loss
        if full_epoch:
            epoch_times.append(time.perf_counter() - epoch_start)
    model.eval()
    epochs_completed = len(epoch_times)
    return TrainResult(curves, evals, stop_reason, step, epochs_completed, reached, time.perf_counter() - start, epoch_times)


def curvature_scope(config, model: torch.nn.Module | None = None) -> str:
    """``full`` or ``classical``: what the curvature term differentiates through.

    ``auto`` is ``full`` unless the model's quantum layer runs without backprop: through the
    parameter-shift rule, training on L_curv (third derivatives) costs ``(2P)³`` circuit runs per
    sample, so the quantum features are then held constant in that term.
    """
    if config.curvature_scope != "auto":
        return config.curvature_scope
    layer = getattr(model, "quantum", None)
    if layer is None:
        return "full"
    from hqf.quantum.gradients import default_gradient

    method = default_gradient(layer.backend) if layer.gradient == "auto" else layer.gradient
    return "full" if method == "backprop" else "classical"


def build_terms(config, model: torch.nn.Module | None = None) -> list[Term]:
    """The weighted regularizer terms a configuration names (``stability`` → λ, ``curvature`` → γ)."""
    from hqf.quantum.make import make_regularizer

    terms = []
    for name in config.regularizers:
        options = dict(config.regularizer_options.get(name, {}))
        every, batch = 1, None
        if name == "stability":
            weight, column = config.lambda_stab, "stab"
        elif name == "curvature":
            weight, column, every, batch = config.gamma_curv, "curv", config.curvature_every, config.curvature_batch
            options.setdefault("probes", config.curvature_probes)
            options.setdefault("seed", config.seed)
        else:
            weight, column = float(options.pop("weight", 1.0)), f"reg_{name}"
        try:
            regularizer = make_regularizer(name, **options)
        except (TypeError, ValueError) as exc:
            from hqf.errors import ConfigError, HqfError

            if isinstance(exc, HqfError):
                raise
            raise ConfigError(f"regularizer {name!r} with options {options}: {exc}") from None
        constant = name == "curvature" and curvature_scope(config, model) == "classical"
        terms.append(Term(name, regularizer, float(weight), every, column, batch, constant))
    return terms
