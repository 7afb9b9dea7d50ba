"""Run directories: the files of a finished run, moved in from a hidden folder inside it, metrics.json last.

Layout (see docs/method.md and docs/reliability.md): ``config.toml``, ``meta.json``, ``metrics.json``,
``curves.csv``, ``epochs.csv``, ``convergence.png``, ``model.safetensors``; while the run is alive,
:mod:`hqf.learn.rundir.lifecycle` keeps its status, lock and checkpoint there too. A directory that exists and
is not empty is never written into by a fresh run.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import fnmatch
import json
import math
import os
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence

from hqf.errors import ConfigError
from hqf.learn.training import plotting

#: what hqf itself writes into a run directory (a run, a search, a sweep, ``hqf evaluate``, Ray's driver):
#: names, then patterns of temporary and stale files; nothing else there is ever deleted
RUN_FILES = frozenset(
    {
        "config.toml", "meta.json", "metrics.json", "curves.csv", "epochs.csv", "convergence.png",
        "model.safetensors", "status.json", "lock", "checkpoint.pt", "error.txt", "search.json",
        "metrics.json.tmp", "trials", "evaluations", "tensorboard",
    }
)  # fmt: skip
RUN_PATTERNS = (".finishing-*", ".incoming-*", ".*.tmp-*", ".lock.*", "lock.stale-*")


def default_run_dir(root: str | pathlib.Path = "runs") -> pathlib.Path:
    """``runs/<UTC timestamp>`` (``-2``, ``-3``… appended if taken), created empty here: the folder is
    claimed atomically, so runs started in the same second never get the same one."""
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    for k in range(1, 10_000):
        candidate = root / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise ConfigError(f"no free run folder {root / stamp}-<k> (9,999 taken); give --out")


@contextlib.contextmanager
def claimed_run_dir(out: str | pathlib.Path | None) -> Iterator[pathlib.Path]:
    """``out``, or a new :func:`default_run_dir` that is removed again if the work inside fails having written
    nothing into it (only that folder, only while empty, never through a symbolic link)."""
    if out:
        yield pathlib.Path(out)
        return
    folder = default_run_dir()
    try:
        yield folder
    except BaseException:
        remove_if_empty(folder)
        raise


def remove_if_empty(directory: pathlib.Path) -> None:
    """Remove ``directory`` if it is an empty folder and not a symbolic link; anything else is left alone."""
    if directory.is_symlink():
        return
    with contextlib.suppress(OSError):  # not empty, gone, or not a folder
        directory.rmdir()


def foreign_files(directory: pathlib.Path) -> list[str]:
    """The names in ``directory`` that hqf does not write into a run directory (sorted; none when absent)."""
    if not directory.is_dir():
        return []
    return sorted(
        item.name
        for item in directory.iterdir()
        if item.is_symlink()
        or not (item.name in RUN_FILES or any(fnmatch.fnmatchcase(item.name, p) for p in RUN_PATTERNS))
    )


def remove_run_files(directory: pathlib.Path, keep: Iterable[str] = ("lock",)) -> None:
    """Empty a run directory of what hqf wrote there, but ``keep``; a name hqf did not write, or a
    symbolic link, is refused (ConfigError) before anything is removed."""
    foreign = foreign_files(directory)
    if foreign:
        raise ConfigError(foreign_message(directory, foreign))
    for item in directory.iterdir():
        if item.name in keep:
            continue
        if item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink()


def foreign_message(directory: pathlib.Path, foreign: Sequence[str]) -> str:
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return (
        f"{directory} holds files hqf did not write ({shown}); move them out and rerun, "
        "or choose another --out (nothing was deleted)"
    )


def refuse_links(path: pathlib.Path, inside: pathlib.Path) -> None:
    """A ConfigError when ``path`` or a folder between ``inside`` and it is a symbolic link."""
    relative = path.relative_to(inside)
    current = inside
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise ConfigError(
                f"{current} is a symbolic link; hqf never writes or deletes through one "
                "(remove the link or choose another --out; nothing was written)"
            )


def write_whole(path: str | pathlib.Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: into a new temporary file of its folder (created exclusively,
    so never through a link someone left there), fsync-ed, then renamed over ``path``. A ``path`` that
    is a symbolic link is refused (ConfigError); on any error (a full disk: an OSError naming ``path``) the
    temporary file is removed."""
    path = pathlib.Path(path)
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; hqf never writes through one (nothing was written)")
    fd, tmp = _new_file(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # os.write names no file: say which
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _new_file(path: pathlib.Path) -> tuple[int, pathlib.Path]:
    """A new, exclusively created ``.<name>.tmp-<pid>-<random>`` beside ``path`` (mode by the umask, as any file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it came from is a full disk or quota (ENOSPC, EDQUOT)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def check_writable(out: pathlib.Path) -> None:
    """Refuse an existing non-empty directory, a path that is a file, or one under a file (ConfigError)."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"output path {out}: {parent} exists and is not a directory")
            break
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"output directory {out} exists and is not empty; choose another --out (nothing was written)")


