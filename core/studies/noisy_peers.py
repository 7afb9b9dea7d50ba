"""The noisy peers ``hqf bench --noise`` times: other libraries' density-matrix simulators on the bench workload.

Each peer runs the :class:`~hqf.studies.bench.Workload` circuit (gates translated as in
:mod:`hqf.studies.peers`: hqf wire ``w`` is the library's qubit ``w``) with, after every gate ``op``, each
``(wire, channel)`` of :meth:`~hqf.quantum.noise.NoiseModel.after` written in the library's own noise
vocabulary, so it computes the density-matrix values hqf's exact backends compute:

- ``pennylane-mixed``: a ``qml.qnn.TorchLayer`` over ``default.mixed`` (``diff_method="backprop"``), the
  batch broadcast; ``DepolarizingChannel(p)``, ``BitFlip``, ``PhaseFlip``, ``AmplitudeDamping(γ)``,
  ``PhaseDamping(λ)``, ``ThermalRelaxationError(0, t1, t2, time)``, the Pauli channel as a ``QubitChannel``;
- ``qiskit-aer-dm``: ``AerSimulator(method="density_matrix")`` with an Aer ``NoiseModel`` holding, for each
  gate and qubits of the circuit, the errors of its channels (``depolarizing_error(4p/3, 1)``: Qiskit's
  ``λ`` is ``4p/3`` for hqf's ``p``; ``pauli_error``, ``amplitude_damping_error``, ``phase_damping_error``,
  ``thermal_relaxation_error``; several on one wire as one Kraus error, :func:`one_error`); the batch in
  one call with parameter binds, ``⟨Z⟩`` saved by ``save_expectation_value``; forward only; as many
  threads as torch has (``--threads 1``: ``max_parallel_threads=1`` and no parallel state update);
- ``qulacs-dm``: Qulacs' ``DensityMatrix`` under a ``ParametricQuantumCircuit`` with its noise gates
  (``DepolarizingNoise``, ``BitFlipNoise``, ``DephasingNoise``, ``AmplitudeDampingNoise``; ``Probabilistic``
  Paulis for the Pauli channel, ``CPTP`` of the Kraus operators for phase damping and thermal relaxation),
  one row at a time; forward only;
- ``cudaq-dm``: CUDA-Q's ``density-matrix-cpu`` target with ``apply_noise`` after each gate
  (:class:`CudaqDensityMatrixLayer`), one ``observe`` per row; forward only.

Readout error: no peer applies a confusion matrix to an expectation value, so every peer's ``⟨Z_w⟩`` goes
through the same affine map ``(1 − e0 − e1) z + (e1 − e0)`` (``e0 = p(1|0)``, ``e1 = p(0|1)`` of wire ``w``)
after it ran; only single-wire ``Z`` read-outs take a readout error.

A peer is timed on at most its ``rows`` rows per call (throughput is per row), the slowest ones on a few;
from ``LARGE_QUBITS`` qubits on once, on one row, without warm-up.
"""

from __future__ import annotations

import functools
import importlib.util
import operator
import os
import warnings
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import torch

from hqf.errors import ConfigError
from hqf.quantum.circuit import Circuit, Operation
from hqf.quantum.noise import Channel, NoiseModel, qiskit_lambda
from hqf.studies.bench import PEER_PREFIX, Row, Workload, median_seconds
from hqf.studies.peers import PENNYLANE_GATES, PENNYLANE_PAULIS, QISKIT_GATES

#: from this many qubits on, a noisy peer is timed once on one row, without warm-up
LARGE_QUBITS = 11

#: a noisy peer's builder: (circuit, number of input columns, flat weights, noise) -> a torch module [B, Q] -> [B, R]
NoisyBuild = Callable[[Circuit, int, torch.Tensor, NoiseModel], torch.nn.Module]


def angle_source(op: Operation, n_inputs: int) -> tuple[str, int] | None:
    """``("inputs", column)`` or ``("weights", index)`` for a parameterized gate, None for a fixed one."""
    if op.param is None:
        return None
    return ("inputs", op.param) if op.param < n_inputs else ("weights", op.param - n_inputs)


