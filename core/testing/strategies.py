"""Hypothesis strategies for circuits over hqf's whole gate set, angle batches and Pauli observables."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from hqf.quantum.circuit import GATES, Circuit, Operation, PauliWord


@st.composite
def distinct_wires(draw, n_qubits: int, count: int) -> tuple[int, ...]:
    """``count`` distinct wires below ``n_qubits``, drawn so that they shrink towards 0, 1, ..."""
    wires: list[int] = []
    for k in range(count):
        wire = draw(st.integers(0, n_qubits - 1 - k))
        for taken in sorted(wires):  # skip the wires already drawn
            wire += wire >= taken
        wires.append(wire)
    return tuple(wires)


@st.composite
def pauli_words(draw, n_qubits: int, max_factors: int = 3, paulis: str = "XYZ") -> PauliWord:
    """A Pauli word of 1..``max_factors`` factors on distinct wires below ``n_qubits``."""
    k = draw(st.integers(1, min(n_qubits, max_factors)))
    wires = draw(distinct_wires(n_qubits, k))
    return PauliWord((w, draw(st.sampled_from(paulis))) for w in wires)


@st.composite
def circuits(draw, min_qubits: int = 1, max_qubits: int = 8, max_ops: int = 24, paulis: str = "XYZ",
             max_observables: int = 3) -> Circuit:
    """Random circuits over the whole gate set with 1..``max_observables`` random Pauli-word observables."""
    n = draw(st.integers(min_qubits, max_qubits))
    gates = [g for g, (arity, _) in GATES.items() if arity <= n]
    ops, n_params = [], 0
    for _ in range(draw(st.integers(1, max_ops))):
        gate = draw(st.sampled_from(gates))
        arity, parameterized = GATES[gate]
        wires = draw(distinct_wires(n, arity))
        param = None
        if parameterized:
            param, n_params = n_params, n_params + 1
        ops.append(Operation(gate, wires, param))
    observables = [draw(pauli_words(n, paulis=paulis)) for _ in range(draw(st.integers(1, max_observables)))]
    return Circuit(n, ops, observables)


def angle_batches(circuit: Circuit, max_batch: int = 3, min_batch: int = 1):
    """Real angle matrices ``[B, P]`` (float64 numpy) for a circuit, entries in [-2π, 2π]."""
    width = circuit.n_params
    return st.integers(min_batch, max_batch).flatmap(
        lambda b: st.lists(
            st.floats(-2 * math.pi, 2 * math.pi, allow_nan=False), min_size=b * width, max_size=b * width
        ).map(lambda xs: np.asarray(xs, dtype=np.float64).reshape(b, width))
    )
