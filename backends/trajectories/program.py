"""A circuit and its noise sites as the arrays the trajectory kernels read (:class:`KernelProgram`), the
drivers that run them on the rows' tiles over threads, and the autograd Function around them.

The kernels run circuits of one-qubit gates (rotations RX, RY, RZ read their angle per row; every other
one-qubit gate is fixed), CNOT and CZ, read out as Z words; anything else takes the plain path
(:mod:`hqf.backends.trajectories.plain`).
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from hqf.backends.torch.fused_cpu import phases
from hqf.backends.torch.gates_cpu import GENERATOR, REAL_GATES
from hqf.backends.torch.parallel import in_parallel
from hqf.backends.trajectories.branches import Sites
from hqf.backends.trajectories.kernels import (
    CLIFFORD,
    FRAME_SITE,
    GATE,
    IN_PHASE,
    LANES,
    PER_LANE,
    PERMUTATION,
    PHASE,
    SHARED,
    SITE,
    backward_tiles,
    forward_tiles,
    row_matrices,
)
from hqf.quantum.circuit import GATES, Circuit, PauliWord
from hqf.quantum.gates import bit_table, full_angles, matrix, z_signs

#: the largest circuit the kernels run (a tile is ``2**n × LANES`` amplitudes)
MAX_QUBITS = 24
#: the most memory the backward's kept states may take per thread before the plain path is used instead
STORE_BYTES = 2**30


def runs(circuit: Circuit, words: tuple[PauliWord, ...], sites: Sites) -> bool:
    """True when the kernels run ``circuit`` read out as ``words`` under ``sites``."""
    if circuit.n_qubits > MAX_QUBITS or not all(letter == "Z" for word in words for _, letter in word.terms):
        return False
    if not all(GATES[op.gate][0] == 1 or op.gate in ("CNOT", "CZ") for op in circuit.operations):
        return False
    if any(GATES[op.gate][1] and op.gate not in GENERATOR for op in circuit.operations):
        return False  # a parametric one-qubit gate other than a rotation (PhaseShift)
    kept = int((~sites.unitary).sum())
    return kept * 2 * (16 << circuit.n_qubits) * LANES <= STORE_BYTES


def signed_permutation(n: int, gate: str, wires: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(source, sign)`` with ``out[i] = sign[i]·in[source[i]]`` for CNOT or CZ on ``wires``."""
    index = np.arange(2**n)
    a, b = bit_table(n, wires[0]), bit_table(n, wires[1])
    if gate == "CNOT":
        return np.where(a == 1, index ^ (1 << (n - 1 - wires[1])), index), np.ones(2**n)
    return index, (1 - 2 * (a & b)).astype(np.float64)


