"""Every observable as a linear map of Pauli-word expectation values, for adapters whose simulator
measures Pauli words (Qiskit's estimator and shot counts, cuStateVec, PennyLane's ``expval``).

A circuit's output row is ``offset + matrix @ ⟨words⟩``:

- a :class:`~hqf.quantum.circuit.PauliWord` is itself (coefficient 1);
- a :class:`~hqf.quantum.circuit.Hamiltonian` ``Σ c_k P_k`` is its words with their coefficients;
- :class:`~hqf.quantum.circuit.Probs` on ``k`` wires: the projector on outcome ``b`` (``wires[0]`` the
  most significant bit of ``b``) is ``Π_i (1 + (−1)^{b_i} Z_i)/2 = 2^{−k} Σ_S (−1)^{|b ∧ S|} Z_S`` over
  the subsets ``S`` of the wires (a Walsh–Hadamard transform); the empty subset is the constant
  ``2^{−k}``. This costs ``2^k − 1`` Z-words, all measurable together in the computational basis, and
  from shot counts it gives exactly the observed frequencies.

With a readout error (:class:`~hqf.quantum.noise.NoiseModel` ``readout``), each wire of a word is
measured in the word's basis and its bit misread by the wire's confusion matrix: the ±1 outcome ``s``
reads on average ``a·s + b`` with ``a = 1 − p(1|0) − p(0|1)`` and ``b = p(0|1) − p(1|0)``, so a word
``⊗_w P_w`` reads as ``⊗_w (a_w P_w + b_w 1)``: its sub-words, weighted (:func:`misread`).
"""

from __future__ import annotations

import functools
import itertools

import attrs
import numpy as np
import torch

from hqf.quantum.circuit import Circuit, Hamiltonian, PauliWord, Probs
from hqf.quantum.noise import NoiseModel


@attrs.frozen(eq=False)
class Readout:
    """``offset[R] + matrix[R, M] @ ⟨words[M]⟩``: a circuit's outputs from distinct Pauli words."""

    words: tuple[PauliWord, ...]
    matrix: np.ndarray
    offset: np.ndarray

    @property
    def identity(self) -> bool:
        """True when the outputs are the words themselves, in order (Pauli-word observables only)."""
        return len(self.words) == self.matrix.shape[0] and bool(np.array_equal(self.matrix, np.eye(len(self.words))))

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``[B, R]`` outputs from ``values[B, M]``, the words' expectation values (numpy)."""
        return values @ self.matrix.T + self.offset

    def apply_torch(self, values):
        """:meth:`apply` for a torch tensor ``[B, M]`` (differentiable)."""
        matrix = torch.as_tensor(self.matrix, dtype=values.dtype, device=values.device)
        return values @ matrix.T + torch.as_tensor(self.offset, dtype=values.dtype, device=values.device)


def _probs_terms(obs: Probs) -> list[tuple[np.ndarray, PauliWord | None]]:
    """``(column of 2^k coefficients, Z-word or None for the constant)`` per subset of the wires."""
    k = len(obs.wires)
    outcomes = np.arange(2**k)
    terms = []
    for size in range(k + 1):
        for subset in itertools.combinations(range(k), size):  # positions in obs.wires
            mask = sum(1 << (k - 1 - i) for i in subset)  # wires[0] is the most significant bit
            parity = np.array([bin(b & mask).count("1") % 2 for b in outcomes])
            column = (1 - 2 * parity) / 2**k
            word = PauliWord(tuple((obs.wires[i], "Z") for i in subset)) if subset else None
            terms.append((column, word))
    return terms


def misread(word: PauliWord, noise: NoiseModel) -> list[tuple[float, PauliWord | None]]:
    """What measuring ``word`` reads under ``noise``'s readout error: ``(coefficient, sub-word)`` terms,
    None for the constant; ``[(1.0, word)]`` when none of its wires is misread."""
    factors = []  # per wire of the word: ((weight, letter or None), ...)
    for wire, letter in word.terms:
        confusion = noise.confusion(wire)
        if confusion is None:
            factors.append(((1.0, letter),))
            continue
        p1_given_0, p0_given_1 = confusion[1, 0], confusion[0, 1]
        factors.append(((1.0 - p1_given_0 - p0_given_1, letter), (p0_given_1 - p1_given_0, None)))
    terms = []
    for choice in itertools.product(*factors):
        weight = float(np.prod([w for w, _ in choice]))
        kept = tuple((wire, letter) for (wire, _), (_, letter) in zip(word.terms, choice) if letter is not None)
        if weight != 0.0 or len(kept) == len(word.terms):  # the word itself stays: a circuit reads some word
            terms.append((weight, PauliWord(kept) if kept else None))
    return terms


@functools.lru_cache(maxsize=256)
def readout(circuit: Circuit, noise: NoiseModel | None = None) -> Readout:
    """The :class:`Readout` of ``circuit.observables`` (cached per circuit), with ``noise``'s readout
    error when given (:func:`misread`)."""
    index: dict[PauliWord, int] = {}
    entries: list[tuple[int, int, float]] = []  # (output row, word index, coefficient)
    offset = np.zeros(circuit.n_outputs)

    def add(row: int, word: PauliWord, coefficient: float) -> None:
        if noise is None or not noise.has_readout:
            entries.append((row, index.setdefault(word, len(index)), coefficient))
            return
        for weight, part in misread(word, noise):
            if part is None:
                offset[row] += coefficient * weight
            else:
                entries.append((row, index.setdefault(part, len(index)), coefficient * weight))

    row = 0
    for obs in circuit.observables:
        if isinstance(obs, PauliWord):
            add(row, obs, 1.0)
        elif isinstance(obs, Hamiltonian):
            for coefficient, word in obs.terms:
                add(row, word, coefficient)
        elif isinstance(obs, Probs):
            for column, word in _probs_terms(obs):
                for b, value in enumerate(column):
                    if word is None:
                        offset[row + b] += value
                    else:
                        add(row + b, word, value)
        else:  # pragma: no cover - Circuit validates its observables
            raise TypeError(f"unknown observable {obs!r}")
        row += obs.n_outputs
    matrix = np.zeros((circuit.n_outputs, len(index)))
    for r, m, coefficient in entries:
        matrix[r, m] += coefficient
    return Readout(tuple(index), matrix, offset)
