"""What the installed plugins register, read from their distributions' metadata without importing them.

A plugin is an entry point of the ``hqf`` group. Its distribution may also declare each class the plugin
registers, as an entry point of the group ``hqf.<kind>`` (``hqf.backend``, ``hqf.encoder``, …) named as the
class is registered, with the class as its value and, as its extras, the extras of its distribution it runs
with (any one of them, every requirement of it installed)::

    [project.entry-points.hqf]
    mybackend = "my_package.backend"

    [project.entry-points."hqf.backend"]
    numpy = "my_package.backend:NumpyBackend"
    gpu = "my_package.backend:GpuBackend [cuda12, cuda13]"

A declared class belongs to the plugin whose module contains the class's module. In a process with no
registry yet, ``hqf list`` reads the declarations (:func:`read_catalog`) and imports only the plugins that
declare nothing; the registry (:mod:`hqf.registry.loader`) imports every plugin when one is used, and reports
then a plugin that fails to import or whose hook fails. A plugin that declares anything is listed from its
declarations alone.

Environment: ``HQF_PLUGINS``, the allowlist of plugins (see :mod:`hqf.registry.loader`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from collections.abc import Iterable

import attrs

GROUP = "hqf"

#: the kinds of plugin class, in the order ``hqf list`` shows them; each is declared in the group ``hqf.<kind>``
KINDS: tuple[str, ...] = ("backend", "encoder", "ansatz", "fusion", "regularizer", "baseline", "backbone")


@attrs.frozen
class Plugin:
    """One entry point of the ``hqf`` group to load, under the name the registry gives it."""

    name: str
    package: str
    entry_point: importlib.metadata.EntryPoint


@attrs.frozen
class Declared:
    """One class a plugin declares in its distribution's metadata, not imported."""

    kind: str
    name: str
    plugin: str
    package: str
    #: ``module:Class``
    value: str
    extras: tuple[str, ...] = ()

    def missing(self) -> str | None:
        """Why it cannot run here by its declared extras: None when it declares none or every requirement of one
        of them is installed, else the first missing requirement of the first. A class's own check (a GPU, a
        driver) runs when it is used."""
        reasons = []
        for extra in self.extras:
            requirements = _extra_requirements(self.package, extra)
            if not requirements:
                reasons.append(f"{extra!r} is not an extra of {self.package}")
                continue
            absent = [r for r in requirements if not _installed(r)]
            if not absent:
                return None
            reasons.append(f"Python package '{absent[0]}' is not installed (pip install '{self.package}[{extra}]')")
        return reasons[0] if reasons else None


@attrs.frozen
class Catalog:
    """The declared classes, the plugins that declare none (to be imported to be listed), and the problems
    found without importing anything (as ``(plugin, package, error)``)."""

    declared: tuple[Declared, ...]
    undeclared: tuple[Plugin, ...]
    problems: tuple[tuple[str, str, str], ...]


def normalized(name: str) -> str:
    """A distribution name as packaging compares them (PEP 503: case and ``-_.`` runs ignored)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def allowed(allow: str | None, name: str, package: str) -> bool:
    """Whether ``HQF_PLUGINS`` (None: unset) lets the entry point ``name`` of ``package`` load."""
    if allow is None:
        return True
    items = {item.strip() for item in allow.split(",") if item.strip()}
    return bool({name, f"{package}:{name}"} & items) or normalized(package) in {normalized(i) for i in items}


def _package(ep: importlib.metadata.EntryPoint) -> str:
    return ep.dist.name if getattr(ep, "dist", None) is not None else "?"


def plugins(points: Iterable[importlib.metadata.EntryPoint] | None = None, *, every: bool = False) -> list[Plugin]:
    """The plugins to load (default: the ``hqf`` entry points), honouring ``HQF_PLUGINS`` unless ``every``: one
    distribution found twice counts once, and an entry-point name another distribution took first is named
    ``<distribution>:<name>``."""
    if points is None:
        points = importlib.metadata.entry_points(group=GROUP)
    allow = None if every else os.environ.get("HQF_PLUGINS")
    seen: set[tuple[str, str]] = set()
    names: dict[str, str] = {}  # entry-point name -> the distribution that took it
    found = []
    for ep in points:
        package = _package(ep)
        if (ep.name, package) in seen or not allowed(allow, ep.name, package):
            continue
        seen.add((ep.name, package))
        name = ep.name if names.setdefault(ep.name, package) == package else f"{package}:{ep.name}"
        found.append(Plugin(name, package, ep))
    return found


def read_catalog() -> Catalog:
    """The installed plugins' declared classes, read without importing a plugin."""
    found, every = plugins(), plugins(every=True)
    declared: list[Declared] = []
    problems: list[tuple[str, str, str]] = []
    claimed: set[str] = set()  # plugin names with at least one declaration
    for kind in KINDS:
        for ep in importlib.metadata.entry_points(group=f"{GROUP}.{kind}"):
            package, module = _package(ep), ep.value.split(":")[0].strip()  # ep.module would split "a-b" extras
            owner = _owner(found, package, module)
            if owner is None:  # left out by HQF_PLUGINS, or a declaration no plugin contains
                if _owner(every, package, module) is None:
                    note = f"declares {kind} {ep.name!r} in {module}, which no plugin contains"
                    problems.append((f"{package}:{ep.name}", package, note))
                continue
            claimed.add(owner.name)
            declared.append(Declared(kind, ep.name, owner.name, package, ep.value, _extras(ep.value)))
    for plugin in found:
        if plugin.name in claimed and (error := _not_importable(plugin.entry_point.module)):
            problems.append((plugin.name, plugin.package, error))
            declared = [d for d in declared if d.plugin != plugin.name]
    undeclared = tuple(p for p in found if p.name not in claimed)
    return Catalog(tuple(declared), undeclared, tuple(problems))


def conflict_note(kind: str, name: str, owners: Iterable, entry) -> str:
    """The broken-plugin line of ``entry`` (with ``.plugin`` and ``.package``) when ``owners`` all register ``name``."""
    others = ", ".join(f"plugin {o.plugin!r} [{o.package}]" for o in owners if o is not entry)
    return f"{kind} name {name!r} is taken: also registered by {others}; neither is used"


def _owner(found: list[Plugin], package: str, module: str) -> Plugin | None:
    """The plugin of ``package`` whose module is ``module`` or contains it (the longest such module)."""
    owners = [
        p
        for p in found
        if p.package == package and (module == p.entry_point.module or module.startswith(p.entry_point.module + "."))
    ]
    return max(owners, key=lambda p: len(p.entry_point.module), default=None)


def _not_importable(module: str) -> str | None:
    """Why ``module`` cannot be found (its parent packages are imported, the module itself is not); None if it can."""
    try:
        if importlib.util.find_spec(module) is None:
            return f"ModuleNotFoundError: No module named {module!r}"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")
    return None


def _extras(value: str) -> tuple[str, ...]:
    """The extras of an entry point's value (``module:Class [a, b-c]``), hyphens kept."""
    found = re.search(r"\[(.*)\]\s*$", value)
    return tuple(e.strip() for e in found.group(1).split(",") if e.strip()) if found else ()


def _extra_requirements(package: str, extra: str) -> list[str]:
    """The distribution names ``package`` requires for its extra ``extra``."""
    try:
        requires = importlib.metadata.distribution(package).requires or []
    except importlib.metadata.PackageNotFoundError:
        return []
    pattern = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    return [re.match(r"[A-Za-z0-9._-]+", req).group(0) for req in requires if pattern.search(req)]


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
