"""``qiskit-aer``: runs hqf circuits on Qiskit Aer, exactly (state vector) or from shots.

Each :class:`~hqf.quantum.circuit.Circuit` is compiled once (cached on the hashable circuit) to a parameterized
``QuantumCircuit`` whose gate for column ``k`` reads ``θ[k]`` of a ``ParameterVector``. A whole angle batch
is bound through an explicit ``{θ: values[B, P]}`` mapping (never by the position of
``QuantumCircuit.parameters``, which Qiskit sorts by name) and runs in one primitive call:

- exact (default): Aer's ``EstimatorV2`` with precision 0, which saves exact expectation values of the
  final state (``method="statevector"``, or ``"density_matrix"``);
- ``shots=N``: basis-rotated, measured circuits (one per group of qubit-wise compatible observables) run
  in one ``AerSimulator.run`` call; each expectation value is the mean parity of N shots.

Qubit order: hqf wire ``w`` is Qiskit qubit ``w``. Qiskit writes labels and basis indices little-endian,
but an expectation value of a Pauli word on named qubits does not depend on how indices are written, so
observables are built with ``SparsePauliOp.from_sparse_list`` on the same qubit indices and no
reversal is needed (tests/test_backend_qiskit.py checks it on wire-asymmetric circuits). Gates take
their qubits in hqf's order (control first), which no index convention affects.

Every gate of the vocabulary is a native Qiskit gate (:data:`QISKIT_GATES`). Hamiltonians and
probabilities are linear maps of Pauli-word expectation values (:mod:`hqf.backends.readout`), so the
exact estimator and the shot path measure Pauli words only.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import numpy as np
import torch

from hqf.backends.readout import readout
from hqf.errors import ConfigError
from hqf.quantum.circuit import UNITARY, Circuit, PauliWord
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.registry.hookspecs import hookimpl

METHODS = ("statevector", "density_matrix")


@attrs.frozen(eq=False)
class AerCircuit:
    """An hqf circuit in Qiskit's terms: the parameterized circuit, its parameters by column, the observables."""

    circuit: Any  # qiskit.QuantumCircuit without measurements
    params: tuple  # params[k] is the Parameter that column k binds
    observables: tuple  # SparsePauliOp per observable


#: hqf gate -> the ``QuantumCircuit`` method that appends it (qubit arguments in hqf's wire order:
#: control first; Qiskit's RXX/RYY/RZZ are ``exp(−iθ P⊗P/2)``, ``p``/``cp`` are PhaseShift/CPhase)
QISKIT_GATES = {
    "RX": "rx", "RY": "ry", "RZ": "rz", "PhaseShift": "p", "H": "h", "X": "x", "Y": "y", "Z": "z",
    "S": "s", "T": "t", "SX": "sx", "CNOT": "cx", "CZ": "cz", "CY": "cy", "SWAP": "swap",
    "RXX": "rxx", "RYY": "ryy", "RZZ": "rzz", "CRX": "crx", "CRY": "cry", "CRZ": "crz", "CPhase": "cp",
    "Toffoli": "ccx", "CSWAP": "cswap",
}  # fmt: skip


#: gates written with other gates: Aer gives wrong values for bound ``crx``/``cry``/``crz``/``cp``
#: parameters (0.18.2, ``runtime_parameter_bind_enable``), and its ``density_matrix`` method refuses
#: ``crx``/``cry``/``crz`` and ``cswap`` (its estimator does not transpile; tests/test_adapters_vocabulary.py)
DECOMPOSED = frozenset({"CRX", "CRY", "CRZ", "CPhase", "CSWAP"})


def _controlled_rotation(qc, gate: str, angle, control: int, target: int) -> None:
    """``CR_P(θ) = R_P(θ/2) · CX · R_P(−θ/2) · CX`` on the target (CRX conjugated by H: X = HZH);
    ``CPhase(φ) = P(φ/2) ⊗ P(φ/2) · CX · P(−φ/2) · CX`` (Nielsen & Chuang, ex. 4.22 / Qiskit's cu1)."""
    if gate == "CPhase":
        qc.p(angle / 2, control)
        rotate = qc.p
    else:
        rotate = {"CRX": qc.rz, "CRY": qc.ry, "CRZ": qc.rz}[gate]
    if gate == "CRX":
        qc.h(target)
    rotate(angle / 2, target)
    qc.cx(control, target)
    rotate(-angle / 2, target)
    qc.cx(control, target)
    if gate == "CRX":
        qc.h(target)


