"""The plain gate-by-gate path, with no plan: the reference the torch backend's fast paths are tested
against.

The state of a batch is ``[B, 2**n]``, one row per sample (wire 0 is the most significant bit of the
amplitude index). A one-qubit gate is one batched contraction over a ``[B, 2**w, 2, 2**(n-w-1)]``
view; CNOT and X are index permutations; CZ is a sign flip.
"""

from __future__ import annotations

import torch

from hqf.quantum.circuit import Circuit, Operation
from hqf.quantum.gates import bits, flip_permutation, one_qubit_matrices, pauli_action


def expval(circuit: Circuit, angles: torch.Tensor, complex_dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[B, R]`` expectation values of ``circuit`` at ``angles[B, P]``, gate by gate."""
    out_device = angles.device
    angles = angles.to(device=device, dtype=torch.empty(0, dtype=complex_dtype).real.dtype)
    state = initial_state(circuit.n_qubits, angles.shape[0], complex_dtype, device)
    for op in circuit.operations:
        state = apply(state, circuit.n_qubits, op, angles)
    return measure(state, circuit).to(out_device)


def initial_state(n_qubits: int, batch: int, complex_dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``|0…0⟩`` for every row: ``[B, 2**n]``."""
    state = torch.zeros(batch, 2**n_qubits, dtype=complex_dtype, device=device)
    state[:, 0] = 1
    return state


def apply(state: torch.Tensor, n: int, op: Operation, angles: torch.Tensor) -> torch.Tensor:
    """The state ``[B, 2**n]`` after one gate (a rotation reads column ``op.param`` of ``angles``)."""
    if op.gate in ("RX", "RY", "RZ", "H"):
        theta = None if op.param is None else angles[:, op.param]
        matrices = one_qubit_matrices(op.gate, theta, state.shape[0], state.dtype, state.device)
        return _apply_one_qubit(state, n, op.wires[0], matrices)
    if op.gate == "X":
        return state[:, flip_permutation(n, op.wires[0], None).to(state.device)]
    if op.gate == "CNOT":
        return state[:, flip_permutation(n, op.wires[1], op.wires[0]).to(state.device)]
    if op.gate == "CZ":
        both = (bits(n, op.wires[0]) & bits(n, op.wires[1])).to(state.device)
        return state * (1 - 2 * both).to(state.real.dtype)
    raise NotImplementedError(f"gate {op.gate}")


def _apply_one_qubit(state: torch.Tensor, n: int, wire: int, matrices: torch.Tensor) -> torch.Tensor:
    batch = state.shape[0]
    view = state.reshape(batch, 2**wire, 2, 2 ** (n - wire - 1))
    return torch.einsum("bij,bljr->blir", matrices, view).reshape(batch, -1)


def measure(state: torch.Tensor, circuit: Circuit) -> torch.Tensor:
    """``[B, R]`` expectation values of the circuit's observables on ``[B, 2**n]``."""
    n = circuit.n_qubits
    real_dtype = state.real.dtype
    probs = None
    columns = []
    for word in circuit.observables:
        if all(p == "Z" for _, p in word.terms):
            if probs is None:
                probs = state.real**2 + state.imag**2
            parity = sum(bits(n, w) for w in word.wires) % 2
            signs = (1 - 2 * parity).to(device=state.device, dtype=real_dtype)
            columns.append(probs @ signs)
        else:
            source, coeff = pauli_action(n, word.terms)
            moved = state[:, source.to(state.device)] * coeff.to(device=state.device, dtype=state.dtype)
            columns.append((state.conj() * moved).sum(dim=1).real)
    return torch.stack(columns, dim=1)
