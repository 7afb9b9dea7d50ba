"""``ptm``: exact noisy simulation in the Pauli basis, compiled (numba), with an adjoint backward.

The density matrix of each row is its Pauli vector ``r[4^n]`` (float64, :mod:`hqf.backends.ptm.transfer`);
gates and channels are real Pauli transfer matrices composed into steps (:mod:`hqf.backends.ptm.program`)
that the kernels apply one pass each (:mod:`hqf.backends.ptm.kernels`); an expectation value is one
coordinate. Gradients with respect to every angle column come from the adjoint (Heisenberg) pass, which
starts from states kept every ``⌈√K⌉`` of the ``K`` steps and recomputes the segment in between:
``O(√K · 4^n)`` memory per row.
Memory of the forward pass: ``16 · 4^n`` bytes per thread; docs/density-matrices.md says why this form.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math

import numpy as np
import torch

from hqf.backends.ptm import kernels
from hqf.backends.ptm.program import Program
from hqf.backends.ptm.readout import Reading
from hqf.backends.ptm.transfer import iz_strings
from hqf.quantum.circuit import GATES, OBSERVABLE_KINDS, Circuit
from hqf.quantum.gradients import expval as differentiable_expval
from hqf.quantum.gradients import shift_jacobian
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.quantum.noise import NOISE_FEATURES, NoiseModel, noise_model


@functools.lru_cache(maxsize=64)
def compiled(circuit: Circuit, noise: NoiseModel) -> tuple[Program, Reading]:
    """The program and the read-out of ``circuit`` under ``noise`` (cached)."""
    return Program.build(circuit, noise), Reading.of(circuit, noise)


def segment_length(n_steps: int) -> int:
    """Steps between two checkpoints of the adjoint pass: ``⌈√K⌉`` (checkpoints plus segment ``≈ 2√K``)."""
    return max(1, math.ceil(math.sqrt(n_steps)))


class PtmBackend(Backend):
    """Exact noisy simulation as Pauli transfer matrices; options ``noise`` (a
    :class:`~hqf.quantum.noise.NoiseModel` or its text) or ``depolarizing=p``, ``checkpoint_mib`` (the
    memory a differentiable call may keep for its backward; above it the backward recomputes).

    Example::

        >>> from hqf.quantum.circuit import Circuit, Operation, PauliWord
        >>> circuit = Circuit(1, [Operation("RY", 0, 0)], [PauliWord.z(0)])
        >>> round(PtmBackend(depolarizing=0.03).expval(circuit, torch.zeros(1, 1)).item(), 12)
        0.96
    """

    name = "ptm"
    description = "Pauli-transfer-matrix density matrix, numba, adjoint gradients (option noise=…)"
    capabilities = Capabilities(
        dtypes={"complex128"},
        devices={"cpu"},
        max_qubits=12,
        gradients={"backprop", "adjoint"},
        noise=True,
        channels=NOISE_FEATURES,
        gates=GATES,
        observables=OBSERVABLE_KINDS,
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability.of_modules(("numba",))

    def __init__(
        self,
        *,
        noise: NoiseModel | str | None = None,
        depolarizing: float = 0.0,
        checkpoint_mib: float = 1024.0,
        dtype: str = "complex128",
        device: str = "cpu",
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.noise = noise_model(noise, depolarizing)
        self.noise.require(self.name, self.capabilities.channels)
        checkpoint_mib = float(checkpoint_mib)
        if not checkpoint_mib >= 0:  # also refuses NaN
            raise ValueError(f"'checkpoint_mib' must be >= 0 (got {checkpoint_mib})")
        self.checkpoint_bytes = int(checkpoint_mib * 2**20)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_size = 0

    @property
    def n_threads(self) -> int:
        """The threads the rows are split between: :meth:`set_threads`'s count, else torch's."""
        return self.threads or torch.get_num_threads()

    def _split(self, batch: int, work) -> None:
        """Run ``work(r0, r1)`` on the rows split between the threads."""
        threads = max(1, min(self.n_threads, batch))
        if threads == 1:
            work(0, batch)
            return
        if self._pool is None or self._pool_size != threads:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hqf-ptm")
            self._pool_size = threads
        bounds = np.linspace(0, batch, threads + 1).astype(int)
        for future in [self._pool.submit(work, bounds[t], bounds[t + 1]) for t in range(threads)]:
            future.result()

    def words(self, circuit: Circuit, angles: np.ndarray, every: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(words[B, M], checkpoints)``: the measured words' values for each row of ``angles`` (float64
        numpy) and, with ``every > 0``, the states before every ``every``-th step (the adjoint pass
        starts its segments from them)."""
        program, reading = compiled(circuit, self.noise)
        batch, n4 = angles.shape[0], 4**circuit.n_qubits
        vals = program.values(angles)
        n_check = -(-len(program.steps) // every) if every else 0
        checkpoints = np.empty((batch if every else 0, n_check, n4))
        out = np.empty((batch, len(reading.ptr) - 1))
        init = iz_strings(circuit.n_qubits)

        def work(r0: int, r1: int) -> None:
            kernels.forward_rows(
                init, r0, r1, program.tables, vals, reading.ptr, reading.idx, reading.coef, out, every, checkpoints
            )

        self._split(batch, work)
        return out, checkpoints

    def gradient(
        self, circuit: Circuit, angles: np.ndarray, grad_output: np.ndarray, checkpoints=None, every: int = 0
    ) -> np.ndarray:
        """``[B, P]``: ``Σ_r grad_output[b, r] ∂out[b, r]/∂angles[b]`` by the adjoint pass (float64 numpy);
        ``checkpoints`` from :meth:`words` with the same ``every``, or None to recompute them."""
        program, reading = compiled(circuit, self.noise)
        batch = angles.shape[0]
        vals = program.values(angles)
        have = checkpoints is not None
        if have and every < 1:
            raise ValueError(f"'every' must be the checkpoints' interval, >= 1 (got {every})")
        if not have:
            every = segment_length(len(program.steps))
            checkpoints = np.empty((0, 0, 4**circuit.n_qubits))
        cotangents = np.ascontiguousarray(grad_output @ reading.matrix)
        g = np.zeros((batch, program.nnz))
        init = iz_strings(circuit.n_qubits)

        def work(r0: int, r1: int) -> None:
            kernels.backward_rows(
                init,
                r0,
                r1,
                program.tables,
                vals,
                program.gradient,
                reading.ptr,
                reading.idx,
                reading.coef,
                cotangents,
                every,
                checkpoints,
                have,
                g,
            )

        self._split(batch, work)
        return program.angle_gradients(angles, g)

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """Expectation values ``[B, R]`` (float64); differentiable, by the adjoint pass, when ``angles``
        requires grad."""
        if torch.is_grad_enabled() and angles.requires_grad:
            return PtmExpval.apply(angles, self, circuit)
        return self._outputs(circuit, angles, every=0)[0]

    def _outputs(self, circuit: Circuit, angles: torch.Tensor, every: int):
        _, reading = compiled(circuit, self.noise)
        rows = np.ascontiguousarray(angles.detach().to("cpu", torch.float64).numpy())
        words, checkpoints = self.words(circuit, rows, every)
        out = words @ reading.matrix.T + reading.offset
        return torch.from_numpy(out).to(angles.device), checkpoints

    def vjp(self, circuit: Circuit, angles: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        """``[B, P]`` vector-Jacobian product by the adjoint pass (the forward states recomputed)."""
        rows = np.ascontiguousarray(angles.detach().to("cpu", torch.float64).numpy())
        cotangents = grad_output.detach().to("cpu", torch.float64).numpy()
        return torch.from_numpy(self.gradient(circuit, rows, cotangents)).to(angles.device)

    def checkpoint_interval(self, circuit: Circuit, batch: int) -> int:
        """Steps between the states a differentiable call of ``batch`` rows keeps for its backward,
        ``⌈√K⌉``; 0 (keep none: the backward recomputes them) when they do not fit ``checkpoint_mib``.
        (Keeping a state before every step recomputes nothing but writes ``K`` states per row to memory,
        which costs more than the recomputation.)"""
        program, _ = compiled(circuit, self.noise)
        every = segment_length(len(program.steps))
        kept = -(-len(program.steps) // every) * batch * 8 * 4**circuit.n_qubits
        return every if kept <= self.checkpoint_bytes else 0


class PtmExpval(torch.autograd.Function):
    """:meth:`PtmBackend.expval` whose backward is the adjoint pass from the forward's checkpoints (when
    they fit ``checkpoint_mib``); a backward that must be differentiable itself (``create_graph=True``)
    takes the parameter-shift rule through differentiable calls instead."""

    @staticmethod
    def forward(ctx, angles: torch.Tensor, backend: PtmBackend, circuit: Circuit):
        every = backend.checkpoint_interval(circuit, angles.shape[0])
        out, checkpoints = backend._outputs(circuit, angles, every)
        ctx.save_for_backward(angles)
        ctx.backend, ctx.circuit, ctx.every = backend, circuit, every
        ctx.checkpoints = checkpoints if every else None
        return out

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (angles,) = ctx.saved_tensors
        backend, circuit = ctx.backend, ctx.circuit
        if torch.is_grad_enabled():  # create_graph: a higher derivative will follow

            def evaluate(rows: torch.Tensor) -> torch.Tensor:
                return differentiable_expval(backend, circuit, rows, gradient="parameter-shift")

            jac = shift_jacobian(evaluate, angles, None, circuit.column_gates)
            return torch.einsum("brp,br->bp", jac, grad_output), None, None
        rows = np.ascontiguousarray(angles.detach().to("cpu", torch.float64).numpy())
        cotangents = grad_output.detach().to("cpu", torch.float64).numpy()
        grad = backend.gradient(circuit, rows, cotangents, ctx.checkpoints, ctx.every)
        ctx.checkpoints = None
        return torch.from_numpy(grad).to(device=angles.device, dtype=angles.dtype), None, None
