"""What training records: the per-iteration curves (their columns), the validation rows, and the
:class:`TrainResult` with the iteration counts that exist even when ε is never reached."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from hqf.learn.config import DEFAULT_REGULARIZERS
from hqf.registry.loader import registry

#: the first columns of the per-iteration curves (``step`` is the iteration t; ``loss`` is L_total)
LEADING_COLUMNS = ("step", "epoch", "loss", "loss_ce")
#: the columns after the regularizers' declared ones
TRAILING_COLUMNS = ("grad_norm", "grad_norm_ema", "lr", "wall_time_s")
#: columns of the per-validation table
EVAL_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "val_accuracy", "wall_time_s", "epoch_time_s")
#: relative tolerance of the surrogate "iterations to within 1% of the best validation loss"
VAL_TOLERANCE = 0.01


def declared_columns() -> tuple[str, ...]:
    """The curve columns the registered regularizers declare (``stab``, ``curv``), kept in every file
    (empty where not computed): those of the default run's regularizers first, then by name."""
    entries = {entry.name: entry.cls for entry in registry().entries("regularizer")}
    first = [name for name in DEFAULT_REGULARIZERS if name in entries]
    order = [*first, *sorted(set(entries) - set(first))]
    return tuple(dict.fromkeys(entries[name].column for name in order if entries[name].column))


def curve_columns(terms: Sequence, probes: Sequence = ()) -> list[str]:
    """The columns of a run's curves, in order: :data:`LEADING_COLUMNS`, :func:`declared_columns`,
    :data:`TRAILING_COLUMNS`, then the columns of the other terms and of the probes."""
    columns = [*LEADING_COLUMNS, *declared_columns(), *TRAILING_COLUMNS]
    columns += [column for column in dict.fromkeys(t.column for t in terms) if column not in columns]
    return columns + [p.column for p in probes]


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
