"""Pauli transfer matrices (PTMs): every gate and every channel as a real matrix on Pauli coordinates.

A state of ``m`` qubits is ``ρ = 2^-m Σ_P r_P P`` with ``r_P = Tr(P ρ)`` real; ``P`` runs over the ``4^m``
Pauli strings, indexed in base 4 (the first wire the most significant digit; digits 0..3 are I, X, Y, Z).
A linear map ``E`` on operators acts on ``r`` as the real matrix

    R_ij = 2^-m Tr(P_i E(P_j)),

so ``E(ρ) = U ρ U†`` gives ``R_ij = 2^-m Tr(P_i U P_j U†)`` and a channel with Kraus operators ``K_k`` gives
``R_ij = 2^-m Σ_k Tr(P_i K_k P_j K_k†)``: one formula for every gate and every channel, nothing special-cased.
Applying ``E`` then ``F`` is ``R_F R_E``; the Hilbert–Schmidt adjoint ``E†`` is ``R_Eᵀ``.

A one-parameter gate is ``U(θ) = A + cos(kθ) C + sin(kθ) S`` (:data:`hqf.quantum.gates.FORMS`), so its
PTM is a quadratic form in ``(c, s) = (cos kθ, sin kθ)``:

    R(θ) = R_AA + c (R_CA + R_AC) + s (R_SA + R_AS) + c² R_CC + s² R_SS + cs (R_CS + R_SC)

with ``R_LM`` the PTM of ``ρ ↦ L ρ M†``: six fixed real matrices per gate (:func:`gate_terms`), whose
weights :func:`term_weights` gives, and the derivative's weights :func:`term_derivatives`.
"""

from __future__ import annotations

import functools

import numpy as np

from hqf.quantum.gates import FIXED, FORMS

#: the one-qubit Pauli basis I, X, Y, Z (digit 0..3)
PAULI_BASIS = np.array(
    [[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128
)
#: entries smaller than this in a PTM are rounding of an exact zero (the entries are sums of
#: products of matrix elements of size ≤ 1)
ZERO = 1e-14
#: how many fixed matrices a parameterized PTM is a combination of (:func:`term_weights`)
N_TERMS = 6


@functools.lru_cache(maxsize=8)
def pauli_strings(m: int) -> np.ndarray:
    """``[4^m, 2^m, 2^m]``: the Pauli strings of ``m`` qubits in base-4 order."""
    out = np.ones((1, 1, 1), dtype=np.complex128)
    for _ in range(m):
        out = np.einsum("aij,bkl->abikjl", out, PAULI_BASIS).reshape(out.shape[0] * 4, out.shape[1] * 2, -1)
    return out


def clean(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` with the entries below :data:`ZERO` set to exactly 0."""
    return np.where(np.abs(matrix) < ZERO, 0.0, matrix)


def sandwich(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The PTM of ``ρ ↦ L ρ R†`` (``L``, ``R``: ``2^m × 2^m``); real part (the imaginary part cancels in
    the sums this module forms)."""
    m = int(np.log2(left.shape[0]))
    paulis = pauli_strings(m)
    images = np.einsum("ab,jbc,dc->jad", left, paulis, right.conj())  # L P_j R†
    return np.einsum("iba,jab->ij", paulis, images).real / 2**m


def unitary_ptm(unitary: np.ndarray) -> np.ndarray:
    """The PTM of ``ρ ↦ U ρ U†``."""
    return clean(sandwich(unitary, unitary))


def kraus_ptm(kraus) -> np.ndarray:
    """The PTM of the channel ``ρ ↦ Σ_k K_k ρ K_k†``."""
    return clean(sum(sandwich(k, k) for k in kraus))


@functools.cache
def fixed_gate(gate: str) -> np.ndarray:
    """The PTM of a non-parametric gate of :data:`hqf.quantum.gates.FIXED`."""
    return unitary_ptm(FIXED[gate])


@functools.cache
def gate_terms(gate: str) -> tuple[float, np.ndarray]:
    """``(k, T[6, d, d])`` with ``R(θ) = Σ_q w_q T_q`` and ``w = term_weights(cos kθ, sin kθ)``."""
    k, a, c, s = FORMS[gate]
    terms = [
        sandwich(a, a),
        sandwich(c, a) + sandwich(a, c),
        sandwich(s, a) + sandwich(a, s),
        sandwich(c, c),
        sandwich(s, s),
        sandwich(c, s) + sandwich(s, c),
    ]
    return k, np.stack([clean(t) for t in terms])


def term_weights(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``[..., 6]``: ``(1, c, s, c², s², cs)``."""
    return np.stack([np.ones_like(c), c, s, c * c, s * s, c * s], axis=-1)


def term_derivatives(c: np.ndarray, s: np.ndarray, k: float) -> np.ndarray:
    """``[..., 6]``: the derivative of :func:`term_weights` in ``θ`` where ``(c, s) = (cos kθ, sin kθ)``."""
    return k * np.stack([np.zeros_like(c), -s, c, -2 * c * s, 2 * c * s, c * c - s * s], axis=-1)


def lift(matrix: np.ndarray, wires: tuple[int, ...], onto: tuple[int, ...]) -> np.ndarray:
    """``matrix`` (a PTM, or a stack ``[..., d, d]`` of them, on ``wires``) as a PTM on ``onto ⊇ wires``:
    the identity on the other wires, the digits in the order of ``onto``."""
    if tuple(wires) == tuple(onto):
        return matrix
    m, lead = len(wires), matrix.shape[:-2]
    extras = [w for w in onto if w not in wires]
    full = matrix.reshape(*lead, *[4] * (2 * m))
    for _ in extras:  # each identity adds an (out, in) pair of axes at the end
        full = np.multiply.outer(full, np.eye(4))
    k = len(lead)

    def axis(w: int, side: int) -> int:
        if w in wires:
            return k + side * m + wires.index(w)
        return k + 2 * m + 2 * extras.index(w) + side

    perm = list(range(k)) + [axis(w, 0) for w in onto] + [axis(w, 1) for w in onto]
    return full.transpose(perm).reshape(*lead, 4 ** len(onto), 4 ** len(onto))


def pattern(matrices: np.ndarray) -> np.ndarray:
    """The structural nonzeros ``[d, d]`` (bool) of a stack of PTMs ``[..., d, d]``."""
    return np.any(matrices.reshape(-1, *matrices.shape[-2:]) != 0, axis=0)


def digits(index: int, m: int) -> tuple[int, ...]:
    """The ``m`` base-4 digits of a Pauli-string index, most significant first."""
    return tuple((index >> (2 * (m - 1 - q))) & 3 for q in range(m))


@functools.lru_cache(maxsize=32)
def iz_strings(n: int) -> np.ndarray:
    """``[4^n]`` float64: 1 at every string of only I and Z (the coordinates of ``|0…0⟩``), else 0."""
    out = np.ones(1)
    for _ in range(n):
        out = np.kron(out, np.array([1.0, 0.0, 0.0, 1.0]))
    return out


def word_index(n: int, terms) -> int:
    """The coordinate of the Pauli word ``terms = ((wire, letter), …)`` among ``4^n`` (identity elsewhere)."""
    index = 0
    for wire, letter in terms:
        index += "IXYZ".index(letter) << (2 * (n - 1 - wire))
    return index
