"""``pennylane-mixed``: PennyLane's ``default.mixed`` device, exact, under a :class:`~hqf.quantum.noise.NoiseModel`.

After every gate, each ``(wire, channel)`` of ``NoiseModel.after`` is PennyLane's own channel
(:func:`pennylane_channel`, the mapping of docs/noise.md). The whole angle batch runs as one broadcast
tape. Gates are those of the ``pennylane`` adapter (:data:`hqf.backends.pennylane.PENNYLANE_GATES`);
Hamiltonians and probabilities are read through Pauli words (:mod:`hqf.backends.readout`), which also
applies the readout error. Gradients: the core's parameter-shift rule (exact for this noise, which does
not depend on the angles).
"""

from __future__ import annotations

import numpy as np
import torch

from hqf.backends.pennylane import OBSERVABLES, PENNYLANE_GATES, gate_operation
from hqf.backends.readout import readout
from hqf.quantum.circuit import Circuit, PauliWord
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.quantum.noise import NOISE_FEATURES, Channel, NoiseModel, noise_model
from hqf.registry.hookspecs import hookimpl


def _observable(qml, word: PauliWord):
    factors = [{"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}[p](w) for w, p in word.terms]
    return factors[0] if len(factors) == 1 else qml.prod(*factors)


def _mixed_operation(qml, op, angles):
    """:func:`gate_operation`, except a broadcast ``PhaseShift(φ)`` becomes ``RZ(φ)``: the two differ by the
    global phase ``e^{iφ/2}``, which a density matrix does not carry, and default.mixed (PennyLane 0.45)
    raises ``KeyError`` in its read-out after a broadcast ``PhaseShift``."""
    if op.gate == "PhaseShift":
        return qml.RZ(angles[..., op.param], wires=list(op.wires))
    return gate_operation(qml, op, angles)


def pennylane_channel(qml, channel: Channel, wire: int):
    """PennyLane's operation for ``channel`` on ``wire``: ``DepolarizingChannel(p)``, ``BitFlip(p)``,
    ``PhaseFlip(p)``, ``AmplitudeDamping(gamma)``, ``PhaseDamping(lam)``, ``ThermalRelaxationError(0, t1,
    t2, time)``, and for the general Pauli channel (which PennyLane has no class for) ``QubitChannel`` of
    ``√(1−Σp) 1, √px X, √py Y, √pz Z`` built from PennyLane's own Pauli matrices."""
    parameters = channel.parameters
    if channel.name == "pauli":
        paulis = [
            qml.matrix(qml.Identity(0)),
            qml.matrix(qml.PauliX(0)),
            qml.matrix(qml.PauliY(0)),
            qml.matrix(qml.PauliZ(0)),
        ]
        px, py, pz = channel.pauli_probabilities()
        weights = [max(0.0, 1.0 - px - py - pz), px, py, pz]
        return qml.QubitChannel([np.sqrt(w) * m for w, m in zip(weights, paulis)], wires=wire)
    if channel.name == "thermal_relaxation":
        return qml.ThermalRelaxationError(0.0, parameters["t1"], parameters["t2"], parameters["time"], wires=wire)
    operation = {
        "depolarizing": qml.DepolarizingChannel,
        "bit_flip": qml.BitFlip,
        "phase_flip": qml.PhaseFlip,
        "amplitude_damping": qml.AmplitudeDamping,
        "phase_damping": qml.PhaseDamping,
    }[channel.name]
    return operation(*parameters.values(), wires=wire)


class PennyLaneMixedBackend(Backend):
    """``default.mixed`` under option ``noise`` (``depolarizing=p``: ``NoiseModel.depolarizing(p)``)."""

    name = "pennylane-mixed"
    description = "PennyLane default.mixed, any noise model (option noise=NoiseModel or depolarizing=p)"
    capabilities = Capabilities(
        dtypes={"complex128"},
        devices={"cpu"},
        max_qubits=12,
        noise=True,
        channels=NOISE_FEATURES,
        gates=frozenset(PENNYLANE_GATES),
        observables=OBSERVABLES,
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability.of_modules(("pennylane",), "pennylane")

    def __init__(
        self,
        *,
        noise: NoiseModel | str | None = None,
        depolarizing: float = 0.0,
        dtype: str = "complex128",
        device: str = "cpu",
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.noise = noise_model(noise, depolarizing)
        self.noise.require(self.name, self.capabilities.channels)
        self._devices: dict[int, object] = {}

    def _device(self, n_qubits: int):
        import pennylane as qml  # here, not at the top: importing PennyLane costs seconds (``hqf --help``)

        if n_qubits not in self._devices:
            self._devices[n_qubits] = qml.device("default.mixed", wires=n_qubits)
        return self._devices[n_qubits]

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        import pennylane as qml  # here, not at the top: importing PennyLane costs seconds (``hqf --help``)

        self.check_supported(circuit)
        values = angles.detach().cpu().to(torch.float64).numpy()
        batch = values.shape[0]
        noiseless = self.noise.is_noiseless
        ops = []
        for op in circuit.operations:
            ops.append(_mixed_operation(qml, op, values))
            if not noiseless:
                ops += [pennylane_channel(qml, channel, wire) for wire, channel in self.noise.after(op)]
        words = readout(circuit, self.noise)
        measurements = [qml.expval(_observable(qml, word)) for word in words.words]
        tape = qml.tape.QuantumScript(ops, measurements)
        (result,) = qml.execute([tape], self._device(circuit.n_qubits), diff_method=None)
        if len(measurements) == 1:
            result = (result,)
        columns = [np.broadcast_to(np.asarray(r, dtype=np.float64).reshape(-1), (batch,)) for r in result]
        out = words.apply(np.stack(columns, axis=1))
        return torch.as_tensor(out, dtype=self.real_dtype).to(angles.device)


@hookimpl
def register_backends(register) -> None:
    register(PennyLaneMixedBackend)
