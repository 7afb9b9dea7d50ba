"""Hypothesis strategies for circuits over hqf's gate set (or the part a backend declares), angle
batches and observables (Pauli words, Hamiltonians, probabilities)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from hqf.quantum.circuit import GATES, UNITARY, UNITARY_MAX_WIRES, Circuit, Hamiltonian, Operation, PauliWord, Probs


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
def hamiltonians(draw, n_qubits: int, max_terms: int = 3) -> Hamiltonian:
    """A Hamiltonian of 1..``max_terms`` Pauli words with real coefficients in [-2, 2]."""
    count = draw(st.integers(1, max_terms))
    coefficients = draw(st.lists(st.floats(-2, 2, allow_nan=False), min_size=count, max_size=count))
    return Hamiltonian((c, draw(pauli_words(n_qubits))) for c in coefficients)


@st.composite
def probabilities(draw, n_qubits: int, max_wires: int = 3) -> Probs:
    """Probabilities on 1..``max_wires`` distinct wires, in a drawn order."""
    return Probs(draw(distinct_wires(n_qubits, draw(st.integers(1, min(n_qubits, max_wires))))))


@st.composite
def observables(draw, n_qubits: int, kinds=("pauli",), paulis: str = "XYZ"):
    """One observable of a drawn kind among ``kinds`` (``pauli``, ``hamiltonian``, ``probs``)."""
    kind = draw(st.sampled_from(sorted(kinds, key=("pauli", "hamiltonian", "probs").index)))
    if kind == "hamiltonian":
        return draw(hamiltonians(n_qubits))
    if kind == "probs":
        return draw(probabilities(n_qubits))
    return draw(pauli_words(n_qubits, paulis=paulis))


@st.composite
def circuits(
    draw,
    min_qubits: int = 1,
    max_qubits: int = 8,
    max_ops: int = 24,
    paulis: str = "XYZ",
    max_observables: int = 3,
    gates=None,
    observable_kinds=("pauli",),
) -> Circuit:
    """Random circuits over ``gates`` (default: the whole gate set of :data:`~hqf.quantum.circuit.GATES`; a
    ``QubitUnitary`` of a random matrix only where ``gates`` names it) with 1..``max_observables`` observables of
    ``observable_kinds`` (default: Pauli words only)."""
    n = draw(st.integers(min_qubits, max_qubits))
    allowed = GATES if gates is None else [g for g in GATES if g in set(gates)]
    unitary = gates is not None and UNITARY in set(gates)
    gates = [g for g in allowed if GATES[g][0] <= n] + ([UNITARY] if unitary else [])
    ops, n_params = [], 0
    for _ in range(draw(st.integers(1, max_ops)) if gates else 0):
        gate = draw(st.sampled_from(gates))
        if gate == UNITARY:
            wires = draw(distinct_wires(n, draw(st.integers(1, min(n, UNITARY_MAX_WIRES)))))
            ops.append(Operation(gate, wires, matrix=random_unitary(2 ** len(wires), draw(st.integers(0, 2**16)))))
            continue
        arity, parameterized = GATES[gate]
        wires = draw(distinct_wires(n, arity))
        param = None
        if parameterized:
            param, n_params = n_params, n_params + 1
        ops.append(Operation(gate, wires, param))
    count = draw(st.integers(1, max_observables))
    return Circuit(n, ops, [draw(observables(n, observable_kinds, paulis)) for _ in range(count)])


def random_unitary(dim: int, seed: int) -> np.ndarray:
    """A Haar-random ``dim × dim`` unitary (the QR of a complex Gaussian matrix, phases fixed), from ``seed``."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)) + 1j * rng.normal(size=(dim, dim)))
    return q * (np.diag(r) / np.abs(np.diag(r)))


def angle_batches(circuit: Circuit, max_batch: int = 3, min_batch: int = 1):
    """Real angle matrices ``[B, P]`` (float64 numpy) for a circuit, entries in [-2π, 2π]."""
    width = circuit.n_params
    return st.integers(min_batch, max_batch).flatmap(
        lambda b: st.lists(
            st.floats(-2 * math.pi, 2 * math.pi, allow_nan=False), min_size=b * width, max_size=b * width
        ).map(lambda xs: np.asarray(xs, dtype=np.float64).reshape(b, width))
    )
