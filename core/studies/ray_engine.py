"""Sweeps on a Ray cluster (``hqf sweep --engine ray``, extra ``hqf[ray]``): each run of a grid is one Ray task.

The sweep itself (:func:`hqf.studies.sweep.run_sweep`: the manifest, the checks of finished runs, the
waits for run directories other processes hold, the outcome counts) is the same as with the local
engine; :func:`ray_dispatch` replaces only the step that executes a round of runs. Each run is one
Ray task of :func:`hqf.studies.sweep.execute`, the function a local worker process calls, with the
CPUs and GPUs it asks for derived from its configuration (:func:`task_resources`).

Plain tasks rather than Ray Tune trials: a grid is fixed ahead (no search algorithm or scheduler to
drive), and each run already has its directory, its checkpoints and its lock; Tune would add trial
folders, a checkpoint protocol and an experiment state of its own beside hqf's.

Where the run directories are written (:class:`RayEngine` ``shared_fs``):

- a file system every node sees at the same path (one machine, NFS; the default): the task claims the
  run directory's lock and writes the directory itself, checkpoints included. When a node dies,
  Ray runs its tasks again on another node (``max_retries``); the retry finds the dead process's
  lock stale (same host name) and the run's last checkpoint, and resumes;
- no shared file system (``shared_fs=False``, ``hqf sweep --no-shared-fs``): the driver claims the
  lock and sends the directory's files (an interrupted run's checkpoint) with the task; the task runs
  in a temporary folder of its node and returns the folder's files, which the driver writes. A task
  retried after its node died starts again from the files the driver sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator

import attrs
from tqdm import tqdm

from hqf.errors import ConfigError, RunDirInUseError
from hqf.learn.process.runtime import tune_process
from hqf.learn.rundir.lock import LOCK, claim
from hqf.studies.grid import RunSpec
from hqf.studies.sweep import SweepResult, execute, run_sweep

__all__ = ["RayEngine", "connect", "ray_dispatch", "run_ray_sweep", "task_resources"]

#: every address a local cluster uses (no dashboard, nothing on another interface)
LOOPBACK = "127.0.0.1"
#: the names of a loopback head this machine joins on :data:`LOOPBACK`
LOOPBACK_NAMES = (LOOPBACK, "localhost")
#: seconds an ``--address`` gets to accept a connection before the sweep stops (Ray's own retries take minutes)
PROBE_S = 10.0
#: how often Ray runs a task again after its worker or node died
MAX_RETRIES = 3
#: seconds cancelled tasks get to save a checkpoint and stop after Ctrl-C
GRACE_S = 30.0
#: files of a run directory that stay with the process that holds it (never sent, never written back)
LOCAL_ONLY = (LOCK,)


def require_ray():
    """The ``ray`` module, or a ConfigError that says how to install it."""
    try:
        import ray  # noqa: PLC0415 — an optional extra, and heavy
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'hqf[ray]'") from None
    return ray


def task_resources(config: dict, cpus: int = 1) -> dict:
    """The Ray resources one run asks for: ``cpus`` CPUs (also its torch threads) and one GPU when its
    ``device`` is CUDA."""
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise ConfigError(f"'cpus_per_run' must be an integer >= 1 (got {cpus!r})")
    gpus = 1 if str(config.get("device", "cpu")).startswith("cuda") else 0
    return {"num_cpus": cpus, "num_gpus": gpus}


@contextlib.contextmanager
def connect(address: str | None, cpus: int) -> Iterator[None]:
    """Join the cluster at ``address``, or start a local one of ``cpus`` CPUs bound to 127.0.0.1 with no
    dashboard; shut the connection (and a local cluster) down on leaving.

    An ``address`` of the form HOST:PORT must accept a TCP connection within :data:`PROBE_S` seconds
    (else a ConfigError at once: Ray itself would retry for minutes). A loopback head (127.0.0.1 or
    localhost) is joined on 127.0.0.1: Ray otherwise replaces a loopback address by the machine's
    outside one (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps it, read when Ray is imported; the head
    must listen on 127.0.0.1, e.g. ``ray start --head --node-ip-address 127.0.0.1``)."""
    target = _host_port(address) if address is not None else None
    if address is None or (target is not None and target[0] in LOOPBACK_NAMES):
        # read when Ray is imported: Ray otherwise picks the node's address from its network interfaces
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if target is not None:
        _check_reachable(address, *target)
    ray = require_ray()

    if address is None:
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    else:
        own_address = {"_node_ip_address": LOOPBACK} if target is not None and target[0] in LOOPBACK_NAMES else {}
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **own_address)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of an address HOST:PORT (or ``ray://HOST:PORT``); None for another form (``auto``)."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\[\]/]+?)\]?:(\d{1,5})", address.strip())
    return (match.group(1), int(match.group(2))) if match else None


def _check_reachable(address: str, host: str, port: int) -> None:
    """A TCP connection to ``host``:``port`` opens within :data:`PROBE_S` seconds; else a one-line ConfigError."""
    try:
        with socket.create_connection((LOOPBACK if host == "localhost" else host, port), timeout=PROBE_S):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(
            f"cannot join the Ray cluster at {address}: nothing accepts connections there ({why}); "
            "start its head first (ray start --head) or check the address"
        ) from None


@attrs.frozen
class RayEngine:
    """Executes rounds of a sweep as Ray tasks on the cluster :func:`connect` joined; ``shared_fs``:
    whether the nodes see the run directories (see the module's docstring); ``cpus_per_run``: the
    CPUs each run holds (``[sweep] cpus_per_run``)."""

    shared_fs: bool = True
    cpus_per_run: int = 1

    def __call__(self, specs: list[RunSpec], jobs: int, task: Callable[[RunSpec], tuple], done: Callable) -> None:
        """Run ``task(spec)`` for every spec as one Ray task; ``done(directory, outcome, error)`` as each ends."""
        ray = require_ray()
        remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(
            _execute_here if self.shared_fs else _execute_in_copy
        )
        pending: dict = {}
        try:
            for spec in specs:
                args = list(task(spec))
                resources = task_resources(spec.config, self.cpus_per_run)
                args[3] = resources["num_cpus"]  # the run's torch threads: the CPUs it holds
                if self.shared_fs:
                    ref = remote.options(**resources).remote(*args)
                    pending[ref] = (spec, None)
                else:
                    held = _claim_for_driver(spec.directory)
                    if held is None:
                        done(str(spec.directory), "busy", "claimed by another process")
                        continue
                    ref = remote.options(**resources).remote(args, _snapshot(spec.directory))
                    pending[ref] = (spec, held)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                spec, held = pending.pop(ready[0])
                done(*self._collect(ray, ready[0], spec, held))
        except KeyboardInterrupt:
            _cancel(ray, pending)
            raise
        finally:
            for _, held in pending.values():
                if held is not None:
                    held.release()

    def _collect(self, ray, ref, spec: RunSpec, held) -> tuple[str, str, str | None]:
        """The outcome of one finished task; in driver mode its files are written into the run directory."""
        directory = str(spec.directory)
        try:
            result = ray.get(ref)
        except Exception as exc:  # noqa: BLE001  the task died more often than Ray retries: reported, the sweep goes on
            reason = (
                f"Ray task failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            )
            if held is not None:
                held.release()
            return directory, "failed", reason
        if held is None:
            _, outcome, error = result
            return directory, outcome, error
        try:
            outcome, error, files = result
            if outcome in ("ran", "resumed", "failed"):
                _replace_contents(spec.directory, files)
        finally:
            held.release()
        return directory, outcome, error


def ray_dispatch(shared_fs: bool = True, cpus_per_run: int = 1) -> RayEngine:
    """The engine to pass as :func:`hqf.studies.sweep.run_sweep`'s ``dispatch`` (inside :func:`connect`)."""
    task_resources({}, cpus_per_run)  # checked before any task starts
    return RayEngine(shared_fs=shared_fs, cpus_per_run=cpus_per_run)


def _execute_here(*args) -> tuple:
    """In a Ray task: :func:`hqf.studies.sweep.execute` on the run directory itself (a shared file system)."""
    tune_process()  # the process settings of every hqf command, so that a run's numbers are the local engine's
    return execute(*args)


def _execute_in_copy(args: list, files: dict[str, bytes]) -> tuple:
    """In a Ray task: :func:`hqf.studies.sweep.execute` on a temporary copy holding ``files``; returns
    ``(outcome, error, the copy's files)``."""
    tune_process()
    with tempfile.TemporaryDirectory(prefix="hqf-ray-") as tmp:
        directory = pathlib.Path(tmp) / "run"
        _write_files(directory, files)
        args = list(args)
        args[2] = str(directory)
        _, outcome, error = execute(*args)
        return outcome, error, _snapshot(directory)


def _claim_for_driver(directory: pathlib.Path):
    """The driver's lock on ``directory`` (created if absent), or None when another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return claim(directory)
    except RunDirInUseError:
        return None


def _snapshot(directory: pathlib.Path) -> dict[str, bytes]:
    """Every file under ``directory`` by relative path (the lock left out)."""
    if not directory.is_dir():
        return {}
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in LOCAL_ONLY and not path.name.startswith(f".{LOCK}.")
    }


def _write_files(directory: pathlib.Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _replace_contents(directory: pathlib.Path, files: dict[str, bytes]) -> None:
    """Make ``directory`` hold exactly ``files`` (beside the lock), each file moved in whole, metrics.json last."""
    for path in directory.iterdir():
        if path.name in LOCAL_ONLY or path.name.startswith(f".{LOCK}."):
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".incoming-", dir=directory))
    try:
        _write_files(staging, files)
        for name in sorted(files, key=lambda n: n == "metrics.json"):
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cancel(ray, pending: dict) -> None:
    """Ctrl-C: ask every unfinished task to stop (a run saves its checkpoint first), wait up to
    :data:`GRACE_S`, then end those left by force."""
    refs = list(pending)
    for ref in refs:
        ray.cancel(ref, force=False)
    _, left = ray.wait(refs, num_returns=len(refs), timeout=GRACE_S) if refs else ([], [])
    for ref in left:
        ray.cancel(ref, force=True)


def run_ray_sweep(
    runs: list[RunSpec],
    out: str | pathlib.Path,
    address: str | None = None,
    cpus: int = 1,
    shared_fs: bool = True,
    cpus_per_run: int = 1,
    report=None,
    retry_failed: bool = False,
    already_finished: int = 0,
    notify: Callable[[str], None] | None = None,
    bar: bool = True,
) -> SweepResult:
    """:func:`hqf.studies.sweep.run_sweep` on Ray: join ``address`` (or start a local cluster of ``cpus``
    CPUs), run every unfinished run as a task, and show a progress bar over the runs with the counts
    of finished and failed ones (``bar``; ``already_finished`` runs count as done from the start)."""
    engine = ray_dispatch(shared_fs=shared_fs, cpus_per_run=cpus_per_run)
    counts = {"ok": 0, "failed": 0}
    with connect(address, cpus):  # before the bar: a cluster that cannot be joined is one line
        progress_bar = tqdm(
            total=len(runs),
            initial=already_finished,
            unit="run",
            desc="sweep",
            disable=not bar,
            file=sys.stderr,
            dynamic_ncols=True,
        )

        def progress(spec: RunSpec, error: str | None) -> None:
            counts["ok" if error is None else "failed"] += 1
            progress_bar.update(1)
            progress_bar.set_postfix(finished=counts["ok"] + already_finished, failed=counts["failed"])
            if error is not None:
                progress_bar.write(f"failed: {spec.directory}: {error}", file=sys.stderr)

        try:
            return run_sweep(
                runs,
                out,
                jobs=cpus,
                progress=progress,
                report=report,
                retry_failed=retry_failed,
                notify=notify,
                dispatch=engine,
            )
        finally:
            progress_bar.close()
