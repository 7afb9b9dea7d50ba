"""Worker processes that die with their parent: a small process pool for sweeps.

Each task runs in a process of its own (``fork`` where available), at most ``jobs`` at a time. A
worker watches its parent: on Linux the kernel sends it SIGTERM when the parent dies
(``prctl(PR_SET_PDEATHSIG)``), and on every system a thread polls the parent's pid and sends the
same SIGTERM. A run inside the worker answers SIGTERM by saving a checkpoint and stopping
(:class:`hqf.learn.rundir.lifecycle.StopSignals`); a worker still alive :data:`GRACE_S` seconds after its
parent died ends itself. When the parent stops early (an error, Ctrl-C), it sends SIGTERM to its
workers and, after the same grace, SIGKILL. So ``kill -9`` of a sweep leaves no orphans running
queued work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

#: seconds a worker may take to save and stop after SIGTERM before it is killed
GRACE_S = 30.0
#: seconds between a worker's checks that its parent is alive
POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


def _kernel_watch(signum: int) -> None:
    """Linux: have the kernel send ``signum`` to this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _poll_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_S)
    os._exit(128 + signal.SIGTERM)  # it did not stop in time: end it (its last checkpoint stays)


def watch_parent(parent: int) -> None:
    """In a worker: SIGTERM to itself as soon as ``parent`` (the pid that started it) is gone."""
    _kernel_watch(signal.SIGTERM)
    threading.Thread(target=_poll_parent, args=(parent,), daemon=True, name="hqf-watch-parent").start()
    if os.getppid() != parent:  # it died before the watch was set
        os.kill(os.getpid(), signal.SIGTERM)


def _child(conn, parent: int, target: Callable[..., Any], args: tuple) -> None:
    watch_parent(parent)
    try:
        result: tuple[str, Any] = ("ok", target(*args))
    except KeyboardInterrupt as exc:  # a run stopped by SIGTERM/SIGINT after saving its checkpoint
        result = ("interrupted", str(exc))
    except BaseException as exc:  # noqa: BLE001  reported to the parent, which decides
        result = ("error", f"{type(exc).__name__}: {exc}")
    try:
        conn.send(result)
    except (OSError, ValueError):  # the parent is gone
        pass
    finally:
        conn.close()


def run_pool(
    tasks: Sequence[tuple],
    jobs: int,
    target: Callable[..., Any],
    done: Callable[[tuple, tuple[str, Any]], None],
) -> None:
    """Call ``target(*task)`` for every task, each in its own worker process, ``jobs`` at a time;
    ``done(task, (kind, value))`` in this process as each ends: ``("ok", result)``, ``("error", text)``,
    ``("interrupted", text)`` or ``("died", exit code)``."""
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    pending = list(tasks)
    running: dict[Any, tuple[Any, Any, tuple]] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                task = pending.pop(0)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(
                    target=_child, args=(send, os.getpid(), target, task), name="hqf-sweep-worker"
                )
                process.start()
                send.close()
                running[process.sentinel] = (process, receive, task)
            for sentinel in multiprocessing.connection.wait(list(running)):
                process, receive, task = running.pop(sentinel)
                try:
                    result = receive.recv() if receive.poll() else None
                except (EOFError, OSError):
                    result = None
                receive.close()
                process.join()
                done(task, result if result is not None else ("died", process.exitcode))
    finally:
        _stop([process for process, _, _ in running.values()])


def _stop(processes: list) -> None:
    """SIGTERM to each worker still running, then SIGKILL to any left after :data:`GRACE_S`."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
