"""An independent dense-matrix simulator: full 2^n × 2^n unitaries built with numpy Kronecker products.

Deliberately naive and unrelated to the backends' code, so agreement means something: it is the
independent definition that :mod:`hqf.quantum.gates` and the shipped reference simulator
(:class:`hqf.testing.ReferenceBackend`) are checked against in tests/test_reference.py.
"""

from __future__ import annotations

import numpy as np

I2 = np.eye(2, dtype=complex)
PAULI = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}
FIXED = {
    "H": np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2),
    "X": PAULI["X"],
    "Y": PAULI["Y"],
    "Z": PAULI["Z"],
    "S": np.diag([1, 1j]),
    "T": np.diag([1, np.exp(1j * np.pi / 4)]),
    "SX": np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]) / 2,  # the square root of X
}
P0 = np.diag([1, 0]).astype(complex)
P1 = np.diag([0, 1]).astype(complex)


def rotation(pauli: np.ndarray, theta: float) -> np.ndarray:
    """``exp(−iθP/2) = cos(θ/2)·1 − i·sin(θ/2)·P`` for any ``P`` with ``P² = 1``."""
    return np.cos(theta / 2) * np.eye(len(pauli)) - 1j * np.sin(theta / 2) * pauli


def controlled(u: np.ndarray) -> np.ndarray:
    """``|0⟩⟨0| ⊗ 1 + |1⟩⟨1| ⊗ u``, the control the most significant (first) wire."""
    return np.kron(P0, np.eye(len(u))) + np.kron(P1, u)


def own_matrix(gate: str, theta: float | None) -> np.ndarray:
    """A multi-wire gate's matrix over its own wires, from its textbook definition."""
    swap = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)
    if gate in ("CNOT", "CZ", "CY"):
        return controlled(PAULI[{"CNOT": "X", "CZ": "Z", "CY": "Y"}[gate]])
    if gate == "SWAP":
        return swap
    if gate in ("RXX", "RYY", "RZZ"):
        return rotation(np.kron(PAULI[gate[1]], PAULI[gate[1]]), theta)
    if gate in ("CRX", "CRY", "CRZ"):
        return controlled(rotation(PAULI[gate[2]], theta))
    if gate == "CPhase":
        return np.diag([1, 1, 1, np.exp(1j * theta)])
    if gate == "Toffoli":
        return np.eye(8, dtype=complex)[[0, 1, 2, 3, 4, 5, 7, 6]]
    if gate == "CSWAP":
        return np.eye(8, dtype=complex)[[0, 1, 2, 3, 4, 6, 5, 7]]
    raise KeyError(gate)


def embed(n: int, wires: tuple[int, ...], u: np.ndarray) -> np.ndarray:
    """``u`` (over ``wires``, ``wires[0]`` most significant) as a ``2^n × 2^n`` matrix: ``u ⊗ 1`` on the
    order (wires, other wires), with its tensor axes moved back to wires ``0 … n−1``."""
    k = len(wires)
    order = list(wires) + [w for w in range(n) if w not in wires]
    full = np.kron(u, np.eye(2 ** (n - k))).reshape([2] * (2 * n))
    back = [order.index(w) for w in range(n)]
    return full.transpose(back + [n + i for i in back]).reshape(2**n, 2**n)


def kron_on(n: int, factors: dict[int, np.ndarray]) -> np.ndarray:
    """⊗ over wires 0..n-1 (wire 0 leftmost = most significant bit), identity where not given."""
    out = np.array([[1.0 + 0j]])
    for wire in range(n):
        out = np.kron(out, factors.get(wire, I2))
    return out


def gate_unitary(n: int, gate: str, wires: tuple[int, ...], theta: float | None) -> np.ndarray:
    if gate in ("RX", "RY", "RZ"):
        pauli = PAULI[gate[1]]
        u = np.cos(theta / 2) * I2 - 1j * np.sin(theta / 2) * pauli
        return kron_on(n, {wires[0]: u})
    if gate in FIXED:
        return kron_on(n, {wires[0]: FIXED[gate]})
    if gate == "PhaseShift":
        return kron_on(n, {wires[0]: np.diag([1, np.exp(1j * theta)])})
    if gate in ("CNOT", "CZ"):
        control, target = wires
        other = PAULI["X"] if gate == "CNOT" else PAULI["Z"]
        return kron_on(n, {control: P0}) + kron_on(n, {control: P1, target: other})
    return embed(n, wires, own_matrix(gate, theta))


def observable(n: int, obs) -> list[np.ndarray]:
    """The dense matrices of one observable's outputs: a Pauli word's product, a Hamiltonian's weighted
    sum, or one projector per outcome of ``Probs`` (its ``wires[0]`` the most significant bit)."""
    if type(obs).__name__ == "Hamiltonian":
        return [sum(c * observable(n, word)[0] for c, word in obs.terms)]
    if type(obs).__name__ == "Probs":
        k = len(obs.wires)
        return [kron_on(n, {w: (P0, P1)[(j >> (k - 1 - m)) & 1] for m, w in enumerate(obs.wires)}) for j in range(2**k)]
    return [kron_on(n, {w: PAULI[p] for w, p in obs.terms})]


def reference_expval(circuit, angles: np.ndarray) -> np.ndarray:
    """``[B, R]`` expectation values, one dense unitary product per sample."""
    n = circuit.n_qubits
    observables = [matrix for obs in circuit.observables for matrix in observable(n, obs)]
    out = np.empty((angles.shape[0], len(observables)))
    for b, row in enumerate(angles):
        psi = np.zeros(2**n, dtype=complex)
        psi[0] = 1
        for op in circuit.operations:
            theta = None if op.param is None else row[op.param]
            psi = gate_unitary(n, op.gate, op.wires, theta) @ psi
        out[b] = [np.real(np.vdot(psi, obs @ psi)) for obs in observables]
    return out
