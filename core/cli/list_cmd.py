"""``hqf list``: every registered plugin, where it comes from, and whether it can run here."""

from __future__ import annotations

import click


@click.command("list")
def list_command() -> None:
    """List encoders, ansätze, fusions, regularizers, baselines, backbones and backends, with availability.

    A name that two plugins register is listed once per plugin: none of them is used until one is
    removed or chosen with HQF_PLUGINS.
    """
    from hqf.registry.loader import KINDS, registry  # at use: it loads torch, which `hqf list --help` does not need

    reg = registry()
    for kind in KINDS:
        entries = reg.entries(kind)
        clashes = reg.conflicts.get(kind, {})
        # every registration of a name two plugins claim, in the order they registered
        entries = [owner for e in entries for owner in clashes.get(e.name, [e])]
        click.echo(f"{kind}s:" if kind != "ansatz" else "ansatze:")
        if not entries:
            click.echo("  (none)")
        width = max((len(_shown_name(e)) for e in entries), default=0)
        for entry in entries:
            click.echo(f"  {_shown_name(entry):<{width}}  [{entry.package}]  {_state(entry, clashes.get(entry.name))}")
    if reg.broken:
        click.echo("broken plugins:")
        for broken in reg.broken:
            click.echo(f"  {broken.plugin}  [{broken.package}]  {broken.error}")


def _state(entry, owners) -> str:
    """``available``, ``unavailable: why``, or, for a name several plugins register, that none of them is used."""
    if owners:
        others = ", ".join(f"plugin {o.plugin!r} [{o.package}]" for o in owners if o is not entry)
        return f"not used: also registered by {others}; choose one with HQF_PLUGINS"
    availability = entry.availability()
    return "available" if availability.ok else f"unavailable: {availability.reason}"


def _shown_name(entry) -> str:
    return f"{entry.name}{{Q}}x{{L}}" if entry.kind == "ansatz" else entry.name
