"""A circuit and a noise model compiled into the steps the PTM kernels run (:class:`Program`).

Each gate becomes a factor: its PTM (:mod:`hqf.backends.ptm.transfer`) with the channels the noise model
puts after it composed on the left, fixed or, for a parameterized gate, six fixed matrices weighted per
row. Consecutive one-qubit factors on a wire are gathered and go into the next multi-qubit step on that
wire (lifted onto its wires) or, at the end, into a one-qubit step of their own: a step is one pass of
the kernels over the state. A step's matrix is the product of its factors, built per row from the angles,
and stored as the entries of its structural nonzeros (CSR): a rotation touches two digits, a CNOT with
Pauli noise is a scaled signed permutation, and so on, with no special code.
"""

from __future__ import annotations

import functools

import attrs
import numpy as np

from hqf.backends.ptm import transfer
from hqf.quantum.circuit import Circuit, Operation
from hqf.quantum.noise import Channel, NoiseModel

#: rows whose step matrices numpy builds at once (the factors' matrices of a chunk stay in cache)
ROWS = 64


@functools.lru_cache(maxsize=256)
def channel_ptm(channel: Channel) -> np.ndarray:
    """The 4×4 PTM of a one-qubit channel: diagonal for a Pauli channel (``X, Y, Z`` scaled by
    ``1 − 2(p_y + p_z)``, …), else from its Kraus operators."""
    probabilities = channel.pauli_probabilities()
    if probabilities is None:
        return transfer.kraus_ptm(channel.kraus())
    px, py, pz = probabilities
    return np.diag([1.0, 1 - 2 * (py + pz), 1 - 2 * (px + pz), 1 - 2 * (px + py)])


def noise_after(op: Operation, noise: NoiseModel) -> np.ndarray | None:
    """The PTM on ``op.wires`` of the channels ``noise`` applies after ``op`` (None when there are none)."""
    out = None
    for wire, channel in noise.after(op):
        ptm = transfer.lift(channel_ptm(channel), (wire,), op.wires)
        out = ptm if out is None else ptm @ out
    return out


@attrs.frozen(eq=False)
class Factor:
    """A gate with the noise after it: ``matrix`` (``[d, d]``) when fixed, else ``Σ_q w_q(θ) terms[q]``
    with ``θ`` in column ``column`` and ``w`` of :func:`~hqf.backends.ptm.transfer.term_weights`."""

    wires: tuple[int, ...]
    column: int | None
    k: float = 0.0
    matrix: np.ndarray | None = None
    terms: np.ndarray | None = None

    @classmethod
    def of(cls, op: Operation, noise: NoiseModel) -> Factor:
        after = noise_after(op, noise)
        if op.param is None:
            matrix = transfer.fixed_gate(op.gate)
            return cls(op.wires, None, matrix=matrix if after is None else transfer.clean(after @ matrix))
        k, terms = transfer.gate_terms(op.gate)
        return cls(op.wires, op.param, k, terms=terms if after is None else transfer.clean(after @ terms))

    def lifted(self, onto: tuple[int, ...]) -> Factor:
        """The same factor as a PTM on ``onto ⊇ wires``."""
        if self.column is None:
            return attrs.evolve(self, wires=onto, matrix=transfer.lift(self.matrix, self.wires, onto))
        return attrs.evolve(self, wires=onto, terms=transfer.lift(self.terms, self.wires, onto))

    def times(self, earlier: Factor) -> Factor:
        """``self · earlier`` for two fixed factors on the same wires."""
        return attrs.evolve(self, matrix=transfer.clean(self.matrix @ earlier.matrix))

    @property
    def pattern(self) -> np.ndarray:
        return transfer.pattern(self.matrix if self.column is None else self.terms)


