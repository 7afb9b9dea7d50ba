"""Finished runs on disk, labelled by variant, seed and axes, grouped for the report's statistics.

A sweep folder's ``sweep.json`` (written by ``hqf sweep``) gives each run's labels and the sweep
file's ``[report]`` settings; a run directory given alone is labelled by its folder name, its seed
read from its ``config.toml``. Failed runs are set apart (never averaged); a run's ``hqf evaluate``
results in its ``evaluations/`` folder travel with it.
"""

from __future__ import annotations

import json
import math
import pathlib
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from hqf.errors import ConfigError
from hqf.studies.runcheck import failure, read_manifest, type_warnings

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

#: metric keys of metrics.json (written by hqf.learn.experiment) that the tables use
KEYS = {
    "iterations": "iterations_to_eps",
    "iterations_val": "iterations_to_val_within_1pct",
    "iterations_full": "iterations_to_eps_full",
    "energy": "energy_per_epoch_j",
    "accuracy_input_noise": "accuracy_input_noise",
    "accuracy": "accuracy",
    "macro_f1": "macro_f1",
    "ece": "ece",
    "vai": "variance_amplification_index",
    "wall": "wall_time_s",
    "epoch": "time_per_epoch_s",
    "latency": "latency_ms_batch1",
    "steps_total": "steps",  # read through Run.value: search_total_steps when present
}
#: role prefix of Table III's columns read from a run's evaluations/<stem>.json (``hqf evaluate --out``)
EVALUATION = "evaluation:"


@attrs.frozen
class Run:
    """One finished run directory with its labels."""

    directory: pathlib.Path
    variant: str
    seed: int
    axes: tuple[tuple[str, Any], ...]
    metrics: dict = attrs.field(eq=False)
    #: ``hqf evaluate`` results kept in the run's ``evaluations/`` folder: file stem -> its JSON
    evaluations: dict = attrs.field(factory=dict, eq=False)

    def value(self, role: str) -> float:
        if role == "steps_total":  # optimizer steps spent, a search's trials included
            v = self.metrics.get("search_total_steps", self.metrics.get("steps"))
        elif role.startswith(EVALUATION):  # accuracy of one evaluation (EVALUATION + file stem)
            v = self.evaluations.get(role[len(EVALUATION) :], {}).get("accuracy")
        else:
            v = self.metrics.get(KEYS[role])
        try:
            return math.nan if v is None else float(v)
        except (TypeError, ValueError):
            return math.nan


def _metrics(directory: pathlib.Path) -> dict | None:
    try:
        data = json.loads((directory / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _evaluations(directory: pathlib.Path) -> dict:
    """The run's ``evaluations/*.json`` (``hqf evaluate --out``) by file stem; unreadable files are skipped."""
    found = {}
    for path in sorted((directory / "evaluations").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found[path.stem] = data
    return found


def _config_seed(directory: pathlib.Path) -> int:
    try:
        return int(tomllib.loads((directory / "config.toml").read_text()).get("seed", 0))
    except (OSError, ValueError):
        return 0


@attrs.frozen
class Loaded:
    """What :func:`load_runs` found: finished runs, ``[report]`` settings, failed runs (directory,
    reason: left out of every statistic) and warnings (metric values of the wrong type)."""

    runs: list[Run]
    settings: dict
    failed: tuple[tuple[pathlib.Path, str], ...] = ()
    warnings: tuple[str, ...] = ()


def load(paths: Iterable[str | pathlib.Path]) -> tuple[list[Run], dict]:
    """Finished runs under ``paths`` (sweep folders or run folders) and the merged ``[report]`` settings."""
    loaded = load_runs(paths)
    return loaded.runs, loaded.settings


def load_runs(paths: Iterable[str | pathlib.Path]) -> Loaded:
    """Finished runs under ``paths`` (sweep folders or run folders), the merged ``[report]`` settings,
    the failed runs (never averaged) and warnings about metric values of the wrong type."""
    runs: list[Run] = []
    settings: dict = {}
    failed: list[tuple[pathlib.Path, str]] = []
    for path in map(pathlib.Path, paths):
        if not path.exists():
            raise ConfigError(f"no such run or sweep folder: {path}")
        manifest = path / "sweep.json"
        if manifest.exists():
            data = read_manifest(manifest)
            settings = {**data.get("report", {}), **settings}
            for row in data["runs"]:
                directory = path / row["dir"]
                metrics = _metrics(directory)
                if (reason := failure(directory, metrics)) is not None:
                    failed.append((directory, reason))
                elif metrics is not None:
                    axes = tuple((k, v) for k, v in row.items() if k not in ("dir", "variant", "seed"))
                    runs.append(
                        Run(directory, row["variant"], int(row["seed"]), axes, metrics, _evaluations(directory))
                    )
        elif (reason := failure(path, metrics := _metrics(path))) is not None:
            failed.append((path, reason))
        elif metrics is not None:
            runs.append(Run(path, path.name, _config_seed(path), (), metrics, _evaluations(path)))
        else:
            raise ConfigError(f"{path} holds neither sweep.json nor a finished run (metrics.json)")
    if not runs:
        raise ConfigError(
            "no finished runs found" + (f" ({len(failed)} failed: {failed[0][0]}: {failed[0][1]})" if failed else "")
        )
    wrong = tuple(
        line for r in runs for line in type_warnings(r.directory, r.metrics, [*KEYS.values(), "search_total_steps"])
    )
    for line in wrong:
        warnings.warn(line, MetricTypeWarning, stacklevel=2)
    return Loaded(runs, settings, tuple(failed), wrong)


class MetricTypeWarning(UserWarning):
    """A metrics.json value of the wrong type (it is reported as n/a)."""


@attrs.frozen
class Group:
    variant: str
    axes: tuple[tuple[str, Any], ...]
    runs: tuple[Run, ...]

    @property
    def label(self) -> str:
        if not self.axes:
            return self.variant
        return f"{self.variant} [" + ", ".join(f"{k}={v}" for k, v in self.axes) + "]"

    def by_seed(self, role: str) -> dict[int, float]:
        return {r.seed: r.value(role) for r in self.runs}


def group(runs: Sequence[Run]) -> list[Group]:
    """Runs grouped by (variant, axes), in first-seen order."""
    buckets: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        buckets[(run.variant, run.axes)].append(run)
    return [Group(v, a, tuple(sorted(rs, key=lambda r: r.seed))) for (v, a), rs in buckets.items()]
