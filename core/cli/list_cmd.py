"""``hqf list``: every registered plugin, where it comes from, and whether it can run here.

It reads what the plugins declare in their distributions' metadata (:mod:`hqf.registry.catalog`) and imports
only the plugins that declare nothing, so listing hqf's own plugins imports neither torch nor a plugin.
"""

from __future__ import annotations

import sys

import attrs
import click


@attrs.frozen
class _Row:
    kind: str
    name: str
    plugin: str
    package: str
    #: why it cannot run here; None when it can
    missing: str | None


@click.command("list")
def list_command() -> None:
    """List encoders, ansätze, fusions, regularizers, baselines, backbones and backends, with availability.

    A name that two plugins register is listed once per plugin: none of them is used until one is
    removed or chosen with HQF_PLUGINS. Availability comes from a plugin's declared extras where it
    declares its classes (docs/architecture.md, hqf.registry.catalog); a backend's own check (a GPU, a
    driver) runs when it is used.
    """
    from hqf.registry.catalog import KINDS, conflict_note, read_catalog

    loader = sys.modules.get("hqf.registry.loader")
    registry = loader.current() if loader is not None else None
    if registry is not None:  # plugins already loaded or registered in this process: list what it holds
        rows, broken = _rows(registry.load())
    else:
        catalog = read_catalog()
        rows = [_Row(d.kind, d.name, d.plugin, d.package, d.missing()) for d in catalog.declared]
        broken = list(catalog.problems)
        if catalog.undeclared:  # only these are imported (with a registry, which imports torch)
            from hqf.registry.loader import Registry

            loaded, loaded_broken = _rows(Registry([p.entry_point for p in catalog.undeclared]).load())
            rows += loaded
            broken += loaded_broken
    for kind in KINDS:
        entries = sorted((r for r in rows if r.kind == kind), key=lambda r: r.name)  # stable: registration order kept
        owners = {r.name: [o for o in entries if o.name == r.name] for r in entries}
        click.echo(f"{kind}s:" if kind != "ansatz" else "ansatze:")
        if not entries:
            click.echo("  (none)")
        width = max((len(_shown_name(e)) for e in entries), default=0)
        for entry in entries:
            clash = owners[entry.name] if len(owners[entry.name]) > 1 else None
            click.echo(f"  {_shown_name(entry):<{width}}  [{entry.package}]  {_state(entry, clash)}")
            if clash:
                broken.append((entry.plugin, entry.package, conflict_note(kind, entry.name, clash, entry)))
    if broken:
        click.echo("broken plugins:")
        for plugin, package, error in dict.fromkeys(broken):  # once each, in the order found
            click.echo(f"  {plugin}  [{package}]  {error}")


def _rows(registry) -> tuple[list[_Row], list[tuple[str, str, str]]]:
    """The rows (every registration of a name, availability by the class's own check) and the broken plugins of
    a loaded :class:`~hqf.registry.loader.Registry`."""
    from hqf.registry.loader import KINDS

    rows = []
    for kind in KINDS:
        entries = registry.entries(kind)
        clashes = registry.conflicts.get(kind, {})
        for entry in (owner for e in entries for owner in clashes.get(e.name, [e])):
            availability = entry.availability()
            rows.append(
                _Row(kind, entry.name, entry.plugin, entry.package, None if availability.ok else availability.reason)
            )
    return rows, [(b.plugin, b.package, b.error) for b in registry.broken]


def _state(entry: _Row, owners: list[_Row] | None) -> str:
    """``available``, ``unavailable: why``, or, for a name several plugins register, that none of them is used."""
    if owners:
        others = ", ".join(f"plugin {o.plugin!r} [{o.package}]" for o in owners if o is not entry)
        return f"not used: also registered by {others}; choose one with HQF_PLUGINS"
    return "available" if entry.missing is None else f"unavailable: {entry.missing}"


def _shown_name(entry: _Row) -> str:
    return f"{entry.name}{{Q}}x{{L}}" if entry.kind == "ansatz" else entry.name
