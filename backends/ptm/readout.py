"""A circuit's outputs as linear functions of the Pauli vector: which coordinates each measured word reads.

Every observable is a combination of Pauli words (:func:`hqf.backends.readout.readout`), and ``⟨P⟩`` is
the coordinate ``r_P`` itself. A readout error on a wire (``M[read, true]``) turns its measured sign
``(−1)^bit`` into ``a·p₀ + b·p₁`` in expectation, ``a = M₀₀ − M₁₀``, ``b = M₀₁ − M₁₁``: each letter ``L`` of a
word on that wire reads ``α I + β L`` with ``α = (a + b)/2``, ``β = (a − b)/2`` (a word is measured in its
own basis, so this holds for X and Y as for Z). A word then reads ``Σ_S Π_{w∈S} β_w Π_{w∉S} α_w r_{P_S}``
over the subsets ``S`` of its wires.
"""

from __future__ import annotations

import itertools

import attrs
import numpy as np

from hqf.backends.ptm.transfer import word_index
from hqf.backends.readout import readout
from hqf.quantum.circuit import Circuit
from hqf.quantum.noise import NoiseModel


def letter_map(noise: NoiseModel, wire: int) -> tuple[float, float]:
    """``(α, β)``: a letter on ``wire`` reads ``α I + β L`` (``(0, 1)`` without readout error)."""
    confusion = noise.confusion(wire)
    if confusion is None:
        return 0.0, 1.0
    a = confusion[0, 0] - confusion[1, 0]
    b = confusion[0, 1] - confusion[1, 1]
    return (a + b) / 2, (a - b) / 2


@attrs.frozen(eq=False)
class Reading:
    """Output row ``= offset + matrix @ words``, word ``m`` being ``Σ coef[q] r[idx[q]]`` over
    ``q ∈ [ptr[m], ptr[m+1])``."""

    ptr: np.ndarray
    idx: np.ndarray
    coef: np.ndarray
    matrix: np.ndarray
    offset: np.ndarray

    @classmethod
    def of(cls, circuit: Circuit, noise: NoiseModel) -> Reading:
        plan = readout(circuit)
        n = circuit.n_qubits
        ptr, idx, coef = [0], [], []
        for word in plan.words:
            maps = [letter_map(noise, w) for w, _ in word.terms]
            for keep in itertools.product((False, True), repeat=len(word.terms)):
                weight = float(np.prod([beta if k else alpha for k, (alpha, beta) in zip(keep, maps)]))
                if weight != 0.0:
                    idx.append(word_index(n, [t for k, t in zip(keep, word.terms) if k]))
                    coef.append(weight)
            ptr.append(len(idx))
        return cls(
            np.array(ptr, dtype=np.int64),
            np.array(idx, dtype=np.int64),
            np.array(coef, dtype=np.float64),
            np.ascontiguousarray(plan.matrix, dtype=np.float64),
            np.asarray(plan.offset, dtype=np.float64),
        )
