"""The hooks a plugin implements. Each receives a ``register`` callback and calls it once per class.

A plugin is a module named by an entry point in the ``hqf`` group::

    [project.entry-points.hqf]
    mybackend = "my_package.backend"

and decorates its hook functions with :data:`hqf.hookimpl`.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("hqf")
hookimpl = pluggy.HookimplMarker("hqf")

Register = Callable[[type], None]


@hookspec
def register_backends(register: Register) -> None:
    """Register :class:`hqf.quantum.interfaces.Backend` subclasses: ``register(MyBackend)``."""


@hookspec
def register_encoders(register: Register) -> None:
    """Register :class:`hqf.quantum.interfaces.Encoder` subclasses."""


@hookspec
def register_ansatze(register: Register) -> None:
    """Register :class:`hqf.quantum.interfaces.Ansatz` subclasses (one per family name, e.g. ``hea``)."""


@hookspec
def register_fusions(register: Register) -> None:
    """Register :class:`hqf.registry.contracts.Fusion` subclasses (with ``diagnostics()`` for numbers a run
    reports, named in ``metric_keys``)."""


@hookspec
def register_regularizers(register: Register) -> None:
    """Register :class:`hqf.registry.contracts.Regularizer` subclasses; each declares its settings (its
    weight, schedule, sub-batch and constructor options) as an ``options`` class and its curve ``column``."""


@hookspec
def register_baselines(register: Register) -> None:
    """Register :class:`hqf.registry.contracts.Baseline` subclasses: whole classical models to compare
    against (``build`` receives a :class:`hqf.registry.contracts.BaselineInputs`: the training split, the
    run's backend, its options)."""


@hookspec
def register_backbones(register: Register) -> None:
    """Register :class:`hqf.registry.contracts.Backbone` subclasses: classical feature extractors ``f_c``
    (``options`` declares the settings their constructor reads)."""
