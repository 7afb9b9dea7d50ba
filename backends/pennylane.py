"""``pennylane``: runs hqf circuits on any installed PennyLane device (``default.qubit``, ``lightning.qubit``, ...).

The circuit is compiled to one :class:`pennylane.tape.QuantumScript` whose parameterized gates hold a whole
column of the angle matrix, so the batch runs as one broadcast tape (``default.qubit`` simulates it in one
vectorized pass; ``lightning.qubit`` expands it into one tape per row inside the same ``qml.execute`` call).

Wire order: PennyLane's wire 0 is the most significant bit of a basis index, as in hqf; wire ``w`` maps to
PennyLane wire ``w`` with no conversion (tests/test_backend_pennylane.py checks it on the state vector).

Every gate of the vocabulary is one PennyLane operation (:data:`PENNYLANE_GATES`); the tape measures Pauli
words only, and Hamiltonians and probabilities are linear maps of them (:mod:`hqf.backends.readout`).
With ``shots=N`` the device samples (``exact=False``, no native gradient, no ``Probs``).

Native gradients, declared per instance from the device's own support:
- ``backprop`` (``default.qubit``): when the angles need a gradient, the tape holds the torch tensor's
  columns and the device simulates with torch operations, so autograd (and double backward) runs
  through it — for ``default.qubit`` this is several times faster than adjoint or the shift rule;
- ``adjoint`` (``lightning.qubit``, also ``default.qubit``): :meth:`PennyLaneBackend.vjp` builds one
  tape per row and calls the device's ``compute_vjp`` once, in float64 throughout (PennyLane's torch
  path casts lightning's Python-float results, and so the cotangent, to float32).
"""

from __future__ import annotations

import contextlib
import functools
import operator
from typing import Any

import attrs
import numpy as np
import torch

from hqf.backends.readout import readout
from hqf.errors import ConfigError
from hqf.quantum.circuit import UNITARY, Circuit, PauliWord
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.registry.hookspecs import hookimpl

#: hqf gate -> PennyLane operation (same wire order: control first; Ising gates are exp(−iθ P⊗P/2))
PENNYLANE_GATES = {
    "RX": "RX", "RY": "RY", "RZ": "RZ", "PhaseShift": "PhaseShift", "H": "Hadamard", "X": "PauliX",
    "Y": "PauliY", "Z": "PauliZ", "S": "S", "T": "T", "SX": "SX", "CNOT": "CNOT", "CZ": "CZ", "CY": "CY",
    "SWAP": "SWAP", "RXX": "IsingXX", "RYY": "IsingYY", "RZZ": "IsingZZ", "CRX": "CRX", "CRY": "CRY",
    "CRZ": "CRZ", "CPhase": "ControlledPhaseShift", "Toffoli": "Toffoli", "CSWAP": "CSWAP",
}  # fmt: skip
_PAULIS = {"X": "PauliX", "Y": "PauliY", "Z": "PauliZ"}
OBSERVABLES = frozenset({"pauli", "hamiltonian", "probs"})


def gate_operation(qml, op, angles: Any):
    """The PennyLane operation of hqf operation ``op``; a parametric one reads ``angles[..., op.param]``."""
    if op.matrix is not None:
        return qml.QubitUnitary(op.unitary, wires=list(op.wires))
    cls = getattr(qml, PENNYLANE_GATES[op.gate])
    if op.param is None:
        return cls(wires=list(op.wires))
    return cls(angles[..., op.param], wires=list(op.wires))


def _observable(qml, word: PauliWord):
    """The PennyLane operator of a Pauli word, e.g. ``PauliZ(0) @ PauliX(3)``."""
    factors = [getattr(qml, _PAULIS[p])(w) for w, p in word.terms]
    return functools.reduce(operator.matmul, factors)


def build_tape(circuit: Circuit, angles: Any, shots: int | None = None):
    """The circuit as one ``QuantumScript``: a gate reads ``angles[..., op.param]`` (numpy or torch); it
    measures the Pauli words of :func:`hqf.backends.readout.readout` (Hamiltonians and probabilities
    are linear maps of those).

    A matrix ``angles[B, P]`` gives a broadcast tape (batch size ``B``); a row ``angles[P]`` a plain one.
    """
    import pennylane as qml

    ops = [gate_operation(qml, op, angles) for op in circuit.operations]
    measurements = [qml.expval(_observable(qml, word)) for word in readout(circuit).words]
    return qml.tape.QuantumScript(ops, measurements, shots=shots)


