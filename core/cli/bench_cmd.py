"""``hqf bench``: time backends (and the native peers) on one named circuit, print a table and the ratios."""

from __future__ import annotations

import json

import click


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def _table(rows) -> str:
    head = ("implementation", "gradient", "fwd samples/s", "fwd, new weights", "fwd+bwd samples/s", "note")
    body = [(r.label, r.gradient, _fmt(r.forward), _fmt(r.forward_new_weights), _fmt(r.forward_backward), r.note) for r in rows]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(head, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |" for line in body]
    return "\n".join(lines)


#: hqf backends timed by ``--peers`` when no ``--backend`` is given (those installed and available)
PEER_RUN_BACKENDS = ("torch", "qiskit-aer", "pennylane")
#: timed after everything else: once Qiskit Aer (its own OpenMP runtime) has run in a process, torch's
#: two-thread steps ran about 2× slower there (a training step 8.6 → 16.4 ms; one thread: unchanged)
USES_QISKIT_AER = frozenset({"qiskit-aer", "qiskit-ml"})


def _default_backends(peers: bool, dtype: str, skipped: list[str]) -> list[str]:
    if not peers:
        return ["torch"]
    from hqf.quantum.registry import registry

    names = []
    for name in PEER_RUN_BACKENDS:
        try:
            entry = registry().get("backend", name)
        except KeyError:
            skipped.append(f"backend {name}: not registered")
            continue
        availability = entry.availability()
        if not availability.ok:
            skipped.append(f"backend {name}: {availability.reason}")
        elif dtype not in entry.cls.capabilities.dtypes:
            skipped.append(f"backend {name}: no {dtype}")
        else:
            names.append(name)
    return names


@click.command("bench")
@click.option("--ansatz", default="hea8x6", show_default=True, help="Ansatz spec; the circuit is RY encoding + ansatz, ⟨Z⟩ on every qubit.")
@click.option("--batch", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--dtype", default="complex128", show_default=True, type=click.Choice(["complex128", "complex64"]))
@click.option(
    "--backend",
    "backends",
    multiple=True,
    help="hqf backend to time (repeatable; default: torch, and with --peers also qiskit-aer and pennylane where available).",
)
@click.option(
    "--gradient",
    "gradients",
    multiple=True,
    help="Core gradient method (repeatable): auto, backprop, adjoint, parameter-shift. "
    "Default: auto; with --peers also parameter-shift and, where declared, adjoint.",
)
@click.option("--peers", is_flag=True, help="Also time the native peer implementations that are installed.")
@click.option("--peer", "peer_names", multiple=True, help="Only these peers (repeatable; implies --peers).")
@click.option("--repeats", default=7, show_default=True, type=click.IntRange(min=1), help="Timed calls (median).")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0))
@click.option("--slow-batch", default=1, show_default=True, type=click.IntRange(min=1), help="Rows for the Qiskit ML backward (it runs ~0.1 sample/s).")
@click.option("--threads", type=click.IntRange(min=1), help="torch.set_num_threads (default: torch's own choice).")
@click.option("--latency", is_flag=True, help="Also the inference latency of the default hybrid model at batch 1.")
@click.option("--epoch", "epoch_iterations", type=click.IntRange(min=2), help="Also estimate a full training epoch from N iterations.")
@click.option(
    "--curvature-every",
    type=click.IntRange(min=1),
    help="With --epoch: the curvature term every K iterations (default: hqf run's, curvature_every).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def bench_command(
    ansatz, batch, dtype, backends, gradients, peers, peer_names, repeats, warmup, slow_batch, threads, latency, epoch_iterations,
    curvature_every, as_json
) -> None:
    """Time forward and forward+backward (samples/s, median after warm-up) of hqf backends on one circuit.

    Whatever uses Qiskit Aer is timed last, after the latency and the epoch: once Aer's OpenMP runtime
    has run in a process, torch's multi-threaded steps there are slower.
    """
    import platform

    import torch

    from hqf.studies.bench import TARGETS, Workload, epoch_estimate, inference_latency, ratios, resolve_gradient, time_backend
    from hqf.studies.peers import PEERS, available_peers
    from hqf.errors import ConfigError
    from hqf.quantum.make import make_backend
    from hqf.quantum.specs import parse_ansatz_spec

    parse_ansatz_spec(ansatz)  # a bad spec is a one-line error
    if threads:
        torch.set_num_threads(threads)
    peers = peers or bool(peer_names)
    unknown = sorted(set(peer_names) - set(PEERS))
    if unknown:
        raise ConfigError(f"unknown peer(s) {unknown}; peers: {', '.join(PEERS)}")
    workload = Workload(ansatz, batch, dtype)
    skipped: list[str] = []
    backend_names = list(backends or _default_backends(peers, dtype, skipped))
    for name in backend_names:
        make_backend(name, dtype=dtype)  # unknown/unavailable: a one-line error before anything is timed
    installed = available_peers() if peers else set()
    peer_list = []
    for name in (peer_names or PEERS) if peers else ():
        if name in installed:
            peer_list.append(name)
        else:
            skipped.append(f"peer {name}: not installed")

    def time_hqf(name: str) -> list:
        backend = make_backend(name, dtype=dtype)  # unknown/unavailable: one-line error
        methods = list(gradients) or ["auto"] + (["parameter-shift"] if peers else [])
        if peers and not gradients and "adjoint" in backend.capabilities.gradients:
            methods.append("adjoint")
        timed, done = [], set()
        for method in methods:
            if method not in ("auto", "parameter-shift") and method not in backend.capabilities.gradients:
                skipped.append(f"{name}/{method}: backend has no native {method!r} gradient")
                continue
            if resolve_gradient(backend, method) in done:  # auto is one of the others
                continue
            done.add(resolve_gradient(backend, method))
            timed.append(time_backend(name, workload, method, repeats, warmup))
        return timed

    def time_peer(name: str) -> list:
        options = {"slow_batch": slow_batch} if name == "qiskit-ml" else {}
        try:
            return [PEERS[name][1](workload, **options)]
        except Exception as exc:  # a peer's own failure is reported, not fatal
            skipped.append(f"peer {name}: {type(exc).__name__}: {exc}")
            return []

    hqf_rows: dict[str, list] = {}
    peer_rows: dict[str, list] = {}
    for later in (False, True):  # Qiskit Aer last (USES_QISKIT_AER), the latency and the epoch before it
        for name in backend_names:
            if (name in USES_QISKIT_AER) == later:
                hqf_rows[name] = time_hqf(name)
        for name in peer_list:
            if (name in USES_QISKIT_AER) == later:
                peer_rows[name] = time_peer(name)
        if not later:
            lat = inference_latency() if latency else None
            overrides = {"curvature_every": curvature_every} if curvature_every else {}
            epoch = epoch_estimate(epoch_iterations, **overrides) if epoch_iterations else None
    rows = [r for name in backend_names for r in hqf_rows.get(name, [])]
    rows += [r for name in peer_list for r in peer_rows.get(name, [])]
    measured = ratios(rows, TARGETS)
    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
    }
    if as_json:
        payload = {
            "workload": {"ansatz": ansatz, "batch": batch, "dtype": dtype},
            "machine": machine,
            "rows": [r.to_dict() for r in rows],
            "ratios": [{"target": r.target.name, "value": r.value, "goal": r.target.factor, "met": r.met} for r in measured],
            "latency": lat.to_dict() if lat else None,
            "epoch": epoch.to_dict() if epoch else None,
            "skipped": skipped,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"{ansatz}, batch {batch}, {dtype}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    click.echo(_table(rows))
    if measured:
        click.echo("\nTargets (ratios in this run):")
        for r in measured:
            verdict = "n/a" if r.met is None else ("met" if r.met else "MISSED")
            value = "—" if r.value is None else f"{r.value:.1f}×"
            click.echo(f"  {r.target.name}: {value} (goal ≥ {r.target.factor:g}×) {verdict}")
    if lat:
        verdict = "met" if lat.model_seconds <= lat.target_seconds else "MISSED"
        click.echo(
            f"\nInference latency at batch 1: model {lat.model_seconds * 1e3:.3f} ms, quantum layer "
            f"{lat.layer_seconds * 1e3:.3f} ms (goal ≤ {lat.target_seconds * 1e3:g} ms) {verdict}"
        )
    if epoch:
        verdict = "met" if epoch.epoch_seconds <= epoch.target_seconds else "MISSED"
        curv = "—" if epoch.seconds_curvature_iteration is None else f"{epoch.seconds_curvature_iteration * 1e3:.0f} ms"
        click.echo(
            f"\nEpoch estimate ({epoch.iterations} iterations measured, extrapolated to {epoch.epoch_samples:,} samples): "
            f"{epoch.epoch_seconds:.0f} s (goal ≤ {epoch.target_seconds:g} s) {verdict}; per iteration "
            f"{epoch.seconds_plain_iteration * 1e3:.0f} ms, with the curvature term (every {epoch.curvature_every}) {curv}"
        )
    for line in skipped:
        click.echo(f"skipped: {line}")
