"""One verdict per claim of seed 000, from the committed full-scale runs (docs/reproducing.md).

    python examples/reproduce/verdict.py docs/reproducing/full [--hybrid full] [--baseline adam]
        [--surrogate classical-surrogate] [--noise-trained docs/reproducing/full-noise]

Prints a Markdown table: per claim the hybrid's and Adam's means, the paired effect (hybrid − Adam,
by seed) with its 95% t-interval and relative change, Cohen's d_z, the paired t-test and Wilcoxon
p-values, the Holm-adjusted t-test p-value, the paper's own effect and whether our interval contains
it, whether the equal-parameter classical surrogate does as well as the hybrid, and the verdict under
the rules written in the protocol:

- holds: the claimed direction with Holm-adjusted p < 0.05, and the paper's effect inside our 95%
  interval;
- direction holds, size contradicted: the claimed direction with Holm-adjusted p < 0.05, the paper's
  effect outside our interval;
- contradicted: the opposite direction with Holm-adjusted p < 0.05;
- not supported at this budget: otherwise (marked when p < 0.05 before the correction), or the metric is
  undefined (no run reached eps).

The Holm family is the table's paired claims with a defined p-value (six on Dataset A). The surrogate
column compares the hybrid with the classical surrogate the same way (paired by seed, t-test, not
corrected): "yes" when the hybrid is better in the claimed direction with p < 0.05.

Latency <= 7.4 ms holds when the upper end of the hybrid's 95% interval is <= 7.4 ms. The gate-noise
claim holds when the 95% interval of the paired accuracy drop lies within +-1 percentage point, and is
contradicted when it lies wholly above 1 point; it is read twice: models trained without noise and
evaluated under it (same test rows), and models trained under the noise (the `--noise-trained` folder,
variants `<hybrid>-noise-p02`/`-p05`) evaluated under the same noise against the noiselessly trained
hybrid on the full test split, paired by seed.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

import numpy as np
import tomllib
from scipy import stats as sps

from hqf.studies.report import format_number, format_p
from hqf.studies.runs import group, load_runs
from hqf.studies.stats import holm, paired, summarize

ALPHA = 0.05
NOISE_MARGIN = 1.0  # percentage points
LATENCY_LIMIT_MS = 7.4


def input_noise_drop(sigma: float):
    """Accuracy minus accuracy under Gaussian input noise of this σ, on the whole test split (σ = 0.05
    from the run's metrics.json, others from RUN/evaluations/input_noise<σ>.json)."""

    def drop(metrics: dict, evaluations: dict) -> float | None:
        if sigma == 0.05:
            noisy = metrics.get("accuracy_input_noise")
        else:
            found = [e for e in evaluations.values() if e.get("input_noise") == sigma and not e.get("depolarizing")]
            noisy = found[0]["accuracy"] if found else None
        return None if noisy is None or metrics.get("accuracy") is None else metrics["accuracy"] - noisy

    return drop


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
    # Table III: accuracy under 2% and 5% noise for Adam (89.3 → 87.9, 82.4) and the hybrid (91.4 → 90.2,
    # 85.7), read as Gaussian input noise of σ = 0.02 and 0.05 on the z-scored features
    ("smaller accuracy drop under 2% input noise (σ = 0.02), points", input_noise_drop(0.02), 100, -1, ("abs", -0.2)),
    ("smaller accuracy drop under 5% input noise (σ = 0.05), points", input_noise_drop(0.05), 100, -1, ("abs", -1.2)),
)


def by_seed(runs, key, scale: float) -> dict[int, float]:
    """seed → the metric (a metrics.json key, or a function of the metrics and the evaluations) × scale."""
    out = {}
    for run in runs:
        value = key(run.metrics, run.evaluations) if callable(key) else run.metrics.get(key)
        out[run.seed] = math.nan if value is None else float(value) * scale
    return out


def _paired_effect(candidate: dict, baseline: dict):
    """(seeds, Summary of the differences, PairedTest), over the seeds both define."""
    seeds = sorted(s for s in candidate if s in baseline and math.isfinite(candidate[s]) and math.isfinite(baseline[s]))
    d = summarize(candidate[s] - baseline[s] for s in seeds)
    return seeds, d, paired({s: candidate[s] for s in seeds}, {s: baseline[s] for s in seeds})


