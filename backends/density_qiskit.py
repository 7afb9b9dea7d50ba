"""``qiskit-aer-dm``: Qiskit Aer's exact density-matrix simulator with hqf's depolarizing gate noise.

The circuit is compiled once per circuit description (cached) to a parameterized ``QuantumCircuit``
whose gates are each followed by ``depolarizing_error(4p/3, 1)`` on every wire they act on (the same
channel as hqf's ``p``, see :mod:`hqf.quantum.noise`), then the whole angle batch runs in one
``AerSimulator(method="density_matrix")`` call with parameter binds; expectation values are traced
from the saved density matrices. hqf wire ``w`` is Qiskit qubit ``n − 1 − w``, so the saved matrix is
indexed exactly as hqf's (wire 0 most significant). Gates are appended as by the ``qiskit-aer`` adapter
(:func:`hqf.backends.qiskit_aer.append_gate`: controlled rotations decomposed, each followed by the noise
of the one gate it stands for); Hamiltonians and probabilities are read through Pauli words
(:mod:`hqf.backends.readout`). Gradients: the core's parameter-shift rule.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from hqf.backends.qiskit_aer import QISKIT_GATES, append_gate
from hqf.backends.readout import readout
from hqf.quantum.circuit import Circuit, PauliWord
from hqf.registry.hookspecs import hookimpl
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.quantum.noise import check_probability, noisy_wires, qiskit_lambda


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


class QiskitAerDensityMatrixBackend(Backend):
    """Aer ``density_matrix`` method with option ``depolarizing=p``."""

    name = "qiskit-aer-dm"
    description = "Qiskit Aer density matrix, depolarizing gate noise (option depolarizing=p)"
    capabilities = Capabilities(
        dtypes={"complex128"}, devices={"cpu"}, max_qubits=12, noise=True,
        gates=frozenset(QISKIT_GATES), observables={"pauli", "hamiltonian", "probs"},
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability.of_modules(("qiskit", "qiskit_aer"), "qiskit")

    def __init__(self, *, depolarizing: float = 0.0, dtype: str = "complex128", device: str = "cpu") -> None:
        super().__init__(dtype=dtype, device=device)
        self.depolarizing = check_probability(depolarizing)
        self._compiled = functools.lru_cache(maxsize=64)(self._compile)
        self._simulator = None

    def _compile(self, circuit: Circuit):
        from qiskit import QuantumCircuit
        from qiskit.circuit import ParameterVector
        from qiskit_aer.noise import depolarizing_error

        n = circuit.n_qubits
        params = ParameterVector("a", circuit.n_params)
        qc = QuantumCircuit(n)
        error = depolarizing_error(qiskit_lambda(self.depolarizing), 1) if self.depolarizing > 0 else None
        q = lambda wire: n - 1 - wire  # noqa: E731  hqf wire -> Qiskit qubit
        for op in circuit.operations:
            append_gate(qc, op, params, q)
            if error is not None:
                for wire in noisy_wires(op):
                    qc.append(error, [q(wire)])
        qc.save_density_matrix()
        observables = [_pauli_matrix(n, word) for word in readout(circuit).words]
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
        return torch.as_tensor(readout(circuit).apply(words), dtype=self.real_dtype).to(angles.device)


@hookimpl
def register_backends(register) -> None:
    register(QiskitAerDensityMatrixBackend)
