"""``hqf sweep GRID.toml``: run a grid of configurations in parallel, resumably (see hqf.studies.sweep)."""

from __future__ import annotations

import os
import pathlib

import click

from hqf.errors import ConfigError
from hqf.learn.runstate import state_of
from hqf.studies.grid import expand, read_grid, validate
from hqf.studies.sweep import is_finished, run_sweep


@click.command("sweep")
@click.argument("grid", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [default: runs/<grid name>].")
@click.option("--jobs", type=int, help="Runs in parallel (processes) [default: [sweep] jobs, else min(2, cores)].")
@click.option("--dry-run", is_flag=True, help="List the runs and whether each is finished; run nothing.")
@click.option("--retry-failed", is_flag=True, help="Run failed runs (status.json: failed) again, from scratch.")
def sweep_command(grid, out, jobs, dry_run, retry_failed) -> None:
    """Run every configuration of GRID (variants × axes × seeds), each in its own run directory.

    Finished runs (a complete metrics.json) are skipped and interrupted ones resume from their
    checkpoints, so a stopped or killed sweep carries on where it stopped; failed runs are reported
    and run again only with --retry-failed. Then `hqf report OUT` aggregates the seeds. Exit status 1
    when a run failed or could not be run.
    """
    spec = read_grid(grid)
    folder = pathlib.Path(out) if out else pathlib.Path("runs") / pathlib.Path(grid).stem
    runs = expand(spec, folder)
    validate(runs)
    if jobs is None:
        jobs = spec.get("sweep", {}).get("jobs", min(2, os.cpu_count() or 1))
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"'jobs' must be an integer >= 1 (got {jobs!r})")
    finished = [r for r in runs if is_finished(r.directory)]
    click.echo(f"{len(runs)} runs in {folder} ({len(finished)} finished), {jobs} at a time")
    if dry_run:
        for r in runs:
            state = state_of(r.directory)  # finished, resumable, failed, running, partial or empty
            click.echo(f"  [{'done' if state == 'finished' else 'todo' if state in ('empty', 'partial') else state}] {r.directory}")
        return
    done = [len(finished)]

    def progress(run, error) -> None:
        done[0] += 1
        status = "ok" if error is None else f"FAILED: {error}"
        click.echo(f"[{done[0]}/{len(runs)}] {run.directory}  {status}")

    result = run_sweep(runs, folder, jobs=jobs, progress=progress, report=spec.get("report"), retry_failed=retry_failed,
                       notify=lambda text: click.echo(text, err=True))
    resumed = f" ({len(result.resumed)} resumed from checkpoints)" if result.resumed else ""
    click.echo(f"ran {len(result.ran)}{resumed}, skipped {len(result.skipped)} finished, {len(result.failed)} failed")
    for directory, error in result.failed:
        click.echo(f"  failed: {directory}: {error} (see status.json, error.txt)", err=True)
    for directory, error in result.failed_before:
        click.echo(f"  failed earlier, not rerun: {directory}: {error} (--retry-failed runs it again)", err=True)
    for directory, holder in result.busy:
        click.echo(f"  not run: {directory} is {holder}", err=True)
    if result.failed or result.failed_before or result.busy:
        raise SystemExit(1)