def composed(
    first: tuple[np.ndarray, np.ndarray], then: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The signed permutation ``then ∘ first`` as ``(source, sign)``."""
    (index, sign), (source, then_sign) = first, then
    return index[source], then_sign * sign[source]


def commuted_order(circuit: Circuit, start: int) -> list[int]:
    """The indices of ``circuit``'s operations from ``start`` on, each run of one-qubit gates between two-qubit
    ones reordered (gates on different wires commute): every wire's gates but its trailing RZ gates first,
    then the trailing RZ gates, so that they form one run (one diagonal under frames)."""
    order: list[int] = []
    run: list[int] = []

    def close() -> None:
        tail: set[int] = set()
        for wire in {circuit.operations[o].wires[0] for o in run}:
            for o in reversed([o for o in run if circuit.operations[o].wires[0] == wire]):
                if circuit.operations[o].gate != "RZ":
                    break
                tail.add(o)
        order.extend([o for o in run if o not in tail] + [o for o in run if o in tail])
        run.clear()

    for o in range(start, len(circuit.operations)):
        if len(circuit.operations[o].wires) > 1:
            close()
            order.append(o)
        else:
            run.append(o)
    close()
    return order


class KernelProgram:
    """``circuit``'s operations and ``sites`` in order as ``ops[(kind, index)]`` with the kernels' tables.

    With Pauli sites only (or none) the program uses frames (the kernels' docstring): each CNOT/CZ is a
    ``CLIFFORD`` op (``clifford[j]``: kind 0 CNOT / 1 CZ, its two wires, and the index of its run's composed
    permutation on the run's last member, else −1), each site a ``FRAME_SITE``, and each run of RZ gates on
    distinct wires (sites between them allowed) has a ``PHASE`` op before it (``phase_gates[p]``, −1
    padded), used in a call where all its angles are shared; otherwise each CNOT/CZ is its own
    ``PERMUTATION`` and each site a ``SITE``. The one-qubit gates before the first CNOT/CZ and their sites
    are not in ``ops``: they are the product layer ``prefix`` (``(GATE or SITE, index)``, on wires
    ``prefix_wire``; :mod:`hqf.backends.trajectories.product`), and their sites keep no state."""

    def __init__(self, circuit: Circuit, words: tuple[PauliWord, ...], sites: Sites) -> None:
        n = circuit.n_qubits
        frames = bool(sites.unitary.all())
        entangling = [o for o, op in enumerate(circuit.operations) if len(op.wires) > 1]
        layer_end = entangling[0] if entangling else len(circuit.operations)
        prefix, prefix_wire = [], []  # the leading product layer's ops and their wires
        ops, wires, columns, kinds, fixed, real = [], [], [], [], [], []
        sources, signs, clifford = [], [], []
        run = None  # the composed permutation of the current CNOT/CZ run (frames)
        phase_runs: list[tuple[int, list[int]]] = []  # (position in ops, gates) of RZ runs (frames)
        for o, op in enumerate(circuit.operations[:layer_end]):
            prefix += [(GATE, len(wires))] + [(SITE, s) for s in sites.after(o)]
            prefix_wire += [op.wires[0]] + [int(sites.wire[s]) for s in sites.after(o)]
            wires.append(op.wires[0])
            columns.append(-1 if op.param is None else op.param)
            kinds.append(GENERATOR.get(op.gate, 0))
            real.append(op.gate in REAL_GATES)
            fixed.append(np.zeros((2, 2)) if op.param is not None else matrix(op.gate))
        for o in commuted_order(circuit, layer_end):
            op = circuit.operations[o]
            rz = frames and op.gate == "RZ"
            open_run = phase_runs and phase_runs[-1][0] >= 0
            if open_run and (not rz or op.wires[0] in {wires[g] for g in phase_runs[-1][1]}):
                phase_runs.append((-1, []))  # closes the run
            if rz and not (phase_runs and phase_runs[-1][0] >= 0):
                phase_runs.append((len(ops), []))
            if rz:
                phase_runs[-1][1].append(len(wires))
            if op.gate in ("CNOT", "CZ"):
                step = signed_permutation(n, op.gate, op.wires)
                if frames:
                    run = step if run is None else composed(run, step)
                    ops.append((CLIFFORD, len(clifford)))
                    clifford.append([0 if op.gate == "CNOT" else 1, op.wires[0], op.wires[1], -1])
                else:
                    ops.append((PERMUTATION, len(sources)))
                    sources.append(step[0])
                    signs.append(step[1])
            else:
                if run is not None:  # the run ends: its last member applies it
                    clifford[-1][3] = len(sources)
                    sources.append(run[0])
                    signs.append(run[1])
                    run = None
                ops.append((GATE, len(wires)))
                wires.append(op.wires[0])
                columns.append(-1 if op.param is None else op.param)
                kinds.append(GENERATOR.get(op.gate, 0))
                real.append(op.gate in REAL_GATES)
                fixed.append(np.zeros((2, 2)) if op.param is not None else matrix(op.gate))
            ops += [(FRAME_SITE if frames else SITE, s) for s in sites.after(o)]
        if run is not None:
            clifford[-1][3] = len(sources)
            sources.append(run[0])
            signs.append(run[1])
        runs_ = [(at, gates) for at, gates in phase_runs if len(gates) > 1]
        for p, (at, _) in reversed(list(enumerate(runs_))):
            ops.insert(at, (PHASE, p))
        self.phase_gates = np.full((len(runs_), max((len(g) for _, g in runs_), default=0)), -1, dtype=np.int64)
        self.gate_phase = np.full(len(wires), -1, dtype=np.int64)
        for p, (_, gates) in enumerate(runs_):
            self.phase_gates[p, : len(gates)] = gates
            self.gate_phase[gates] = p
        self.phase_mask = np.array([sum(1 << (n - 1 - wires[g]) for g in gates) for _, gates in runs_], dtype=np.int64)
        self.z_table = np.stack([1.0 - 2.0 * bit_table(n, w) for w in range(n)])  # [n, 2**n]: Z_w's eigenvalues
        self.clifford = np.array(clifford, dtype=np.int64).reshape(-1, 4)
        self.parity_sign = 1.0 - 2.0 * (np.array([i.bit_count() for i in range(2**n)]) % 2)
        self.n_qubits, self.sites = n, sites
        self.ops = np.array(ops, dtype=np.int64).reshape(-1, 2)
        self.gate_wire = np.array(wires, dtype=np.int64)
        self.gate_column = np.array(columns, dtype=np.int64)
        self.gate_kind = np.array(kinds, dtype=np.int64)
        self.gate_fixed = np.array(fixed, dtype=np.complex128).reshape(-1, 2, 2)
        self.gate_real = np.array(real, dtype=np.bool_)
        self.source = np.array(sources, dtype=np.int64).reshape(-1, 2**n)
        self.sign = np.array(signs, dtype=np.float64).reshape(-1, 2**n)
        # undoing out[i] = sign[i]·in[source[i]]: in[j] = sign[inverse[j]]·out[inverse[j]]
        self.inverse = np.argsort(self.source, axis=1) if len(sources) else self.source
        self.inverse_sign = np.take_along_axis(self.sign, self.inverse, axis=1)
        width = max((len(u.probabilities) for u in sites.unravellings), default=1)
        self.site_matrices = np.zeros((max(len(sites.unravellings), 1), width, 2, 2), dtype=np.complex128)
        for c, u in enumerate(sites.unravellings):
            self.site_matrices[c, : len(u.probabilities)] = u.matrices
        self.letters = np.full(self.site_matrices.shape[:2], -1, dtype=np.int64)
        for c, u in enumerate(sites.unravellings):
            self.letters[c, : len(u.letters)] = u.letters
        self.prefix = np.array(prefix, dtype=np.int64).reshape(-1, 2)
        self.prefix_wire = np.array(prefix_wire, dtype=np.int64)
        kept = ~sites.unitary  # the damping sites after the product layer keep the state before them
        kept[[k for kind, k in prefix if kind == SITE]] = False
        self.store_slot = np.where(kept, np.cumsum(kept) - 1, -1).astype(np.int64)
        self.n_slots = int(kept.sum())
        self.z_signs = np.stack([z_signs(n, word.wires) for word in words], axis=1).astype(np.float64)
        self.z_signs_t = np.ascontiguousarray(self.z_signs.T)

    def operands(self, angles: np.ndarray, n_shared: int, branches: np.ndarray) -> Operands:
        """The per-call arrays for the full angle matrix ``angles[rows, P]`` whose last ``n_shared`` columns
        are equal in every row: rows padded to a multiple of ``LANES`` (padded rows are dropped after)."""
        pad = -angles.shape[0] % LANES
        if pad:
            angles = np.concatenate([angles, np.zeros((pad, angles.shape[1]))])
            branches = np.concatenate([branches, np.zeros((pad, branches.shape[1]), dtype=np.int64)])
        shared = (self.gate_column < 0) | (self.gate_column >= angles.shape[1] - n_shared)
        mats = row_matrices(angles, self.gate_column, self.gate_kind, self.gate_fixed, ~shared)
        active = np.array([bool(shared[g[g >= 0]].all()) for g in self.phase_gates], dtype=np.bool_)
        mode = np.where(shared, SHARED, PER_LANE)
        in_active = (self.gate_phase >= 0) & active[self.gate_phase.clip(min=0)] if active.size else False
        mode = np.where(in_active, IN_PHASE, mode).astype(np.int64)
        diagonals = np.repeat(phases(self.n_qubits, mats[0], self.gate_wire, self.phase_gates), LANES, axis=1)
        drawn = np.ascontiguousarray(self.letters[self.sites.channel[:, None], branches.T].clip(min=0))
        return Operands(
            np.ascontiguousarray(mats),
            np.ascontiguousarray(branches),
            drawn,
            (drawn.reshape(drawn.shape[0], angles.shape[0] // LANES, LANES) > 0).any(axis=2),
            mode,
            active,
            np.ascontiguousarray(diagonals.real),
            np.ascontiguousarray(diagonals.imag),
        )

    def forward(self, ops: Operands, threads: int, keep_final: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(⟨Z words⟩ [rows, Q], the final states [tiles, 2, 2**n · LANES] or an empty array)``."""
        rows, size = ops.mats.shape[0], (LANES << self.n_qubits)
        out = np.empty((self.z_signs.shape[1], rows))
        final = np.empty((rows // LANES if keep_final else 0, 2, size))

        def part(first: int, last: int) -> None:
            forward_tiles(
                first,
                last,
                self.n_qubits,
                self.ops,
                self.gate_wire,
                self.gate_real,
                ops.mode,
                ops.mats,
                self.source,
                self.sign,
                self.sites.wire,
                self.sites.channel,
                self.site_matrices,
                self.letters,
                ops.branches,
                ops.drawn,
                ops.hit,
                self.clifford,
                self.parity_sign,
                ops.phase_active,
                self.phase_mask,
                ops.phase_re,
                ops.phase_im,
                self.prefix,
                self.prefix_wire,
                self.z_signs_t,
                out,
                final,
            )

        in_parallel(part, rows // LANES, threads, (rows << self.n_qubits) * (len(self.ops) + 1))
        return out.T, final

    def backward(
        self, ops: Operands, final: np.ndarray, grad_output: np.ndarray, n_params: int, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(grad_rows [rows, P], grad_shared [P])``: the gradient of ``Σ grad_output ⊙ ⟨Z words⟩``
        (``grad_output [rows, Q]``) per row for the per-row columns, summed over the rows for the shared ones."""
        rows = ops.mats.shape[0]
        grad_output_t = np.zeros((grad_output.shape[1], rows))
        grad_output_t[:, : grad_output.shape[0]] = grad_output.T
        grad_rows = np.zeros((rows, n_params))

        dim = 2**self.n_qubits

        def part(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
            grad_shared, overlap = np.zeros(n_params), np.zeros((len(self.phase_gates), dim * LANES))
            backward_tiles(
                first,
                last,
                self.n_qubits,
                self.ops,
                self.gate_wire,
                self.gate_column,
                self.gate_kind,
                self.gate_real,
                ops.mode,
                ops.mats,
                self.source,
                self.sign,
                self.inverse,
                self.inverse_sign,
                self.sites.wire,
                self.sites.channel,
                self.site_matrices,
                self.letters,
                ops.branches,
                ops.drawn,
                ops.hit,
                self.store_slot,
                self.n_slots,
                self.clifford,
                self.parity_sign,
                ops.phase_active,
                self.phase_mask,
                ops.phase_re,
                ops.phase_im,
                self.prefix,
                self.prefix_wire,
                overlap,
                self.z_signs,
                grad_output_t,
                final,
                grad_rows,
                grad_shared,
            )
            return grad_shared, overlap

        parts = in_parallel(part, rows // LANES, threads, 2 * (rows << self.n_qubits) * (len(self.ops) + 1))
        grad_shared = sum(g for g, _ in parts)
        if ops.phase_active.any():  # RZ on wire w: Σ_x z_w(x) Σ_rows Im conj(λ(x))ψ(x)
            per_wire = sum(o for _, o in parts).reshape(-1, dim, LANES).sum(2) @ self.z_table.T  # [phases, n]
            for p in np.flatnonzero(ops.phase_active):
                for g in self.phase_gates[p][self.phase_gates[p] >= 0]:
                    grad_shared[self.gate_column[g]] += per_wire[p, self.gate_wire[g]]
        return grad_rows, grad_shared


@attrs.frozen(eq=False)
class Operands:
    """One call's arrays: every row's gate matrices ``[rows, G, 2, 2]``, branches ``[rows, sites]``, the
    Pauli each row drew at each site (``drawn [sites, rows]``: 0 I, 1 X, 2 Y, 3 Z; 0 at a damping site),
    whether a tile's rows drew any at a site (``hit [sites, tiles]``), how
    each gate runs (``mode [G]``: ``PER_LANE``, ``SHARED``, ``IN_PHASE``), which phases run (``phase_active``)
    and their diagonals per tile element (``phase_re``, ``phase_im``: ``[phases, 2**n · LANES]``)."""

    mats: np.ndarray
    branches: np.ndarray
    drawn: np.ndarray
    hit: np.ndarray
    mode: np.ndarray
    phase_active: np.ndarray
    phase_re: np.ndarray
    phase_im: np.ndarray


class KernelWordValues(torch.autograd.Function):
    """``[rows, Q]`` Z-word values of the rows' trajectories at ``[data, shared]`` (``shared [S]`` appended
    to every row of ``data [rows, D]``), by the kernels; the backward is the kernels' adjoint pass, or
    (``create_graph=True``) torch autograd through ``plain(data, shared)`` on the same branches."""

    @staticmethod
    def forward(
        ctx, data: torch.Tensor, shared: torch.Tensor, program: KernelProgram, branches: np.ndarray, threads: int, plain
    ):
        angles = full_angles(data.detach(), shared.detach()).to(torch.float64).numpy()
        ops = program.operands(angles, shared.shape[0], branches)
        keep = (data.requires_grad or shared.requires_grad) and program.n_slots == 0
        values, final = program.forward(ops, threads, keep)
        ctx.save_for_backward(data, shared)
        ctx.program, ctx.ops, ctx.final, ctx.threads, ctx.plain = program, ops, final, threads, plain
        return torch.from_numpy(np.ascontiguousarray(values[: data.shape[0]]))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        data, shared = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a differentiable backward
            wanted = [t for t in (data, shared) if t.requires_grad]
            found = iter(torch.autograd.grad(ctx.plain(data, shared), wanted, grad_output, create_graph=True))
            grads = [next(found) if t.requires_grad else None for t in (data, shared)]
            return *grads, None, None, None, None
        n_data = data.shape[1]
        grad_rows, grad_shared = ctx.program.backward(
            ctx.ops, ctx.final, grad_output.detach().double().numpy(), n_data + shared.shape[0], ctx.threads
        )
        ctx.final = None
        return (
            torch.from_numpy(grad_rows[: data.shape[0], :n_data]),
            torch.from_numpy(grad_shared[n_data:]),
            None,
            None,
            None,
            None,
        )