def readout_map(circuit: Circuit, noise: NoiseModel) -> tuple[np.ndarray, np.ndarray] | None:
    """``(scale[R], shift[R])`` with read ``⟨Z_w⟩ = scale · ⟨Z_w⟩ + shift`` under ``noise``'s readout error,
    or None when nothing is misread.

    Raises:
        ConfigError: a misread wire is read through a word other than a single ``Z``.
    """
    if not noise.has_readout:
        return None
    scale, shift = np.ones(circuit.n_outputs), np.zeros(circuit.n_outputs)
    for k, word in enumerate(circuit.observables):
        confusions = [noise.confusion(wire) for wire, _ in word.terms]
        if all(m is None for m in confusions):
            continue
        if len(word.terms) != 1 or word.terms[0][1] != "Z":
            raise ConfigError(f"a noisy peer reads a readout error through single-wire Z words only (got {word})")
        e0, e1 = confusions[0][1, 0], confusions[0][0, 1]
        scale[k], shift[k] = 1.0 - e0 - e1, e1 - e0
    return scale, shift


class ReadoutLayer(torch.nn.Module):
    """``inner``'s outputs through :func:`readout_map` (unchanged when nothing is misread)."""

    def __init__(self, inner: torch.nn.Module, circuit: Circuit, noise: NoiseModel) -> None:
        super().__init__()
        self.inner = inner
        found = readout_map(circuit, noise)
        self.affine = None if found is None else tuple(torch.as_tensor(v, dtype=torch.float64) for v in found)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.inner(inputs)
        return out if self.affine is None else out * self.affine[0] + self.affine[1]


def pennylane_channel(qml, channel: Channel, wire: int):
    """PennyLane's operation for ``channel`` on ``wire`` (docs/noise.md's mapping)."""
    values = list(channel.parameters.values())
    if channel.name == "pauli":
        px, py, pz = channel.pauli_probabilities()
        matrices = [qml.matrix(cls(0)) for cls in (qml.Identity, qml.PauliX, qml.PauliY, qml.PauliZ)]
        weights = [max(0.0, 1.0 - px - py - pz), px, py, pz]
        return qml.QubitChannel([np.sqrt(w) * m for w, m in zip(weights, matrices)], wires=wire)
    if channel.name == "thermal_relaxation":
        return qml.ThermalRelaxationError(0.0, *values, wires=wire)
    operation = {
        "depolarizing": qml.DepolarizingChannel,
        "bit_flip": qml.BitFlip,
        "phase_flip": qml.PhaseFlip,
        "amplitude_damping": qml.AmplitudeDamping,
        "phase_damping": qml.PhaseDamping,
    }[channel.name]
    return operation(*values, wires=wire)


def pennylane_mixed_layer(
    circuit: Circuit, n_inputs: int, weights: torch.Tensor, noise: NoiseModel, diff_method: str = "backprop"
) -> torch.nn.Module:
    """``circuit`` under ``noise`` as a ``TorchLayer`` on ``default.mixed``, holding ``weights``.

    With ``diff_method="backprop"`` (the timed peer) PennyLane 0.45 evaluates in torch and its values are
    off by up to ~1e-8 (RY, RZ, RY on one wire: 2.5e-9 from the closed form); ``parameter-shift``
    evaluates the same tape exactly (to 1e-15)."""
    import pennylane as qml  # optional dependency (hqf[pennylane]): imported only when this peer runs

    program = [
        (getattr(qml, PENNYLANE_GATES[op.gate]), list(op.wires), angle_source(op, n_inputs), noise.after(op))
        for op in circuit.operations
    ]
    paulis = {letter: getattr(qml, name) for letter, name in PENNYLANE_PAULIS.items()}
    dev = qml.device("default.mixed", wires=circuit.n_qubits)

    @qml.qnode(dev, interface="torch", diff_method=diff_method)
    def qnode(inputs, weights):
        for gate, wires, source, channels in program:
            if source is None:
                gate(wires=wires)
            elif source[0] == "inputs":
                gate(inputs[..., source[1]], wires=wires)
            else:
                gate(weights[source[1]], wires=wires)
            for wire, channel in channels:
                pennylane_channel(qml, channel, wire)
        words = [[paulis[letter](wire) for wire, letter in word.terms] for word in circuit.observables]
        return [qml.expval(functools.reduce(operator.matmul, factors)) for factors in words]

    layer = qml.qnn.TorchLayer(qnode, {"weights": (circuit.n_params - n_inputs,)}).double()
    with torch.no_grad():
        layer.weights.copy_(weights)
    return ReadoutLayer(layer, circuit, noise)


