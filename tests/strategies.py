"""Hypothesis strategies shared by the tests (they live in :mod:`hqf.testing.strategies`), and circuits
built from the circuits they draw."""

from __future__ import annotations

from hqf.quantum.circuit import Circuit, Operation, compose
from hqf.testing.strategies import angle_batches, circuits, pauli_words

__all__ = ["angle_batches", "circuits", "encoded", "pauli_words"]


def encoded(body: Circuit, encoding: list[str]) -> Circuit:
    """``body`` after one-qubit encoding gates on every wire (the data columns come first)."""
    n, ops, column = body.n_qubits, [], 0
    for gate in encoding:
        for q in range(n):
            ops.append(Operation(gate, q, None if gate == "H" else column))
            column += gate != "H"
    return compose(n, [ops, body.operations], body.observables)
