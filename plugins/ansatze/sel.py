"""``sel{Q}x{L}``: PennyLane's StronglyEntanglingLayers (a general rotation per qubit, ranged CNOTs)."""

from __future__ import annotations

from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Ansatz


def layer_range(layer: int, n_qubits: int) -> int:
    """PennyLane's default range of layer ``l``: ``(l mod (Q−1)) + 1``, cycling through 1..Q−1."""
    return layer % (n_qubits - 1) + 1


class StronglyEntangling(Ansatz):
    """L layers of ``Rot = RZ·RY·RZ`` on every qubit, then CNOTs ``(i, (i + r) mod Q)`` for all ``i``.

    ``Rot(φ, θ, ω) = RZ(ω) RY(θ) RZ(φ)``: weight ``w[l, q, 0] = φ`` is applied first, then
    ``w[l, q, 1] = θ``, then ``w[l, q, 2] = ω``; ``3·Q·L`` weights, shape ``(L, Q, 3)``. The range of
    layer ``l`` is :func:`layer_range`, PennyLane's default; one qubit gets no CNOTs. Gate for gate
    ``qml.StronglyEntanglingLayers(weights, wires=range(Q))`` with Rot expanded into three rotations.

    Example::

        >>> StronglyEntangling(4, 2).n_weights
        24
    """

    name = "sel"

    @staticmethod
    def shape(n_qubits: int, n_layers: int) -> tuple[int, ...]:
        return (n_layers, n_qubits, 3)

    def operations(self) -> tuple[Operation, ...]:
        n = self.n_qubits
        ops: list[Operation] = []
        for layer in range(self.n_layers):
            for q in range(n):
                base = 3 * (layer * n + q)
                ops += [Operation("RZ", q, base), Operation("RY", q, base + 1), Operation("RZ", q, base + 2)]
            if n > 1:
                r = layer_range(layer, n)
                ops += [Operation("CNOT", (q, (q + r) % n)) for q in range(n)]
        return tuple(ops)
