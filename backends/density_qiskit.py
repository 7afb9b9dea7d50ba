"""``qiskit-aer-dm``: Qiskit Aer's exact density-matrix simulator under a :class:`~hqf.quantum.noise.NoiseModel`.

The circuit is compiled once per circuit description (cached) to a parameterized ``QuantumCircuit``
in which each gate is followed by Aer's own error for each ``(wire, channel)`` of ``NoiseModel.after``
(:func:`qiskit_error`: ``depolarizing_error(4p/3, 1)``, ``amplitude_damping_error(γ)``, … as in
docs/noise.md), appended as instructions rather than through an Aer ``NoiseModel``, whose errors follow
Qiskit's own gate names and so would also follow each piece of a decomposed gate. The whole angle batch runs in one
``AerSimulator(method="density_matrix")`` call with parameter binds; expectation values are traced
from the saved density matrices. hqf wire ``w`` is Qiskit qubit ``n − 1 − w``, so the saved matrix is
indexed exactly as hqf's (wire 0 most significant). Gates are appended as by the ``qiskit-aer`` adapter
(:func:`hqf.backends.qiskit_aer.append_gate`: controlled rotations decomposed, each followed by the noise
of the one gate it stands for); Hamiltonians and probabilities are read through Pauli words
(:mod:`hqf.backends.readout`), which also applies the readout error (Aer's ``ReadoutError``,
:func:`qiskit_readout_error`, acts on measured counts only, not on a saved density matrix). Gradients:
the core's parameter-shift rule.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from hqf.backends.qiskit_aer import QISKIT_GATES, append_gate
from hqf.backends.readout import readout
from hqf.quantum.circuit import Circuit, PauliWord
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.quantum.noise import NOISE_FEATURES, Channel, NoiseModel, ReadoutError, noise_model, qiskit_lambda
from hqf.registry.hookspecs import hookimpl


def _pauli_matrix(n: int, word: PauliWord) -> np.ndarray:
    """The dense ``2**n`` matrix of a Pauli word, wire 0 the most significant bit."""
    single = {
        "X": np.array([[0, 1], [1, 0]], dtype=complex),
        "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
        "Z": np.array([[1, 0], [0, -1]], dtype=complex),
    }
    factors = dict(word.terms)
    out = np.ones((1, 1), dtype=complex)
    for wire in range(n):
        out = np.kron(out, single[factors[wire]] if wire in factors else np.eye(2))
    return out


def qiskit_error(channel: Channel):
    """Qiskit Aer's one-qubit ``QuantumError`` for ``channel``: ``depolarizing_error(4p/3, 1)``,
    ``pauli_error`` for the bit flip, phase flip and Pauli channels, ``amplitude_damping_error(gamma)``,
    ``phase_damping_error(lam)``, ``thermal_relaxation_error(t1, t2, time)``."""
    from qiskit_aer import noise as aer_noise  # here, not at the top: importing Qiskit costs seconds

    parameters = channel.parameters
    if channel.name == "depolarizing":
        return aer_noise.depolarizing_error(qiskit_lambda(channel.p), 1)
    if channel.name in ("bit_flip", "phase_flip", "pauli"):
        px, py, pz = channel.pauli_probabilities()
        return aer_noise.pauli_error([("I", max(0.0, 1.0 - px - py - pz)), ("X", px), ("Y", py), ("Z", pz)])
    if channel.name == "amplitude_damping":
        return aer_noise.amplitude_damping_error(channel.gamma)
    if channel.name == "phase_damping":
        return aer_noise.phase_damping_error(channel.lam)
    if channel.name == "thermal_relaxation":
        return aer_noise.thermal_relaxation_error(parameters["t1"], parameters["t2"], parameters["time"])
    raise ValueError(f"no Qiskit error for channel {channel.name!r}")


def qiskit_readout_error(error: ReadoutError):
    """Qiskit Aer's ``ReadoutError([[1 − p(1|0), p(1|0)], [p(0|1), 1 − p(0|1)]])`` (row: the true bit)."""
    from qiskit_aer.noise import ReadoutError as AerReadoutError  # here: importing Qiskit costs seconds

    return AerReadoutError(error.confusion().T.tolist())


class QiskitAerDensityMatrixBackend(Backend):
    """Aer ``density_matrix`` method under option ``noise`` (``depolarizing=p``: ``NoiseModel.depolarizing(p)``)."""

    name = "qiskit-aer-dm"
    description = "Qiskit Aer density matrix, any noise model (option noise=NoiseModel or depolarizing=p)"
    capabilities = Capabilities(
        dtypes={"complex128"},
        devices={"cpu"},
        max_qubits=12,
        noise=True,
        channels=NOISE_FEATURES,
        gates=frozenset(QISKIT_GATES),
        observables={"pauli", "hamiltonian", "probs"},
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability.of_modules(("qiskit", "qiskit_aer"), "qiskit")

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
        self._compiled = functools.lru_cache(maxsize=64)(self._compile)
        self._simulator = None

    def _compile(self, circuit: Circuit):
        from qiskit import QuantumCircuit
        from qiskit.circuit import ParameterVector

        n = circuit.n_qubits
        params = ParameterVector("a", circuit.n_params)
        qc = QuantumCircuit(n)
        errors = (
            {}
            if self.noise.is_noiseless
            else {rule.channel: qiskit_error(rule.channel) for rule in self.noise.rules if not rule.channel.is_identity}
        )
        q = lambda wire: n - 1 - wire  # noqa: E731  hqf wire -> Qiskit qubit
        for op in circuit.operations:
            append_gate(qc, op, params, q)
            for wire, channel in self.noise.after(op):
                if channel in errors:
                    qc.append(errors[channel], [q(wire)])
        qc.save_density_matrix()
        observables = [_pauli_matrix(n, word) for word in readout(circuit, self.noise).words]
        return qc, params, observables

    def set_threads(self, n: int) -> None:
        super().set_threads(n)
        self._simulator = None  # rebuilt with the new thread count

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        from qiskit_aer import AerSimulator

        self.check_supported(circuit)

        if self._simulator is None:
            threads = {} if self.threads is None else {"max_parallel_threads": self.threads}
            self._simulator = AerSimulator(method="density_matrix", **threads)
        qc, params, observables = self._compiled(circuit)
        values = angles.detach().cpu().to(torch.float64).numpy()
        batch = values.shape[0]
        if circuit.n_params:
            binds = [{params[k]: values[:, k].tolist() for k in range(circuit.n_params)}]
            result = self._simulator.run(qc, parameter_binds=binds).result()
            rhos = [np.asarray(result.data(i)["density_matrix"]) for i in range(batch)]
        else:
            rho = np.asarray(self._simulator.run(qc).result().data(0)["density_matrix"])
            rhos = [rho] * batch
        stacked = np.stack(rhos)  # [B, 2**n, 2**n]
        words = np.stack([np.einsum("bij,ji->b", stacked, obs).real for obs in observables], axis=1)
        return torch.as_tensor(readout(circuit, self.noise).apply(words), dtype=self.real_dtype).to(angles.device)


@hookimpl
def register_backends(register) -> None:
    register(QiskitAerDensityMatrixBackend)
