"""The cache-blocked CPU path for circuits past the fused kernels' size: a circuit cut into passes, and
the driver that runs them through the numba kernels (:mod:`hqf.backends.torch.blocked_cpu`) row by row,
threads splitting the rows (:mod:`hqf.backends.torch.parallel`).

It applies on the CPU in complex128 to circuits of ``MIN_QUBITS … MAX_QUBITS`` qubits made of the
original seven gates with Z-word read-outs; every angle may differ per row. The leading one-qubit run
is a product state built directly; every later gate goes into a pass (:class:`Passes`): a set of
``TILE_QUBITS`` wires, always with the ``CONTIGUOUS_BITS`` lowest index bits, and the gates that act
on those wires only, taken greedily in circuit order. A row's memory is its state (and ``λ`` in the
backward), nothing per gate: the backward walks each row's final state back, kept by the forward
while the batch's states fit the backend's ``checkpoint_mib``, else recomputed.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from hqf.backends.torch.autograd import differentiable_vjp
from hqf.backends.torch.blocked_cpu import CZ, GATE, LINEAR, PHASE, PHASE_SPLIT, backward_rows, forward_rows
from hqf.backends.torch.cache import Cache
from hqf.backends.torch.fused_cpu import product_matrices
from hqf.backends.torch.gates_cpu import GENERATOR, REAL_GATES
from hqf.backends.torch.parallel import in_parallel
from hqf.backends.torch.plan import Chain, fits
from hqf.backends.torch.settings import Settings
from hqf.quantum.circuit import Circuit, Operation
from hqf.quantum.gates import FIXED_1Q, full_angles

#: the smallest and largest circuits this path runs (below: the fused kernels; above: the plan)
MIN_QUBITS, MAX_QUBITS = 13, 24
#: wires per pass: a tile of ``ψ`` is 256 KiB, with ``λ``'s a 512 KiB L2 (measured at hea20x6: 10% faster than 13)
TILE_QUBITS = 14
#: the lowest index bits every pass keeps, so that a tile is made of runs of ``2**CONTIGUOUS_BITS`` amplitudes
CONTIGUOUS_BITS = 6


def _deposit(bits: list[int]) -> np.ndarray:
    """``out[j]``: the index with bit ``bits[i]`` set where bit ``i`` of ``j`` is, for ``j < 2**len(bits)``."""
    out = np.zeros(1 << len(bits), dtype=np.int64)
    for i, bit in enumerate(bits):
        out[(np.arange(out.size) >> i) & 1 == 1] |= 1 << bit
    return out


def _linear_tables(k: int, cnots: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(low [2, 2**PHASE_SPLIT], high [2, 2**(k − PHASE_SPLIT)])``: the source index of a run of
    CNOTs ``(control, target)`` on local bits, ``source(j) = high[j >> PHASE_SPLIT] ^ low[j mod …]``;
    row 0 applies the run (``out[j] = in[f⁻¹(j)]``), row 1 undoes it (``in[j] = out[f(j)]``)."""

    def image(j: int, sequence) -> int:
        for control, target in sequence:
            j ^= ((j >> control) & 1) << target
        return j

    low, high = np.zeros((2, 1 << PHASE_SPLIT), dtype=np.int64), np.zeros((2, 1 << (k - PHASE_SPLIT)), dtype=np.int64)
    for row, sequence in enumerate((cnots[::-1], cnots)):  # f⁻¹ is the run backwards (each CNOT its own inverse)
        basis = [image(1 << bit, sequence) for bit in range(k)]
        for table, first in ((low[row], 0), (high[row], PHASE_SPLIT)):
            for j in range(table.size):
                for i in range(table.size.bit_length() - 1):
                    if (j >> i) & 1:
                        table[j] ^= basis[first + i]
    return low, high


