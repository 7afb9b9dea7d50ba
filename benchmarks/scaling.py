"""Scaling study of the torch backend: samples/s and peak memory against qubits, layers and batch.

Each point (Q qubits, L layers, batch B) runs in its own Python process, so its peak resident set size
(``ru_maxrss``) belongs to that point alone (tracemalloc does not see torch's allocations). A point
times ``hqf.quantum.gradients.expval`` on the ``hea{Q}x{L}`` circuit with RY encoding (``⟨Z⟩`` on every qubit):
forward under ``no_grad`` with new weights every call (so the backend's frozen-weight cache for
inference never stands in for the simulation), and forward+backward with respect to weights (passed
as ``shared``) and inputs under the default gradient (``auto``: autograd, whose first-order backward is the adjoint
pass). A time is the median of a few calls after one warm-up call; calls cycle through different input batches.
Times are the
process's CPU seconds (with one thread, the work itself, whatever else shares the machine); the wall
seconds are recorded too.

Usage::

    python benchmarks/scaling.py --quick            # a small grid, about a minute
    python benchmarks/scaling.py                    # qubits 4-20 × layers 2-10 and a batch sweep
    python benchmarks/scaling.py --plot-only results.json

Writes ``<out>.json`` and ``<out>.png`` (default ``benchmarks/results/scaling``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent

FULL = {"qubits": [4, 6, 8, 10, 12, 14, 16, 18, 20], "layers": [2, 4, 6, 8, 10], "batches": [16, 64, 256, 1024]}
QUICK = {"qubits": [4, 8, 12], "layers": [2, 6], "batches": [16, 64, 256]}


def measure_point(n_qubits: int, n_layers: int, batch: int, repeats: int, threads: int) -> dict:
    """Time one point in this process (the parent runs it in a fresh one)."""
    import statistics

    import torch

    from hqf.learn.process.runtime import tune_process
    from hqf.quantum.gradients import expval
    from hqf.registry.make import make_backend
    from hqf.studies.bench import Workload

    tune_process()  # as the hqf commands do
    torch.set_num_threads(threads)
    workload = Workload(f"hea{n_qubits}x{n_layers}", batch)
    circuit, (_, weights), stream = workload.circuit(), workload.inputs(), workload.input_stream()
    flat = weights.reshape(-1)
    backend = make_backend("torch")

    calls = [0]

    def forward():  # new weights every call: no frozen-weight cache stands in for the simulation
        calls[0] += 1
        with torch.no_grad():
            expval(backend, circuit, stream(), shared=flat + 1e-3 * calls[0])

    def forward_backward():
        xs, ws = stream().clone().requires_grad_(), flat.clone().requires_grad_()
        expval(backend, circuit, xs, shared=ws).sum().backward()

    out = {"qubits": n_qubits, "layers": n_layers, "batch": batch, "threads": threads}
    for name, fn in (("forward", forward), ("forward_backward", forward_backward)):
        fn()
        wall, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        out[f"{name}_wall_seconds"] = statistics.median(wall)
        out[f"{name}_seconds"] = statistics.median(cpu)
        out[f"{name}_samples_per_s"] = batch / out[f"{name}_seconds"]
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_point(n_qubits: int, n_layers: int, batch: int, repeats: int, threads: int, timeout: float) -> dict | None:
    cmd = [
        sys.executable,
        __file__,
        "--point",
        str(n_qubits),
        str(n_layers),
        str(batch),
        "--repeats",
        str(repeats),
        "--threads",
        str(threads),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        print(f"  Q={n_qubits} L={n_layers} B={batch}: over {timeout:.0f} s, skipped", file=sys.stderr)
        return None
    except subprocess.CalledProcessError as exc:
        print(f"  Q={n_qubits} L={n_layers} B={batch}: failed: {exc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def batch_for(n_qubits: int) -> int:
    """Rows per point in the qubit × layer grid: 64, fewer where one call would take minutes."""
    return 64 if n_qubits <= 16 else max(2, 64 >> (n_qubits - 16))


def plot(points: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = [p for p in points if p.get("sweep") == "grid"]
    sweep = [p for p in points if p.get("sweep") == "batch"]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4))
    layers = sorted({p["layers"] for p in grid})
    qubits = sorted({p["qubits"] for p in grid})
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(layers), len(qubits))))
    ax = axes[0]
    for colour, depth in zip(colours, layers):
        rows = sorted((p for p in grid if p["layers"] == depth), key=lambda p: p["qubits"])
        ax.semilogy(
            [p["qubits"] for p in rows],
            [p["forward_backward_seconds"] / p["batch"] for p in rows],
            "o-",
            color=colour,
            label=f"L={depth}",
        )
    if grid:
        ref = max(grid, key=lambda p: p["qubits"])
        q = np.array(qubits, dtype=float)
        scale = ref["forward_backward_seconds"] / ref["batch"] / 2.0 ** ref["qubits"]
        ax.semilogy(q, scale * 2.0**q, "k--", lw=1, label="∝ 2^Q")
    ax.set(xlabel="qubits Q", ylabel="fwd+bwd seconds per sample", title="cost vs qubits")
    ax.legend(fontsize=7)
    ax = axes[1]
    for colour, n in zip(colours, qubits):
        rows = sorted((p for p in grid if p["qubits"] == n), key=lambda p: p["layers"])
        if rows:
            base = rows[-1]["forward_backward_seconds"] / rows[-1]["batch"]
            ax.plot(
                [p["layers"] for p in rows],
                [p["forward_backward_seconds"] / p["batch"] / base for p in rows],
                "o-",
                color=colour,
                label=f"Q={n}",
            )
    ax.set(xlabel="layers L", ylabel="seconds per sample / value at the deepest L", title="cost vs layers (linear)")
    ax.legend(fontsize=7)
    ax = axes[2]
    for colour, n in zip(colours, sorted({p["qubits"] for p in sweep})):
        rows = sorted((p for p in sweep if p["qubits"] == n), key=lambda p: p["batch"])
        ax.loglog(
            [p["batch"] for p in rows],
            [p["forward_backward_seconds"] for p in rows],
            "o-",
            color=colour,
            label=f"Q={n}, L={rows[0]['layers']}",
        )
    ax.set(xlabel="batch B", ylabel="fwd+bwd seconds per call", title="cost vs batch")
    ax.legend(fontsize=7)
    ax = axes[3]
    depth = max(layers) if layers else None
    rows = sorted((p for p in grid if p["layers"] == depth), key=lambda p: p["qubits"])
    ax.semilogy([p["qubits"] for p in rows], [p["peak_rss_mib"] for p in rows], "o-", label=f"peak RSS (L={depth})")
    ax.semilogy(
        [p["qubits"] for p in rows],
        [p["batch"] * 2.0 ** p["qubits"] * 16 / 2**20 for p in rows],
        "k--",
        lw=1,
        label="one batch of states",
    )
    ax.axhline(1024, color="red", lw=0.8, ls=":", label="1 GiB")
    ax.set(xlabel="qubits Q", ylabel="MiB", title="memory")
    ax.legend(fontsize=7)
    fig.suptitle("hqf torch backend: hea{Q}x{L} with RY encoding, complex128, forward+backward (weights and inputs)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small grid (about a minute)")
    parser.add_argument("--out", default=str(HERE / "results" / "scaling"), help="output path without suffix")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per point (default 1)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per point before it is skipped")
    parser.add_argument("--point", nargs=3, type=int, metavar=("Q", "L", "B"), help=argparse.SUPPRESS)
    parser.add_argument("--plot-only", metavar="JSON", help="redraw the plot from a results file")
    args = parser.parse_args(argv)
    if args.point:
        print(json.dumps(measure_point(*args.point, repeats=args.repeats, threads=args.threads)))
        return
    out = pathlib.Path(args.out)
    if args.plot_only:
        plot(json.loads(pathlib.Path(args.plot_only).read_text())["points"], out.with_suffix(".png"))
        return
    spec = QUICK if args.quick else FULL
    points = []
    for n in spec["qubits"]:
        for depth in spec["layers"]:
            result = run_point(n, depth, batch_for(n), args.repeats, args.threads, args.timeout)
            if result:
                points.append({**result, "sweep": "grid"})
                print(
                    f"Q={n:2d} L={depth:2d} B={result['batch']:4d}: fwd {result['forward_samples_per_s']:10.1f}/s  "
                    f"fwd+bwd {result['forward_backward_samples_per_s']:10.1f}/s  "
                    f"peak RSS {result['peak_rss_mib']:7.0f} MiB",
                    flush=True,
                )
    sweep_qubits = [8, 12] if args.quick else [8, 12, 16]
    for n in sweep_qubits:
        for batch in spec["batches"]:
            if batch * 2**n * 16 > 2**30:  # more than 1 GiB of states per pass: skip
                continue
            result = run_point(n, 6, batch, args.repeats, args.threads, args.timeout)
            if result:
                points.append({**result, "sweep": "batch"})
                print(
                    f"batch sweep Q={n} L=6 B={batch}: fwd+bwd {result['forward_backward_seconds']:.4f} s/call",
                    flush=True,
                )
    out.parent.mkdir(parents=True, exist_ok=True)
    import platform

    import torch

    meta = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
        "threads": args.threads,
    }
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "points": points}, indent=1))
    plot(points, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
