"""Checkpoints: what a run needs to continue bit for bit, and files written atomically.

A checkpoint (``RUN_DIR/checkpoint.pt``, :data:`CHECKPOINT`) is a dict saved with ``torch.save`` and
read with ``torch.load(..., weights_only=True)`` (tensors and plain Python values only: nothing is
unpickled). It holds the training position (:meth:`hqf.learn.training.loop.Training.state`: model and
optimizer state, the data order of the current epoch and how far into it, the curves and validation
rows so far) and, added here, every random-number state a run draws from: torch's global generator
(and CUDA's where initialized), numpy's and Python's global generators, and the ``torch.Generator``
objects of the loss terms. A dataset fingerprint guards against resuming on other data, and a record
of the configuration it trained with (:func:`config_record`: a hash and the values) against resuming
under a configuration edited since (:func:`check_config`); a change the user allows is written into
the checkpoint before training continues (:func:`accept_config`).

Every file is written atomically: into a temporary file in the same folder, flushed and
``fsync``-ed, renamed over the target (``os.replace``), then the folder is ``fsync``-ed. A reader
sees the old file or the new one, never a part. The temporary file is created afresh (never opened
through a symbolic link); one a killed process left is removed when its run resumes
(:func:`remove_temporaries`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import pickle
import random
import re
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import numpy as np
import torch

from hqf.errors import ConfigError
from hqf.learn.rundir import state as runstate
from hqf.learn.rundir.folder import RUN_FILES
from hqf.learn.rundir.lock import LOCK, alive

CHECKPOINT = runstate.CHECKPOINT
#: the layout of a checkpoint; one written by another layout is refused, never misread
FORMAT = 1
#: the temporary files hqf writes into a run directory, with the pid of the process that wrote them:
#: :func:`atomic_write`'s ``.<name>.tmp-<pid>`` and the lock's (:mod:`hqf.learn.rundir.lock`)
TEMPORARY = re.compile(
    rf"\.(?P<name>[^/]+)\.tmp-(?P<pid>\d+)|\.{LOCK}\.(?P<lock>\d+)\.tmp|{LOCK}\.stale-(?P<stale>\d+)"
)
#: configuration keys a resumed run may change (``hqf run --resume DIR --allow-changed KEY``): the
#: checkpoint carries on under a new value of each. The others shape the model, the data, the batches
#: or the optimizer's state, which the checkpoint holds as they were.
CHANGEABLE = (
    "lr", "momentum", "weight_decay", "epochs", "max_iterations", "eps", "delta", "grad_ema", "eval_every",
    "checkpoint_every", "threads", "tensorboard", "vai_sigma", "vai_samples", "vai_draws", "latency_repeats",
    "input_noise", "input_noise_on", "regularizer_options",
)  # fmt: skip
#: configuration key -> the optimizer's setting it is (written into a checkpoint's optimizer state on a change)
OPTIMIZER_KEYS = {"lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay"}


def _fsync_dir(folder: pathlib.Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | pathlib.Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(handle)``: temporary file, fsync, rename, fsync of the folder."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = _create_temporary(tmp)  # from here on the file is hqf's own, removed if the write fails
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _create_temporary(tmp: pathlib.Path) -> int:
    """A new file ``tmp`` open for writing; a regular file of that name (this pid's, left by a killed
    process) is replaced, anything else there (a symbolic link) is refused."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(tmp, flags, 0o644)
    except FileExistsError:
        if not stat.S_ISREG(os.lstat(tmp).st_mode):
            raise ConfigError(f"{tmp} exists and is not a file hqf wrote; remove it (nothing was written)") from None
        os.unlink(tmp)
        return os.open(tmp, flags, 0o644)


def remove_temporaries(directory: str | pathlib.Path) -> list[str]:
    """Remove from ``directory`` the temporary files of hqf's writes whose process is gone (:data:`TEMPORARY`
    of a file hqf writes there, :data:`hqf.learn.rundir.folder.RUN_FILES`: a write cut off by a kill);
    regular files only (never a symbolic link, nothing in a linked folder). Returns their names."""
    directory = pathlib.Path(directory)
    if directory.is_symlink() or not directory.is_dir():
        return []
    removed = []
    for item in directory.iterdir():
        match = TEMPORARY.fullmatch(item.name)
        if match is None or (match["name"] is not None and match["name"] not in RUN_FILES):
            continue
        pid = int(match["pid"] or match["lock"] or match["stale"])
        try:
            regular = stat.S_ISREG(os.lstat(item).st_mode)
        except FileNotFoundError:
            continue
        if regular and (pid == os.getpid() or not alive(pid)):
            item.unlink(missing_ok=True)
            removed.append(item.name)
    return sorted(removed)


