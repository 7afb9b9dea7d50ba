"""Run directories: written atomically (a temporary sibling folder renamed into place at the end).

Layout (see docs/method.md): ``config.toml``, ``meta.json``, ``metrics.json``, ``curves.csv``,
``epochs.csv``, ``convergence.png``. A directory that exists and is not empty is never written into.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import math
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from hqf.errors import ConfigError


def default_run_dir(root: str | pathlib.Path = "runs") -> pathlib.Path:
    """``runs/<UTC timestamp>`` (``-2``, ``-3``… appended if taken)."""
    root = pathlib.Path(root)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate, k = root / stamp, 1
    while candidate.exists():
        k += 1
        candidate = root / f"{stamp}-{k}"
    return candidate


def check_writable(out: pathlib.Path) -> None:
    """Refuse an existing non-empty directory, or a path that is a file (ConfigError)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"output directory {out} exists and is not empty; choose another --out (nothing was written)")


@contextlib.contextmanager
def atomic_dir(out: str | pathlib.Path) -> Iterator[pathlib.Path]:
    """Yield a temporary folder next to ``out``; on success rename it to ``out``, on error remove it."""
    out = pathlib.Path(out)
    check_writable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        check_writable(out)  # something may have appeared meanwhile: keep it, keep ours aside
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean(value):
    """JSON-safe: NaN and infinities become None (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def write_json(path: pathlib.Path, data: Mapping) -> None:
    path.write_text(json.dumps(clean(dict(data)), indent=1, allow_nan=False) + "\n")


def write_csv(path: pathlib.Path, columns: Sequence[str], rows: Sequence[Mapping]) -> None:
    """One header line, then rows; non-finite floats are written as empty cells."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if isinstance(v, float) and not math.isfinite(v) else v for v in (row.get(c) for c in columns)])


def plot_convergence(path: pathlib.Path, curves: Mapping[str, Sequence[float]], evals: Sequence[Mapping], eps: float, title: str) -> None:
    """Loss (total, CE, validation) and gradient norm (raw, smoothed, ε) against iteration, log y."""
    import matplotlib  # at use: matplotlib takes ~0.5 s to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray(curves["step"], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if steps.size:
        left.plot(steps, curves["loss"], lw=0.9, label="L_total (mini-batch)")
        left.plot(steps, curves["loss_ce"], lw=0.9, alpha=0.8, label="L_ce (mini-batch)")
    val = [(row["step"], row["val_loss"]) for row in evals if math.isfinite(row["val_loss"])]
    if val:
        left.plot(*zip(*val), "o-", color="black", ms=4, lw=1.2, label="validation L_ce")
    left.set(title="Loss", xlabel="iteration (optimizer step)", ylabel="loss", yscale="log")
    if steps.size:
        right.plot(steps, curves["grad_norm"], lw=0.7, alpha=0.5, label="‖∇L_total‖₂ (mini-batch)")
        right.plot(steps, curves["grad_norm_ema"], lw=1.4, label="smoothed (EMA, bias-corrected)")
    if eps > 0:
        right.axhline(eps, color="red", ls="--", lw=1, label=f"ε = {eps:g}")
    right.set(title="Gradient norm", xlabel="iteration (optimizer step)", ylabel="gradient norm", yscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
