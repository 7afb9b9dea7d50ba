"""The native peer implementations ``hqf bench --peers`` times on the same workload as hqf's backends.

Each peer builds the :class:`~hqf.studies.bench.Workload` circuit (RY encoding, then the ``hea`` ansatz:
per layer RY then RZ on every qubit and a CNOT ring, ``⟨Z⟩`` on every qubit) the way its own users
would, and is timed like the hqf rows:

- ``pennylane-backprop``: ``qml.qnn.TorchLayer`` over ``default.qubit``, ``diff_method="backprop"``,
  the batch broadcast through the QNode; gradient w.r.t. weights and inputs;
- ``pennylane-parameter-shift``: the same with ``diff_method="parameter-shift"``; weights only
  (PennyLane cannot shift broadcast trainable inputs, #4462);
- ``lightning-adjoint``: ``lightning.qubit`` with ``diff_method="adjoint"`` (it runs a broadcast batch
  as one tape per sample); weights only;
- ``qiskit-ml``: Qiskit Machine Learning ``EstimatorQNN`` on Aer's ``EstimatorV2`` wrapped in a
  ``TorchConnector`` (its default parameter-shift gradient), inputs and weights. Its backward is so slow
  that it is timed on ``slow_batch`` rows (throughput is per sample, so rows are comparable).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch

from hqf.studies.bench import Row, Workload, median_seconds
from hqf.plugins.ansatze.hea import cnot_ring


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _time_pair(forward: Callable[[], object], forward_backward: Callable[[], object] | None, batch: int, repeats: int, warmup: int, budget_s: float) -> tuple[float, float | None]:
    fwd = batch / median_seconds(forward, repeats, warmup, budget_s)
    fb = None if forward_backward is None else batch / median_seconds(forward_backward, repeats, min(warmup, 1), budget_s)
    return fwd, fb


def _pennylane_layer(workload: Workload, device: str, diff_method: str):
    import pennylane as qml

    n, layers = workload.n_qubits, workload.n_layers
    dev = qml.device(device, wires=n)

    @qml.qnode(dev, interface="torch", diff_method=diff_method)
    def qnode(inputs, weights):
        for q in range(n):
            qml.RY(inputs[..., q], wires=q)
        for layer in range(layers):
            for q in range(n):
                qml.RY(weights[layer, q, 0], wires=q)
                qml.RZ(weights[layer, q, 1], wires=q)
            for op in cnot_ring(n):
                qml.CNOT(wires=list(op.wires))
        return [qml.expval(qml.PauliZ(q)) for q in range(n)]

    layer = qml.qnn.TorchLayer(qnode, {"weights": (layers, n, 2)}).double()
    _, weights = workload.inputs()
    with torch.no_grad():
        layer.weights.copy_(weights)
    return layer


def time_pennylane(workload: Workload, kind: str, repeats: int = 5, warmup: int = 1, budget_s: float = 30.0) -> Row:
    """``kind``: ``backprop``, ``parameter-shift`` (default.qubit) or ``adjoint`` (lightning.qubit)."""
    device = "lightning.qubit" if kind == "adjoint" else "default.qubit"
    layer = _pennylane_layer(workload, device, kind)
    stream = workload.input_stream()
    inputs_too = kind == "backprop"

    def forward() -> None:
        with torch.no_grad():
            layer(stream())

    def forward_backward() -> None:
        xs = stream().clone().requires_grad_(inputs_too)
        layer.zero_grad(set_to_none=True)
        layer(xs).sum().backward()

    fwd, fb = _time_pair(forward, forward_backward, workload.batch, repeats, warmup, budget_s)
    key = {"backprop": "pennylane-backprop", "parameter-shift": "pennylane-parameter-shift", "adjoint": "lightning-adjoint"}[kind]
    label = f"PennyLane {device} TorchLayer"
    note = "weights and inputs" if inputs_too else "weights only"
    return Row(f"peer/{key}", label, kind, fwd, fb, workload.batch, note)


def _qiskit_connector(workload: Workload):
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer.primitives import EstimatorV2
    from qiskit_machine_learning.connectors import TorchConnector
    from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    n, layers = workload.n_qubits, workload.n_layers
    inputs, weights = ParameterVector("x", n), ParameterVector("w", layers * n * 2)
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.ry(inputs[q], q)
    for layer in range(layers):
        for q in range(n):
            base = 2 * (layer * n + q)
            qc.ry(weights[base], q)
            qc.rz(weights[base + 1], q)
        for op in cnot_ring(n):
            qc.cx(*op.wires)
    observables = [SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits=n) for q in range(n)]
    estimator = EstimatorV2()
    qnn = EstimatorQNN(
        circuit=qc,
        observables=observables,
        input_params=list(inputs),
        weight_params=list(weights),
        estimator=estimator,
        gradient=ParamShiftEstimatorGradient(estimator),
        input_gradients=True,
    )
    _, initial = workload.inputs()
    return TorchConnector(qnn, initial_weights=initial.reshape(-1).numpy())


def time_qiskit_ml(workload: Workload, slow_batch: int = 1, repeats: int = 3, warmup: int = 1, budget_s: float = 60.0) -> Row:
    """EstimatorQNN + TorchConnector on Aer: forward on the full batch, backward on ``slow_batch`` rows."""
    connector = _qiskit_connector(workload)
    stream = workload.input_stream()
    rows = min(slow_batch, workload.batch)

    def forward() -> None:
        with torch.no_grad():
            connector(stream())

    def forward_backward() -> None:
        xs = stream()[:rows].clone().requires_grad_()
        connector.zero_grad(set_to_none=True)
        connector(xs).sum().backward()

    fwd = workload.batch / median_seconds(forward, repeats, warmup, budget_s)
    fb = rows / median_seconds(forward_backward, repeats, 0, budget_s)
    note = f"weights and inputs; fwd+bwd timed on {rows} rows"
    return Row("peer/qiskit-ml", "Qiskit ML EstimatorQNN + TorchConnector (Aer)", "parameter-shift", fwd, fb, workload.batch, note)


#: peer name -> (modules it needs, timing function)
PEERS: dict[str, tuple[tuple[str, ...], Callable[..., Row]]] = {
    "pennylane-backprop": (("pennylane",), lambda w, **kw: time_pennylane(w, "backprop", **kw)),
    "pennylane-parameter-shift": (("pennylane",), lambda w, **kw: time_pennylane(w, "parameter-shift", **kw)),
    "lightning-adjoint": (("pennylane", "pennylane_lightning"), lambda w, **kw: time_pennylane(w, "adjoint", **kw)),
    "qiskit-ml": (("qiskit", "qiskit_aer", "qiskit_machine_learning"), lambda w, **kw: time_qiskit_ml(w, **kw)),
}


def available_peers() -> list[str]:
    """The peers whose packages are installed here."""
    return [name for name, (modules, _) in PEERS.items() if _installed(*modules)]
