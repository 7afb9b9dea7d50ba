"""The short terminal summary of a report (``hqf report``): Table I's headline columns, where the rest is.

The full tables are wide Markdown (a column per metric, then a p-value column per metric); they stay
in ``report.md`` and ``tableN.md``/``.csv``. The summary shows, per model of Table I (or of the first
table written when a sweep names no Table I), accuracy, macro-F1 and ECE as mean ± std over seeds, the
paired tests of accuracy against the baseline, how many runs failed or drew warnings (listed in the
report), and the paths of the files written.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

from hqf.studies.report import Cell, Report

#: Table I's columns shown in the summary, with their short titles
HEADLINE = (("Accuracy (%)", "accuracy (%)"), ("Macro-F1", "macro-F1"), ("ECE", "ECE"))
#: the column whose paired tests against the baseline are shown
TESTED = "Accuracy (%)"


def _number(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _cell(cell: Cell) -> str:
    s = cell.summary
    if s.n == 0:
        return f"n/a (0/{cell.total})"
    text = f"{_number(s.mean)} ± {_number(s.std)}" if s.n > 1 else _number(s.mean)
    return text + (f" ({s.n}/{cell.total} seeds)" if s.n < cell.total else "")


def _p(cell: Cell) -> str:
    if cell.test is None:
        return "—"
    return " / ".join(
        f"{p:.2g}" if p is not None and math.isfinite(p) else "n/a"
        for p in (cell.test.t_pvalue, cell.test.wilcoxon_pvalue)
    )


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    return [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]


def summary_lines(report: Report, out: str | pathlib.Path) -> list[str]:
    """The summary: a line on the runs, Table I's headline columns, and the files written under ``out``."""
    out, baseline = pathlib.Path(out), report.baseline
    lines = [f"{report.n_runs} finished runs; baseline: {baseline or 'none'}"]
    if report.failed:
        lines.append(f"{len(report.failed)} failed runs, left out of every statistic (listed in report.md)")
    if report.warnings:
        lines.append(f"{len(report.warnings)} warnings on metric values (listed in report.md)")
    table_id = "table1" if "table1" in report.tables else next(iter(report.tables), None)
    if table_id is not None:
        title, evaluated = report.tables[table_id]
        shown = [(column, short) for column, short in HEADLINE if evaluated and column in evaluated[0][1]]
        tested = baseline is not None and any(
            cells[TESTED].test is not None for _, cells in evaluated if TESTED in cells
        )
        header = ["model", *(short for _, short in shown)] + ([f"p vs {baseline}: accuracy (t / W)"] if tested else [])
        rows = [
            [row.label, *(_cell(cells[c]) for c, _ in shown)] + ([_p(cells[TESTED])] if tested else [])
            for row, cells in evaluated
        ]
        lines += ["", f"{title.split(':')[0]} — mean ± std over seeds:", *(_aligned([header, *rows]) if shown else [])]
    tables = ", ".join(f"{name}.md" for name in report.tables) or "none"
    figures = ", ".join(path.name for path in report.figures) or "none"
    lines += [
        "",
        f"full report: {out / 'report.md'}",
        f"  beside it, tables: {tables} (and .csv)",
        f"  figures: {figures}",
    ]
    return lines