@attrs.frozen(eq=False)
class Step:
    """One pass of the kernels: ``factors`` (applied in order) on ``wires``, stored at ``rows, cols``."""

    wires: tuple[int, ...]
    factors: tuple[Factor, ...]
    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def of(cls, wires: tuple[int, ...], factors: list[Factor]) -> Step:
        merged: list[Factor] = []
        for factor in factors:  # neighbouring fixed factors multiply once, here
            if merged and factor.column is None and merged[-1].column is None:
                merged[-1] = factor.times(merged[-1])
            else:
                merged.append(factor)
        structure = np.eye(4 ** len(wires), dtype=bool)
        for factor in merged:
            structure = (factor.pattern.astype(np.int64) @ structure.astype(np.int64)) > 0
        rows, cols = np.nonzero(structure)  # row-major: CSR order
        return cls(wires, tuple(merged), rows, cols)

    @property
    def columns(self) -> tuple[int, ...]:
        """The angle columns its matrix depends on, one per parameterized factor, in order."""
        return tuple(f.column for f in self.factors if f.column is not None)

    @property
    def rowptr(self) -> np.ndarray:
        return np.searchsorted(self.rows, np.arange(4 ** len(self.wires) + 1)).astype(np.int64)

    def values(self, mats: list[np.ndarray], batch: int) -> np.ndarray:
        """``[B, nnz]``: the stored entries of the step's matrix, from its factors' matrices ``mats``
        (``[B, d, d]``, or ``[1, d, d]`` when fixed)."""
        matrix = mats[0]
        for factor in mats[1:]:
            matrix = factor @ matrix
        return np.broadcast_to(matrix, (batch, *matrix.shape[1:]))[:, self.rows, self.cols]

    def derivatives(self, mats: list[np.ndarray], derivatives: list[np.ndarray]) -> np.ndarray:
        """``[B, A, nnz]``: the stored entries' derivatives in each of :attr:`columns`, from the factors'
        matrices and the parameterized factors' derivatives (in order)."""
        out = []
        parameterized = [t for t, factor in enumerate(self.factors) if factor.column is not None]
        for t, matrix in zip(parameterized, derivatives):
            for earlier in mats[:t][::-1]:
                matrix = matrix @ earlier
            for later in mats[t + 1 :]:
                matrix = later @ matrix
            out.append(matrix[:, self.rows, self.cols])
        return np.stack(out, axis=1)


