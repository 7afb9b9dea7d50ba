"""``torch``: the embedded state-vector backend, batched, differentiable by torch autograd.

The state of a batch is a tensor ``[2**n, B]``, one column per row (wire 0 is the most significant bit of
the amplitude index); the plain reference path keeps ``[B, 2**n]``.

:meth:`TorchBackend.expval` runs the circuit's cached plan (``hqf.backends._torch_plan``): the leading
one-qubit gates as a closed-form product state, each later run of one-qubit gates as fused per-wire
2×2 matrices applied a block of wires at a time, each run of CNOT/CZ as one signed permutation, all-Z
observables as one matrix product. :meth:`TorchBackend.vjp` is the adjoint method on the same plan.
On the CPU in complex128, a circuit whose angles after the product state are broadcast weights runs
through fused kernels (``hqf.backends._fused_cpu``, numba): the whole circuit gate by gate on tiles of
a few rows that stay in cache, forward and adjoint backward.
:meth:`TorchBackend.expval_plain` is the plain gate-by-gate path the tests compare the plan against:
a one-qubit gate is one batched contraction over a ``[B, 2**w, 2, 2**(n-w-1)]`` view; CNOT and X are
index permutations; CZ is a sign flip.
"""

from __future__ import annotations

import functools
import math

import torch

from hqf.backends import _torch_kernels as kernels
from hqf.backends._torch_plan import DEFAULT_BLOCK, PermutationStep, RotationStep, compile_plan

try:  # numba is a dependency; without it the torch kernels run everything
    from hqf.backends import _fused_cpu as fused_cpu
except ImportError:  # pragma: no cover - exercised only where numba is missing
    fused_cpu = None
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.quantum.gates import bits, flip_permutation, full_angles, one_qubit_matrices, pauli_action
from hqf.quantum.hookspecs import hookimpl
from hqf.quantum.interfaces import Availability, Backend, Capabilities

#: rows per forward pass without autograd (measured: docs/performance.md)
DEFAULT_CHUNK = 256
#: largest circuit whose frozen-weight matrix (``2·4**n`` reals) is cached for inference
MAX_CACHED_UNITARY_QUBITS = 10
#: multiply-adds that one matrix product in place of a circuit's per-run calls is worth (measured)
UNITARY_CALL_SAVINGS = 2**18
#: from this many rows on, the fused kernels run frozen weights faster than the frozen-weight matrix
#: (measured, hea8x6: docs/performance.md)
FUSED_OVER_FROZEN_ROWS = 8