def aer_error(channel: Channel):
    """Qiskit Aer's one-qubit ``QuantumError`` for ``channel``; depolarizing ``p`` is Aer's ``λ = 4p/3``."""
    from qiskit_aer import (
        noise as aer_noise,  # optional dependency (hqf[qiskit]): imported only when this peer runs
    )

    if channel.name == "depolarizing":
        return aer_noise.depolarizing_error(qiskit_lambda(channel.p), 1)
    if channel.pauli_probabilities() is not None:
        px, py, pz = channel.pauli_probabilities()
        return aer_noise.pauli_error([("I", max(0.0, 1.0 - px - py - pz)), ("X", px), ("Y", py), ("Z", pz)])
    make = {
        "amplitude_damping": aer_noise.amplitude_damping_error,
        "phase_damping": aer_noise.phase_damping_error,
        "thermal_relaxation": aer_noise.thermal_relaxation_error,
    }[channel.name]
    return make(*channel.parameters.values())


def one_error(errors: Sequence):
    """One Aer error doing ``errors`` in order: the identity for none, the error itself for one, else their
    superoperators' product as one Kraus error (Aer's own ``compose`` of several mixed-unitary errors
    agreed with the exact value to 2e-7 only, on hea3x2 under every channel)."""
    # optional dependencies (hqf[qiskit]): imported only when this peer runs
    from qiskit.quantum_info import Kraus, SuperOp
    from qiskit_aer import noise as aer_noise

    if not errors:
        return aer_noise.pauli_error([("I", 1.0)])
    if len(errors) == 1:
        return errors[0]
    product = functools.reduce(lambda done, nxt: done.compose(nxt), [SuperOp(e) for e in errors])
    return aer_noise.QuantumError(Kraus(product))


def aer_noise_model(circuit: Circuit, noise: NoiseModel, error: Callable[[Channel], object] = aer_error):
    """An Aer ``NoiseModel`` with, for each distinct gate and wires of ``circuit``, the errors of
    ``noise.after(op)`` on each wire in order (:func:`one_error`; ``error`` maps a channel to Aer's error),
    joined over the gate's qubits (Aer's error qubit ``k`` is the instruction's ``k``-th qubit)."""
    from qiskit_aer import (
        noise as aer_noise,  # optional dependency (hqf[qiskit]): imported only when this peer runs
    )

    model = aer_noise.NoiseModel()
    done = set()
    for op in circuit.operations:
        if (op.gate, op.wires) in done or not noise.after(op):
            continue
        done.add((op.gate, op.wires))
        per_wire = {wire: [] for wire in op.wires}
        for wire, channel in noise.after(op):
            per_wire[wire].append(error(channel))
        composed = [one_error(per_wire[w]) for w in op.wires]
        joined = functools.reduce(lambda low, high: high.tensor(low), composed)
        model.add_quantum_error(joined, QISKIT_GATES[op.gate], list(op.wires))
    return model


