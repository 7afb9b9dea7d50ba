"""The plugin registry: one pluggy manager, plugins found through the ``hqf`` entry-point group.

Plugins load lazily (never at import time), once, when one is used; ``hqf list`` reads what they
register from their distributions' metadata instead (:mod:`hqf.registry.catalog`). Each plugin's hook is
called through pluggy on its own, so a plugin whose import or hook fails is recorded in
:attr:`Registry.broken` with its error and does not affect the others.

A name registered by two plugins (of one kind) is a conflict: looking it up raises
:class:`hqf.errors.PluginConflictError` naming both distributions, whichever loaded first, so a
built-in is never replaced silently; both plugins are listed as broken for that name. An entry point
whose name another distribution also uses is loaded under ``<distribution>:<name>``.

A class that leaves an abstract method of its interface unimplemented (a backend without ``expval``)
is registered but not available: :meth:`Entry.availability` names the missing method.

Environment:
  ``HQF_PLUGINS``      comma-separated allowlist of plugins to load, each an entry-point name, a
                       distribution name, or ``<distribution>:<entry point>`` (set but empty: none)
  ``HQF_TRACE_HOOKS``  ``1`` prints every hook call to stderr
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Iterable
from types import ModuleType

import attrs
import pluggy

from hqf.errors import PluginConflictError, PluginRegistrationError, UnknownPluginError
from hqf.quantum.interfaces import Ansatz, Availability, Backend, Encoder
from hqf.registry import hookspecs
from hqf.registry.catalog import GROUP, conflict_note, plugins
from hqf.registry.contracts import Backbone, Baseline, Fusion, Regularizer

#: kind -> (hook name, base class)
KINDS: dict[str, tuple[str, type]] = {
    "backend": ("register_backends", Backend),
    "encoder": ("register_encoders", Encoder),
    "ansatz": ("register_ansatze", Ansatz),
    "fusion": ("register_fusions", Fusion),
    "regularizer": ("register_regularizers", Regularizer),
    "baseline": ("register_baselines", Baseline),
    "backbone": ("register_backbones", Backbone),
}


@attrs.frozen
class Entry:
    """One registered class, with the plugin and distribution it came from."""

    kind: str
    name: str
    cls: type
    plugin: str
    package: str

    def availability(self) -> Availability:
        missing = sorted(getattr(self.cls, "__abstractmethods__", ()))
        if missing:
            base = KINDS[self.kind][1].__name__
            return Availability(
                False, f"{self.cls.__name__} does not implement {', '.join(missing)} (required of a {base})"
            )
        check = getattr(self.cls, "availability", None)
        if check is None:
            return Availability(True)
        try:
            return check()
        except Exception as exc:  # an availability probe must not take the registry down
            return Availability(False, f"availability check failed: {type(exc).__name__}: {exc}")


@attrs.frozen
class BrokenPlugin:
    """A plugin that failed to import or whose hook raised."""

    plugin: str
    package: str
    error: str


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class Registry:
    """Registered plugin classes by kind and name."""

    def __init__(self, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> None:
        self._entry_points = entry_points
        self._pm = pluggy.PluginManager(GROUP)
        self._pm.add_hookspecs(hookspecs)
        self._packages: dict[str, str] = {}
        self._entries: dict[str, dict[str, Entry]] = {}
        #: kind -> name -> the entries of every plugin that registers that name (more than one)
        self.conflicts: dict[str, dict[str, list[Entry]]] = {}
        self.broken: list[BrokenPlugin] = []
        self._loaded = False
        if os.environ.get("HQF_TRACE_HOOKS") == "1":
            self._pm.trace.root.setwriter(lambda msg: sys.stderr.write(str(msg)))
            self._pm.enable_tracing()

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> Registry:
        """Import every entry point of the ``hqf`` group (honouring ``HQF_PLUGINS``), once."""
        if self._loaded:
            return self
        self._loaded = True
        for plugin in plugins(self._entry_points):
            try:
                module = plugin.entry_point.load()
            except Exception as exc:
                self.broken.append(BrokenPlugin(plugin.name, plugin.package, _one_line(exc)))
                continue
            self.add(module, plugin.name, plugin.package)
        return self

    def add(self, plugin: ModuleType | object, name: str, package: str = "(local)") -> None:
        """Register a plugin object directly (tests, notebooks); entry points do this for packages."""
        try:
            self._pm.register(plugin, name=name)
        except Exception as exc:  # pluggy.PluginValidationError, duplicate names
            self.broken.append(BrokenPlugin(name, package, _one_line(exc)))
            return
        self._packages[name] = package
        self._entries.clear()  # re-collect on next look-up

    # -- look-up ---------------------------------------------------------------------------
    def entries(self, kind: str) -> list[Entry]:
        """Every registered class of ``kind``, sorted by name."""
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; kinds: {', '.join(KINDS)}")
        self.load()
        if kind not in self._entries:
            self._entries[kind] = self._collect(kind)
        return sorted(self._entries[kind].values(), key=lambda e: e.name)

    def names(self, kind: str) -> list[str]:
        return [e.name for e in self.entries(kind)]

    def get(self, kind: str, name: str) -> Entry:
        """The entry registered as ``name``; :class:`UnknownPluginError` lists the others (backends:
        which of them can run here) and the plugins that failed to load; :class:`PluginConflictError`
        when two plugins register ``name``."""
        entries = self.entries(kind)
        if name in self.conflicts.get(kind, {}):
            owners = [f"distribution {e.package!r} (plugin {e.plugin!r})" for e in self.conflicts[kind][name]]
            raise PluginConflictError(kind, name, owners)
        for entry in entries:
            if entry.name == name:
                return entry
        raise UnknownPluginError(kind, name, self.names(kind), *self._unknown_detail(kind, name, entries))

    def _unknown_detail(self, kind: str, name: str, entries: list[Entry]) -> tuple[str, list[str], str]:
        """The list label, the names as listed and the note on broken plugins of an unknown-name error."""
        label, shown = "available", [e.name for e in entries]
        if kind == "backend":
            label = "registered"
            shown = [e.name if e.availability().ok else f"{e.name} (cannot run here)" for e in entries]
        same = [b for b in self.broken if b.plugin == name]
        if same:
            note = f"; plugin {name!r} [{same[0].package}] failed to load: {same[0].error}"
        elif self.broken:
            note = "; plugins that failed to load: " + "; ".join(
                f"{b.plugin} [{b.package}]: {b.error}" for b in self.broken
            )
        else:
            note = ""
        return label, shown, note

    def _collect(self, kind: str) -> dict[str, Entry]:
        """The classes every plugin registers for ``kind``, each plugin's hook called through pluggy on
        its own: a plugin whose hook fails is recorded in :attr:`broken` and registers nothing."""
        hook_name, _ = KINDS[kind]
        found: dict[str, Entry] = {}
        claims: dict[str, list[Entry]] = {}
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():  # in registration order
            plugin = impl.plugin_name
            package = self._packages.get(plugin, "?")
            batch: list[Entry] = []
            try:
                self._hook_of(impl.plugin, hook_name)(register=_Registrar(kind, plugin, package, batch))
            except Exception as exc:
                self.broken.append(BrokenPlugin(plugin, package, f"{hook_name}: {_one_line(exc)}"))
                continue
            for entry in batch:
                claims.setdefault(entry.name, []).append(entry)
                found.setdefault(entry.name, entry)
        conflicts = {name: owners for name, owners in claims.items() if len(owners) > 1}
        self.conflicts[kind] = conflicts
        for name, owners in conflicts.items():
            for entry in owners:
                self.broken.append(BrokenPlugin(entry.plugin, entry.package, conflict_note(kind, name, owners, entry)))
        return found

    def _hook_of(self, plugin: object, hook_name: str) -> pluggy.HookCaller:
        """The hook ``hook_name`` of ``plugin`` alone (traced like any pluggy call)."""
        others = [p for p in self._pm.get_plugins() if p is not plugin]
        return self._pm.subset_hook_caller(hook_name, remove_plugins=others)


@attrs.define
class _Registrar:
    """The ``register`` callback one plugin's hook receives: checks each class, then adds it to ``batch``."""

    kind: str
    plugin: str
    package: str
    batch: list[Entry] = attrs.field(repr=False)

    def __call__(self, cls: type) -> None:
        base = KINDS[self.kind][1]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginRegistrationError(
                f"plugin {self.plugin!r}: {cls!r} must subclass {base.__module__}.{base.__name__}"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginRegistrationError(f"plugin {self.plugin!r}: {cls.__name__} has no 'name'")
        if any(e.name == name for e in self.batch):
            raise PluginRegistrationError(f"plugin {self.plugin!r}: {self.kind} name {name!r} is registered twice")
        self.batch.append(Entry(self.kind, name, cls, self.plugin, self.package))


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY.load()


def current() -> Registry | None:
    """The process-wide registry if one was made or installed (:func:`use_registry`); never makes one."""
    return _REGISTRY


def use_registry(replacement: Registry | None) -> Registry | None:
    """Make ``replacement`` the process-wide registry (None: a fresh one from the entry points on next use);
    returns the one it replaces. For tests and notebooks that register plugins of their own."""
    global _REGISTRY
    previous, _REGISTRY = _REGISTRY, replacement
    return previous
