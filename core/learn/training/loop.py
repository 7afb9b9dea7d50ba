"""Training per Algorithm 1 of the seed paper (HQCCA), with its convergence criterion: the loop over
epochs and mini-batches (:func:`train`). Its parts: the settings (:mod:`~hqf.learn.training.settings`),
one iteration (:mod:`~hqf.learn.training.step`), the stopping rules and validations
(:mod:`~hqf.learn.training.stopping`), the curves and result (:mod:`~hqf.learn.training.curves`),
checkpoints (:mod:`~hqf.learn.training.checkpointing`).

One iteration (optimizer step ``t = 1, 2, …``, :func:`~hqf.learn.training.step.train_step`) on a
mini-batch: forward, composite loss ``L_total = L_ce + λ·L_stab + γ·L_curv`` (eq. 10; each term with
the weight, schedule and sub-batch of its regularizer's options, :mod:`hqf.learn.training.terms`: by
default the curvature term is estimated every 10 iterations (``every``) on 64 samples (``batch``) and
is absent, i.e. 0, in between), backward (autograd for the classical parameters; the quantum weights
get the backend's gradient — autograd, adjoint or the parameter-shift rule, eq. 12), the gradient norm
``g_t = ‖∇L_total‖₂`` over all trainable parameters, one optimizer step.

Stopping (the first that holds, checked in this order after the step:
:data:`~hqf.learn.training.stopping.STOP_RULES`):

- ``grad_norm``: the bias-corrected exponential moving average ``ĝ_t`` of ``g_t`` (weight ``grad_ema``;
  0 means the raw ``g_t``) is ``≤ eps``. *Iterations to ε* is that ``t``.
- ``val_loss_change``: after a validation (once per epoch, or every ``eval_every`` iterations),
  ``|L_val − L_val(previous validation)| < delta``.
- ``max_iterations`` or ``epochs``: the budget is spent.
- ``non_finite_loss``: the loss became NaN or infinite (training stops; :func:`hqf.learn.experiment.run`
  then records the run as failed).

Resuming (:class:`~hqf.learn.training.checkpointing.Checkpointing`): the loop's whole state — model,
optimizer, the data-order generator and the position in the current epoch, curves and validations —
is saved as it goes and can be restored, so that a resumed run continues bit for bit.

See docs/method.md for why the moving average and for the surrogate recorded when ε is never reached.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs
import torch

from hqf.learn.training.checkpointing import Checkpointing, TrainingInterrupted
from hqf.learn.training.curves import TrainResult, curve_columns
from hqf.learn.training.settings import TrainSettings, make_optimizer
from hqf.learn.training.step import StepResult, train_step
from hqf.learn.training.stopping import AfterStep, SmoothedNorm, Validation, stop_reason_after
from hqf.learn.training.terms import Term

Progress = Callable[[int, dict], None]


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
        """Save when due (every ``every`` iterations, or always at an epoch's end) or asked to stop; then stop if
        asked."""
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
    columns = curve_columns(terms, probes)
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
    return TrainResult(
        run.curves, run.validation.rows, reason or "epochs", run.step, epochs, reached, elapsed, run.epoch_times
    )


def _slices(order: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    """Consecutive pieces of ``order`` of ``size`` elements (the last may be shorter)."""
    for start in range(0, len(order), size):
        yield order[start : start + size]
