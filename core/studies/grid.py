"""Sweep files: a grid of runs (variants × axes × seeds) expanded into run configurations and folders.

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

The runs are the Cartesian product variants × axes × seeds; a variant's own ``axes`` are crossed with that variant only,
and its own ``seeds`` replace ``[sweep] seeds``. A dotted key (``backend_options.depolarizing``) sets a nested
configuration entry. A variant may set ``search = "bo"`` or ``search = "es"`` (see :mod:`hqf.studies.search`) instead of
training once. Each run gets its own directory ``OUT/<variant>[/<key>=<value>...]/seed<k>``, written by the run itself
(``hqf run``'s layout), and ``OUT/sweep.json`` lists every run with its labels, for ``hqf report``.

Every run directory stays inside ``OUT``: a variant name that is empty, ``.`` or ``..``, holds a path
separator, or differs from another only in case is an error.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig, read_toml
from hqf.studies.search import METHODS

#: Table IV's ablations: name -> run-configuration overrides (keys of hqf.learn.experiment.RunConfig)
ABLATIONS: dict[str, dict[str, Any]] = {
    "backbone-only": {"fusion": "classical-only", "regularizers": []},
    "+quantum-no-gating": {"fusion": "concat", "regularizers": []},
    "+gated-no-stability": {"fusion": "gated", "regularizers": ["curvature"]},
    "full": {"fusion": "gated", "regularizers": ["stability", "curvature"]},
}

#: keys the sweep reads itself and does not pass to a run configuration
SWEEP_KEYS = ("search", "trials")


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
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return "".join(c if c.isalnum() or c in "+-._" else "_" for c in text)


def read_grid(path: str | pathlib.Path) -> dict:
    """The parsed sweep file, read as a configuration file is (:func:`hqf.learn.config.read_toml`): one that
    cannot be read, does not parse, is over 16 MiB or nests deeper than 32 levels is a ConfigError."""
    return read_toml(path)


def _table(grid: Mapping[str, Any], section: str) -> dict:
    value = grid.get(section, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{section}] must be a table (got {value!r})")
    return dict(value)


def _check_variant_name(name: str) -> None:
    """A variant name is one folder name inside OUT: never empty, ``.``, ``..`` or a path."""
    bad = [c for c in name if c in "/\\:" or ord(c) < 32]
    if not name.strip() or name in (".", "..") or bad or os.path.isabs(name):
        raise ConfigError(
            f"variant name {name!r} is not a folder name inside --out (no empty names, '.', '..', "
            "'/', '\\', ':' or control characters)"
        )


def _check_directories(runs: list[RunSpec], out: pathlib.Path) -> None:
    """Every run directory is distinct (also on a case-insensitive file system) and inside ``out``."""
    seen: dict[str, pathlib.Path] = {}
    for spec in runs:
        relative = spec.directory.relative_to(out)
        if ".." in relative.parts or os.path.normpath(relative) != str(relative):
            raise ConfigError(f"run directory {spec.directory} would leave {out}")
        _check_length(spec, relative)
        key = str(relative).casefold()
        if key in seen:
            same = seen[key] == relative
            raise ConfigError(
                "two runs of the sweep would share a directory "
                + (
                    "(duplicate variant or axis values)"
                    if same
                    else f"on a case-insensitive file system: {seen[key]} and {relative}"
                )
            )
        seen[key] = relative


#: the longest folder name (bytes) and path (characters) a run directory may have: the limits of common file
#: systems (NAME_MAX, PATH_MAX), less room for the files a run writes inside its folder
NAME_MAX = 255
PATH_MAX = 4000


def _check_length(spec: RunSpec, relative: pathlib.Path) -> None:
    """A ConfigError, before anything is written, for a folder name or path a file system would refuse."""
    for part in relative.parts:
        if len(part.encode()) > NAME_MAX:
            raise ConfigError(
                f"variant {_short(spec.variant)!r}: folder name {_short(part)!r} is {len(part.encode())} bytes, "
                f"over the {NAME_MAX} a file system allows; shorten the variant name or axis value"
            )
    if len(str(spec.directory.absolute())) > PATH_MAX:
        raise ConfigError(
            f"variant {_short(spec.variant)!r}: run directory path is {len(str(spec.directory.absolute()))} "
            f"characters, over {PATH_MAX}; shorten the names or --out"
        )


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def expand(grid: Mapping[str, Any], out: str | pathlib.Path) -> list[RunSpec]:
    """Every run of the grid, in a fixed order (variant, axes, seed)."""
    unknown = set(grid) - {"sweep", "base", "variants", "axes", "report"}
    if unknown:
        raise ConfigError(f"unknown sweep section(s) {sorted(unknown)}; sections: sweep, base, variants, axes, report")
    settings = _table(grid, "sweep")
    _table(grid, "report")
    seeds = settings.get("seeds", [0])
    if not _seed_list(seeds):
        raise ConfigError(f"[sweep] seeds must be a non-empty list of integers >= 0 (got {seeds!r})")
    base = _table(grid, "base")
    variants = _table(grid, "variants") or {"base": {}}
    axes = _table(grid, "axes")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[axes] {key} must be a non-empty list (got {values!r})")
    out = pathlib.Path(out)
    runs = []
    for name, overrides in variants.items():
        _check_variant_name(name)
        overrides = _variant(name, overrides)
        own_axes = overrides.pop("axes", {})
        own_seeds = overrides.pop("seeds", seeds)
        if not _seed_list(own_seeds):
            raise ConfigError(
                f"variant {name!r}: 'seeds' must be a non-empty list of integers >= 0 (got {own_seeds!r})"
            )
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
    _check_directories(runs, out)
    return runs


def _seed_list(seeds: Any) -> bool:
    return isinstance(seeds, list) and bool(seeds) and all(type(s) is int and s >= 0 for s in seeds)


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


def validate(runs: Iterable[RunSpec]) -> None:
    """Check every run configuration before any work (``ConfigError`` naming the run)."""
    for spec in runs:
        config = {k: v for k, v in spec.config.items() if k not in SWEEP_KEYS}
        search = spec.config.get("search")
        if search is not None and search not in METHODS:
            raise ConfigError(f"{spec.directory}: 'search' must be one of {METHODS} (got {search!r})")
        RunConfig.from_dict(config, source=f"variant {spec.variant!r}")
