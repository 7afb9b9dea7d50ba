"""``torch-mps``: matrix-product states in torch, batched over rows, with truncation and autograd.

:class:`MpsBackend` lowers a circuit once (``program``: one- and two-site steps, swap networks for
long-range gates, the orthogonality centre's path), runs it on one list of site tensors with a batch
dimension (``chain``), splitting each two-site tensor by a truncated SVD whose backward is written
for MPS bonds (``split``), and reads Pauli words, Hamiltonians and ``Probs`` by contraction
(``readout``). docs/mps.md has the error bound and the gradient.
"""

from hqf.backends.mps.backend import MpsBackend
from hqf.registry.hookspecs import hookimpl

__all__ = ["MpsBackend", "register_backends"]


@hookimpl
def register_backends(register) -> None:
    register(MpsBackend)
