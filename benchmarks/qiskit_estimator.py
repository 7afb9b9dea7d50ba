"""Qiskit Machine Learning's ``EstimatorQNN`` + ``TorchConnector`` on hqf's estimator against Aer's, in one run.

    python benchmarks/qiskit_estimator.py                 # 4 and 8 qubits, batch 32, one thread
    python benchmarks/qiskit_estimator.py --qubits 8 --batch 64 --repeats 5

The model is unchanged between the two: a ZZ feature map and RealAmplitudes (reps 2), ⟨Z⟩ on qubit 0 and a
two-term Pauli sum, ``default_precision=0`` (exact values; the gradient is Qiskit ML's own parameter-shift
``ParamShiftEstimatorGradient``, which calls the estimator on every shifted row). Aer runs its state vector with
``max_parallel_threads=1``; hqf's torch backend with one thread. Prints the median seconds of a forward and of a
forward+backward pass for each, their ratio, the largest difference of values and gradients, and the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit.library import real_amplitudes, zz_feature_map
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from hqf.backends.qiskit_estimator import Estimator


def model(estimator, n: int) -> TorchConnector:
    features, ansatz = zz_feature_map(n), real_amplitudes(n, reps=2)
    qc = QuantumCircuit(n)
    qc.compose(features, inplace=True)
    qc.compose(ansatz, inplace=True)
    observables = [
        SparsePauliOp("I" * (n - 1) + "Z"),
        SparsePauliOp.from_list([("I" * (n - 2) + "ZZ", 0.5), ("X" + "I" * (n - 1), 0.3)]),
    ]
    qnn = EstimatorQNN(
        circuit=qc,
        estimator=estimator,
        observables=observables,
        input_params=features.parameters,
        weight_params=ansatz.parameters,
        default_precision=0.0,
    )
    return TorchConnector(qnn, initial_weights=np.linspace(-1, 1, ansatz.num_parameters))


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(n: int, batch: int, repeats: int) -> None:
    x = torch.tensor(np.random.default_rng(0).uniform(-1, 1, (batch, n)))
    hqf_estimator = Estimator()
    hqf_estimator.backend.set_threads(1)
    estimators = {
        "aer": AerEstimator(options={"backend_options": {"method": "statevector", "max_parallel_threads": 1}}),
        "hqf": hqf_estimator,
    }
    results = {}
    for name, estimator in estimators.items():
        connector = model(estimator, n)

        def forward(connector=connector):
            with torch.no_grad():
                return connector(x).numpy()

        def forward_backward(connector=connector):
            connector.zero_grad()
            connector(x).sum().backward()
            return connector.weight.grad.numpy().copy()

        forward()  # warm: translation, compilation
        t_fwd, values = timed(forward, repeats)
        t_both, grads = timed(forward_backward, repeats)
        results[name] = (t_fwd, t_both, values, grads)
    aer, hqf = results["aer"], results["hqf"]
    print(
        f"{n} qubits, batch {batch}: forward aer {aer[0]:.3f} s, hqf {hqf[0]:.3f} s ({aer[0] / hqf[0]:.1f}x); "
        f"forward+backward aer {aer[1]:.3f} s, hqf {hqf[1]:.3f} s ({aer[1] / hqf[1]:.1f}x); "
        f"max |Δ| values {np.abs(aer[2] - hqf[2]).max():.1e}, gradients {np.abs(aer[3] - hqf[3]).max():.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", default="4,8")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; one thread each")
    for n in (int(q) for q in args.qubits.split(",")):
        measure(n, args.batch, args.repeats)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
