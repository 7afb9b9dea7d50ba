"""``basic{Q}x{L}``: PennyLane's BasicEntanglerLayers (one RX per qubit, then a CNOT ring)."""

from __future__ import annotations

from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Ansatz


def basic_ring(n_qubits: int) -> tuple[Operation, ...]:
    """The entangler of BasicEntanglerLayers: CNOTs (0,1), …, (Q−1,0); one CNOT (0,1) for two qubits."""
    if n_qubits == 1:
        return ()
    if n_qubits == 2:
        return (Operation("CNOT", (0, 1)),)
    return tuple(Operation("CNOT", (q, (q + 1) % n_qubits)) for q in range(n_qubits))


class BasicEntangler(Ansatz):
    """L layers, each RX(w[l, q]) on every qubit, then a CNOT ring; ``Q·L`` weights, shape ``(L, Q)``.

    Gate for gate the decomposition of ``qml.BasicEntanglerLayers(weights, wires=range(Q))`` with its
    default rotation RX, including its special case of a single CNOT for two qubits (and none for one).

    Example::

        >>> BasicEntangler(4, 3).n_weights
        12
    """

    name = "basic"

    @staticmethod
    def shape(n_qubits: int, n_layers: int) -> tuple[int, ...]:
        return (n_layers, n_qubits)

    def operations(self) -> tuple[Operation, ...]:
        ops: list[Operation] = []
        for layer in range(self.n_layers):
            ops += [Operation("RX", q, layer * self.n_qubits + q) for q in range(self.n_qubits)]
            ops += basic_ring(self.n_qubits)
        return tuple(ops)