class AerDensityMatrixLayer(torch.nn.Module):
    """``circuit`` on ``AerSimulator(method="density_matrix")`` under an Aer ``NoiseModel``; no gradient."""

    def __init__(
        self,
        circuit: Circuit,
        n_inputs: int,
        weights: torch.Tensor,
        noise: NoiseModel,
        error: Callable[[Channel], object] = aer_error,
    ) -> None:
        super().__init__()
        # optional dependencies (hqf[qiskit]): imported only when this peer runs
        from qiskit import QuantumCircuit
        from qiskit.circuit import ParameterVector
        from qiskit.quantum_info import Pauli
        from qiskit_aer import AerSimulator

        self.params = ParameterVector("x", n_inputs)
        self.weights = weights.detach().double().numpy()
        qc = QuantumCircuit(circuit.n_qubits)
        for op in circuit.operations:
            source = angle_source(op, n_inputs)
            if source is None:
                angle = []
            else:
                angle = [self.params[source[1]] if source[0] == "inputs" else self.weights[source[1]]]
            getattr(qc, QISKIT_GATES[op.gate])(*angle, *op.wires)
        self.labels = [f"out{k}" for k in range(circuit.n_outputs)]
        for label, word in zip(self.labels, circuit.observables):
            # Pauli("...")'s rightmost letter acts on the first of the qubits given
            qc.save_expectation_value(Pauli("".join(p for _, p in reversed(word.terms))), list(word.wires), label=label)
        self.qc = qc
        threads = torch.get_num_threads()
        serial = {"statevector_parallel_threshold": 64} if threads == 1 else {}
        self.simulator = AerSimulator(
            method="density_matrix",
            noise_model=aer_noise_model(circuit, noise, error),
            max_parallel_threads=threads,
            max_parallel_experiments=1,
            **serial,
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        values = inputs.detach().double().numpy()
        binds = [{p: values[:, k].tolist() for k, p in enumerate(self.params)}] if len(self.params) else None
        result = self.simulator.run(self.qc, parameter_binds=binds).result()
        rows = [[float(np.real(result.data(b)[label])) for label in self.labels] for b in range(values.shape[0])]
        return torch.tensor(rows, dtype=torch.float64)


def aer_dm_layer(circuit: Circuit, n_inputs: int, weights: torch.Tensor, noise: NoiseModel) -> torch.nn.Module:
    """:class:`AerDensityMatrixLayer` with the readout map."""
    return ReadoutLayer(AerDensityMatrixLayer(circuit, n_inputs, weights, noise), circuit, noise)


def qulacs_noise(qulacs, channel: Channel, wire: int):
    """Qulacs' gate for ``channel`` on ``wire``: its noise gates where it has one, else ``CPTP`` of the Kraus."""
    gate = qulacs.gate
    values = list(channel.parameters.values())
    native = {
        "depolarizing": gate.DepolarizingNoise,
        "bit_flip": gate.BitFlipNoise,
        "phase_flip": gate.DephasingNoise,
        "amplitude_damping": gate.AmplitudeDampingNoise,
    }
    if channel.name in native:
        return native[channel.name](wire, *values)
    if channel.name == "pauli":
        return gate.Probabilistic(list(channel.pauli_probabilities()), [gate.X(wire), gate.Y(wire), gate.Z(wire)])
    return gate.CPTP([gate.DenseMatrix(wire, k) for k in channel.kraus()])


class QulacsDensityMatrixLayer(torch.nn.Module):
    """``circuit`` under ``noise`` on a Qulacs ``DensityMatrix``, one row at a time; no gradient."""

    def __init__(self, circuit: Circuit, n_inputs: int, weights: torch.Tensor, noise: NoiseModel) -> None:
        super().__init__()
        # optional dependency (hqf[peers]); its OpenMP runtime reads the thread count when it loads
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        import qulacs

        n = circuit.n_qubits
        self.qulacs, self.n_qubits, self.weights = qulacs, n, weights.detach().double().numpy()
        self.program = qulacs.ParametricQuantumCircuit(n)
        self.sources = []  # per parametric gate, in order: ("inputs" | "weights", index)
        for op in circuit.operations:
            # Qulacs' RX/RY/RZ(θ) turn by exp(+iθP/2), hence −θ when the parameters are set
            source = angle_source(op, n_inputs)
            if source is not None:
                getattr(self.program, f"add_parametric_{op.gate}_gate")(op.wires[0], 0.0)
                self.sources.append(source)
            else:
                getattr(self.program, f"add_{op.gate}_gate")(*op.wires)
            for wire, channel in noise.after(op):
                self.program.add_gate(qulacs_noise(qulacs, channel, wire))
        self.observables = []
        for word in circuit.observables:
            observable = qulacs.Observable(n)
            observable.add_operator(1.0, " ".join(f"{letter} {wire}" for wire, letter in word.terms))
            self.observables.append(observable)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        state, out = self.qulacs.DensityMatrix(self.n_qubits), []
        for row in inputs.detach().double().numpy():
            for k, (kind, index) in enumerate(self.sources):
                self.program.set_parameter(k, -(row[index] if kind == "inputs" else self.weights[index]))
            state.set_zero_state()
            self.program.update_quantum_state(state)
            out.append([obs.get_expectation_value(state).real for obs in self.observables])
        return torch.tensor(out, dtype=torch.float64)


def qulacs_dm_layer(circuit: Circuit, n_inputs: int, weights: torch.Tensor, noise: NoiseModel) -> torch.nn.Module:
    """:class:`QulacsDensityMatrixLayer` with the readout map."""
    return ReadoutLayer(QulacsDensityMatrixLayer(circuit, n_inputs, weights, noise), circuit, noise)


def cudaq_thermal_channel(cudaq):
    """CUDA-Q has no thermal relaxation: a ``KrausChannel`` of its Kraus operators (docs/noise.md) from the
    parameters ``a = exp(−time/t1)`` and ``c = exp(−time/t2)`` (its kernels take probabilities only)."""

    class ThermalRelaxation(cudaq.KrausChannel):
        num_parameters = 2
        num_targets = 1

        def __init__(self, params: list[float]) -> None:
            cudaq.KrausChannel.__init__(self)
            a, c = params
            for k in ([[1, 0], [0, c]], [[0, np.sqrt(1 - a)], [0, 0]], [[0, 0], [0, np.sqrt(max(0.0, a - c * c))]]):
                self.append(cudaq.KrausOperator(np.array(k, dtype=np.complex128)))
            self.noise_type = cudaq.NoiseModelType.Unknown

    return ThermalRelaxation


class CudaqDensityMatrixLayer(torch.nn.Module):
    """``circuit`` under ``noise`` on CUDA-Q's ``density-matrix-cpu`` target (fp64): a kernel whose gates are
    followed by ``apply_noise`` of CUDA-Q's channels (``DepolarizationChannel(p)``, ``BitFlipChannel``,
    ``PhaseFlipChannel``, ``Pauli1(px, py, pz)``, ``AmplitudeDampingChannel(γ)``, ``PhaseDamping(λ)``, and
    :func:`cudaq_thermal_channel`), one ``observe`` per row; no gradient."""

    def __init__(self, circuit: Circuit, n_inputs: int, weights: torch.Tensor, noise: NoiseModel) -> None:
        super().__init__()
        # optional dependency (pip install cudaq): imported only when this peer runs; its OpenMP runtime reads
        # the thread count when it loads, and its import warns about its own preview modules
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cudaq

        cudaq.set_target("density-matrix-cpu")
        thermal = cudaq_thermal_channel(cudaq)
        channels = {
            "depolarizing": cudaq.DepolarizationChannel,
            "bit_flip": cudaq.BitFlipChannel,
            "phase_flip": cudaq.PhaseFlipChannel,
            "pauli": cudaq.Pauli1,
            "amplitude_damping": cudaq.AmplitudeDampingChannel,
            "phase_damping": cudaq.PhaseDamping,
            "thermal_relaxation": thermal,
        }
        self.cudaq, self.weights = cudaq, weights.detach().double().tolist()
        self.noise_model = cudaq.NoiseModel()
        self.noise_model.register_channel(thermal)
        kernel, angles = cudaq.make_kernel(list[float])
        qubits = kernel.qalloc(circuit.n_qubits)
        for op in circuit.operations:
            targets = [qubits[w] for w in op.wires]
            gate = getattr(kernel, QISKIT_GATES[op.gate])  # rx ry rz h x cx cz: the same names in CUDA-Q
            gate(*([] if op.param is None else [angles[op.param]]), *targets)
            for wire, channel in noise.after(op):
                values = list(channel.parameters.values())
                if channel.name == "thermal_relaxation":
                    values = [float(np.exp(-channel.time / channel.t1)), float(np.exp(-channel.time / channel.t2))]
                kernel.apply_noise(channels[channel.name], *values, qubits[wire])
        spin = {"X": cudaq.spin.x, "Y": cudaq.spin.y, "Z": cudaq.spin.z}
        self.words = [
            functools.reduce(operator.mul, [spin[p](w) for w, p in word.terms]) for word in circuit.observables
        ]
        self.kernel, self.hamiltonian = kernel, functools.reduce(operator.add, self.words)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = []
        for row in inputs.detach().double().tolist():
            result = self.cudaq.observe(self.kernel, self.hamiltonian, row + self.weights, noise_model=self.noise_model)
            out.append([result.expectation(word) for word in self.words])
        return torch.tensor(out, dtype=torch.float64)


def cudaq_dm_layer(circuit: Circuit, n_inputs: int, weights: torch.Tensor, noise: NoiseModel) -> torch.nn.Module:
    """:class:`CudaqDensityMatrixLayer` with the readout map."""
    return ReadoutLayer(CudaqDensityMatrixLayer(circuit, n_inputs, weights, noise), circuit, noise)


@attrs.frozen
class NoisyPeer:
    """A native noisy simulator: how to build it over a circuit and a noise model, and how to time it."""

    name: str
    label: str
    gradient: str  # "backprop", or "forward only"
    modules: tuple[str, ...]
    build: NoisyBuild
    #: rows per timed call at most (throughput is per row)
    rows: int
    #: False when running it slows torch for the rest of the process (see hqf.studies.peers)
    spares_torch: bool = True
    repeats: int = 5
    warmup: int = 1
    budget_s: float = 30.0
    max_qubits: int = 12

    @property
    def differentiable(self) -> bool:
        return self.gradient != "forward only"

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.modules)


