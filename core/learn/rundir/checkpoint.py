"""Checkpoints: what a run needs to continue bit for bit, and files written atomically.

A checkpoint (``RUN_DIR/checkpoint.pt``, :data:`CHECKPOINT`) is a dict saved with ``torch.save`` and
read with ``torch.load(..., weights_only=True)`` (tensors and plain Python values only: nothing is
unpickled). It holds the training position (:meth:`hqf.learn.training.loop.Training.state`: model and
optimizer state, the data order of the current epoch and how far into it, the curves and validation
rows so far) and, added here, every random-number state a run draws from: torch's global generator
(and CUDA's where initialized), numpy's and Python's global generators, and the ``torch.Generator``
objects of the loss terms. A dataset fingerprint guards against resuming on other data.

Every file is written atomically: into a temporary file in the same folder, flushed and
``fsync``-ed, renamed over the target (``os.replace``), then the folder is ``fsync``-ed. A reader
sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import numpy as np
import torch

from hqf.errors import ConfigError
from hqf.learn.rundir import state as runstate

CHECKPOINT = runstate.CHECKPOINT
#: the layout of a checkpoint; one written by another layout is refused, never misread
FORMAT = 1


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
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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


def save(path: str | pathlib.Path, state: Mapping[str, Any]) -> None:
    """Write the checkpoint ``state`` to ``path`` atomically."""
    atomic_write(path, lambda handle: torch.save({"format": FORMAT, **state}, handle))


def load(path: str | pathlib.Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save` (``weights_only=True``: tensors and plain values only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"no checkpoint at {path}") from None
    except Exception as exc:  # noqa: BLE001  a truncated or foreign file: unpickling errors of many kinds
        raise ConfigError(f"{path} is not a readable hqf checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an hqf checkpoint of format {FORMAT}")
    return state
