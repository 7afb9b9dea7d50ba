"""The quantum plugin interfaces: Backend, Encoder, Ansatz (the learning ones: :mod:`hqf.registry.contracts`).

Each has one required method; optional abilities are declared as data (``Capabilities``), never
discovered by trial. Plugins subclass these and register the class through a hook (see hookspecs).
"""

from __future__ import annotations

import abc
import importlib.util
import math
from typing import ClassVar

import attrs
import torch

from hqf.errors import UnsupportedCircuitError
from hqf.quantum.circuit import BASE_GATES, DECLARABLE_GATES, OBSERVABLE_KINDS, Circuit, Operation
from hqf.quantum.gates import SHIFTS, full_angles, recipe_values, shift_coefficients, shifted_values
from hqf.quantum.noise import NOISE_FEATURES

DTYPES: dict[str, tuple[torch.dtype, torch.dtype]] = {
    "complex128": (torch.complex128, torch.float64),
    "complex64": (torch.complex64, torch.float32),
}
GRADIENTS = ("backprop", "adjoint", "parameter-shift")


@attrs.frozen
class Availability:
    """Whether a plugin can run on this machine; if not, ``reason`` says why and how to fix it."""

    ok: bool
    reason: str = ""

    @classmethod
    def missing_package(cls, module: str, extra: str | None = None, install: str | None = None) -> Availability:
        """Unavailable for want of ``module``; the hint is ``install`` when the plugin gives one (a third
        party: ``"pip install my-backend"``), else ``pip install 'hqf[extra]'``, else ``pip install module``."""
        hint = install or (f"pip install 'hqf[{extra}]'" if extra else f"pip install {module}")
        return cls(False, f"Python package '{module}' is not installed ({hint})")

    @classmethod
    def of_modules(cls, modules: tuple[str, ...], extra: str | None = None, install: str | None = None) -> Availability:
        """Available when every module can be found; nothing is imported (cheap for ``hqf list``).
        ``extra`` and ``install`` give the install hint as in :meth:`missing_package`."""
        for module in modules:
            if importlib.util.find_spec(module) is None:
                return cls.missing_package(module, extra, install)
        return cls(True)


@attrs.frozen
class Capabilities:
    """What a backend declares it supports."""

    #: complex state dtypes it simulates in (``complex128``, ``complex64``)
    dtypes: frozenset[str] = attrs.field(default=frozenset({"complex128"}), converter=frozenset)
    #: torch device types it runs on (``cpu``, ``cuda``)
    devices: frozenset[str] = attrs.field(default=frozenset({"cpu"}), converter=frozenset)
    max_qubits: int = 20
    #: native gradients besides the core's parameter-shift rule: ``backprop`` (the result of
    #: ``expval`` is differentiable by torch autograd) and/or ``adjoint`` (``vjp`` is implemented)
    gradients: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    #: results are exact expectation values (False when estimated from shots)
    exact: bool = True
    #: it runs some noise (a :class:`~hqf.quantum.noise.NoiseModel`)
    noise: bool = False
    #: its noisy values are Monte Carlo estimates of the density-matrix values (sampled noise branches,
    #: e.g. trajectories), whatever ``exact`` says about shots
    estimates: bool = False
    #: the noise it runs: channel names of ``hqf.quantum.noise.CHANNELS``, and ``readout``
    channels: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    #: the gate names it runs (``hqf.quantum.circuit.GATES``); by default the original seven
    gates: frozenset[str] = attrs.field(default=BASE_GATES, converter=frozenset)
    #: the observable kinds it reads: ``pauli``, ``hamiltonian``, ``probs``; by default Pauli words only
    observables: frozenset[str] = attrs.field(default=frozenset({"pauli"}), converter=frozenset)

    @gates.validator
    def _known_gates(self, attribute, value) -> None:
        if not value <= DECLARABLE_GATES:
            unknown = sorted(value - DECLARABLE_GATES)
            raise ValueError(f"'gates' must name gates of hqf.quantum.circuit.GATES or QubitUnitary (got {unknown})")

    @channels.validator
    def _known_channels(self, attribute, value) -> None:
        if not value <= set(NOISE_FEATURES):
            raise ValueError(f"'channels' must be among {NOISE_FEATURES} (got {sorted(value - set(NOISE_FEATURES))})")

    @observables.validator
    def _known_kinds(self, attribute, value) -> None:
        if not value <= set(OBSERVABLE_KINDS):
            raise ValueError(
                f"'observables' must be among {OBSERVABLE_KINDS} (got {sorted(value - set(OBSERVABLE_KINDS))})"
            )


