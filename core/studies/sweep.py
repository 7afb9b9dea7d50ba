"""Grids of runs: expand a sweep file into run configurations, run them in parallel, resumably.

A sweep file (TOML) has four parts::

    [sweep]
    seeds = [0, 1, 2, 3, 4]         # every configuration runs once per seed
    jobs = 2                         # default for --jobs

    [base]                           # keys of a run configuration (as `hqf run --config` reads)
    dataset = "A"
    samples = 2000

    [variants]                       # named variants: each a table of overrides of [base] ...
    adam = { optimizer = "adam" }
    sgd = { optimizer = "sgd", momentum = 0.9 }
    full = "full"                    # ... or the name of a built-in variant (ABLATIONS)
    noisy = { ablation = "full", backend = "torch-dm", axes = { "backend_options.depolarizing" = [0.0, 0.02] } }

    [axes]                           # optional: config key -> list of values, crossed with everything
    label_noise = [0.0, 0.02]

    [report]                         # optional: read by `hqf report` (see hqf.studies.report)
    baseline = "adam"

The runs are the Cartesian product variants × axes × seeds; a variant's own ``axes`` are crossed with
that variant only, and its own ``seeds`` replace ``[sweep] seeds``. A dotted key (``backend_options.depolarizing``) sets a nested configuration entry.
A variant may set ``search = "bo"`` or ``search = "es"`` (see :mod:`hqf.studies.search`) instead of training once. Each run gets its own directory
``OUT/<variant>[/<key>=<value>...]/seed<k>``, written by the run itself (``hqf run``'s layout), and
``OUT/sweep.json`` lists every run with its labels, for ``hqf report``.

Resuming: a run whose directory holds a ``metrics.json`` that parses is finished and skipped (after
checking that its ``config.toml`` has the values the grid sets: a changed grid is an error, never a
silent reuse); any other existing run directory is half-written and is removed and run again.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import itertools
import json
import multiprocessing
import os
import pathlib
import shutil
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from hqf.errors import ConfigError

#: Table IV's ablations: name -> run-configuration overrides (keys of hqf.learn.experiment.RunConfig)
ABLATIONS: dict[str, dict[str, Any]] = {
    "backbone-only": {"fusion": "classical-only", "regularizers": []},
    "+quantum-no-gating": {"fusion": "concat", "regularizers": []},
    "+gated-no-stability": {"fusion": "gated", "regularizers": ["curvature"]},
    "full": {"fusion": "gated", "regularizers": ["stability", "curvature"]},
}

#: keys the sweep reads itself and does not pass to a run configuration
SWEEP_KEYS = ("search", "trials")

MANIFEST = "sweep.json"
METRICS = "metrics.json"

Runner = Callable[[dict, pathlib.Path], Any]


@attrs.frozen
class RunSpec:
    """One run of a sweep: its labels, the configuration it trains, and its directory."""

    variant: str
    axes: tuple[tuple[str, Any], ...]
    seed: int
    config: dict = attrs.field(eq=False)
    directory: pathlib.Path

    def labels(self) -> dict:
        return {"variant": self.variant, "seed": self.seed, **dict(self.axes)}


def _slug(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return "".join(c if c.isalnum() or c in "+-._" else "_" for c in text)


def read_grid(path: str | pathlib.Path) -> dict:
    """The parsed sweep file (``ConfigError`` on a file that does not parse)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    path = pathlib.Path(path)
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def expand(grid: Mapping[str, Any], out: str | pathlib.Path) -> list[RunSpec]:
    """Every run of the grid, in a fixed order (variant, axes, seed)."""
    unknown = set(grid) - {"sweep", "base", "variants", "axes", "report"}
    if unknown:
        raise ConfigError(f"unknown sweep section(s) {sorted(unknown)}; sections: sweep, base, variants, axes, report")
    settings = grid.get("sweep", {})
    seeds = settings.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"[sweep] seeds must be a non-empty list of integers (got {seeds!r})")
    base = dict(grid.get("base", {}))
    variants = grid.get("variants") or {"base": {}}
    axes = grid.get("axes", {})
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[axes] {key} must be a non-empty list (got {values!r})")
    out = pathlib.Path(out)
    runs = []
    for name, overrides in variants.items():
        overrides = _variant(name, overrides)
        own_axes = overrides.pop("axes", {})
        own_seeds = overrides.pop("seeds", seeds)
        if not isinstance(own_seeds, list) or not own_seeds or not all(isinstance(x, int) for x in own_seeds):
            raise ConfigError(f"variant {name!r}: 'seeds' must be a non-empty list of integers (got {own_seeds!r})")
        if not isinstance(own_axes, Mapping) or any(not isinstance(v, list) or not v for v in own_axes.values()):
            raise ConfigError(f"variant {name!r}: 'axes' must map keys to non-empty lists (got {own_axes!r})")
        variant_axes = {**axes, **own_axes}
        keys = list(variant_axes)
        for combo in itertools.product(*(variant_axes[k] for k in keys)):
            point = tuple(zip(keys, combo))
            for seed in own_seeds:
                config = _nested({**base, **overrides})
                for key, value in point:
                    _set(config, key, value)
                config["seed"] = seed
                folder = out / _slug(name)
                for key, value in point:
                    folder = folder / f"{_slug(key)}={_slug(value)}"
                runs.append(RunSpec(name, point, seed, config, folder / f"seed{seed}"))
    directories = [r.directory for r in runs]
    if len(set(directories)) != len(directories):
        raise ConfigError("two runs of the sweep would share a directory (duplicate variant or axis values)")
    return runs


