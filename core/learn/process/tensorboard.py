"""TensorBoard event files of a run (``tensorboard = true``, ``hqf run --tensorboard``; extra ``hqf[tensorboard]``).

Scalars, by tag (x axis: the iteration ``t``):

- ``train/<column>`` after every iteration: the curve columns of ``curves.csv`` — ``loss`` (L_total),
  ``loss_ce``, each regularizer's column where it was computed (``stab``, ``curv``, …), ``grad_norm``
  (g_t), ``grad_norm_ema`` (ĝ_t), ``lr``;
- ``val/loss``, ``val/accuracy``, ``val/train_loss`` after every validation, with the fusion's declared
  diagnostics on the validation rows at that point as ``fusion/<name>`` (e.g. ``fusion/gate_mean``);
- the HParams view: the run's settings (:meth:`RunConfig.to_dict`; numbers, text and flags, lists
  joined by commas) with the final metrics of ``metrics.json`` as ``final/<key>``, so that the runs of
  a sweep compare side by side (``tensorboard --logdir SWEEP``).

The files are in the run directory's ``tensorboard/`` folder from the first iteration on. A resumed run
appends to them; TensorBoard drops the steps logged after the checkpoint when they come again. The
diagnostics pass runs the model on the validation rows: on a backend that samples shots it draws from
the backend's random state, so such a run's numbers differ with and without TensorBoard.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from hqf.errors import ConfigError

#: the run directory's folder of event files
FOLDER = "tensorboard"
#: curve columns that are not logged as scalars (the x axis, and times)
NOT_LOGGED = ("step", "epoch", "wall_time_s")
#: validation columns logged, with their tags
VALIDATION_TAGS = {"val_loss": "val/loss", "val_accuracy": "val/accuracy", "train_loss": "val/train_loss"}
#: validation rows the fusion's diagnostics are computed on
DIAGNOSTIC_ROWS = 1024


def require() -> None:
    """Raise a one-line ConfigError when the ``tensorboard`` package is not installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("'tensorboard' needs the tensorboard package: pip install 'hqf[tensorboard]'")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def hparams(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as TensorBoard takes them: numbers, text and flags kept, lists joined, tables as JSON,
    ``None`` left out."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            out[key] = ",".join(map(str, value)) or "none"
        elif isinstance(value, dict):
            out[key] = json.dumps(value, sort_keys=True)
        else:
            out[key] = value
    return out


class TensorBoardLog:
    """Writes a run's scalars to event files in ``directory`` as training goes."""

    def __init__(self, directory: str | pathlib.Path, model: torch.nn.Module, x_val: torch.Tensor) -> None:
        require()
        from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 — the optional extra, ~1 s to import

        self.directory = pathlib.Path(directory)
        self.writer = SummaryWriter(log_dir=str(self.directory))
        self.model = model
        self.x_diagnostics = x_val[:DIAGNOSTIC_ROWS]

    def iteration(self, row: Mapping[str, Any]) -> None:
        """One row of the curves (``curves.csv``): its finite values as ``train/<column>``."""
        step = int(row["step"])
        for column, value in row.items():
            number = _number(value)
            if column not in NOT_LOGGED and number is not None:
                self.writer.add_scalar(f"train/{column}", number, step)

    def validation(self, row: Mapping[str, Any]) -> None:
        """One validation row (``epochs.csv``), then the fusion's diagnostics on the validation rows."""
        step = int(row["step"])
        for column, tag in VALIDATION_TAGS.items():
            number = _number(row.get(column))
            if number is not None:
                self.writer.add_scalar(tag, number, step)
        for name, value in self.model.fusion_diagnostics(self.x_diagnostics).items():
            number = _number(value)
            if number is not None:
                self.writer.add_scalar(f"fusion/{name}", number, step)
        self.writer.flush()

    def finish(self, settings: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
        """The HParams record (settings and the final metrics), then close the files."""
        final = {f"final/{key}": number for key, value in metrics.items() if (number := _number(value)) is not None}
        self.writer.add_hparams(hparams(settings), final, run_name=".")  # ".": the same folder, not a new run
        self.close()

    def close(self) -> None:
        self.writer.close()


@contextlib.contextmanager
def live(
    enabled: bool, out: pathlib.Path, model: torch.nn.Module, x_val: torch.Tensor
) -> Iterator[TensorBoardLog | None]:
    """A :class:`TensorBoardLog` (None unless ``enabled``) writing into ``out/tensorboard`` of the run
    directory ``out`` while the run goes (``tensorboard --logdir`` on it, or on a sweep, shows it live);
    the files are closed on the way out, whatever happened."""
    if not enabled:
        yield None
        return
    board = TensorBoardLog(out / FOLDER, model, x_val)
    try:
        yield board
    finally:
        board.close()
