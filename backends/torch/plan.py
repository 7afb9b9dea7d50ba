"""A circuit compiled once into a few batched tensor steps, and the constant tables those steps read.

:func:`compile_plan` turns a hashable :class:`~hqf.quantum.circuit.Circuit` into a :class:`StepPlan` (cached):

- the leading run of one-qubit gates acting on ``|0…0⟩`` is a product state: each wire's 2×2 gates are
  multiplied together and the state is the Kronecker product of their first columns (``ProductStep``);
- every later run of one-qubit gates becomes one :class:`Chain` of per-wire fused 2×2 matrices, applied
  as one batched matrix product per block of ``block`` neighbouring wires (``RotationStep``);
- every run of CNOT/CZ becomes one signed index permutation (``PermutationStep``);
- all-Z observables are one matrix product of the probabilities with a ±1 table, which also absorbs a
  final permutation.

Gate matrices are built for a whole depth of a run at once: ``M = A + cos(θ/2)·Bm + sin(θ/2)·C`` with
constant ``[W, 2, 2]`` tables, so ``RX/RY/RZ(θ) = cos(θ/2)·I − i·sin(θ/2)·P`` and a fixed gate ``G`` is
``A = G``. A plan is plain numpy; :func:`lower` converts its tables to tensors once per dtype and
device (:class:`PlanTables`, immutable: what changes between calls lives in the backend's cache).
"""

from __future__ import annotations

import functools
import math

import attrs
import numpy as np
import torch

from hqf.quantum.circuit import BASE_GATES, Circuit, Operation, PauliWord
from hqf.quantum.gates import FIXED_1Q, PAULI, ROTATIONS, bit_table, z_signs

#: wires fused into one Kronecker block when applying a run of one-qubit gates (measured: docs/performance.md)
DEFAULT_BLOCK = 4

_I2 = np.eye(2, dtype=complex)
_PAULI = {name: np.array(matrix, dtype=complex) for name, matrix in PAULI.items()}
# H as (X + Z)/√2: ``1/np.sqrt(2)`` rounds to …5475 where FIXED_1Q's ``2**-0.5`` gives …5476, and the
# plan's values are kept bit for bit as they were
_FIXED = {"H": (_PAULI["X"] + _PAULI["Z"]) / np.sqrt(2), "X": np.array(FIXED_1Q["X"], dtype=complex)}


def fits(circuit: Circuit) -> bool:
    """Whether a plan can run ``circuit``: the original seven gates (rotations, H, X, CNOT, CZ) and
    Pauli-word read-outs only. Any other circuit runs gate by gate (:mod:`~hqf.backends.torch.plain`)."""
    return circuit.gate_names <= BASE_GATES and all(isinstance(obs, PauliWord) for obs in circuit.observables)


class Chain:
    """The one-qubit gates of a run, as tables ``[D, W, …]`` by depth ``D`` (gate order on a wire)."""

    def __init__(self, n_qubits: int, ops: list[Operation]) -> None:
        per_wire: list[list[Operation]] = [[] for _ in range(n_qubits)]
        for op in ops:
            per_wire[op.wires[0]].append(op)
        depth = max(len(gates) for gates in per_wire)
        shape = (depth, n_qubits)
        self.n_qubits = n_qubits
        self.wires_used = tuple(w for w in range(n_qubits) if per_wire[w])
        self.columns = np.zeros(shape, dtype=np.int64)  # column read (0 where no rotation)
        self.rotation = np.zeros(shape, dtype=bool)
        self.a = np.zeros(shape + (2, 2), dtype=complex)
        self.b = np.zeros(shape + (2, 2), dtype=complex)
        self.c = np.zeros(shape + (2, 2), dtype=complex)
        self.generator = np.zeros(shape + (2, 2), dtype=complex)
        kinds = np.full(shape, "I", dtype=object)
        for w, gates in enumerate(per_wire):
            for d in range(depth):
                if d >= len(gates):
                    self.a[d, w] = _I2
                    continue
                op = gates[d]
                kinds[d, w] = op.gate
                if op.param is not None:
                    pauli = _PAULI[ROTATIONS[op.gate]]
                    self.columns[d, w] = op.param
                    self.rotation[d, w] = True
                    self.b[d, w] = _I2
                    self.c[d, w] = -1j * pauli
                    self.generator[d, w] = pauli
                else:
                    self.a[d, w] = _FIXED[op.gate]
        #: the gate at every ``[depth, wire]`` (``"I"`` where none)
        self.gates = kinds
        self.split = _real_then_phase(kinds)
        #: the wire of each angle column this run reads
        self.wire_of = {int(self.columns[d, w]): int(w) for d, w in zip(*np.nonzero(self.rotation))}
        #: the angle columns this run reads
        self.angle_columns = frozenset(self.wire_of)

    @property
    def depth(self) -> int:
        """Gates on the busiest wire (0: the run is empty)."""
        return self.a.shape[0]


