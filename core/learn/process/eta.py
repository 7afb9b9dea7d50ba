"""The time a run has left, from a mean over whole periods of its schedule.

Iterations differ in cost by the regularizers' schedules: with ``curvature_every = 10`` every tenth
iteration also computes the curvature term. A mean over the last few iterations then swings with
where the window falls; a mean over a whole number of periods does not. :class:`PeriodicEta` keeps
the wall-clock time of the last :attr:`window` iterations, a multiple of the period (the least
common multiple of the terms' schedules) of at least :data:`MIN_WINDOW` iterations, and predicts
the rest at that mean.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable

#: the fewest iterations the mean is taken over (rounded up to whole periods)
MIN_WINDOW = 20


class PeriodicEta:
    """Seconds left for a run of ``total`` iterations whose terms repeat every ``periods`` iterations."""

    def __init__(self, total: int, periods: Iterable[int] = ()) -> None:
        period = math.lcm(1, *periods)
        self.total = total
        self.window = period * math.ceil(MIN_WINDOW / period)
        self._times: collections.deque[tuple[int, float]] = collections.deque(maxlen=self.window + 1)

    def update(self, step: int, wall_time_s: float) -> None:
        """Iteration ``step`` ended ``wall_time_s`` seconds into training."""
        self._times.append((step, wall_time_s))

    def seconds_left(self) -> float | None:
        """The estimate; None until two iterations are known."""
        if len(self._times) < 2:
            return None
        (first_step, first_time), (last_step, last_time) = self._times[0], self._times[-1]
        per_step = (last_time - first_time) / (last_step - first_step)
        return max(0.0, (self.total - last_step) * per_step)


def clock(seconds: float | None) -> str:
    """``H:MM:SS`` or ``M:SS``; ``?`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
