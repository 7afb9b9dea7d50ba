"""``TorchBackend``: which path runs a call (:func:`choose_path`; the paths live in the sibling modules,
docs/torch-backend.md describes them).

- ``plain`` (:mod:`~hqf.backends.torch.plain`): gate by gate, the reference of the tests;
- ``plan``: the circuit's compiled plan (:mod:`~hqf.backends.torch.plan`, forward
  :mod:`~hqf.backends.torch.steps`, backward :mod:`~hqf.backends.torch.adjoint`, run in cache-sized
  passes by :mod:`~hqf.backends.torch.passes`; the shift rule's values by
  :mod:`~hqf.backends.torch.shift`);
- ``frozen``: at inference, the circuit as one real matrix (:mod:`~hqf.backends.torch.frozen`);
- ``fused``: broadcast weights on the CPU in complex128 through the numba kernels
  (:mod:`~hqf.backends.torch.fused`; the shift rule's values by :mod:`~hqf.backends.torch.shift_cpu`);
- ``blocked``: 13 to 24 qubits on the CPU in complex128 through the cache-blocked numba kernels
  (:mod:`~hqf.backends.torch.blocked`).

A plan covers the original seven gates and Pauli-word read-outs (:func:`~hqf.backends.torch.plan.fits`);
any other circuit of the vocabulary (more gates, Hamiltonians, probabilities) runs on the ``plain``
path, differentiable by torch autograd. With ``shots`` every value is a shot estimate
(:mod:`~hqf.backends.torch.shots`) and only the parameter-shift gradient is declared. The helpers read
the backend's :class:`~hqf.backends.torch.settings.Settings` and :class:`~hqf.backends.torch.cache.Cache`,
never the backend itself; a call touching few amplitudes runs on the calling thread alone
(:mod:`~hqf.backends.torch.parallel`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import attrs
import torch

from hqf.backends.torch import frozen, passes, plain, shift
from hqf.backends.torch import shots as shot_sampling
from hqf.backends.torch.autograd import PlanExpval, PlanExpvalBroadcast
from hqf.backends.torch.cache import Cache, CompiledCircuit
from hqf.backends.torch.parallel import torch_threads_for
from hqf.backends.torch.plan import DEFAULT_BLOCK, fits
from hqf.backends.torch.settings import Settings
from hqf.quantum.circuit import DECLARABLE_GATES, OBSERVABLE_KINDS, Circuit, Operation
from hqf.quantum.gates import full_angles
from hqf.quantum.gradients import check_angles
from hqf.quantum.interfaces import Availability, Backend, Capabilities

try:  # numba is a dependency; without it the torch kernels run everything
    from hqf.backends.torch import blocked as blocked_path
    from hqf.backends.torch import fused as fused_path
    from hqf.backends.torch import shift_cpu
except ImportError:  # pragma: no cover - exercised only where numba is missing
    blocked_path = fused_path = shift_cpu = None

#: rows per forward pass without autograd (measured: docs/performance.md)
DEFAULT_CHUNK = 256
#: from this many rows on, the fused kernels run frozen weights faster than the frozen-weight matrix
#: (measured, hea8x6: docs/performance.md)
FUSED_OVER_FROZEN_ROWS = 8
#: the values of :attr:`TorchBackend.last_path`
PATHS = ("plain", "plan", "frozen", "fused", "blocked")


def choose_path(blocked: bool, fused: bool, gradient: bool, rows: int, frozen_ready: Callable[[], bool]) -> str:
    """The path of one call of ``rows`` rows (one of :data:`PATHS`): the first line that holds wins.

    ``blocked``/``fused``: whether the blocked or the fused kernels run the call; ``gradient``: the call
    is recorded for autograd, or computes a gradient itself (:meth:`~TorchBackend.vjp`, the shift rule).

    ======== ==========================================================================================
    path     when
    ======== ==========================================================================================
    plain    shots, or a circuit the plan does not cover (:func:`~.plan.fits`): each method checks it first
    blocked  the blocked kernels run the circuit (``fused`` on, 13–24 qubits, Z words)
    fused    a gradient, where the fused kernels run the call (``fused`` on, at most 12 qubits, Z words,
             data read only by the leading product state, broadcast weights after it)
    plan     a gradient, otherwise
    fused    values only, where they run it, from ``FUSED_OVER_FROZEN_ROWS`` rows
    frozen   values only, ``frozen_ready()``: the frozen-weight matrix of these weights is built
             (the same non-data angles as the call before, and it pays: :mod:`~.frozen`)
    fused    values only, where they run it
    plan     otherwise
    ======== ==========================================================================================

    ``frozen_ready`` is asked only on its line: asking remembers the weights (:meth:`Cache.frozen_matrix`).
    """
    if blocked:
        return "blocked"
    if gradient:
        return "fused" if fused else "plan"
    if fused and rows >= FUSED_OVER_FROZEN_ROWS:
        return "fused"
    if frozen_ready():
        return "frozen"
    return "fused" if fused else "plan"


def never() -> bool:
    """``frozen_ready`` of a call that never uses the frozen-weight matrix."""
    return False


@attrs.define(eq=False)
class FrozenLookup:
    """``frozen_ready`` of :func:`choose_path` for one call: asks the cache for the frozen-weight matrix
    of ``compiled`` at the frozen angles ``key`` and keeps it in ``matrix``."""

    cache: Cache
    compiled: CompiledCircuit
    rows: int
    key: torch.Tensor | None
    matrix: frozen.FrozenMatrix | None = None

    def __call__(self) -> bool:
        self.matrix = frozen.cached_matrix(self.cache, self.compiled, self.rows, self.key)
        return self.matrix is not None


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

    What the paths read is one :class:`~hqf.backends.torch.settings.Settings` (``settings``; :meth:`set_threads`
    sets its thread count), what a backend keeps between calls one :class:`~hqf.backends.torch.cache.Cache`
    (``cache``). After each call, ``last_path`` names the path that computed its values (one of
    :data:`PATHS`, chosen by :func:`choose_path`; ``None`` before the first call): a diagnostic.

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
        gates=DECLARABLE_GATES,
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
        numba_kernels = fused_path is not None and self.device.type == "cpu" and self.complex_dtype == torch.complex128
        self.settings = Settings(
            complex_dtype=self.complex_dtype,
            real_dtype=self.real_dtype,
            device=self.device,
            block=block,
            chunk=chunk,
            checkpoint_bytes=checkpoint_mib * 2**20,
            cache_bytes=cache_mib * 2**20,
            prefix_bytes=prefix_mib * 2**20,
            fused=fused and numba_kernels,
        )
        self.cache = Cache()
        self.last_path: str | None = None

    def set_threads(self, n: int) -> None:
        """Use at most ``n`` threads in the numba kernels (kept in :attr:`settings`)."""
        super().set_threads(n)
        self.settings = attrs.evolve(self.settings, threads=n)

    def compiled(self, circuit: Circuit) -> CompiledCircuit:
        """``circuit`` compiled for this backend (cached)."""
        return self.cache.compiled(circuit, self.settings)

    def _blocked_program(self, circuit: Circuit):
        """The blocked kernels' program for ``circuit``, or ``None`` where they do not run it."""
        return blocked_path.program(circuit) if self.settings.fused else None

    def _fused_program(self, compiled: CompiledCircuit, n_data: int):
        """The fused kernels' program when the columns from ``n_data`` on are broadcast weights, or
        ``None`` where they do not run it."""
        return fused_path.program(compiled.plan, n_data) if self.settings.fused else None

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
        with torch_threads_for(angles.shape[0] << circuit.n_qubits):
            return self._expval(circuit, angles).to(out_device)

    def _expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """:meth:`expval` of a covered circuit, ``angles`` on the backend's device and dtype."""
        program = self._blocked_program(circuit)
        compiled = self.compiled(circuit) if program is None else None
        autograd = torch.is_grad_enabled() and angles.requires_grad
        lookup = never
        if compiled is not None and not autograd:
            lookup = FrozenLookup(self.cache, compiled, angles.shape[0], frozen.frozen_key(compiled.tables, angles))
        self.last_path = path = choose_path(program is not None, False, autograd, angles.shape[0], lookup)
        if path == "blocked":
            return blocked_path.expval(self.settings, self.cache, circuit, program, angles)
        if autograd:
            return PlanExpval.apply(angles, self.settings, self.cache, compiled)
        with torch.no_grad():
            if path == "frozen":  # the same weights again: one real matrix product per row
                return frozen.frozen_expval(compiled.tables, lookup.matrix, angles)
            return passes.expectations(self.settings, self.cache, compiled, angles)

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
        with torch_threads_for(angles.shape[0] << circuit.n_qubits):
            out = self._expval_broadcast(circuit, angles, shared)
        return out if out_device == self.device else out.to(out_device)

    def _expval_broadcast(self, circuit: Circuit, angles: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        """:meth:`expval_broadcast` of a covered circuit, both tensors on the backend's device and dtype."""
        blocked = self._blocked_program(circuit)
        compiled = self.compiled(circuit) if blocked is None else None
        rows = angles.shape[0]
        autograd = torch.is_grad_enabled() and (angles.requires_grad or shared.requires_grad)
        if compiled is not None and not autograd:
            start = compiled.plan.frozen_start
            if start is None or shared.shape[0] != circuit.n_params - start:  # not the frozen columns
                return self._expval(circuit, full_angles(angles, shared))
        program = self._fused_program(compiled, angles.shape[1]) if compiled is not None else None
        lookup = never if autograd or compiled is None else FrozenLookup(self.cache, compiled, rows, shared)
        self.last_path = path = choose_path(blocked is not None, program is not None, autograd, rows, lookup)
        if path == "blocked":
            return blocked_path.expval(self.settings, self.cache, circuit, blocked, angles, shared)
        if autograd:
            return PlanExpvalBroadcast.apply(angles, shared, self.settings, self.cache, compiled, program)
        with torch.no_grad():
            if path == "frozen":  # the shared angles are the frozen columns: they are the key
                return frozen.frozen_expval(compiled.tables, lookup.matrix, angles)
            if path == "fused":
                return program.expval(full_angles(angles, shared), self.settings.thread_count())[0]
            return passes.expectations(self.settings, self.cache, compiled, full_angles(angles, shared))

    def expval_shifted(self, circuit: Circuit, angles: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """``[2, P, B, R]`` values at every column shifted by ``±π/2``, from one ``π``-shifted run per
        column (:mod:`~hqf.backends.torch.shift`: exactly the shifted values, half the runs). Where the
        fused kernels apply to the columns read after the product state as broadcast weights, they run
        it (:mod:`~hqf.backends.torch.shift_cpu`); the blocked kernels have no shift rule."""
        if not self.plan_values or self.shots is not None or not fits(circuit):
            return super().expval_shifted(circuit, angles, chunk)
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        if angles.shape[1] == 0:
            return angles.new_zeros(2, 0, angles.shape[0], circuit.n_outputs).to(out_device)
        compiled = self.compiled(circuit)
        program = shift_cpu.broadcast_program(compiled.plan, angles) if self.settings.fused else None
        self.last_path = path = choose_path(False, program is not None, True, angles.shape[0], never)
        with torch_threads_for((angles.shape[0] << circuit.n_qubits) * (angles.shape[1] + 1)):  # a run per column
            if path == "fused":
                return shift_cpu.shifted_values(program, angles, self.settings.thread_count()).to(out_device)
            return shift.shifted_values(self.settings, self.cache, compiled, angles, chunk).to(out_device)

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
        program = self._blocked_program(circuit)
        self.last_path = path = choose_path(program is not None, False, True, angles.shape[0], never)
        with torch_threads_for(angles.shape[0] << circuit.n_qubits):
            if path == "blocked":
                values, cotangents = angles.detach().numpy(), grad_output.detach().double().numpy()
                return torch.from_numpy(program.vjp(values, cotangents, self.settings.thread_count())).to(out_device)
            compiled = self.compiled(circuit)
            return passes.adjoint(self.settings, compiled, angles, grad_output.to(self.device)).to(out_device)

    def state(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """The state vectors ``[B, 2**n]`` after ``circuit``'s gates at ``angles[B, P]`` (wire 0 the most
        significant bit of the index, as ``qml.state()``); differentiable, gate by gate."""
        self.check_supported(circuit)
        check_angles(circuit, angles)
        return plain.states(circuit, angles, self.complex_dtype, self.device).to(angles.device)

    def expval_plain(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """The same values gate by gate, with no plan: the reference the fast paths are tested against,
        and the path of every circuit a plan does not cover."""
        self.last_path = "plain"
        return plain.expval(circuit, angles, self.complex_dtype, self.device)

    def _sampled(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """``[B, R]`` shot estimates (``shots`` samples per observable from the exact distribution)."""

        def exact(expanded: Circuit, rows: torch.Tensor) -> torch.Tensor:
            if fits(expanded):
                return passes.expectations(self.settings, self.cache, self.compiled(expanded), rows)
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
