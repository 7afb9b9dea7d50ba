"""``hqf bench``: time backends (and the native peers) on one named circuit, print a table and the ratios."""

from __future__ import annotations

import json
import platform

import click
from click.core import ParameterSource

from hqf.errors import BackendContractError, ConfigError

#: the default batch from ``LARGE_QUBITS`` qubits on (hqf's rows; the peers time fewer, see hqf.studies.peers)
LARGE_QUBITS, LARGE_BATCH = 16, 16
#: under --noise: the default batch, and the one from ``NOISY_LARGE_QUBITS`` qubits on (12 qubits: 256 MiB a row)
NOISY_BATCH, NOISY_LARGE_QUBITS, NOISY_LARGE_BATCH = 16, 11, 2


def _timed(measure):
    """``measure()``; a backend that broke its contract while timed (values out of range or not finite, an
    exception or ``sys.exit``: :mod:`hqf.quantum.outputs`) ends the command in one line naming it, exit 1."""
    try:
        return measure()
    except BackendContractError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def _table(head: tuple[str, ...], body: list[tuple]) -> str:
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(head, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |" for line in body]
    return "\n".join(lines)


def _rows_table(rows) -> str:
    head = ("implementation", "gradient", "fwd samples/s", "fwd, new weights", "fwd+bwd samples/s", "note")
    body = [
        (r.label, r.gradient, _fmt(r.forward), _fmt(r.forward_new_weights), _fmt(r.forward_backward), r.note)
        for r in rows
    ]
    return _table(head, body)


def _noisy_rows_table(rows) -> str:
    """Rows per second, and the peak memory while each row was timed: in all, and per row of one call."""
    head = ("implementation", "key", "fwd rows/s", "fwd, new weights", "fwd+bwd rows/s", "peak MiB", "MiB/row", "note")
    body = [
        (
            r.label,
            r.key,
            _fmt(r.forward),
            _fmt(r.forward_new_weights),
            _fmt(r.forward_backward),
            _fmt(r.peak_mib),
            _fmt(None if r.peak_mib is None else r.peak_mib / r.batch),
            r.note,
        )
        for r in rows
    ]
    return _table(head, body)


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}×"


def _ratios_table(ratios) -> str:
    """One line per (hqf row, peer row) pair: its forward, new-weights and fwd+bwd ratios."""
    pairs: dict[tuple[str, str], dict[str, float | None]] = {}
    for r in ratios:
        pairs.setdefault((r.comparison.numerator, r.comparison.denominator), {})[r.comparison.column] = r.value
    head = ("hqf row", "peer row", "fwd", "fwd, new weights", "fwd+bwd")
    columns = ("forward", "forward_new_weights", "forward_backward")
    body = [(num, den, *(_times(values.get(c)) for c in columns)) for (num, den), values in pairs.items()]
    return _table(head, body)


def _print_text(result, skipped: list[str], header: str, noisy: bool = False) -> None:
    click.echo(header)
    click.echo(_noisy_rows_table(result.rows) if noisy else _rows_table(result.rows))
    if result.ratios:
        click.echo(
            "\nRatios, hqf row ÷ peer row of the same gradient (fwd, new weights: against the peer's fwd; "
            "a forward-only peer against every row's forward" + (", and every row's fwd+bwd" if noisy else "") + "):"
        )
        click.echo(_ratios_table(result.ratios))
    if result.hqf_peak_rss_mib is not None:
        when = "while the hqf rows were timed" if noisy else "once the hqf rows were timed (before any peer)"
        click.echo(f"\nPeak RSS {when}: {result.hqf_peak_rss_mib:,.0f} MiB")
    if lat := result.latency:
        click.echo(
            f"\nInference latency at batch 1: model {lat.model_seconds * 1e3:.3f} ms, "
            f"quantum layer {lat.layer_seconds * 1e3:.3f} ms"
        )
    if epoch := result.epoch:
        curv = "—" if epoch.seconds_curvature_iteration is None else f"{epoch.seconds_curvature_iteration * 1e3:.0f} ms"
        click.echo(
            f"\nEpoch estimate ({epoch.iterations} iterations measured, "
            f"extrapolated to {epoch.epoch_samples:,} samples): "
            f"{epoch.epoch_seconds:.0f} s; per iteration {epoch.seconds_plain_iteration * 1e3:.0f} ms, "
            f"with the curvature term (every {epoch.curvature_every}) {curv}"
        )
    for line in skipped:
        click.echo(f"skipped: {line}")


