"""Training per Algorithm 1 of the seed paper (HQCCA), with its convergence criterion.

One iteration (optimizer step ``t = 1, 2, …``, :func:`train_step`) on a mini-batch: forward, composite
loss ``L_total = L_ce + λ·L_stab + γ·L_curv`` (eq. 10; each term with the weight, schedule and
sub-batch its regularizer declares, :mod:`hqf.learn.training.terms`: by default the curvature term is
estimated every ``curvature_every`` iterations on ``curvature_batch`` samples and is absent, i.e. 0,
in between), backward (autograd for the classical parameters; the quantum weights get the backend's
gradient — autograd, adjoint or the parameter-shift rule, eq. 12), the gradient norm
``g_t = ‖∇L_total‖₂`` over all trainable parameters, one optimizer step.

Stopping (the first that holds, checked in this order after the step: :data:`STOP_RULES`):

- ``grad_norm``: the bias-corrected exponential moving average ``ĝ_t`` of ``g_t`` (weight ``grad_ema``;
  0 means the raw ``g_t``) is ``≤ eps``. *Iterations to ε* is that ``t``.
- ``val_loss_change``: after a validation (once per epoch, or every ``eval_every`` iterations),
  ``|L_val − L_val(previous validation)| < delta``.
- ``max_iterations`` or ``epochs``: the budget is spent.
- ``non_finite_loss``: the loss became NaN or infinite (training stops; :func:`hqf.learn.experiment.run`
  then records the run as failed).

Resuming (:class:`Checkpointing`): the loop's whole state — model, optimizer, the data-order generator
and the position in the current epoch, curves and validations — is saved as it goes and can be
restored, so that a resumed run continues bit for bit. That state is the loop's own, so it lives here
with the loop (which makes this module longer than the others).

See docs/method.md for why the moving average and for the surrogate recorded when ε is never reached.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from hqf.learn.training.terms import Term, build_terms
from hqf.registry.contracts import RegularizerInputs

__all__ = [
    "CURVE_COLUMNS",
    "EVAL_COLUMNS",
    "StepResult",
    "Term",
    "TrainResult",
    "TrainSettings",
    "build_terms",  # kept here for callers that import it with train
    "composite_loss",
    "evaluate_loss",
    "grad_norm",
    "make_optimizer",
    "train",
    "train_step",
]

#: columns of the per-iteration curves, in order (``step`` is the iteration t; ``loss`` is L_total);
#: ``stab`` and ``curv`` are the curve columns the built-in regularizers declare, kept in every file
#: (empty where not computed); other terms' columns follow these
CURVE_COLUMNS = ("step", "epoch", "loss", "loss_ce", "stab", "curv", "grad_norm", "grad_norm_ema", "lr", "wall_time_s")
#: columns of the per-validation table
EVAL_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "val_accuracy", "wall_time_s", "epoch_time_s")
#: relative tolerance of the surrogate "iterations to within 1% of the best validation loss"
VAL_TOLERANCE = 0.01


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


@attrs.frozen
class StepResult:
    """The numbers of one iteration. A ``loss`` that is not finite means no backward pass and no
    optimizer step were taken (``grad_norm`` is then NaN)."""

    loss: float  # L_total
    loss_ce: float
    penalties: dict[str, float]  # by curve column, for the terms computed at this iteration
    grad_norm: float = math.nan


def composite_loss(
    model: torch.nn.Module, params: Sequence[torch.Tensor], terms: Sequence[Term], xb: torch.Tensor, yb: torch.Tensor, step: int
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
    the gradient norm ``g_t`` over ``params``, one optimizer step."""
    total, ce, penalties = composite_loss(model, params, terms, xb, yb, step)
    optimizer.zero_grad(set_to_none=True)
    loss = float(total.detach())
    if not math.isfinite(loss):
        return StepResult(loss, float(ce.detach()), penalties)
    total.backward()
    norm = grad_norm(params)
    optimizer.step()
    return StepResult(loss, float(ce.detach()), penalties, norm)


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

    def record(self, epoch: int, step: int, train_losses: Sequence[float], epoch_start: float, full_epoch: bool) -> bool:
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


@attrs.frozen
class Checkpointing:
    """Saving and resuming one ``train`` call.

    ``save(state)`` receives the training state (:meth:`_Training.state`: model and optimizer state,
    the data-order generator, the current epoch's order and how many of its batches are done, the
    curves, validation rows and timings so far) every ``every`` iterations (None: never), at the end of
    every epoch, and once when training stops early (with its ``stop_reason``). After each iteration
    ``stop_requested()`` may name a signal: the state is then saved and :class:`TrainingInterrupted`
    raised. ``resume``: a saved state to continue from, bit for bit.
    """

    save: Callable[[dict], None]
    every: int | None = None
    stop_requested: Callable[[], str | None] = lambda: None
    resume: dict | None = None


