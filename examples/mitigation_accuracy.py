"""How far error mitigation moves a trained model's test metrics back toward the noiseless ones.

Evaluates the model of a finished run (``hqf run --out RUN_DIR``) on the first ``--test-samples`` rows of its
own test split on one exact noisy backend (default ``ptm``): noiseless; under depolarizing ``p = 0.02`` and
``0.05`` without mitigation and with ZNE (global folding 1, 3, 5, Richardson); and under each readout model
(default ``depolarizing=0.02,readout=0.03``) without mitigation, with readout-error mitigation, with ZNE and
with both (``hqf.quantum.mitigation.MitigatedBackend``, as ``hqf evaluate --mitigate``). Prints a markdown
table (accuracy, macro-F1, NLL, the mean ``|⟨Z⟩|`` of the quantum layer's outputs and their mean distance
from the noiseless outputs) and writes it with a JSON of every number, the command, date, thread count
and machine load::

    hqf run --out /tmp/run --threads 1
    python examples/mitigation_accuracy.py /tmp/run --test-samples 2048 --threads 1 --out docs/reproducing/mitigation
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import time

import attrs
import numpy as np
import torch

from hqf.cli.evaluate_cmd import rows_per_batch
from hqf.learn.rundir.saved import load, run_dataset
from hqf.learn.training import metrics as M
from hqf.quantum.mitigation import parse_mitigation

GATE_NOISE = ("depolarizing=0.02", "depolarizing=0.05")
READOUT_NOISE = ("depolarizing=0.02,readout=0.03",)


def conditions(gate_noise: tuple[str, ...], readout_noise: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """``(noise, mitigate)`` pairs in table order; noise ``""`` is the noiseless reference."""
    rows: list[tuple[str, str | None]] = [("", None)]
    for noise in gate_noise:
        rows += [(noise, None), (noise, "zne")]
    for noise in readout_noise:
        rows += [(noise, None), (noise, "readout"), (noise, "zne"), (noise, "zne,readout")]
    return rows


def evaluate(run_dir: str, backend: str, noise: str, mitigate: str | None, x: np.ndarray, y: np.ndarray, threads: int):
    """Metrics of the run's model on ``(x, y)`` and its quantum layer's outputs ``[N, R]``."""
    trained = load(run_dir, backend=backend, noise=noise, mitigate=mitigate)
    layer = trained.model.quantum
    layer.backend.set_threads(threads)
    outputs = []
    hook = layer.register_forward_hook(lambda module, args, output: outputs.append(output.detach().cpu()))
    start = time.perf_counter()
    try:
        probs = trained.predict_proba(x, scaled=True, batch_size=rows_per_batch(trained.config))
    finally:
        hook.remove()
    seconds = time.perf_counter() - start
    metrics = M.classification_metrics(probs, y, len(trained.class_names))
    return {key: float(metrics[key]) for key in ("accuracy", "macro_f1", "nll", "ece")}, torch.cat(outputs), seconds


def table(results: list[dict]) -> str:
    """The markdown table of ``results``."""
    lines = [
        "| noise | mitigation | accuracy | macro-F1 | NLL | mean \\|⟨Z⟩\\| | mean \\|⟨Z⟩ − ⟨Z⟩₀\\| |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['noise'] or 'none'} | {r['mitigation'] or '—'} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} "
            f"| {r['nll']:.4f} | {r['mean_abs_z']:.4f} | {r['mean_abs_z_error']:.4f} |"
        )
    return "\n".join(lines)


def commit() -> str | None:
    """The git commit of the working tree, when there is one."""
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return found.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run's directory (hqf run --out …)")
    parser.add_argument("--test-samples", type=int, default=2048, help="the first N test rows [2048]")
    parser.add_argument("--backend", default="ptm", help="the exact noisy backend [ptm]")
    parser.add_argument("--gate-noise", nargs="*", default=list(GATE_NOISE), help="models evaluated with ZNE")
    parser.add_argument(
        "--readout-noise", nargs="*", default=list(READOUT_NOISE), help="models also evaluated with readout mitigation"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and simulator threads [1]")
    parser.add_argument("--out", type=pathlib.Path, help="folder to write results.json and table.md into")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    reference = load(args.run_dir, backend=args.backend, noise="")
    data = run_dataset(reference)
    x, y = data.test.x[: args.test_samples], data.test.y[: args.test_samples]  # z-scored as the run's
    results, noiseless = [], None
    for noise, mitigate in conditions(tuple(args.gate_noise), tuple(args.readout_noise)):
        metrics, outputs, seconds = evaluate(args.run_dir, args.backend, noise, mitigate, x, y, args.threads)
        noiseless = outputs if noiseless is None else noiseless
        row = dict(noise=noise, mitigation=mitigate, **metrics)
        row.update(
            mean_abs_z=float(outputs.abs().mean()),
            mean_abs_z_error=float((outputs - noiseless).abs().mean()),
        )
        results.append(row)
        print(f"{noise or 'none'} {mitigate or '-'}: {metrics} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    record = {
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "threads": args.threads,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "run_dir": str(args.run_dir),
        "run_config_toml": (pathlib.Path(args.run_dir) / "config.toml").read_text(),
        "backend": args.backend,
        "test_samples": int(len(y)),
        "zne": attrs.asdict(parse_mitigation("zne")[0]),
        "results": results,
    }
    text = table(results)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
        header = (
            f"Command: `{record['command']}` (model: the run in `{args.run_dir}`)\n\n"
            f"Date {record['date']}, commit {record['commit']}, {args.threads} thread(s), backend {args.backend}, "
            f"{record['test_samples']} test rows; load average (1, 5, 15 min) {record['load_average_before']} "
            f"before, {record['load_average_after']} after, on {record['cpu_count']} CPUs.\n\n"
        )
        (args.out / "table.md").write_text(header + text + "\n")


if __name__ == "__main__":
    main()