def surrogate_cell(hybrid: dict, surrogate: dict | None, direction: int) -> str:
    """Is the effect quantum-specific? The hybrid against the equal-parameter classical surrogate."""
    if surrogate is None:
        return "— (no surrogate row)"
    seeds, d, test = _paired_effect(hybrid, surrogate)
    if len(seeds) < 2 or not math.isfinite(test.t_pvalue):
        return "n/a"
    better = test.t_pvalue < ALPHA and np.sign(d.mean) == direction
    answer = "yes" if better else "no"
    interval = f"{format_number(d.mean)} [{format_number(d.ci_low)}, {format_number(d.ci_high)}]"
    return f"{answer}: {interval}, p = {format_p(test.t_pvalue)}"


def label(direction: int, effect: float, adjusted_p: float, raw_p: float, paper_inside: bool) -> str:
    """The verdict under the protocol's rules (module docstring)."""
    if adjusted_p < ALPHA and np.sign(effect) == direction:
        return "**holds**" if paper_inside else "**direction holds, size contradicted**"
    if adjusted_p < ALPHA:
        return "**contradicted**"
    if raw_p < ALPHA:
        return "**not supported at this budget** (p < 0.05 before the Holm correction)"
    return "**not supported at this budget**"


def compare(claims, hybrid_runs, baseline_runs, surrogate_runs) -> list[list[str]]:
    """One row per claim: means, the paired effect and its interval, d_z, p-values (raw and Holm-adjusted
    over the defined claims), the paper's effect and whether the interval holds it, the surrogate, the
    verdict."""
    measured = []
    for claim, key, scale, direction, claimed in claims:
        hybrid, adam = by_seed(hybrid_runs, key, scale), by_seed(baseline_runs, key, scale)
        surrogate = None if surrogate_runs is None else by_seed(surrogate_runs, key, scale)
        seeds, d, test = _paired_effect(hybrid, adam)
        measured.append((claim, direction, claimed, hybrid, adam, surrogate, seeds, d, test))
    adjusted = holm([m[8].t_pvalue if len(m[6]) >= 2 else None for m in measured])
    rows = []
    for (claim, direction, claimed, hybrid, adam, surrogate, seeds, d, test), p_holm in zip(
        measured, adjusted, strict=True
    ):
        h, a = summarize(hybrid.values()), summarize(adam.values())
        if len(seeds) < 2:
            reached = f"{h.n}/{len(hybrid)} vs {a.n}/{len(adam)} runs defined"
            undefined = f"**not supported at this budget** (undefined: {reached})"
            rows.append([claim, format_number(h.mean), format_number(a.mean)] + ["n/a"] * 7 + [undefined])
            continue
        low, high = d.ci_low, d.ci_high
        relative = 100 * (np.mean([hybrid[s] for s in seeds]) / np.mean([adam[s] for s in seeds]) - 1)
        dz = d.mean / d.std if d.std > 0 else math.inf * np.sign(d.mean)
        kind, size = claimed
        paper = size * np.mean([adam[s] for s in seeds]) if kind == "rel" else size
        inside = low <= paper <= high
        rows.append(
            [
                claim,
                format_number(h.mean),
                format_number(a.mean),
                f"{format_number(d.mean)} [{format_number(low)}, {format_number(high)}] ({relative:+.1f}%)",
                format_number(dz, 2),
                f"{format_p(test.t_pvalue)} / {format_p(test.wilcoxon_pvalue)}",
                format_p(p_holm),
                str(len(seeds)),
                f"{format_number(paper)} ({'inside' if inside else 'outside'})",
                surrogate_cell(hybrid, surrogate, direction),
                label(direction, d.mean, p_holm, test.t_pvalue, inside),
            ]
        )
    return rows


def drop_row(claim: str, clean: dict, noisy: dict, what: str) -> list[str]:
    """The gate-noise claim from accuracies in points, seed → value: the paired drop clean − noisy."""
    seeds = sorted(set(clean) & set(noisy))
    if len(seeds) < 2:
        undefined = "**not supported at this budget** (not evaluated)"
        return [claim, *["n/a"] * 6, str(len(seeds)), "no loss", "—", undefined]
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
    return [
        claim,
        format_number(np.mean([noisy[s] for s in seeds])),
        format_number(np.mean([clean[s] for s in seeds])) + f" ({what})",
        f"drop {format_number(drop.mean)} pts [{format_number(low)}, {format_number(high)}]",
        "—",
        f"{format_p(test.pvalue)} (one-sample t)",
        "—",
        str(len(seeds)),
        "no loss",
        "—",
        verdict,
    ]


