"""The gate maths, written once: index bit tables, Pauli matrices and actions, gate matrices, and the
parameter-shift rows. Every in-tree backend, the reference simulator and the tests read them here.

Conventions (those of :mod:`hqf.quantum.circuit`):

- wire 0 is the most significant bit of a basis index of ``n`` qubits: wire ``w`` is bit ``n − 1 − w``;
- a rotation is ``R_P(θ) = exp(−iθP/2)``;
- a two-wire gate's ``wires[0]`` is the control.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

#: the parameter-shift rule's shift for ``exp(−iθP/2)`` with ``P² = 1``
SHIFT = math.pi / 2

#: the one-qubit Pauli matrices
PAULI: dict[str, tuple[tuple[complex, complex], tuple[complex, complex]]] = {
    "X": ((0, 1), (1, 0)),
    "Y": ((0, -1j), (1j, 0)),
    "Z": ((1, 0), (0, -1)),
}
#: the non-parametric one-qubit gates
FIXED_1Q: dict[str, tuple[tuple[complex, complex], tuple[complex, complex]]] = {
    "H": ((2**-0.5, 2**-0.5), (2**-0.5, -(2**-0.5))),
    "X": PAULI["X"],
}
#: the rotation gates and the Pauli each one rotates about
ROTATIONS: dict[str, str] = {"RX": "X", "RY": "Y", "RZ": "Z"}


def bit_table(n_qubits: int, wire: int) -> np.ndarray:
    """The value of ``wire``'s bit in every basis index, ``[2**n]`` (int64 numpy)."""
    return (np.arange(2**n_qubits) >> (n_qubits - 1 - wire)) & 1


@functools.lru_cache(maxsize=256)
@torch.inference_mode(False)  # cached: must not be an inference tensor
def bits(n_qubits: int, wire: int) -> torch.Tensor:
    """:func:`bit_table` as a torch tensor (int64, CPU, cached)."""
    return (torch.arange(2**n_qubits) >> (n_qubits - 1 - wire)) & 1


@functools.lru_cache(maxsize=256)
@torch.inference_mode(False)
def flip_permutation(n_qubits: int, target: int, control: int | None) -> torch.Tensor:
    """Index map of X on ``target`` (if ``control`` is set, only where the control bit is 1)."""
    index = torch.arange(2**n_qubits)
    flip = 1 << (n_qubits - 1 - target)
    if control is None:
        return index ^ flip
    return torch.where(bits(n_qubits, control).bool(), index ^ flip, index)


def pauli_action(n_qubits: int, terms) -> tuple[torch.Tensor, torch.Tensor]:
    """``(source, coeff)`` with ``(P ψ)[i] = coeff[i] · ψ[source[i]]`` for the Pauli word with
    ``terms = ((wire, letter), …)``."""
    index = torch.arange(2**n_qubits)
    coeff = torch.ones(2**n_qubits, dtype=torch.complex128)
    source = index.clone()
    for wire, pauli in terms:
        bit = bits(n_qubits, wire)
        sign = 1 - 2 * bit  # (-1)^bit of the output index
        if pauli == "Z":
            coeff = coeff * sign
        else:
            source = source ^ (1 << (n_qubits - 1 - wire))
            if pauli == "Y":  # Y[a, 1-a] = -i for a=0, +i for a=1
                coeff = coeff * (-1j * sign)
    return source, coeff


def z_signs(n_qubits: int, wires) -> np.ndarray:
    """``[2**n]``: the eigenvalue (±1) of ``Z`` on every wire of ``wires`` at each basis index."""
    return 1 - 2 * (sum(bit_table(n_qubits, w) for w in wires) % 2)


def rotation_matrices(gate: str, theta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[B, 2, 2]`` matrices of RX/RY/RZ(θ) = exp(−iθP/2) for angles ``θ[B]``."""
    half = theta.to(dtype) / 2
    c, s = torch.cos(half), torch.sin(half)
    zero = torch.zeros_like(c)
    if gate == "RX":
        rows = [c, -1j * s, -1j * s, c]
    elif gate == "RY":
        rows = [c, -s, s, c]
    elif gate == "RZ":
        rows = [torch.exp(-1j * half), zero, zero, torch.exp(1j * half)]
    else:
        raise ValueError(f"{gate} is not a rotation gate")
    return torch.stack(rows, dim=-1).reshape(-1, 2, 2)


def one_qubit_matrices(gate: str, theta: torch.Tensor | None, batch: int, dtype: torch.dtype, device) -> torch.Tensor:
    """``[B, 2, 2]`` matrices of a one-qubit gate: a rotation at angles ``θ[B]`` or a fixed gate."""
    if gate in ROTATIONS:
        return rotation_matrices(gate, theta, dtype)
    return torch.tensor(FIXED_1Q[gate], dtype=dtype, device=device).expand(batch, 2, 2)


def full_angles(angles: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """``[angles, shared]``: ``shared[S]`` appended to every row of ``angles[B, P − S]``."""
    return torch.cat([angles, shared.to(angles.dtype).reshape(1, -1).expand(angles.shape[0], -1)], dim=1)


def shifted_rows(angles: torch.Tensor) -> torch.Tensor:
    """``[2·P·B, P]``: ``angles[B, P]`` with column ``p`` shifted by ``+π/2``, for every ``p``, then by ``−π/2``."""
    batch, n_params = angles.shape
    if n_params == 0:
        return angles.new_zeros(0, 0)
    shifts = torch.eye(n_params, dtype=angles.dtype, device=angles.device) * SHIFT  # [P, P]
    return (angles.unsqueeze(0) + torch.stack([shifts, -shifts]).unsqueeze(2)).reshape(-1, n_params)


def shifted_values(
    evaluate: Callable[[torch.Tensor], torch.Tensor], angles: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """``[2, P, B, R]``: ``evaluate`` on all ``2·P·B`` shifted rows (:func:`shifted_rows`), in one call
    or in calls of at most ``chunk`` rows (``P ≥ 1``)."""
    flat = shifted_rows(angles)
    if chunk is None or flat.shape[0] <= chunk:
        values = evaluate(flat)
    else:
        values = torch.cat([evaluate(part) for part in flat.split(chunk)])
    return values.reshape(2, angles.shape[1], angles.shape[0], -1)
