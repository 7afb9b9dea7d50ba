"""The cuStateVec binding of cuquantum-python: where it is installed, the functions and C enum values hqf
passes to it, and whether it can run here.

Nothing here imports cuquantum until :func:`load_binding` (or :func:`probe`, which calls it) runs.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import os

import torch

from hqf.quantum.interfaces import Availability

#: where the cuStateVec binding lives: cuquantum-python >= 25.09, then the older location
BINDINGS = ("cuquantum.bindings.custatevec", "cuquantum.custatevec")
EXTRA = "cuquantum"
#: what hqf calls; the batched functions arrived with cuquantum-python 24.03
REQUIRED = (
    "create",
    "destroy",
    "set_stream",
    "apply_matrix",
    "apply_matrix_get_workspace_size",
    "apply_matrix_batched",
    "apply_matrix_batched_get_workspace_size",
    "compute_expectation_batched",
    "compute_expectation_batched_get_workspace_size",
    "compute_expectations_on_pauli_basis",
)

# C enum values (library_types.h, custatevec.h); plain ints work with every binding version.
CUDA_C_32F, CUDA_C_64F = 4, 5
COMPUTE_32F, COMPUTE_64F = 1 << 2, 1 << 4
LAYOUT_ROW = 1
MAP_BROADCAST, MAP_MATRIX_INDEXED = 0, 1
PAULI_CODE = {"X": 1, "Y": 2, "Z": 3}


def binding_name() -> str | None:
    """The cuStateVec binding module that is installed, found without importing cuquantum."""
    top = importlib.util.find_spec("cuquantum")
    if top is None or not top.submodule_search_locations:
        return None
    for name in BINDINGS:
        parts = name.split(".")[1:]
        paths = [os.path.join(p, *parts[:-1]) for p in top.submodule_search_locations]
        if importlib.machinery.PathFinder.find_spec(parts[-1], paths) is not None:
            return name
    return None


def load_binding():
    """The installed cuStateVec binding module, imported; an ImportError when it lacks a function hqf calls."""
    name = binding_name()
    if name is None:
        raise ModuleNotFoundError("no cuStateVec binding found in package 'cuquantum'")
    module = importlib.import_module(name)
    missing = [f for f in REQUIRED if not hasattr(module, f)]
    if missing:
        raise ImportError(f"{name} lacks {', '.join(missing)}; cuquantum-python >= 24.03 is needed")
    return module


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


@functools.cache
def probe() -> Availability:
    """Whether cuStateVec can run here: package, then a CUDA GPU, then a handle made and destroyed."""
    if binding_name() is None:
        return Availability.missing_package("cuquantum", EXTRA)
    if not torch.cuda.is_available():
        return Availability(False, "no CUDA GPU visible to torch")
    try:  # an import error, a missing CUDA library or a driver problem all land here
        cusv = load_binding()
        with torch.cuda.device(0):
            cusv.destroy(cusv.create())
    except Exception as exc:
        return Availability(False, f"cuStateVec could not start: {_one_line(exc)}")
    return Availability(True)
