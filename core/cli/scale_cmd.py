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


def _engines(backend: str, variance_backend: str | None, bonds: list[int] | None, max_qubits: int) -> list:
    """``(bond, timed backend, variance backend)`` per bond dimension (one entry with bond None without ``--bond``)."""
    from hqf.registry.make import make_backend

    if variance_backend is None:
        variance_backend = backend
    if bonds is not None and variance_backend != backend:
        raise ConfigError(
            f"--bond gives the variance on --backend at each bond; --variance-backend {variance_backend!r} "
            f"does not apply (omit it)"
        )
    engines = []
    for bond in bonds or [None]:
        options = {} if bond is None else {"chi": bond}
        try:
            made = make_backend(backend, **options), make_backend(variance_backend, **options)
        except TypeError:
            raise ConfigError(
                f"--bond needs a backend with a bond dimension (such as torch-mps); {backend!r} has none"
            ) from None
        for engine in made:
            if max_qubits > engine.capabilities.max_qubits:
                raise ConfigError(
                    f"backend {engine.name!r} runs at most {engine.capabilities.max_qubits} qubits "
                    f"(--qubits asks for {max_qubits}); past the state vector use --backend torch-mps --bond"
                )
        engines.append((bond, *made))
    return engines


@click.command("scale")
@click.option("--qubits", default="2,4,6,8", show_default=True, help="Qubit counts, comma-separated.")
@click.option("--layers", default="1,2,4,8", show_default=True, help="Ansatz depths (hea layers), comma-separated.")
@click.option("--bond", help="Bond dimensions χ, comma-separated (a matrix-product-state backend such as torch-mps).")
@click.option("--backend", default="torch", show_default=True, help="Backend timed for the epoch cost.")
@click.option("--variance-backend", help="Backend whose gradients give the variance (default: --backend).")
@click.option("--samples", default=256, show_default=True, help="Inputs per timed epoch.")
@click.option("--batch-size", default=64, show_default=True, help="Mini-batch size of the timed epoch.")
@click.option("--inits", default=100, show_default=True, help="Random initializations per gradient variance.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Threads (default: torch's own choice).")
@click.option("--out", default="runs/scale", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
def scale_command(
    qubits, layers, bond, backend, variance_backend, samples, batch_size, inits, seed, threads, out
) -> None:
    """Sweep qubits × depth (× bond): time per row, memory, discarded weight, and Var[∂C/∂θ₁] for two costs.

    Per point: one epoch forward only and one forward + backward, per row; the state memory of one
    mini-batch and the peak resident memory; with --bond, the discarded weight and the bond reached; the
    gradient variance for a local cost ⟨Z0 Z1⟩ and a global cost ⟨Z0 … Z_{n−1}⟩.

    Writes cost.csv, variance.csv, scale.md and scale.png under --out.
    """
    # imported here, not at the top: `hqf --help` imports every command module, and these import torch
    from hqf.learn.process.runtime import set_threads
    from hqf.studies.scale import epoch_cost, gradient_variance, plot, table

    qs, ls = _ints(qubits), _ints(layers)
    bonds = None if bond is None else _ints(bond)
    if samples < 1 or batch_size < 1 or inits < 2:
        raise ConfigError(
            f"--samples and --batch-size must be >= 1 and --inits >= 2 (got {samples}, {batch_size}, {inits})"
        )
    engines = _engines(backend, variance_backend, bonds, max(qs))
    if threads:
        for _, engine, variance_engine in engines:
            set_threads(threads, engine)
            variance_engine.set_threads(threads)
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    costs, variances = [], []
    with click.progressbar(length=len(qs) * len(ls) * len(engines), label="scale") as bar:
        for q in qs:
            for n_layers in ls:
                for chi, engine, variance_engine in engines:
                    costs.append(epoch_cost(engine, q, n_layers, samples, batch_size, seed, chi))
                    for cost in ("local", "global"):
                        variances.append(gradient_variance(variance_engine, q, n_layers, cost, inits, seed, chi))
                    bar.update(1)
    for name, rows in (("cost.csv", costs), ("variance.csv", variances)):
        with open(folder / name, "w", newline="") as fh:
            fields = [f.name for f in attrs.fields(type(rows[0]))]
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(attrs.asdict(r) for r in rows)
    lines = table(costs, variances)
    (folder / "scale.md").write_text("\n".join(lines) + "\n")
    plot(costs, variances, folder / "scale.png")
    click.echo("\n".join(lines))
    click.echo(f"wrote {folder / 'cost.csv'}, {folder / 'variance.csv'}, {folder / 'scale.md'}, {folder / 'scale.png'}")