def check_supported(backend: Backend, circuit: Circuit) -> None:
    """Raise :class:`~hqf.errors.UnsupportedCircuitError` (naming the gate, observable or width and the backend)
    unless ``backend`` runs as many qubits as ``circuit`` has and declares every gate and observable kind it uses."""
    caps = backend.capabilities
    if circuit.n_qubits > caps.max_qubits:
        raise UnsupportedCircuitError(
            backend.name, "circuits of", f"{circuit.n_qubits} qubits", (), f"it runs at most {caps.max_qubits} qubits"
        )
    if circuit.gate_names <= caps.gates and circuit.observable_kinds <= caps.observables:
        return
    for op in circuit.operations:
        if op.gate not in caps.gates:
            raise UnsupportedCircuitError(backend.name, "gate", op.gate, caps.gates)
    for obs in circuit.observables:
        if obs.kind not in caps.observables:
            raise UnsupportedCircuitError(backend.name, "observable", obs.kind, caps.observables)


class Backend(abc.ABC):
    """A simulator: given a circuit and a batch of angles, return expectation values.

    Subclasses set ``name`` and ``capabilities`` and implement :meth:`expval`. The constructor takes
    keyword options only; ``dtype`` and ``device`` are common to all backends.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the thread count given to :meth:`set_threads` (None: the simulator's own default)
    threads: int | None = None
    #: its values lie in each observable's range (:mod:`hqf.quantum.outputs`); False for values that
    #: may go beyond it (error-mitigated extrapolations): then only their shape and finiteness are checked
    bounded: ClassVar[bool] = True

    def __init__(self, *, dtype: str = "complex128", device: str = "cpu") -> None:
        caps = self.capabilities
        if dtype not in DTYPES:
            raise ValueError(f"'dtype' must be one of {sorted(DTYPES)} (got {dtype!r})")
        if dtype not in caps.dtypes:
            raise ValueError(f"backend {self.name!r} supports dtypes {sorted(caps.dtypes)} (got {dtype!r})")
        device_type = torch.device(device).type
        if device_type not in caps.devices:
            raise ValueError(f"backend {self.name!r} runs on {sorted(caps.devices)} (got {device!r})")
        self.dtype = dtype
        self.complex_dtype, self.real_dtype = DTYPES[dtype]
        self.device = torch.device(device)

    @classmethod
    def availability(cls) -> Availability:
        """Whether this backend can run here. Must be cheap and must not raise."""
        return Availability(True)

    def set_threads(self, n: int) -> None:
        """Use at most ``n`` threads in the simulator's own kernels; a run calls it with its thread count
        (``hqf.learn.process.runtime``). A simulator with its own thread pool passes ``n`` on; the default
        records it in :attr:`threads` (torch's own operations follow ``torch.set_num_threads``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"'n' must be an integer >= 1 (got {n!r})")
        self.threads = n

    def fix_randomness(self, key: int | None) -> None:  # noqa: B027 — an optional hook, a no-op by default
        """Until called again, every call draws its random branches from ``key`` (a non-negative integer):
        row ``r`` of a call gets the same draws whatever the batch size, so calls under one key see common
        random numbers; None: fresh draws each call. This default, for a backend that draws nothing, does
        nothing."""

    @abc.abstractmethod
    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """Expectation values ``[B, R]`` of ``circuit.observables`` for each row of ``angles[B, P]``.

        The result has the real dtype matching ``self.dtype`` and lives on ``angles.device``.
        """

    def expval_broadcast(self, circuit: Circuit, angles: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        """:meth:`expval` of ``[angles, shared]``: ``shared[S]`` (the ansatz weights) is appended to every
        row of ``angles[B, P − S]``. Differentiable w.r.t. both when :meth:`expval` is (backprop).

        This default builds the full angle matrix; a backend may override it to use that the shared
        angles' gradient is only ever wanted summed over the rows.
        """
        return self.expval(circuit, full_angles(angles, shared))

    def expval_shifted(self, circuit: Circuit, angles: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """``[2, P, B, R]``: the expectation values with column ``p`` of ``angles`` shifted by ``+π/2``
        (``[0, p]``) and by ``−π/2`` (``[1, p]``): what the parameter-shift rule evaluates.

        This default stacks all ``2·P·B`` shifted rows into :meth:`expval` calls of at most ``chunk``
        rows. A backend may override it with any method that gives the same values exactly.
        """
        if angles.shape[1] == 0:
            return angles.new_zeros(2, 0, angles.shape[0], circuit.n_outputs)
        with torch.no_grad():
            return shifted_values(lambda rows: self.expval(circuit, rows), angles, chunk)

    def expval_shifts(self, circuit: Circuit, angles: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """``[S, P, B, R]``: the values with column ``p`` shifted by ``hqf.quantum.gates.SHIFTS[s]``
        (``±π/2, ±3π/2``) wherever column ``p``'s gate recipe (``SHIFT_RULES``) has that shift, zero
        elsewhere: what the general (e.g. four-term) parameter-shift rule evaluates.

        This default stacks the needed shifted rows into :meth:`expval` calls of at most ``chunk`` rows.
        """
        coefficients = shift_coefficients(circuit.column_gates)
        if angles.shape[1] == 0:
            return angles.new_zeros(len(SHIFTS), 0, angles.shape[0], circuit.n_outputs)
        with torch.no_grad():
            return recipe_values(lambda rows: self.expval(circuit, rows), angles, coefficients, chunk)

    def check_supported(self, circuit: Circuit) -> None:
        """Refuse (:class:`~hqf.errors.UnsupportedCircuitError`) a circuit outside the declared vocabulary."""
        check_supported(self, circuit)

    def vjp(self, circuit: Circuit, angles: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        """Native vector-Jacobian product ``[B, P]`` (only for backends declaring ``adjoint``)."""
        raise NotImplementedError(f"backend {self.name!r} has no native vector-Jacobian product")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} dtype={self.dtype} device={self.device}>"


def check_sizes(**sizes: int) -> None:
    """Raise ValueError for the first of ``sizes`` (name -> value) below 1."""
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"'{name}' must be >= 1 (got {value})")


class Encoder(torch.nn.Module, abc.ABC):
    """Maps classical features ``x[B, F]`` to the angles of a data-encoding block.

    ``operations()`` gives the block's gates with parameter columns numbered from 0; ``forward(x)``
    returns those columns, ``[B, n_angles]``, as torch functions of ``x`` (so gradients reach ``x``).
    """

    name: ClassVar[str]

    def __init__(self, in_features: int, n_qubits: int) -> None:
        super().__init__()
        check_sizes(in_features=in_features, n_qubits=n_qubits)
        self.in_features, self.n_qubits = in_features, n_qubits

    @abc.abstractmethod
    def operations(self) -> tuple[Operation, ...]:
        """The encoding block; parameterized gates read columns 0..n_angles-1."""

    @property
    def n_angles(self) -> int:
        return sum(op.param is not None for op in self.operations())

    #: True for an encoder that re-uploads the data: once :meth:`interleave` has been called with the
    #: ansatz's layer count ``L``, :meth:`operations` is ``L`` equal blocks (block ``l`` reading the
    #: ``l``-th ``n_angles / L`` columns), which :class:`~hqf.quantum.layer.QuantumLayer` interleaves
    #: with the ansatz's layers: block 1, layer 1, block 2, layer 2, …
    interleaved: ClassVar[bool] = False

    def interleave(self, n_layers: int) -> None:
        """Make one encoding block per ansatz layer (``interleaved`` encoders; the quantum layer calls it)."""
        raise NotImplementedError(f"encoder {self.name!r} is not interleaved with the ansatz layers")


@attrs.frozen
class Ansatz(abc.ABC):
    """A trainable circuit family named by a spec such as ``hea8x6`` (``name`` + qubits + layers)."""

    name: ClassVar[str]
    n_qubits: int = attrs.field(validator=attrs.validators.ge(1))
    n_layers: int = attrs.field(validator=attrs.validators.ge(1))

    @property
    def spec(self) -> str:
        return f"{self.name}{self.n_qubits}x{self.n_layers}"

    @staticmethod
    @abc.abstractmethod
    def shape(n_qubits: int, n_layers: int) -> tuple[int, ...]:
        """The shape of the weight tensor this ansatz reads."""

    @abc.abstractmethod
    def operations(self) -> tuple[Operation, ...]:
        """The gates; weight ``w.flatten()[k]`` is parameter column ``k``."""

    def layer_operations(self, layer: int) -> tuple[Operation, ...]:
        """The gates of layer ``layer`` (``0 ≤ layer < n_layers``), reading the same columns as in
        :meth:`operations`; the layers in order make up :meth:`operations`.

        By default :meth:`operations` cut into ``n_layers`` parts of equal length (right for hea, basic
        and sel); an ansatz whose layers differ in length overrides it.
        """
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"'layer' must be in 0..{self.n_layers - 1} (got {layer})")
        ops = self.operations()
        if len(ops) % self.n_layers:
            raise NotImplementedError(
                f"ansatz {self.spec}: {len(ops)} gates do not split into {self.n_layers} equal layers; "
                "it must define layer_operations()"
            )
        size = len(ops) // self.n_layers
        return ops[layer * size : (layer + 1) * size]

    @property
    def n_weights(self) -> int:
        return math.prod(self.shape(self.n_qubits, self.n_layers))

    def init_weights(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Initial weights, uniform in [0, 2π), float64."""
        shape = self.shape(self.n_qubits, self.n_layers)
        return torch.rand(shape, generator=generator, dtype=torch.float64) * (2 * math.pi)