class Passes:
    """The gates after the product state, cut into passes (see the module docstring) as the kernels read them.

    ``ops[m] = (kind, a, b)`` on local bits; pass ``p`` runs ``ops[bounds[p, 0] : bounds[p, 1]]`` on the
    tiles starting at ``bases[p]``, whose runs start at ``offsets[p]``. Gate ``g`` is the rotation
    ``exp(-iθ/2 P)`` (``kinds[g]`` 1: X, 2: Y, 3: Z) of column ``columns[g]``, or ``fixed[g]`` where
    that is ``-1``. Phase ``q`` is the product of the RZ gates ``phase_gate[q]`` on local bits ``phase_bit[q]``.
    """

    def __init__(self, n: int, ops: list[Operation], tile_qubits: int = TILE_QUBITS) -> None:
        k = min(tile_qubits, n)
        if k <= max(PHASE_SPLIT, CONTIGUOUS_BITS):
            raise ValueError(f"a pass must hold more than {max(PHASE_SPLIT, CONTIGUOUS_BITS)} wires (got {k})")
        self.columns, self.kinds, self.fixed, self.real = [], [], [], []
        gate_of = {}
        for i, op in enumerate(ops):
            if len(op.wires) == 1:
                gate_of[i] = len(self.columns)
                self.columns.append(-1 if op.param is None else op.param)
                self.kinds.append(GENERATOR.get(op.gate, 0))
                self.fixed.append(np.array(FIXED_1Q.get(op.gate, np.eye(2)), dtype=complex))
                self.real.append(op.gate in REAL_GATES)
        forced = set(range(n - CONTIGUOUS_BITS, n))  # the wires of the lowest index bits
        remaining, self.wire_sets, self.offsets, self.bases = list(range(len(ops))), [], [], []
        kernel_ops, bounds, phases, linear = [], [], [], []
        while remaining:
            wires, blocked, taken = set(forced), set(), []
            for i in remaining:
                need = set(ops[i].wires)
                if need & blocked or len(wires | need) > k:
                    blocked |= need
                    continue
                wires |= need
                taken.append(i)
            for w in range(n - 1, -1, -1):  # fill the pass with the lowest bits left
                if len(wires) < k:
                    wires.add(w)
            bits = sorted(n - 1 - w for w in wires)
            local = {n - 1 - bit: i for i, bit in enumerate(bits)}
            first, pending, cnots = len(kernel_ops), [], []

            def flush_cnots(cnots: list = cnots) -> None:
                if cnots:
                    kernel_ops.append((LINEAR, len(linear), 0))
                    linear.append(_linear_tables(k, list(cnots)))
                    cnots.clear()

            def flush_phase(pending: list = pending) -> None:
                flush_cnots()
                if pending:
                    kernel_ops.append((PHASE, len(phases), 0))
                    phases.append(list(pending))
                    pending.clear()

            for i in taken:
                op = ops[i]
                if op.gate == "RZ":
                    pending.append((gate_of[i], local[op.wires[0]]))
                    continue
                if any(b == local[w] for _, b in pending for w in op.wires):
                    flush_phase()
                if op.gate == "CNOT":
                    cnots.append((local[op.wires[0]], local[op.wires[1]]))
                    continue
                flush_cnots()
                if len(op.wires) == 1:
                    kernel_ops.append((GATE, local[op.wires[0]], gate_of[i]))
                else:
                    kernel_ops.append((CZ, local[op.wires[0]], local[op.wires[1]]))
            flush_phase()
            bounds.append((first, len(kernel_ops)))
            self.wire_sets.append(frozenset(wires))
            rest = [bit for bit in range(n) if bit not in bits]
            self.offsets.append(_deposit(bits[CONTIGUOUS_BITS:]))
            self.bases.append(_deposit(rest))
            done = set(taken)
            remaining = [i for i in remaining if i not in done]
        width = max((len(p) for p in phases), default=1)
        phase_gate, phase_bit = (
            np.full((len(phases), width), -1, dtype=np.int64),
            np.zeros((len(phases), width), dtype=np.int64),
        )
        for q, members in enumerate(phases):
            for j, (g, b) in enumerate(members):
                phase_gate[q, j], phase_bit[q, j] = g, b
        dim = 1 << n
        self.kernel_arguments = (
            k,
            1 << CONTIGUOUS_BITS,
            np.array(self.offsets, dtype=np.int64).reshape(-1, 1 << (k - CONTIGUOUS_BITS)),
            np.array(self.bases, dtype=np.int64).reshape(-1, dim >> k),
            np.array(bounds, dtype=np.int64).reshape(-1, 2),
            np.array(kernel_ops, dtype=np.int64).reshape(-1, 3),
            np.array(self.columns, dtype=np.int64),
            np.array(self.kinds, dtype=np.int64),
            np.array(self.fixed, dtype=np.complex128).reshape(-1, 2, 2),
            np.array(self.real, dtype=np.bool_),
            phase_gate,
            phase_bit,
            np.array([low for low, _ in linear], dtype=np.int64).reshape(-1, 2, 1 << PHASE_SPLIT),
            np.array([high for _, high in linear], dtype=np.int64).reshape(-1, 2, 1 << (k - PHASE_SPLIT)),
        )

    @property
    def count(self) -> int:
        """Passes over the state per row."""
        return len(self.wire_sets)