def noise_row(runs, p: float, rows_hint: str) -> list[str]:
    """Trained without noise, evaluated under it: the drop (p = 0 minus p) on the same test rows."""
    clean, noisy = {}, {}
    for run in runs:
        for e in run.evaluations.values():
            if e.get("input_noise"):
                continue
            if not e.get("depolarizing"):
                clean[run.seed] = 100 * float(e["accuracy"])
            elif abs(float(e["depolarizing"]) - p) < 1e-12:
                noisy[run.seed] = 100 * float(e["accuracy"])
    claim = f"no loss under {100 * p:g}% depolarizing gate noise, trained without it ({rows_hint})"
    return drop_row(claim, clean, noisy, "p = 0")


def trained_noise_row(hybrid_runs, noisy_runs, p: float) -> list[str]:
    """Trained and evaluated under the noise (full test split) against the hybrid trained and evaluated
    without it (the same test split), paired by seed."""
    claim = f"no loss under {100 * p:g}% depolarizing gate noise, trained under it (full test split)"
    clean = by_seed(hybrid_runs, "accuracy", 100)
    noisy = {} if noisy_runs is None else by_seed(noisy_runs, "accuracy", 100)
    return drop_row(claim, clean, noisy, "trained and tested without noise")


def latency_row(runs) -> list[str]:
    values = [float(r.metrics["latency_ms_batch1"]) for r in runs if r.metrics.get("latency_ms_batch1") is not None]
    s = summarize(values)
    claim = f"latency ≤ {LATENCY_LIMIT_MS} ms per instance (batch 1)"
    if s.n == 0:
        verdict = "**not supported at this budget** (not measured)"
        return [claim, "n/a", "—", "n/a", "—", "—", "—", "0", "7.4 ms", "—", verdict]
    verdict = (
        "**holds**"
        if s.ci_high <= LATENCY_LIMIT_MS
        else ("**contradicted**" if s.ci_low > LATENCY_LIMIT_MS else "**not supported at this budget**")
    )
    interval = f"{format_number(s.mean)} ms [{format_number(s.ci_low)}, {format_number(s.ci_high)}]"
    return [claim, interval, "—", "—", "—", "—", "—", str(s.n), "7.4 ms", "—", verdict]


def _setting(runs) -> set:
    """The (dataset, backbone) pairs the runs were trained on, from their config.toml."""
    pairs = set()
    for run in runs:
        config = tomllib.loads((run.directory / "config.toml").read_text())
        pairs.add((config.get("dataset"), config.get("backbone")))
    return pairs


def _groups(folder: pathlib.Path) -> dict:
    return {g.variant: g for g in group(load_runs([folder]).runs) if not g.axes}


def verdicts(
    folder: pathlib.Path,
    hybrid: str = "full",
    baseline: str = "adam",
    surrogate: str = "classical-surrogate",
    noise_trained: pathlib.Path | None = None,
) -> str:
    groups = _groups(folder)
    if hybrid not in groups or baseline not in groups:
        raise SystemExit(f"error: {folder} has no finished runs of both {hybrid!r} and {baseline!r} yet")
    h, a = groups[hybrid].runs, groups[baseline].runs
    s = groups[surrogate].runs if surrogate in groups else None
    if s is not None and _setting(s) != _setting(h):  # a surrogate of another dataset or backbone
        s = None
    header = [
        "claim of seed 000",
        hybrid,
        baseline,
        "effect: hybrid − Adam [95% CI] (relative)",
        "d_z",
        "p (paired t / Wilcoxon)",
        "p, Holm-adjusted",
        "pairs",
        "paper's effect (in our 95% CI?)",
        f"quantum-specific? hybrid − {surrogate} [95% CI], p",
        "verdict",
    ]
    rows = compare(CLAIMS, h, a, s)
    stems = {e.get("test_samples") for r in h for e in r.evaluations.values() if not e.get("input_noise")}
    hint = ", ".join(f"{n:,} test rows" for n in sorted(x for x in stems if x)) or "no evaluations"
    noisy_groups = _groups(noise_trained) if noise_trained is not None and noise_trained.is_dir() else {}
    for p in (0.02, 0.05):
        rows.append(noise_row(h, p, hint))
        trained = noisy_groups.get(f"{hybrid}-noise-p{round(100 * p):02d}")
        rows.append(trained_noise_row(h, None if trained is None else trained.runs, p))
    rows.append(latency_row(h))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


