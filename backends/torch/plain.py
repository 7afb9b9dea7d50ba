"""The plain gate-by-gate path, with no plan: the reference the torch backend's fast paths are tested
against.

The state of a batch is ``[B, 2**n]``, one row per sample (wire 0 is the most significant bit of the
amplitude index). A one-qubit gate is one batched contraction over a ``[B, 2**w, 2, 2**(n-w-1)]``
view; CNOT and X are index permutations; CZ is a sign flip; any other gate of the vocabulary is its
matrix (:func:`hqf.quantum.gates.gate_matrices`, a ``QubitUnitary``'s own) contracted with the state's axes
of its wires.
Read-outs: Pauli words, Hamiltonians (their words' weighted sum) and ``Probs`` (the marginal
probabilities of the listed wires), concatenated in observable order.
"""

from __future__ import annotations

import torch

from hqf.quantum.circuit import Circuit, Hamiltonian, Operation, Probs
from hqf.quantum.gates import bits, flip_permutation, gate_matrices, one_qubit_matrices, pauli_action


def expval(circuit: Circuit, angles: torch.Tensor, complex_dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[B, R]`` expectation values of ``circuit`` at ``angles[B, P]``, gate by gate."""
    return measure(states(circuit, angles, complex_dtype, device), circuit).to(angles.device)


def states(circuit: Circuit, angles: torch.Tensor, complex_dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[B, 2**n]`` final states of ``circuit``'s gates at ``angles[B, P]`` (its observables are not read)."""
    angles = angles.to(device=device, dtype=torch.empty(0, dtype=complex_dtype).real.dtype)
    state = initial_state(circuit.n_qubits, angles.shape[0], complex_dtype, device)
    for op in circuit.operations:
        state = apply(state, circuit.n_qubits, op, angles)
    return state


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
    if op.matrix is not None:  # QubitUnitary: its fixed matrix on its wires
        matrices = torch.as_tensor(op.unitary, dtype=state.dtype, device=state.device).expand(state.shape[0], -1, -1)
        return apply_matrix(state, n, op.wires, matrices)
    theta = None if op.param is None else angles[:, op.param]
    matrices = gate_matrices(op.gate, theta, state.shape[0], state.dtype, state.device)
    if len(op.wires) == 1:
        return _apply_one_qubit(state, n, op.wires[0], matrices)
    return apply_matrix(state, n, op.wires, matrices)


def apply_matrix(state: torch.Tensor, n: int, wires: tuple[int, ...], matrices: torch.Tensor) -> torch.Tensor:
    """``matrices[B, 2**k, 2**k]`` on ``wires`` (``wires[0]`` the most significant bit of the gate's index)."""
    batch, k = state.shape[0], len(wires)
    axes = [1 + w for w in wires]
    moved = state.reshape(batch, *[2] * n).movedim(axes, list(range(1, k + 1))).reshape(batch, 2**k, -1)
    out = torch.bmm(matrices, moved).reshape(batch, *[2] * n)
    return out.movedim(list(range(1, k + 1)), axes).reshape(batch, -1)


def _apply_one_qubit(state: torch.Tensor, n: int, wire: int, matrices: torch.Tensor) -> torch.Tensor:
    batch = state.shape[0]
    view = state.reshape(batch, 2**wire, 2, 2 ** (n - wire - 1))
    return torch.einsum("bij,bljr->blir", matrices, view).reshape(batch, -1)


def marginal(state: torch.Tensor, n: int, wires: tuple[int, ...]) -> torch.Tensor:
    """``[B, 2**k]``: the probabilities of the basis states of ``wires`` (``wires[0]`` most significant)."""
    batch = state.shape[0]
    probs = (state.real**2 + state.imag**2).reshape(batch, *[2] * n)
    others = [1 + w for w in range(n) if w not in wires]
    summed = probs.sum(dim=others) if others else probs
    kept = sorted(wires)  # the summed tensor's axes, in wire order
    order = [1 + kept.index(w) for w in wires]
    return summed.permute(0, *order).reshape(batch, -1)


def measure(state: torch.Tensor, circuit: Circuit) -> torch.Tensor:
    """``[B, R]`` outputs of the circuit's observables on ``[B, 2**n]``."""
    columns = []
    for obs in circuit.observables:
        if isinstance(obs, Probs):
            columns += list(marginal(state, circuit.n_qubits, obs.wires).unbind(1))
        elif isinstance(obs, Hamiltonian):
            values = [c * _pauli_expval(state, circuit.n_qubits, word) for c, word in obs.terms]
            columns.append(sum(values[1:], values[0]))
        else:
            columns.append(_pauli_expval(state, circuit.n_qubits, obs))
    return torch.stack(columns, dim=1)


def _pauli_expval(state: torch.Tensor, n: int, word) -> torch.Tensor:
    """``[B]``: ``⟨ψ|P|ψ⟩`` for one Pauli word."""
    if all(p == "Z" for _, p in word.terms):
        parity = sum(bits(n, w) for w in word.wires) % 2
        signs = (1 - 2 * parity).to(device=state.device, dtype=state.real.dtype)
        return (state.real**2 + state.imag**2) @ signs
    source, coeff = pauli_action(n, word.terms)
    moved = state[:, source.to(state.device)] * coeff.to(device=state.device, dtype=state.dtype)
    return (state.conj() * moved).sum(dim=1).real
