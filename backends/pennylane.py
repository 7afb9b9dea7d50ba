"""``pennylane``: runs hqf circuits on any installed PennyLane device (``default.qubit``, ``lightning.qubit``, ...).

The circuit is compiled to one :class:`pennylane.tape.QuantumScript` whose parameterized gates hold a whole
column of the angle matrix, so the batch runs as one broadcast tape (``default.qubit`` simulates it in one
vectorized pass; ``lightning.qubit`` expands it into one tape per row inside the same ``qml.execute`` call).

Wire order: PennyLane's wire 0 is the most significant bit of a basis index, as in hqf; wire ``w`` maps to
PennyLane wire ``w`` with no conversion (tests/test_backend_pennylane.py checks it on the state vector).

Native gradient: where the device supports PennyLane's adjoint differentiation (``default.qubit``,
``lightning.qubit``), the backend declares ``adjoint`` and :meth:`PennyLaneBackend.vjp` runs
``qml.execute(..., diff_method="adjoint")`` on torch parameters and contracts with the cotangent.
"""

from __future__ import annotations

import functools
import importlib.util
import operator
from typing import Any

import attrs
import numpy as np
import torch

from hqf.circuit import Circuit, PauliWord
from hqf.errors import ConfigError
from hqf.hookspecs import hookimpl
from hqf.interfaces import Availability, Backend, Capabilities

_ROTATIONS = {"RX": "RX", "RY": "RY", "RZ": "RZ"}
_FIXED = {"H": "Hadamard", "X": "PauliX", "CNOT": "CNOT", "CZ": "CZ"}
_PAULIS = {"X": "PauliX", "Y": "PauliY", "Z": "PauliZ"}


def _observable(qml, word: PauliWord):
    """The PennyLane operator of a Pauli word, e.g. ``PauliZ(0) @ PauliX(3)``."""
    factors = [getattr(qml, _PAULIS[p])(w) for w, p in word.terms]
    return functools.reduce(operator.matmul, factors)


def build_tape(circuit: Circuit, angles: Any):
    """The circuit as one ``QuantumScript``; gate ``k`` reads ``angles[:, op.param]`` (numpy or torch)."""
    import pennylane as qml

    ops = []
    for op in circuit.operations:
        if op.param is not None:
            ops.append(getattr(qml, _ROTATIONS[op.gate])(angles[:, op.param], wires=op.wires[0]))
        else:
            ops.append(getattr(qml, _FIXED[op.gate])(wires=list(op.wires)))
    measurements = [qml.expval(_observable(qml, word)) for word in circuit.observables]
    return qml.tape.QuantumScript(ops, measurements)


def _as_rows(result: Any, batch: int, n_outputs: int, stack, broadcast) -> Any:
    """PennyLane's result (one value, or a tuple of ``R`` values, each ``()`` or ``(B,)``) as ``[B, R]``."""
    columns = result if n_outputs > 1 else (result,)
    if len(columns) != n_outputs:
        raise RuntimeError(f"PennyLane returned {len(columns)} results for {n_outputs} observables")
    return stack([broadcast(c, batch) for c in columns], 1)


class PennyLaneBackend(Backend):
    """Any installed PennyLane device; options ``pl_device`` (a device name) and ``dtype``.

    ``complex64`` is available on the ``lightning.*`` devices (their ``c_dtype``). The native gradient
    ``adjoint`` is declared per instance when the chosen device supports adjoint differentiation.
    """

    name = "pennylane"
    description = "PennyLane devices (default.qubit, lightning.qubit, ...): broadcast tapes, adjoint vjp"
    capabilities = Capabilities(dtypes={"complex128", "complex64"}, max_qubits=26, gradients={"adjoint"})

    @classmethod
    def availability(cls) -> Availability:
        if importlib.util.find_spec("pennylane") is None:
            return Availability.missing_package("pennylane", "pennylane")
        return Availability(True)

    def __init__(self, *, dtype: str = "complex128", device: str = "cpu", pl_device: str = "default.qubit") -> None:
        super().__init__(dtype=dtype, device=device)
        import pennylane as qml
        from pennylane.devices import ExecutionConfig

        self.pl_device = pl_device
        self._device_options: dict[str, Any] = {}
        if dtype == "complex64":
            if not pl_device.startswith("lightning."):
                raise ConfigError(f"dtype 'complex64' needs a lightning.* PennyLane device (got {pl_device!r})")
            self._device_options["c_dtype"] = np.complex64
        self._devices: dict[int, Any] = {}
        probe = self._device_for(1)
        native = set()
        if probe.supports_derivatives(ExecutionConfig(gradient_method="adjoint")):
            native.add("adjoint")
        # declared per instance: the device decides which native gradient exists
        self.capabilities = attrs.evolve(type(self).capabilities, dtypes={dtype}, gradients=native)
        self._qml = qml

    def _make_device(self, n_qubits: int):
        import pennylane as qml

        try:
            return qml.device(self.pl_device, wires=n_qubits, **self._device_options)
        except Exception as exc:  # DeviceError, ImportError from a device plugin, bad options
            raise ConfigError(f"PennyLane device {self.pl_device!r} cannot be created: {exc}") from None

    def _device_for(self, n_qubits: int):
        """One device per qubit count, created on first use."""
        if n_qubits not in self._devices:
            self._devices[n_qubits] = self._make_device(n_qubits)
        return self._devices[n_qubits]

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        batch = angles.shape[0]
        values = angles.detach().to(device="cpu", dtype=torch.float64).numpy()
        tape = build_tape(circuit, values)
        (result,) = self._qml.execute([tape], self._device_for(circuit.n_qubits), diff_method=None)
        rows = _as_rows(
            result, batch, circuit.n_outputs, np.stack,
            lambda c, b: np.broadcast_to(np.asarray(c, dtype=np.float64), (b,)),
        )
        return torch.as_tensor(rows, dtype=self.real_dtype, device=angles.device)

    def vjp(self, circuit: Circuit, angles: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        if "adjoint" not in self.capabilities.gradients:
            raise NotImplementedError(f"PennyLane device {self.pl_device!r} has no adjoint differentiation")
        batch = angles.shape[0]
        if circuit.n_params == 0:
            return torch.zeros_like(angles)
        cotangent = grad_output.detach().to(device="cpu", dtype=torch.float64)
        with torch.enable_grad():  # backward passes run with grad mode off
            leaf = angles.detach().to(device="cpu", dtype=torch.float64).requires_grad_(True)
            tape = build_tape(circuit, leaf)
            (result,) = self._qml.execute([tape], self._device_for(circuit.n_qubits), diff_method="adjoint")
            rows = _as_rows(
                result, batch, circuit.n_outputs, torch.stack,
                lambda c, b: torch.as_tensor(c, dtype=torch.float64).expand(b),
            )
            (grad,) = torch.autograd.grad(rows, leaf, cotangent, allow_unused=True)
        if grad is None:  # no observable depends on any angle
            grad = torch.zeros_like(leaf)
        return grad.to(device=angles.device, dtype=angles.dtype)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} pl_device={self.pl_device} dtype={self.dtype}>"


@hookimpl
def register_backends(register) -> None:
    register(PennyLaneBackend)
