"""``torch-mps``: a matrix-product-state simulator in torch, batched over rows, differentiable by autograd."""

from __future__ import annotations

import math

import torch

from hqf.backends.mps.chain import Chain
from hqf.backends.mps.program import lower
from hqf.backends.mps.readout import Reader
from hqf.errors import ConfigError
from hqf.quantum.circuit import GATES, MAX_QUBITS, OBSERVABLE_KINDS, Circuit
from hqf.quantum.interfaces import Backend, Capabilities


class MpsBackend(Backend):
    """Each row's state as a matrix-product state; all rows share one set of site tensors with a batch
    dimension. Gates act by contraction and a truncated SVD at the orthogonality centre; long-range
    two-qubit gates go through swap networks; values are read by contraction. Gradients: torch autograd
    through it all, the SVD's backward written for MPS bonds (:mod:`hqf.backends.mps.split`).

    Options:
        chi: the largest bond dimension kept (None: no limit; the result is then exact up to ``cutoff``).
        cutoff: singular values below ``cutoff`` times a row's largest at a bond are dropped.
        broadening: the SVD backward's relative Lorentzian width at degenerate cuts.

    After each :meth:`expval`, :attr:`discarded_weight` ``[B]`` holds each row's sum over all splits of
    the dropped squared singular values (each relative to the row's norm at that split),
    :attr:`error_bound` ``[B]`` the sum of their square roots, which bounds ``‖ψ_exact − ψ_mps‖``, and
    :attr:`max_bond` the largest bond dimension reached. ``|⟨O⟩_mps − ⟨O⟩_exact| ≤ (λ_max(O) −
    λ_min(O)) · error_bound`` (docs/mps.md). The core's parameter-shift rule is exact only when nothing
    is truncated.

    Example::

        >>> from hqf.quantum.circuit import Circuit, Operation, PauliWord
        >>> bell = Circuit(2, [Operation("H", 0), Operation("CNOT", (0, 1))], [PauliWord.parse("Z0 Z1")])
        >>> MpsBackend(chi=2).expval(bell, torch.zeros(1, 0)).item()
        1.0
    """

    name = "torch-mps"
    description = "matrix-product states in torch, batched, backprop (options chi=…, cutoff=…)"
    capabilities = Capabilities(
        dtypes={"complex128"},  # complex64: see docs/mps.md, "Limits"
        devices={"cpu"},  # pure torch, but not yet run on a GPU: declared when checked there
        max_qubits=MAX_QUBITS,
        gradients={"backprop"},
        gates=GATES,
        observables=OBSERVABLE_KINDS,
    )

    def __init__(
        self,
        *,
        chi: int | None = None,
        cutoff: float = 1e-12,
        broadening: float = 1e-10,
        dtype: str = "complex128",
        device: str = "cpu",
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        if chi is not None and (isinstance(chi, bool) or not isinstance(chi, int) or chi < 1):
            raise ConfigError(f"'chi' must be an integer >= 1 or None (got {chi!r})")
        for key, value in (("cutoff", cutoff), ("broadening", broadening)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"{key!r} must be a number in [0, 1) (got {value!r})")
        self.chi, self.cutoff, self.broadening = chi, float(cutoff), float(broadening)
        self.discarded_weight: torch.Tensor | None = None
        self.error_bound: torch.Tensor | None = None
        self.max_bond = 0

    def run(self, circuit: Circuit, angles: torch.Tensor) -> Chain:
        """The state of every row of ``angles[B, P]`` after ``circuit``'s gates."""
        chain = Chain(
            circuit.n_qubits, angles.shape[0], self.complex_dtype, angles.device, self.chi, self.cutoff, self.broadening
        )
        chain.run(lower(circuit), angles)
        self.discarded_weight, self.error_bound, self.max_bond = chain.discarded, chain.error_bound, chain.max_bond
        return chain

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        angles = angles.to(self.real_dtype)
        reader = Reader(self.run(circuit, angles).sites)
        return torch.cat([reader.read(obs) for obs in circuit.observables], dim=1).to(self.real_dtype)

    def exact_bond(self, n_qubits: int) -> int:
        """The bond dimension at which nothing is ever truncated but the ``cutoff``: ``2**⌊n/2⌋``."""
        return 2 ** math.floor(n_qubits / 2)
