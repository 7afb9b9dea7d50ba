"""``hqf report RUNS...``: seeds aggregated, paired tests against a baseline, tables and figures."""

from __future__ import annotations

import pathlib

import click


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--baseline", help="Variant the paired tests compare against [default: the sweep's [report] baseline].")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [default: <first RUNS>/report].")
def report_command(runs, baseline, out) -> None:
    """Aggregate finished runs (sweep folders or run folders) into Tables I–IV and Figures 2–5.

    Each metric: mean ± std and a 95% t-interval over seeds; against --baseline: paired t-test and
    Wilcoxon signed-rank test, paired by seed. Writes report.md, tableN.md, tableN.csv and figN_*.png,
    and prints a short summary: Table I's accuracy, macro-F1 and ECE per model, and where the files are.
    """
    # at use: they load scipy (~1.5 s), which `hqf report --help` does not need
    from hqf.studies.report import make_report
    from hqf.studies.summary import summary_lines

    folder = pathlib.Path(out) if out else pathlib.Path(runs[0]) / "report"
    report = make_report(runs, folder, baseline)
    for line in summary_lines(report, folder):
        click.echo(line)
