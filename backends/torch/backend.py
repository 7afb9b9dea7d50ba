"""``TorchBackend``: which path runs a call (the paths themselves live in the sibling modules).

- ``plain`` (:mod:`~hqf.backends.torch.plain`): gate by gate, the reference of the tests;
- ``plan``: the circuit's compiled plan (:mod:`~hqf.backends.torch.plan`, forward
  :mod:`~hqf.backends.torch.kernels`, backward :mod:`~hqf.backends.torch.adjoint`, run in cache-sized
  passes by :mod:`~hqf.backends.torch.passes`; the shift rule's values by
  :mod:`~hqf.backends.torch.shift`);
- ``frozen``: at inference, the circuit as one real matrix (:mod:`~hqf.backends.torch.frozen`);
- ``fused``: broadcast weights on the CPU in complex128 through the numba kernels
  (:mod:`~hqf.backends.torch.fused`; the shift rule's values by :mod:`~hqf.backends.torch.shift_cpu`).

A plan covers the original seven gates and Pauli-word read-outs (:func:`~hqf.backends.torch.plan.fits`);
any other circuit of the vocabulary (more gates, Hamiltonians, probabilities) runs on the ``plain``
path, differentiable by torch autograd. With ``shots`` every value is a shot estimate
(:mod:`~hqf.backends.torch.shots`) and only the parameter-shift gradient is declared.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from hqf.backends.torch import frozen, passes, plain, shift, shots as shot_sampling
from hqf.backends.torch.autograd import PlanExpval, PlanExpvalBroadcast
from hqf.backends.torch.cache import Cache, Compiled
from hqf.backends.torch.plan import DEFAULT_BLOCK, Plan, fits
from hqf.quantum.circuit import GATES, OBSERVABLE_KINDS, Circuit, Operation
from hqf.quantum.gates import full_angles
from hqf.quantum.interfaces import Availability, Backend, Capabilities

try:  # numba is a dependency; without it the torch kernels run everything
    from hqf.backends.torch import blocked as blocked_path, fused as fused_path, shift_cpu
except ImportError:  # pragma: no cover - exercised only where numba is missing
    blocked_path = fused_path = shift_cpu = None

#: rows per forward pass without autograd (measured: docs/performance.md)
DEFAULT_CHUNK = 256
#: from this many rows on, the fused kernels run frozen weights faster than the frozen-weight matrix
#: (measured, hea8x6: docs/performance.md)
FUSED_OVER_FROZEN_ROWS = 8
#: the values of :attr:`TorchBackend.last_path`
PATHS = ("plain", "plan", "frozen", "fused", "blocked")


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
            they apply (CPU, complex128, Z read-outs, at most ``hqf.backends.torch.fused.MAX_QUBITS``
            qubits, data read only by the leading product state), and the cache-blocked kernels past that
            (:mod:`~hqf.backends.torch.blocked`: 13 to 24 qubits, Z read-outs, any angles).

    Args (sampling):
        shots: estimate every value from this many samples of the exact distribution (``None``: exact
            values). The instance then declares ``exact=False`` and no native gradient.
        seed: the seed of the sampling generator (one generator per instance: calls in the same order
            give the same estimates).

    Raises:
        ValueError: for an unknown dtype or device, CUDA without a GPU, ``block``/``chunk`` < 1 or
            ``shots`` < 1.

    What a backend keeps between calls is one :class:`~hqf.backends.torch.cache.Cache` (``cache``).
    After each call, ``last_path`` names the path that computed its values (one of :data:`PATHS`:
    ``"plain"``, ``"plan"``, ``"frozen"``, ``"fused"``; ``None`` before the first call): a diagnostic.

    Example:
        >>> from hqf.quantum.circuit import Circuit, Operation, PauliWord
        >>> circuit = Circuit(1, [Operation("RY", 0, 0)], [PauliWord.z(0)])
        >>> TorchBackend().expval(circuit, torch.zeros(1, 1, dtype=torch.float64))
        tensor([[1.]], dtype=torch.float64)
    """

    name = "torch"
    description = "PyTorch batched state vector, numba-fused CPU kernels (embedded default)"
    capabilities = Capabilities(
        dtypes={"complex128", "complex64"},
        devices={"cpu", "cuda"},
        max_qubits=26,
        gradients={"backprop", "adjoint"},
        gates=GATES,
        observables=OBSERVABLE_KINDS,
    )
    #: Whether this class's :meth:`expval` is the compiled plan's, so that :meth:`expval_shifted` and
    #: :meth:`expval_broadcast` may compute its values by the plan's own methods (the paired shift
    #: rule, the fused kernels, the frozen-weight matrix). Declared by each class for itself: a
    #: subclass may change :meth:`expval`, so unless its own body sets ``plan_values = True`` it gets
    #: the generic :class:`~hqf.quantum.interfaces.Backend` methods, which call its :meth:`expval`.
    plan_values: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.plan_values = bool(vars(cls).get("plan_values", False))

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
        shots: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
            raise ValueError(f"'shots' must be an integer >= 1 or None (got {shots!r})")
        self.shots, self.seed = shots, seed
        self.generator: torch.Generator | None = None
        if shots is not None:  # this instance estimates: no exact values, no native gradient
            self.capabilities = attrs.evolve(type(self).capabilities, exact=False, gradients=frozenset())
            self.generator = torch.Generator(device=self.device).manual_seed(seed)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA GPU")
        for name, value in (("block", block), ("chunk", chunk)):
            if value < 1:
                raise ValueError(f"'{name}' must be >= 1 (got {value})")
        self.block, self.chunk, self.checkpoint_bytes = block, chunk, checkpoint_mib * 2**20
        self.cache_bytes = cache_mib * 2**20
        self.prefix_bytes = prefix_mib * 2**20
        self.fused = fused and fused_path is not None and self.device.type == "cpu" and self.complex_dtype == torch.complex128
        self.cache = Cache()
        self.last_path: str | None = None

    def compiled(self, circuit: Circuit) -> Compiled:
        """``circuit`` compiled for this backend (cached)."""
        return self.cache.compiled(circuit, self.block, self.complex_dtype, self.device)

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """Expectation values ``[B, R]``; differentiable (twice, too) when ``angles`` requires grad.

        Without autograd the rows are run ``chunk`` at a time. Runs of gates whose angles are equal in
        every row of a chunk (ansatz weights) build their matrices once for the chunk. With autograd,
        the first-order backward is the adjoint method on the recorded forward; a backward that must
        itself be differentiable (``create_graph=True``) goes through the plan with torch autograd.
        """
        if self.shots is not None:
            return self._sampled(circuit, angles)
        if not fits(circuit):
            return self.expval_plain(circuit, angles)
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        if (program := self._blocked_program(circuit)) is not None:
            return blocked_path.expval(self, circuit, program, angles).to(out_device)
        compiled = self.compiled(circuit)
        if torch.is_grad_enabled() and angles.requires_grad:
            self.last_path = "plan"
            return PlanExpval.apply(angles, self, compiled).to(out_device)
        with torch.no_grad():
            matrix = frozen.cached_matrix(self.cache, compiled, angles.shape[0], frozen.frozen_key(compiled.tables, angles))
            if matrix is not None:  # the same weights again: one real matrix product per row
                self.last_path = "frozen"
                return frozen.frozen_expval(compiled.tables, matrix, angles).to(out_device)
            self.last_path = "plan"
            return passes.expectations(self, compiled, angles).to(out_device)

    def expval_broadcast(self, circuit: Circuit, angles: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        """:meth:`expval` of ``[angles, shared]``. With autograd, the adjoint backward computes the
        gradient of the shared angles summed over the rows (one transition matrix per run of shared
        gates instead of one per row), which is all a broadcast weight needs. Without, when the shared
        angles are exactly the frozen (non-data) columns, they key the frozen-weight matrix directly.
        Where the fused kernels apply, they run the call (with autograd, its backward too)."""
        if not self.plan_values or self.shots is not None or not fits(circuit):
            return super().expval_broadcast(circuit, angles, shared)
        out_device = angles.device
        if out_device != self.device or angles.dtype != self.real_dtype or shared.dtype != self.real_dtype:
            angles = angles.to(device=self.device, dtype=self.real_dtype)
            shared = shared.to(device=self.device, dtype=self.real_dtype)
        if (program := self._blocked_program(circuit)) is not None:
            return blocked_path.expval(self, circuit, program, angles, shared).to(out_device)
        compiled = self.compiled(circuit)
        plan = compiled.plan
        if torch.is_grad_enabled() and (angles.requires_grad or shared.requires_grad):
            program = self._fused_program(plan, angles.shape[1])
            self.last_path = "plan" if program is None else "fused"
            return PlanExpvalBroadcast.apply(angles, shared, self, compiled, program).to(out_device)
        if plan.frozen_start is None or shared.shape[0] != circuit.n_params - plan.frozen_start:
            return self.expval(circuit, full_angles(angles, shared)).to(out_device)
        with torch.no_grad():  # the frozen columns are the shared ones: they are the key
            program = self._fused_program(plan, angles.shape[1])
            matrix = None
            if program is None or angles.shape[0] < FUSED_OVER_FROZEN_ROWS:
                matrix = frozen.cached_matrix(self.cache, compiled, angles.shape[0], shared)
            if matrix is not None:
                self.last_path = "frozen"
                out = frozen.frozen_expval(compiled.tables, matrix, angles)
            elif program is not None:
                self.last_path = "fused"
                out = program.expval(full_angles(angles, shared))[0]
            else:
                self.last_path = "plan"
                out = passes.expectations(self, compiled, full_angles(angles, shared))
        return out if out_device == self.device else out.to(out_device)

    def _fused_program(self, plan: Plan, n_data: int):
        """The fused kernels' program for ``plan`` when the columns from ``n_data`` on are broadcast
        weights, or ``None`` where the fused kernels do not apply."""
        return fused_path.program(plan, n_data) if self.fused else None

    def _blocked_program(self, circuit: Circuit):
        """The cache-blocked kernels' program for ``circuit`` (13 to 24 qubits, Z words; sets
        ``last_path``), or ``None`` where they do not apply."""
        program = blocked_path.program(circuit) if self.fused else None
        if program is not None:
            self.last_path = "blocked"
        return program

    def expval_shifted(self, circuit: Circuit, angles: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """``[2, P, B, R]`` values at every column shifted by ``±π/2``, from one ``π``-shifted run per
        column (:mod:`~hqf.backends.torch.shift`: exactly the shifted values, half the runs). Where the
        fused kernels apply to the columns read after the product state as broadcast weights, they run
        it (:mod:`~hqf.backends.torch.shift_cpu`)."""
        if not self.plan_values or self.shots is not None or not fits(circuit):
            return super().expval_shifted(circuit, angles, chunk)
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        if angles.shape[1] == 0:
            return angles.new_zeros(2, 0, angles.shape[0], circuit.n_outputs).to(out_device)
        compiled = self.compiled(circuit)
        program = shift_cpu.broadcast_program(compiled.plan, angles) if self.fused else None
        if program is not None:
            self.last_path = "fused"
            return shift_cpu.shifted_values(program, angles, torch.get_num_threads()).to(out_device)
        self.last_path = "plan"
        return shift.shifted_values(self, compiled, angles, chunk).to(out_device)

    def vjp(self, circuit: Circuit, angles: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        """``[B, P]`` vector-Jacobian product by the adjoint method (two states in memory, any depth)."""
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        if not fits(circuit):  # the plain path's autograd is its vector-Jacobian product
            with torch.enable_grad():
                leaf = angles.detach().requires_grad_()
                out = self.expval_plain(circuit, leaf)
                (grad,) = torch.autograd.grad(out, leaf, grad_output.to(device=self.device, dtype=out.dtype))
            return grad.to(out_device)
        if (program := self._blocked_program(circuit)) is not None:
            grad = program.vjp(angles.detach().numpy(), grad_output.detach().double().numpy(), torch.get_num_threads())
            return torch.from_numpy(grad).to(out_device)
        self.last_path = "plan"
        return passes.adjoint(self, self.compiled(circuit), angles, grad_output.to(self.device)).to(out_device)

    def expval_plain(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """The same values gate by gate, with no plan: the reference the fast paths are tested against,
        and the path of every circuit a plan does not cover."""
        self.last_path = "plain"
        return plain.expval(circuit, angles, self.complex_dtype, self.device)

    def _sampled(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """``[B, R]`` shot estimates (``shots`` samples per observable from the exact distribution)."""
        def exact(expanded: Circuit, rows: torch.Tensor) -> torch.Tensor:
            if fits(expanded):
                return passes.expectations(self, self.compiled(expanded), rows)
            return plain.expval(expanded, rows, self.complex_dtype, self.device)

        out_device = angles.device
        angles = angles.detach().to(device=self.device, dtype=self.real_dtype)
        self.last_path = "plain"
        return shot_sampling.sample(circuit, angles, exact, self.shots, self.generator).to(out_device)

    def initial_state(self, n_qubits: int, batch: int) -> torch.Tensor:
        """``|0…0⟩`` for every row, ``[B, 2**n]`` (the plain path's layout)."""
        return plain.initial_state(n_qubits, batch, self.complex_dtype, self.device)

    def apply(self, state: torch.Tensor, n: int, op: Operation, angles: torch.Tensor) -> torch.Tensor:
        """The plain path's state ``[B, 2**n]`` after one gate."""
        return plain.apply(state, n, op, angles)

    def measure(self, state: torch.Tensor, circuit: Circuit) -> torch.Tensor:
        """``[B, R]`` expectation values of the circuit's observables on a plain state ``[B, 2**n]``."""
        return plain.measure(state, circuit)
