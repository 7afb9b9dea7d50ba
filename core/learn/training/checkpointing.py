"""Saving and resuming a training call: when its state is saved and how a stop on request is raised."""

from __future__ import annotations

from collections.abc import Callable

import attrs


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