class TorchBackend(Backend):
    """Pure-PyTorch state-vector simulator: complex128 or complex64, CPU or CUDA, autograd gradients.

    Gradients: ``backprop`` (the default: the result is differentiable by torch autograd, twice too;
    the first-order backward is the adjoint pass) and ``adjoint`` (:meth:`vjp`, first order).

    Args (tuning; defaults measured in docs/performance.md):
        block: wires fused into one Kronecker block when applying a run of one-qubit gates.
        chunk: rows per pass without autograd (the shift rule's ``2·P·B`` rows run this many at a time).
        checkpoint_mib: keep the state after every run for the adjoint pass while it fits in this.
        cache_mib: states larger than this per batch run a few rows at a time (each pass stays in cache).
        prefix_mib: keep the last pass's states (at most this much) to resume the next pass from them
            where its angles are bitwise equal.
        fused: run broadcast weights (:meth:`expval_broadcast`) through the fused CPU kernels where
            they apply (CPU, complex128, Z read-outs, at most ``fused_cpu.MAX_QUBITS`` qubits, data
            read only by the leading product state).
    """

    name = "torch"
    description = "PyTorch batched state vector, numba-fused CPU kernels (embedded default)"
    capabilities = Capabilities(
        dtypes={"complex128", "complex64"},
        devices={"cpu", "cuda"},
        max_qubits=26,
        gradients={"backprop", "adjoint"},
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True)

    def __init__(
        self,
        *,
        dtype: str = "complex128",
        device: str = "cpu",
        block: int = DEFAULT_BLOCK,
        chunk: int = DEFAULT_CHUNK,
        checkpoint_mib: float = 256,
        cache_mib: float = 4,
        prefix_mib: float = 32,
        fused: bool = True,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA GPU")
        for name, value in (("block", block), ("chunk", chunk)):
            if value < 1:
                raise ValueError(f"'{name}' must be >= 1 (got {value})")
        self.block, self.chunk, self.checkpoint_bytes = block, chunk, checkpoint_mib * 2**20
        self.cache_bytes = cache_mib * 2**20
        self.prefix_bytes = prefix_mib * 2**20
        self.fused = fused and fused_cpu is not None and self.device.type == "cpu" and self.complex_dtype == torch.complex128
        self._prefix: tuple | None = None  # (plan, angles, states entering each step, constant columns) of the last pass
        self._frozen_cache: dict[int, tuple[Circuit, torch.Tensor, tuple | None]] = {}
        self._plans: dict[int, tuple[Circuit, tuple]] = {}

    def _plan(self, circuit: Circuit):
        """``(plan, lowered tables, Pauli actions)`` of ``circuit``, looked up by identity first.

        Hashing a circuit walks all its operations (~14 µs for hea8x6), which matters at batch 1.
        """
        entry = self._plans.get(id(circuit))
        if entry is not None and entry[0] is circuit:
            return entry[1]
        plan = compile_plan(circuit, self.block)
        found = plan, plan.lower(self.complex_dtype, self.device), _pauli_actions(circuit, self.complex_dtype, self.device)
        if len(self._plans) >= 64:
            self._plans.clear()
        self._plans[id(circuit)] = (circuit, found)  # holding the circuit keeps its id from being reused
        return found

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """Expectation values ``[B, R]``; differentiable (twice, too) when ``angles`` requires grad.

        Without autograd the rows are run ``chunk`` at a time. Runs of gates whose angles are equal in
        every row of a chunk (ansatz weights) build their matrices once for the chunk. With autograd,
        the first-order backward is the adjoint method on the recorded forward; a backward that must
        itself be differentiable (``create_graph=True``) goes through the plan with torch autograd.
        """
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        if torch.is_grad_enabled() and angles.requires_grad:
            return _PlanExpval.apply(angles, self, circuit).to(out_device)
        with torch.no_grad():
            plan, lowered, actions = self._plan(circuit)
            frozen = self._frozen_map(circuit, plan, lowered, angles.shape[0], self._frozen_key(lowered, angles))
            if frozen is not None:  # the same weights again: one real matrix product per row
                return kernels.frozen_expval(lowered, frozen, angles).to(out_device)
            return self._passes(plan, lowered, actions, angles).to(out_device)

    def _passes(self, plan, lowered, actions, angles: torch.Tensor) -> torch.Tensor:
        """Expectation values without autograd, ``chunk`` rows (at most a cache's worth) per pass."""
        rows = min(self.chunk, self._rows_per_pass(plan))
        parts = [self._forward(plan, lowered, actions, part) for part in angles.split(rows)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _row_bytes(self, plan) -> int:
        return 2**plan.n_qubits * torch.empty(0, dtype=self.complex_dtype).element_size()

    def _rows_per_pass(self, plan) -> int:
        """Rows whose states fit the cache budget: bigger states are run a few rows at a time."""
        return max(1, int(self.cache_bytes // self._row_bytes(plan)))

    def _forward(self, plan, lowered, actions, angles: torch.Tensor) -> torch.Tensor:
        """Expectation values of one pass without autograd (see :meth:`_final_state`)."""
        return kernels.measure(plan, lowered, self._final_state(plan, angles, lowered), actions)

    def _final_state(self, plan, angles: torch.Tensor, lowered) -> torch.Tensor:
        """The final state ``[2**n, B]`` of one pass without autograd, resuming from the previous pass's
        states where the angles allow.

        If the previous pass had the same shape and bitwise-equal angles in every column that the
        first ``k`` steps read, the state entering step ``k`` is the same: it is reused. Consecutive
        chunks of the shift rule's batch differ in one or two columns, so each starts where its
        shifted gate is (exact; the states kept are at most ``prefix_mib``). When that gate belongs to
        a run shared by the rows, the pass starts after the run instead (:meth:`_after_changed_run`).
        """
        start, resume, state = 0, 0, None
        previous = self._prefix
        shared = kernels.constant_columns(angles)
        if previous is not None and previous[0] is plan and previous[1].shape == angles.shape:
            same = (previous[1] == angles).all(dim=0)
            changed = frozenset(range(angles.shape[1])) - frozenset(torch.nonzero(same).flatten().tolist())
            start = resume = plan.first_step_reading(changed)
            state = previous[2][start]
            after = self._after_changed_run(plan, lowered, previous, angles, changed, start, shared)
            if after is not None:
                resume, state = start + 1, after
        trace: dict | None = {} if len(plan.steps) * angles.shape[0] * self._row_bytes(plan) <= self.prefix_bytes else None
        if trace is not None and resume > start:
            trace[resume] = state
        if resume < len(plan.steps):
            state = kernels.run(plan, lowered, angles, shared, start=resume, state=state, trace=trace)
        if trace is not None:
            if start:  # the states up to ``start`` are the previous pass's
                trace = {**{k: v for k, v in previous[2].items() if k <= start}, **trace}
            self._prefix = (plan, angles.clone(), trace, shared)  # a copy: the caller may reuse its buffer
        else:
            self._prefix = None
        return state

    #: at most this many wires changed in a run: updating them beats running it again (measured)
    MAX_UPDATED_WIRES = 2

    @staticmethod
    def _after_changed_run(plan, lowered, previous, angles, changed, k: int, shared) -> torch.Tensor | None:
        """The state after step ``k`` from the previous pass's, when every changed column is read by that
        run, the run is shared by the rows in both passes, and at most ``MAX_UPDATED_WIRES`` wires changed.

        Each changed wire's fused matrix ``F`` became ``F'``; since the run is ``⊗_w F_w``, the new state
        after it is the old one times ``F' F†`` on those wires: one 2×2 per wire instead of the run's
        blocks (the shift rule's passes change one column, i.e. one gate, each).
        """
        step = plan.steps[k] if k < len(plan.steps) else None
        if not isinstance(step, RotationStep) or k + 1 not in previous[2] or not changed <= step.chain.angle_columns:
            return None
        wires = sorted({step.chain.wire_of[c] for c in changed})
        columns = step.chain.angle_columns
        if len(wires) > TorchBackend.MAX_UPDATED_WIRES or not columns <= shared or not columns <= previous[3]:
            return None
        _, old = kernels.chain_matrices(lowered[k], previous[1][:1])
        _, new = kernels.chain_matrices(lowered[k], angles[:1])
        state = previous[2][k + 1]
        for w in wires:
            state = kernels.apply_wire(state, new[0, w] @ old[0, w].mH, plan.n_qubits, w)
        return state

    def expval_shifted(self, circuit: Circuit, angles: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """``[2, P, B, R]`` values at every column shifted by ``±π/2``, from one propagated state per column.

        For a gate ``exp(-iθ/2 P)`` the shifted gate is ``exp(∓iπ/4 P)`` after it, ``(1 ∓ iP)/√2``,
        so the shifted final states are ``(a ∓ i b)/√2`` with ``a`` the unshifted final state and
        ``b = i ψ_π`` the final state of the circuit with that column shifted by ``π``. Hence
        ``⟨O⟩(θ ± π/2) = (⟨a|O|a⟩ + ⟨ψ_π|O|ψ_π⟩ ± 2 Re⟨a|O|ψ_π⟩) / 2``: the same ``2·P·B`` values
        exactly, from ``P·B`` circuit runs instead of ``2·P·B``. Runs go ``chunk`` rows at a time
        (default: the backend's ``chunk``), resuming from the previous run where their angles agree.
        For a batch of at least ``chunk`` rows, the columns of the leading product state take one run
        per wire instead of one per column (:meth:`_product_shifted`).
        """
        if type(self).expval is not TorchBackend.expval:  # a subclass changed the values: shift them itself
            return super().expval_shifted(circuit, angles, chunk)
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        batch, n_params = angles.shape
        if n_params == 0:
            return angles.new_zeros(2, 0, batch, circuit.n_outputs).to(out_device)
        plan, lowered, actions = self._plan(circuit)
        rows = max(1, min(chunk or self.chunk, self._rows_per_pass(plan)))
        with torch.no_grad():
            final = torch.cat([self._final_state(plan, part, lowered) for part in angles.split(rows)], dim=1)
            values = kernels.measure(plan, lowered, final, actions)  # [B, R]
            pieces: dict[int, list] = {c: [] for c in range(n_params)}  # per column: (plus, minus) per row chunk

            def add(columns: list[int], b0: int, b1: int, state: torch.Tensor) -> None:
                """Both shifted values of ``columns`` from their π-shifted final states ``[2**n, g·b]``."""
                g, b = len(columns), b1 - b0
                bra = final[:, b0:b1].unsqueeze(1)  # [2**n, 1, b]
                cross = kernels.measure_cross(plan, lowered, bra, state.reshape(-1, g, b), actions)
                mean = (values[b0:b1].repeat(g, 1) + kernels.measure(plan, lowered, state, actions)) / 2
                for i, c in enumerate(columns):
                    pieces[c].append((mean + cross)[i * b : (i + 1) * b])
                    pieces[c].append((mean - cross)[i * b : (i + 1) * b])

            groups = max(1, rows // batch)  # whole columns per pass when the batch is small
            on_wire: dict[int, list[int]] = {}  # large batches: the product state's columns, by wire
            for c, w in (plan.steps[0].chain.wire_of.items() if groups == 1 else ()):
                on_wire.setdefault(w, []).append(c)
            for b0 in range(0, batch, rows) if on_wire else ():
                b1 = min(batch, b0 + rows)
                for w, columns in on_wire.items():
                    add(columns, b0, b1, self._product_shifted(plan, lowered, angles[b0:b1], final[:, b0:b1], w, columns))
            for c0 in range(0, n_params, groups):
                g = min(groups, n_params - c0)
                if groups == 1 and pieces[c0]:  # (done above)
                    continue
                for b0 in range(0, batch, rows) if groups == 1 else (0,):
                    b1 = batch if groups > 1 else min(batch, b0 + rows)
                    columns = list(range(c0, c0 + g))
                    add(columns, b0, b1, self._final_state(plan, _shifted_by_pi(angles[b0:b1], columns), lowered))
            plus = [torch.cat(pieces[c][0::2]) for c in range(n_params)]  # row chunks in order
            minus = [torch.cat(pieces[c][1::2]) for c in range(n_params)]
            out = torch.stack([torch.stack(plus), torch.stack(minus)])
        return out.to(out_device)

    @staticmethod
    def _product_shifted(plan, lowered, angles: torch.Tensor, final: torch.Tensor, wire: int, columns: list[int]) -> torch.Tensor:
        """The final states ``[2**n, g·B]`` with each of ``columns`` (gates of the leading product state,
        all on ``wire``) shifted by ``π``, from one extra run.

        Shifting a gate on ``wire`` changes only that wire's vector ``v → v'`` in ``⊗_w v_w``, and
        everything after the product state is linear: with ``v⊥`` the unit vector orthogonal to ``v``,
        ``v' = ⟨v|v'⟩ v + ⟨v⊥|v'⟩ v⊥`` gives the shifted final state ``⟨v|v'⟩ a + ⟨v⊥|v'⟩ a⊥`` from the
        unshifted one ``a`` and the final state ``a⊥`` of the product state with ``v⊥`` on ``wire``
        (exact; one run per wire instead of one per column).
        """
        _, fused = kernels.chain_matrices(lowered[0], angles)
        vectors = fused[..., 0]  # [B, n, 2], unit vectors
        v = vectors[:, wire]
        perp = torch.stack([-v[:, 1].conj(), v[:, 0].conj()], dim=-1)
        swapped = vectors.clone()
        swapped[:, wire] = perp
        other = kernels.run(plan, lowered, angles, kernels.constant_columns(angles), start=1, state=kernels.product_vector(swapped))
        _, moved = kernels.chain_matrices(lowered[0], _shifted_by_pi(angles, columns))
        moved = moved[:, wire, :, 0].reshape(len(columns), -1, 2)  # [g, B, 2]: v'
        along = (v.conj() * moved).sum(-1)  # ⟨v|v'⟩, [g, B]
        across = (perp.conj() * moved).sum(-1)  # ⟨v⊥|v'⟩
        return (final[:, None, :] * along + other[:, None, :] * across).reshape(final.shape[0], -1)

    def _adjoint(self, plan, lowered, actions, angles: torch.Tensor, grad_output: torch.Tensor, summed=None):
        """:func:`kernels.adjoint_vjp` in cache-sized passes (with ``summed``: its ``(grad, grad_sum)``)."""
        rows = self._rows_per_pass(plan)
        parts = [
            kernels.adjoint_vjp(plan, lowered, a, g, actions, summed=summed)
            for a, g in zip(angles.split(rows), grad_output.to(angles.dtype).split(rows))
        ]
        if summed is None:
            return parts[0] if len(parts) == 1 else torch.cat(parts)
        return torch.cat([p[0] for p in parts]), torch.stack([p[1] for p in parts]).sum(0)

    @staticmethod
    def _frozen_key(lowered, angles: torch.Tensor) -> torch.Tensor | None:
        """The angles of the columns that are not data (first row), if they are equal in every row."""
        values = angles.index_select(1, lowered[-1]["frozen_index"])
        if angles.shape[0] > 1 and not bool((values == values[:1]).all()):
            return None
        return values[0]

    def _frozen_map(self, circuit: Circuit, plan, lowered, n_rows: int, key: torch.Tensor | None) -> tuple | None:
        """The cached real matrix ``[2·2**n, 2**n]`` (with its sign table) of the circuit at frozen weights, when it pays.

        With every angle but the data fixed (``key``: their values, the same in all ``n_rows`` rows),
        the final state is ``ψ = U' r``: ``r = ⊗_w (cos(x_w/2), sin(x_w/2))`` is a real product vector
        of the data angles read first on each wire, and ``U' = U · ⊗_w Q_w`` folds everything else
        (the 2×2 after the data gate on each wire, the rest of the circuit ``U``) into one matrix,
        kept as ``[Re U'; Im U']``. Used when every observable is a Z word and one real product per
        row costs less than running the circuit (small batches; at 8 qubits, any batch). It is built
        the second time the same frozen angles are seen in a row (inference), so changing weights
        (training) never pay for it.
        """
        dim = 2**plan.n_qubits
        if key is None or plan.other_words or plan.z_signs is None or plan.n_qubits > MAX_CACHED_UNITARY_QUBITS:
            return None
        if n_rows * 2 * dim * dim > max(n_rows * 4 * dim * plan.block_work, UNITARY_CALL_SAVINGS):  # real multiply-adds
            return None
        cached = self._frozen_cache.get(id(circuit))
        if cached is None or cached[0] is not circuit or not torch.equal(cached[1], key):
            if len(self._frozen_cache) >= 8:
                self._frozen_cache.clear()
            self._frozen_cache[id(circuit)] = (circuit, key.clone(), None)
            return None
        if cached[2] is None:
            angles = torch.zeros(1, circuit.n_params, dtype=key.dtype, device=key.device)
            angles[:, lowered[-1]["frozen_index"]] = key
            cached = (circuit, cached[1], kernels.frozen_map(plan, lowered, angles))
            self._frozen_cache[id(circuit)] = cached
        return cached[2]

    def expval_broadcast(self, circuit: Circuit, angles: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        """:meth:`expval` of ``[angles, shared]``. With autograd, the adjoint backward computes the
        gradient of the shared angles summed over the rows (one transition matrix per run of shared
        gates instead of one per row), which is all a broadcast weight needs. Without, when the shared
        angles are exactly the frozen (non-data) columns, they key the frozen-weight matrix directly."""
        if type(self).expval is not TorchBackend.expval:
            return super().expval_broadcast(circuit, angles, shared)
        out_device = angles.device
        if out_device != self.device or angles.dtype != self.real_dtype or shared.dtype != self.real_dtype:
            angles = angles.to(device=self.device, dtype=self.real_dtype)
            shared = shared.to(device=self.device, dtype=self.real_dtype)
        if torch.is_grad_enabled() and (angles.requires_grad or shared.requires_grad):
            return _PlanExpvalBroadcast.apply(angles, shared, self, circuit).to(out_device)
        plan, lowered, actions = self._plan(circuit)
        if shared.shape[0] != circuit.n_params - lowered[-1]["frozen_start"]:  # (frozen_start is −1 unless they are the tail)
            return self.expval(circuit, full_angles(angles, shared)).to(out_device)
        with torch.no_grad():  # the frozen columns are the shared ones: they are the key
            program = self._fused_program(plan, angles.shape[1])
            frozen = None
            if program is None or angles.shape[0] < FUSED_OVER_FROZEN_ROWS:
                frozen = self._frozen_map(circuit, plan, lowered, angles.shape[0], shared)
            if frozen is not None:
                out = kernels.frozen_expval(lowered, frozen, angles)
            elif program is not None:
                out = self._fused_forward(program, full_angles(angles, shared))[0]
            else:
                out = self._passes(plan, lowered, actions, full_angles(angles, shared))
        return out if out_device == self.device else out.to(out_device)

    def _fused_program(self, plan, n_data: int):
        """The fused kernels' program for ``plan`` when the columns from ``n_data`` on are broadcast
        weights, or ``None`` where the fused kernels do not apply."""
        return fused_cpu.program(plan, n_data) if self.fused else None

    @staticmethod
    def _fused_forward(program, angles: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """``(⟨Z⟩ [B, K], what :meth:`_fused_vjp` needs)`` by the fused kernels."""
        operands = fused_cpu.Operands(program, angles.detach().numpy())
        out, final = fused_cpu.forward(program, operands, torch.get_num_threads())
        return torch.from_numpy(out), (program, operands, final)

    @staticmethod
    def _fused_vjp(saved: tuple, grad_output: torch.Tensor, n_params: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grad [B, P] of the product state's columns, grad_sum [P] of the later ones)``."""
        program, operands, final = saved
        grad_rows, grad_sum = fused_cpu.backward(program, operands, final, grad_output.detach().double().numpy(), n_params, torch.get_num_threads())
        return torch.from_numpy(grad_rows), torch.from_numpy(grad_sum)

    def vjp(self, circuit: Circuit, angles: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        """``[B, P]`` vector-Jacobian product by the adjoint method (two states in memory, any depth)."""
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        plan, lowered, actions = self._plan(circuit)
        return self._adjoint(plan, lowered, actions, angles, grad_output.to(self.device)).to(out_device)

    def expval_plain(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """The same values gate by gate, with no plan: the reference the fast path is tested against."""
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        state = self.initial_state(circuit.n_qubits, angles.shape[0])
        for op in circuit.operations:
            state = self.apply(state, circuit.n_qubits, op, angles)
        return self.measure(state, circuit).to(out_device)

    def initial_state(self, n_qubits: int, batch: int) -> torch.Tensor:
        state = torch.zeros(batch, 2**n_qubits, dtype=self.complex_dtype, device=self.device)
        state[:, 0] = 1
        return state

    def apply(self, state: torch.Tensor, n: int, op: Operation, angles: torch.Tensor) -> torch.Tensor:
        """The state after one gate."""
        if op.gate in ("RX", "RY", "RZ", "H"):
            theta = None if op.param is None else angles[:, op.param]
            matrices = one_qubit_matrices(op.gate, theta, state.shape[0], self.complex_dtype, self.device)
            return self._apply_1q(state, n, op.wires[0], matrices)
        if op.gate == "X":
            return state[:, flip_permutation(n, op.wires[0], None).to(self.device)]
        if op.gate == "CNOT":
            return state[:, flip_permutation(n, op.wires[1], op.wires[0]).to(self.device)]
        if op.gate == "CZ":
            both = (bits(n, op.wires[0]) & bits(n, op.wires[1])).to(self.device)
            return state * (1 - 2 * both).to(self.real_dtype)
        raise NotImplementedError(f"gate {op.gate}")

    @staticmethod
    def _apply_1q(state: torch.Tensor, n: int, wire: int, matrices: torch.Tensor) -> torch.Tensor:
        batch = state.shape[0]
        view = state.reshape(batch, 2**wire, 2, 2 ** (n - wire - 1))
        return torch.einsum("bij,bljr->blir", matrices, view).reshape(batch, -1)

    def measure(self, state: torch.Tensor, circuit: Circuit) -> torch.Tensor:
        """``[B, R]`` expectation values of the circuit's observables."""
        n = circuit.n_qubits
        probs = None
        columns = []
        for word in circuit.observables:
            if all(p == "Z" for _, p in word.terms):
                if probs is None:
                    probs = state.real**2 + state.imag**2
                parity = sum(bits(n, w) for w in word.wires) % 2
                signs = (1 - 2 * parity).to(device=self.device, dtype=self.real_dtype)
                columns.append(probs @ signs)
            else:
                source, coeff = pauli_action(n, word.terms)
                moved = state[:, source.to(self.device)] * coeff.to(device=self.device, dtype=self.complex_dtype)
                columns.append((state.conj() * moved).sum(dim=1).real)
        return torch.stack(columns, dim=1)


def _shifted_by_pi(angles: torch.Tensor, columns: list[int]) -> torch.Tensor:
    """``[g·B, P]``: ``angles[B, P]`` once per column of ``columns``, with that column shifted by ``π``."""
    shifted = angles.repeat(len(columns), 1, 1)  # [g, B, P]
    shifted[torch.arange(len(columns)), :, columns] += math.pi
    return shifted.reshape(-1, angles.shape[1])


def _recorded_forward(ctx, backend: TorchBackend, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
    """Expectation values of ``angles``, keeping in ``ctx`` what the adjoint backward needs.

    Large states run in cache-sized passes and keep nothing (the backward recomputes them).
    """
    plan, lowered, actions = backend._plan(circuit)
    ctx.backend, ctx.circuit, ctx.records, ctx.state = backend, circuit, None, None
    rows = backend._rows_per_pass(plan)
    with torch.no_grad():
        if angles.shape[0] > rows:
            return torch.cat([backend._forward(plan, lowered, actions, part) for part in angles.split(rows)])
        n_runs = sum(not isinstance(step, PermutationStep) for step in plan.steps)
        records: list = []
        checkpoint = n_runs * angles.shape[0] * backend._row_bytes(plan) <= backend.checkpoint_bytes
        state = kernels.run(plan, lowered, angles, kernels.constant_columns(angles), records, checkpoint=checkpoint)
        ctx.records, ctx.state = records, state
        return kernels.measure(plan, lowered, state, actions)


def _differentiable_vjp(plan, lowered, actions, angles, grad_output, inputs):
    """The VJP through the plan by torch autograd, itself differentiable (``create_graph=True``)."""
    tracked = [t for t in inputs if t.requires_grad]
    with torch.enable_grad():
        out = kernels.measure(plan, lowered, kernels.run(plan, lowered, angles), actions)
        grads = iter(torch.autograd.grad(out, tracked, grad_output, create_graph=True, allow_unused=True))
    found = [next(grads) if t.requires_grad else None for t in inputs]
    return [torch.zeros_like(t) if g is None else g for g, t in zip(found, inputs)]


class _PlanExpval(torch.autograd.Function):
    """The plan's expectation values; backward by the adjoint method, or by autograd when differentiable."""

    @staticmethod
    def forward(ctx, angles: torch.Tensor, backend: TorchBackend, circuit: Circuit):
        ctx.save_for_backward(angles)
        return _recorded_forward(ctx, backend, circuit, angles)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (angles,) = ctx.saved_tensors
        plan, lowered, actions = ctx.backend._plan(ctx.circuit)
        if torch.is_grad_enabled():  # create_graph=True: the backward must be differentiable itself
            (grad,) = _differentiable_vjp(plan, lowered, actions, angles, grad_output, [angles])
            return grad, None, None
        if ctx.records is None:
            return ctx.backend._adjoint(plan, lowered, actions, angles, grad_output), None, None
        grad = kernels.adjoint_vjp(plan, lowered, angles, grad_output, actions, ctx.records, ctx.state)
        return grad, None, None


class _PlanExpvalBroadcast(torch.autograd.Function):
    """:class:`_PlanExpval` of ``[angles, shared]`` (``shared`` appended to every row); the adjoint
    backward sums the shared angles' gradient over the batch with one transition matrix per run."""

    @staticmethod
    def forward(ctx, angles: torch.Tensor, shared: torch.Tensor, backend: TorchBackend, circuit: Circuit):
        ctx.save_for_backward(angles, shared)
        ctx.fused = None
        program = backend._fused_program(backend._plan(circuit)[0], angles.shape[1])
        if program is not None:
            ctx.backend, ctx.circuit = backend, circuit
            with torch.no_grad():
                out, ctx.fused = backend._fused_forward(program, full_angles(angles, shared))
            return out
        return _recorded_forward(ctx, backend, circuit, full_angles(angles, shared))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        angles, shared = ctx.saved_tensors
        plan, lowered, actions = ctx.backend._plan(ctx.circuit)
        if torch.is_grad_enabled():  # create_graph=True: the backward must be differentiable itself
            with torch.enable_grad():
                full = full_angles(angles, shared)
            grad_angles, grad_shared = _differentiable_vjp(plan, lowered, actions, full, grad_output, [angles, shared])
            return grad_angles, grad_shared, None, None
        n_data = angles.shape[1]
        if ctx.fused is not None:
            grad, grad_sum = TorchBackend._fused_vjp(ctx.fused, grad_output, ctx.circuit.n_params)
            return grad[:, :n_data], grad[:, n_data:].sum(0) + grad_sum[n_data:], None, None
        full = full_angles(angles, shared)
        summed = frozenset(range(angles.shape[1], full.shape[1]))
        if ctx.records is None:
            grad, grad_sum = ctx.backend._adjoint(plan, lowered, actions, full, grad_output, summed)
        else:
            grad, grad_sum = kernels.adjoint_vjp(plan, lowered, full, grad_output, actions, ctx.records, ctx.state, summed=summed)
        return grad[:, :n_data], grad[:, n_data:].sum(0) + grad_sum[n_data:], None, None


@functools.lru_cache(maxsize=256)
@torch.inference_mode(False)
def _pauli_actions(circuit: Circuit, dtype: torch.dtype, device: torch.device) -> list:
    """``(source, coeff)`` on ``device`` for each observable that is not all-Z."""
    out = []
    for word in circuit.observables:
        if not all(p == "Z" for _, p in word.terms):
            source, coeff = pauli_action(circuit.n_qubits, word.terms)
            out.append((source.to(device), coeff.to(device=device, dtype=dtype)))
    return out


@hookimpl
def register_backends(register) -> None:
    register(TorchBackend)
