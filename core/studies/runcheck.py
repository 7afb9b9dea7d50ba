"""Checks on run directories before a report aggregates them: the sweep manifest, failed runs, and
metric values of the wrong type (each a one-line warning instead of a silent "n/a")."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

from hqf.errors import ConfigError
from hqf.learn.rundir.state import read_status

#: the stop reason an older hqf wrote for a run whose loss became NaN or infinite (it then still
#: wrote metrics.json); such a run is failed all the same
NON_FINITE = "non_finite_loss"


def read_manifest(path: pathlib.Path) -> dict[str, Any]:
    """A sweep folder's ``sweep.json``: a ConfigError when it does not parse, has no ``runs`` list, or
    a row without ``dir``, ``variant`` and an integer ``seed``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: not a readable sweep manifest ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ConfigError(
            f"{path}: a sweep manifest is a JSON object with a list 'runs' (rerun `hqf sweep` to rewrite it)"
        )
    if not isinstance(data.get("report", {}), dict):
        raise ConfigError(f"{path}: 'report' must be an object")
    for i, row in enumerate(data["runs"]):
        ok = isinstance(row, dict) and isinstance(row.get("dir"), str) and isinstance(row.get("variant"), str)
        if not ok or type(row.get("seed")) is not int:
            raise ConfigError(f"{path}: run {i} needs 'dir', 'variant' and an integer 'seed' (got {row!r})")
        if pathlib.PurePath(row["dir"]).is_absolute() or ".." in pathlib.PurePath(row["dir"]).parts:
            raise ConfigError(f"{path}: run {i}: 'dir' must lie inside the sweep folder (got {row['dir']!r})")
    return data


def failure(directory: pathlib.Path, metrics: Mapping | None) -> str | None:
    """Why the run in ``directory`` failed (its status.json, or a metrics.json of a non-finite loss), or None."""
    status = read_status(directory)
    if status is not None and status.get("status") == "failed":
        return str(status.get("reason") or "failed")
    if metrics is not None and metrics.get("stop_reason") == NON_FINITE:
        return "the loss became NaN or infinite (stop_reason non_finite_loss)"
    return None


def type_warnings(directory: pathlib.Path, metrics: Mapping, keys: Iterable[str]) -> list[str]:
    """One line per metric among ``keys`` whose value is neither a number nor null."""
    out = []
    for key in keys:
        value = metrics.get(key)
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            continue
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        out.append(
            f"{directory / 'metrics.json'}: {key!r} is {type(value).__name__} {shown}, not a number; "
            "it is left out (n/a)"
        )
    return out
