"""Benchmarking tooling: the native peer implementations ``hqf bench --peers`` times against hqf's backends.

A peer is no hqf backend and nothing outside ``hqf bench`` uses it: it is another library's own torch
layer over the :class:`~hqf.studies.bench.Workload` circuit, built the way that library's users would,
and timed like the hqf rows. Each peer translates the workload's hqf
:class:`~hqf.quantum.circuit.Circuit` gate by gate (``RX RY RZ H X CNOT CZ``, the same wires: hqf wire
``w`` is PennyLane wire ``w`` and Qiskit qubit ``w``, and an expectation value of a Pauli word does not
depend on how a library orders its basis), columns ``0..Q-1`` read from the inputs and the others from
the flattened ansatz weights, so a peer runs exactly the circuit the hqf rows run:

- ``pennylane-backprop``: ``qml.qnn.TorchLayer`` over ``default.qubit``, ``diff_method="backprop"``,
  the batch broadcast through the QNode; gradient w.r.t. weights and inputs;
- ``pennylane-parameter-shift``: the same with ``diff_method="parameter-shift"``; weights only
  (PennyLane cannot shift broadcast trainable inputs, #4462);
- ``lightning-adjoint``: ``lightning.qubit`` with ``diff_method="adjoint"`` (it runs a broadcast batch
  as one tape per sample); weights only;
- ``qulacs``: Qulacs' ``ParametricQuantumCircuit`` run one sample at a time (its users' loop), forward
  only (Qulacs has no torch layer), with as many OpenMP threads as torch has;
- ``qiskit-ml``: Qiskit Machine Learning ``EstimatorQNN`` on Aer's ``EstimatorV2`` wrapped in a
  ``TorchConnector`` (its default parameter-shift gradient), inputs and weights; its values are estimates
  at ``EstimatorQNN``'s default precision (1/64), as its users get them. Its backward is so slow
  that it is timed on ``slow_batch`` rows (throughput is per sample, so rows are comparable).

Timing order: ``qiskit-ml`` does not spare torch (:attr:`Peer.spares_torch`): once Qiskit Aer's OpenMP
runtime has run in a process, torch's multi-threaded steps there run about 2× slower (a training step
8.6 → 16.4 ms; one thread: unchanged), so ``hqf bench`` times it after every row that computes in torch.
The PennyLane peers, lightning included, leave torch as fast as they found it.

Large circuits (from ``LARGE_QUBITS`` on): a peer is timed on at most ``large_rows`` rows per call
(throughput is per sample), with one timed call and no warm-up, and the peers whose ``max_qubits`` the
circuit passes (the ones that would take hours or the machine's memory there) are timed only when named.
"""

from __future__ import annotations

import functools
import importlib.util
import operator
import os
from collections.abc import Callable, Sequence

import attrs
import torch

from hqf.errors import ConfigError
from hqf.quantum.circuit import Circuit, Operation
from hqf.studies.bench import PEER_PREFIX, Row, Workload, median_seconds

#: hqf gate -> PennyLane operation class name (``qml.<name>``)
PENNYLANE_GATES = {"RX": "RX", "RY": "RY", "RZ": "RZ", "H": "Hadamard", "X": "PauliX", "CNOT": "CNOT", "CZ": "CZ"}
#: hqf gate -> QuantumCircuit method (``qc.<name>(*angle, *wires)``; ``cx(control, target)``)
QISKIT_GATES = {"RX": "rx", "RY": "ry", "RZ": "rz", "H": "h", "X": "x", "CNOT": "cx", "CZ": "cz"}
#: Pauli letter -> PennyLane observable class name
PENNYLANE_PAULIS = {"X": "PauliX", "Y": "PauliY", "Z": "PauliZ"}

#: from this many qubits on, a peer is timed on at most its ``large_rows`` rows, once, without warm-up
LARGE_QUBITS = 16

#: a peer's builder: (circuit, number of input columns, flat weights) -> a torch module mapping inputs[B, Q] to [B, R]
Build = Callable[[Circuit, int, torch.Tensor], torch.nn.Module]


def _angle_source(op: Operation, n_inputs: int) -> tuple[str, int] | None:
    """``("inputs", column)`` or ``("weights", index)`` for a parameterized gate, None for a fixed one."""
    if op.param is None:
        return None
    return ("inputs", op.param) if op.param < n_inputs else ("weights", op.param - n_inputs)


