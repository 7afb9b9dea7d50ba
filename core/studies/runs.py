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
from hqf.learn.rundir.state import holds_results
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


#: metrics.json keys that are fractions (an accuracy of 7.5 is a broken file, never 750 %)
FRACTIONS = ("accuracy", "macro_f1", "ece", "accuracy_input_noise")
#: metrics.json keys that are counts, times or energies: never negative
NON_NEGATIVE = (
    "iterations_to_eps", "iterations_to_val_within_1pct", "iterations_to_eps_full", "energy_per_epoch_j",
    "wall_time_s", "time_per_epoch_s", "latency_ms_batch1", "steps", "search_total_steps",
)  # fmt: skip
#: how far a fraction may stray outside [0, 1] by rounding
TOLERANCE = 1e-9


def _metrics(directory: pathlib.Path) -> dict | None:
    """A finished run's metrics.json: a JSON object with an ``accuracy`` (None when absent, unreadable or
    not finished, e.g. ``{}``); a ConfigError when a value is out of range."""
    try:
        data = json.loads((directory / "metrics.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not holds_results(data):
        return None
    _check_ranges(directory / "metrics.json", data, FRACTIONS, NON_NEGATIVE)
    _check_bins(directory / "metrics.json", data.get(RELIABILITY))
    return data


#: the metrics.json key of the reliability diagram's bins (Figure 4): lists of one length each
RELIABILITY = "reliability"
BINS = ("count", "confidence", "accuracy")


def _check_bins(path: pathlib.Path, bins: Any) -> None:
    """A ConfigError unless ``bins`` is empty or holds ``count``, ``confidence`` and ``accuracy``: lists of
    one length of numbers or nulls."""
    if not bins:
        return
    ok = isinstance(bins, dict) and all(isinstance(bins.get(k), list) for k in BINS)
    ok = ok and len({len(bins[k]) for k in BINS}) == 1
    ok = ok and all(v is None or (_number(v) or v != v) for k in BINS for v in bins[k])
    if not ok:
        raise ConfigError(
            f"{path}: {RELIABILITY!r} must hold lists 'count', 'confidence' and 'accuracy' of one length, "
            "of numbers or nulls; fix or leave out that run"
        )


def _check_ranges(path: pathlib.Path, data: dict, fractions: Iterable[str], non_negative: Iterable[str] = ()) -> None:
    for key in fractions:
        value = data.get(key)
        if _number(value) and not -TOLERANCE <= value <= 1 + TOLERANCE:
            raise ConfigError(f"{path}: {key!r} is {value!r}, outside [0, 1]; fix or leave out that run")
    for key in non_negative:
        value = data.get(key)
        if _number(value) and not value >= 0:
            raise ConfigError(f"{path}: {key!r} is {value!r}, below 0; fix or leave out that run")


def _number(value: Any) -> bool:
    """A JSON number (NaN is left to the statistics as a missing value)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _evaluations(directory: pathlib.Path) -> dict:
    """The run's ``evaluations/*.json`` (``hqf evaluate --out``) by file stem; unreadable files are skipped."""
    found = {}
    for path in sorted((directory / "evaluations").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(data, dict):
            _check_ranges(path, data, ("accuracy",))
            found[path.stem] = data
    return found


def _config_seed(directory: pathlib.Path) -> int:
    """The seed in the run's ``config.toml`` (0 when it has none); a ConfigError when it is not an integer."""
    path = directory / "config.toml"
    try:
        seed = tomllib.loads(path.read_text()).get("seed", 0)
    except (OSError, ValueError, RecursionError):
        return 0
    if type(seed) is not int:
        shown = repr(seed) if len(repr(seed)) <= 40 else repr(seed)[:37] + "..."
        raise ConfigError(f"{path}: 'seed' must be an integer (got {type(seed).__name__} {shown})")
    return seed


class _List(tuple):
    """A list-valued axis value (``head = [[4], [8]]``), hashable so that runs group by it; shown as a list."""

    def __repr__(self) -> str:
        return repr(list(self))

    __str__ = __repr__


class _Table(dict):
    """A table-valued axis value, hashable so that runs group by it."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))


def frozen(value: Any) -> Any:
    """``value`` with its lists and tables made hashable (for grouping), equal to and shown as the original."""
    if isinstance(value, list):
        return _List(frozen(v) for v in value)
    if isinstance(value, dict):
        return _Table({k: frozen(v) for k, v in value.items()})
    return value


@attrs.frozen
class Loaded:
    """What :func:`load_runs` found: finished runs, ``[report]`` settings, failed runs (directory,
    reason: left out of every statistic), warnings (metric values of the wrong type) and the runs of a
    sweep that are not finished (no metrics.json with results)."""

    runs: list[Run]
    settings: dict
    failed: tuple[tuple[pathlib.Path, str], ...] = ()
    warnings: tuple[str, ...] = ()
    unfinished: tuple[pathlib.Path, ...] = ()
    notes: tuple[str, ...] = ()  # how run folders given alone were grouped


def load(paths: Iterable[str | pathlib.Path]) -> tuple[list[Run], dict]:
    """Finished runs under ``paths`` (sweep folders or run folders) and the merged ``[report]`` settings."""
    loaded = load_runs(paths)
    return loaded.runs, loaded.settings


def load_runs(paths: Iterable[str | pathlib.Path]) -> Loaded:
    """Finished runs under ``paths`` (sweep folders or run folders), the merged ``[report]`` settings,
    the failed runs (never averaged) and warnings about metric values of the wrong type. Two runs with
    the same labels (variant, axes, seed) are an error: one would silently replace the other."""
    runs: list[Run] = []
    settings: dict = {}
    failed: list[tuple[pathlib.Path, str]] = []
    unfinished: list[pathlib.Path] = []
    plain: list[Run] = []  # run folders given alone
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
                    axes = tuple((k, frozen(v)) for k, v in row.items() if k not in ("dir", "variant", "seed"))
                    runs.append(Run(directory, row["variant"], row["seed"], axes, metrics, _evaluations(directory)))
                else:
                    unfinished.append(directory)
        elif (reason := failure(path, metrics := _metrics(path))) is not None:
            failed.append((path, reason))
        elif metrics is not None:
            plain.append(Run(path, path.name, _config_seed(path), (), metrics, _evaluations(path)))
        elif (path / "metrics.json").is_file():
            raise ConfigError(f"{path / 'metrics.json'} holds no results ('accuracy'): not a finished run")
        else:
            raise ConfigError(f"{path} holds neither sweep.json nor a finished run (metrics.json)")
    pooled, notes = pool_seeds(_distinct(plain))
    runs = _distinct(runs + pooled)
    if not runs:
        raise ConfigError(
            "no finished runs found" + (f" ({len(failed)} failed: {failed[0][0]}: {failed[0][1]})" if failed else "")
        )
    wrong = tuple(
        line for r in runs for line in type_warnings(r.directory, r.metrics, [*KEYS.values(), "search_total_steps"])
    )
    for line in wrong:
        warnings.warn(line, MetricTypeWarning, stacklevel=2)
    return Loaded(runs, settings, tuple(failed), wrong, tuple(unfinished), notes)


def _configuration_but_seed(directory: pathlib.Path) -> str | None:
    """The run's ``config.toml`` without its seed, as comparable text (None when it cannot be read)."""
    try:
        config = tomllib.loads((directory / "config.toml").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    config.pop("seed", None)
    return repr(sorted(config.items()))


def pool_seeds(runs: list[Run]) -> tuple[list[Run], tuple[str, ...]]:
    """Run folders given alone whose configurations differ only in the seed, labelled as one group (named by the
    first folder), so that the report averages over their seeds; and a note per pooled group saying so."""
    classes: dict[str, list[Run]] = {}
    alone: list[Run] = []
    for run in runs:
        key = _configuration_but_seed(run.directory)
        (alone if key is None else classes.setdefault(key, [])).append(run)
    pooled, notes = list(alone), []
    for members in classes.values():
        if len(members) < 2 or len({run.seed for run in members}) < len(members):
            pooled += members
            continue
        label = members[0].variant
        pooled += [attrs.evolve(run, variant=label) for run in members]
        notes.append(
            f"{', '.join(f'`{run.directory}`' for run in members)}: the same configuration but for the seed "
            f"(seeds {', '.join(str(run.seed) for run in members)}), reported as one group `{label}`, mean ± std "
            "over its seeds"
        )
    return pooled, tuple(notes)


def _distinct(runs: list[Run]) -> list[Run]:
    """``runs`` with a folder given twice kept once; a ConfigError for two folders with the same labels."""
    seen: dict[tuple, Run] = {}
    kept = []
    for run in runs:
        key = (run.variant, run.axes, run.seed)
        other = seen.get(key)
        if other is None:
            seen[key] = run
            kept.append(run)
        elif other.directory.resolve() != run.directory.resolve():
            axes = "".join(f", {k}={v}" for k, v in run.axes)
            raise ConfigError(
                f"two runs are both variant {run.variant!r}{axes}, seed {run.seed}: {other.directory} and "
                f"{run.directory}; seeds are paired by these labels, so report them separately or rename a folder"
            )
    return kept


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