@click.command("bench")
@click.option(
    "--ansatz",
    default="hea8x6",
    show_default=True,
    help="Ansatz spec; the circuit is RY encoding + ansatz, ⟨Z⟩ on every qubit.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    help=f"Rows per call (default: 256; {LARGE_BATCH} from {LARGE_QUBITS} qubits on, "
    "where a row's state is 1 MiB or more).",
)
@click.option("--dtype", default="complex128", show_default=True, type=click.Choice(["complex128", "complex64"]))
@click.option(
    "--backend",
    "backends",
    multiple=True,
    default=("torch",),
    show_default=True,
    help="Registered hqf backend to time (repeatable). With --peers and no --backend: every available registered "
    "backend that runs the workload (its dtype on the CPU, exact, no noise model); with --noise and no --backend: "
    "every one that runs the noise model and has a native gradient.",
)
@click.option(
    "--gradient",
    "gradients",
    multiple=True,
    help="Core gradient method (repeatable): auto, backprop, adjoint, parameter-shift. "
    "Default: auto; with --peers also parameter-shift and, where declared, adjoint.",
)
@click.option(
    "--peers", is_flag=True, help="Also time the native peer implementations that are installed, and print the ratios."
)
@click.option("--peer", "peer_names", multiple=True, help="Only these peers (repeatable; implies --peers).")
@click.option("--repeats", default=7, show_default=True, type=click.IntRange(min=1), help="Timed calls (median).")
@click.option(
    "--warmup", type=click.IntRange(min=0), help=f"Untimed calls first (default: 2; 1 from {LARGE_QUBITS} qubits on)."
)
@click.option(
    "--slow-batch",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows for the backward of slow peers (Qiskit ML: ~0.1 sample/s).",
)
@click.option("--threads", type=click.IntRange(min=1), help="torch.set_num_threads (default: torch's own choice).")
@click.option("--latency", is_flag=True, help="Also the inference latency of the default hybrid model at batch 1.")
@click.option(
    "--epoch",
    "epoch_iterations",
    type=click.IntRange(min=2),
    help="Also estimate a full training epoch from N iterations.",
)
@click.option(
    "--curvature-every",
    type=click.IntRange(min=1),
    help="With --epoch: the curvature term every K iterations (default: hqf run's, curvature_every).",
)
@click.option(
    "--noise",
    metavar="MODEL",
    help='Time the noisy simulation under this noise model, e.g. "depolarizing=0.02": the exact noisy backends '
    "(and the trajectory ones, as estimates) and, with --peers, other libraries' density matrices; "
    f"batch {NOISY_BATCH} ({NOISY_LARGE_BATCH} from {NOISY_LARGE_QUBITS} qubits on); each row's peak memory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def bench_command(
    ctx,
    ansatz,
    batch,
    dtype,
    backends,
    gradients,
    peers,
    peer_names,
    repeats,
    warmup,
    slow_batch,
    threads,
    latency,
    epoch_iterations,
    curvature_every,
    noise,
    as_json,
) -> None:
    """Time forward and forward+backward (samples/s, median after warm-up) of hqf backends on one circuit.

    With peers, also the ratio of each hqf row to each peer row of the same gradient. What computes in
    torch is timed first, then the latency and the epoch, then the rest: another runtime (Qiskit Aer's
    OpenMP) can slow torch's threads for the rest of the process. Goals for the ratios:
    benchmarks/targets.toml, checked on a saved --json by benchmarks/targets.py.
    """
    # imported here, not at the top: `hqf --help` imports every command module, and these import torch
    import torch

    from hqf.registry.specs import parse_ansatz_spec
    from hqf.studies.bench import Workload
    from hqf.studies.bench_suite import fitting_backends, run_bench
    from hqf.studies.peers import select_peers

    parse_ansatz_spec(ansatz)  # a bad spec is a one-line error
    if threads:
        torch.set_num_threads(threads)
    peers = peers or bool(peer_names)
    if noise is not None:
        _noisy_bench(
            ctx,
            noise,
            ansatz,
            batch,
            dtype,
            backends,
            gradients,
            peers,
            peer_names,
            repeats,
            warmup,
            latency or epoch_iterations,
            as_json,
        )
        return
    large = Workload(ansatz).n_qubits >= LARGE_QUBITS
    batch = batch or (LARGE_BATCH if large else 256)
    warmup = (1 if large else 2) if warmup is None else warmup
    workload = Workload(ansatz, batch, dtype)
    peer_list, skipped = select_peers(peer_names, workload.n_qubits) if peers else ([], [])
    if peers and ctx.get_parameter_source("backends") is ParameterSource.DEFAULT:
        if large:  # other backends' shift rule or autograd graph would take hours or all memory there
            skipped.insert(
                0,
                f"backends: from {LARGE_QUBITS} qubits on, --peers times {', '.join(backends)} "
                "unless --backend names others",
            )
        else:
            backends, unfit = fitting_backends(workload)
            skipped = unfit + skipped
    overrides = {"curvature_every": curvature_every} if curvature_every else {}
    result = _timed(
        lambda: run_bench(
            workload,
            backends,
            peer_list,
            gradients,
            repeats,
            warmup,
            slow_batch,
            latency,
            epoch_iterations,
            **overrides,
        )
    )
    skipped += result.skipped
    if as_json:
        payload = {
            "workload": {"ansatz": ansatz, "batch": batch, "dtype": dtype},
            "machine": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "processor": platform.processor() or platform.machine(),
            },
            "rows": [r.to_dict() for r in result.rows],
            "ratios": [r.to_dict() for r in result.ratios],
            "latency": result.latency.to_dict() if result.latency else None,
            "epoch": result.epoch.to_dict() if result.epoch else None,
            "memory": {"hqf_peak_rss_mib": result.hqf_peak_rss_mib},
            "skipped": skipped,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    _print_text(
        result,
        skipped,
        f"{ansatz}, batch {batch}, {dtype}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
    )


def _machine() -> dict:
    import torch  # here, not at the top: `hqf --help` imports every command module

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
    }


