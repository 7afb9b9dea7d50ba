"""``hqf sweep GRID.toml``: run a grid of configurations in parallel, resumably (see hqf.studies.sweep)."""

from __future__ import annotations

import os
import pathlib

import click

from hqf.errors import ConfigError
from hqf.learn.rundir.state import state_of
from hqf.studies.grid import expand, read_grid, validate
from hqf.studies.sweep import is_finished, run_sweep


@click.command("sweep")
@click.argument("grid", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [default: runs/<grid name>].")
@click.option(
    "--jobs",
    type=int,
    help="Runs in parallel (processes; with --engine ray and no --address: the local "
    "cluster's CPUs) [default: [sweep] jobs, else min(2, cores)].",
)
@click.option("--dry-run", is_flag=True, help="List the runs and whether each is finished; run nothing.")
@click.option("--retry-failed", is_flag=True, help="Run failed runs (status.json: failed) again, from scratch.")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: processes on this machine; ray: one Ray task per run (pip install 'hqf[ray]'; docs/scale-out.md).",
)
@click.option(
    "--address",
    help="--engine ray: join the Ray cluster at HOST:PORT (it must accept a connection within 10 s; a head on "
    "127.0.0.1 is joined on 127.0.0.1) [default: start a local one on 127.0.0.1].",
)
@click.option(
    "--shared-fs/--no-shared-fs",
    default=True,
    show_default=True,
    help="--engine ray: the nodes see OUT at the same path and write their runs; else the driver writes them.",
)
def sweep_command(grid, out, jobs, dry_run, retry_failed, engine, address, shared_fs) -> None:
    """Run every configuration of GRID (variants × axes × seeds), each in its own run directory.

    Finished runs (a complete metrics.json) are skipped and interrupted ones resume from their
    checkpoints, so a stopped or killed sweep carries on where it stopped; failed runs are reported
    and run again only with --retry-failed. Then `hqf report OUT` aggregates the seeds. Exit status 1
    when a run failed or could not be run. With --engine ray each run is one Ray task, on a local cluster
    or the one at --address, with the same run directories and resume rules (docs/scale-out.md).
    """
    spec = read_grid(grid)
    folder = pathlib.Path(out) if out else pathlib.Path("runs") / pathlib.Path(grid).stem
    runs = expand(spec, folder)
    validate(runs)
    if jobs is None:
        jobs = spec.get("sweep", {}).get("jobs", min(2, os.cpu_count() or 1))
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"'jobs' must be an integer >= 1 (got {jobs!r})")
    if engine == "local" and (address or not shared_fs):
        raise ConfigError("--address and --no-shared-fs go with --engine ray")
    finished = [r for r in runs if is_finished(r.directory)]
    at_once = (
        f"{jobs} at a time"
        if engine == "local"
        else "on Ray" + (f" at {address}" if address else f", a local cluster of {jobs} CPUs")
    )
    click.echo(f"{len(runs)} runs in {folder} ({len(finished)} finished), {at_once}")
    if dry_run:
        for r in runs:
            state = state_of(r.directory)  # finished, resumable, failed, running, partial or empty
            label = "done" if state == "finished" else "todo" if state in ("empty", "partial") else state
            click.echo(f"  [{label}] {r.directory}")
        return
    done = [len(finished)]

    def progress(run, error) -> None:
        done[0] += 1
        status = "ok" if error is None else f"FAILED: {error}"
        click.echo(f"[{done[0]}/{len(runs)}] {run.directory}  {status}")

    if engine == "ray":
        from hqf.studies.ray_engine import run_ray_sweep  # at use: it imports Ray

        cpus_per_run = spec.get("sweep", {}).get("cpus_per_run", 1)
        result = run_ray_sweep(
            runs,
            folder,
            address=address,
            cpus=jobs,
            shared_fs=shared_fs,
            cpus_per_run=cpus_per_run,
            report=spec.get("report"),
            retry_failed=retry_failed,
            already_finished=len(finished),
            notify=lambda text: click.echo(text, err=True),
        )
    else:
        result = run_sweep(
            runs,
            folder,
            jobs=jobs,
            progress=progress,
            report=spec.get("report"),
            retry_failed=retry_failed,
            notify=lambda text: click.echo(text, err=True),
        )
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
