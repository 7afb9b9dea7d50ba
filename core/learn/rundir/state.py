"""What state a run directory is in, read without importing torch (``hqf sweep``, ``hqf report``).

See :mod:`hqf.learn.rundir.lifecycle` for the layout: a run is *finished* when its ``metrics.json`` parses
and holds results, *failed* when its ``status.json`` says so, *running* while a live process holds its
``lock``, and *resumable* when it has a checkpoint and nobody holds it.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

from hqf.learn.rundir.lock import LOCK, holder

STATUS = "status.json"
METRICS = "metrics.json"
CONFIG = "config.toml"
CHECKPOINT = "checkpoint.pt"
#: the key a finished run's metrics.json always holds: without it (e.g. ``{}``) the run has no results
RESULT = "accuracy"


def read_status(directory: str | pathlib.Path) -> dict[str, Any] | None:
    """``status.json`` of a run directory (None when absent or unreadable)."""
    try:
        data = json.loads((pathlib.Path(directory) / STATUS).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def holds_results(metrics: Any) -> bool:
    """Whether a parsed ``metrics.json`` is a finished run's: a JSON object holding its results (:data:`RESULT`)."""
    return isinstance(metrics, dict) and RESULT in metrics


def is_finished(directory: str | pathlib.Path) -> bool:
    """Whether ``directory`` holds a finished run: a ``metrics.json`` that parses and :func:`holds_results`."""
    try:
        return holds_results(json.loads((pathlib.Path(directory) / METRICS).read_text()))
    except (OSError, ValueError, RecursionError):
        return False


def state_of(directory: str | pathlib.Path) -> str:
    """``finished``, ``failed``, ``running`` (claimed by a live process), ``resumable`` (a checkpoint
    and no live holder), ``partial`` (something else is there) or ``empty`` (absent or empty)."""
    directory = pathlib.Path(directory)
    if is_finished(directory):
        return "finished"
    if not directory.is_dir() or not any(directory.iterdir()):
        return "empty"
    claimed = holder(directory)
    if claimed is not None and not claimed.is_me():
        return "running"
    status = read_status(directory)
    if status is not None and status.get("status") == "failed":
        return "failed"
    if (directory / CHECKPOINT).exists() and (directory / CONFIG).exists():
        return "resumable"
    return "partial"


def clear(directory: pathlib.Path, keep: tuple[str, ...] = (LOCK,)) -> None:
    """Remove everything in ``directory`` but ``keep`` (a half-written run about to be redone)."""
    for item in directory.iterdir():
        if item.name in keep:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()