def _noisy_bench(
    ctx, text, ansatz, batch, dtype, backends, gradients, peers, peer_names, repeats, warmup, extras, as_json
) -> None:
    """``hqf bench --noise MODEL``: the noisy backends and the noisy peers (hqf.studies.noisy_peers)."""
    # imported here, not at the top: `hqf --help` imports every command module, and these import torch
    from hqf.quantum.noise import NoiseModel
    from hqf.studies.bench import Workload
    from hqf.studies.bench_suite import fitting_noisy_backends, run_noisy_bench
    from hqf.studies.noisy_peers import select_noisy_peers

    try:
        model = NoiseModel.parse(text)
    except ValueError as error:
        raise ConfigError(f"--noise: {error}") from None
    if gradients or extras:
        raise ConfigError("--noise times each backend's default gradient, without --gradient, --latency or --epoch")
    n_qubits = Workload(ansatz).n_qubits
    large = n_qubits >= NOISY_LARGE_QUBITS
    batch = batch or (NOISY_LARGE_BATCH if large else NOISY_BATCH)
    warmup = (1 if large else 2) if warmup is None else warmup
    workload = Workload(ansatz, batch, dtype)
    peer_list, skipped = select_noisy_peers(peer_names, n_qubits) if peers else ([], [])
    if ctx.get_parameter_source("backends") is ParameterSource.DEFAULT:
        backends, unfit = fitting_noisy_backends(workload, model)
        skipped = unfit + skipped
    result = _timed(lambda: run_noisy_bench(workload, model, backends, peer_list, repeats, warmup))
    skipped += result.skipped
    if as_json:
        payload = {
            "workload": {"ansatz": ansatz, "batch": batch, "dtype": dtype, "noise": str(model)},
            "machine": _machine(),
            "rows": [r.to_dict() for r in result.rows],
            "ratios": [r.to_dict() for r in result.ratios],
            "memory": {"hqf_peak_rss_mib": result.hqf_peak_rss_mib},
            "skipped": skipped,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    machine = _machine()
    threads = machine["threads"]
    header = f"{ansatz}, noise {model}, batch {batch}, {dtype}; torch {machine['torch']}, {threads} thread(s)"
    _print_text(result, skipped, header, noisy=True)