def pennylane_layer(
    circuit: Circuit, n_inputs: int, weights: torch.Tensor, device: str, diff_method: str
) -> torch.nn.Module:
    """``circuit`` as a ``qml.qnn.TorchLayer`` on the PennyLane ``device`` (float64), holding ``weights``."""
    import pennylane as qml  # optional dependency (hqf[pennylane]): imported only when a PennyLane peer runs

    program = [
        (getattr(qml, PENNYLANE_GATES[op.gate]), list(op.wires), _angle_source(op, n_inputs))
        for op in circuit.operations
    ]
    paulis = {letter: getattr(qml, name) for letter, name in PENNYLANE_PAULIS.items()}
    dev = qml.device(device, wires=circuit.n_qubits)

    @qml.qnode(dev, interface="torch", diff_method=diff_method)
    def qnode(inputs, weights):
        for gate, wires, source in program:
            if source is None:
                gate(wires=wires)
            elif source[0] == "inputs":
                gate(inputs[..., source[1]], wires=wires)
            else:
                gate(weights[source[1]], wires=wires)
        words = [[paulis[letter](wire) for wire, letter in word.terms] for word in circuit.observables]
        return [qml.expval(functools.reduce(operator.matmul, factors)) for factors in words]

    layer = qml.qnn.TorchLayer(qnode, {"weights": (circuit.n_params - n_inputs,)}).double()
    with torch.no_grad():
        layer.weights.copy_(weights)
    return layer


def qiskit_connector(circuit: Circuit, n_inputs: int, weights: torch.Tensor) -> torch.nn.Module:
    """``circuit`` as an ``EstimatorQNN`` on Aer's ``EstimatorV2`` in a ``TorchConnector``, holding ``weights``."""
    # optional dependencies (hqf[qiskit,peers]): imported only when the Qiskit ML peer runs
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer.primitives import EstimatorV2
    from qiskit_machine_learning.connectors import TorchConnector
    from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    parameters = {
        "inputs": ParameterVector("x", n_inputs),
        "weights": ParameterVector("w", circuit.n_params - n_inputs),
    }
    qc = QuantumCircuit(circuit.n_qubits)
    for op in circuit.operations:
        source = _angle_source(op, n_inputs)
        angle = [] if source is None else [parameters[source[0]][source[1]]]
        getattr(qc, QISKIT_GATES[op.gate])(*angle, *op.wires)
    observables = [
        SparsePauliOp.from_sparse_list(
            [("".join(p for _, p in word.terms), list(word.wires), 1.0)], num_qubits=circuit.n_qubits
        )
        for word in circuit.observables
    ]
    estimator = EstimatorV2()
    qnn = EstimatorQNN(
        circuit=qc,
        observables=observables,
        input_params=list(parameters["inputs"]),
        weight_params=list(parameters["weights"]),
        estimator=estimator,
        gradient=ParamShiftEstimatorGradient(estimator),
        input_gradients=True,
    )
    return TorchConnector(qnn, initial_weights=weights.numpy())


class QulacsLayer(torch.nn.Module):
    """``circuit`` as a Qulacs ``ParametricQuantumCircuit``, run one sample at a time; no gradient."""

    def __init__(self, circuit: Circuit, n_inputs: int, weights: torch.Tensor) -> None:
        super().__init__()
        # optional dependency (hqf[peers]); its OpenMP runtime reads the thread count when it loads
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        import qulacs

        n = circuit.n_qubits
        self.qulacs, self.n_qubits, self.weights = qulacs, n, weights.detach().double().numpy()
        self.program = qulacs.ParametricQuantumCircuit(n)
        self.sources = []  # per parametric gate, in order: ("inputs" | "weights", index)
        for op in circuit.operations:
            # hqf wire w is Qulacs qubit w; Qulacs' RX/RY/RZ(θ) turn by exp(+iθP/2), hence −θ
            source = _angle_source(op, n_inputs)
            if source is not None:
                getattr(self.program, f"add_parametric_{op.gate}_gate")(op.wires[0], 0.0)
                self.sources.append(source)
            elif op.gate in ("CNOT", "CZ"):
                getattr(self.program, f"add_{op.gate}_gate")(*op.wires)
            else:
                getattr(self.program, f"add_{op.gate}_gate")(op.wires[0])
        self.observables = []
        for word in circuit.observables:
            observable = qulacs.Observable(n)
            observable.add_operator(1.0, " ".join(f"{letter} {wire}" for wire, letter in word.terms))
            self.observables.append(observable)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        state, out = self.qulacs.QuantumState(self.n_qubits), []
        for row in inputs.detach().double().numpy():
            for k, (kind, index) in enumerate(self.sources):
                self.program.set_parameter(k, -(row[index] if kind == "inputs" else self.weights[index]))
            state.set_zero_state()
            self.program.update_quantum_state(state)
            out.append([obs.get_expectation_value(state) for obs in self.observables])
        return torch.tensor(out, dtype=torch.float64)


