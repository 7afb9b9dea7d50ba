"""Saving and resuming a training call: when its state is saved, how a stop on request is raised, and
which errors mean that another rank of a data-parallel run was lost (:func:`lost_rank`)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import attrs
import torch.distributed as dist

from hqf.errors import HqfError, RunInterrupted


@attrs.frozen
class Checkpointing:
    """Saving and resuming one ``train`` call.

    ``save(state)`` receives the training state (:func:`hqf.learn.training.loop.train`'s state: model and optimizer
    state,
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


def lost_rank(exc: BaseException) -> bool:
    """Whether ``exc``, raised while training, is a failure of the data-parallel process group rather than
    of the run: a ``RuntimeError`` (what ``torch.distributed`` raises when another rank ended or a
    collective timed out) while a process group of several ranks is set up; never one of hqf's own errors."""
    return (
        isinstance(exc, RuntimeError)
        and not isinstance(exc, HqfError)
        and dist.is_available()
        and dist.is_initialized()
        and dist.get_world_size() > 1
    )


class RankLost(RunInterrupted):
    """Data-parallel training stopped because another rank was lost; the last checkpoint (of iteration
    ``step``) is kept and the run is resumable. Exit status 1."""

    reason = "a rank of the data-parallel run was lost"

    def __init__(self, directory: str | pathlib.Path, step: int | None) -> None:
        self.directory, self.step = pathlib.Path(directory), step
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else None
        again = f"hqf run --resume {directory}" + (f" --ddp {world}" if world else "")
        if (self.directory / "checkpoint.pt").exists():
            told = f"the run so far is kept in {directory} (checkpoint.pt, iteration {step}); continue with: {again}"
        else:
            told = "it ended before its first checkpoint: run it again"
        super().__init__(f"{self.reason}; {told}", 1)
