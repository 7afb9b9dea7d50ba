"""Run directories: the files of a finished run, moved in from a hidden folder inside it, metrics.json last.

Layout (see docs/method.md and docs/reliability.md): ``config.toml``, ``meta.json``, ``metrics.json``,
``curves.csv``, ``epochs.csv``, ``convergence.png``, ``model.safetensors``; while the run is alive,
:mod:`hqf.learn.rundir.lifecycle` keeps its status, lock and checkpoint there too. A directory that exists and
is not empty is never written into by a fresh run.
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
from hqf.learn.training import plotting


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
    """Refuse an existing non-empty directory, a path that is a file, or one under a file (ConfigError)."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"output path {out}: {parent} exists and is not a directory")
            break
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"output directory {out} exists and is not empty; choose another --out (nothing was written)")


@contextlib.contextmanager
def finish_into(out: str | pathlib.Path, last: str = "metrics.json") -> Iterator[pathlib.Path]:
    """Yield a hidden folder inside the existing run directory ``out``; on success each file written
    there is fsync-ed and renamed into ``out``, ``last`` after all others (a run counts as finished
    when its metrics.json parses); on error the folder is removed. Nothing is written beside ``out``."""
    out = pathlib.Path(out)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".finishing-", dir=out))
    try:
        yield tmp
        items = sorted(tmp.iterdir(), key=lambda item: item.name == last)
        for item in items:
            if item.is_file():
                with open(item, "rb") as handle:
                    os.fsync(handle.fileno())
            target = out / item.name
            if item.is_dir() and target.is_dir():
                shutil.rmtree(target)  # a folder of an earlier attempt (a resumed run)
            os.replace(item, target)
        tmp.rmdir()
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
            writer.writerow(
                ["" if isinstance(v, float) and not math.isfinite(v) else v for v in (row.get(c) for c in columns)]
            )


def plot_convergence(
    path: pathlib.Path, curves: Mapping[str, Sequence[float]], evals: Sequence[Mapping], eps: float, title: str
) -> None:
    """Loss (total, CE, validation) and gradient norm (raw, smoothed, ε) against iteration.

    Each value axis is linear unless its values span a decade or more (:func:`hqf.learn.training.plotting.value_axis`:
    then log with 1-2-5 ticks); the gradient axis includes ε, so the target line is always in view.
    """
    plt = plotting.pyplot()
    steps = np.asarray(curves["step"], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    losses: list[float] = []
    if steps.size:
        left.plot(steps, curves["loss"], lw=0.9, label="L_total (mini-batch)")
        left.plot(steps, curves["loss_ce"], lw=0.9, alpha=0.8, label="L_ce (mini-batch)")
        losses += [*curves["loss"], *curves["loss_ce"]]
    val = [(row["step"], row["val_loss"]) for row in evals if math.isfinite(row["val_loss"])]
    if val:
        left.plot(*zip(*val), "o-", color="black", ms=4, lw=1.2, label="validation L_ce")
        losses += [v for _, v in val]
    left.set_title("Loss", fontsize=plotting.LABEL_SIZE)
    plotting.value_axis(left, losses, "loss")
    norms: list[float] = []
    if steps.size:
        right.plot(steps, curves["grad_norm"], lw=0.7, alpha=0.5, label="‖∇L_total‖₂ (mini-batch)")
        right.plot(steps, curves["grad_norm_ema"], lw=1.4, label="smoothed (EMA, bias-corrected)")
        norms += [*curves["grad_norm"], *curves["grad_norm_ema"]]
    if eps > 0:
        right.axhline(eps, color="red", ls="--", lw=1, label=f"ε = {eps:g}")
        norms.append(eps)
    right.set_title("Gradient norm", fontsize=plotting.LABEL_SIZE)
    plotting.value_axis(right, norms, "gradient norm")
    for ax in (left, right):
        ax.set_xlabel("iteration (optimizer step)")
        plotting.finish(ax)
    fig.suptitle(title, fontsize=plotting.LABEL_SIZE)
    plotting.save(fig, path)
