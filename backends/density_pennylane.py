"""``pennylane-mixed``: PennyLane's ``default.mixed`` device, exact, with hqf's depolarizing gate noise.

After every gate each wire it acts on gets ``qml.DepolarizingChannel(p)`` (the same ``p`` as hqf's,
see :mod:`hqf.quantum.noise`). The whole angle batch runs as one broadcast tape. Gates are those of
the ``pennylane`` adapter (:data:`hqf.backends.pennylane.PENNYLANE_GATES`); Hamiltonians and
probabilities are read through Pauli words (:mod:`hqf.backends.readout`). Gradients: the core's
parameter-shift rule (exact for this noise, which does not depend on the angles).
"""

from __future__ import annotations

import numpy as np
import torch

from hqf.backends.pennylane import OBSERVABLES, PENNYLANE_GATES, gate_operation
from hqf.backends.readout import readout
from hqf.quantum.circuit import Circuit, PauliWord
from hqf.registry.hookspecs import hookimpl
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.quantum.noise import check_probability, noisy_wires, pennylane_probability


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


class PennyLaneMixedBackend(Backend):
    """``default.mixed`` with option ``depolarizing=p``."""

    name = "pennylane-mixed"
    description = "PennyLane default.mixed, depolarizing gate noise (option depolarizing=p)"
    capabilities = Capabilities(
        dtypes={"complex128"}, devices={"cpu"}, max_qubits=12, noise=True,
        gates=frozenset(PENNYLANE_GATES), observables=OBSERVABLES,
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability.of_modules(("pennylane",), "pennylane")

    def __init__(self, *, depolarizing: float = 0.0, dtype: str = "complex128", device: str = "cpu") -> None:
        super().__init__(dtype=dtype, device=device)
        self.depolarizing = check_probability(depolarizing)
        self._devices: dict[int, object] = {}

    def _device(self, n_qubits: int):
        import pennylane as qml

        if n_qubits not in self._devices:
            self._devices[n_qubits] = qml.device("default.mixed", wires=n_qubits)
        return self._devices[n_qubits]

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        import pennylane as qml

        self.check_supported(circuit)
        values = angles.detach().cpu().to(torch.float64).numpy()
        batch = values.shape[0]
        p = pennylane_probability(self.depolarizing)
        ops = []
        for op in circuit.operations:
            ops.append(_mixed_operation(qml, op, values))
            if p > 0:
                ops += [qml.DepolarizingChannel(p, wires=w) for w in noisy_wires(op)]
        words = readout(circuit)
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