@attrs.frozen
class Peer:
    """A native implementation: how to build it over a circuit, and how to time it."""

    name: str
    label: str
    gradient: str  # the method of its backward; its row is compared with the hqf rows of this gradient
    modules: tuple[str, ...]  # the packages it needs
    build: Build
    inputs_differentiable: bool
    #: its forward+backward is timed on ``slow_batch`` rows, without warm-up
    slow: bool = False
    #: False when running it slows torch for the rest of the process (see the module docstring)
    spares_torch: bool = True
    repeats: int = 5
    warmup: int = 1
    budget_s: float = 30.0
    #: False: forward only (no fwd+bwd column)
    differentiable: bool = True
    #: past this many qubits the peer is timed only when named (None: no limit)
    max_qubits: int | None = None
    #: rows per call from ``LARGE_QUBITS`` qubits on
    large_rows: int = 1

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.modules)


def time_peer(peer: Peer, workload: Workload, slow_batch: int = 1) -> Row:
    """Time ``peer`` on ``workload``: forward on the full batch, forward+backward (gradient of the sum)."""
    _, weights = workload.inputs()
    layer = peer.build(workload.circuit(), workload.n_inputs, weights.reshape(-1))
    stream = workload.input_stream()
    rows = min(slow_batch, workload.batch) if peer.slow else workload.batch
    large = workload.n_qubits >= LARGE_QUBITS
    forward_rows = min(peer.large_rows, workload.batch) if large else workload.batch
    repeats, warmup = (1, 0) if large else (peer.repeats, peer.warmup)
    rows = min(rows, forward_rows)

    def forward() -> None:
        with torch.no_grad():
            layer(stream()[:forward_rows])

    def forward_backward() -> None:
        xs = stream()[:rows].clone().requires_grad_(peer.inputs_differentiable)
        layer.zero_grad(set_to_none=True)
        layer(xs).sum().backward()

    fwd = forward_rows / median_seconds(forward, repeats, warmup, peer.budget_s)
    fb_warmup = 0 if peer.slow else min(warmup, 1)
    fb = rows / median_seconds(forward_backward, repeats, fb_warmup, peer.budget_s) if peer.differentiable else None
    note = "weights and inputs" if peer.inputs_differentiable else "weights only"
    if not peer.differentiable:
        note = "forward only, one sample at a time"
    if peer.slow:
        note += f"; fwd+bwd timed on {rows} rows"
    if large:
        note += f"; timed once on {forward_rows} row(s)"
    return Row(PEER_PREFIX + peer.name, peer.label, peer.gradient, fwd, fb, workload.batch, note)


def _pennylane(device: str, diff_method: str) -> Build:
    return lambda circuit, n_inputs, weights: pennylane_layer(circuit, n_inputs, weights, device, diff_method)


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer(
            name="pennylane-backprop",
            label="PennyLane default.qubit TorchLayer",
            gradient="backprop",
            modules=("pennylane",),
            build=_pennylane("default.qubit", "backprop"),
            inputs_differentiable=True,
            max_qubits=LARGE_QUBITS,
        ),
        Peer(
            name="pennylane-parameter-shift",
            label="PennyLane default.qubit TorchLayer",
            gradient="parameter-shift",
            modules=("pennylane",),
            build=_pennylane("default.qubit", "parameter-shift"),
            inputs_differentiable=False,
            max_qubits=LARGE_QUBITS,
        ),
        Peer(
            name="lightning-adjoint",
            label="PennyLane lightning.qubit TorchLayer",
            gradient="adjoint",
            modules=("pennylane", "pennylane_lightning"),
            build=_pennylane("lightning.qubit", "adjoint"),
            inputs_differentiable=False,
        ),
        Peer(
            name="qulacs",
            label="Qulacs ParametricQuantumCircuit, per sample",
            gradient="forward only",
            modules=("qulacs",),
            build=QulacsLayer,
            inputs_differentiable=False,
            differentiable=False,
        ),
        Peer(
            name="qiskit-ml",
            label="Qiskit ML EstimatorQNN + TorchConnector (Aer)",
            gradient="parameter-shift",
            modules=("qiskit", "qiskit_aer", "qiskit_machine_learning"),
            build=qiskit_connector,
            inputs_differentiable=True,
            slow=True,
            spares_torch=False,
            repeats=3,
            budget_s=60.0,
            max_qubits=LARGE_QUBITS,
        ),
    )
}


def available_peers() -> list[str]:
    """The peers whose packages are installed here."""
    return [name for name, peer in PEERS.items() if peer.installed]


def select_peers(names: Sequence[str], n_qubits: int = 0) -> tuple[list[str], list[str]]:
    """The installed peers among ``names`` (empty: all of them that run ``n_qubits`` qubits), and a
    reason for each one left out."""
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        raise ConfigError(f"unknown peer(s) {unknown}; peers: {', '.join(PEERS)}")
    installed = set(available_peers())
    chosen, skipped = [], []
    for name in names or PEERS:
        limit = PEERS[name].max_qubits
        if name not in installed:
            skipped.append(f"peer {name}: not installed")
        elif not names and limit is not None and n_qubits > limit:
            skipped.append(f"peer {name}: past {limit} qubits only when named (--peer {name})")
        else:
            chosen.append(name)
    return chosen, skipped