@attrs.frozen(eq=False)
class FactorTable:
    """The parameterized factors of all steps, grouped by size, so that their matrices for a batch are
    a few matrix products rather than one per factor."""

    #: per size ``d``: the ``(step, factor)`` keys, angle columns, ``k`` and ``terms[F, 6, d²]``
    groups: dict[int, tuple[list[tuple[int, int]], np.ndarray, np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, steps: tuple[Step, ...]) -> FactorTable:
        parts: dict[int, list[tuple[tuple[int, int], Factor]]] = {}
        for i, step in enumerate(steps):
            for t, factor in enumerate(step.factors):
                if factor.column is not None:
                    parts.setdefault(factor.terms.shape[-1], []).append(((i, t), factor))
        groups = {}
        for d, entries in parts.items():
            keys = [key for key, _ in entries]
            columns = np.array([f.column for _, f in entries], dtype=np.int64)
            ks = np.array([f.k for _, f in entries])
            terms = np.stack([f.terms.reshape(transfer.N_TERMS, d * d) for _, f in entries])
            groups[d] = (keys, columns, ks, terms)
        return cls(groups)

    def matrices(self, angles: np.ndarray, derivative: bool = False) -> dict[tuple[int, int], np.ndarray]:
        """``(step, factor) -> [B, d, d]``: each parameterized factor's matrix (or its derivative in its
        angle) for each row of ``angles``."""
        out = {}
        for d, (keys, columns, ks, terms) in self.groups.items():
            theta = np.ascontiguousarray(angles[:, columns].T) * ks[:, None]  # [F, B]
            c, s = np.cos(theta), np.sin(theta)
            weights = transfer.term_derivatives(c, s, ks[:, None, None]) if derivative else transfer.term_weights(c, s)
            mats = np.matmul(weights, terms)  # [F, B, d²]
            for key, matrix in zip(keys, mats):
                out[key] = matrix.reshape(-1, d, d)
        return out


def build_steps(circuit: Circuit, noise: NoiseModel) -> list[Step]:
    """The steps of ``circuit`` under ``noise``: each multi-qubit gate with the one-qubit factors
    gathered on its wires since their last step, then the one-qubit factors left over."""
    pending: dict[int, list[Factor]] = {}
    steps: list[Step] = []
    for op in circuit.operations:
        factor = Factor.of(op, noise)
        if len(op.wires) == 1:
            pending.setdefault(op.wires[0], []).append(factor)
            continue
        gathered = [f.lifted(op.wires) for w in op.wires for f in pending.pop(w, [])]
        steps.append(Step.of(op.wires, gathered + [factor]))
    for wire in sorted(pending):
        steps.append(Step.of((wire,), pending[wire]))
    return steps


@attrs.frozen(eq=False)
class Program:
    """The steps of a circuit as the flat arrays the kernels read (:mod:`hqf.backends.ptm.kernels`)."""

    n_qubits: int
    steps: tuple[Step, ...]
    dims: np.ndarray
    nws: np.ndarray
    strides: np.ndarray
    offsets: np.ndarray
    off_ptr: np.ndarray
    rowptr: np.ndarray
    row_ptr: np.ndarray
    cols: np.ndarray
    nnz_ptr: np.ndarray
    gradient: np.ndarray
    factors: FactorTable

    @classmethod
    def build(cls, circuit: Circuit, noise: NoiseModel) -> Program:
        n = circuit.n_qubits
        steps = tuple(build_steps(circuit, noise))
        k = len(steps)
        dims = np.array([4 ** len(s.wires) for s in steps], dtype=np.int64)
        strides = np.ones((k, 3), dtype=np.int64)
        offsets, rowptr, cols = [], [], []
        for i, step in enumerate(steps):
            wire_strides = [4 ** (n - 1 - w) for w in step.wires]
            strides[i, : len(wire_strides)] = sorted(wire_strides)
            digit_table = np.array([transfer.digits(j, len(step.wires)) for j in range(dims[i])])
            offsets.append(digit_table @ np.array(wire_strides, dtype=np.int64))
            rowptr.append(step.rowptr)
            cols.append(step.cols.astype(np.int64))

        def pointers(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)

        def flat(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

        return cls(
            n,
            steps,
            dims,
            np.array([len(s.wires) for s in steps], dtype=np.int64),
            strides,
            flat(offsets),
            pointers(offsets)[:-1],
            flat(rowptr),
            pointers(rowptr)[:-1],
            flat(cols),
            pointers(cols),
            np.array([bool(s.columns) for s in steps], dtype=np.bool_),
            FactorTable.of(steps),
        )

    @property
    def tables(self) -> tuple[np.ndarray, ...]:
        """What the kernels read of the steps: ``(dims, nws, strides, offsets, off_ptr, rowptr, row_ptr,
        cols, nnz_ptr)``."""
        return (
            self.dims,
            self.nws,
            self.strides,
            self.offsets,
            self.off_ptr,
            self.rowptr,
            self.row_ptr,
            self.cols,
            self.nnz_ptr,
        )

    @property
    def nnz(self) -> int:
        return int(self.nnz_ptr[-1])

    def step_matrices(self, i: int, table: dict[tuple[int, int], np.ndarray]) -> list[np.ndarray]:
        """Step ``i``'s factors' matrices: from ``table`` (:meth:`FactorTable.matrices`) when
        parameterized, ``[1, d, d]`` when fixed."""
        return [table[(i, t)] if f.column is not None else f.matrix[None] for t, f in enumerate(self.steps[i].factors)]

    def values(self, angles: np.ndarray) -> np.ndarray:
        """``[B, nnz]``: every step's stored entries for each row (C-contiguous)."""
        out = np.empty((angles.shape[0], self.nnz))
        for r0 in range(0, angles.shape[0], ROWS):
            rows = angles[r0 : r0 + ROWS]
            table = self.factors.matrices(rows)
            for i, step in enumerate(self.steps):
                out[r0 : r0 + ROWS, self.nnz_ptr[i] : self.nnz_ptr[i + 1]] = step.values(
                    self.step_matrices(i, table), rows.shape[0]
                )
        return out

    def angle_gradients(self, angles: np.ndarray, g: np.ndarray) -> np.ndarray:
        """``[B, P]``: ``Σ_p ∂M[p]/∂θ · g[p]`` for every angle column, from the kernels' ``g[B, nnz]``."""
        grad = np.zeros_like(angles)
        for r0 in range(0, angles.shape[0], ROWS):
            grad[r0 : r0 + ROWS] = self.chunk_gradients(angles[r0 : r0 + ROWS], g[r0 : r0 + ROWS])
        return grad

    def chunk_gradients(self, angles: np.ndarray, g: np.ndarray) -> np.ndarray:
        """:meth:`angle_gradients` for a few rows at once."""
        grad = np.zeros_like(angles)
        table = self.factors.matrices(angles)
        derivatives = self.factors.matrices(angles, derivative=True)
        for i, step in enumerate(self.steps):
            if not step.columns:
                continue
            part = g[:, self.nnz_ptr[i] : self.nnz_ptr[i + 1]]
            own = [derivatives[(i, t)] for t, f in enumerate(step.factors) if f.column is not None]
            contributions = np.matmul(step.derivatives(self.step_matrices(i, table), own), part[:, :, None])[:, :, 0]
            for a, column in enumerate(step.columns):
                grad[:, column] += contributions[:, a]
        return grad
