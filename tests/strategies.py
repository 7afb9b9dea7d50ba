"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from hqf.circuit import GATES, Circuit, Operation, PauliWord


@st.composite
def circuits(draw, min_qubits: int = 1, max_qubits: int = 8, max_ops: int = 24, paulis: str = "XYZ"):
    """Random circuits over the whole gate set with random Pauli-word observables."""
    n = draw(st.integers(min_qubits, max_qubits))
    gates = [g for g, (arity, _) in GATES.items() if arity <= n]
    ops, n_params = [], 0
    for _ in range(draw(st.integers(1, max_ops))):
        gate = draw(st.sampled_from(gates))
        arity, parameterized = GATES[gate]
        wires = tuple(draw(st.permutations(range(n)))[:arity])
        param = None
        if parameterized:
            param, n_params = n_params, n_params + 1
        ops.append(Operation(gate, wires, param))
    observables = []
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, min(n, 3)))
        wires = draw(st.permutations(range(n)))[:k]
        observables.append(PauliWord((w, draw(st.sampled_from(paulis))) for w in wires))
    return Circuit(n, ops, observables)


def angle_batches(circuit: Circuit, max_batch: int = 3):
    """Real angle matrices ``[B, P]`` for a circuit, entries in [-2π, 2π]."""
    return st.integers(1, max_batch).flatmap(
        lambda b: st.lists(
            st.floats(-2 * math.pi, 2 * math.pi, allow_nan=False), min_size=b * circuit.n_params, max_size=b * circuit.n_params
        ).map(lambda xs: np.asarray(xs, dtype=np.float64).reshape(b, circuit.n_params))
    )
