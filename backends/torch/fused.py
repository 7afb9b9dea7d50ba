"""The fused CPU path: a plan as a :class:`FusedProgram` of plain arrays, and the driver that runs it through
the numba kernels (:mod:`hqf.backends.torch.fused_cpu`) on tiles of rows, the given threads splitting the tiles
(:mod:`hqf.backends.torch.parallel`).

It applies when only the leading product state reads per-row angles (the data) and every later gate
reads broadcast weights (an encoder, then an ansatz: what ``QuantumLayer`` runs), with Z read-outs
and at most ``MAX_QUBITS`` qubits, on the CPU in complex128. The program is built once per plan; each
call builds the gate matrices and phases from the weights, and the product state's per-row matrices
(:class:`FusedOperands`). Why a second set of kernels: docs/architecture.md.
"""

from __future__ import annotations

import functools

import attrs
import numpy as np
import torch

from hqf.backends.torch.fused_cpu import (
    GATE,
    LANES,
    PERMUTATION,
    PHASE,
    backward_tiles,
    forward_tiles,
    phases,
    product_matrices,
)
from hqf.backends.torch.gates_cpu import GENERATOR, REAL_GATES, gate_matrices
from hqf.backends.torch.parallel import in_parallel
from hqf.backends.torch.plan import PermutationStep, StepPlan
from hqf.quantum.gates import bit_table


class FusedProgram:
    """A plan's steps after the product state as arrays the kernels read (see the module docstring).

    ``ops`` is ``[(kind, index)]`` in circuit order. Gate ``g`` acts on ``gate_wire[g]``; its matrix is
    ``gate_fixed[g]`` if ``gate_column[g] < 0``, else the rotation ``exp(-iθ/2 P)`` with ``P`` given by
    ``gate_kind[g]`` (1: X, 2: Y, 3: Z) and ``θ`` the shared angle in column ``gate_column[g]``. Phase
    ``p`` is the product of the RZ gates ``phase_gates[p]`` (a run's trailing diagonal part).
    """

    def __init__(self, plan: StepPlan) -> None:
        n = plan.n_qubits
        ops, wires, columns, kinds, fixed, real = [], [], [], [], [], []
        phase_gates: list[list[int]] = []
        sources, inverses, signs = [], [], []

        def add_gate(chain, d: int, wire: int) -> int:
            gate = chain.gates[d, wire]
            wires.append(wire)
            columns.append(int(chain.columns[d, wire]) if chain.rotation[d, wire] else -1)
            kinds.append(GENERATOR.get(gate, 0))
            fixed.append(chain.a[d, wire])  # a fixed gate's matrix (unused for rotations)
            real.append(gate in REAL_GATES)
            return len(wires) - 1

        for step in plan.steps[1:]:
            if isinstance(step, PermutationStep):
                ops.append((PERMUTATION, len(sources)))
                sources.append(step.source)
                inverses.append(step.inverse)
                signs.append(np.ones(2**n) if step.sign is None else step.sign)
                continue
            chain = step.chain
            split = chain.split if chain.split is not None else chain.depth
            for d in range(chain.depth):
                phase: list[int] = []
                for w in range(n):
                    if chain.gates[d, w] == "I":
                        continue
                    if d >= split:  # diagonal part of a real-then-phase run
                        phase.append(add_gate(chain, d, w))
                    else:
                        ops.append((GATE, add_gate(chain, d, w)))
                if phase:
                    if ops and ops[-1][0] == PHASE and d > split:  # one phase for the run's whole diagonal part
                        phase_gates[ops[-1][1]].extend(phase)
                    else:
                        ops.append((PHASE, len(phase_gates)))
                        phase_gates.append(phase)
        self.n_qubits = n
        first = plan.steps[0].chain  # the product state: per-row tables
        self.product_columns, self.product_rotation = first.columns, first.rotation
        self.product_a, self.product_b, self.product_c, self.product_generator = (
            first.a,
            first.b,
            first.c,
            first.generator,
        )
        self.ops = np.array(ops, dtype=np.int64).reshape(-1, 2)
        self.gate_wire = np.array(wires, dtype=np.int64)
        self.gate_column = np.array(columns, dtype=np.int64)
        self.gate_kind = np.array(kinds, dtype=np.int64)
        self.gate_fixed = np.array(fixed, dtype=np.complex128).reshape(-1, 2, 2)
        self.gate_real = np.array(real, dtype=np.bool_)
        width = max((len(p) for p in phase_gates), default=0)
        self.phase_gates = np.full((len(phase_gates), width), -1, dtype=np.int64)
        for p, gates in enumerate(phase_gates):
            self.phase_gates[p, : len(gates)] = gates
        dim = 2**n
        source = np.array(sources, dtype=np.int64).reshape(-1, dim)
        inverse = np.array(inverses, dtype=np.int64).reshape(-1, dim)
        sign = np.array(signs, dtype=np.float64).reshape(-1, dim)
        # out[i] = sign[i]·in[source[i]]; undoing it: in[j] = sign[inverse[j]]·out[inverse[j]]
        self.source, self.sign = source, sign
        self.inverse, self.inverse_sign = inverse, np.take_along_axis(sign, inverse, axis=1)
        self.z_signs = np.ascontiguousarray(plan.z_signs, dtype=np.float64)
        self.z_signs_t = np.ascontiguousarray(self.z_signs.T)
        self.z_table = np.stack([1.0 - 2.0 * bit_table(n, w) for w in range(n)])  # [n, 2**n]: Z_w's eigenvalues

    def expval(self, angles: torch.Tensor, threads: int) -> tuple[torch.Tensor, Saved]:
        """``(⟨Z⟩ [B, K], what :meth:`Saved.vjp` needs)`` of the full angle matrix ``angles[B, P]``, on
        at most ``threads`` threads (its backward too)."""
        operands = FusedOperands(self, angles.detach().numpy())
        out, final = forward(self, operands, threads)
        return torch.from_numpy(out), Saved(self, operands, final, threads)