#: claims outside Tables I-III, read from examples/reproduce/claims.py's summary.json: (claim, key, direction,
#:  the paper's effect, whether the reading is the primary one the verdict uses)
OTHER_CLAIMS = (
    (
        "calibration-slope error 0.072 → 0.046 (top-label Cox slope b, error = distance of b from 1)",
        "calibration_slope_error",
        -1,
        ("abs", -0.026),
        True,
    ),
    ("Hessian trace estimate −22% (Hutchinson trace of the training loss)", "hessian_trace", -1, ("rel", -0.22), True),
    ("(another reading) multinomial calibration slope error", "temperature_slope_error", -1, ("abs", -0.026), False),
    (
        "(another reading) Hessian anisotropy, top eigenvalue / mean eigenvalue",
        "hessian_anisotropy",
        -1,
        ("rel", -0.22),
        False,
    ),
)


def other_claims(summary: dict) -> str:
    """The claims outside Tables I-III: the paired effect (hybrid − Adam, by seed) from claims.py's summary,
    Holm-adjusted over the primary readings; the other readings are shown without a verdict."""
    primary = [summary[key]["difference"]["t_p"] for _, key, _, _, first in OTHER_CLAIMS if first]
    adjusted = iter(holm(primary))
    header = [
        "claim of seed 000",
        "full",
        "adam",
        "effect: hybrid − Adam [95% CI] (relative)",
        "p (paired t)",
        "p, Holm-adjusted",
        "paper's effect (in our 95% CI?)",
        "verdict",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for claim, key, direction, (kind, size), first in OTHER_CLAIMS:
        entry = summary[key]
        d, adam = entry["difference"], entry["adam"]["mean"]
        low, high = d["ci95"]
        paper = size * adam if kind == "rel" else size
        inside = low <= paper <= high
        p_holm = next(adjusted) if first else math.nan
        verdict = label(direction, d["mean"], p_holm, d["t_p"], inside) if first else "— (not the primary reading)"
        effect = f"{format_number(d['mean'])} [{format_number(low)}, {format_number(high)}] "
        effect += f"({100 * entry['relative_change']:+.1f}%)"
        row = [
            claim,
            format_number(entry["full"]["mean"]),
            format_number(adam),
            effect,
            format_p(d["t_p"]),
            format_p(p_holm) if first else "—",
            f"{format_number(paper)} ({'inside' if inside else 'outside'})",
            verdict,
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


FIGURE5_LIMIT_MS = 9.0


def _axis_groups(folder: pathlib.Path, variant: str, axis: str) -> dict:
    """axis value → seed → run, for the runs of ``variant`` along ``axis``."""
    out: dict = {}
    for g in group(load_runs([folder]).runs):
        if g.variant == variant and len(g.axes) == 1 and g.axes[0][0] == axis:
            out[float(g.axes[0][1])] = {r.seed: r for r in g.runs}
    return out


def _decline(runs_by_ratio: dict, low: float, high: float) -> dict[int, float]:
    """seed → macro-F1 at 1:low minus macro-F1 at 1:high, in points."""
    a, b = runs_by_ratio.get(low, {}), runs_by_ratio.get(high, {})
    return {s: 100 * (a[s].metrics["macro_f1"] - b[s].metrics["macro_f1"]) for s in sorted(set(a) & set(b))}


def figure_rows(folder: pathlib.Path) -> str:
    """Figures 3 and 5 from the addendum's runs (examples/reproduce/seed000-figures.toml)."""
    header = [
        "claim of seed 000",
        "full",
        "adam",
        "effect: hybrid − Adam [95% CI]",
        "p (paired t)",
        "pairs",
        "paper's effect (in our 95% CI?)",
        "verdict",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    hybrid = _decline(_axis_groups(folder, "full-imbalance", "imbalance"), 2.0, 10.0)
    adam = _decline(_axis_groups(folder, "adam-imbalance", "imbalance"), 2.0, 10.0)
    claim = "Fig. 3: macro-F1 falls less from 1:2 to 1:10 (hybrid 3.8, classical 6.3 points)"
    seeds, d, test = _paired_effect(hybrid, adam)
    if len(seeds) < 2:
        lines.append(f"| {claim} | — | — | — | — | {len(seeds)} | -2.5 | **running** |")
    else:
        inside = d.ci_low <= -2.5 <= d.ci_high
        row = [
            claim,
            f"{format_number(np.mean([hybrid[s] for s in seeds]))} pts",
            f"{format_number(np.mean([adam[s] for s in seeds]))} pts",
            f"{format_number(d.mean)} [{format_number(d.ci_low)}, {format_number(d.ci_high)}]",
            format_p(test.t_pvalue),
            str(len(seeds)),
            f"-2.5 ({'inside' if inside else 'outside'})",
            label(-1, d.mean, test.t_pvalue, test.t_pvalue, inside),
        ]
        lines.append("| " + " | ".join(row) + " |")
    at512 = _axis_groups(folder, "full-latency", "features").get(512.0, {})
    values = summarize(float(r.metrics["latency_ms_batch1"]) for r in at512.values())
    claim = f"Fig. 5: latency < {FIGURE5_LIMIT_MS:g} ms per instance at 512 features"
    if values.n < 2:
        lines.append(f"| {claim} | — | — | — | — | {values.n} | {FIGURE5_LIMIT_MS:g} ms | **running** |")
    else:
        verdict = (
            "**holds**"
            if values.ci_high < FIGURE5_LIMIT_MS
            else ("**contradicted**" if values.ci_low >= FIGURE5_LIMIT_MS else "**not supported at this budget**")
        )
        interval = f"{format_number(values.mean)} ms [{format_number(values.ci_low)}, {format_number(values.ci_high)}]"
        lines.append(f"| {claim} | {interval} | — | — | — | {values.n} | {FIGURE5_LIMIT_MS:g} ms | {verdict} |")
    return "\n".join(lines)


PAIRS = (("full", "adam"), ("full-b", "adam-b"), ("full-transformer", "adam-transformer"))


def paste(document: pathlib.Path, folder: pathlib.Path, claims: pathlib.Path, noise_trained: pathlib.Path) -> None:
    """Write the tables into docs/reproducing.md: the other claims' table after its lead-in, the three verdict
    tables inside the full-results block (tests/test_verdict.py checks they are what this prints)."""
    text = document.read_text()

    def put(text: str, start: int, head: str, table: str) -> str:
        i = text.index(head, start)
        return text[:i] + table + text[text.index("\n\n", i) :]

    other = other_claims(json.loads(claims.read_text()))
    lead = text.index("prints the table, Holm-adjusted over its two primary readings):")
    text = put(text, lead, "| claim of seed 000 |", other)
    block = text.index("<!-- full-results:begin")
    for hybrid, baseline in PAIRS:
        table = verdicts(folder, hybrid, baseline, noise_trained=noise_trained)
        text = put(text, block, f"| claim of seed 000 | {hybrid} | {baseline} |", table)
    document.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--hybrid", default="full")
    parser.add_argument("--baseline", default="adam")
    parser.add_argument("--surrogate", default="classical-surrogate")
    parser.add_argument(
        "--noise-trained", type=pathlib.Path, default=None, help="runs trained under noise [default: FOLDER-noise]"
    )
    parser.add_argument(
        "--claims", type=pathlib.Path, default=None, help="claims.py's summary.json: print the other claims' table"
    )
    parser.add_argument("--figures", type=pathlib.Path, default=None, help="print Figures 3 and 5 from this folder")
    parser.add_argument("--paste", type=pathlib.Path, default=None, help="write every table into this document")
    args = parser.parse_args()
    noise_trained = args.noise_trained or args.folder.with_name(args.folder.name + "-noise")
    if args.paste is not None:
        claims = args.claims or args.folder.with_name("claims") / "summary.json"
        paste(args.paste, args.folder, claims, noise_trained)
        return 0
    if args.figures is not None:
        print(figure_rows(args.figures))
        return 0
    if args.claims is not None:
        print(other_claims(json.loads(args.claims.read_text())))
        return 0
    print(verdicts(args.folder, args.hybrid, args.baseline, args.surrogate, noise_trained))
    return 0


if __name__ == "__main__":
    sys.exit(main())