def _variant(name: str, overrides: Any) -> dict:
    """A variant's overrides: a built-in name, or a table (``ablation = NAME`` merges a built-in under it)."""
    if isinstance(overrides, str):
        overrides = {"ablation": overrides}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"variant {name!r} must be a table of overrides or a built-in name (got {overrides!r})")
    overrides = dict(overrides)
    builtin = overrides.pop("ablation", None)
    if builtin is not None:
        if builtin not in ABLATIONS:
            raise ConfigError(f"variant {name!r}: unknown built-in {builtin!r}; built-ins: {', '.join(ABLATIONS)}")
        overrides = {**ABLATIONS[builtin], **overrides}
    return overrides


def _nested(config: Mapping) -> dict:
    """A deep copy of a configuration whose dotted keys (``backend_options.depolarizing``) are nested."""
    out: dict = {}
    for key, value in config.items():
        _set(out, key, dict(value) if isinstance(value, Mapping) else value)
    return out


def _set(config: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        config = config.setdefault(part, {})
        if not isinstance(config, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is not a table")
    config[leaf] = dict(value) if isinstance(value, Mapping) else value


def is_finished(directory: pathlib.Path) -> bool:
    """Whether ``directory`` holds a complete run: a ``metrics.json`` that parses as a JSON object."""
    try:
        return isinstance(json.loads((directory / METRICS).read_text()), dict)
    except (OSError, ValueError):
        return False


def write_manifest(runs: Iterable[RunSpec], out: pathlib.Path, report: Mapping | None = None) -> None:
    """``OUT/sweep.json``: every run's directory and labels, and the sweep file's ``[report]`` section."""
    rows = [{"dir": str(r.directory.relative_to(out)), **r.labels()} for r in runs]
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"runs": rows, "report": dict(report or {})}, indent=1))
    os.replace(tmp, out / MANIFEST)


def stale_keys(spec: RunSpec) -> list[str]:
    """Keys the sweep sets whose value differs from the finished run's ``config.toml`` (none if absent)."""
    path = spec.directory / "config.toml"
    if not path.exists():
        return []
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        stored = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return []
    searched = ("lr", "weight_decay") if "search" in spec.config else ()
    wanted = {k: v for k, v in spec.config.items() if k not in SWEEP_KEYS and k not in searched}
    try:  # compare normalized values (aliases, tuples) when the run-configuration class is available
        from hqf.learn.config import RunConfig

        wanted = {k: v for k, v in RunConfig.from_dict(wanted).to_dict().items() if k in wanted}
        stored = RunConfig.from_dict(stored).to_dict()
    except Exception:  # noqa: BLE001  an unreadable stored config: compare the raw values
        pass
    return sorted(k for k, v in wanted.items() if stored.get(k) != v)


