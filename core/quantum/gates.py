"""The gate maths, written once: index bit tables, Pauli matrices and actions, every gate's matrix and
generator, the parameter-shift recipes derived from the generators' spectra, and the shifted rows.
Every in-tree backend, the reference simulator and the tests read them here.

Conventions (those of :mod:`hqf.quantum.circuit`):

- wire 0 is the most significant bit of a basis index of ``n`` qubits: wire ``w`` is bit ``n − 1 − w``;
- a rotation is ``R_P(θ) = exp(−iθP/2)``;
- a controlled gate's ``wires[0]`` is the control (Toffoli: ``(control, control, target)``; CSWAP:
  ``(control, a, b)``);
- a gate's matrix over its own wires is in the basis ``|w0 w1 …⟩``, ``wires[0]`` the most significant bit;
- a one-parameter gate is ``U(θ) = exp(−iθG)`` with ``G`` its generator (:data:`GENERATORS`).
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
    "Y": PAULI["Y"],
    "Z": PAULI["Z"],
    "S": ((1, 0), (0, 1j)),
    "T": ((1, 0), (0, complex(2**-0.5, 2**-0.5))),
    "SX": ((0.5 + 0.5j, 0.5 - 0.5j), (0.5 - 0.5j, 0.5 + 0.5j)),
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


# -- the whole vocabulary: matrices, generators, shift recipes ------------------------------------------
_I2 = np.eye(2, dtype=complex)
_P0 = np.diag([1, 0]).astype(complex)
_P1 = np.diag([0, 1]).astype(complex)
_NP_PAULI = {name: np.array(matrix, dtype=complex) for name, matrix in PAULI.items()}


def _controlled(target: np.ndarray) -> np.ndarray:
    """``|0⟩⟨0| ⊗ 1 + |1⟩⟨1| ⊗ target`` (the control is the most significant wire)."""
    return np.kron(_P0, np.eye(target.shape[0], dtype=complex)) + np.kron(_P1, target)


_SWAP = np.eye(4, dtype=complex)[[0, 2, 1, 3]]

#: every non-parametric gate as a matrix over its own wires (``wires[0]`` the most significant bit)
FIXED: dict[str, np.ndarray] = {
    **{name: np.array(matrix, dtype=complex) for name, matrix in FIXED_1Q.items()},
    "CNOT": _controlled(_NP_PAULI["X"]),
    "CZ": _controlled(_NP_PAULI["Z"]),
    "CY": _controlled(_NP_PAULI["Y"]),
    "SWAP": _SWAP,
    "Toffoli": _controlled(_controlled(_NP_PAULI["X"])),
    "CSWAP": _controlled(_SWAP),
}

#: every one-parameter gate's generator ``G`` over its own wires: ``U(θ) = exp(−iθG)``
GENERATORS: dict[str, np.ndarray] = {
    **{gate: _NP_PAULI[p] / 2 for gate, p in ROTATIONS.items()},
    **{f"R{p}{p}": np.kron(_NP_PAULI[p], _NP_PAULI[p]) / 2 for p in "XYZ"},
    **{f"CR{p}": np.kron(_P1, _NP_PAULI[p] / 2) for p in "XYZ"},
    "PhaseShift": -_P1,
    "CPhase": -np.kron(_P1, _P1),
}


def _form(generator: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """``(k, A, C, S)`` with ``exp(−iθG) = A + cos(kθ)·C + sin(kθ)·S``, for a generator with at most two
    distinct nonzero eigenvalues ``±k`` (Pauli type) or one eigenvalue ``−1`` and zeros (phase type)."""
    values, vectors = np.linalg.eigh(generator)
    values = np.round(values, 12)
    nonzero = values[values != 0]
    if set(nonzero) == {-1.0}:  # exp(iθΠ) = (1 − Π) + cos θ Π + i sin θ Π, Π the projector on −1
        projector = -generator
        return 1.0, np.eye(len(values), dtype=complex) - projector, projector, 1j * projector
    k = float(np.max(np.abs(nonzero)))
    projector = vectors[:, values != 0] @ vectors[:, values != 0].conj().T  # support of G
    pauli = generator / k  # squares to the projector
    return k, np.eye(len(values), dtype=complex) - projector, projector, -1j * pauli


#: ``(k, A, C, S)`` for every one-parameter gate: ``U(θ) = A + cos(kθ)·C + sin(kθ)·S``
FORMS: dict[str, tuple[float, np.ndarray, np.ndarray, np.ndarray]] = {g: _form(m) for g, m in GENERATORS.items()}


def frequencies(gate: str) -> tuple[float, ...]:
    """The distinct positive differences of the generator's eigenvalues: the frequencies of ``θ ↦ ⟨O⟩``."""
    values = np.unique(np.round(np.linalg.eigvalsh(GENERATORS[gate]), 12))
    return tuple(sorted({float(np.round(abs(a - b), 12)) for a in values for b in values if a != b}))