def time_noisy_peer(peer: NoisyPeer, workload: Workload, noise: NoiseModel) -> Row:
    """Time ``peer`` on ``workload`` under ``noise``: forward, and forward+backward (gradient of the sum
    with respect to the inputs and the weights) when it differentiates, on ``min(peer.rows, batch)`` rows."""
    _, weights = workload.inputs()
    layer = peer.build(workload.circuit(), workload.n_inputs, weights.reshape(-1), noise)
    large = workload.n_qubits >= LARGE_QUBITS
    rows = 1 if large else min(peer.rows, workload.batch)
    repeats, warmup = (1, 0) if large else (peer.repeats, peer.warmup)
    stream = workload.input_stream(batch=rows)

    def forward() -> None:
        with torch.no_grad():
            layer(stream())

    def forward_backward() -> None:
        xs = stream().clone().requires_grad_()
        layer.zero_grad(set_to_none=True)
        layer(xs).sum().backward()

    fwd = rows / median_seconds(forward, repeats, warmup, peer.budget_s)
    fb = None
    if peer.differentiable:
        fb = rows / median_seconds(forward_backward, repeats, min(warmup, 1), peer.budget_s)
    note = ("weights and inputs" if peer.differentiable else "forward only") + f"; {rows} row(s) per call"
    if large:
        note += ", timed once"
    return Row(PEER_PREFIX + peer.name, peer.label, peer.gradient, fwd, fb, rows, note)


