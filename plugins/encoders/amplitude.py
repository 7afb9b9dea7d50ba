"""``amplitude``: 2^n real features as the amplitudes of n qubits, prepared with RY and CNOT gates only."""

from __future__ import annotations

import functools

import torch

from hqf.errors import DataError
from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Encoder


def gray(i: int) -> int:
    return i ^ (i >> 1)


@functools.lru_cache(maxsize=32)
def walsh_gray_matrix(n_controls: int) -> torch.Tensor:
    """``M[b, i] = (−1)^popcount(b & gray(i))``, ``[2^k, 2^k]`` float64.

    The RY angles ``β`` of the decomposed uniformly controlled rotation give the angle ``α_b`` seen
    by control pattern ``b`` as ``α = M β``; ``M`` is orthogonal up to ``2^k``, so ``β = Mᵀα / 2^k``.
    """
    size = 2**n_controls
    rows = torch.arange(size).unsqueeze(1)
    cols = torch.tensor([gray(i) for i in range(size)]).unsqueeze(0)
    both = rows & cols
    parity = torch.zeros_like(both)
    for bit in range(max(n_controls, 1)):
        parity ^= (both >> bit) & 1
    return (1 - 2 * parity).to(torch.float64)


def uniformly_controlled_ry(target: int, first_column: int) -> list[Operation]:
    """RY/CNOT sequence of a uniformly controlled RY on ``target`` controlled by wires ``0..target−1``.

    ``2^target`` RYs reading columns ``first_column, first_column+1, …`` interleaved with CNOTs whose
    controls follow the Gray code (Möttönen et al., 2004); for ``target == 0`` a single RY.
    """
    size = 2**target
    ops: list[Operation] = []
    for i in range(size):
        ops.append(Operation("RY", target, first_column + i))
        if target == 0:
            break
        changed = gray(i) ^ gray((i + 1) % size)  # one bit; bit p is control wire target−1−p
        ops.append(Operation("CNOT", (target - 1 - (changed.bit_length() - 1), target)))
    return ops


def _safe_norm(blocks: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last axis with gradient 0 (not NaN) at a zero block."""
    squared = (blocks * blocks).sum(dim=-1)
    positive = squared > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, squared, torch.ones_like(squared))), 0.0)


def _safe_atan2(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``atan2(y, x)``, defined as 0 with gradient 0 at ``(0, 0)``."""
    origin = (x == 0) & (y == 0)
    return torch.where(origin, 0.0, torch.atan2(y, torch.where(origin, torch.ones_like(x), x)))


class AmplitudeEncoder(Encoder):
    """Amplitude encoding: ``x[B, 2^n]`` becomes the state ``Σ_i (x_i/‖x‖) |i⟩`` (wire 0 = top bit).

    The state is prepared from ``|0…0⟩`` by a binary tree of uniformly controlled RY rotations
    (Möttönen et al., "Transformation of quantum states using uniformly controlled rotations", 2004),
    each decomposed into plain RY and CNOT gates, so every backend and the parameter-shift rule apply.
    Level ``k`` (target wire ``k``, controls wires ``0..k−1``) splits each prefix block ``b`` of the
    amplitudes in two halves with norms ``r₀, r₁`` and rotates by ``α_b = 2·atan2(r₁, r₀)``; at the last
    level the halves are single amplitudes and the signed values are used, ``α_b = 2·atan2(x₁, x₀)``,
    which carries the signs. ``2^n − 1`` RY angles and ``2^n − 2`` CNOTs in all. Real amplitudes only.

    The angles are torch functions of ``x`` (gradients reach ``x``); they depend on ``x/‖x‖`` only.
    Where a block is exactly zero its angle is 0 with zero gradient (a subgradient choice).

    Args:
        in_features: must be ``2^n_qubits``; with ``pad=True`` anything up to ``2^n_qubits``.
        n_qubits: number of qubits.
        pad: zero-pad inputs with fewer than ``2^n_qubits`` features (default False: an error).

    Raises:
        ValueError: ``in_features`` does not fit ``n_qubits``.
        hqf.errors.DataError: (at call time) an input row that is all zeros or not finite.

    Example::

        >>> enc = AmplitudeEncoder(16, 4)
        >>> enc.n_angles, enc(torch.randn(3, 16, dtype=torch.float64)).shape
        (15, torch.Size([3, 15]))
    """

    name = "amplitude"

    def __init__(self, in_features: int, n_qubits: int, *, pad: bool = False) -> None:
        super().__init__(in_features, n_qubits)
        size = 2**n_qubits
        if in_features > size or (in_features < size and not pad):
            raise ValueError(
                f"amplitude encoding of {n_qubits} qubit(s) takes {size} features (got {in_features})"
                + ("; pass pad=True to zero-pad fewer features" if in_features < size else "")
            )
        self.pad = bool(pad)

    def operations(self) -> tuple[Operation, ...]:
        ops: list[Operation] = []
        for level in range(self.n_qubits):
            ops += uniformly_controlled_ry(level, 2**level - 1)
        return tuple(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of shape [B, {self.in_features}] (got {list(x.shape)})")
        if not bool(torch.isfinite(x).all()):
            raise DataError("amplitude encoding got a non-finite feature (NaN or infinity)")
        zero_rows = (x == 0).all(dim=1).nonzero().flatten().tolist()
        if zero_rows:
            raise DataError(
                f"amplitude encoding cannot normalize an all-zero input (rows {zero_rows[:8]}"
                f"{'...' if len(zero_rows) > 8 else ''} of the batch)"
            )
        n, batch = self.n_qubits, x.shape[0]
        if x.shape[1] < 2**n:
            x = torch.nn.functional.pad(x, (0, 2**n - x.shape[1]))
        columns = []
        for level in range(n):
            halves = x.reshape(batch, 2**level, 2, 2 ** (n - level - 1))
            if level < n - 1:
                r0, r1 = _safe_norm(halves[:, :, 0, :]), _safe_norm(halves[:, :, 1, :])
            else:
                r0, r1 = halves[:, :, 0, 0], halves[:, :, 1, 0]
            alpha = 2 * _safe_atan2(r1, r0)  # [B, 2^level], one angle per control pattern
            matrix = walsh_gray_matrix(level).to(dtype=alpha.dtype, device=alpha.device)
            columns.append(alpha @ matrix / 2**level)
        return torch.cat(columns, dim=1)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.n_qubits} qubits{', pad' if self.pad else ''}"
