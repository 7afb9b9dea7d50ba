"""``hqf sweep GRID.toml``: run a grid of configurations in parallel, resumably (see hqf.studies.sweep)."""

from __future__ import annotations

import os
import pathlib

import click

from hqf.studies.sweep import expand, is_finished, read_grid, run_sweep, validate


@click.command("sweep")
@click.argument("grid", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [default: runs/<grid name>].")
@click.option("--jobs", type=int, help="Runs in parallel (processes) [default: [sweep] jobs, else min(2, cores)].")
@click.option("--dry-run", is_flag=True, help="List the runs and whether each is finished; run nothing.")
def sweep_command(grid, out, jobs, dry_run) -> None:
    """Run every configuration of GRID (variants × axes × seeds), each in its own run directory.

    Finished runs (a complete metrics.json) are skipped, so an interrupted sweep resumes where it
    stopped. Then `hqf report OUT` aggregates the seeds.
    """
    spec = read_grid(grid)
    folder = pathlib.Path(out) if out else pathlib.Path("runs") / pathlib.Path(grid).stem
    runs = expand(spec, folder)
    validate(runs)
    if jobs is None:
        jobs = int(spec.get("sweep", {}).get("jobs", min(2, os.cpu_count() or 1)))
    finished = [r for r in runs if is_finished(r.directory)]
    click.echo(f"{len(runs)} runs in {folder} ({len(finished)} finished), {jobs} at a time")
    if dry_run:
        for r in runs:
            state = "done" if is_finished(r.directory) else "todo"
            click.echo(f"  [{state}] {r.directory}")
        return
    done = [len(finished)]

    def progress(run, error) -> None:
        done[0] += 1
        status = "ok" if error is None else f"FAILED: {error}"
        click.echo(f"[{done[0]}/{len(runs)}] {run.directory}  {status}")

    result = run_sweep(runs, folder, jobs=jobs, progress=progress, report=spec.get("report"))
    click.echo(f"ran {len(result.ran)}, skipped {len(result.skipped)} finished, {len(result.failed)} failed")
    if result.failed:
        for directory, error in result.failed:
            click.echo(f"  failed: {directory}: {error} (see error.txt)", err=True)
        raise SystemExit(1)
