"""``hqf list``: every registered plugin, where it comes from, and whether it can run here."""

from __future__ import annotations

import click


@click.command("list")
def list_command() -> None:
    """List encoders, ansätze, fusions, regularizers, baselines, backbones and backends, with availability."""
    from hqf.registry.loader import KINDS, registry  # at use: it loads torch, which `hqf list --help` does not need

    reg = registry()
    for kind in KINDS:
        entries = reg.entries(kind)
        click.echo(f"{kind}s:" if kind != "ansatz" else "ansatze:")
        if not entries:
            click.echo("  (none)")
        width = max((len(_shown_name(e)) for e in entries), default=0)
        for entry in entries:
            availability = entry.availability()
            state = "available" if availability.ok else f"unavailable: {availability.reason}"
            click.echo(f"  {_shown_name(entry):<{width}}  [{entry.package}]  {state}")
    if reg.broken:
        click.echo("broken plugins:")
        for broken in reg.broken:
            click.echo(f"  {broken.plugin}  [{broken.package}]  {broken.error}")


def _shown_name(entry) -> str:
    return f"{entry.name}{{Q}}x{{L}}" if entry.kind == "ansatz" else entry.name