def _readout(circuit: Circuit) -> tuple:
    """The Z words as the kernels read them: ``(signs_high [K, 2**h], signs_low [K, 2**l], kinds [K],
    h)`` with ``h = n // 2`` high wires (wire 0 most significant); a word's sign at ``x`` is
    ``signs_high[q, x_high] · signs_low[q, x_low]``, and ``kinds[q]`` says which halves it reads
    (0: the high wires only, 1: the low ones only, 2: both)."""
    n = circuit.n_qubits
    high = n // 2
    signs_high, signs_low = np.ones((circuit.n_outputs, 1 << high)), np.ones((circuit.n_outputs, 1 << (n - high)))
    kinds = np.zeros(circuit.n_outputs, dtype=np.int64)
    for q, word in enumerate(circuit.observables):
        for w in word.wires:
            table, bit = (signs_high[q], high - 1 - w) if w < high else (signs_low[q], n - 1 - w)
            table *= 1 - 2 * ((np.arange(table.size) >> bit) & 1)
        reads_high, reads_low = any(w < high for w in word.wires), any(w >= high for w in word.wires)
        kinds[q] = 2 if reads_high and reads_low else int(reads_low)
    return signs_high, signs_low, kinds, high


class BlockedProgram:
    """A circuit ready for the blocked kernels: its product state's tables, its :class:`Passes`, its read-out."""

    def __init__(self, circuit: Circuit, tile_qubits: int = TILE_QUBITS) -> None:
        ops = list(circuit.operations)
        leading = next((i for i, op in enumerate(ops) if len(op.wires) > 1), len(ops))
        self.n_qubits, self.n_params = circuit.n_qubits, circuit.n_params
        self.product = Chain(circuit.n_qubits, ops[:leading])
        self.passes = Passes(circuit.n_qubits, ops[leading:], tile_qubits)
        self.readout = _readout(circuit)

    def _operands(self, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The product state's per-row gate matrices and wire vectors."""
        p = self.product
        return product_matrices(angles, p.columns, p.rotation, p.a, p.b, p.c)

    def updates(self, rows: int) -> int:
        """Amplitude updates of one call on ``rows`` rows (every kernel op on every row's state, and the
        product state)."""
        ops = self.passes.kernel_arguments[5]
        return (rows << self.n_qubits) * (ops.shape[0] + 1)

    def values(self, angles: np.ndarray, threads: int, keep: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(⟨Z⟩ [B, K], final)`` of the full angle matrix ``angles[B, P]`` (float64); ``final`` is
        every row's final state ``[B, 2, 2**n]`` (real, imaginary) when ``keep``, else empty."""
        angles = np.ascontiguousarray(angles)
        _, vectors = self._operands(angles)
        out = np.empty((angles.shape[0], self.readout[2].shape[0]))
        final = np.empty((angles.shape[0], 2, 1 << self.n_qubits) if keep else (0, 2, 1))

        def part(first: int, last: int) -> None:
            forward_rows(first, last, angles, vectors, self.passes.kernel_arguments, self.readout, out, final)

        in_parallel(part, angles.shape[0], threads, self.updates(angles.shape[0]))
        return out, final

    def vjp(
        self, angles: np.ndarray, grad_output: np.ndarray, threads: int, final: np.ndarray | None = None
    ) -> np.ndarray:
        """``[B, P]``: the gradient of ``Σ grad_output ⊙ ⟨Z⟩`` for every row's angles (from the final
        states of :meth:`values` where given, else each row recomputed)."""
        angles, grad_output = np.ascontiguousarray(angles), np.ascontiguousarray(grad_output)
        mats, vectors = self._operands(angles)
        grad = np.zeros_like(angles)
        product = (self.product.columns, self.product.rotation, self.product.generator)
        final = np.empty((0, 2, 1)) if final is None else final
        args = (angles, vectors, mats, product, self.passes.kernel_arguments, self.readout, grad_output, grad, final)
        in_parallel(
            lambda first, last: backward_rows(first, last, *args),
            angles.shape[0],
            threads,
            self.updates(angles.shape[0]),
        )
        return grad


@functools.lru_cache(maxsize=16)
def program(circuit: Circuit) -> BlockedProgram | None:
    """The :class:`BlockedProgram` of ``circuit`` (cached) when the blocked kernels run it: ``MIN_QUBITS …
    MAX_QUBITS`` qubits, the plan's gates, Z words only; else ``None``."""
    if not MIN_QUBITS <= circuit.n_qubits <= MAX_QUBITS or not fits(circuit):
        return None
    if not all(p == "Z" for word in circuit.observables for _, p in word.terms):
        return None
    return BlockedProgram(circuit)


class BlockedExpval(torch.autograd.Function):
    """The blocked kernels' ``⟨Z⟩`` of ``[angles, shared]`` (``shared`` appended to every row, or
    ``None``); the first-order backward walks each row back from its final state, a backward that must be
    differentiable (``create_graph=True``) goes through the plan with torch autograd."""

    @staticmethod
    def forward(ctx, angles, shared, settings: Settings, cache: Cache, circuit: Circuit, program: BlockedProgram):
        ctx.save_for_backward(angles, shared)
        ctx.settings, ctx.cache, ctx.circuit, ctx.program = settings, cache, circuit, program
        full = angles if shared is None else full_angles(angles, shared)
        keep = full.shape[0] * 16 << program.n_qubits <= settings.checkpoint_bytes
        out, ctx.final = program.values(full.detach().numpy(), settings.thread_count(), keep)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_output):
        angles, shared = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the backward must be differentiable itself
            with torch.enable_grad():
                full = angles if shared is None else full_angles(angles, shared)
            inputs = [angles] if shared is None else [angles, shared]
            grads = differentiable_vjp(ctx.cache.compiled(ctx.circuit, ctx.settings), full, grad_output, inputs)
            return grads[0], None if shared is None else grads[1], None, None, None, None
        full = angles if shared is None else full_angles(angles, shared)
        final = ctx.final if ctx.final.shape[0] else None
        values, cotangents = full.detach().numpy(), grad_output.detach().double().numpy()
        grad = torch.from_numpy(ctx.program.vjp(values, cotangents, ctx.settings.thread_count(), final))
        if shared is None:
            return grad, None, None, None, None, None
        return grad[:, : angles.shape[1]], grad[:, angles.shape[1] :].sum(0), None, None, None, None


def expval(
    settings: Settings,
    cache: Cache,
    circuit: Circuit,
    program: BlockedProgram,
    angles: torch.Tensor,
    shared: torch.Tensor | None = None,
) -> torch.Tensor:
    """``⟨Z⟩ [B, K]`` of ``[angles, shared]`` by ``program`` (float64 CPU tensors), differentiable
    when either requires grad."""
    if torch.is_grad_enabled() and (angles.requires_grad or (shared is not None and shared.requires_grad)):
        return BlockedExpval.apply(angles, shared, settings, cache, circuit, program)
    full = angles if shared is None else full_angles(angles, shared)
    return torch.from_numpy(program.values(full.detach().numpy(), settings.thread_count())[0])