def atomic_write_text(path: str | pathlib.Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def generators_of(objects: Iterable[object]) -> dict[str, torch.Generator]:
    """The ``torch.Generator`` attributes of ``objects`` (e.g. the loss terms' regularizers), by
    ``"<index>.<attribute>"``: the generators a checkpoint saves beside the global ones."""
    found = {}
    for index, obj in enumerate(objects):
        for name, value in sorted(vars(obj).items()):
            if isinstance(value, torch.Generator):
                found[f"{index}.{name}"] = value
    return found


def backend_generators(backend: object | None) -> dict[str, torch.Generator]:
    """The ``torch.Generator`` a simulator backend draws from (its ``generator`` attribute: the branches
    of the trajectories), as ``{"backend.generator": ...}``; empty for a backend that draws nothing."""
    generator = getattr(backend, "generator", None)
    return {"backend.generator": generator} if isinstance(generator, torch.Generator) else {}


@contextlib.contextmanager
def kept_states(generators: Mapping[str, torch.Generator]) -> Iterator[None]:
    """Within, ``generators`` may draw; after, they are back in the states they had before."""
    states = {key: generator.get_state() for key, generator in generators.items()}
    try:
        yield
    finally:
        for key, generator in generators.items():
            generator.set_state(states[key])


def rng_state(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """Every random-number state: torch (CPU, CUDA where initialized), numpy, Python, ``generators``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "generators": {key: g.get_state() for key, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Set every generator :func:`rng_state` recorded; a generator missing from either side is an error."""
    if set(state["generators"]) != set(generators):
        raise ConfigError(
            f"the checkpoint's generators {sorted(state['generators'])} do not match this run's {sorted(generators)}"
        )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["name"], keys, numpy["pos"], numpy["has_gauss"], numpy["cached"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    for key, generator in generators.items():
        generator.set_state(state["generators"][key])


def fingerprint(arrays: Iterable[np.ndarray]) -> str:
    """A digest of the bytes, shapes and dtypes of ``arrays`` (the data a run trains and validates on)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def config_hash(values: Mapping[str, Any]) -> str:
    """A digest of a configuration's values (:meth:`hqf.learn.config.RunConfig.to_dict`)."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def config_record(config) -> dict[str, Any]:
    """What a checkpoint records of the configuration ``config`` (a RunConfig) it trains with: values and hash."""
    values = config.to_dict()
    return {"hash": config_hash(values), "values": values}


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_changes(saved: Mapping[str, Any], config) -> dict[str, tuple[Any, Any]]:
    """The keys (``a.b`` inside a table) whose value in ``config`` differs from the one the checkpoint
    ``saved`` recorded, as ``{key: (saved value, new value)}``; empty when the hashes agree or the
    checkpoint has no record (it was written before hqf recorded one)."""
    record = saved.get("config")
    if not isinstance(record, Mapping):
        return {}
    values = config.to_dict()
    if record.get("hash") == config_hash(values):
        return {}
    old, new = _flat(record.get("values") or {}), _flat(values)
    changed = {
        key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)
    }
    return changed or {"(configuration)": (record.get("hash"), config_hash(values))}


def _allowed(key: str, allowed: Iterable[str]) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in allowed)


def check_config(saved: Mapping[str, Any], config, directory: str | pathlib.Path, allowed: Iterable[str] = ()) -> dict:
    """The changes :func:`config_changes` finds, when every one is under a key of ``allowed``; else a
    ConfigError naming the keys that differ (the checkpoint trained with the recorded values)."""
    allowed = tuple(allowed)
    changed = config_changes(saved, config)
    refused = [key for key in changed if not _allowed(key, allowed)]
    if refused:
        shown = "; ".join(f"{key}: {_show(changed[key][0])} -> {_show(changed[key][1])}" for key in refused)
        keys = ",".join(dict.fromkeys(key.split(".")[0] for key in refused))
        raise ConfigError(
            f"{pathlib.Path(directory) / runstate.CONFIG} differs from the configuration its checkpoint trained "
            f"with ({shown}); restore it, or continue under the new values: "
            f"hqf run --resume {directory} --allow-changed {keys}"
        )
    return changed


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else json.dumps(value)


def check_changeable(keys: Iterable[str]) -> tuple[str, ...]:
    """``--allow-changed``'s keys (comma-separated or repeated), each in :data:`CHANGEABLE`; else a ConfigError."""
    names = tuple(dict.fromkeys(k.strip() for text in keys for k in text.split(",") if k.strip()))
    wrong = [name for name in names if name.split(".")[0].replace("-", "_") not in CHANGEABLE]
    if wrong:
        raise ConfigError(
            f"--allow-changed {', '.join(wrong)}: a resumed run cannot change "
            f"{'this key' if len(wrong) == 1 else 'these keys'} (its checkpoint holds the model, the data order and "
            f"the optimizer's state they shape); it can change: {', '.join(CHANGEABLE)}"
        )
    return tuple(name.replace("-", "_") for name in names)


def accept_config(path: str | pathlib.Path, config) -> None:
    """Record ``config`` in the checkpoint at ``path`` as the one it continues under: its record, and the
    optimizer's learning rate, momentum and weight decay where the optimizer has them."""
    state = load(path)
    optimizer = state.get("optimizer")
    for group in optimizer.get("param_groups", []) if isinstance(optimizer, dict) else []:
        for key, setting in OPTIMIZER_KEYS.items():
            if setting in group:
                group[setting] = getattr(config, key)
    state["config"] = config_record(config)
    save(path, {k: v for k, v in state.items() if k != "format"})


def save(path: str | pathlib.Path, state: Mapping[str, Any]) -> None:
    """Write the checkpoint ``state`` to ``path`` atomically."""
    atomic_write(path, lambda handle: torch.save({"format": FORMAT, **state}, handle))


def load(path: str | pathlib.Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save` (``weights_only=True``: tensors and plain values only)."""
    try:
        with warnings.catch_warnings():  # e.g. torch's note on a foreign pickle protocol: the error below says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise ConfigError(f"{path} is not a readable hqf checkpoint ({exc.strerror or type(exc).__name__})") from None
    except pickle.UnpicklingError:
        raise ConfigError(
            f"{path} is not a readable hqf checkpoint: it holds objects other than tensors and plain values "
            "(refused: hqf never unpickles them)"
        ) from None
    except Exception:  # noqa: BLE001  a truncated or foreign file: torch's reader fails in many ways
        raise ConfigError(f"{path} is not a readable hqf checkpoint: it is truncated or not a torch file") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an hqf checkpoint of format {FORMAT}")
    return state
