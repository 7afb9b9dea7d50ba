"""``hea{Q}x{L}``: the hardware-efficient ansatz of the seed paper (8 qubits, depth 6 there)."""

from __future__ import annotations

from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Ansatz


def cnot_ring(n_qubits: int) -> tuple[Operation, ...]:
    """CNOTs (0,1), (1,2), …, (Q−1,0); for two qubits (0,1), (1,0); none for one qubit."""
    if n_qubits == 1:
        return ()
    return tuple(Operation("CNOT", (q, (q + 1) % n_qubits)) for q in range(n_qubits))


class HardwareEfficient(Ansatz):
    """L layers, each RY then RZ on every qubit, then a CNOT ring; ``2·Q·L`` weights.

    Weight ``w[l, q, 0]`` is the RY angle and ``w[l, q, 1]`` the RZ angle of qubit ``q`` in layer ``l``.

    Example::

        >>> HardwareEfficient(8, 6).n_weights
        96
    """

    name = "hea"

    @staticmethod
    def shape(n_qubits: int, n_layers: int) -> tuple[int, ...]:
        return (n_layers, n_qubits, 2)

    def operations(self) -> tuple[Operation, ...]:
        ops: list[Operation] = []
        for layer in range(self.n_layers):
            for q in range(self.n_qubits):
                base = 2 * (layer * self.n_qubits + q)
                ops += [Operation("RY", q, base), Operation("RZ", q, base + 1)]
            ops += cnot_ring(self.n_qubits)
        return tuple(ops)