def _real_then_phase(kinds: np.ndarray) -> int | None:
    """Depth ``s`` such that every gate of depths ``< s`` is real (RY, H, X) and every gate of depths
    ``≥ s`` is diagonal (RZ), on every wire; ``None`` if there is none (e.g. RX, or RZ before RY).

    Such a run is a real matrix followed by a diagonal phase: the real part acts on the real and the
    imaginary parts of the state as two real vectors (half the arithmetic of a complex matrix).
    """
    diagonal = np.isin(kinds, ["I", "RZ"]).all(axis=1)
    real = np.isin(kinds, ["I", "RY", "H", "X"]).all(axis=1)
    split = 0 if diagonal.all() else int(np.nonzero(~diagonal)[0].max()) + 1
    return split if real[:split].all() and diagonal[split:].all() else None


class ProductStep:
    """The leading one-qubit run on ``|0…0⟩``: a Kronecker product of per-wire vectors."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain


class RotationStep:
    """A later one-qubit run: fused per-wire matrices applied block by block."""

    def __init__(self, chain: Chain, block: int) -> None:
        self.chain = chain
        n = chain.n_qubits
        used = set(chain.wires_used)
        self.blocks = tuple(
            (start, min(block, n - start))
            for start in range(0, n, block)
            if used & set(range(start, min(start + block, n)))
        )


class PermutationStep:
    """A run of CNOT/CZ as ``out[i] = sign[i] · in[source[i]]``."""

    def __init__(self, n_qubits: int, ops: list[Operation]) -> None:
        index = np.arange(2**n_qubits)
        source, sign = index.copy(), np.ones(2**n_qubits)
        for op in ops:
            control = bit_table(n_qubits, op.wires[0]).astype(bool)
            if op.gate == "CNOT":
                flip = 1 << (n_qubits - 1 - op.wires[1])
                step = np.where(control, index ^ flip, index)
                source, sign = source[step], sign[step]
            else:  # CZ
                sign = sign * np.where(control & bit_table(n_qubits, op.wires[1]).astype(bool), -1.0, 1.0)
        self.source = source
        self.sign = None if np.all(sign == 1) else sign
        inverse = np.empty_like(source)
        inverse[source] = index
        self.inverse = inverse  # in[j] = sign[inverse[j]] · out[inverse[j]]


class StepPlan:
    """A compiled circuit: ``steps`` (a :class:`ProductStep` first), then the measurement tables."""

    def __init__(self, circuit: Circuit, block: int) -> None:
        n = circuit.n_qubits
        self.n_qubits, self.n_params, self.block = n, circuit.n_params, block
        self.steps: list[ProductStep | RotationStep | PermutationStep] = []
        run: list[Operation] = []
        run_is_1q = True
        for op in circuit.operations:
            is_1q = len(op.wires) == 1
            if run and is_1q != run_is_1q:
                self._close(run, run_is_1q)
                run = []
            run.append(op)
            run_is_1q = is_1q
        if run:
            self._close(run, run_is_1q)
        if not self.steps or not isinstance(self.steps[0], ProductStep):
            self.steps.insert(0, ProductStep(Chain(n, [])))
        self.z_words = [k for k, w in enumerate(circuit.observables) if all(p == "Z" for _, p in w.terms)]
        self.z_signs = (
            np.stack([z_signs(n, circuit.observables[k].wires) for k in self.z_words], axis=1) if self.z_words else None
        )
        self.other_words = [(k, w) for k, w in enumerate(circuit.observables) if k not in self.z_words]
        if not self.other_words and isinstance(self.steps[-1], PermutationStep):
            # diagonal observables absorb a final signed permutation: Pᴴ D P = D[inverse]
            self.z_signs = self.z_signs[self.steps.pop().inverse]
        self.n_outputs = circuit.n_outputs
        #: complex multiply-adds per amplitude of the block products after the product state
        self.block_work = sum(
            2**size for step in self.steps[1:] if isinstance(step, RotationStep) for _, size in step.blocks
        )
        first = self.steps[0].chain
        data = first.rotation[0] if first.depth else np.zeros(n, dtype=bool)
        #: the wires whose first gate is a rotation of the product state: it reads the data
        self.data_wires = np.nonzero(data)[0]
        #: the columns those first rotations read (one per data wire, in wire order)
        self.data_columns = first.columns[0][data] if data.any() else np.zeros(0, dtype=np.int64)
        #: every other column: fixed for the frozen-weight matrix (the weights, at inference)
        self.frozen_columns = tuple(sorted(set(range(self.n_params)) - set(self.data_columns.tolist())))
        frozen = list(self.frozen_columns)
        #: where the frozen columns start when they are the last ones (broadcast weights), else ``None``
        self.frozen_start = frozen[0] if frozen and frozen == list(range(frozen[0], self.n_params)) else None

    @property
    def product_columns(self) -> frozenset[int]:
        """The columns the leading product state reads."""
        return self.steps[0].chain.angle_columns

    def first_step_reading(self, columns: frozenset[int]) -> int:
        """The index of the first step that reads any of ``columns`` (``len(steps)`` if none does)."""
        for k, step in enumerate(self.steps):
            if not isinstance(step, PermutationStep) and step.chain.angle_columns & columns:
                return k
        return len(self.steps)

    def _close(self, run: list[Operation], is_1q: bool) -> None:
        if not is_1q:
            self.steps.append(PermutationStep(self.n_qubits, run))
        elif not self.steps:
            self.steps.append(ProductStep(Chain(self.n_qubits, run)))
        else:
            self.steps.append(RotationStep(Chain(self.n_qubits, run), self.block))


@functools.lru_cache(maxsize=256)
def compile_plan(circuit: Circuit, block: int = DEFAULT_BLOCK) -> StepPlan:
    """The cached plan of ``circuit``."""
    return StepPlan(circuit, block)


@attrs.frozen(eq=False)
class ChainTables:
    """A one-qubit run's tables as tensors (see :class:`Chain`)."""

    columns: torch.Tensor  # [D, W] column read (0 where no rotation)
    a: torch.Tensor  # [D, W, 2, 2]: M = a + cos(θ/2)·b + sin(θ/2)·c
    b: torch.Tensor
    c: torch.Tensor
    generator: torch.Tensor  # [D, W, 2, 2]: the Pauli of each rotation
    rotation_wires: tuple[torch.Tensor, ...]  # per depth: the wires holding a rotation
    rotation_columns: tuple[torch.Tensor, ...]  # per depth: the columns those rotations read


