"""A PennyLane tape as an hqf circuit and its angles.

Every parameter of a gate is its own angle column, so the circuit keeps hqf's rule that each column is read
by exactly one gate: a broadcast parameter (one value per row of the tape's batch) becomes a data column,
a scalar one (a trainable weight or a constant) a shared column appended to every row. Data columns come
first, so that the fused kernels see a TorchLayer's embedding as data and its weights as broadcast weights.

The tape must already be decomposed into :data:`HQF_GATES` (plus :data:`PHASE_ONLY` and the ``QubitUnitary``
operations :func:`native_unitary` accepts) and mapped to the
standard wires ``0..n−1``; PennyLane's wire 0 is the most significant bit, as in hqf.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import pennylane as qml
import torch

from hqf.quantum.circuit import UNITARY, UNITARY_MAX_WIRES, Circuit, Operation, PauliWord, Probs

#: PennyLane operation -> hqf gate (same wire order, control first; ``IsingXX`` is ``exp(−iθ X⊗X/2)``)
HQF_GATES: dict[str, str] = {
    "RX": "RX", "RY": "RY", "RZ": "RZ", "PhaseShift": "PhaseShift", "Hadamard": "H", "PauliX": "X",
    "PauliY": "Y", "PauliZ": "Z", "S": "S", "T": "T", "SX": "SX", "CNOT": "CNOT", "CZ": "CZ", "CY": "CY",
    "SWAP": "SWAP", "IsingXX": "RXX", "IsingYY": "RYY", "IsingZZ": "RZZ", "CRX": "CRX", "CRY": "CRY",
    "CRZ": "CRZ", "ControlledPhaseShift": "CPhase", "Toffoli": "Toffoli", "CSWAP": "CSWAP", "MultiRZ": "MultiRZ",
}  # fmt: skip
#: a ``QubitUnitary`` runs as hqf's own (a fixed matrix on 1 to 3 wires) when :func:`native_unitary` says so
#: operations that change no expectation value: dropped from the circuit (a global phase is kept for the state;
#: ``qml.snapshots`` takes a snapshot by splitting the tape before the device sees it)
PHASE_ONLY = frozenset({"Identity", "GlobalPhase", "Barrier", "Snapshot"})


def matrix_of(op) -> np.ndarray:
    """A ``QubitUnitary``'s matrix as a complex128 numpy array (a torch tensor detached)."""
    value = op.data[0]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(qml.math.unwrap(value), dtype=complex)


def native_unitary(op) -> bool:
    """Whether hqf runs ``op``, a ``QubitUnitary``, as its own: one fixed matrix (not trainable, not broadcast) on
    1 to :data:`~hqf.quantum.circuit.UNITARY_MAX_WIRES` wires, unitary to 1e-10; otherwise it is decomposed."""
    if len(op.wires) > UNITARY_MAX_WIRES or qml.math.ndim(op.data[0]) != 2 or qml.math.requires_grad(op.data[0]):
        return False
    matrix = matrix_of(op)
    return bool(np.abs(matrix.conj().T @ matrix - np.eye(len(matrix))).max() <= 1e-10)


#: a Pauli word as sorted ``((wire, letter), …)``; ``()`` is the identity
WordKey = tuple[tuple[int, str], ...]


@attrs.frozen
class Angles:
    """The angle columns of one tape: ``data[B, P_d]`` (broadcast parameters; ``B = 1`` without
    broadcasting) and ``shared[S]`` (scalar parameters), float64 torch tensors on the CPU."""

    data: torch.Tensor
    shared: torch.Tensor
    #: ``exp(−iφ)`` factors of the tape's global phases (each ``()`` or ``[B]``); the state needs them
    phases: tuple[Any, ...]

    def full(self) -> torch.Tensor:
        """``[B, P]``: the shared columns appended to every data row."""
        shared = self.shared.reshape(1, -1).expand(self.data.shape[0], -1)
        return torch.cat([self.data, shared], dim=1)


def as_column(value: Any) -> torch.Tensor:
    """A parameter as a float64 torch tensor (``()`` or ``[B]``), keeping a torch autograd graph."""
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(qml.math.unwrap(value))
    if tensor.is_complex():
        tensor = tensor.real
    return tensor.to(device="cpu", dtype=torch.float64)


#: one gate of a tape as ``(hqf gate, wires, column or None, matrix or None)``: hashable, so equal tapes share
#: one circuit (the matrix of a ``QubitUnitary`` as rows of complex numbers)
GateKey = tuple[str, tuple[int, ...], "int | None", "tuple | None"]