@contextlib.contextmanager
def finish_into(out: str | pathlib.Path, last: str = "metrics.json") -> Iterator[pathlib.Path]:
    """Yield a hidden folder inside the existing run directory ``out``; on success each file written
    there is fsync-ed and renamed into ``out``, ``last`` after all others (a run counts as finished
    when its metrics.json parses and holds results); on error the folder is removed. Nothing is written beside
    ``out``."""
    out = pathlib.Path(out)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".finishing-", dir=out))
    try:
        yield tmp
        items = sorted(tmp.iterdir(), key=lambda item: item.name == last)
        for item in items:
            if item.is_file():
                with open(item, "rb") as handle:
                    os.fsync(handle.fileno())
            target = out / item.name
            if item.is_dir() and target.is_dir():
                shutil.rmtree(target)  # a folder of an earlier attempt (a resumed run)
            os.replace(item, target)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean(value):
    """JSON-safe: NaN and infinities become None (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def write_json(path: pathlib.Path, data: Mapping) -> None:
    path.write_text(json.dumps(clean(dict(data)), indent=1, allow_nan=False) + "\n")


def write_csv(path: pathlib.Path, columns: Sequence[str], rows: Sequence[Mapping]) -> None:
    """One header line, then rows; non-finite floats are written as empty cells."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                ["" if isinstance(v, float) and not math.isfinite(v) else v for v in (row.get(c) for c in columns)]
            )


def plot_convergence(
    path: pathlib.Path, curves: Mapping[str, Sequence[float]], evals: Sequence[Mapping], eps: float, title: str
) -> None:
    """Loss (total, CE, validation) and gradient norm (raw, smoothed, ε) against iteration.

    Each value axis is linear unless its values span a decade or more (:func:`hqf.learn.training.plotting.value_axis`:
    then log with 1-2-5 ticks); the gradient axis includes ε, so the target line is always in view.
    """
    import numpy as np  # noqa: PLC0415 — at use: `hqf sweep` reads run folders without numpy

    plt = plotting.pyplot()
    steps = np.asarray(curves["step"], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    losses: list[float] = []
    if steps.size:
        left.plot(steps, curves["loss"], lw=0.9, label="L_total (mini-batch)")
        left.plot(steps, curves["loss_ce"], lw=0.9, alpha=0.8, label="L_ce (mini-batch)")
        losses += [*curves["loss"], *curves["loss_ce"]]
    val = [(row["step"], row["val_loss"]) for row in evals if math.isfinite(row["val_loss"])]
    if val:
        left.plot(*zip(*val), "o-", color="black", ms=4, lw=1.2, label="validation L_ce")
        losses += [v for _, v in val]
    left.set_title("Loss", fontsize=plotting.LABEL_SIZE)
    plotting.value_axis(left, losses, "loss")
    norms: list[float] = []
    if steps.size:
        right.plot(steps, curves["grad_norm"], lw=0.7, alpha=0.5, label="‖∇L_total‖₂ (mini-batch)")
        right.plot(steps, curves["grad_norm_ema"], lw=1.4, label="smoothed (EMA, bias-corrected)")
        norms += [*curves["grad_norm"], *curves["grad_norm_ema"]]
    if eps > 0:
        right.axhline(eps, color="red", ls="--", lw=1, label=f"ε = {eps:g}")
        norms.append(eps)
    right.set_title("Gradient norm", fontsize=plotting.LABEL_SIZE)
    plotting.value_axis(right, norms, "gradient norm")
    for ax in (left, right):
        ax.set_xlabel("iteration (optimizer step)")
        plotting.finish(ax)
    fig.suptitle(title, fontsize=plotting.LABEL_SIZE)
    plotting.save(fig, path)
