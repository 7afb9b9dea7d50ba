"""``hqf draw``: the circuit an encoder and an ansatz compose, as text (and optionally a PNG figure)."""

from __future__ import annotations

import pathlib

import click

from hqf.cli.check_cmd import parse_option
from hqf.errors import ConfigError
from hqf.quantum.circuit import Circuit
from hqf.quantum.drawing import layout, observable_ends


def composed_circuit(ansatz: str, encoder: str, features: int | None, options: dict) -> Circuit:
    """The circuit a model of ``encoder`` and ``ansatz`` runs (as :class:`~hqf.quantum.layer.QuantumLayer` composes
    it)."""
    from hqf.quantum.layer import QuantumLayer  # at use: torch, which `hqf draw --help` does not need
    from hqf.registry.make import make_ansatz, make_encoder  # at use: loading the plugins imports torch

    built = make_ansatz(ansatz)
    in_features = features or built.n_qubits
    try:
        encoding = make_encoder(encoder, in_features, built.n_qubits, **options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"encoder {encoder!r} with {in_features} inputs on {built.n_qubits} qubits: {exc}") from None
    return QuantumLayer(encoding, built, backend=None).circuit


def write_png(circuit: Circuit, path: pathlib.Path) -> None:
    """The diagram as a matplotlib figure: wires as lines, gates as labelled boxes, controls as dots."""
    from hqf.learn.training.plotting import pyplot, save  # at use: matplotlib and torch

    columns = layout(circuit)
    plt = pyplot()
    n = circuit.n_qubits
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(columns), 0.5 + 0.6 * n))
    for w in range(n):
        ax.plot([0, len(columns) + 0.5], [-w, -w], color="black", linewidth=0.8, zorder=0)
        ax.text(-0.3, -w, f"{w}", ha="right", va="center", fontsize=9)
    for x, column in enumerate(columns, start=1):
        for op, labels in column:
            wires = sorted(labels)
            if len(wires) > 1:
                ax.plot([x, x], [-wires[0], -wires[-1]], color="black", linewidth=0.8, zorder=1)
            for w in op.wires:
                text = labels[w].lstrip("╭├╰│")
                if text == "●":
                    ax.plot([x], [-w], "o", color="black", markersize=5, zorder=2)
                else:
                    ax.text(
                        x,
                        -w,
                        text,
                        ha="center",
                        va="center",
                        fontsize=7,
                        zorder=3,
                        bbox={"boxstyle": "square,pad=0.3", "facecolor": "white", "edgecolor": "black"},
                    )
    for w, ends in enumerate(observable_ends(circuit)):
        ax.text(len(columns) + 0.6, -w, ends, ha="left", va="center", fontsize=8)
    ax.set_xlim(-0.6, len(columns) + 2.5)
    ax.set_ylim(-n + 0.4, 0.6)
    ax.axis("off")
    save(fig, path)


@click.command("draw")
@click.option("--ansatz", default="hea4x2", show_default=True, help="Ansatz spec, e.g. hea4x2.")
@click.option("--encoder", default="angle", show_default=True, help="Any registered encoder.")
@click.option("--features", type=click.IntRange(min=1), default=None, help="Input features (default: the qubit count).")
@click.option(
    "--encoder-option", "encoder_options", multiple=True, metavar="KEY=VALUE", help="An encoder option (repeatable)."
)
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None, help="Also write a PNG figure here."
)
def draw_command(
    ansatz: str, encoder: str, features: int | None, encoder_options: tuple[str, ...], png: pathlib.Path | None
) -> None:
    """Print the circuit an encoder and an ansatz compose (one line per wire, gates labelled with their
    angle columns θk: the encoder's first, then the ansatz weights)."""
    options = dict(parse_option(text) for text in encoder_options)
    circuit = composed_circuit(ansatz, encoder, features, options)
    click.echo(f"{encoder} encoder + {ansatz}: {circuit.n_qubits} qubit(s), {circuit.n_params} angle column(s)")
    click.echo(circuit.draw())
    if png is not None:
        write_png(circuit, png)
        click.echo(f"wrote {png}")
