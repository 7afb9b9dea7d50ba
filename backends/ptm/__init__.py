"""The ``ptm`` backend: exact noisy circuits as Pauli transfer matrices in compiled kernels."""

from __future__ import annotations

from hqf.backends.ptm.backend import PtmBackend
from hqf.registry.hookspecs import hookimpl


@hookimpl
def register_backends(register) -> None:
    register(PtmBackend)


__all__ = ["PtmBackend", "register_backends"]
