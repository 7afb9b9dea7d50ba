"""``torch``: the embedded state-vector backend, batched, differentiable by torch autograd.

:class:`TorchBackend` compiles each circuit once into a plan (``plan``) run on amplitude-major states
``[2**n, B]``: the leading one-qubit gates as a closed-form product state, each later run of
one-qubit gates as fused per-wire 2×2 matrices applied a block of wires at a time, each run of
CNOT/CZ as one signed permutation, all-Z observables as one matrix product (``steps``,
``measure``). Its backward is the adjoint method on the same plan (``adjoint``); the shift rule's
values come in pairs from one ``π``-shifted run per column (``shift``); at inference, frozen weights
make the circuit one real matrix (``frozen``); broadcast weights on the CPU run through numba kernels
on tiles of rows that stay in cache (``fused``, ``fused_cpu``), circuits of 13 to 24 qubits through
cache-blocked ones (``blocked``, ``blocked_cpu``). ``plain`` is the gate-by-gate path the tests compare
them all against; ``backend.choose_path`` picks the path of each call (docs/torch-backend.md); every
path reads the instance's ``settings`` and ``cache``; ``parallel`` owns the kernels' threads.
"""

from hqf.backends.torch.backend import TorchBackend
from hqf.registry.hookspecs import hookimpl

__all__ = ["TorchBackend", "register_backends"]


@hookimpl
def register_backends(register) -> None:
    register(TorchBackend)
