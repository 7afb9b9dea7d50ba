"""Grids of runs: run the configurations of a sweep file (:mod:`hqf.studies.grid`) in parallel, resumably.

Each run gets its own directory ``OUT/<variant>[/<key>=<value>...]/seed<k>``, written by the run
itself (``hqf run``'s layout), and ``OUT/sweep.json`` lists every run with its labels, for ``hqf report``.

Running and resuming (see docs/reliability.md). Each run runs in a worker process that dies with the
sweep (:mod:`hqf.studies.workers`), and first claims its run directory with a lock file
(:mod:`hqf.learn.rundir.lock`): a directory claimed by a live process is waited for, never run twice at once;
a claim whose process is gone is stale and taken over. Then, by the state of the directory:

- finished (``metrics.json`` parses and holds results, :func:`hqf.learn.rundir.state.holds_results`): skipped,
  after checking that its ``config.toml`` has the values the grid sets (a changed grid is an error, never a
  silent reuse);
- interrupted with a checkpoint: continued from it (``hqf run --resume``), so its result is the same
  as if it had never stopped;
- failed (``status.json`` says so: a non-finite loss, an error): left alone and reported, or run again
  from scratch with ``retry_failed`` (``hqf sweep --retry-failed``);
- anything else (half-written): emptied of the files hqf writes and run again; a folder that holds
  anything else, or a symbolic link on the way to a run directory, is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import pathlib
import shutil
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from hqf.errors import ConfigError, RunDirInUseError
from hqf.learn.config import RunConfig
from hqf.learn.rundir.folder import (
    foreign_files,
    foreign_message,
    is_disk_full,
    refuse_links,
    remove_run_files,
    write_whole,
)
from hqf.learn.rundir.lock import claim, holder
from hqf.learn.rundir.state import is_finished, read_status, state_of
from hqf.studies.grid import ABLATIONS, SWEEP_KEYS, RunSpec, expand, read_grid, validate
from hqf.studies.search import run_search
from hqf.studies.workers import run_pool

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

__all__ = [
    "ABLATIONS", "RunSpec", "SweepResult", "default_runner", "execute", "expand", "is_finished", "read_grid",
    "run_sweep", "stale_keys", "validate", "write_manifest",
]  # fmt: skip

MANIFEST = "sweep.json"
METRICS = "metrics.json"

Runner = Callable[[dict, pathlib.Path], Any]


def write_manifest(runs: Iterable[RunSpec], out: pathlib.Path, report: Mapping | None = None) -> None:
    """``OUT/sweep.json``: every run's directory and labels, and the sweep file's ``[report]`` section
    (written whole or not at all; never through a symbolic link)."""
    rows = [{"dir": str(r.directory.relative_to(out)), **r.labels()} for r in runs]
    text = json.dumps({"runs": rows, "report": dict(report or {})}, indent=1, default=str)
    write_whole(out / MANIFEST, text.encode())


def stale_keys(spec: RunSpec) -> list[str]:
    """Keys the sweep sets whose value differs from the finished run's ``config.toml`` (none if absent)."""
    path = spec.directory / "config.toml"
    if not path.exists():
        return []
    try:
        stored = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return []
    searched = ("lr", "weight_decay") if "search" in spec.config else ()
    wanted = {k: v for k, v in spec.config.items() if k not in SWEEP_KEYS and k not in searched}
    try:  # compare normalized values (aliases, flat keys of plugin options, tuples): a key is stale when
        # setting it on the stored configuration changes that configuration
        base = RunConfig.from_dict(stored)
        return sorted(k for k, v in wanted.items() if base.replace(**{k: v}) != base)
    except Exception:  # noqa: BLE001  an unreadable stored config: compare the raw values
        return sorted(k for k, v in wanted.items() if stored.get(k) != v)


def default_runner(config: dict, directory: pathlib.Path, resume: bool = False) -> Any:
    """Train one configuration with :func:`hqf.learn.experiment.run` (``resume``: continue it from its
    checkpoint), or search it (``search`` key; a search starts over)."""
    config = dict(config)
    search = config.pop("search", None)
    trials = config.pop("trials", None)
    if search is not None:
        return run_search(config, directory, method=search, trials=trials)
    # at use: it loads torch, which `hqf sweep --help` and `--dry-run` do not need
    from hqf.learn.experiment import run  # noqa: PLC0415 — import cost (see above)

    return run(RunConfig.from_dict(config), directory, resume=resume)


def _resolve(runner: Runner | str) -> Runner:
    if callable(runner):
        return runner
    module, attr = runner.split(":")
    return getattr(importlib.import_module(module), attr)


def _takes_resume(runner: Runner) -> bool:
    try:
        return "resume" in inspect.signature(runner).parameters
    except (TypeError, ValueError):
        return False


#: what became of one run: ran, resumed, skipped (finished), failed, failed-before (not retried), busy
Outcome = tuple[str, str, str | None]


