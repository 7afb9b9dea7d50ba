"""Backend configurations to run the conformance suite on: every registered backend, plus chosen variants.

A :class:`Target` is names and numbers only; its backend is looked up and built when it is checked. Tests
parametrize over :func:`listed` targets when collected, and ask :func:`targets` (which loads every plugin)
when they run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from hypothesis import settings

from hqf.quantum.interfaces import Availability, Backend
from hqf.quantum.noise import NoiseModel
from hqf.registry.loader import registry
from hqf.registry.make import make_backend
from hqf.testing.conformance import Limits, PropertyResult, check_property


def _options(value: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), v) for k, v in items))


@attrs.frozen
class Target:
    """A registered backend name with constructor options, and how hard to test it.

    ``examples`` (Hypothesis ``max_examples``; ``None`` keeps the active profile's) and ``limits``
    let a slow backend be tested with fewer or smaller examples. ``noise`` (``NoiseModel.parse`` text) is
    the model of the noise properties (``None``: :func:`~hqf.testing.noisy.default_noise`).
    """

    backend: str
    options: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=_options)
    examples: int | None = None
    limits: Limits = Limits()
    noise: str | None = None

    @property
    def id(self) -> str:
        shown = self.backend
        if self.options:
            shown += "[" + ",".join(f"{k}={v}" for k, v in self.options) + "]"
        return shown if self.noise is None else f"{shown}@{self.noise}"

    def availability(self) -> Availability:
        return registry().get("backend", self.backend).availability()

    def make(self) -> Backend:
        return make_backend(self.backend, **dict(self.options))

    def make_with(self, **extra: Any) -> Backend:
        """:meth:`make` with more options (the noise properties pass ``noise=``)."""
        return make_backend(self.backend, **dict(self.options), **extra)

    def check(self, prop: str, hypothesis_settings: settings | None = None) -> PropertyResult:
        """Run one property on this target; ``hypothesis_settings`` default to the active profile."""
        base = hypothesis_settings or settings()
        if self.examples is not None:
            base = settings(base, max_examples=self.examples)
        noise = None if self.noise is None else NoiseModel.parse(self.noise)
        return check_property(
            self.make_with, prop, hypothesis_settings=base, seed=None, limits=self.limits, noise=noise
        )


def listed(variants: Mapping[str, Sequence[Target]]) -> list[Target]:
    """The variants, in order, without looking at the registry: what a test may parametrize over."""
    return [target for group in variants.values() for target in group]


def targets(variants: Mapping[str, Sequence[Target]] | None = None) -> list[Target]:
    """One target per registered backend (default options), or the listed variants for a name.

    Loads every plugin, so a test calls it when it runs, not when it is collected. Unavailable backends are
    included: callers decide to skip them, showing ``availability().reason``.
    """
    variants = variants or {}
    out: list[Target] = []
    for name in registry().names("backend"):
        out += list(variants.get(name, [Target(name)]))
    return out