def validate(runs: Iterable[RunSpec]) -> None:
    """Check every run configuration before any work (``ConfigError`` naming the run)."""
    from hqf.learn.config import RunConfig
    from hqf.studies.search import METHODS

    for spec in runs:
        config = {k: v for k, v in spec.config.items() if k not in SWEEP_KEYS}
        search = spec.config.get("search")
        if search is not None and search not in METHODS:
            raise ConfigError(f"{spec.directory}: 'search' must be one of {METHODS} (got {search!r})")
        RunConfig.from_dict(config, source=f"variant {spec.variant!r}")


def default_runner(config: dict, directory: pathlib.Path) -> Any:
    """Train one configuration with :func:`hqf.learn.experiment.run`, or search it (``search`` key)."""
    config = dict(config)
    search = config.pop("search", None)
    trials = config.pop("trials", None)
    if search is not None:
        from hqf.studies.search import run_search

        return run_search(config, directory, method=search, trials=trials)
    from hqf.learn.experiment import RunConfig, run

    return run(RunConfig.from_dict(config), directory)


def _resolve(runner: Runner | str) -> Runner:
    if callable(runner):
        return runner
    module, attr = runner.split(":")
    return getattr(importlib.import_module(module), attr)


def _execute(runner: Runner | str, config: dict, directory: str, threads: int | None) -> tuple[str, str | None]:
    """Run one configuration (in a worker process); returns (directory, error text or None)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    path = pathlib.Path(directory)
    try:
        _resolve(runner)(config, path)
    except Exception:
        path.mkdir(parents=True, exist_ok=True)
        (path / "error.txt").write_text(traceback.format_exc())
        return directory, traceback.format_exc(limit=3).strip().splitlines()[-1]
    return directory, None


@attrs.frozen
class SweepResult:
    ran: tuple[pathlib.Path, ...]
    skipped: tuple[pathlib.Path, ...]
    failed: tuple[tuple[pathlib.Path, str], ...]


def run_sweep(
    runs: list[RunSpec],
    out: str | pathlib.Path,
    jobs: int = 1,
    runner: Runner | str = default_runner,
    progress: Callable[[RunSpec, str | None], None] | None = None,
    report: Mapping | None = None,
) -> SweepResult:
    """Run every unfinished run of ``runs``, ``jobs`` at a time in separate processes.

    Finished runs are skipped; half-written run directories are removed first. ``progress`` is called
    once per run that ran, with its error text (None when it succeeded). ``report`` (the sweep file's
    ``[report]`` section) is stored in the manifest for ``hqf report``.
    """
    if jobs < 1:
        raise ConfigError(f"'jobs' must be >= 1 (got {jobs})")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(runs, out, report)
    todo, skipped = [], []
    for spec in runs:
        if is_finished(spec.directory):
            stale = stale_keys(spec)
            if stale:
                raise ConfigError(
                    f"{spec.directory} holds a finished run with other values of {', '.join(stale)}; "
                    "sweep into a new --out (or delete that run) after changing the grid"
                )
            skipped.append(spec.directory)
            continue
        if spec.directory.exists():
            shutil.rmtree(spec.directory)
        spec.directory.parent.mkdir(parents=True, exist_ok=True)
        todo.append(spec)
    failed = []
    by_dir = {str(s.directory): s for s in todo}

    def finish(directory: str, error: str | None) -> None:
        if error is not None:
            failed.append((pathlib.Path(directory), error))
        if progress is not None:
            progress(by_dir[directory], error)

    if jobs == 1 or len(todo) <= 1:
        for spec in todo:
            finish(*_execute(runner, spec.config, str(spec.directory), None))
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(_execute, runner, s.config, str(s.directory), threads) for s in todo]
            for future in concurrent.futures.as_completed(futures):
                finish(*future.result())
    return SweepResult(tuple(s.directory for s in todo), tuple(skipped), tuple(failed))
