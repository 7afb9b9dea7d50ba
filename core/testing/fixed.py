"""The fixed cases every property runs first, before Hypothesis draws anything.

Random circuits can miss a gate a backend gets wrong (a dropped CZ, a swapped control) when few
examples are drawn. These cases cannot: each declared gate is run on every order of its wires, at
chosen angles, after a preparation that puts every wire in a generic superposition (``RY`` then
``RZ`` at angles no symmetry cancels), and read out by every two-wire Pauli word on its wires (the
conformance properties add X, Y and Z on each wire). Each declared observable kind is read on a known
entangled state.
"""

from __future__ import annotations

import itertools

import numpy as np

from hqf.quantum.circuit import GATES, Circuit, Hamiltonian, Operation, PauliWord, Probs

#: the angles each parametric gate is checked at (none is a multiple of π/2)
GATE_ANGLES = (0.7, -2.3)


def _preparation(n_qubits: int) -> tuple[list[Operation], list[float]]:
    """``RY(a_w) RZ(b_w)`` on every wire: a product state with no wire in a basis state."""
    ops, angles = [], []
    for w in range(n_qubits):
        ops += [Operation("RY", w, 2 * w), Operation("RZ", w, 2 * w + 1)]
        angles += [0.9 + 0.37 * w, 0.4 + 0.53 * w]
    return ops, angles


def _words(wires: tuple[int, ...]) -> list[PauliWord]:
    """Every Pauli word with one factor on each of two wires, for each pair of ``wires``."""
    out = []
    for a, b in itertools.combinations(sorted(wires), 2):
        out += [PauliWord(((a, p), (b, q))) for p in "XYZ" for q in "XYZ"]
    return out


def gate_cases(gates, max_qubits: int) -> list[tuple[Circuit, np.ndarray]]:
    """One case per declared gate, order of its wires and chosen angle: ``(circuit, angles[1, P])``."""
    cases = []
    for gate in [g for g in GATES if g in set(gates)]:
        arity, parameterized = GATES[gate]
        if arity > max_qubits:
            continue
        n_qubits = max(arity, 1)
        prep, prep_angles = _preparation(n_qubits)
        for wires in itertools.permutations(range(n_qubits), arity):
            op = Operation(gate, wires, len(prep_angles) if parameterized else None)
            observables = _words(wires) or [PauliWord.z(wires[0])]
            circuit = Circuit(n_qubits, prep + [op], observables)
            for angle in GATE_ANGLES if parameterized else (None,):
                row = prep_angles + ([] if angle is None else [angle])
                cases.append((circuit, np.array([row], dtype=np.float64)))
    return cases


def observable_cases(kinds, max_qubits: int) -> list[tuple[Circuit, np.ndarray]]:
    """Each declared observable kind on a known three-qubit state (a prepared, then entangled register)."""
    n_qubits = min(3, max_qubits)
    prep, angles = _preparation(n_qubits)
    entangle = [Operation("CNOT", (w, w + 1)) for w in range(n_qubits - 1)]
    read: list = []
    if "pauli" in kinds:
        read += [PauliWord.z(0), PauliWord(((0, "X"), (n_qubits - 1, "Y")))]
    if "hamiltonian" in kinds:
        read.append(Hamiltonian([(0.5, PauliWord.z(0)), (-1.25, PauliWord(((0, "X"), (n_qubits - 1, "X"))))]))
    if "probs" in kinds:
        read += [Probs(tuple(range(n_qubits))), Probs(tuple(reversed(range(n_qubits)))), Probs((n_qubits - 1,))]
    if not read:
        return []
    return [(Circuit(n_qubits, prep + entangle, read), np.array([angles], dtype=np.float64))]


def fixed_cases(gates, kinds, max_qubits: int) -> list[tuple[Circuit, np.ndarray]]:
    """The gate cases, then the observable cases, for a backend's declared vocabulary."""
    return gate_cases(gates, max_qubits) + observable_cases(kinds, max_qubits)
