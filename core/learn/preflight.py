"""Checks of a run configuration that need no data, done before any work (:func:`preflight`)."""

from __future__ import annotations

import attrs

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.process import tensorboard as tb
from hqf.learn.run_data import check_device
from hqf.learn.training.model import make_run_backend
from hqf.learn.training.terms import check_regularizer
from hqf.quantum.interfaces import GRADIENTS, Backend
from hqf.registry.loader import registry
from hqf.registry.make import make_ansatz


@attrs.frozen
class Preflight:
    """A configuration that passed :func:`preflight`, with the backend built for it (None when the model
    has no quantum branch), so that :func:`hqf.learn.experiment.run` neither checks nor builds again."""

    config: RunConfig
    backend: Backend | None


def preflight(config: RunConfig) -> Preflight:
    """Checks that need no data: the device, the plugin names and the keys the regularizers read, then
    the backend (built). Raises the one-line HqfError a user can act on."""
    check_device(config.device)
    if config.tensorboard:
        tb.require()
    if config.gradient not in ("auto", *GRADIENTS):
        raise ConfigError(f"'gradient' must be auto or one of {', '.join(GRADIENTS)} (got {config.gradient!r})")
    if config.baseline is not None:
        registry().get("baseline", config.baseline)
        return Preflight(config, None)
    for name in config.regularizers:
        check_regularizer(name)
    if not registry().get("fusion", config.fusion).cls.uses_quantum:
        return Preflight(config, None)
    make_ansatz(config.ansatz)  # the spec parses and its family is registered
    registry().get("encoder", config.encoder)
    backend = make_run_backend(config)
    if config.gradient not in ("auto", "parameter-shift") and config.gradient not in backend.capabilities.gradients:
        native = ", ".join(sorted(backend.capabilities.gradients)) or "none"
        raise ConfigError(
            f"backend {config.backend!r} has no native {config.gradient!r} gradient (native: {native}; "
            "parameter-shift works on every backend)"
        )
    return Preflight(config, backend)
