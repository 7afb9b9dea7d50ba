"""What the settings that may be ``auto`` resolved to in a run (the ``[resolved]`` table of its
config.toml), and a note where that differs from a quantum layer with backprop or where a baseline
keeps the hybrid's regularizers."""

from __future__ import annotations

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.training.model import BaselineModel, HybridModel
from hqf.learn.training.terms import Term, scope_key

#: what ``auto`` resolves to where the quantum layer has backprop (the default backend): the gradient
#: method, and any regularizer's scope; a run that resolves otherwise gives other numbers per seed
BACKPROP_RESOLUTION = {"gradient": "backprop", "scope": "full"}


def resolved_values(model: HybridModel | BaselineModel, terms: list[Term]) -> dict:
    """What this run used for the settings that may be ``auto``: the quantum layer's gradient method
    (None without one) and each regularizer's scope (``full``, or ``classical``: the quantum features
    held constant in that term), under the key :func:`hqf.learn.training.terms.scope_key` names."""
    values = {"gradient": model.quantum_gradient}
    for term in terms:
        key = scope_key(term.name)
        if key is not None:
            values[key] = "classical" if term.quantum_constant else "full"
    return values


def resolution_notes(config: RunConfig, resolved: dict) -> list[str]:
    """One line per ``auto`` setting that resolved otherwise than where the quantum layer has backprop, and
    one when a baseline was trained with regularizers in its loss (the defaults are the hybrid's)."""
    notes = []
    if config.baseline is not None and config.regularizers:
        notes.append(
            f"note: baseline {config.baseline!r} trained with the regularizers {', '.join(config.regularizers)} in "
            "its loss, as the hybrid; --regularizer none (regularizers = [] in a TOML file) trains it without them"
        )
    for key, value in resolved.items():
        usual = BACKPROP_RESOLUTION["gradient" if key == "gradient" else "scope"]
        if _requested(config, key) == "auto" and value != usual:
            notes.append(
                f'note: {key} = "auto" resolved to {value!r} here; where the quantum layer has backprop '
                f"(the default backend) it is {usual!r}, so the same seed gives other numbers there"
            )
    return notes


def _requested(config: RunConfig, key: str):
    """The requested value of a ``[resolved]`` key: a field, a flat key, or ``regularizer_options.<name>.scope``."""
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "regularizer_options":
        return config.regularizer_options.get(parts[1], {}).get(parts[2])
    try:
        return config.value(key)
    except (ConfigError, KeyError):  # a record of a key or plugin this installation does not have
        return None
