"""``basis``: a bit string as a computational basis state, bit ``i`` on wire ``i``."""

from __future__ import annotations

import math

import torch

from hqf.errors import DataError
from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Encoder


class BasisEncoder(Encoder):
    """Basis encoding: ``x[B, n]`` with entries 0 or 1 becomes ``|x_0 x_1 … x_{n−1}⟩`` (wire 0 = ``x_0``).

    Angle layout: column ``i`` is ``π · x_i``, read by ``RX`` on wire ``i`` (``n`` columns, wire order).
    ``RX(π) = −iX``, so a bit 1 flips its wire up to a global phase and a bit 0 leaves it alone; the
    circuit is the same for every input (the data only sets angles), as every backend and the
    parameter-shift rule need. No trainable parameters.

    The check for 0/1 applies to what reaches the encoder, after whatever the model does first: with
    the default ``quantum_input="latent"`` that is the backbone's output, which is not binary. Use
    ``quantum_input="input"`` with bit-valued features.

    Args:
        in_features: the number of bits; must equal ``n_qubits``.
        n_qubits: number of qubits.

    Raises:
        ValueError: ``in_features != n_qubits``.
        hqf.errors.DataError: (at call time) an entry that is not exactly 0 or 1.

    Example::

        >>> enc = BasisEncoder(3, 3)
        >>> enc(torch.tensor([[1.0, 0.0, 1.0]]))
        tensor([[3.1416, 0.0000, 3.1416]])
    """

    name = "basis"

    def __init__(self, in_features: int, n_qubits: int) -> None:
        super().__init__(in_features, n_qubits)
        if in_features != n_qubits:
            raise ValueError(
                f"basis encoding puts one bit on each of the {n_qubits} qubit(s) (got {in_features} features)"
            )

    def operations(self) -> tuple[Operation, ...]:
        return tuple(Operation("RX", q, q) for q in range(self.n_qubits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of shape [B, {self.in_features}] (got {list(x.shape)})")
        bad = ~((x == 0) | (x == 1))
        if bool(bad.any()):
            row, column = (int(i) for i in bad.nonzero()[0])
            raise DataError(
                f"basis encoding takes bits 0 or 1; got {float(x[row, column])!r} at row {row}, feature {column}"
            )
        return math.pi * x

    def extra_repr(self) -> str:
        return f"{self.in_features} bits -> {self.n_qubits} qubits"