@attrs.frozen(eq=False)
class PermutationTables:
    """A signed permutation as tensors: ``out = sign · in[source]``, ``in = (sign · out)[inverse]``."""

    source: torch.Tensor
    inverse: torch.Tensor
    sign: torch.Tensor | None


@attrs.frozen(eq=False)
class PlanTables:
    """A plan's constant tables as tensors of one dtype and device."""

    steps: tuple[ChainTables | PermutationTables, ...]  # by step index
    n_qubits: int
    complex_dtype: torch.dtype
    z_signs: torch.Tensor | None  # [2**n, K]: the Z words' ±1 tables
    data_wires: torch.Tensor  # (see StepPlan)
    data_columns: torch.Tensor
    data_slice: slice | None  # the data columns as a slice when they are one ascending run
    frozen_index: torch.Tensor  # StepPlan.frozen_columns
    minus_quarter_turn: torch.Tensor  # (0, −π/2): the cosine of (x/2, x/2 − π/2) is (cos(x/2), sin(x/2))
    half: torch.Tensor  # 0.5
    n_data_wires: int


@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)  # cached tables must be normal tensors even if first built under inference mode
def lower(plan: StepPlan, complex_dtype: torch.dtype, device: torch.device) -> PlanTables:
    """The constant tables of ``plan`` as tensors (cached)."""
    real_dtype = torch.empty(0, dtype=complex_dtype).real.dtype

    def c(x):
        return torch.as_tensor(x, dtype=complex_dtype, device=device)

    steps: list[ChainTables | PermutationTables] = []
    for step in plan.steps:
        if isinstance(step, PermutationStep):
            sign = None if step.sign is None else torch.as_tensor(step.sign, dtype=real_dtype, device=device)
            steps.append(
                PermutationTables(
                    torch.as_tensor(step.source, device=device), torch.as_tensor(step.inverse, device=device), sign
                )
            )
            continue
        ch = step.chain
        steps.append(
            ChainTables(
                columns=torch.as_tensor(ch.columns, device=device),
                a=c(ch.a),
                b=c(ch.b),
                c=c(ch.c),
                generator=c(ch.generator),
                rotation_wires=tuple(torch.as_tensor(np.nonzero(r)[0], device=device) for r in ch.rotation),
                rotation_columns=tuple(
                    torch.as_tensor(cols[r], device=device) for r, cols in zip(ch.rotation, ch.columns)
                ),
            )
        )
    data_columns = plan.data_columns
    run = data_columns.size and np.array_equal(
        data_columns, np.arange(data_columns[0], data_columns[0] + data_columns.size)
    )
    return PlanTables(
        steps=tuple(steps),
        n_qubits=plan.n_qubits,
        complex_dtype=complex_dtype,
        z_signs=None if plan.z_signs is None else torch.as_tensor(plan.z_signs, dtype=real_dtype, device=device),
        data_wires=torch.as_tensor(plan.data_wires, device=device),
        data_columns=torch.as_tensor(data_columns, device=device),
        data_slice=slice(int(data_columns[0]), int(data_columns[0]) + data_columns.size) if run else None,
        frozen_index=torch.as_tensor(plan.frozen_columns, dtype=torch.long, device=device),
        minus_quarter_turn=torch.tensor([0.0, -math.pi / 2], dtype=real_dtype, device=device),
        half=torch.tensor(0.5, dtype=real_dtype, device=device),
        n_data_wires=len(plan.data_wires),
    )
