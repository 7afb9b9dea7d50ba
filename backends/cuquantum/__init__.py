"""``cuquantum``: NVIDIA cuStateVec (through cuquantum-python) on a CUDA GPU, batched over the angles.

Every gate of the vocabulary runs, and every observable kind. One idea per module:

- :mod:`~hqf.backends.cuquantum.binding`: where the cuStateVec binding is, the C enum values hqf passes,
  and whether it can run here (:func:`probe`);
- :mod:`~hqf.backends.cuquantum.translation`: a circuit as cuStateVec calls (wire and bit conventions);
- :mod:`~hqf.backends.cuquantum.runner`: one handle applying those calls to a batch of states, batched
  or state by state (option ``batching``);
- :mod:`~hqf.backends.cuquantum.backend`: :class:`CuQuantumBackend`, its options, its passes and its
  adjoint gradient.

Importing this package imports neither cuquantum nor CuPy: the binding is loaded when a backend is probed
or built. They are tested together against one CPU double of the binding (tests/test_backend_cuquantum.py).
"""

from __future__ import annotations

from hqf.backends.cuquantum.backend import CuQuantumBackend
from hqf.backends.cuquantum.binding import binding_name, probe
from hqf.backends.cuquantum.runner import BATCHING
from hqf.registry.hookspecs import hookimpl

__all__ = ["BATCHING", "CuQuantumBackend", "binding_name", "probe", "register_backends"]


@hookimpl
def register_backends(register) -> None:
    register(CuQuantumBackend)
