"""Aggregate run directories into the seed paper's tables (Markdown + CSV) and figures (PNG).

Runs are grouped by variant and axis values (everything but the seed). Each metric of a group is
summarized over its seeds (:func:`hqf.studies.stats.summarize`: mean ± sample std, 95% t-interval) and
compared with the *baseline* group — the baseline variant at the same axis values — by paired tests
matched by seed (:func:`hqf.studies.stats.paired`: ``ttest_rel`` and ``wilcoxon``).

Where the labels come from: a sweep folder's ``sweep.json`` (written by ``hqf sweep``), which also
carries the sweep file's optional ``[report]`` section::

    [report]
    baseline = "adam"                       # default for --baseline
    baselines = { "full-b" = "adam-b" }     # rows compared with another variant (e.g. another dataset)
    table1 = ["sgd", "rmsprop", "adam", "bo", "es", "full"]   # variants per table (default: all)
    table3 = ["adam", "rmsprop", "bo", "full"]
    table4 = ["backbone-only", "+quantum-no-gating", "+gated-no-stability", "full"]
    figure2 = ["sgd", "adam", "full"]       # Figure 2's curves (default: table1); figure4 likewise
    noise_axis = "depolarizing"             # the axis whose levels are Table III's columns
    imbalance_axis = "imbalance"            # Figure 3's x axis
    features_axis = "features"              # Figure 5's x axis

Loading and labelling the runs: :mod:`hqf.studies.runs`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import pathlib
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import attrs

from hqf.errors import ConfigError
from hqf.learn.rundir.folder import refuse_links, write_whole
from hqf.studies import figures as figs
from hqf.studies.runs import EVALUATION, KEYS, RELIABILITY, Group, Loaded, group, load_runs
from hqf.studies.stats import PairedTest, Summary, paired, summarize

#: table id -> columns shown only when some run's metrics.json has their key (newer runs' metrics)
OPTIONAL_COLUMNS: dict[str, list[tuple[str, str, float]]] = {
    "table1": [("Iterations to ε (full batch)", "iterations_full", 1)],
    "table2": [("Energy per epoch (J)", "energy", 1)],
    "table4": [("Iterations to ε (full batch)", "iterations_full", 1)],
}
#: table id -> (title, [(column title, KEYS role, scale)])
TABLES: dict[str, tuple[str, list[tuple[str, str, float]]]] = {
    "table1": (
        "Table I analogue: convergence and accuracy across optimizers",
        [
            ("Iterations to ε", "iterations", 1),
            ("Iterations to val. loss within 1% of best", "iterations_val", 1),
            ("Accuracy (%)", "accuracy", 100),
            ("Macro-F1", "macro_f1", 1),
            ("ECE", "ece", 1),
        ],
    ),
    "table2": (
        "Table II analogue: training time and latency",
        [
            ("Training time (s)", "wall", 1),
            ("Time per epoch (s)", "epoch", 1),
            ("Inference latency (ms)", "latency", 1),
            ("Optimizer steps spent (search trials included)", "steps_total", 1),
        ],
    ),
    "table3": (
        "Table III analogue: stability and noise sensitivity",
        [
            ("Variance amplification index", "vai", 1),
            ("Accuracy (%) under input noise σ=0.05", "accuracy_input_noise", 100),
        ],
    ),
    "table4": (
        "Table IV analogue: ablation",
        [
            ("Iterations to ε", "iterations", 1),
            ("Iterations to val. loss within 1% of best", "iterations_val", 1),
            ("Macro-F1", "macro_f1", 1),
            ("ECE", "ece", 1),
            ("Stability variance (VAI)", "vai", 1),
        ],
    ),
}


def format_number(x: float, digits: int = 3) -> str:
    """`digits` significant digits; thousands separators from 1,000 up; "n/a" when not finite."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def format_p(p: float) -> str:
    """A p-value: two significant digits, scientific below 0.001; "n/a" when not finite."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _cell(s: Summary, total: int) -> str:
    if total == 0:
        return "—"
    if s.n == 0:
        return f"n/a (0/{total})"
    text = f"{format_number(s.mean)} ± {format_number(s.std)}" if s.n > 1 else format_number(s.mean)
    if s.n > 1:
        text += f" [{format_number(s.ci_low)}, {format_number(s.ci_high)}]"
    if s.n < total:
        text += f" ({s.n}/{total} seeds)"
    return text


@attrs.frozen
class Row:
    """One line of a table: a label, its variant and axes, and per column the metric by seed."""

    label: str
    variant: str
    axes: tuple[tuple[str, Any], ...]
    values: dict  # column title -> {seed: value}


@attrs.frozen
class Column:
    title: str
    role: str  # a key of KEYS
    scale: float = 1.0
    level: Any = None  # for Table III: the noise-axis level the value is read at (None: the row's own)


def _rows(groups: Sequence[Group], columns: Sequence[Column], axis: str) -> list[Row]:
    """Rows for the groups at noise level 0 (or without the axis); level columns read sibling groups."""
    rows = []
    for g in groups:
        axes = dict(g.axes)
        if axes.get(axis, 0) not in (0, 0.0):
            continue
        others = tuple((k, v) for k, v in g.axes if k != axis)
        values = {}
        for col in columns:
            source = g
            if col.level is not None:
                source = next(
                    (
                        h
                        for h in groups
                        if h.variant == g.variant
                        and dict(h.axes).get(axis) == col.level
                        and tuple((k, v) for k, v in h.axes if k != axis) == others
                    ),
                    None,
                )
            values[col.title] = (
                {} if source is None else {s: v * col.scale for s, v in source.by_seed(col.role).items()}
            )
        label = Group(g.variant, others, ()).label
        rows.append(Row(label, g.variant, others, values))
    return rows


def _baseline_row(row: Row, rows: Sequence[Row], baseline: str | None, own: dict | None = None) -> Row | None:
    """The row ``row`` is tested against: its own baseline variant (``own``) or ``baseline``, same axes."""
    baseline = (own or {}).get(row.variant, baseline)
    if baseline is None:
        return None
    candidates = [r for r in rows if r.variant == baseline]
    same = [r for r in candidates if r.axes == row.axes]
    return same[0] if same else (candidates[0] if len(candidates) == 1 else None)


@attrs.frozen
class Cell:
    summary: Summary
    total: int
    test: PairedTest | None


def evaluate(rows: Sequence[Row], baseline: str | None, own: dict | None = None) -> list[tuple[Row, dict]]:
    """Per row, per column: the seed summary and the paired test against the baseline row (``own``:
    variant -> the baseline variant of that row, where it is not ``baseline``)."""
    out = []
    for row in rows:
        base = _baseline_row(row, rows, baseline, own)
        cells = {}
        for title, by_seed in row.values.items():
            test = None if base is None or base is row else paired(by_seed, base.values[title])
            cells[title] = Cell(summarize(by_seed.values()), len(by_seed), test)
        out.append((row, cells))
    return out


def markdown(title: str, table: Sequence[tuple[Row, dict]], baseline: str | None, own: dict | None = None) -> str:
    """``mean ± std [95% CI]`` per metric, then the paired-test p-values against the baseline."""
    if not table:
        return ""
    titles = list(table[0][1])
    has_tests = baseline is not None and any(c.test is not None for _, cells in table for c in cells.values())
    header = ["Model"] + titles + ([f"p vs {baseline}: {t} (t / W)" for t in titles] if has_tests else [])
    lines = [
        f"**{title}** — mean ± std [95% CI] over seeds"
        + ("; p: paired t-test / Wilcoxon signed-rank, paired by seed" if has_tests else "")
        + "".join(
            f"; {v} is compared with {b}" for v, b in (own or {}).items() if any(r.variant == v for r, _ in table)
        ),
        "",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, cells in table:
        line = [row.label] + [_cell(c.summary, c.total) for c in cells.values()]
        if has_tests:
            line += [
                "—" if c.test is None else f"{format_p(c.test.t_pvalue)} / {format_p(c.test.wilcoxon_pvalue)}"
                for c in cells.values()
            ]
        lines.append("| " + " | ".join(line) + " |")
    undefined = [
        c.test
        for _, cells in table
        for c in cells.values()
        if has_tests
        and c.test is not None
        and not (math.isfinite(c.test.t_pvalue) and math.isfinite(c.test.wilcoxon_pvalue))
    ]
    if undefined:
        lines += ["", P_UNDEFINED]
    return "\n".join(lines) + "\n"


#: the note under a table whose p-values are n/a somewhere
P_UNDEFINED = (
    "p = n/a: a paired test is undefined there — fewer than two seeds with finite values in both the row and the "
    "baseline, or every paired difference zero (the Wilcoxon test also needs a non-zero difference)."
)


CSV_FIELDS = [
    "model",
    "variant",
    "axes",
    "metric",
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "baseline",
    "n_pairs",
    "mean_difference",
    "t_statistic",
    "t_pvalue",
    "wilcoxon_statistic",
    "wilcoxon_pvalue",
]


def csv_text(table: Sequence[tuple[Row, dict]], baseline: str | None, own: dict | None = None) -> str:
    """One CSV row per table row and metric: the seed summary and the paired test against the baseline."""
    with io.StringIO(newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row, cells in table:
            for metric, c in cells.items():
                s = c.summary
                record = {
                    "model": row.label,
                    "variant": row.variant,
                    "axes": json.dumps(dict(row.axes)),
                    "metric": metric,
                    "n": s.n,
                    "mean": s.mean,
                    "std": s.std,
                    "ci_low": s.ci_low,
                    "ci_high": s.ci_high,
                    "baseline": (own or {}).get(row.variant, baseline) or "",
                }
                if c.test is not None:
                    t = c.test
                    record |= {
                        "n_pairs": t.n,
                        "mean_difference": t.mean_difference,
                        "t_statistic": t.t_statistic,
                        "t_pvalue": t.t_pvalue,
                        "wilcoxon_statistic": t.wilcoxon_statistic,
                        "wilcoxon_pvalue": t.wilcoxon_pvalue,
                    }
                writer.writerow(record)
        return fh.getvalue()


def table_columns(table: str, groups: Sequence[Group], axis: str) -> list[Column]:
    """The columns of a table; Table III adds accuracy at every non-zero level of the noise axis, and
    the accuracy of every kind of ``hqf evaluate`` result the runs keep (backend, noise, rows)."""
    columns = [Column(title, role, scale) for title, role, scale in TABLES[table][1]]
    present = {key for g in groups for r in g.runs for key in r.metrics}
    columns[1:1] = [
        Column(title, role, scale) for title, role, scale in OPTIONAL_COLUMNS.get(table, []) if KEYS[role] in present
    ]
    if table == "table3":
        levels = sorted({dict(g.axes)[axis] for g in groups if axis in dict(g.axes)} - {0})
        columns.append(Column("Accuracy (%), no gate noise", "accuracy", 100))
        columns += [Column(f"Accuracy (%) at {axis}={level:g}", "accuracy", 100, level) for level in levels]
        kinds = {stem: e for g in groups for r in g.runs for stem, e in r.evaluations.items()}
        for stem, e in sorted(kinds.items(), key=lambda item: _evaluation_order(item[1])):
            columns.append(Column(_evaluation_title(e), EVALUATION + stem, 100))
    return columns


def _evaluation_order(e: dict) -> tuple:
    noise = e.get("noise") or ""
    return (
        e.get("test_samples") or 0,
        e.get("input_noise") or 0,
        e.get("depolarizing") or 0,
        noise,
        str(e.get("backend")),
    )


def noise_label(e: dict) -> str:
    """How an evaluation's noise reads in a column title: ``noise depolarizing=0.02,readout=0.03``, ``no
    noise``, or ``gate noise p=0.02`` for an evaluation without a ``noise`` key (its ``depolarizing`` alone)."""
    text = e.get("noise")
    if text is None:
        return f"gate noise p={e.get('depolarizing') or 0:g}"
    return "no noise" if text in ("", "none") else f"noise {text}"


def _evaluation_title(e: dict) -> str:
    """``Accuracy (%), ptm, noise depolarizing=0.02, 1,024 test rows`` for one kind of evaluation."""
    parts = [f"Accuracy (%), {e.get('backend')}", noise_label(e)]
    if e.get("input_noise"):
        parts.append(f"input noise σ={e['input_noise']:g}")
    if e.get("test_samples") is not None:
        parts.append(f"{int(e['test_samples']):,} test rows")
    return ", ".join(parts)


@attrs.frozen
class Report:
    tables: dict  # table id -> (title, [(Row, {column: Cell})])
    figures: tuple[pathlib.Path, ...]
    markdown: str
    n_runs: int = 0
    baseline: str | None = None
    failed: tuple[tuple[pathlib.Path, str], ...] = ()  # failed runs, left out of every statistic
    warnings: tuple[str, ...] = ()  # metric values of the wrong type


def make_report(paths: Sequence[str | pathlib.Path], out: str | pathlib.Path, baseline: str | None = None) -> Report:
    """Write ``report.md``, ``tableN.md``/``tableN.csv`` and ``fig*.png`` under ``out``."""
    loaded = load_runs(paths)
    runs, settings = loaded.runs, loaded.settings
    _check_settings(settings)
    baseline = baseline or settings.get("baseline")
    groups = group(runs)
    _check_numeric_axes(groups, settings)
    _check_bin_counts(groups)
    if baseline is not None and not any(g.variant == baseline for g in groups):
        raise ConfigError(
            f"baseline {baseline!r} is not among the variants: {', '.join(sorted({g.variant for g in groups}))}"
        )
    out = pathlib.Path(out)
    axis = settings.get("noise_axis", "depolarizing")
    own = settings.get("baselines", {})
    if not isinstance(own, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in own.items()):
        raise ConfigError('[report] baselines must map variant names to variant names, e.g. { "full-b" = "adam-b" }')
    tables = {}
    files: dict[str, bytes] = {}  # name -> contents, written when the report is complete
    parts = [
        "# hqf report",
        "",
        f"{len(runs)} finished runs in {len(groups)} groups; baseline: {baseline or 'none'}.",
        "",
    ]
    parts += _failed_and_warnings(loaded)
    for table, (title, _) in TABLES.items():
        names = settings.get(table)
        if names is None and any(k.startswith("table") for k in settings) and table != "table1":
            continue  # the sweep names its tables: show only those
        chosen = list(groups) if names is None else [g for n in names for g in groups if g.variant == n]
        rows = _rows(chosen, table_columns(table, chosen, axis), axis)
        if not rows:
            continue
        evaluated = evaluate(rows, baseline, own)
        tables[table] = (title, evaluated)
        text = markdown(title, evaluated, baseline, own)
        files[f"{table}.md"] = text.encode()
        files[f"{table}.csv"] = csv_text(evaluated, baseline, own).encode()
        parts += [text, ""]

    def chosen_for(figure: str) -> list[Group]:
        named = settings.get(figure, settings.get("table1"))
        picked = [g for n in named for g in groups if g.variant == n] if named is not None else list(groups)
        return [g for g in picked if dict(g.axes).get(axis, 0) in (0, 0.0) and len(g.axes) <= (axis in dict(g.axes))]

    with _staged(out) as staging:
        figures = []
        for name, draw in (
            ("fig2_convergence.png", lambda p: figs.convergence(chosen_for("figure2"), p)),
            ("fig3_imbalance.png", lambda p: figs.imbalance(groups, settings.get("imbalance_axis", "imbalance"), p)),
            ("fig4_reliability.png", lambda p: figs.reliability(chosen_for("figure4"), p)),
            ("fig5_latency.png", lambda p: figs.latency(groups, settings.get("features_axis", "features"), p)),
        ):
            if draw(staging / name):
                figures.append(out / name)
                parts += [f"![{name}]({name})", ""]
        text = "\n".join(parts)
        for name, data in {**files, "report.md": text.encode()}.items():
            write_whole(staging / name, data)
    return Report(tables, tuple(figures), text, len(runs), baseline, loaded.failed, loaded.warnings)


@contextlib.contextmanager
def _staged(out: pathlib.Path):
    """A hidden folder inside ``out`` to write the report into; when it is complete, each file is moved
    into ``out``, ``report.md`` last. On any error (a full disk) nothing is moved, the hidden folder is
    removed, and so is ``out`` if it was made here: no partial report. A file of ``out`` the report
    would replace that is a symbolic link is refused first."""
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        yield staging
        names = sorted((p.name for p in staging.iterdir()), key=lambda n: n == "report.md")
        for name in names:
            refuse_links(out / name, out)
        for name in names:
            (staging / name).replace(out / name)
    except OSError as exc:  # a full disk: say where, and that no partial report was left
        raise OSError(exc.errno, f"{exc.strerror or exc}; no report was written", str(out)) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made and not any(out.iterdir()):
            with contextlib.suppress(OSError):
                out.rmdir()


#: ``[report]`` settings and the type each must have
SETTING_TYPES = {
    "baseline": str,
    "noise_axis": str,
    "imbalance_axis": str,
    "features_axis": str,
    **{name: list for name in ("table1", "table2", "table3", "table4", "figure2", "figure4")},
}


def _check_settings(settings: dict) -> None:
    """A ConfigError for a ``[report]`` setting of the wrong type (a list of variant names, or a name)."""
    for key, kind in SETTING_TYPES.items():
        value = settings.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
            wanted = "a list of variant names" if kind is list else "a name"
            raise ConfigError(f"[report] {key} must be {wanted} (got {_shown(value)})")


#: the ``[report]`` settings naming an axis read as numbers (Table III's noise levels, Figures 3 and 5's x axes)
NUMERIC_AXES = {"noise_axis": "depolarizing", "imbalance_axis": "imbalance", "features_axis": "features"}


def _check_numeric_axes(groups: Sequence[Group], settings: dict) -> None:
    """A ConfigError when an axis read as numbers holds something else."""
    for key, default in NUMERIC_AXES.items():
        axis = settings.get(key, default)
        for g in groups:
            axes = dict(g.axes)
            value = axes.get(axis)
            if axis in axes and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(
                    f"axis {axis!r} ([report] {key}) must hold numbers; variant {g.variant!r} has {_shown(value)}"
                )


def _check_bin_counts(groups: Sequence[Group]) -> None:
    """The runs of a group, pooled in Figure 4, have reliability diagrams of one number of bins."""
    for g in groups:
        counts = {len(r.metrics[RELIABILITY]["count"]): r.directory for r in g.runs if r.metrics.get(RELIABILITY)}
        if len(counts) > 1:
            (a, first), (b, second) = list(counts.items())[:2]
            raise ConfigError(
                f"reliability diagrams of {a} and {b} bins in one group ({first}, {second}); "
                "they cannot be pooled: fix or leave out a run"
            )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _failed_and_warnings(loaded: Loaded) -> list[str]:
    """The report's lines on failed runs (left out of every statistic), on metric values of the wrong type, on run
    folders pooled by seed, and on the runs of a sweep that are not finished."""
    lines = []
    if loaded.failed:
        lines += [f"{len(loaded.failed)} failed runs, left out of every statistic:", ""]
        lines += [f"- FAILED `{directory}`: {reason}" for directory, reason in loaded.failed] + [""]
    if loaded.warnings:
        lines += ["Warnings:", ""] + [f"- {line}" for line in loaded.warnings] + [""]
    if loaded.notes:
        lines += ["Run folders pooled by seed:", ""] + [f"- {line}" for line in loaded.notes] + [""]
    if loaded.unfinished:
        lines += [f"{len(loaded.unfinished)} runs of the sweep are not finished (no metrics.json with results):", ""]
        lines += [f"- `{directory}`" for directory in loaded.unfinished] + [""]
    return lines
