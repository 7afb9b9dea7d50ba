"""The plugins' option tables of a run configuration: ``regularizer_options``, ``backbone_options`` and
``baseline_options``, each by plugin name, and the flat keys the plugins declare as aliases of their
options (:mod:`hqf.registry.options`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hqf.errors import ConfigError
from hqf.registry.options import flat_keys, plain, read_options

#: plugin kind -> the field holding its plugins' option tables, by plugin name
OPTION_TABLES = {"regularizer": "regularizer_options", "backbone": "backbone_options", "baseline": "baseline_options"}
#: plugin kind -> the field naming the one plugin of that kind a run uses (a flat table is its options)
CHOSEN = {"backbone": "backbone", "baseline": "baseline"}
#: the largest integer a plugin's option may hold (its widths, counts, periods), and the widest layer of a run
MAX_WIDTH = 1_000_000


def registered(kind: str) -> list:
    """The registry's entries of ``kind``."""
    # at use: the registry imports the plugin contracts and torch, which `hqf --help` (reading RunConfig) does not need
    from hqf.registry.loader import registry  # noqa: PLC0415 — import cost (see above)

    return registry().entries(kind)


def table(field: str, value: Any) -> dict:
    """``value`` checked to be a table of key = value."""
    if not isinstance(value, dict):
        raise ConfigError(f"'{field}' must be a table of key = value (got {value!r})")
    return dict(value)


def tables(field: str):
    """The converter of an option-table field: a table of tables, by plugin name."""

    def convert(value: Any) -> dict:
        value = table(field, value)
        for name, options in value.items():
            if not isinstance(options, dict):
                raise ConfigError(f"'{field}.{name}' must be a table (got {options!r})")
        return {name: dict(options) for name, options in value.items()}

    return convert


def plugin_flat_keys(reserved: Iterable[str] = ()) -> dict[str, tuple[str, str, str]]:
    """``flat key -> (kind, plugin name, option)`` declared by the registered plugins' options classes; a
    key declared twice, or one of ``reserved`` (the fields), is a ConfigError naming both."""
    out: dict[str, tuple[str, str, str]] = {}
    reserved = set(reserved)
    for kind in OPTION_TABLES:
        for entry in registered(kind):
            for key, option in flat_keys(getattr(entry.cls, "options", None)).items():
                if key in reserved or key in out:
                    taken = _holder(key, reserved, out)
                    raise ConfigError(f"{kind} {entry.name!r} declares the flat key {key!r}, already {taken}")
                out[key] = (kind, entry.name, option)
    return out


def _holder(key: str, reserved: set[str], found: dict[str, tuple[str, str, str]]) -> str:
    if key in reserved:
        return "a field of RunConfig"
    kind, name, _ = found[key]
    return f"a flat key of {kind} {name!r}"


def by_name(kind: str, value: Any, chosen: str | None) -> dict:
    """A kind's option table by plugin name; a flat table (not every value a table) is the options of
    the ``chosen`` plugin."""
    field = OPTION_TABLES[kind]
    value = table(field, value)
    if kind not in CHOSEN or all(isinstance(v, dict) for v in value.values()):
        return tables(field)(value)
    if chosen is None:
        raise ConfigError(f"'{field}' holds options {sorted(value)} but the run names no {kind}")
    return {chosen: value}


def fold_flat_keys(values: dict[str, Any], chosen: dict[str, Any], reserved: Iterable[str]) -> dict[str, Any]:
    """Constructor values with the flat keys folded into the option tables (a flat key overrides its
    option in the table) and every registered plugin's table validated and completed with its defaults.

    ``chosen``: the run's plugin of each kind in :data:`CHOSEN` by field (a flat table is its options).
    """
    values = dict(values)
    flat = plugin_flat_keys(reserved)
    given = {key: values.pop(key) for key in list(values) if key in flat}
    for kind, field in OPTION_TABLES.items():
        found = by_name(kind, values.get(field, {}), chosen[CHOSEN[kind]] if kind in CHOSEN else None)
        for key, value in given.items():
            if flat[key][0] == kind:
                _, name, option = flat[key]
                found.setdefault(name, {})[option] = value
        for entry in registered(kind):
            options = getattr(entry.cls, "options", None)
            if options is not None:
                found[entry.name] = bounded(
                    plain(read_options(options, found.get(entry.name, {}), f"{field}.{entry.name}")),
                    f"{field}.{entry.name}",
                )
        values[field] = dict(sorted(found.items()))
    return values


def bounded(options: dict[str, Any], owner: str) -> dict[str, Any]:
    """``options`` checked to hold no integer (alone or in a list) above :data:`MAX_WIDTH`, a ConfigError
    naming ``owner`` and the option, before anything is sized by it."""
    for name, value in options.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        big = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > MAX_WIDTH]
        if big:
            raise ConfigError(
                f"{owner}: {name!r} must be at most {MAX_WIDTH:,} (hqf's limit on a plugin's sizes and counts; "
                f"got {value!r})"
            )
    return options