#: the largest circuit the fused kernels run (a tile is ``2**n × LANES`` amplitudes; measured up to here)
MAX_QUBITS = 12


@functools.lru_cache(maxsize=64)
def program(plan: StepPlan, n_data: int) -> FusedProgram | None:
    """The :class:`FusedProgram` of ``plan`` (cached) when the fused kernels run it with the angle columns
    from ``n_data`` on broadcast (equal in every row), else ``None``. They run it when every
    observable is a Z word and only the leading product state reads the first ``n_data`` columns."""
    if plan.n_qubits > MAX_QUBITS or plan.z_signs is None or plan.other_words or plan.steps[0].chain.depth == 0:
        return None
    weights = frozenset(range(n_data, plan.n_params))
    if not all(isinstance(step, PermutationStep) or step.chain.angle_columns <= weights for step in plan.steps[1:]):
        return None
    return FusedProgram(plan)


class FusedOperands:
    """What one call runs on: the gate matrices and phases at the shared angles (``angles[0]``), and
    the product state's per-row matrices and vectors. Rows are padded to a multiple of ``LANES``."""

    def __init__(self, program: FusedProgram, angles: np.ndarray) -> None:
        p = program
        self.batch = angles.shape[0]
        pad = -self.batch % LANES
        if pad:  # padded rows run like any other; their outputs are dropped and their cotangents are zero
            angles = np.concatenate([angles, np.zeros((pad, angles.shape[1]))])
        self.mats = gate_matrices(angles[0], p.gate_column, p.gate_kind, p.gate_fixed)
        diagonals = np.repeat(phases(p.n_qubits, self.mats, p.gate_wire, p.phase_gates), LANES, axis=1)
        self.phase_re, self.phase_im = np.ascontiguousarray(diagonals.real), np.ascontiguousarray(diagonals.imag)
        self.product_mats, self.vectors = product_matrices(
            angles, p.product_columns, p.product_rotation, p.product_a, p.product_b, p.product_c
        )


def forward(program: FusedProgram, operands: FusedOperands, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """``(⟨Z⟩ [B, K], the final states [2**n, B'])`` (``B'``: the padded rows)."""
    p, ops = program, operands
    rows = ops.vectors.shape[0]
    out = np.empty((p.z_signs.shape[1], rows))
    final = np.empty((2**p.n_qubits, rows), dtype=np.complex128)

    def part(first: int, last: int) -> None:
        forward_tiles(
            ops.vectors,
            first,
            last,
            p.n_qubits,
            p.ops,
            ops.mats,
            p.gate_wire,
            p.gate_real,
            ops.phase_re,
            ops.phase_im,
            p.source,
            p.sign,
            p.z_signs_t,
            out,
            final,
        )

    in_parallel(part, rows // LANES, threads, (rows << p.n_qubits) * (len(p.ops) + 1))
    return out.T[: ops.batch], final


def backward(
    program: FusedProgram,
    operands: FusedOperands,
    final: np.ndarray,
    grad_output: np.ndarray,
    n_params: int,
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(grad_rows [B, P], grad_sum [P])`` for ``L = Σ grad_output ⊙ ⟨Z⟩`` (``grad_output [B, K]``):
    the product state's angles per row, the later (shared) angles summed over the rows."""
    p, ops = program, operands
    dim, rows = final.shape
    grad_output_t = np.zeros((grad_output.shape[1], rows))
    grad_output_t[:, : ops.batch] = grad_output.T
    grad_rows = np.zeros((rows, n_params))

    def part(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        grad, overlap = np.zeros(n_params), np.zeros((p.phase_gates.shape[0], dim * LANES))
        backward_tiles(
            final,
            grad_output_t,
            first,
            last,
            p.n_qubits,
            p.ops,
            ops.mats,
            p.gate_wire,
            p.gate_kind,
            p.gate_column,
            ops.phase_re,
            ops.phase_im,
            p.inverse,
            p.inverse_sign,
            p.z_signs,
            grad,
            overlap,
            ops.vectors,
            ops.product_mats,
            p.product_columns,
            p.product_rotation,
            p.product_generator,
            grad_rows,
        )
        return grad, overlap

    parts = in_parallel(part, rows // LANES, threads, (rows << p.n_qubits) * (len(p.ops) + 1))
    grad = sum(g for g, _ in parts)
    if p.phase_gates.size:  # RZ on wire w: Σ_x z_w(x) Σ_rows Im conj(λ(x))ψ(x)
        overlap = sum(o for _, o in parts).reshape(-1, dim, LANES).sum(2)
        per_wire = overlap @ p.z_table.T  # [n_phases, n]
        for q, gates in enumerate(p.phase_gates):
            for g in gates[gates >= 0]:
                if p.gate_column[g] >= 0:
                    grad[p.gate_column[g]] += per_wire[q, p.gate_wire[g]]
    return grad_rows[: ops.batch], grad


@attrs.frozen(eq=False)
class Saved:
    """What the backward of one :meth:`FusedProgram.expval` call needs: the program, its operands, the final
    states, the threads."""

    program: FusedProgram
    operands: FusedOperands
    final: np.ndarray
    threads: int

    def vjp(self, grad_output: torch.Tensor, n_params: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grad [B, P] of the product state's columns, grad_sum [P] of the later ones)``."""
        grad_rows, grad_sum = backward(
            self.program, self.operands, self.final, grad_output.detach().double().numpy(), n_params, self.threads
        )
        return torch.from_numpy(grad_rows), torch.from_numpy(grad_sum)