_C_PLUS = (math.sqrt(2) + 1) / (4 * math.sqrt(2))
_C_MINUS = (math.sqrt(2) - 1) / (4 * math.sqrt(2))
#: the exact shift recipe ``((coefficient, shift), …)`` of each frequency set (Wierichs et al. 2022)
RECIPES: dict[tuple[float, ...], tuple[tuple[float, float], ...]] = {
    (1.0,): ((0.5, SHIFT), (-0.5, -SHIFT)),
    (0.5, 1.0): ((_C_PLUS, SHIFT), (-_C_PLUS, -SHIFT), (-_C_MINUS, 3 * SHIFT), (_C_MINUS, -3 * SHIFT)),
}
#: ``gate -> ((coefficient, shift), …)`` with ``∂f/∂θ = Σ c·f(θ + s)``, derived from the generator spectrum
SHIFT_RULES: dict[str, tuple[tuple[float, float], ...]] = {g: RECIPES[frequencies(g)] for g in GENERATORS}
#: every shift some recipe uses; the order of the ``S`` axis of :func:`recipe_values`
SHIFTS: tuple[float, ...] = (SHIFT, -SHIFT, 3 * SHIFT, -3 * SHIFT)


def matrix(gate: str, theta: float | None = None) -> np.ndarray:
    """The complex128 numpy matrix of any gate over its own wires (a parametric one at angle ``theta``)."""
    if gate in FIXED:
        return FIXED[gate].copy()
    k, a, c, s = FORMS[gate]
    return a + math.cos(k * theta) * c + math.sin(k * theta) * s


def gate_matrices(gate: str, theta: torch.Tensor | None, batch: int, dtype: torch.dtype, device) -> torch.Tensor:
    """``[B, d, d]`` matrices of any gate over its own wires, at angles ``θ[B]`` for a parametric one
    (differentiable in ``θ``); RX/RY/RZ exactly as :func:`rotation_matrices`."""
    if gate in ROTATIONS:
        return rotation_matrices(gate, theta, dtype)
    if gate in FIXED:
        return torch.as_tensor(FIXED[gate], dtype=dtype, device=device).expand(batch, -1, -1)
    k, a, c, s = (torch.as_tensor(t, dtype=dtype, device=device) for t in FORMS[gate])
    angle = theta.to(device=device) * k
    return a + torch.cos(angle).to(dtype)[:, None, None] * c + torch.sin(angle).to(dtype)[:, None, None] * s


def shift_coefficients(column_gates, dtype=torch.float64) -> torch.Tensor:
    """``[S, P]``: the coefficient of shift ``SHIFTS[s]`` in column ``p``'s recipe (0 where it has none),
    for the gate reading each column (``column_gates[p]``)."""
    out = torch.zeros(len(SHIFTS), len(column_gates), dtype=dtype)
    for p, gate in enumerate(column_gates):
        for coefficient, shift in SHIFT_RULES[gate]:
            out[SHIFTS.index(shift), p] = coefficient
    return out


def two_term_only(column_gates) -> bool:
    """Whether every column's recipe is the two-term ``±π/2`` rule (the ``[2, P, B, R]`` path suffices)."""
    return all(len(SHIFT_RULES[g]) == 2 for g in column_gates)


def recipe_values(
    evaluate: Callable[[torch.Tensor], torch.Tensor],
    angles: torch.Tensor,
    coefficients: torch.Tensor,
    chunk: int | None = None,
) -> torch.Tensor:
    """``[S, P, B, R]``: ``evaluate`` at ``angles[B, P]`` with column ``p`` shifted by ``SHIFTS[s]``, only
    where ``coefficients[s, p] ≠ 0`` (zero elsewhere); in calls of at most ``chunk`` rows."""
    batch, n_params = angles.shape
    pairs = [(s, p) for s in range(len(SHIFTS)) for p in range(n_params) if coefficients[s, p] != 0]
    rows = angles.repeat(len(pairs), 1, 1)  # [N, B, P]
    for i, (s, p) in enumerate(pairs):
        rows[i, :, p] = rows[i, :, p] + SHIFTS[s]
    flat = rows.reshape(-1, n_params)
    if chunk is None or flat.shape[0] <= chunk:
        values = evaluate(flat)
    else:
        values = torch.cat([evaluate(part) for part in flat.split(chunk)])
    values = values.reshape(len(pairs), batch, -1)
    out = values.new_zeros(len(SHIFTS), n_params, batch, values.shape[-1])
    if pairs:
        index_s = torch.tensor([s for s, _ in pairs])
        index_p = torch.tensor([p for _, p in pairs])
        out = out.index_put((index_s, index_p), values)
    return out
