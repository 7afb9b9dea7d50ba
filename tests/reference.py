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
FIXED = {"H": np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2), "X": PAULI["X"]}
P0 = np.diag([1, 0]).astype(complex)
P1 = np.diag([0, 1]).astype(complex)


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
    control, target = wires
    other = PAULI["X"] if gate == "CNOT" else PAULI["Z"]
    return kron_on(n, {control: P0}) + kron_on(n, {control: P1, target: other})


def reference_expval(circuit, angles: np.ndarray) -> np.ndarray:
    """``[B, R]`` expectation values, one dense unitary product per sample."""
    n = circuit.n_qubits
    observables = [kron_on(n, {w: PAULI[p] for w, p in word.terms}) for word in circuit.observables]
    out = np.empty((angles.shape[0], len(observables)))
    for b, row in enumerate(angles):
        psi = np.zeros(2**n, dtype=complex)
        psi[0] = 1
        for op in circuit.operations:
            theta = None if op.param is None else row[op.param]
            psi = gate_unitary(n, op.gate, op.wires, theta) @ psi
        out[b] = [np.real(np.vdot(psi, obs @ psi)) for obs in observables]
    return out