def execute(
    runner: Runner | str, config: dict, directory: str, threads: int | None, retry_failed: bool, may_resume: bool
) -> Outcome:
    """Claim ``directory``, then run, resume or skip its configuration by the directory's state
    (in a worker process, a Ray task, or the sweep's own process); returns
    ``(directory, outcome, error text or None)``."""
    if threads:
        import torch  # noqa: PLC0415 — `hqf sweep --dry-run` does not load torch

        torch.set_num_threads(threads)
    path = pathlib.Path(directory)
    try:
        refuse_links(path, path.parent)
        path.mkdir(parents=True, exist_ok=True)
        lock = claim(path)
    except RunDirInUseError as exc:
        return directory, "busy", str(exc)
    except (ConfigError, OSError) as exc:
        return directory, "failed", _reason(exc, path)
    with lock:
        state = state_of(path)
        if state == "finished":
            return directory, "skipped", None
        if state == "failed" and not retry_failed:
            return directory, "failed-before", (read_status(path) or {}).get("reason", "failed earlier")
        function = _resolve(runner)
        resume = may_resume and state == "resumable" and "search" not in config and _takes_resume(function)
        try:
            if not resume:
                remove_run_files(path)  # only what hqf wrote there: anything else is refused
        except (ConfigError, OSError) as exc:
            return directory, "failed", _reason(exc, path)
        try:
            function(config, path, resume=True) if resume else function(config, path)
        except Exception as exc:  # noqa: BLE001  a failed run is recorded and reported, the sweep goes on
            reason = _reason(exc, path)
            with contextlib.suppress(OSError):  # a full disk: the reason is still reported
                write_whole(path / "error.txt", traceback.format_exc().encode())
            with contextlib.suppress(OSError):
                _record_failure(path, reason)
            return directory, "failed", reason
    return directory, "resumed" if resume else "ran", None


#: free bytes below which a failed write is taken for a full disk (torch reports one as "file write failed")
LOW_SPACE = 1 << 20


def _reason(exc: BaseException, path: pathlib.Path) -> str:
    """One line on why a run failed; a full disk is said so, whatever library's words it came in."""
    reason = traceback.format_exception_only(type(exc), exc)[-1].strip()
    if isinstance(exc, ConfigError):
        reason = str(exc)
    try:
        free = shutil.disk_usage(path if path.exists() else path.parent).free
    except OSError:
        free = None
    if is_disk_full(exc) or ("write failed" in reason and free is not None and free < LOW_SPACE):
        shown = "?" if free is None else f"{free:,}"
        return f"no space left on device writing {path} ({shown} bytes free); free some and rerun the sweep to resume"
    return reason


def _record_failure(path: pathlib.Path, reason: str) -> None:
    """``status.json`` says failed (a run records its own; a runner that does not gets it here)."""
    status = read_status(path) or {}
    if status.get("status") != "failed":
        write_whole(
            path / "status.json", (json.dumps({"status": "failed", "reason": reason}, indent=1) + "\n").encode()
        )


@attrs.frozen
class SweepResult:
    """What a sweep did: ``ran`` (every run it started or resumed, failed ones included), ``resumed``, ``skipped``
    (finished before), ``failed`` (now: directory, error), ``failed_before`` (failed earlier, not retried), ``busy``
    (claimed by a process on another host: not run)."""

    ran: tuple[pathlib.Path, ...]
    skipped: tuple[pathlib.Path, ...]
    failed: tuple[tuple[pathlib.Path, str], ...]
    resumed: tuple[pathlib.Path, ...] = ()
    failed_before: tuple[tuple[pathlib.Path, str], ...] = ()
    busy: tuple[tuple[pathlib.Path, str], ...] = ()


#: an engine: ``dispatch(specs, jobs, task, done)`` calls ``done(*execute(*task(spec)))`` for every spec
Dispatch = Callable[[list[RunSpec], int, Callable[[RunSpec], tuple], Callable[..., None]], None]

#: seconds between looks at run directories held by another live process on this host
WAIT_S = 1.0


