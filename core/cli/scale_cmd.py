"""``hqf scale``: time per epoch, memory and gradient variance against qubits and depth (seed 002)."""

from __future__ import annotations

import csv
import pathlib

import attrs
import click

from hqf.errors import ConfigError


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"expected comma-separated integers such as 2,4,6 (got {text!r})") from None
    if not values or min(values) < 1:
        raise ConfigError(f"expected positive integers (got {text!r})")
    return values


@click.command("scale")
@click.option("--qubits", default="2,4,6,8", show_default=True, help="Qubit counts, comma-separated.")
@click.option("--layers", default="1,2,4,8", show_default=True, help="Ansatz depths (hea layers), comma-separated.")
@click.option("--backend", default="torch", show_default=True, help="Backend timed for the epoch cost.")
@click.option(
    "--variance-backend", default="torch", show_default=True, help="Backend whose gradients give the variance."
)
@click.option("--samples", default=256, show_default=True, help="Inputs per timed epoch.")
@click.option("--batch-size", default=64, show_default=True, help="Mini-batch size of the timed epoch.")
@click.option("--inits", default=100, show_default=True, help="Random initializations per gradient variance.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", default="runs/scale", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
def scale_command(qubits, layers, backend, variance_backend, samples, batch_size, inits, seed, out) -> None:
    """Sweep qubits × depth: epoch time, state memory, and Var[∂C/∂θ₁] for a local and a global cost.

    Writes cost.csv, variance.csv and scale.png under --out.
    """
    # imported here, not at the top: `hqf --help` imports every command module, and these import torch
    from hqf.registry.make import make_backend
    from hqf.studies.scale import decay_rate, epoch_cost, gradient_variance, plot

    qs, ls = _ints(qubits), _ints(layers)
    if samples < 1 or batch_size < 1 or inits < 2:
        raise ConfigError(
            f"--samples and --batch-size must be >= 1 and --inits >= 2 (got {samples}, {batch_size}, {inits})"
        )
    engine, variance_engine = make_backend(backend), make_backend(variance_backend)
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    costs, variances = [], []
    with click.progressbar(length=len(qs) * len(ls), label="scale") as bar:
        for q in qs:
            for n_layers in ls:
                costs.append(epoch_cost(engine, q, n_layers, samples, batch_size, seed))
                for cost in ("local", "global"):
                    variances.append(gradient_variance(variance_engine, q, n_layers, cost, inits, seed))
                bar.update(1)
    for name, rows in (("cost.csv", costs), ("variance.csv", variances)):
        with open(folder / name, "w", newline="") as fh:
            fields = [f.name for f in attrs.fields(type(rows[0]))]
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(attrs.asdict(r) for r in rows)
    plot(costs, variances, folder / "scale.png")
    click.echo(f"{'qubits':>6} {'layers':>6} {'s/epoch':>9} {'state MiB':>10} {'Var local':>10} {'Var global':>10}")
    for c in costs:
        var = {v.cost: v.variance for v in variances if (v.n_qubits, v.n_layers) == (c.n_qubits, c.n_layers)}
        click.echo(
            f"{c.n_qubits:>6} {c.n_layers:>6} {c.epoch_seconds:>9.3f} {c.state_bytes / 2**20:>10.3f} "
            f"{var['local']:>10.2e} {var['global']:>10.2e}"
        )
    for cost in ("local", "global"):
        for n_layers in ls:
            rate = decay_rate([v for v in variances if v.cost == cost and v.n_layers == n_layers])
            click.echo(f"{cost} cost, {n_layers} layer(s): log2 Var changes by {rate:+.2f} per qubit")
    click.echo(f"wrote {folder / 'cost.csv'}, {folder / 'variance.csv'}, {folder / 'scale.png'}")