def gates(tape) -> tuple[tuple[GateKey, ...], Angles, list[int | None]]:
    """The hqf gates of ``tape`` (:data:`GateKey`), its angle columns (see the module docstring) and the
    column of each of the operations' parameters in the tape's order (None: a global phase)."""
    batch = tape.batch_size or 1
    data: list[torch.Tensor] = []
    shared: list[torch.Tensor] = []
    phases: list[Any] = []
    pending: list[tuple[str, tuple[int, ...], bool, int]] = []  # gate, wires, broadcast?, index within its kind
    matrices: dict[int, tuple] = {}  # position in pending -> a QubitUnitary's matrix
    for op in tape.operations:
        name = op.name
        if name in PHASE_ONLY:
            if name == "GlobalPhase":
                phases.append(torch.exp(-1j * as_column(op.data[0]).to(torch.complex128)))
                pending.append(("", (), False, -2))
            continue
        wires = tuple(op.wires.labels)
        if name == UNITARY:  # its matrix is no angle: a parameter with no column, as a global phase's
            matrices[len(pending)] = tuple(map(tuple, matrix_of(op).tolist()))
            pending.append((UNITARY, wires, False, -2))
            continue
        if not op.data:
            pending.append((HQF_GATES[name], wires, False, -1))
            continue
        column = as_column(op.data[0])
        if column.ndim == 1:
            pending.append((HQF_GATES[name], wires, True, len(data)))
            data.append(column)
        else:
            pending.append((HQF_GATES[name], wires, False, len(shared)))
            shared.append(column)
    n_data = len(data)
    columns = [None if index < 0 else (index if broadcast else n_data + index) for _, _, broadcast, index in pending]
    keys = tuple(
        (gate, wires, column, matrices.get(k))
        for k, ((gate, wires, _, _), column) in enumerate(zip(pending, columns))
        if gate
    )
    by_parameter = [column for (_, _, _, index), column in zip(pending, columns) if index != -1]
    data_matrix = torch.stack(data, dim=1) if data else torch.zeros(batch, 0, dtype=torch.float64)
    shared_vector = torch.stack(shared) if shared else torch.zeros(0, dtype=torch.float64)
    return keys, Angles(data_matrix, shared_vector, tuple(phases)), by_parameter


def pauli_terms(sentence, n_wires: int) -> list[tuple[Any, WordKey]] | None:
    """``[(coefficient, word), …]`` of a Pauli sentence (an observable's ``pauli_rep``; None gives None):
    the coefficients' real parts, kept as given (trainable torch coefficients stay in the graph)."""
    if sentence is None:
        return None
    terms = []
    for word, coefficient in sentence.items():
        key = tuple(sorted((int(w), letter) for w, letter in word.items() if letter != "I"))
        if any(w >= n_wires for w, _ in key):
            return None
        terms.append((qml.math.real(coefficient), key))
    return terms


@attrs.frozen
class Readout:
    """How the tape's measurements are read from one hqf call: each measurement is ``("expval", terms)``,
    ``("var", terms, terms of the square)`` or ``("probs", wires)``; ``words`` are the distinct
    non-identity Pauli words the circuit measures, before its ``Probs``."""

    plan: tuple[tuple[Any, ...], ...]
    words: tuple[WordKey, ...]

    def observables(self) -> tuple[PauliWord | Probs, ...]:
        """The hqf observables: one Pauli word per distinct word, then one ``Probs`` per probabilities
        measurement (a circuit needs one observable: ``Z0`` when there is nothing else)."""
        out: list[PauliWord | Probs] = [PauliWord(word) for word in self.words]
        out += [Probs(entry[1]) for entry in self.plan if entry[0] == "probs"]
        return tuple(out) or (PauliWord.z(0),)


def readout(measurements: Sequence[Any], n_wires: int) -> Readout | None:
    """The :class:`Readout` of ``measurements``, or None when one of them needs the state vector (an
    observable without a Pauli representation, a state, a density matrix, a mid-circuit value, …)."""
    plan: list[tuple[Any, ...]] = []
    words: dict[WordKey, None] = {}
    for mp in measurements:
        if getattr(mp, "mv", None) is not None:
            return None
        if isinstance(mp, qml.measurements.ProbabilityMP) and mp.obs is None and len(mp.wires):
            plan.append(("probs", tuple(int(w) for w in mp.wires)))
            continue
        if type(mp) not in (qml.measurements.ExpectationMP, qml.measurements.VarianceMP) or mp.obs is None:
            return None
        terms = pauli_terms(mp.obs.pauli_rep, n_wires)
        if terms is None:
            return None
        entry: tuple[Any, ...] = ("expval", terms)
        if isinstance(mp, qml.measurements.VarianceMP):
            entry = ("var", terms, pauli_terms(mp.obs.pauli_rep @ mp.obs.pauli_rep, n_wires))
        for part in entry[1:]:
            words.update((key, None) for _, key in part if key)
        plan.append(entry)
    return Readout(tuple(plan), tuple(words))


@functools.lru_cache(maxsize=256)
def circuit_of(n_wires: int, keys: tuple[GateKey, ...], observables: tuple[PauliWord | Probs, ...]) -> Circuit:
    """The hqf circuit of gates ``keys`` on ``n_wires`` wires (at least one), cached: a tape that differs only
    in its parameter values gets the same instance (and the backend's compiled plan of it)."""
    operations = [Operation(gate, wires, column, matrix=matrix) for gate, wires, column, matrix in keys]
    return Circuit(max(1, n_wires), operations, observables)


def assemble(out: torch.Tensor, read: Readout, broadcast: bool) -> list[torch.Tensor]:
    """Each measurement's result from the hqf values ``out[B, R]`` (``[B]``/``[B, 2**k]`` per measurement,
    the batch axis dropped without broadcasting)."""
    column = {word: r for r, word in enumerate(read.words)}
    position = len(read.words)

    def expectation(terms) -> torch.Tensor:
        total = torch.zeros(out.shape[0], dtype=out.dtype)
        for coefficient, key in terms:
            value = out[:, column[key]] if key else 1.0
            total = total + torch.as_tensor(coefficient, dtype=out.dtype) * value
        return total

    results = []
    for entry in read.plan:
        if entry[0] == "probs":
            width = 2 ** len(entry[1])
            value = out[:, position : position + width]
            position += width
        elif entry[0] == "var":
            value = expectation(entry[2]) - expectation(entry[1]) ** 2
        else:
            value = expectation(entry[1])
        results.append(value if broadcast else value[0])
    return results
