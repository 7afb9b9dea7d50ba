"""Plugin options: the small attrs class a plugin declares for its own table of the run configuration.

A plugin kind's contract has ``options: ClassVar[type | None]``; a plugin that sets it reads its settings
from its table (``[regularizer_options.curvature]`` ``every = 10``), validated by that class. An option
declared with ``flat_key`` is also accepted as that top-level key (``curvature_every``), the spelling of
configurations written before the tables::

    @attrs.frozen
    class CurvatureOptions:
        every: int = option(10, integer(1), flat_key="curvature_every")

Validators raise :class:`hqf.errors.ConfigError` with attrs' one-line form: ``'every' must be an integer
>= 1 (got 0)``.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from hqf.errors import ConfigError

#: metadata key of an option's flat top-level alias
FLAT_KEY = "hqf_flat_key"
#: metadata key of an option whose ``None`` is written ``"all"`` (TOML has no null)
ALL_MEANS_NONE = "hqf_all_means_none"


def option(default: Any, validator=None, *, flat_key: str | None = None, all_means_none: bool = False) -> Any:
    """An attrs field of a plugin's options class; ``all_means_none``: the text ``"all"`` reads as None."""
    metadata = {FLAT_KEY: flat_key, ALL_MEANS_NONE: all_means_none}
    converter = _all_to_none if all_means_none else None
    return attrs.field(default=default, validator=validator, converter=converter, metadata=metadata)


def _all_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.lower() == "all" else value


def integer(bound: int, optional: bool = False):
    """An integer ``>= bound`` (booleans refused); ``optional``: None too."""

    def check(_, attribute, value):
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < bound:
            raise ConfigError(f"'{attribute.name}' must be an integer >= {bound} (got {value!r})")

    return check


def number(bound: float, strict: bool = False):
    """A finite number ``>= bound`` (``> bound`` when ``strict``)."""

    def check(_, attribute, value):
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        if bad or value < bound or (strict and value == bound):
            raise ConfigError(f"'{attribute.name}' must be a number {'>' if strict else '>='} {bound} (got {value!r})")

    return check


def one_of(*choices: str):
    def check(_, attribute, value):
        if value not in choices:
            raise ConfigError(f"'{attribute.name}' must be one of {', '.join(choices)} (got {value!r})")

    return check


def flag(_, attribute, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"'{attribute.name}' must be true or false (got {value!r})")


def flat_keys(options: type | None) -> dict[str, str]:
    """``flat key -> option name`` of an options class (empty for None)."""
    if options is None:
        return {}
    return {f.metadata[FLAT_KEY]: f.name for f in attrs.fields(options) if f.metadata.get(FLAT_KEY)}


def read_options(options: type, table: dict[str, Any], owner: str) -> Any:
    """An instance of ``options`` from a table; an unknown or invalid option is a ConfigError naming ``owner``."""
    known = [f.name for f in attrs.fields(options)]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{owner}: unknown option {unknown[0]!r}; known: {', '.join(known)}")
    try:
        return options(**table)
    except ConfigError as exc:
        raise ConfigError(f"{owner}: {exc}") from None


def plain(instance: Any) -> dict[str, Any]:
    """An options instance as a TOML table: ``None`` written ``"all"`` where declared, left out elsewhere."""
    out = {}
    for f in attrs.fields(type(instance)):
        value = getattr(instance, f.name)
        if value is None:
            if f.metadata.get(ALL_MEANS_NONE):
                out[f.name] = "all"
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
