"""``angle``: one rotation per qubit whose angle is a feature (or a learned, bounded projection of them)."""

from __future__ import annotations

import math

import torch

from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Encoder

ROTATIONS = ("RX", "RY", "RZ")
PROJECTIONS = ("auto", "always", "never")


class AngleEncoder(Encoder):
    """Angle encoding: qubit ``q`` is rotated by ``R(θ_q)`` with ``R`` one of RX, RY, RZ.

    Angles:

    - without a projection (``in_features == n_qubits`` and ``projection`` is ``auto`` or ``never``):
      ``θ_q = scale · x_q``, no trainable parameters;
    - with a projection (``in_features != n_qubits`` under ``auto``, or always under ``always``):
      ``θ = π · tanh(W x + b)`` with ``W, b`` a learnable ``nn.Linear(in_features, n_qubits)``, so the angles stay in
      ``(−π, π)`` (``[−π, π]`` once float32 ``tanh`` saturates). This covers more features than qubits (the usual case:
      a 128-wide latent into 8 qubits) and also fewer features than qubits (a learned lift; no zero padding).

    ``RZ`` on ``|0⟩`` only adds a phase, so an RZ-only encoding would be invisible. With
    ``rotation="RZ"`` each qubit therefore gets a Hadamard first (``H`` then ``RZ(θ)``: the Bloch vector
    is turned by ``θ`` in the equatorial plane, ``⟨X⟩ = cos θ``, ``⟨Y⟩ = sin θ``, ``⟨Z⟩ = 0``). The
    following ansatz must contain non-diagonal gates for Pauli-Z read-out to see it (hea, basic and
    sel all do).

    Args:
        in_features: width of the input ``x[B, in_features]``.
        n_qubits: number of qubits (one angle each).
        rotation: ``"RX"``, ``"RY"`` (default) or ``"RZ"``.
        scale: factor applied to the features when there is no projection (default 1.0).
        projection: ``"auto"`` (default), ``"always"`` or ``"never"``; ``"never"`` with
            ``in_features != n_qubits`` is an error.

    Raises:
        ValueError: an unknown rotation or projection mode, a non-finite scale, or ``projection="never"``
            with ``in_features != n_qubits``.

    Example::

        >>> enc = AngleEncoder(4, 4, rotation="RX")
        >>> enc(torch.zeros(2, 4)).shape
        torch.Size([2, 4])
        >>> AngleEncoder(128, 8).n_angles
        8
    """

    name = "angle"

    def __init__(
        self,
        in_features: int,
        n_qubits: int,
        *,
        rotation: str = "RY",
        scale: float = 1.0,
        projection: str = "auto",
    ) -> None:
        super().__init__(in_features, n_qubits)
        rotation = str(rotation).upper()
        if rotation not in ROTATIONS:
            raise ValueError(f"'rotation' must be one of {ROTATIONS} (got {rotation!r})")
        if projection not in PROJECTIONS:
            raise ValueError(f"'projection' must be one of {PROJECTIONS} (got {projection!r})")
        if not math.isfinite(float(scale)):
            raise ValueError(f"'scale' must be a finite number (got {scale!r})")
        if projection == "never" and in_features != n_qubits:
            raise ValueError(
                f"projection='never' needs in_features == n_qubits (got {in_features} features "
                f"for {n_qubits} qubits); use projection='auto' for a learned projection"
            )
        self.rotation, self.scale = rotation, float(scale)
        use_projection = projection == "always" or (projection == "auto" and in_features != n_qubits)
        self.projection = torch.nn.Linear(in_features, n_qubits) if use_projection else None

    def operations(self) -> tuple[Operation, ...]:
        ops: list[Operation] = []
        for q in range(self.n_qubits):
            if self.rotation == "RZ":
                ops.append(Operation("H", q))
            ops.append(Operation(self.rotation, q, q))
        return tuple(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of shape [B, {self.in_features}] (got {list(x.shape)})")
        if self.projection is None:
            return self.scale * x
        projection = self.projection
        dtype = projection.weight.dtype
        return math.pi * torch.tanh(projection(x if x.dtype == dtype else x.to(dtype)))

    def extra_repr(self) -> str:
        mode = "projection" if self.projection is not None else f"scale={self.scale}"
        return f"{self.in_features} -> {self.n_qubits} qubits, rotation={self.rotation}, {mode}"
