"""``HqfTorchDevice``: hqf's torch simulator behind PennyLane's ``Device`` API (``qml.device("hqf.torch")``).

Preprocessing (:meth:`HqfTorchDevice.preprocess_transforms`) defers mid-circuit measurements, decomposes
every operation hqf's vocabulary lacks with PennyLane's own ``decompose`` transform and validates wires and
measurements. Execution (:meth:`HqfTorchDevice.execute`) turns each tape into one hqf circuit
(:mod:`~hqf.backends.pennylane_device.translate`): expectation values and variances of observables with a
Pauli representation and probabilities run as one batched call of the torch backend (its fused kernels where
they apply); any other measurement, and every measurement under shots, reads the final state, simulated
gate by gate by the same backend and measured by PennyLane's own functions.

Gradients: ``backprop`` with torch parameters (the values stay in torch's autograd graph; the backend's
backward is its adjoint pass) or autograd ones (through the same graph, :mod:`~.autograd_bridge`), and
``adjoint`` (:meth:`HqfTorchDevice.compute_derivatives`, :meth:`HqfTorchDevice.compute_vjp`: the backend's
adjoint vector-Jacobian product, expectation values only).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pennylane as qml
import torch
from pennylane.devices import Device, ExecutionConfig
from pennylane.devices.modifiers import simulator_tracking, single_tape_support
from pennylane.devices.preprocess import (
    decompose,
    no_sampling,
    validate_adjoint_trainable_params,
    validate_device_wires,
    validate_measurements,
    validate_observables,
)
from pennylane.devices.qubit import measure_final_state
from pennylane.exceptions import DeviceError
from pennylane.math import Interface
from pennylane.transforms import broadcast_expand, defer_measurements
from pennylane.transforms.core import CompilePipeline

from hqf.backends.pennylane_device import autograd_bridge
from hqf.backends.pennylane_device.autograd_bridge import interface_of, is_traced
from hqf.backends.pennylane_device.translate import (
    HQF_GATES,
    PHASE_ONLY,
    Angles,
    assemble,
    circuit_of,
    gates,
    native_unitary,
    readout,
)
from hqf.backends.torch import TorchBackend, plain
from hqf.quantum.circuit import PauliWord
from hqf.quantum.gradients import expval

#: the interfaces backprop runs in: torch, autograd (through the torch graph), numpy (nothing to
#: differentiate) and ``auto`` until the parameters say otherwise
BACKPROP_INTERFACES = (Interface.TORCH, Interface.AUTOGRAD, Interface.NUMPY, Interface.AUTO)
#: the operations the device runs; everything else is decomposed into them
SUPPORTED = frozenset(HQF_GATES) | PHASE_ONLY


def supported(op) -> bool:
    """Whether ``op`` is run as it is (an hqf gate, an identity, a global phase, a barrier or a fixed
    ``QubitUnitary`` on at most three wires)."""
    return op.name in SUPPORTED or (op.name == "QubitUnitary" and native_unitary(op))


def decomposition(op) -> list:
    """PennyLane's decomposition of ``op``; an operation with a matrix and no decomposition (``BlockEncode``,
    ``DoubleExcitationPlus``, …) as a ``QubitUnitary`` of its matrix, which PennyLane decomposes further."""
    if op.has_decomposition or not op.has_matrix:
        return op.decomposition()
    return [qml.QubitUnitary(op.matrix(), wires=op.wires)]


def adjoint_measurement(mp) -> bool:
    """Whether the adjoint method differentiates ``mp``: an expectation value of an observable with a Pauli
    representation (hqf's adjoint pass reads Pauli words)."""
    return isinstance(mp, qml.measurements.ExpectationMP) and mp.obs is not None and mp.obs.pauli_rep is not None


def _interface(config: ExecutionConfig, circuit) -> Interface:
    """The config's interface; ``auto`` resolved from the circuit's parameters when there is one."""
    interface = Interface(config.interface)
    if interface == Interface.AUTO and circuit is not None:
        interface = Interface(qml.math.get_interface(*circuit.get_parameters(trainable_only=False)))
    return interface


@simulator_tracking
@single_tape_support
class HqfTorchDevice(Device):
    """hqf's torch state-vector simulator as a PennyLane device.

    Args:
        wires (int, Iterable): the number of wires or their labels (None: the wires of each circuit).
        shots (int, Sequence[int], None): default shots; PennyLane prefers ``qml.set_shots`` on the QNode.
        seed (int, None): seeds the sampler used under shots.
        threads (int, None): at most this many threads in the backend's kernels (None: its default).
        **options: options of :class:`~hqf.backends.torch.TorchBackend` (``dtype="complex128"`` is the
            default and what the gradients are tested in; ``fused``, ``block``, ``chunk``, …).

    Raises:
        ValueError: for a backend option :class:`~hqf.backends.torch.TorchBackend` refuses.

    Example:
        >>> import pennylane as qml
        >>> dev = qml.device("hqf.torch", wires=2)
        >>> @qml.qnode(dev)
        ... def circuit(x):
        ...     qml.RX(x, wires=0)
        ...     qml.CNOT(wires=[0, 1])
        ...     return qml.expval(qml.Z(1))
        >>> float(circuit(0.0))
        1.0
    """

    name = "hqf.torch"

    def __init__(self, wires=None, shots=None, seed=None, threads=None, **options) -> None:
        super().__init__(wires=wires, shots=shots)
        self._rng = np.random.default_rng(seed)
        self.backend = TorchBackend(**options)
        if threads is not None:
            self.backend.set_threads(threads)

    # --- what the device supports -------------------------------------------------------------------------

    def supports_derivatives(self, execution_config: ExecutionConfig | None = None, circuit=None) -> bool:
        """``backprop`` with torch, autograd or numpy parameters (any order), ``adjoint`` for expectation
        values (first order); neither under shots."""
        if execution_config is None:
            return True
        if circuit is not None and circuit.shots:
            return False
        method = execution_config.gradient_method
        if method in ("backprop", "best") and _interface(execution_config, circuit) in BACKPROP_INTERFACES:
            return True
        if method in ("adjoint", "best") and execution_config.derivative_order == 1:
            return circuit is None or all(adjoint_measurement(mp) for mp in circuit.measurements)
        return False

    def supports_vjp(self, execution_config: ExecutionConfig | None = None, circuit=None) -> bool:
        """Where the adjoint method applies (:meth:`supports_derivatives`)."""
        config = execution_config or ExecutionConfig(gradient_method="adjoint")
        return config.gradient_method == "adjoint" and self.supports_derivatives(config, circuit)

    def setup_execution_config(self, config: ExecutionConfig | None = None, circuit=None) -> ExecutionConfig:
        """Resolve ``best`` (backprop, adjoint with JAX) and the mid-circuit measurement method
        (deferred, the only one)."""
        config = config or ExecutionConfig()
        method = config.gradient_method
        if method == "best":
            method = "backprop" if _interface(config, circuit) in BACKPROP_INTERFACES else "adjoint"
        mcm = config.mcm_config
        if mcm.mcm_method not in (None, "deferred"):
            raise DeviceError(f"{self.name} runs mid-circuit measurements deferred; got mcm_method={mcm.mcm_method!r}")
        if mcm.postselect_mode not in (None, "hw-like", "fill-shots"):
            raise DeviceError(f"{self.name} does not support postselect_mode={mcm.postselect_mode!r}")
        updates = {
            "gradient_method": method,
            "mcm_config": replace(mcm, mcm_method="deferred"),
        }
        if config.use_device_gradient is None:
            updates["use_device_gradient"] = method in ("backprop", "adjoint")
        if config.use_device_jacobian_product is None:
            updates["use_device_jacobian_product"] = method == "adjoint"
        if config.grad_on_execution is None:
            updates["grad_on_execution"] = False
        return replace(config, **updates)

    def preprocess_transforms(self, execution_config: ExecutionConfig | None = None) -> CompilePipeline:
        """Defer mid-circuit measurements, decompose into hqf's gates, validate wires and measurements;
        for ``adjoint``, also: no shots, Pauli observables, expectation values, no broadcasting."""
        config = execution_config or ExecutionConfig()
        program = CompilePipeline()
        program.add_transform(defer_measurements, allow_postselect=False)
        program.add_transform(
            decompose,
            stopping_condition=supported,
            decomposer=decomposition,
            skip_initial_state_prep=False,
            device_wires=self.wires,
            target_gates=set(SUPPORTED),
            name=self.name,
        )
        program.add_transform(validate_device_wires, self.wires, name=self.name)
        program.add_transform(validate_measurements, name=self.name)
        if config.gradient_method == "backprop":
            program.add_transform(no_sampling, name=f"backprop + {self.name}")
        if config.gradient_method == "adjoint":
            name = f"adjoint + {self.name}"
            program.add_transform(no_sampling, name=name)
            program.add_transform(validate_observables, lambda obs: obs.pauli_rep is not None, name=name)
            program.add_transform(validate_measurements, analytic_measurements=adjoint_measurement, name=name)
            program.add_transform(broadcast_expand)
            program.add_transform(validate_adjoint_trainable_params)
        return program

    # --- execution ----------------------------------------------------------------------------------------

    def execute(self, circuits, execution_config: ExecutionConfig | None = None):
        """The results of each tape: torch tensors for torch parameters, autograd arrays for traced autograd
        parameters (differentiated through the torch graph, :mod:`~.autograd_bridge`), else numpy. Tapes of
        plain numbers whose hqf circuits are equal (e.g. a parameter-shift gradient's) run as one batch: one
        backend call for all their rows."""
        results: list = [None] * len(circuits)
        batches: dict = {}
        for i, tape in enumerate(circuits):
            tape = standard_wires(tape)
            interface = interface_of(tape)
            if interface == "torch":
                results[i] = self._torch_result(tape)
                continue
            if interface == "autograd" and any(map(is_traced, tape.get_parameters(trainable_only=False))):
                results[i] = autograd_bridge.run(tape, self._torch_result)
                continue
            with torch.no_grad():
                operations, angles, _ = gates(tape)
                read = None if tape.shots else readout(tape.measurements, len(tape.wires))
                if read is None:
                    state = self._state(tape, operations, angles).numpy()
                    results[i] = measure_final_state(tape, state, tape.batch_size is not None, rng=self._rng)
                    continue
            circuit = circuit_of(len(tape.wires), operations, read.observables())
            batches.setdefault(circuit, []).append((i, tape, angles, read))
        with torch.no_grad():
            for circuit, members in batches.items():
                if len(members) == 1:  # the broadcast weights stay shared (the fused kernels' case)
                    angles = members[0][2]
                    out = expval(self.backend, circuit, angles.data, gradient="backprop", shared=angles.shared)
                else:
                    rows = torch.cat([angles.full() for _, _, angles, _ in members])
                    out = expval(self.backend, circuit, rows, gradient="backprop")
                parts = out.split([angles.data.shape[0] for _, _, angles, _ in members])
                for (i, tape, _, read), part in zip(members, parts):
                    results[i] = _to_numpy(_result(assemble(part, read, tape.batch_size is not None)))
        return tuple(results)

    def _torch_result(self, tape):
        """One tape's result as torch tensors in torch's autograd graph (``tape`` on standard wires)."""
        with torch.enable_grad():
            operations, angles, _ = gates(tape)
            read = None if tape.shots else readout(tape.measurements, len(tape.wires))
            if read is None:
                state = self._state(tape, operations, angles)
                return measure_final_state(tape, state, tape.batch_size is not None, rng=self._rng)
            circuit = circuit_of(len(tape.wires), operations, read.observables())
            out = expval(self.backend, circuit, angles.data, gradient="backprop", shared=angles.shared)
            return _result(assemble(out, read, tape.batch_size is not None))

    def _state(self, tape, operations, angles: Angles) -> torch.Tensor:
        """The final state, ``[2]*n`` (``[B] + [2]*n`` when broadcast), gate by gate on the backend's plain
        path (global phases included)."""
        circuit = circuit_of(len(tape.wires), operations, (PauliWord.z(0),))  # a circuit needs an observable
        full = angles.full()
        n = circuit.n_qubits
        state = plain.initial_state(n, full.shape[0], torch.complex128, torch.device("cpu"))
        for op in circuit.operations:
            state = plain.apply(state, n, op, full)
        for phase in angles.phases:
            state = state * (phase.reshape(-1, 1) if phase.ndim else phase)
        n_wires = len(tape.wires)
        if n_wires == 0:  # a circuit on no wires: hqf simulated one idle qubit
            state = state[:, :1]
        state = state.reshape(full.shape[0], *[2] * n_wires)
        if tape.batch_size is None:
            state = state[0]
        return state

    # --- adjoint derivatives ------------------------------------------------------------------------------

    def _jacobians(self, circuits) -> list[np.ndarray]:
        """``[M, T]`` for each tape: its expectation values' derivatives w.r.t. its trainable parameters. Tapes
        with equal hqf circuits share one adjoint pass of the backend over ``M`` copies of each tape's angles
        (one cotangent per copy)."""
        prepared, batches = [], {}
        with torch.no_grad():
            for i, tape in enumerate(circuits):
                tape = standard_wires(tape)
                operations, angles, columns = gates(tape)
                read = readout(tape.measurements, len(tape.wires))
                circuit = circuit_of(len(tape.wires), operations, read.observables())
                position = {word: r for r, word in enumerate(read.words)}
                cotangents = torch.zeros(len(read.plan), circuit.n_outputs, dtype=torch.float64)
                for m, (_, terms) in enumerate(read.plan):
                    for coefficient, key in terms:
                        if key:
                            cotangents[m, position[key]] += float(coefficient)
                prepared.append((tape, columns))
                batches.setdefault(circuit, []).append((i, angles.full().expand(len(read.plan), -1), cotangents))
            by_column: list = [None] * len(circuits)
            for circuit, members in batches.items():
                rows = torch.cat([full for _, full, _ in members]).contiguous()
                products = self.backend.vjp(circuit, rows, torch.cat([c for _, _, c in members])).numpy()
                parts = np.split(products, np.cumsum([len(c) for _, _, c in members])[:-1])
                for (i, _, _), part in zip(members, parts):
                    by_column[i] = part  # [M, P]
        jacobians = []
        for (tape, columns), products in zip(prepared, by_column):
            jac = np.zeros((products.shape[0], len(tape.trainable_params)))
            for t, index in enumerate(tape.trainable_params):
                column = columns[index] if index < len(columns) else None
                if column is not None:
                    jac[:, t] = products[:, column]
            jacobians.append(jac)
        return jacobians

    def compute_derivatives(self, circuits, execution_config: ExecutionConfig | None = None):
        """The Jacobian of each tape by the adjoint method, in PennyLane's shape (one measurement: a tuple
        over the parameters; one parameter: a tuple over the measurements; one of each: a value)."""
        return tuple(_jacobian_shape(jac) for jac in self._jacobians(circuits))

    def compute_vjp(self, circuits, cotangents, execution_config: ExecutionConfig | None = None):
        """``cotangents · Jacobian`` of each tape by the adjoint method, one value per trainable parameter."""
        out = []
        for jac, cotangent in zip(self._jacobians(circuits), cotangents):
            dy = np.asarray(qml.math.unwrap(cotangent), dtype=np.float64).reshape(jac.shape[0])
            out.append(tuple(np.array(value) for value in dy @ jac))
        return tuple(out)


def standard_wires(tape):
    """``tape`` on the wires ``0..n−1`` (PennyLane's ``map_to_standard_wires``, skipped where they already are)."""
    return tape if tape.wires.labels == tuple(range(len(tape.wires))) else tape.map_to_standard_wires()


def _jacobian_shape(jac: np.ndarray):
    """PennyLane's Jacobian shape for ``jac[M, T]``: singleton axes dropped, the rest nested tuples."""
    squeezed = np.squeeze(jac)
    if squeezed.ndim == 0:
        return np.array(squeezed)
    if squeezed.ndim == 1:
        return tuple(np.array(j) for j in squeezed)
    return tuple(tuple(np.array(j) for j in row) for row in squeezed)


def _result(values: list):
    """A tape's result: its one measurement's value, or a tuple of them."""
    return values[0] if len(values) == 1 else tuple(values)


def _to_numpy(result):
    """A result with every torch tensor as a numpy array."""
    if isinstance(result, tuple):
        return tuple(_to_numpy(r) for r in result)
    if isinstance(result, torch.Tensor):
        return result.detach().numpy()
    return result
