"""Hypothesis profiles: ``ci`` (bounded, the default) and ``nightly`` (``HQF_HYPOTHESIS_PROFILE=nightly``)."""

import importlib.metadata
import os

import pytest
from hypothesis import HealthCheck, settings

from hqf.registry.hookspecs import hookimpl
from hqf.registry.loader import GROUP, KINDS, Registry, use_registry

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=500,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("HQF_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def fake_plugins():
    """Install, for one test, a registry of hqf's own plugins (``builtins=False``: none) plus fakes.

    ``fake_plugins(*plugins, builtins=True, entry_points=())`` takes plugin classes (registered under the
    kind whose interface they subclass), plugin objects with hook implementations, and extra entry points;
    it returns the new :class:`~hqf.registry.loader.Registry`, which is the process registry until the
    test ends.
    """
    previous = []

    def install(*plugins, builtins=True, entry_points=()):
        own = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.value.startswith("hqf.")]
        registry = Registry([*(own if builtins else []), *entry_points])
        classes = [p for p in plugins if isinstance(p, type)]
        for plugin in [p for p in plugins if not isinstance(p, type)]:
            registry.add(plugin, f"fake-{id(plugin):x}", "hqf-tests")
        if classes:
            registry.add(_ClassPlugin(classes), "fake-classes", "hqf-tests")
        previous.append(use_registry(registry))
        return registry

    yield install
    if previous:
        use_registry(previous[0])


class _ClassPlugin:
    """A plugin object registering the given classes, each under the kind whose interface it subclasses."""

    def __init__(self, classes):
        for hook, base in KINDS.values():
            mine = [c for c in classes if issubclass(c, base)]
            if mine:
                setattr(self, hook, hookimpl(_registering(mine)))


def _registering(classes):
    def hook(register):
        for cls in classes:
            register(cls)

    return hook
