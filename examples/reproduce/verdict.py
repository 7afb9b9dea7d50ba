"""One verdict per claim of seed 000, from the committed full-scale runs (docs/reproducing.md).

    python examples/reproduce/verdict.py docs/reproducing/full [--hybrid full] [--baseline adam]

Prints a Markdown table: per claim the hybrid's and Adam's means, the paired effect (hybrid − Adam,
by seed) with its 95% t-interval and relative change, Cohen's d_z, the paired t-test and Wilcoxon
p-values, the paper's own effect and whether our interval contains it, and the verdict under the
rules written in the protocol (the verdict reads the direction; the paper's size is shown beside it):

- holds: the claimed direction with paired t-test p < 0.05;
- contradicted: the opposite direction with p < 0.05;
- not supported at this budget: otherwise, or the metric is undefined (no run reached eps).

Latency <= 7.4 ms holds when the upper end of the hybrid's 95% interval is <= 7.4 ms. The gate-noise
claim holds when the 95% interval of the paired accuracy drop at p = 0.02 (same test rows, same
runs) lies within +-1 percentage point, and is contradicted when it lies wholly above 1 point.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

import numpy as np
from scipy import stats as sps

from hqf.studies.report import format_number, format_p
from hqf.studies.runs import group, load_runs
from hqf.studies.stats import paired, summarize

ALPHA = 0.05
NOISE_MARGIN = 1.0  # percentage points
LATENCY_LIMIT_MS = 7.4

#: (claim, metrics.json key, scale, the direction the paper claims: -1 lower, +1 higher,
#:  the paper's effect: ("rel", fraction of Adam's mean) or ("abs", hybrid − Adam), from its Tables I-III)
CLAIMS = (
    ("34.7% fewer iterations to ε (mini-batch, smoothed)", "iterations_to_eps", 1, -1, ("rel", -0.347)),
    ("34.7% fewer iterations to ε (full batch, 8,192 rows)", "iterations_to_eps_full", 1, -1, ("rel", -0.347)),
    (
        "(surrogate for the above) fewer iterations to val. loss within 1% of best",
        "iterations_to_val_within_1pct",
        1,
        -1,
        ("rel", -0.347),
    ),
    ("21.3% less wall time (training, same stopping rule)", "wall_time_s", 1, -1, ("rel", -0.213)),
    ("macro-F1 0.914 vs 0.882", "macro_f1", 1, +1, ("abs", 0.032)),
    ("accuracy 91.4% vs 89.3%", "accuracy", 100, +1, ("abs", 2.1)),
    ("ECE 0.032 vs 0.041", "ece", 1, -1, ("abs", -0.009)),
    ("VAI −18.5%", "variance_amplification_index", 1, -1, ("rel", -0.185)),
)


def by_seed(runs, key: str, scale: float) -> dict[int, float]:
    out = {}
    for run in runs:
        value = run.metrics.get(key)
        out[run.seed] = math.nan if value is None else float(value) * scale
    return out


def compare(claim: str, hybrid: dict, adam: dict, direction: int, claimed: tuple[str, float]) -> list[str]:
    """One row: means, the paired effect and its interval, d_z, p-values, the paper's effect and
    whether the interval holds it, the verdict."""
    seeds = sorted(s for s in hybrid if s in adam and math.isfinite(hybrid[s]) and math.isfinite(adam[s]))
    h, a = summarize(hybrid.values()), summarize(adam.values())
    reached = f"{h.n}/{len(hybrid)} vs {a.n}/{len(adam)} runs defined"
    if len(seeds) < 2:
        return [
            claim,
            format_number(h.mean),
            format_number(a.mean),
            "n/a",
            "n/a",
            "n/a",
            "n/a",
            "n/a",
            f"**not supported at this budget** (undefined: {reached})",
        ]
    d = summarize(hybrid[s] - adam[s] for s in seeds)
    low, high = d.ci_low, d.ci_high
    test = paired({s: hybrid[s] for s in seeds}, {s: adam[s] for s in seeds})
    relative = 100 * (np.mean([hybrid[s] for s in seeds]) / np.mean([adam[s] for s in seeds]) - 1)
    dz = d.mean / d.std if d.std > 0 else math.inf * np.sign(d.mean)
    if test.t_pvalue < ALPHA and np.sign(d.mean) == direction:
        verdict = "**holds**"
    elif test.t_pvalue < ALPHA:
        verdict = "**contradicted**"
    else:
        verdict = "**not supported at this budget**"
    kind, size = claimed
    paper = size * np.mean([adam[s] for s in seeds]) if kind == "rel" else size
    inside = "inside" if low <= paper <= high else "outside"
    effect = f"{format_number(d.mean)} [{format_number(low)}, {format_number(high)}] ({relative:+.1f}%)"
    p_values = f"{format_p(test.t_pvalue)} / {format_p(test.wilcoxon_pvalue)}"
    return [
        claim,
        format_number(h.mean),
        format_number(a.mean),
        effect,
        format_number(dz, 2),
        p_values,
        str(len(seeds)),
        f"{format_number(paper)} ({inside})",
        verdict,
    ]


def noise_row(runs, p: float, rows_hint: str) -> list[str]:
    """The gate-noise claim: paired drop (p = 0 minus p) on the same test rows, in points."""
    clean, noisy = {}, {}
    for run in runs:
        for e in run.evaluations.values():
            if e.get("input_noise"):
                continue
            if not e.get("depolarizing"):
                clean[run.seed] = 100 * float(e["accuracy"])
            elif abs(float(e["depolarizing"]) - p) < 1e-12:
                noisy[run.seed] = 100 * float(e["accuracy"])
    seeds = sorted(set(clean) & set(noisy))
    claim = f"no loss under {100 * p:g}% depolarizing gate noise ({rows_hint})"
    if len(seeds) < 2:
        return [
            claim,
            "n/a",
            "n/a",
            "n/a",
            "n/a",
            "n/a",
            str(len(seeds)),
            "no loss",
            "**not supported at this budget** (not evaluated)",
        ]
    differences = [clean[s] - noisy[s] for s in seeds]
    drop = summarize(differences)
    low, high = drop.ci_low, drop.ci_high
    test = sps.ttest_1samp(differences, 0.0)
    if -NOISE_MARGIN <= low and high <= NOISE_MARGIN:
        verdict = "**holds**"
    elif low > NOISE_MARGIN:
        verdict = "**contradicted**"
    else:
        verdict = "**not supported at this budget**"
    noisy_mean = format_number(np.mean([noisy[s] for s in seeds]))
    clean_mean = format_number(np.mean([clean[s] for s in seeds])) + " (p = 0)"
    effect = f"drop {format_number(drop.mean)} pts [{format_number(low)}, {format_number(high)}]"
    return [
        claim,
        noisy_mean,
        clean_mean,
        effect,
        "—",
        f"{format_p(test.pvalue)} (one-sample t)",
        str(len(seeds)),
        "no loss",
        verdict,
    ]


def latency_row(runs) -> list[str]:
    values = [float(r.metrics["latency_ms_batch1"]) for r in runs if r.metrics.get("latency_ms_batch1") is not None]
    s = summarize(values)
    claim = f"latency ≤ {LATENCY_LIMIT_MS} ms per instance (batch 1)"
    if s.n == 0:
        return [claim, "n/a", "—", "n/a", "—", "—", "0", "7.4 ms", "**not supported at this budget** (not measured)"]
    verdict = (
        "**holds**"
        if s.ci_high <= LATENCY_LIMIT_MS
        else ("**contradicted**" if s.ci_low > LATENCY_LIMIT_MS else "**not supported at this budget**")
    )
    interval = f"{format_number(s.mean)} ms [{format_number(s.ci_low)}, {format_number(s.ci_high)}]"
    return [claim, interval, "—", "—", "—", "—", str(s.n), "7.4 ms", verdict]


def verdicts(folder: pathlib.Path, hybrid: str = "full", baseline: str = "adam") -> str:
    loaded = load_runs([folder])
    groups = {g.variant: g for g in group(loaded.runs) if not g.axes}
    if hybrid not in groups or baseline not in groups:
        raise SystemExit(f"error: {folder} has no finished runs of both {hybrid!r} and {baseline!r} yet")
    h, a = groups[hybrid].runs, groups[baseline].runs
    header = [
        "claim of seed 000",
        hybrid,
        baseline,
        "effect: hybrid − Adam [95% CI] (relative)",
        "d_z",
        "p (paired t / Wilcoxon)",
        "pairs",
        "paper's effect (in our 95% CI?)",
        "verdict",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for claim, key, scale, direction, claimed in CLAIMS:
        lines.append(
            "| " + " | ".join(compare(claim, by_seed(h, key, scale), by_seed(a, key, scale), direction, claimed)) + " |"
        )
    stems = {e.get("test_samples") for r in h for e in r.evaluations.values()}
    hint = ", ".join(f"{n:,} test rows" for n in sorted(x for x in stems if x)) or "no evaluations"
    for p in (0.02, 0.05):
        lines.append("| " + " | ".join(noise_row(h, p, hint)) + " |")
    lines.append("| " + " | ".join(latency_row(h)) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--hybrid", default="full")
    parser.add_argument("--baseline", default="adam")
    args = parser.parse_args()
    print(verdicts(args.folder, args.hybrid, args.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