def _as_rows(result: Any, batch: int, n_words: int, stack, broadcast) -> Any:
    """PennyLane's result (one value, or a tuple of ``M`` values, each ``()`` or ``(B,)``) as ``[B, M]``."""
    columns = result if n_words > 1 else (result,)
    if len(columns) != n_words:
        raise RuntimeError(f"PennyLane returned {len(columns)} results for {n_words} observables")
    return stack([broadcast(c, batch) for c in columns], 1)


class PennyLaneBackend(Backend):
    """Any installed PennyLane device; options ``pl_device`` (a device name), ``dtype``, ``omp_threads``,
    ``shots`` (None: exact; N: sampled by the device, ``exact=False``, no native gradient) and ``seed``
    (seeds the device's sampler).

    ``complex64`` is available on the ``lightning.*`` devices (their ``c_dtype``). Native gradients are
    declared per instance from what the chosen device supports: ``backprop`` where it differentiates
    torch parameters itself (``default.qubit``), ``adjoint`` where it has adjoint differentiation
    (``default.qubit``, ``lightning.qubit``).
    """

    name = "pennylane"
    description = "PennyLane devices (default.qubit, lightning.qubit, ...): broadcast tapes, backprop/adjoint"
    capabilities = Capabilities(
        dtypes={"complex128", "complex64"},
        max_qubits=26,
        gradients={"backprop", "adjoint"},
        gates=frozenset(PENNYLANE_GATES) | {UNITARY},
        observables=OBSERVABLES,
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability.of_modules(("pennylane",), "pennylane")

    def __init__(
        self,
        *,
        dtype: str = "complex128",
        device: str = "cpu",
        pl_device: str = "default.qubit",
        omp_threads: int | None = None,
        shots: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
            raise ConfigError(f"'shots' must be None or an integer >= 1 (got {shots!r})")
        self.shots = shots
        bad_threads = isinstance(omp_threads, bool) or not isinstance(omp_threads, (int, type(None)))
        if bad_threads or (omp_threads is not None and omp_threads < 1):
            raise ConfigError(f"'omp_threads' must be None or an integer >= 1 (got {omp_threads!r})")
        self.omp_threads = omp_threads
        import pennylane as qml
        from pennylane.devices import ExecutionConfig

        self._qml = qml
        self.pl_device = pl_device
        self._device_options: dict[str, Any] = {}
        if dtype == "complex64":
            if not pl_device.startswith("lightning."):
                raise ConfigError(f"dtype 'complex64' needs a lightning.* PennyLane device (got {pl_device!r})")
            self._device_options["c_dtype"] = np.complex64
        if shots is not None:  # the device's sampler, seeded once: a fresh backend replays exactly
            self._device_options["seed"] = np.random.default_rng(seed)
        self._devices: dict[int, Any] = {}
        probe = self._device_for(1)
        native = set()
        torch_backprop = ExecutionConfig(gradient_method="backprop", interface="torch")
        if dtype == "complex128" and probe.supports_derivatives(torch_backprop):
            native.add("backprop")
        if probe.supports_derivatives(ExecutionConfig(gradient_method="adjoint")):
            native.add("adjoint")
        observables = OBSERVABLES
        if shots is not None:  # sampled values: estimates, differentiated by the core's shift rule only
            native = set()
            # the devices may sample each Pauli word separately: probabilities rebuilt from words would
            # not be frequencies of one set of shots (they can come out negative), so none are offered
            observables = OBSERVABLES - {"probs"}
        # declared per instance: the chosen device (and shots) decide which native gradients exist
        self.capabilities = attrs.evolve(
            type(self).capabilities, dtypes={dtype}, gradients=native, exact=shots is None, observables=observables
        )

    def _device_for(self, n_qubits: int):
        """One device per qubit count, created on first use."""
        if n_qubits not in self._devices:
            try:
                self._devices[n_qubits] = self._qml.device(self.pl_device, wires=n_qubits, **self._device_options)
            except Exception as exc:  # DeviceError, ImportError from a device plugin, bad options
                raise ConfigError(f"PennyLane device {self.pl_device!r} cannot be created: {exc}") from None
        return self._devices[n_qubits]

    def _threads(self, circuit: Circuit):
        """A context limiting OpenMP threads while PennyLane runs ``circuit``.

        ``omp_threads=None`` means one thread below 16 qubits (a state of at most 1 MiB, where
        lightning's OpenMP loops cost more in synchronisation than they save: 64 rows of hea8x6 took
        8.3 s with two threads on a busy two-core machine and 0.57 s with one) and no limit above.
        """
        limit = self.omp_threads if self.omp_threads is not None else (1 if circuit.n_qubits < 16 else None)
        if limit is None:
            return contextlib.nullcontext()
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # threadpoolctl comes with scikit-learn; without it, run unlimited
            return contextlib.nullcontext()
        return threadpool_limits(limits=limit, user_api="openmp")

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        with self._threads(circuit):
            return self._expval(circuit, angles)

    def _expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        self.check_supported(circuit)
        batch, words = angles.shape[0], readout(circuit)
        device = self._device_for(circuit.n_qubits)
        if "backprop" in self.capabilities.gradients and angles.requires_grad and torch.is_grad_enabled():
            # torch parameters: the device's own differentiable simulation keeps the autograd graph
            tape = build_tape(circuit, angles.to(device="cpu", dtype=torch.float64))
            (result,) = self._qml.execute([tape], device, diff_method="backprop")
            rows = _as_rows(
                result,
                batch,
                len(words.words),
                torch.stack,
                lambda c, b: torch.as_tensor(c, dtype=torch.float64).expand(b),
            )
            rows = rows if words.identity else words.apply_torch(rows)
            return rows.to(dtype=self.real_dtype, device=angles.device)
        values = angles.detach().to(device="cpu", dtype=torch.float64).numpy()
        (result,) = self._qml.execute([build_tape(circuit, values, self.shots)], device, diff_method=None)
        rows = _as_rows(
            result,
            batch,
            len(words.words),
            np.stack,
            lambda c, b: np.broadcast_to(np.asarray(c, dtype=np.float64), (b,)),
        )
        rows = rows if words.identity else words.apply(rows)
        return torch.as_tensor(rows, dtype=self.real_dtype, device=angles.device)

    def vjp(self, circuit: Circuit, angles: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        """Adjoint differentiation on the device: one tape per row, one ``compute_vjp`` call."""
        from pennylane.devices import ExecutionConfig

        if "adjoint" not in self.capabilities.gradients:
            raise NotImplementedError(f"PennyLane device {self.pl_device!r} has no adjoint differentiation")
        batch, n_params = angles.shape
        if n_params == 0:
            return torch.zeros_like(angles)
        device = self._device_for(circuit.n_qubits)
        config = device.setup_execution_config(ExecutionConfig(gradient_method="adjoint"))
        values = angles.detach().to(device="cpu", dtype=torch.float64).numpy()
        # a QubitUnitary's matrix is a tape parameter too, but never a trainable one
        bearing = [op for op in circuit.operations if op.param is not None or op.matrix is not None]
        trainable = [k for k, op in enumerate(bearing) if op.param is not None]
        tapes = [build_tape(circuit, row) for row in values]
        for tape in tapes:
            tape.trainable_params = trainable
        tapes, _ = device.preprocess_transforms(config)(tapes)
        # default.qubit 0.45's adjoint pass raises IndexError when the tape's wires are not in order 0…n−1
        # (e.g. the first gate on wire 2 and the observable alone on wire 1); relabelling the wires in the
        # order the tape meets them changes neither values nor derivatives
        tapes = [tape.map_to_standard_wires() for tape in tapes]
        if len(tapes) != batch or any(len(t.trainable_params) != n_params for t in tapes):
            raise NotImplementedError(
                f"PennyLane device {self.pl_device!r} rewrites the circuit for adjoint differentiation "
                f"({len(tapes)} tapes for {batch} rows); use gradient='parameter-shift'"
            )
        # the outputs are offset + matrix @ ⟨words⟩: the words' cotangent is grad_output @ matrix
        cotangent = grad_output.detach().to(device="cpu", dtype=torch.float64).numpy() @ readout(circuit).matrix
        if cotangent.shape[1] == 1:
            cotangents = [row[0] for row in cotangent]
        else:
            cotangents = [tuple(row) for row in cotangent]
        with self._threads(circuit):
            products = device.compute_vjp(tapes, cotangents, config)
        by_gate = np.stack([np.asarray(p, dtype=np.float64).reshape(n_params) for p in products])
        grad = np.empty_like(by_gate)  # tape parameters come in gate order; put them in column order
        grad[:, [op.param for op in circuit.operations if op.param is not None]] = by_gate
        return torch.as_tensor(grad, dtype=angles.dtype, device=angles.device)

    def __repr__(self) -> str:
        mode = "" if self.shots is None else f" shots={self.shots}"
        return f"<{type(self).__name__} {self.name!r} pl_device={self.pl_device}{mode} dtype={self.dtype}>"


@hookimpl
def register_backends(register) -> None:
    register(PennyLaneBackend)
