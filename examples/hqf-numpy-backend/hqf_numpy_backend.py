"""``numpy``: a NumPy state-vector simulator for hqf, shipped as its own package (an example plugin).

The batch of states is an array ``[B, 2, 2, ..., 2]``: axis ``1 + w`` is wire ``w``, so wire 0 is the
most significant bit of a basis index, as hqf's circuit description requires. Results are float64
torch tensors; gradients come from hqf's parameter-shift rule.
"""

from __future__ import annotations

import numpy as np
import torch

from hqf import hookimpl
from hqf.circuit import Circuit
from hqf.interfaces import Backend, Capabilities

PAULI = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}
HADAMARD = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)


def rotation(gate: str, theta: np.ndarray) -> np.ndarray:
    """``[B, 2, 2]`` matrices of ``exp(-i θ/2 P)`` for ``gate`` = RX, RY or RZ."""
    half = theta[:, None, None] / 2
    return np.cos(half) * np.eye(2) - 1j * np.sin(half) * PAULI[gate[1]]


def apply_1q(state: np.ndarray, matrix: np.ndarray, wire: int) -> np.ndarray:
    """Apply a ``[2, 2]`` matrix, or one ``[B, 2, 2]`` matrix per sample, to ``wire``."""
    moved = np.moveaxis(state, 1 + wire, -1)  # [B, ..., 2]
    if matrix.ndim == 2:
        out = moved @ matrix.T
    else:
        out = np.einsum("bij,b...j->b...i", matrix, moved)
    return np.moveaxis(out, -1, 1 + wire)


def apply_controlled(state: np.ndarray, matrix: np.ndarray, control: int, target: int) -> np.ndarray:
    """Apply ``matrix`` to ``target`` where ``control`` is 1."""
    out = state.copy()
    index = [slice(None)] * state.ndim
    index[1 + control] = 1
    part = out[tuple(index)]  # the control axis is gone: the target axis may shift left
    target_axis = target if target > control else target + 1
    out[tuple(index)] = np.moveaxis(np.moveaxis(part, target_axis, -1) @ matrix.T, -1, target_axis)
    return out


class NumpyBackend(Backend):
    """Dense NumPy state vector, complex128, CPU; no native gradient (hqf's shift rule is used)."""

    name = "numpy"
    description = "NumPy state vector (third-party example package hqf-numpy-backend)"
    capabilities = Capabilities(dtypes={"complex128"}, devices={"cpu"}, max_qubits=20)

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        values = angles.detach().cpu().numpy().astype(np.float64)
        batch, n = values.shape[0], circuit.n_qubits
        state = np.zeros((batch,) + (2,) * n, dtype=complex)
        state[(slice(None),) + (0,) * n] = 1
        for op in circuit.operations:
            if op.gate in ("RX", "RY", "RZ"):
                state = apply_1q(state, rotation(op.gate, values[:, op.param]), op.wires[0])
            elif op.gate in ("H", "X"):
                state = apply_1q(state, HADAMARD if op.gate == "H" else PAULI["X"], op.wires[0])
            else:  # CNOT, CZ
                state = apply_controlled(state, PAULI["X" if op.gate == "CNOT" else "Z"], *op.wires)
        columns = []
        for word in circuit.observables:
            moved = state
            for wire, pauli in word.terms:
                moved = apply_1q(moved, PAULI[pauli], wire)
            columns.append((state.conj() * moved).reshape(batch, -1).sum(axis=1).real)
        return torch.as_tensor(np.stack(columns, axis=1), dtype=torch.float64, device=angles.device)


@hookimpl
def register_backends(register) -> None:
    register(NumpyBackend)
