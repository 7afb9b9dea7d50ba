"""Forward and forward+backward throughput of ``hea{Q}x6`` circuits on cuquantum, torch-CUDA and torch-CPU.

    python benchmarks/gpu_bench.py                 # hea8x6 at batch 256, then 16, 20, 24 qubits
    python benchmarks/gpu_bench.py --quick         # smaller batches and shorter timings (a smoke run)
    python benchmarks/gpu_bench.py --json out.json --dtype complex64

The circuit is the ansatz alone with ⟨Z_q⟩ on every qubit; every angle column is trainable, one row per
sample. "fwd" times ``backend.expval`` without autograd; "fwd+bwd" times ``hqf.quantum.gradients.expval`` and
``out.sum().backward()``: torch with backprop (the shift rule where autograd's stored states would not
fit), cuquantum with its adjoint vjp and with the shift rule (2P+1 circuit runs per sample).

Batches: 256 for hea8x6; for larger circuits the batch is sized to the free device memory (capped at
256), and a fwd+bwd batch is cut further so one measurement stays under ``--max-seconds``. A row that
cannot run says why (backend unavailable, estimated time, memory) instead of a number.

Memory bandwidth: a 2×2 gate reads and writes the whole state, so one forward pass moves about
``2 × state bytes × gate applications × batch``; that divided by the time, against the device's peak
(a device-to-device copy measured here, and the datasheet figure where the GPU is in PEAK_TB_S),
is the achieved fraction. The table prints it for every forward row; the JSON has every number.
Runs on a CPU-only machine too: the GPU rows then say why they did not run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import platform
import sys
import time

import torch

from hqf.errors import BackendUnavailableError
from hqf.quantum.circuit import compose
from hqf.quantum.gradients import expval
from hqf.registry.make import make_ansatz, make_backend

#: datasheet peak memory bandwidth in TB/s, matched against torch.cuda.get_device_name()
PEAK_TB_S = {
    "H200": 4.8,
    "H100 SXM": 3.35,
    "H100 80GB HBM3": 3.35,
    "H100 PCIe": 2.0,
    "H100 NVL": 3.9,
    "A100-SXM4-80GB": 2.039,
    "A100 80GB PCIe": 1.935,
    "A100-SXM4-40GB": 1.555,
    "A100-PCIE-40GB": 1.555,
    "L40S": 0.864,
    "L4": 0.3,
    "A10": 0.6,
    "T4": 0.32,
    "RTX 4090": 1.008,
}
LAYERS = 6
CPU_MAX_QUBITS = 16  # beyond this torch-CPU is hopeless at these batches: the row says how hopeless


# -- timing ------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, min_seconds: float, max_reps: int = 50, warmup: bool = True) -> float:
    """Median seconds of ``fn()`` (after one warm-up call): at least 3 runs and ``min_seconds``, at most
    ``max_reps`` runs, and no more once 10 s (or ``min_seconds``, if longer) are spent."""
    if warmup:
        fn()
        _sync(device)
    times: list[float] = []
    while len(times) < max_reps:
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        spent = sum(times)
        if (len(times) >= 3 and spent >= min_seconds) or spent >= max(min_seconds, 10.0):
            break
    times.sort()
    return times[len(times) // 2]


def copy_bandwidth(device: torch.device, megabytes: int) -> float:
    """Bytes/s of a device-to-device copy (each copy reads and writes ``megabytes``)."""
    src = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, 0.3)
    return 2 * src.numel() / seconds


def datasheet_peak(name: str) -> float | None:
    for key, tb_s in PEAK_TB_S.items():
        if key.lower() in name.lower():
            return tb_s * 1e12
    return None


# -- one measurement -----------------------------------------------------------------------------
def build(name: str, device: str, dtype: str, batching: str | None):
    options = {"dtype": dtype, "device": device}
    if batching:  # cuquantum: a batching mode, and its opt-in adjoint gradient
        options.update(batching=batching, adjoint=True)
    return make_backend(name, **options)


def free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import os

    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8 * 2**30


def measure(backend, n_qubits: int, batch: int, args) -> list[dict]:
    """The fwd and fwd+bwd rows for one backend and one circuit size."""
    device = torch.device(backend.device)
    circuit = compose(n_qubits, [make_ansatz(f"hea{n_qubits}x{LAYERS}").operations()])
    n_params, n_gates = circuit.n_params, len(circuit.operations)
    state_bytes = 2**n_qubits * torch.empty(0, dtype=backend.complex_dtype).element_size()
    gen = torch.Generator().manual_seed(0)
    rows = []

    # forward
    angles = (torch.rand(batch, n_params, generator=gen, dtype=torch.float64) * 2 * math.pi).to(device)
    with torch.no_grad():
        fwd = timed(lambda: backend.expval(circuit, angles), device, args.min_seconds)
    moved = 2 * state_bytes * n_gates * batch
    rows.append({"mode": "fwd", "batch": batch, "seconds": fwd, "samples_per_s": batch / fwd,
                 "bytes_moved": moved, "achieved_bytes_per_s": moved / fwd})  # fmt: skip

    # forward + backward, with each gradient method worth measuring on this backend
    per_sample = fwd / batch
    methods = ["backprop"] if "backprop" in backend.capabilities.gradients else ["adjoint", "parameter-shift"]
    if "adjoint" not in backend.capabilities.gradients and "adjoint" in methods:
        methods.remove("adjoint")
    for method in methods:
        rows.append(fwd_bwd(backend, circuit, method, batch, per_sample, state_bytes, gen, args))
    return rows


def fwd_bwd(backend, circuit, method, batch, per_sample, state_bytes, gen, args) -> dict:
    """One fwd+bwd row: ``out.sum().backward()`` through ``hqf.quantum.gradients.expval``."""
    device = torch.device(backend.device)
    n_params, n_gates = circuit.n_params, len(circuit.operations)
    if method == "backprop" and (2 * n_gates + 2) * state_bytes > 0.6 * free_bytes(device):
        method = "parameter-shift"  # autograd would keep about two states per gate per sample
    cost = {"backprop": 3, "adjoint": 4, "parameter-shift": 2 * n_params + 1}[method]
    est_per_sample = per_sample * cost
    fit = min(batch, int(args.max_seconds / max(est_per_sample, 1e-12)))
    if method == "backprop":
        fit = min(fit, int(0.6 * free_bytes(device) / ((2 * n_gates + 2) * state_bytes)))
    row = {"mode": "fwd+bwd", "gradient": method}
    if fit < 1:
        return {**row, "skipped": f"estimated {est_per_sample:.0f} s per sample (> --max-seconds {args.max_seconds:g})"}
    chunk = max(1, int(0.4 * free_bytes(device) / (3 * state_bytes))) if method == "parameter-shift" else None
    angles = (torch.rand(fit, n_params, generator=gen, dtype=torch.float64) * 2 * math.pi).to(device)

    def step():
        a = angles.clone().requires_grad_(True)
        expval(backend, circuit, a, gradient=method, chunk=chunk).sum().backward()

    seconds = timed(step, device, args.min_seconds, max_reps=5, warmup=est_per_sample * fit < args.max_seconds / 4)
    return {**row, "batch": fit, "seconds": seconds, "samples_per_s": fit / seconds}


def batch_for(n_qubits: int, dtype: str, device: torch.device, cap: int) -> int:
    """256 for 8 qubits; otherwise what fits (4 working states per sample) in 40% of free memory."""
    itemsize = 16 if dtype == "complex128" else 8
    fits = int(0.4 * free_bytes(device) / (4 * 2**n_qubits * itemsize))
    return max(0, min(cap, fits))


# -- the run -------------------------------------------------------------------------------------
def environment(args) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
           "dtype": args.dtype, "quick": args.quick}  # fmt: skip
    for dist in (
        "cuquantum-python-cu13",
        "cuquantum-python-cu12",
        "cuquantum-python",
        "custatevec-cu13",
        "custatevec-cu12",
    ):
        try:
            env[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1))
    return env


def run(args) -> dict:
    env = environment(args)
    gpu = torch.cuda.is_available()
    cap = 32 if args.quick else 256
    sizes = args.qubits
    result: dict = {"environment": env, "layers": LAYERS, "rows": [], "bandwidth": {}}
    configs = [
        ("cuquantum", "cuda", "batched"),
        ("cuquantum", "cuda", "loop"),
        ("torch", "cuda", None),
        ("torch", "cpu", None),
    ]
    if gpu:
        measured = copy_bandwidth(torch.device("cuda"), 256 if args.quick else 2048)
        result["bandwidth"]["cuda"] = {
            "copy_bytes_per_s": measured,
            "datasheet_bytes_per_s": datasheet_peak(env["gpu"]),
        }
    result["bandwidth"]["cpu"] = {"copy_bytes_per_s": copy_bandwidth(torch.device("cpu"), 64 if args.quick else 512)}
    cpu_fwd_per_gate_byte = None
    for name, device, batching in configs:
        label = f"{name}-{device}" + (f" ({batching})" if batching else "")
        try:
            backend = build(name, device, args.dtype, batching)
        except (BackendUnavailableError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, BackendUnavailableError) else str(exc)
            for n in sizes:
                result["rows"].append({"backend": label, "qubits": n, "skipped": f"unavailable: {reason}"})
            continue
        for n in sizes:
            row = {"backend": label, "qubits": n}
            if batching == "loop" and n > 16:
                result["rows"].append({**row, "skipped": "per-state loop measured up to 16 qubits"})
                continue
            if device == "cpu" and n > CPU_MAX_QUBITS:
                reason = "hopeless on CPU"
                if cpu_fwd_per_gate_byte:
                    est = cpu_fwd_per_gate_byte * 2 * 2**n * (16 if args.dtype == "complex128" else 8) * 3 * n * LAYERS
                    reason += f": about {est:.1f} s per sample forward, extrapolated from the largest CPU row"
                result["rows"].append({**row, "skipped": reason})
                continue
            batch = 256 if n <= 8 else batch_for(n, args.dtype, torch.device(device), cap)
            batch = min(batch, cap)
            if device == "cpu" and n > 8:
                batch = min(batch, 4 if args.quick else 16)
            if batch < 1:
                result["rows"].append({**row, "skipped": "one sample does not fit in memory"})
                continue
            try:
                for r in measure(backend, n, batch, args):
                    result["rows"].append({**row, **r})
                    if device == "cpu" and r.get("mode") == "fwd":
                        cpu_fwd_per_gate_byte = r["seconds"] / r["bytes_moved"]
            except torch.cuda.OutOfMemoryError as exc:
                result["rows"].append({**row, "skipped": f"out of memory: {str(exc).splitlines()[0]}"})
                torch.cuda.empty_cache()
            print(f"  done: {label} {n} qubits", file=sys.stderr)
    for r in result["rows"]:
        if r.get("mode") == "fwd":
            peak = result["bandwidth"]["cuda" if "cuda" in r["backend"] else "cpu"]
            r["fraction_of_copy_bandwidth"] = r["achieved_bytes_per_s"] / peak["copy_bytes_per_s"]
            if peak.get("datasheet_bytes_per_s"):
                r["fraction_of_datasheet_bandwidth"] = r["achieved_bytes_per_s"] / peak["datasheet_bytes_per_s"]
    return result


def table(result: dict) -> str:
    env = result["environment"]
    head = [f"hea{{Q}}x{result['layers']}, {env['dtype']}, torch {env['torch']}, "
            f"{env.get('gpu', 'no CUDA GPU')}, CPU threads {env['cpu_threads']}"]  # fmt: skip
    for kind, bw in result["bandwidth"].items():
        text = f"{kind} copy bandwidth {bw['copy_bytes_per_s'] / 1e9:.0f} GB/s"
        if bw.get("datasheet_bytes_per_s"):
            text += f" (datasheet {bw['datasheet_bytes_per_s'] / 1e9:.0f} GB/s)"
        head.append(text)
    lines = [
        *head,
        "",
        f"{'backend':<26}{'Q':>3}  {'mode':<8}{'batch':>6}  {'samples/s':>11}  {'BW (copy / sheet)':<18} note",
    ]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(
                f"{r['backend']:<26}{r['qubits']:>3}  {r.get('mode', ''):<8}{'':>6}  {'—':>11}  {'':<18} {r['skipped']}"
            )
            continue
        bw = ""
        if "fraction_of_copy_bandwidth" in r:
            bw = f"{r['fraction_of_copy_bandwidth']:.0%}"
            if "fraction_of_datasheet_bandwidth" in r:
                bw += f" / {r['fraction_of_datasheet_bandwidth']:.0%}"
        note = r.get("gradient", "")
        lines.append(
            f"{r['backend']:<26}{r['qubits']:>3}  {r['mode']:<8}{r['batch']:>6}  "
            f"{r['samples_per_s']:>11.4g}  {bw:<18} {note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batches ≤ 32, short timings: a smoke run")
    parser.add_argument("--qubits", type=int, nargs="+", default=None, help="circuit sizes (default 8 16 20 24)")
    parser.add_argument("--dtype", choices=["complex128", "complex64"], default="complex128")
    parser.add_argument("--min-seconds", type=float, default=None, help="time each measurement at least this long")
    parser.add_argument("--max-seconds", type=float, default=None, help="cap on one fwd+bwd measurement's estimate")
    parser.add_argument("--json", default="gpu_bench.json", help="where to write the results (default gpu_bench.json)")
    args = parser.parse_args(argv)
    args.qubits = args.qubits or ([8, 16] if args.quick else [8, 16, 20, 24])
    args.min_seconds = args.min_seconds if args.min_seconds is not None else (0.05 if args.quick else 1.0)
    args.max_seconds = args.max_seconds if args.max_seconds is not None else (5.0 if args.quick else 30.0)
    result = run(args)
    print(table(result))
    with open(args.json, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
