"""The report's figures (PNG), each readable on its own: title, labelled axes, legend.

Each function returns False (and draws nothing) when the runs hold no data for it.
"""

from __future__ import annotations

import csv
import math
import pathlib
from collections.abc import Sequence

import numpy as np

from hqf.errors import ConfigError
from hqf.learn.training.plotting import finish, pyplot, save, value_axis
from hqf.studies.stats import summarize

#: columns of a run's curves.csv (one row per optimizer step) that Figure 2 reads
CURVE_STEP, CURVE_LOSS, CURVE_GRAD = "step", "loss", "grad_norm"
#: metrics.json entry with the reliability-diagram bins: {"confidence": [...], "accuracy": [...], "count": [...]}
RELIABILITY = "reliability"


def read_curve(directory: pathlib.Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one column of ``curves.csv`` (empty arrays when absent); a file that is not CSV
    text, or a step or value that is not a number, is a ConfigError naming the file, line and column."""
    path = directory / "curves.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return np.array([]), np.array([])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: not a CSV file ({exc}); fix or leave out that run") from None
    pairs = []
    for line, row in enumerate(rows, start=2):  # line 1: the header
        if row.get(column) in (None, "", "nan"):
            continue
        pairs.append((_number(row, CURVE_STEP, path, line), _number(row, column, path, line)))
    if not pairs:
        return np.array([]), np.array([])
    steps, values = map(np.asarray, zip(*pairs))
    return steps, values


def _number(row: dict, column: str, path: pathlib.Path, line: int) -> float:
    text = row.get(column)
    try:
        return float(text)
    except (TypeError, ValueError):
        shown = "nothing" if text is None else repr(text if len(text) <= 40 else text[:40] + "…")
        raise ConfigError(
            f"{path}: line {line}, column {column!r}: {shown} is not a number; fix or leave out that run"
        ) from None


def seed_band(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds at the steps all seeds reached (steps, mean, std)."""
    curves = [c for c in curves if c[0].size]
    if not curves:
        return np.array([]), np.array([]), np.array([])
    length = min(c[0].size for c in curves)
    steps = curves[0][0][:length]
    stack = np.stack([c[1][:length] for c in curves])
    return steps, stack.mean(axis=0), stack.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(length)


def convergence(groups, path: pathlib.Path) -> bool:
    """Figure 2: training loss and gradient norm against iteration, mean ± std band over seeds."""
    bands = [
        (g, [seed_band([read_curve(r.directory, column) for r in g.runs]) for column in (CURVE_LOSS, CURVE_GRAD)])
        for g in groups
    ]  # every file read before a figure is opened
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4))
    drawn = False
    plotted: tuple[list, list] = ([], [])
    for g, both in bands:
        for ax, (steps, mean, std), values in zip(axes, both, plotted):
            if not steps.size:
                continue
            drawn = True
            values += [*(mean - std), *(mean + std)]
            (line,) = ax.plot(steps, mean, label=f"{g.label} (n={len(g.runs)})", lw=1.4)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.18)
    if not drawn:
        plt.close(fig)
        return False
    axes[0].set(title="Fig. 2a: training loss (mean ± std over seeds)", xlabel="iteration (optimizer step)")
    axes[1].set(title="Fig. 2b: gradient norm ‖∇L_total‖₂", xlabel="iteration (optimizer step)")
    value_axis(axes[0], plotted[0], "L_total")
    value_axis(axes[1], plotted[1], "gradient norm")
    for ax in axes:
        finish(ax)
    save(fig, path)
    return True


def _by_axis(groups, axis: str, role: str, scale: float = 1.0):
    """variant -> sorted [(axis value, mean, std)]."""
    lines: dict[str, list] = {}
    for g in groups:
        axes = dict(g.axes)
        if axis not in axes:
            continue
        s = summarize([r.value(role) * scale for r in g.runs])
        if s.n:
            lines.setdefault(g.variant, []).append((float(axes[axis]), s.mean, 0.0 if s.n < 2 else s.std))
    return {k: sorted(v) for k, v in lines.items()}


def _errorbar_figure(lines: dict, path: pathlib.Path, ylabel: str, **labels) -> bool:
    """One line per variant, mean ± std over seeds against an axis value; False when there is nothing."""
    if not lines:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    values = []
    for variant, pts in lines.items():
        x, m, s = map(np.asarray, zip(*pts))
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=variant)
        values += [*m]
    ax.set(**labels)
    value_axis(ax, values, ylabel)
    finish(ax)
    save(fig, path)
    return True


def imbalance(groups, axis: str, path: pathlib.Path) -> bool:
    """Figure 3: macro-F1 against the majority:minority ratio (mean ± std over seeds)."""
    return _errorbar_figure(
        _by_axis(groups, axis, "macro_f1"),
        path,
        "macro-F1 (test)",
        title="Fig. 3: macro-F1 vs class imbalance",
        xlabel="majority : minority ratio (1:k, k shown)",
    )


def reliability(groups, path: pathlib.Path) -> bool:
    """Figure 4: reliability diagram — accuracy against confidence per bin, pooled over seeds — above
    the number of test samples in each bin."""
    plt = pyplot()
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(6.0, 7.0), sharex=True, gridspec_kw={"height_ratios": (3, 1.2)})
    drawn, counted = 0, []  # groups drawn so far, every bin count drawn
    width = 0.8 / max(1, len(groups))
    for g in groups:
        conf_sum, acc_sum, count = None, None, None
        for r in g.runs:
            bins = r.metrics.get(RELIABILITY)
            if not bins:
                continue
            n = np.asarray(bins["count"], dtype=float)
            c = np.nan_to_num(np.asarray(bins["confidence"], dtype=float)) * n
            a = np.nan_to_num(np.asarray(bins["accuracy"], dtype=float)) * n
            conf_sum, acc_sum, count = (c, a, n) if count is None else (conf_sum + c, acc_sum + a, count + n)
        if count is None:
            continue
        keep = count > 0
        (line,) = ax.plot(
            conf_sum[keep] / count[keep], acc_sum[keep] / count[keep], "o-", ms=4, label=f"{g.label} (n={len(g.runs)})"
        )
        n_bins = len(count)  # group k's bar sits in its slot of each bin's middle 80%
        left_edges = (np.arange(n_bins) + 0.1 + drawn * width) / n_bins
        counts.bar(left_edges, count, width=width / n_bins, color=line.get_color(), alpha=0.7, align="edge")
        drawn += 1
        counted += [*count]
    if not drawn:
        plt.close(fig)
        return False
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(title="Fig. 4: reliability diagram (test set, seeds pooled)", xlim=(0, 1), ylim=(0, 1))
    ax.set_ylabel("accuracy (bin)")
    counts.set(xlabel="mean predicted confidence (bin)")
    value_axis(counts, counted, "samples per bin")
    for panel in (ax, counts):
        finish(panel)
    save(fig, path)
    return True


def latency(groups, axis: str, path: pathlib.Path) -> bool:
    """Figure 5: inference latency per instance against the input feature dimension."""
    return _errorbar_figure(
        _by_axis(groups, axis, "latency"),
        path,
        "latency per instance (ms, batch 1)",
        title="Fig. 5: inference latency vs feature dimension",
        xlabel="input features",
    )


def finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]