class TrainingInterrupted(Exception):
    """Training stopped on request (``signal``) after saving its state at iteration ``step``."""

    def __init__(self, step: int, signal: str) -> None:
        self.step, self.signal = step, signal
        super().__init__(f"training stopped by {signal} at iteration {step}")


@attrs.define
class _Training:
    """One ``train`` call between iterations: the iteration count, curves, validations, epoch times,
    and the position in the data (epoch, its order, the batches done), which a checkpoint saves."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    terms: Sequence[Term]
    settings: TrainSettings
    progress: Progress | None
    started: float
    validation: Validation
    curves: dict[str, list]
    smoothed: SmoothedNorm
    step: int = 0
    epoch_times: list[float] = attrs.field(factory=list)
    generator: torch.Generator | None = None  # draws each epoch's order
    checkpointing: Checkpointing | None = None
    epoch: int = 1
    order: torch.Tensor | None = None  # this epoch's order (CPU); None: the epoch has not begun
    batches_done: int = 0
    train_losses: list[float] = attrs.field(factory=list)  # this epoch's, for its validation row
    epoch_start: float = 0.0
    #: measurements taken after some iterations (``due(step)``, ``measure(model, params)``, ``column``),
    #: their time kept out of every clock of the run (hqf.learn.training.probes)
    probes: Sequence = ()

    def run_epoch(self, epoch: int, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> str | None:
        """One pass over ``batches``, then the end-of-epoch validation; the stop reason, or None to go on."""
        train_losses = self.train_losses
        reason = None
        for xb, yb in batches:
            self.step += 1
            self.batches_done += 1
            result = train_step(self.model, self.optimizer, self.params, self.terms, xb, yb, self.step)
            if not math.isfinite(result.loss):
                reason = "non_finite_loss"
                break
            smoothed = self.smoothed.update(result.grad_norm)
            train_losses.append(result.loss_ce)
            row = self._record(epoch, result, smoothed)
            if self.progress is not None:
                self.progress(self.step, row)
            validate = lambda: self.validation.record(epoch, self.step, train_losses, self.epoch_start, False)  # noqa: E731
            reason = stop_reason_after(AfterStep(self.step, smoothed, self.settings, validate))
            if reason is not None:
                break
            self._checkpoint(periodic=True)
        return self._close_epoch(epoch, reason, train_losses, self.epoch_start)

    def end_epoch(self) -> None:
        """The epoch is over and training goes on: a checkpoint at the boundary."""
        self.epoch += 1
        self.order, self.batches_done, self.train_losses = None, 0, []
        self._checkpoint(periodic=False)

    def _checkpoint(self, periodic: bool) -> None:
        """Save when due (every ``every`` iterations, or always at an epoch's end) or asked to stop; then stop if asked."""
        checkpointing = self.checkpointing
        if checkpointing is None:
            return
        signal = checkpointing.stop_requested()
        every = checkpointing.every
        if signal is not None or not periodic or (every and self.step % every == 0):
            checkpointing.save(self.state())
        if signal is not None:
            raise TrainingInterrupted(self.step, signal)

    def state(self, stop_reason: str | None = None) -> dict:
        """Everything needed to continue from here (see :class:`Checkpointing`); tensors and plain values."""
        now = time.perf_counter()
        return {
            "step": self.step,
            "epoch": self.epoch,
            "order": None if self.order is None else self.order.cpu(),
            "batches_done": self.batches_done,
            "data_generator": self.generator.get_state(),
            "train_losses": list(self.train_losses),
            "curves": {column: list(values) for column, values in self.curves.items()},
            "evals": [dict(row) for row in self.validation.rows],
            "epoch_times": list(self.epoch_times),
            "smoothed": [self.smoothed.average, self.smoothed.count],
            "elapsed": now - self.started,
            "epoch_elapsed": now - self.epoch_start,
            "stop_reason": stop_reason,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def restore(self, state: dict) -> None:
        """Continue from a :meth:`state` (the same model and configuration)."""
        if list(state["curves"]) != list(self.curves):
            raise ValueError(f"the saved curves have columns {list(state['curves'])}; this run has {list(self.curves)}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["data_generator"])
        self.step, self.epoch, self.batches_done = state["step"], state["epoch"], state["batches_done"]
        self.order = state["order"]
        self.train_losses = list(state["train_losses"])
        self.curves = {column: list(values) for column, values in state["curves"].items()}
        self.validation.rows = [dict(row) for row in state["evals"]]
        self.epoch_times = list(state["epoch_times"])
        self.smoothed.average, self.smoothed.count = state["smoothed"]
        now = time.perf_counter()
        self.started = self.validation.started = now - state["elapsed"]
        self.epoch_start = now - state["epoch_elapsed"]

    def _probe(self) -> dict[str, float]:
        """The due probes' values by column; the clocks are moved on by the time they took."""
        values = {}
        for probe in self.probes:
            if probe.due(self.step):
                before = time.perf_counter()
                values[probe.column] = probe.measure(self.model, self.params)
                spent = time.perf_counter() - before
                self.started += spent
                self.validation.started += spent
                self.epoch_start += spent
        return values

    def _record(self, epoch: int, result: StepResult, smoothed: float) -> dict:
        """Append the iteration's row to the curves; the row."""
        probed = self._probe()
        values = {
            "step": self.step,
            "epoch": epoch,
            "loss": result.loss,
            "loss_ce": result.loss_ce,
            "grad_norm": result.grad_norm,
            "grad_norm_ema": smoothed,
            "lr": self.optimizer.param_groups[0]["lr"],
            "wall_time_s": time.perf_counter() - self.started,
            **probed,
        }
        row = {column: values.get(column, result.penalties.get(column, math.nan)) for column in self.curves}
        for column, value in row.items():
            self.curves[column].append(value)
        return row

    def _close_epoch(self, epoch: int, reason: str | None, train_losses: list[float], epoch_start: float) -> str | None:
        """Validate at the end of the epoch (without ``eval_every``: its δ-criterion may stop training;
        with it: once for the final model); record the time of a full epoch."""
        full_epoch = reason is None
        if not self.settings.eval_every:
            if self.validation.record(epoch, self.step, train_losses, epoch_start, full_epoch) and reason is None:
                reason = "val_loss_change"
        elif (reason is not None or epoch == self.settings.epochs) and self.validation.last_step != self.step:
            self.validation.record(epoch, self.step, train_losses, epoch_start, full_epoch)
        if full_epoch:
            self.epoch_times.append(time.perf_counter() - epoch_start)
        return reason


def train(
    model: torch.nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    terms: Sequence[Term],
    settings: TrainSettings,
    progress: Progress | None = None,
    on_validation: Callable[[dict], None] | None = None,
    checkpointing: Checkpointing | None = None,
    probes: Sequence = (),
) -> TrainResult:
    """Train ``model`` in place (Algorithm 1) and return its curves and stopping facts.

    ``model`` must offer ``forward_features(x) -> (F, logits)``. The mini-batch order is drawn from a
    generator seeded with ``settings.seed`` (the model's initialization is the caller's business).
    ``progress(step, row)`` is called after every iteration with its row of the curves;
    ``on_validation(row)`` after every validation with its row (:data:`EVAL_COLUMNS`).
    ``checkpointing``: save the state as it goes and/or continue from a saved one (see :class:`Checkpointing`);
    raises :class:`TrainingInterrupted` when it asks training to stop.
    ``probes``: measurements after some iterations, each in a curve column of its own, their time
    excluded from every timing of the run (:class:`hqf.learn.training.probes.FullBatchGradient`).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(settings.optimizer, params, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    columns = [*CURVE_COLUMNS, *(t.column for t in terms if t.column not in CURVE_COLUMNS), *(p.column for p in probes)]
    started = time.perf_counter()
    run = _Training(
        model=model,
        optimizer=optimizer,
        params=params,
        terms=terms,
        settings=settings,
        progress=progress,
        started=started,
        validation=Validation(model, x_val, y_val, settings.delta, started, on_record=on_validation),
        curves={c: [] for c in columns},
        smoothed=SmoothedNorm(settings.grad_ema),
        generator=generator,
        checkpointing=checkpointing,
        probes=tuple(probes),
    )
    reason = None
    if checkpointing is not None and checkpointing.resume is not None:
        run.restore(checkpointing.resume)
        reason = checkpointing.resume["stop_reason"]
    model.train()
    while reason is None and run.epoch <= settings.epochs:
        if run.order is None:  # a new epoch
            run.epoch_start = time.perf_counter()
            run.order = torch.randperm(len(y_train), generator=generator)
        pieces = itertools.islice(_slices(run.order.to(x_train.device), settings.batch_size), run.batches_done, None)
        batches = ((x_train[index], y_train[index]) for index in pieces)
        reason = run.run_epoch(run.epoch, batches)
        if reason is None:
            run.end_epoch()
    resumed_finished = checkpointing is not None and checkpointing.resume is not None and reason is not None
    if checkpointing is not None and reason not in (None, "non_finite_loss") and not resumed_finished:
        checkpointing.save(run.state(stop_reason=reason))
    model.eval()
    reached = run.step if reason == "grad_norm" else None
    elapsed = time.perf_counter() - run.started
    epochs = len(run.epoch_times)
    return TrainResult(run.curves, run.validation.rows, reason or "epochs", run.step, epochs, reached, elapsed, run.epoch_times)


def _slices(order: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    """Consecutive pieces of ``order`` of ``size`` elements (the last may be shorter)."""
    for start in range(0, len(order), size):
        yield order[start : start + size]
