"""A run directory while its run is alive: claimed, checkpointed, then finished, failed or interrupted.

Layout (see docs/reliability.md):

- while running: ``config.toml`` (written first), ``status.json`` (``running``), ``lock`` (the
  process working here, :mod:`hqf.learn.rundir.lock`) and ``checkpoint.pt`` (the latest checkpoint);
- finished: ``config.toml``, ``meta.json``, ``curves.csv``, ``epochs.csv``, ``convergence.png``,
  ``model.safetensors`` and ``metrics.json``, written last and atomically: **a run is finished when
  its metrics.json parses and holds results**. Status, lock and checkpoint are removed after it;
- failed (a non-finite loss, a backend that broke its contract, an error while training): ``status.json``
  says ``failed`` and why, with the curves of what ran (up to the last checkpoint when training raised);
  no metrics.json, so nothing averages it by mistake. A run that fails after training (while
  evaluating) keeps the trained model (``model.safetensors``) and its last checkpoint: ``hqf run
  --resume`` evaluates it again;
- interrupted (SIGINT, SIGTERM, also during the final evaluation) or killed: ``status.json`` and the last
  ``checkpoint.pt`` stay, and ``hqf run --resume RUN_DIR`` continues from it.

A fresh run never writes into a directory that exists and holds anything, and writes nothing beside
it (no temporary sibling folders).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import attrs

from hqf.errors import BackendContractError, ConfigError, HqfError, RunDirInUseError, RunFailedError, RunInterrupted
from hqf.learn.config import RunConfig
from hqf.learn.data.dataset import Dataset
from hqf.learn.rundir import checkpoint as ckpt
from hqf.learn.rundir.folder import check_writable, write_csv
from hqf.learn.rundir.lock import LOCK, RunLock, claim, holder
from hqf.learn.rundir.saved import MODEL
from hqf.learn.rundir.state import CONFIG, STATUS, is_finished, read_status, state_of
from hqf.learn.training.checkpointing import Checkpointing, RankLost, TrainingInterrupted, lost_rank
from hqf.learn.training.curves import EVAL_COLUMNS, TrainResult
from hqf.learn.training.loop import train
from hqf.learn.training.settings import TrainSettings
from hqf.learn.training.terms import Term


def check_fresh(out: pathlib.Path) -> None:
    """A fresh run may write ``out``: absent, or an empty folder, under a parent path that is a folder."""
    if out.is_dir() and state_of(out) == "resumable":
        raise ConfigError(
            f"output directory {out} holds an interrupted run; continue it with "
            f"`hqf run --resume {out}`, or choose another --out"
        )
    if out.is_dir() and _only_my_lock(out):
        return  # claimed (and emptied) by this process for this run: a sweep worker
    check_writable(out)


def _only_my_lock(directory: pathlib.Path) -> bool:
    names = [p.name for p in directory.iterdir() if not p.name.startswith(f".{LOCK}.")]
    claimed = holder(directory)
    return names == [LOCK] and claimed is not None and claimed.is_me()


@attrs.define
class LiveRun:
    """A claimed run directory of one run (:func:`open_fresh`, :func:`open_resumed`)."""

    directory: pathlib.Path
    lock: RunLock
    config: RunConfig
    resumed: bool = False
    training: bool = False  # set once training (re)starts: an error before leaves a resumed run as it was

    @property
    def checkpoint_path(self) -> pathlib.Path:
        return self.directory / ckpt.CHECKPOINT

    def write_status(self, status: str, **extra: Any) -> None:
        record = {"status": status, "pid": os.getpid(), "host": socket.gethostname(), "updated": time.time(), **extra}
        ckpt.atomic_write_text(self.directory / STATUS, json.dumps(record, indent=1) + "\n")

    def save_checkpoint(self, state: dict) -> None:
        ckpt.save(self.checkpoint_path, state)
        self.write_status("running", step=state["step"], checkpoint=ckpt.CHECKPOINT)

    def load_checkpoint(self) -> dict | None:
        return ckpt.load(self.checkpoint_path) if self.checkpoint_path.exists() else None

    def interrupted(self, signal_name: str, step: int | None) -> None:
        saved = self.checkpoint_path.exists()
        self.write_status("interrupted", signal=signal_name, step=step, checkpoint=ckpt.CHECKPOINT if saved else None)

    def failed(self, reason: str, **extra: Any) -> None:
        """Record the run as failed (its checkpoint removed: a failed run is redone, not resumed)."""
        self.write_status("failed", reason=reason, **extra)
        self.checkpoint_path.unlink(missing_ok=True)

    def finished(self) -> None:
        """After metrics.json: remove what only an unfinished run has (the lock last)."""
        self.checkpoint_path.unlink(missing_ok=True)
        (self.directory / STATUS).unlink(missing_ok=True)
        self.lock.release()

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        """Release the claim; a run left by an error is recorded as failed, by Ctrl-C as interrupted."""
        try:
            status = (read_status(self.directory) or {}).get("status")
            if exc is not None and status == "running":
                if isinstance(exc, KeyboardInterrupt):
                    self.interrupted("SIGINT", None)
                elif self.training or not self.resumed:
                    self.failed(_one_line(exc))
        finally:
            self.release()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def open_run(out: pathlib.Path, config: RunConfig, resume: bool) -> LiveRun:
    """:func:`open_resumed` when ``resume``, else :func:`open_fresh`."""
    return open_resumed(out, config) if resume else open_fresh(out, config)


def train_durably(
    live: LiveRun,
    model,
    tensors: tuple,
    terms: list[Term],
    settings: TrainSettings,
    dataset: Dataset,
    progress=None,
    on_validation=None,
    probes=(),
    backend=None,
) -> TrainResult:
    """:func:`hqf.learn.training.loop.train` with checkpoints in ``live``'s directory (every
    ``checkpoint_every`` iterations and at each epoch's end), continuing from its checkpoint if it has
    one. ``tensors``: ``(x_train, y_train, x_val, y_val)``. ``backend``: the model's simulator; a
    ``torch.Generator`` it draws from (``generator``: the trajectories' branches) is checkpointed too.

    Raises:
        RunInterrupted: SIGINT or SIGTERM arrived; the state was saved first (status ``interrupted``).
        RunFailedError: the loss became NaN or infinite (status ``failed``, with the curves so far).
    """
    generators = {**ckpt.generators_of(term.regularizer for term in terms), **ckpt.backend_generators(backend)}
    data_id = ckpt.fingerprint([dataset.train.x, dataset.train.y, dataset.val.x, dataset.val.y])
    saved = live.load_checkpoint()
    if saved is not None:
        if saved.get("data") != data_id:
            raise ConfigError(
                f"{live.directory}: the data differ from the data the run was started on; it cannot resume"
            )
        ckpt.check_config(saved, live.config, live.directory)  # a change the user allowed is in the checkpoint
        ckpt.restore_rng(saved["rng"], generators)
    record = ckpt.config_record(live.config)

    def save(state: dict) -> None:
        live.save_checkpoint({**state, "rng": ckpt.rng_state(generators), "data": data_id, "config": record})

    live.training = True
    with StopSignals() as stop:
        checkpointing = Checkpointing(save, live.config.checkpoint_every, stop.requested, saved)
        try:
            result = train(
                model, *tensors, terms, settings, progress, on_validation, checkpointing=checkpointing, probes=probes
            )
        except TrainingInterrupted as exc:
            raise _interrupted(live, exc.signal, exc.step) from None
        except Exception as exc:
            if not lost_rank(exc):
                raise
            step = (read_status(live.directory) or {}).get("step")  # the last checkpoint's: it is kept
            live.write_status("interrupted", reason=RankLost.reason, step=step, checkpoint=ckpt.CHECKPOINT)
            live.release()
            raise RankLost(live.directory, step) from None
        late = stop.requested()  # after the last iteration: the final state is saved already
    if result.stop_reason == "non_finite_loss":
        columns = list(result.curves)
        write_csv(live.directory / "curves.csv", columns, [dict(zip(columns, v)) for v in zip(*result.curves.values())])
        write_csv(live.directory / "epochs.csv", EVAL_COLUMNS, result.evals)
        reason = f"the loss became NaN or infinite at iteration {result.steps}"
        live.failed(reason)
        raise RunFailedError(str(live.directory), reason)
    if late is not None:
        raise _interrupted(live, late, result.steps)
    return result


def _interrupted(live: LiveRun, signal_name: str, step: int) -> RunInterrupted:
    live.interrupted(signal_name, step)
    live.release()
    return RunInterrupted(
        f"interrupted by {signal_name} at iteration {step}; the run so far is kept in {live.directory} "
        f"({ckpt.CHECKPOINT}); continue it with: hqf run --resume {live.directory}",
        exit_code(signal_name),
    )


def open_fresh(out: pathlib.Path, config: RunConfig) -> LiveRun:
    """Create and claim ``out`` for a new run; write its config.toml and status."""
    check_fresh(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = claim(out)
    others = [p.name for p in out.iterdir() if p.name != LOCK and not p.name.startswith(f".{LOCK}.")]
    if others:  # something appeared meanwhile: leave it alone
        lock.release()
        if created and not any(out.iterdir()):
            out.rmdir()
        raise ConfigError(f"output directory {out} exists and is not empty; choose another --out (nothing was written)")
    live = LiveRun(out, lock, config)
    ckpt.atomic_write_text(out / CONFIG, config.to_toml())
    live.write_status("running", step=0)
    return live


def read_run_config(directory: str | pathlib.Path) -> RunConfig:
    """The configuration of the run in ``directory`` (its config.toml), for ``--resume``."""
    directory = pathlib.Path(directory)
    if not (directory / CONFIG).is_file():
        raise ConfigError(f"{directory} is not a run directory (it has no {CONFIG})")
    return RunConfig.from_toml(directory / CONFIG)


def check_resumable(directory: pathlib.Path, config: RunConfig) -> None:
    """``directory`` holds an unfinished, not failed run of ``config`` that no live process works on."""
    if is_finished(directory):
        raise ConfigError(f"{directory} holds a finished run (metrics.json); there is nothing to resume")
    stored = read_run_config(directory)
    if stored.to_dict() != config.to_dict():
        changed = sorted(k for k, v in config.to_dict().items() if stored.to_dict().get(k) != v)
        raise ConfigError(
            f"{directory} was started with other values of {', '.join(changed)}; a run resumes with its own"
        )
    status = read_status(directory) or {}
    trained = status.get("checkpoint") and (directory / ckpt.CHECKPOINT).exists()  # failed after training
    if status.get("status") == "failed" and not trained:
        raise ConfigError(
            f"{directory} holds a failed run ({status.get('reason', 'no reason recorded')}); "
            "there is nothing to resume: run it again into a new --out"
        )
    claimed = holder(directory)
    if claimed is not None and not claimed.is_me():
        raise RunDirInUseError(f"run directory {directory} is in use by {claimed.describe()}")


def open_resumed(directory: pathlib.Path, config: RunConfig) -> LiveRun:
    """Claim the unfinished run in ``directory`` (taking over a lock whose process is gone) to continue it."""
    check_resumable(directory, config)
    lock = claim(directory)
    for leftover in directory.glob(".finishing-*"):  # a kill while the results were moving in
        shutil.rmtree(leftover, ignore_errors=True)
    ckpt.remove_temporaries(directory)  # a kill during a write
    status = read_status(directory) or {}
    live = LiveRun(directory, lock, config, resumed=True)
    live.write_status("running", step=status.get("step"))
    return live


class _SignalScope:
    """While entered in the main thread, ``self._handle`` receives SIGINT and SIGTERM; leaving restores the
    handlers before it (``self._previous``)."""

    _previous: dict

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


@attrs.define
class StopSignals(_SignalScope):
    """While entered (in the main thread), SIGINT and SIGTERM ask the run to stop at its next iteration
    (:meth:`requested` names the signal) instead of ending the process; a second SIGINT ends it at once."""

    received: str | None = None
    _previous: dict = attrs.field(factory=dict)

    def requested(self) -> str | None:
        return self.received

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = name


def exit_code(signal_name: str) -> int:
    """The shell's exit status for a process ended by ``signal_name`` (130 for SIGINT)."""
    return 128 + int(signal.Signals[signal_name])


@contextlib.contextmanager
def failing_in_one_line(live: LiveRun) -> Iterator[None]:
    """While training: a backend that broke its contract (impossible values, an exception or ``sys.exit``
    in a backend call: :class:`BackendContractError`), any other exception that is not one of hqf's own
    errors, or a ``sys.exit`` elsewhere, fails the run (status ``failed``, its reason in one line, the
    traceback in status.json) with :class:`RunFailedError`."""
    try:
        yield
    except BackendContractError as exc:
        _curves_so_far(live)
        live.failed(str(exc))
        raise RunFailedError(str(live.directory), str(exc)) from exc
    except HqfError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's or hqf's failure: one line, not a traceback
        reason = _one_line(exc)
        _curves_so_far(live)
        live.failed(reason, traceback="".join(traceback.format_exception(exc)))
        raise RunFailedError(str(live.directory), reason) from exc


def _curves_so_far(live: LiveRun) -> None:
    """``curves.csv`` and ``epochs.csv`` of what ran up to the last checkpoint (nothing without one)."""
    try:
        saved = live.load_checkpoint()
    except Exception:  # noqa: BLE001 - an unreadable checkpoint: the failure is still recorded
        return
    if saved is None:
        return
    columns = list(saved["curves"])
    rows = [dict(zip(columns, values)) for values in zip(*saved["curves"].values())]
    write_csv(live.directory / "curves.csv", columns, rows)
    write_csv(live.directory / "epochs.csv", EVAL_COLUMNS, saved["evals"])


@contextlib.contextmanager
def after_training(live: LiveRun, step: int, keep_model: Callable[[pathlib.Path], None]) -> Iterator[None]:
    """While a trained run is evaluated: SIGINT or SIGTERM ends it at once as interrupted, its final
    checkpoint kept (``hqf run --resume`` evaluates it again; :class:`RunInterrupted`); an exception or a
    ``sys.exit`` fails it with the trained model kept (``keep_model(path)`` writes ``model.safetensors``;
    the checkpoint stays too) and :class:`RunFailedError`."""
    with _InterruptNow(live, step):
        try:
            yield
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever failed, the trained model is kept
            cause = str(exc) if isinstance(exc, HqfError) else _one_line(exc)
            model = live.directory / MODEL
            try:
                keep_model(model)
                kept = f"; the trained model is kept in {model}"
            except Exception:  # noqa: BLE001 - the checkpoint still holds it
                kept = f"; the trained state is kept in {live.checkpoint_path}"
            reason = f"after training: {cause}{kept}"
            extra = {"model": MODEL} if model.exists() else {}
            live.write_status(
                "failed", reason=reason, step=step, checkpoint=ckpt.CHECKPOINT, **extra,
                traceback="".join(traceback.format_exception(exc)),
            )  # fmt: skip
            raise RunFailedError(str(live.directory), reason) from exc


@attrs.define
class _InterruptNow(_SignalScope):
    """While entered (in the main thread), SIGINT and SIGTERM end the run at once as interrupted after
    training (its final checkpoint kept), raising :class:`RunInterrupted` where the program is."""

    live: LiveRun
    step: int
    _previous: dict = attrs.field(factory=dict)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.__exit__()  # a second signal finds the usual handlers
        name = signal.Signals(signum).name
        self.live.interrupted(name, self.step)
        self.live.release()
        directory = self.live.directory
        raise RunInterrupted(
            f"interrupted by {name} during the final evaluation (training had finished at iteration {self.step}); "
            f"the trained state is kept in {directory} ({ckpt.CHECKPOINT}); "
            f"finish it with: hqf run --resume {directory}",
            exit_code(name),
        )