def append_gate(qc, op, theta, qubit=lambda wire: wire) -> None:
    """Append hqf operation ``op`` to ``qc``; ``theta`` holds the parameters, ``qubit`` maps wires."""
    qubits = [qubit(w) for w in op.wires]
    if op.matrix is not None:  # Qiskit's first qubit is a matrix's least significant bit, hqf's first wire its most
        from qiskit.circuit.library import UnitaryGate

        qc.append(UnitaryGate(op.unitary, check_input=False), qubits[::-1])
    elif op.gate == "CSWAP":  # CSWAP(c, a, b) = CX(b, a) · CCX(c, a, b) · CX(b, a)
        control, a, b = qubits
        qc.cx(b, a)
        qc.ccx(control, a, b)
        qc.cx(b, a)
    elif op.gate in DECOMPOSED:
        _controlled_rotation(qc, op.gate, theta[op.param], *qubits)
    elif op.param is None:
        getattr(qc, QISKIT_GATES[op.gate])(*qubits)
    else:
        getattr(qc, QISKIT_GATES[op.gate])(theta[op.param], *qubits)


@functools.lru_cache(maxsize=128)
def compile_circuit(circuit: Circuit) -> AerCircuit:
    """The Qiskit form of ``circuit`` (cached: compiled once per distinct circuit); its observables are
    the Pauli words of :func:`hqf.backends.readout.readout`."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    theta = ParameterVector("θ", circuit.n_params)
    qc = QuantumCircuit(circuit.n_qubits)
    for op in circuit.operations:
        append_gate(qc, op, theta)
    observables = tuple(pauli_operator(word, circuit.n_qubits) for word in readout(circuit).words)
    return AerCircuit(qc, tuple(theta), observables)


def pauli_operator(word: PauliWord, n_qubits: int):
    """``SparsePauliOp`` of a Pauli word: factor ``P`` on hqf wire ``w`` acts on Qiskit qubit ``w``."""
    from qiskit.quantum_info import SparsePauliOp

    label = "".join(p for _, p in word.terms)
    return SparsePauliOp.from_sparse_list([(label, list(word.wires), 1.0)], num_qubits=n_qubits)


def measurement_groups(observables: tuple[PauliWord, ...]) -> list[tuple[dict[int, str], list[int]]]:
    """Greedy groups of qubit-wise compatible words: ``(basis per wire, indices of the words)``."""
    groups: list[tuple[dict[int, str], list[int]]] = []
    for index, word in enumerate(observables):
        for basis, members in groups:
            if all(basis.get(w, p) == p for w, p in word.terms):
                basis.update(word.terms)
                members.append(index)
                break
        else:
            groups.append((dict(word.terms), [index]))
    return groups


@functools.lru_cache(maxsize=128)
def measured_circuits(circuit: Circuit) -> tuple[tuple[Any, tuple[int, ...]], ...]:
    """Per measurement group: the circuit rotated into the group's basis and measured, and its words
    (indices into ``readout(circuit).words``).

    The words made only of Z factors are grouped first, so they all come from one set of shots: the
    probabilities rebuilt from them (:mod:`hqf.backends.readout`) are then exactly observed frequencies.
    """
    compiled = compile_circuit(circuit)
    words = readout(circuit).words
    order = sorted(range(len(words)), key=lambda i: any(p != "Z" for _, p in words[i].terms))
    out = []
    for basis, members in measurement_groups(tuple(words[i] for i in order)):
        members = [order[m] for m in members]
        qc = compiled.circuit.copy()
        for wire, pauli in sorted(basis.items()):
            if pauli == "X":
                qc.h(wire)
            elif pauli == "Y":
                qc.sdg(wire)
                qc.h(wire)
        qc.measure_all()  # qubit q -> classical bit q
        out.append((qc, tuple(members)))
    return tuple(out)


def parity_expectation(counts: dict[str, int], wires: tuple[int, ...]) -> float:
    """Mean of ``(-1)^(sum of the bits on wires)`` over measured bitstrings (bit q is ``key[-1 - q]``)."""
    total = signed = 0
    for key, count in counts.items():
        bits = key.replace(" ", "")
        parity = sum(bits[-1 - w] == "1" for w in wires) % 2
        signed += -count if parity else count
        total += count
    return signed / total


class QiskitAerBackend(Backend):
    """Qiskit Aer: exact expectation values by default, ``shots=N`` for sampled ones.

    Options: ``method`` (``statevector`` or ``density_matrix``), ``shots`` (None: exact), ``seed``
    (seeds the shot sampler; each call draws a fresh simulator seed from it), ``chunk`` (most rows per
    primitive call: a training batch is one call; the 10⁵–10⁶ rows of a nested shift rule are split
    to bound Aer's memory).
    """

    name = "qiskit-aer"
    description = "Qiskit Aer (EstimatorV2 exact state vector; shots option)"
    capabilities = Capabilities(
        dtypes={"complex128"},
        max_qubits=28,
        gates=frozenset(QISKIT_GATES) | {UNITARY},
        observables={"pauli", "hamiltonian", "probs"},
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability.of_modules(("qiskit", "qiskit_aer"), "qiskit")

    def __init__(
        self,
        *,
        dtype: str = "complex128",
        device: str = "cpu",
        method: str = "statevector",
        shots: int | None = None,
        seed: int | None = None,
        chunk: int = 20_000,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        if method not in METHODS:
            raise ConfigError(f"'method' must be one of {METHODS} (got {method!r})")
        if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
            raise ConfigError(f"'shots' must be None or an integer >= 1 (got {shots!r})")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ConfigError(f"'chunk' must be an integer >= 1 (got {chunk!r})")
        self.method, self.shots, self.chunk = method, shots, chunk
        self._seeds = np.random.default_rng(seed)
        if shots is not None:  # declared per instance: sampled values are estimates
            self.capabilities = attrs.evolve(type(self).capabilities, exact=False)
        self._estimator = None
        self._simulator = None

    def simulator_options(self) -> dict[str, Any]:
        """Options for ``AerSimulator`` (a subclass may add e.g. a noise model here).

        Parameters are bound inside Aer at run time (``runtime_parameter_bind_enable``): about twice as
        fast for large batches as binding a circuit copy per row. ``max_parallel_threads``: the run's
        thread count (:meth:`set_threads`).
        """
        options = {"method": self.method, "runtime_parameter_bind_enable": True}
        if self.threads is not None:
            options["max_parallel_threads"] = self.threads
        return options

    def set_threads(self, n: int) -> None:
        super().set_threads(n)
        self._estimator = self._simulator = None  # rebuilt with the new thread count

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        self.check_supported(circuit)
        values = angles.detach().to(device="cpu", dtype=torch.float64).numpy()
        run = self._sampled if self.shots is not None else self._exact
        if values.shape[0] <= self.chunk:
            rows = run(circuit, values)
        else:  # very large batches (nested shift rules): bounded memory per primitive call
            parts = np.array_split(values, -(-values.shape[0] // self.chunk))
            rows = np.concatenate([run(circuit, part) for part in parts])
        return torch.as_tensor(rows, dtype=self.real_dtype, device=angles.device)

    def _exact(self, circuit: Circuit, values: np.ndarray) -> np.ndarray:
        from qiskit.primitives.containers import BindingsArray
        from qiskit_aer.primitives import EstimatorV2

        if self._estimator is None:
            options = {"default_precision": 0.0, "backend_options": self.simulator_options()}
            self._estimator = EstimatorV2(options=options)
        compiled = compile_circuit(circuit)
        observables = [[obs] for obs in compiled.observables]  # shape (M, 1): broadcasts against (B,)
        bindings = BindingsArray({compiled.params: values}) if circuit.n_params else None
        (result,) = self._estimator.run([(compiled.circuit, observables, bindings)], precision=0.0).result()
        evs = np.asarray(result.data.evs, dtype=np.float64)  # (M, B), or (M, 1) with no parameters
        words = np.broadcast_to(evs, (len(observables), values.shape[0])).T
        return readout(circuit).apply(words)

    def _sampled(self, circuit: Circuit, values: np.ndarray) -> np.ndarray:
        from qiskit_aer import AerSimulator

        if self._simulator is None:
            self._simulator = AerSimulator(**self.simulator_options())
        batch = values.shape[0]
        groups = measured_circuits(circuit)
        words = readout(circuit).words
        if circuit.n_params:
            compiled = compile_circuit(circuit)
            binds = {p: values[:, k].tolist() for k, p in enumerate(compiled.params)}
            run = [qc for qc, _ in groups], [binds] * len(groups)
        else:  # nothing to bind: one experiment per row, so rows are independent estimates
            run = [qc for qc, _ in groups for _ in range(batch)], None
        seed = int(self._seeds.integers(2**31 - 1))
        job = self._simulator.run(run[0], shots=self.shots, seed_simulator=seed, parameter_binds=run[1])
        result = job.result()
        out = np.empty((batch, len(words)))
        for g, (_, members) in enumerate(groups):  # experiments are ordered circuit-major, then row
            for b in range(batch):
                counts = result.get_counts(g * batch + b)
                for r in members:
                    out[b, r] = parity_expectation(counts, words[r].wires)
        return readout(circuit).apply(out)

    def __repr__(self) -> str:
        mode = "exact" if self.shots is None else f"shots={self.shots}"
        return f"<{type(self).__name__} {self.name!r} method={self.method} {mode} dtype={self.dtype}>"


@hookimpl
def register_backends(register) -> None:
    register(QiskitAerBackend)
