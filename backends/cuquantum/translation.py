"""hqf circuits as cuStateVec calls (pure Python, testable without a GPU).

cuStateVec numbers index bits little-endian (bit ``k`` is worth ``2**k``) and hqf's wire 0 is the most
significant bit, so wire ``w`` is cuStateVec index bit ``n-1-w``; with that mapping a state has the same
memory layout in both conventions. A controlled gate (CNOT, CZ, CY, CRX, CRY, CRZ, CPhase, Toffoli, CSWAP)
is its target gate with cuStateVec control bits, any other gate its whole matrix from
:mod:`hqf.quantum.gates` on its wires (the last wire on matrix bit 0, :func:`gate_call`). Observables are
measured as Pauli words (:mod:`hqf.backends.readout`), grouped by the index bits they act on.
"""

from __future__ import annotations

import functools

import attrs
import numpy as np

from hqf.backends.readout import readout
from hqf.quantum.circuit import Circuit
from hqf.quantum.gates import GENERATORS

PAULI_MATRIX = {
    "X": np.array([[0, 1], [1, 0]], dtype=np.complex128),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=np.complex128),
    "Z": np.array([[1, 0], [0, -1]], dtype=np.complex128),
}


def index_bit(n_qubits: int, wire: int) -> int:
    """The cuStateVec index bit of hqf wire ``wire`` (wire 0 is the most significant bit)."""
    if not 0 <= wire < n_qubits:
        raise ValueError(f"'wire' must be in 0..{n_qubits - 1} (got {wire})")
    return n_qubits - 1 - wire


def _bits(value) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


@attrs.frozen
class GateCall:
    """One matrix on index bits ``targets``, applied where every control bit is 1.

    ``targets[i]`` is bit ``i`` of the matrix index (cuStateVec's rule); ``matrix`` names a gate of
    :mod:`hqf.quantum.gates` whose matrix over its own wires is applied (one matrix per state, at angle
    column ``param``, for a parametric gate).
    """

    matrix: str
    targets: tuple[int, ...] = attrs.field(converter=_bits)
    controls: tuple[int, ...] = ()
    param: int | None = None


#: controlled gates run as their target gate with cuStateVec control bits: hqf gate -> (target gate, controls)
CONTROLLED = {
    "CNOT": ("X", 1), "CZ": ("Z", 1), "CY": ("Y", 1), "CRX": ("RX", 1), "CRY": ("RY", 1), "CRZ": ("RZ", 1),
    "CPhase": ("PhaseShift", 1), "Toffoli": ("X", 2), "CSWAP": ("SWAP", 1),
}  # fmt: skip


@attrs.frozen
class ObservableGroup:
    """Observables on the same index bits, measured together.

    ``bits`` is ascending; ``paulis[j][i]`` is the Pauli letter of observable ``columns[j]`` on
    ``bits[i]``.
    """

    bits: tuple[int, ...]
    columns: tuple[int, ...]
    paulis: tuple[tuple[str, ...], ...]


@attrs.frozen
class CuStateVecCalls:
    """A circuit as cuStateVec calls: the gate calls, then the Pauli words measured (``n_words`` of them,
    grouped by index bits)."""

    gates: tuple[GateCall, ...]
    groups: tuple[ObservableGroup, ...]
    n_words: int


def gate_call(n: int, op) -> GateCall:
    """The cuStateVec call of one hqf operation: a controlled gate as its target gate with control bits,
    any other gate as its whole matrix (the last wire on matrix bit 0: ``wires[0]`` is the most significant)."""
    bits = [index_bit(n, w) for w in op.wires]
    if op.gate in CONTROLLED:
        target_gate, n_controls = CONTROLLED[op.gate]
        return GateCall(target_gate, tuple(reversed(bits[n_controls:])), tuple(bits[:n_controls]), op.param)
    return GateCall(op.gate, tuple(reversed(bits)), (), op.param)


@functools.lru_cache(maxsize=256)
def compile_circuit(circuit: Circuit) -> CuStateVecCalls:
    """The cuStateVec calls that simulate ``circuit`` and measure the Pauli words of its observables
    (:func:`hqf.backends.readout.readout`)."""
    n = circuit.n_qubits
    gates = tuple(gate_call(n, op) for op in circuit.operations)
    words = readout(circuit).words
    by_bits: dict[tuple[int, ...], list[tuple[int, tuple[str, ...]]]] = {}
    for column, word in enumerate(words):
        letters = {index_bit(n, w): p for w, p in word.terms}
        bits = tuple(sorted(letters))
        by_bits.setdefault(bits, []).append((column, tuple(letters[b] for b in bits)))
    groups = tuple(
        ObservableGroup(bits, tuple(c for c, _ in members), tuple(p for _, p in members))
        for bits, members in by_bits.items()
    )
    return CuStateVecCalls(gates, groups, len(words))


def generator_call(call: GateCall) -> tuple[GateCall, np.ndarray]:
    """The generator ``G`` of a parametric call's gate (``U = exp(−iθG)``) as a call on its target and
    control bits together, and its matrix: ``|1…1⟩⟨1…1| ⊗ G_target`` for a controlled gate."""
    matrix = GENERATORS[call.matrix]
    for _ in call.controls:  # the control bits follow the targets: more significant matrix bits
        matrix = np.kron(np.diag([0, 1]), matrix)
    return GateCall(f"generator:{call.matrix}:{len(call.controls)}", call.targets + call.controls), matrix


def pauli_matrix(letters: tuple[str, ...]) -> np.ndarray:
    """The dense matrix of a Pauli word whose ``letters[i]`` acts on the ``i``-th basis bit.

    cuStateVec reads ``basis_bits[0]`` as the least significant bit of the matrix index, so the
    first letter is the rightmost Kronecker factor.
    """
    out = np.ones((1, 1), dtype=np.complex128)
    for letter in reversed(letters):
        out = np.kron(out, PAULI_MATRIX[letter])
    return out