def run_sweep(
    runs: list[RunSpec],
    out: str | pathlib.Path,
    jobs: int = 1,
    runner: Runner | str = default_runner,
    progress: Callable[[RunSpec, str | None], None] | None = None,
    report: Mapping | None = None,
    retry_failed: bool = False,
    notify: Callable[[str], None] | None = None,
    dispatch: Dispatch | None = None,
) -> SweepResult:
    """Run every unfinished run of ``runs``, ``jobs`` at a time in worker processes that die with this one.

    Finished runs are skipped; interrupted runs resume from their checkpoints; half-written run
    directories are emptied and run again; failed runs are run again only with ``retry_failed``. A run
    directory claimed by another live process on this host is waited for (``notify(text)`` says so),
    one claimed from another host is left alone. ``progress(spec, error)`` is called once per run that
    ran (error None when it succeeded). ``report`` (the sweep file's ``[report]`` section) is stored in
    the manifest for ``hqf report``. ``dispatch``: the engine that executes a round of runs (default:
    this machine's worker processes; :func:`hqf.studies.ray_engine.ray_dispatch` sends them to a Ray cluster).
    """
    if jobs < 1:
        raise ConfigError(f"'jobs' must be >= 1 (got {jobs})")
    out = pathlib.Path(out)
    fresh_only = _check_existing(runs, out, retry_failed)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(runs, out, report)
    by_dir = {str(spec.directory): spec for spec in runs}
    outcomes: dict[str, list] = {k: [] for k in ("ran", "resumed", "skipped", "failed", "failed-before", "busy")}
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None

    def task(spec: RunSpec) -> tuple:
        return (runner, spec.config, str(spec.directory), threads, retry_failed, spec.directory not in fresh_only)

    lost_race: list[RunSpec] = []  # claimed by someone else between the look and the claim

    def done(directory: str, outcome: str, error: str | None) -> None:
        spec = by_dir[directory]
        if outcome == "busy":
            lost_race.append(spec)
            return
        outcomes[outcome].append((spec.directory, error))
        if outcome in ("ran", "resumed", "failed"):
            outcomes["attempted"].append(spec.directory)
            if progress is not None:
                progress(spec, error)

    outcomes["attempted"] = []
    todo, told = list(runs), set()
    while todo:
        ready, held = _split_claimed(todo, told, outcomes, notify)
        lost_race.clear()
        (dispatch or _dispatch)(ready, jobs, task, done)
        todo = held + lost_race
        if todo:
            time.sleep(WAIT_S)
    return SweepResult(
        ran=tuple(outcomes["attempted"]),
        skipped=tuple(d for d, _ in outcomes["skipped"]),
        failed=tuple(outcomes["failed"]),
        resumed=tuple(d for d, _ in outcomes["resumed"]),
        failed_before=tuple(outcomes["failed-before"]),
        busy=tuple(outcomes["busy"]),
    )


def _check_existing(runs: list[RunSpec], out: pathlib.Path, retry_failed: bool) -> set[pathlib.Path]:
    """Refuse (ConfigError, before anything is written) a symbolic link on the way to a run directory or as
    the manifest, a finished run of other grid values, and a run directory to be emptied that holds files
    hqf did not write; return the interrupted runs of other grid values, which are redone rather than resumed."""
    refuse_links(out / MANIFEST, out)
    fresh_only = set()
    for spec in runs:
        refuse_links(spec.directory, out)
        state = state_of(spec.directory)
        stale = stale_keys(spec) if state in ("finished", "resumable") else []
        if stale and state == "finished":
            raise ConfigError(
                f"{spec.directory} holds a finished run with other values of {', '.join(stale)}; "
                "sweep into a new --out (or delete that run) after changing the grid"
            )
        if stale:
            fresh_only.add(spec.directory)
        emptied = state == "partial" or (state == "failed" and retry_failed) or spec.directory in fresh_only
        if emptied and (foreign := foreign_files(spec.directory)):
            raise ConfigError(foreign_message(spec.directory, foreign))
    return fresh_only


def _split_claimed(todo: list[RunSpec], told: set, outcomes: dict, notify) -> tuple[list[RunSpec], list[RunSpec]]:
    """The runs of ``todo`` nobody else holds now, and those a live process on this host holds (to look
    at again later; said once through ``notify``); those held from another host go to ``outcomes['busy']``."""
    ready, held = [], []
    for spec in todo:
        claimed = holder(spec.directory)
        if claimed is None or claimed.is_me():
            ready.append(spec)
        elif claimed.host != socket.gethostname():
            outcomes["busy"].append((spec.directory, f"claimed by {claimed.describe()}"))
        else:
            if spec.directory not in told and notify is not None:
                notify(f"waiting for {spec.directory}: in use by {claimed.describe()}")
            told.add(spec.directory)
            held.append(spec)
    return ready, held


def _dispatch(specs: list[RunSpec], jobs: int, task, done) -> None:
    """Execute the specs: in this process when ``jobs`` is 1, else in worker processes."""
    if jobs == 1:
        for spec in specs:
            done(*execute(*task(spec)))
        return

    def finished(args: tuple, result: tuple) -> None:
        kind, value = result
        if kind == "ok":
            done(*value)
        else:  # the worker died or stopped: its run stays resumable or half-written for the next sweep
            done(args[2], "failed", f"worker {kind}: {value}")

    _preload()  # once here rather than once per run: the workers are forked from this process
    run_pool([task(spec) for spec in specs], jobs, execute, finished)


def _preload() -> None:
    """Import now what a run imports on first use (hqf's training stack, torch's optimizers, scikit-learn's
    F1, matplotlib), so that the workers forked from this process start warm instead of importing per run.
    Imported here, not at the top: `hqf sweep --help` and `--dry-run` need none of it."""
    import sklearn.metrics  # noqa: F401, PLC0415 — what hqf.learn.training.metrics.macro_f1 imports at use
    import torch  # noqa: PLC0415 — see above

    import hqf.learn.experiment  # noqa: F401, PLC0415 — see above
    from hqf.learn.training import plotting  # noqa: PLC0415 — see above

    plotting.pyplot()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first construction imports torch's compiler stack