NOISY_PEERS: dict[str, NoisyPeer] = {
    peer.name: peer
    for peer in (
        NoisyPeer(
            name="pennylane-mixed",
            label="PennyLane default.mixed TorchLayer",
            gradient="backprop",
            modules=("pennylane",),
            build=pennylane_mixed_layer,
            rows=2,
            repeats=3,
            warmup=0,
            max_qubits=8,
        ),
        NoisyPeer(
            name="qulacs-dm",
            label="Qulacs DensityMatrix, per row",
            gradient="forward only",
            modules=("qulacs",),
            build=qulacs_dm_layer,
            rows=16,
        ),
        NoisyPeer(
            name="cudaq-dm",
            label="CUDA-Q density-matrix-cpu, per row",
            gradient="forward only",
            modules=("cudaq",),
            build=cudaq_dm_layer,
            rows=1,  # by far the slowest peer per row here (hea8x6 under noise)
            spares_torch=False,
            repeats=2,
            warmup=0,
            max_qubits=8,
        ),
        NoisyPeer(
            name="qiskit-aer-dm",
            label="Qiskit Aer density_matrix + NoiseModel",
            gradient="forward only",
            modules=("qiskit", "qiskit_aer"),
            build=aer_dm_layer,
            rows=16,
            spares_torch=False,
        ),
    )
}


def select_noisy_peers(names: Sequence[str], n_qubits: int) -> tuple[list[str], list[str]]:
    """The installed noisy peers among ``names`` (empty: all that run ``n_qubits`` qubits), and a reason for
    each one left out."""
    unknown = sorted(set(names) - set(NOISY_PEERS))
    if unknown:
        raise ConfigError(f"unknown noisy peer(s) {unknown}; with --noise the peers are: {', '.join(NOISY_PEERS)}")
    chosen, skipped = [], []
    for name in names or NOISY_PEERS:
        peer = NOISY_PEERS[name]
        if not peer.installed:
            skipped.append(f"peer {name}: not installed")
        elif not names and n_qubits > peer.max_qubits:
            skipped.append(f"peer {name}: past {peer.max_qubits} qubits only when named (--peer {name})")
        else:
            chosen.append(name)
    return chosen, skipped
