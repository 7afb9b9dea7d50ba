"""The claim on a run directory: a ``lock`` file inside it naming the process that works there.

A run directory is worked on by one process at a time (``hqf run``, ``hqf run --resume``, a sweep
worker). That process creates ``RUN_DIR/lock`` with ``O_CREAT | O_EXCL`` (so two processes cannot
both succeed) holding its pid, host name and start time. A lock whose process is gone is *stale*: a
later claim on the same host removes it and takes over. A lock from another host cannot be checked
and is left alone (remove it by hand once that host is known to be done).

A claim by the process that already holds the lock succeeds without a second file and is released
by the outermost holder only (a sweep worker claims the directory, then the run inside it does).

Creating the lock is a hard link of a complete temporary file, so a lock is never seen half-written;
one that does not parse is treated as stale.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import time

import attrs

from hqf.errors import RunDirInUseError

LOCK = "lock"


def _start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), None elsewhere."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and parentheses
    try:
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
    except (IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (an exited, unreaped zombie is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    except OSError:
        return False
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): trust kill(0)
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


@attrs.frozen
class Holder:
    """Who holds a lock: pid, host and start time of the process (None where unknown)."""

    pid: int
    host: str
    start: int | None = None

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), socket.gethostname(), _start_ticks(os.getpid()))

    @classmethod
    def read(cls, path: pathlib.Path) -> Holder | None:
        """The holder written in ``path``; None for a missing file, and a holder of pid 0 (stale) for
        one that does not parse (a claim cut off mid-write)."""
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), str(data["host"]), data.get("start"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return cls(0, socket.gethostname(), None)

    def is_me(self) -> bool:
        return self.pid == os.getpid() and self.host == socket.gethostname()

    def is_stale(self) -> bool:
        """The holder ran on this host and is gone (its pid is free, or now names a later process)."""
        if self.host != socket.gethostname():
            return False
        if self.pid <= 0 or not alive(self.pid):
            return True
        return self.start is not None and _start_ticks(self.pid) not in (None, self.start)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


@attrs.define
class RunLock:
    """A held claim on ``directory``; :meth:`release` removes the lock file if this claim created it."""

    directory: pathlib.Path
    created: bool

    @property
    def path(self) -> pathlib.Path:
        return self.directory / LOCK

    def release(self) -> None:
        if self.created:
            holder = Holder.read(self.path)
            if holder is not None and holder.is_me():
                self.path.unlink(missing_ok=True)
            self.created = False

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder(directory: str | pathlib.Path) -> Holder | None:
    """The process that holds ``directory`` now (None: free, or held by a process that is gone)."""
    found = Holder.read(pathlib.Path(directory) / LOCK)
    return None if found is None or found.is_stale() else found


def claim(directory: str | pathlib.Path) -> RunLock:
    """Claim the existing folder ``directory``: :class:`RunDirInUseError` names the live holder."""
    directory = pathlib.Path(directory)
    path = directory / LOCK
    me = Holder.me()
    text = json.dumps({"pid": me.pid, "host": me.host, "start": me.start, "claimed": time.time()}) + "\n"
    for _ in range(3):  # a stale lock removed by a racing claimant: try again
        if _create(path, text):
            return RunLock(directory, created=True)
        current = Holder.read(path)
        if current is None:
            continue
        if current.is_me():
            return RunLock(directory, created=False)
        if not current.is_stale():
            raise RunDirInUseError(
                f"run directory {directory} is in use by {current.describe()} (its lock file: {path})"
            )
        _remove_stale(path, current)
    raise RunDirInUseError(f"run directory {directory}: could not claim {path} (other processes keep claiming it)")


def _create(path: pathlib.Path, text: str) -> bool:
    """Create ``path`` holding ``text``, complete, only if it does not exist (a hard link of a written
    temporary file: no reader ever sees a half-written lock). False when it exists."""
    tmp = path.with_name(f".{LOCK}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)  # never written through a link
    with os.fdopen(os.open(tmp, flags, 0o644), "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: an exclusive create, then the text
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _remove_stale(path: pathlib.Path, stale: Holder) -> None:
    """Remove ``path`` if it still names ``stale`` (moved aside first, so that only one claimant removes it)."""
    aside = path.with_name(f"{LOCK}.stale-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    if Holder.read(aside) == stale:
        aside.unlink(missing_ok=True)
    else:  # a new claim landed between the read and the move: put it back
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        aside.unlink(missing_ok=True)
