"""Noise on the noisy backends: the same noise model gives the same values on torch-dm, pennylane-mixed,
qiskit-aer-dm and the dense density-matrix reference, for every channel and the readout error; a backend
with a wrong convention is caught; a channel a backend does not declare is refused before any work."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hqf.backends.density_torch import TorchDensityMatrixBackend
from hqf.quantum.circuit import GATES, Circuit, Hamiltonian, Operation, PauliWord, Probs
from hqf.quantum.gradients import expval
from hqf.quantum.noise import (
    NOISE_FEATURES,
    Channel,
    Depolarizing,
    NoiseModel,
    amplitude_damping,
    bit_flip,
    check_probability,
    count_channels,
    depolarizing,
    pauli,
    phase_damping,
    phase_flip,
    qiskit_lambda,
    superoperator,
    thermal_relaxation,
)
from hqf.registry.make import make_backend
from hqf.testing import ReferenceBackend
from hqf.testing.reference import ReferenceDensityBackend
from hqf.testing.strategies import angle_batches, circuits

NOISY = ("torch-dm", "pennylane-mixed", "qiskit-aer-dm")
LEVELS = (0.0, 0.01, 0.05, 0.3)


def _run(name: str, circuit: Circuit, angles: np.ndarray, p: float) -> np.ndarray:
    backend = make_backend(name, depolarizing=p)
    return backend.expval(circuit, torch.as_tensor(angles, dtype=torch.float64)).numpy()


@settings(max_examples=12)
@given(data=st.data(), p=st.sampled_from(LEVELS))
def test_noisy_backends_agree_on_random_circuits(data, p):
    circuit = data.draw(circuits(max_qubits=4, max_ops=14))
    angles = data.draw(angle_batches(circuit))
    results = {name: _run(name, circuit, angles, p) for name in NOISY}
    for name in NOISY[1:]:
        np.testing.assert_allclose(results[name], results["torch-dm"], atol=1e-8, err_msg=f"{name}, p={p}")


@settings(max_examples=10)
@given(data=st.data())
def test_zero_noise_equals_noiseless_state_vector(data):
    circuit = data.draw(circuits(max_qubits=4, max_ops=14))
    angles = data.draw(angle_batches(circuit))
    pure = ReferenceBackend().expval(circuit, torch.as_tensor(angles)).numpy()
    for name in NOISY:
        np.testing.assert_allclose(_run(name, circuit, angles, 0.0), pure, atol=1e-10, err_msg=name)


def test_single_qubit_channel_matches_closed_form():
    """RX(θ) then D_p: ⟨Z⟩ = (1 − 4p/3) cos θ; ⟨Y⟩ = −(1 − 4p/3) sin θ."""
    circuit = Circuit(1, [Operation("RX", 0, 0)], [PauliWord.z(0), PauliWord(((0, "Y"),))])
    theta = np.array([[0.3], [1.9]])
    p = 0.05
    shrink = 1 - 4 * p / 3
    expected = np.stack([shrink * np.cos(theta[:, 0]), -shrink * np.sin(theta[:, 0])], axis=1)
    for name in NOISY:
        np.testing.assert_allclose(_run(name, circuit, theta, p), expected, atol=1e-12, err_msg=name)


def test_two_qubit_gate_depolarizes_both_wires():
    """X on wire 0, CNOT(0,1): ⟨Z1⟩ = −(1−4p/3)² (X's channel on wire 0, then both after CNOT)."""
    circuit = Circuit(2, [Operation("X", 0), Operation("CNOT", (0, 1))], [PauliWord.z(1), PauliWord.z(0)])
    p = 0.04
    s = 1 - 4 * p / 3
    expected = np.array([[-(s**2), -(s**2)]])
    assert count_channels(circuit) == 3
    for name in NOISY:
        np.testing.assert_allclose(_run(name, circuit, np.zeros((1, 0)), p), expected, atol=1e-12, err_msg=name)


def test_torch_dm_gradients_match_parameter_shift():
    circuit = Circuit(
        2,
        [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RX", 1, 1), Operation("RZ", 0, 2)],
        [PauliWord.parse("Z0 Z1"), PauliWord.parse("X0")],
    )
    angles = torch.tensor([[0.4, -1.1, 0.7], [2.0, 0.3, -0.5]], dtype=torch.float64, requires_grad=True)
    backend = make_backend("torch-dm", depolarizing=0.03)
    (grad_auto,) = torch.autograd.grad(expval(backend, circuit, angles).sum(), angles)
    (grad_shift,) = torch.autograd.grad(expval(backend, circuit, angles, "parameter-shift").sum(), angles)
    torch.testing.assert_close(grad_auto, grad_shift, atol=1e-12, rtol=0)


def test_conventions_and_validation():
    assert qiskit_lambda(0.03) == pytest.approx(0.04)
    assert check_probability(0) == 0.0
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="'depolarizing' must be a probability"):
            check_probability(bad)
    with pytest.raises(ValueError):
        make_backend("torch-dm", depolarizing=2.0)


# -- the whole vocabulary on the noisy adapters ------------------------------------------------------
def _embed(n: int, wires: tuple[int, ...], matrix: np.ndarray) -> np.ndarray:
    """``matrix`` (over ``wires``, ``wires[0]`` most significant) as a ``2**n`` matrix, by basis index."""
    full = np.zeros((2**n, 2**n), dtype=complex)
    for i in range(2**n):
        bits = [(i >> (n - 1 - w)) & 1 for w in range(n)]
        column = int("".join(str(bits[w]) for w in wires), 2)
        for row in range(2 ** len(wires)):
            out = list(bits)
            for k, w in enumerate(wires):
                out[w] = (row >> (len(wires) - 1 - k)) & 1
            full[int("".join(map(str, out)), 2), i] += matrix[row, column]
    return full


def _noisy_reference(circuit: Circuit, row: np.ndarray, p: float) -> np.ndarray:
    """ρ after each gate and a D_p on each of its wires; then ⟨P⟩ = tr(ρP) and the probabilities."""
    from hqf.quantum.gates import matrix

    n = circuit.n_qubits
    paulis = {"X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.diag([1, -1])}
    rho = np.zeros((2**n, 2**n), dtype=complex)
    rho[0, 0] = 1
    for op in circuit.operations:
        u = _embed(n, op.wires, matrix(op.gate, None if op.param is None else row[op.param]))
        rho = u @ rho @ u.conj().T
        for w in op.wires:
            errors = [_embed(n, (w,), paulis[letter]) for letter in "XYZ"]
            rho = (1 - p) * rho + p / 3 * sum(e @ rho @ e.conj().T for e in errors)
    out = []
    for obs in circuit.observables:
        if isinstance(obs, Probs):
            diagonal = np.real(np.diag(rho)).reshape((2,) * n)
            kept = np.moveaxis(diagonal, obs.wires, range(len(obs.wires)))
            out += list(kept.reshape(2 ** len(obs.wires), -1).sum(axis=1))
        else:
            words = obs.terms if isinstance(obs, Hamiltonian) else ((1.0, obs),)
            value = 0.0
            for coefficient, word in words:
                full = np.eye(1)
                for w in range(n):
                    full = np.kron(full, paulis[dict(word.terms)[w]] if w in word.wires else np.eye(2))
                value += coefficient * np.real(np.trace(rho @ full))
            out.append(value)
    return np.array(out)


@pytest.mark.parametrize("name", ["pennylane-mixed", "qiskit-aer-dm"])
def test_every_gate_and_observable_with_noise_matches_the_density_matrix_written_out(name):
    ops = [Operation("RY", 0, 0), Operation("H", 1), Operation("RX", 2, 1)]
    column = 2
    for gate, (n_wires, parameterized) in sorted(GATES.items()):
        wires = {1: (1,), 2: (2, 0), 3: (1, 2, 0)}[n_wires]
        ops.append(Operation(gate, wires, column if parameterized else None))
        column += parameterized
    observables = [
        PauliWord.parse("Z0 X2"),
        PauliWord.parse("Y1"),
        Hamiltonian(((0.5, "Z1"), (-2.0, "X0 Y2"))),
        Probs((2, 0)),
    ]
    circuit = Circuit(3, ops, observables)
    angles = np.random.default_rng(5).uniform(-math.pi, math.pi, (2, column))
    want = np.stack([_noisy_reference(circuit, row, 0.02) for row in angles])
    np.testing.assert_allclose(_run(name, circuit, angles, 0.02), want, atol=1e-10)


# -- every channel, every noisy backend, against the density-matrix reference ---------------------------------
MODELS = {
    "depolarizing": NoiseModel.depolarizing(0.08),
    "bit_flip": NoiseModel().with_channel(bit_flip(0.1)),
    "phase_flip": NoiseModel().with_channel(phase_flip(0.15)),
    "pauli": NoiseModel().with_channel(pauli(0.03, 0.07, 0.11)),
    "amplitude_damping": NoiseModel().with_channel(amplitude_damping(0.2)),
    "phase_damping": NoiseModel().with_channel(phase_damping(0.3)),
    "thermal_relaxation (t2 < t1)": NoiseModel().with_channel(thermal_relaxation(50.0, 30.0, 4.0)),
    "thermal_relaxation (t1 < t2 <= 2 t1)": NoiseModel().with_channel(thermal_relaxation(40.0, 70.0, 6.0)),
    "readout": NoiseModel().with_readout(0.04, 0.11).with_readout(0.2, 0.0, wires=[2]),
    "filtered mix": (
        NoiseModel()
        .with_channel(depolarizing(0.02))
        .with_channel(amplitude_damping(0.1), gates={"CNOT", "CZ", "RZZ"})
        .with_channel(thermal_relaxation(30.0, 45.0, 2.0), wires={0, 3})
        .with_channel(phase_damping(0.05), gates={"RY"}, wires={1})
        .with_readout(0.03)
    ),
}


def _small_circuits() -> list[Circuit]:
    """Two small circuits (3 and 4 qubits) with CNOT, CZ and RZZ, read through every observable kind."""
    three = Circuit(
        3,
        [
            Operation("RY", 0, 0),
            Operation("H", 1),
            Operation("RX", 2, 1),
            Operation("CNOT", (0, 1)),
            Operation("RZZ", (1, 2), 2),
            Operation("CZ", (2, 0)),
            Operation("X", 1),
            Operation("RY", 2, 3),
        ],
        [PauliWord.parse("Z0 X2"), PauliWord.parse("Y1"), Hamiltonian(((0.5, "Z1"), (-2.0, "X0 Y2"))), Probs((2, 0))],
    )
    four = Circuit(
        4,
        [
            Operation("H", 0),
            Operation("RX", 1, 0),
            Operation("RY", 3, 1),
            Operation("CNOT", (0, 2)),
            Operation("CZ", (1, 3)),
            Operation("RZZ", (3, 0), 2),
            Operation("CNOT", (2, 1)),
            Operation("RZ", 2, 3),
            Operation("CRX", (1, 0), 4),
        ],
        [PauliWord.parse("Z0 Z1 Z2 Z3"), PauliWord.parse("X3"), Probs((1, 3, 2))],
    )
    return [three, four]


def _angles(circuit: Circuit) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(circuit.n_qubits).uniform(-math.pi, math.pi, (3, circuit.n_params)))


def _disagreement(backend, model: NoiseModel) -> float:
    """The largest difference between ``backend`` and the density-matrix reference under ``model``."""
    reference = ReferenceDensityBackend(noise=model)
    worst = 0.0
    for circuit in _small_circuits():
        angles = _angles(circuit)
        got = backend.expval(circuit, angles).to(torch.float64)
        worst = max(worst, float((got - reference.expval(circuit, angles)).abs().max()))
    return worst


@pytest.mark.parametrize("name", NOISY)
@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_every_channel_matches_the_density_matrix_reference(name, model):
    assert _disagreement(make_backend(name, noise=model), model) < 1e-10


class _WrongTorchDM(TorchDensityMatrixBackend):
    """torch-dm with a channel convention broken on purpose (``wrong``: channel -> the Kraus it runs)."""

    name = "wrong-torch-dm"

    def __init__(self, wrong, **options) -> None:
        super().__init__(**options)
        self.wrong = wrong

    def channel_superoperator(self, channel: Channel) -> torch.Tensor:
        s = superoperator(self.wrong(channel)).reshape(2, 2, 2, 2)
        return torch.as_tensor(s, dtype=self.complex_dtype, device=self.device)


def _qiskit_lambda_read_as_p(channel: Channel):
    """Depolarizing at Qiskit's ``λ = 4p/3`` where hqf's ``p`` is meant."""
    if channel.name != "depolarizing":
        return channel.kraus()
    return Depolarizing(min(1.0, qiskit_lambda(channel.p))).kraus()


def _damping_towards_one(channel: Channel):
    """Amplitude damping towards ``|1⟩``: ``X K X`` for each Kraus operator."""
    x = np.array([[0, 1], [1, 0]])
    return [x @ k @ x for k in channel.kraus()] if channel.name == "amplitude_damping" else channel.kraus()


@pytest.mark.parametrize(
    ("wrong", "model"),
    [
        (_qiskit_lambda_read_as_p, MODELS["depolarizing"]),
        (_damping_towards_one, MODELS["amplitude_damping"]),
        (_damping_towards_one, MODELS["filtered mix"]),
    ],
)
def test_a_wrong_convention_is_caught_by_the_comparison(wrong, model):
    faithful = _WrongTorchDM(lambda channel: channel.kraus(), noise=model)  # the fake's plumbing is sound
    assert _disagreement(faithful, model) < 1e-10
    assert _disagreement(_WrongTorchDM(wrong, noise=model), model) > 1e-3


@settings(max_examples=15, deadline=None)
@given(data=st.data(), model=st.sampled_from(list(MODELS.values())))
def test_noisy_backends_match_the_reference_on_random_circuits(data, model):
    circuit = data.draw(circuits(max_qubits=4, max_ops=12, observable_kinds=("pauli", "hamiltonian", "probs")))
    angles = torch.as_tensor(data.draw(angle_batches(circuit)))
    want = ReferenceDensityBackend(noise=model).expval(circuit, angles)
    for name in NOISY:
        got = make_backend(name, noise=model).expval(circuit, angles)
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


def test_options_noise_text_and_depolarizing_shorthand():
    backend = make_backend("torch-dm", noise="depolarizing=0.02,readout=0.01")
    assert backend.noise == NoiseModel.depolarizing(0.02).with_readout(0.01)
    assert make_backend("qiskit-aer-dm", depolarizing=0.03).noise == NoiseModel.depolarizing(0.03)
    assert make_backend("pennylane-mixed").noise.is_noiseless
    with pytest.raises(ValueError, match="either 'noise' or 'depolarizing'"):
        make_backend("torch-dm", noise="bit_flip=0.1", depolarizing=0.1)


def test_a_channel_the_backend_does_not_declare_is_refused_before_any_work():
    class DepolarizingOnly(TorchDensityMatrixBackend):
        name = "depolarizing-only"
        capabilities = attrs.evolve(TorchDensityMatrixBackend.capabilities, channels={"depolarizing"})

        def expval(self, circuit, angles):  # pragma: no cover - must not be reached
            raise AssertionError("ran before refusing")

    DepolarizingOnly(noise=NoiseModel.depolarizing(0.1))
    refusal = r"^backend 'depolarizing-only' does not run noise amplitude_damping, readout \(it runs: depolarizing\)$"
    with pytest.raises(ValueError, match=refusal):
        DepolarizingOnly(noise=NoiseModel.parse("depolarizing=0.1,amplitude_damping=0.1,readout=0.02"))
    for name in NOISY:
        assert make_backend(name).capabilities.channels == set(NOISE_FEATURES)
