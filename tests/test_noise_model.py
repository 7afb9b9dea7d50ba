"""The noise model as a value: each channel's Kraus form is trace preserving and is, as a channel, exactly
PennyLane's and Qiskit Aer's (docs/noise.md); the model's rules, readout, text form and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hqf.backends.density_pennylane import pennylane_channel
from hqf.backends.density_qiskit import qiskit_error, qiskit_readout_error
from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Capabilities
from hqf.quantum.noise import (
    CHANNELS,
    NoiseModel,
    ReadoutError,
    amplitude_damping,
    bit_flip,
    count_channels,
    depolarizing,
    noise_model,
    pauli,
    phase_damping,
    phase_flip,
    superoperator,
    thermal_relaxation,
)

qml = pytest.importorskip("pennylane")
quantum_info = pytest.importorskip("qiskit.quantum_info")
aer_noise = pytest.importorskip("qiskit_aer.noise")

probability = st.floats(0.0, 1.0)


@st.composite
def pauli_triples(draw):
    px = draw(probability)
    py = draw(st.floats(0.0, 1.0 - px))
    return px, py, draw(st.floats(0.0, max(0.0, 1.0 - px - py)))


@st.composite
def relaxation_times(draw):
    """``(t1, t2, time)`` with ``t2 ≤ 2·t1``, across both of Qiskit's branches (t2 ≤ t1 and t2 > t1)."""
    t1 = draw(st.floats(0.1, 1e4))
    t2 = draw(st.floats(0.05, 2 * t1))
    return t1, t2, draw(st.floats(0.0, 3 * t1))


def channels(damping: st.SearchStrategy[float] = probability) -> st.SearchStrategy:
    """Every kind of channel; ``damping`` draws the amplitude and phase damping parameters."""
    return st.one_of(
        probability.map(depolarizing),
        probability.map(bit_flip),
        probability.map(phase_flip),
        pauli_triples().map(lambda p: pauli(*p)),
        damping.map(amplitude_damping),
        damping.map(phase_damping),
        relaxation_times().map(lambda t: thermal_relaxation(*t)),
    )


#: PennyLane's Kraus matrices hold ``√(x + ε)``, ``ε = 1e-14`` (for its gradients); the coherence of amplitude
#: and phase damping, ``√(1 − γ + ε)``, is then off by ``ε / (2√(1 − γ))``: below 1e-12 for ``γ ≤ 1 − 1e-4``
PENNYLANE_DAMPING = st.floats(0.0, 1.0 - 1e-4)


def choi(kraus) -> np.ndarray:
    """The Choi matrix of a channel given by Kraus operators (Qiskit's convention, for both sides)."""
    return quantum_info.Choi(quantum_info.Kraus([np.asarray(k, dtype=complex) for k in kraus])).data


@settings(max_examples=200)
@given(channel=channels())
def test_kraus_operators_are_trace_preserving(channel):
    kraus = channel.kraus()
    assert all(k.shape == (2, 2) and k.dtype == np.complex128 for k in kraus)
    np.testing.assert_allclose(sum(k.conj().T @ k for k in kraus), np.eye(2), atol=1e-12)
    assert channel.name in CHANNELS


@settings(max_examples=120)
@given(channel=channels(PENNYLANE_DAMPING))
def test_every_channel_is_pennylanes_channel(channel):
    operation = pennylane_channel(qml, channel, 0)
    np.testing.assert_allclose(superoperator(operation.kraus_matrices()), channel.superoperator(), atol=1e-12)


def dropped_by_qiskit(kraus) -> bool:
    """True when Qiskit's Choi-to-Kraus conversion (``thermal_relaxation_error`` for ``t2 > t1``) would drop
    a Kraus operator: its Choi matrix has an eigenvalue in ``(0, 1e-8]`` (Qiskit's ``ATOL_DEFAULT``;
    rounding below 1e-12 counts as 0)."""
    values = np.linalg.eigvalsh(choi(kraus))
    return bool(np.any((values > 1e-12) & (values < 1e-7)))


@settings(max_examples=120)
@given(channel=channels())
def test_every_channel_is_qiskit_aers_channel(channel):
    assume(not (channel.name == "thermal_relaxation" and dropped_by_qiskit(channel.kraus())))
    aer = quantum_info.Choi(qiskit_error(channel).to_quantumchannel()).data
    np.testing.assert_allclose(aer, choi(channel.kraus()), atol=1e-12)


def test_qiskit_thermal_relaxation_drops_tiny_kraus_operators():
    """The one place Qiskit's channels differ from the definition by more than 1e-12: for ``t2 > t1`` it
    builds Kraus operators from the Choi matrix and drops eigenvalues up to 1e-8 (here the reset
    probability ``1 − exp(−time/t1) ≈ 1e-8``); hqf keeps the definition."""
    channel = thermal_relaxation(6.0, 7.0, 6e-8)
    assert dropped_by_qiskit(channel.kraus())
    aer = quantum_info.Choi(qiskit_error(channel).to_quantumchannel()).data
    assert 0.9e-8 < np.abs(aer - choi(channel.kraus())).max() < 1.1e-8


def test_pennylane_damping_at_gamma_one_keeps_a_coherence_of_sqrt_epsilon():
    """The one place PennyLane's channels differ from the definition by more than 1e-12 (see PENNYLANE_DAMPING):
    full damping leaves ``√ε = 1e-7`` of the coherence, where the channel leaves none."""
    for channel, operation in (
        (amplitude_damping(1.0), qml.AmplitudeDamping(1.0, wires=0)),
        (phase_damping(1.0), qml.PhaseDamping(1.0, wires=0)),
    ):
        difference = superoperator(operation.kraus_matrices()) - channel.superoperator()
        assert 0.9e-7 < np.abs(difference).max() < 1.1e-7


@settings(max_examples=60)
@given(p=probability)
def test_pauli_channel_on_one_axis_is_pennylanes_named_channels(p):
    """The general Pauli channel reaches PennyLane through ``QubitChannel``: its special cases are checked
    against PennyLane's own classes, which do not go through hqf's Kraus operators."""
    same = {
        pauli(p, 0, 0): [qml.BitFlip(p, wires=0), qml.PauliError("X", p, wires=0)],
        pauli(0, p, 0): [qml.PauliError("Y", p, wires=0)],
        pauli(0, 0, p): [qml.PhaseFlip(p, wires=0), qml.PauliError("Z", p, wires=0)],
        pauli(p / 3, p / 3, p / 3): [qml.DepolarizingChannel(p, wires=0)],
    }
    for channel, operations in same.items():
        for operation in operations:
            np.testing.assert_allclose(superoperator(operation.kraus_matrices()), channel.superoperator(), atol=1e-12)


@settings(max_examples=60)
@given(times=relaxation_times())
def test_thermal_relaxation_is_qiskits_and_pennylanes_definition(times):
    """Checked against the libraries' own functions called directly (excited-state population 0)."""
    t1, t2, time = times
    assume(not dropped_by_qiskit(thermal_relaxation(t1, t2, time).kraus()))
    ours = choi(thermal_relaxation(t1, t2, time).kraus())
    aer = quantum_info.Choi(aer_noise.thermal_relaxation_error(t1, t2, time).to_quantumchannel()).data
    np.testing.assert_allclose(ours, aer, atol=1e-12)
    np.testing.assert_allclose(
        ours, choi(qml.ThermalRelaxationError(0.0, t1, t2, time, wires=0).kraus_matrices()), atol=1e-12
    )


def test_closed_forms_of_the_damping_channels():
    """Amplitude damping moves population from |1⟩ to |0⟩; phase damping only shrinks the coherence;
    thermal relaxation shrinks ρ11 by exp(−t/T1) and ρ01 by exp(−t/T2)."""
    rho = np.array([[0.3, 0.2 - 0.1j], [0.2 + 0.1j, 0.7]])

    def after(channel):
        return sum(k @ rho @ k.conj().T for k in channel.kraus())

    damped = after(amplitude_damping(0.25))
    np.testing.assert_allclose(
        damped,
        [[0.3 + 0.25 * 0.7, math.sqrt(0.75) * (0.2 - 0.1j)], [math.sqrt(0.75) * (0.2 + 0.1j), 0.75 * 0.7]],
        atol=1e-15,
    )
    dephased = after(phase_damping(0.36))
    np.testing.assert_allclose(dephased, [[0.3, 0.8 * (0.2 - 0.1j)], [0.8 * (0.2 + 0.1j), 0.7]], atol=1e-15)
    a, c = math.exp(-2 / 50), math.exp(-2 / 70)
    relaxed = after(thermal_relaxation(50, 70, 2))
    np.testing.assert_allclose(relaxed, [[1 - a * 0.7, c * (0.2 - 0.1j)], [c * (0.2 + 0.1j), a * 0.7]], atol=1e-15)


def test_wrong_conventions_are_different_channels():
    """Qiskit's λ read as hqf's p, and damping towards |1⟩, are not the channels hqf defines."""
    p = 0.3
    wrong_lambda = quantum_info.Choi(aer_noise.depolarizing_error(p, 1).to_quantumchannel()).data
    assert np.abs(wrong_lambda - choi(depolarizing(p).kraus())).max() > 0.05
    x = np.array([[0, 1], [1, 0]])
    towards_one = [x @ k @ x for k in amplitude_damping(p).kraus()]
    assert np.abs(superoperator(towards_one) - amplitude_damping(p).superoperator()).max() > 0.1


def test_readout_confusion_is_qiskits_readout_error():
    error = ReadoutError(0.1, 0.3)
    np.testing.assert_allclose(error.confusion(), [[0.9, 0.3], [0.1, 0.7]])
    np.testing.assert_allclose(qiskit_readout_error(error).probabilities, [[0.9, 0.1], [0.3, 0.7]])


def test_aer_readout_error_misreads_counts_as_the_confusion_says():
    """Aer's ReadoutError on measured counts (seeded): |1⟩ reads 0 with p(0|1) = 0.3, |0⟩ reads 1 with
    p(1|0) = 0.1; 20,000 shots, within 5 standard deviations."""
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator

    model = aer_noise.NoiseModel()
    model.add_all_qubit_readout_error(qiskit_readout_error(ReadoutError(0.1, 0.3)))
    circuit = QuantumCircuit(2, 2)
    circuit.x(0)
    circuit.measure([0, 1], [0, 1])
    shots = 20_000
    counts = AerSimulator(noise_model=model, seed_simulator=7).run(circuit, shots=shots).result().get_counts()
    read_zero_of_one = sum(n for bits, n in counts.items() if bits[-1] == "0") / shots  # qubit 0: last bit
    read_one_of_zero = sum(n for bits, n in counts.items() if bits[0] == "1") / shots
    for frequency, p in ((read_zero_of_one, 0.3), (read_one_of_zero, 0.1)):
        assert abs(frequency - p) < 5 * math.sqrt(p * (1 - p) / shots)


# -- the model ------------------------------------------------------------------------------------------
def test_after_applies_rules_in_order_with_their_filters():
    model = (
        NoiseModel()
        .with_channel(depolarizing(0.01))
        .with_channel(amplitude_damping(0.02), gates={"CNOT", "CZ"})
        .with_channel(phase_damping(0.03), wires={1})
    )
    cnot = Operation("CNOT", (0, 1))
    assert model.after(cnot) == (
        (0, depolarizing(0.01)),
        (1, depolarizing(0.01)),
        (0, amplitude_damping(0.02)),
        (1, amplitude_damping(0.02)),
        (1, phase_damping(0.03)),
    )
    assert model.after(Operation("RX", 0, 0)) == ((0, depolarizing(0.01)),)
    assert model.channel_names == {"depolarizing", "amplitude_damping", "phase_damping"}
    assert NoiseModel.depolarizing(0.02).after(Operation("RZZ", (2, 0), 0)) == (
        (2, depolarizing(0.02)),
        (0, depolarizing(0.02)),
    )


def test_depolarizing_model_counts_a_channel_per_wire_of_every_gate():
    from hqf.quantum.circuit import Circuit, PauliWord

    circuit = Circuit(
        3, [Operation("H", 0), Operation("CNOT", (0, 1)), Operation("Toffoli", (0, 1, 2))], [PauliWord.z(0)]
    )
    assert count_channels(circuit) == 6
    assert NoiseModel.depolarizing(0.1).count(circuit) == 6
    assert NoiseModel().with_channel(bit_flip(0.1), gates="CNOT", wires=[1, 2]).count(circuit) == 1


def test_values_are_frozen_and_hashable():
    a = NoiseModel.parse("depolarizing=0.02,amplitude_damping=0.01,readout=0.03")
    b = NoiseModel.depolarizing(0.02).with_channel(amplitude_damping(0.01)).with_readout(0.03)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert bit_flip(0.1) != phase_flip(0.1)
    with pytest.raises(AttributeError):
        a.rules = ()  # type: ignore[misc]


def test_parse_reads_every_item_and_round_trips():
    text = (
        "depolarizing=0.02,bit_flip=0.01,phase_flip=0.03,pauli=0.01:0:0.02,amplitude_damping=0.05,"
        "phase_damping=0.04,thermal_relaxation=50:70:0.5,readout=0.02:0.05"
    )
    model = NoiseModel.parse(text)
    assert [rule.channel for rule in model.rules] == [
        depolarizing(0.02),
        bit_flip(0.01),
        phase_flip(0.03),
        pauli(0.01, 0, 0.02),
        amplitude_damping(0.05),
        phase_damping(0.04),
        thermal_relaxation(50, 70, 0.5),
    ]
    assert model.channel_names == set(CHANNELS)
    assert NoiseModel.parse(str(model)) == model
    np.testing.assert_allclose(model.confusion(5), [[0.98, 0.05], [0.02, 0.95]])
    assert NoiseModel.parse("readout=0.03").readout == (ReadoutError(0.03, 0.03),)
    assert NoiseModel.parse("") == NoiseModel.parse("none") == NoiseModel()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "depolarising=0.02",
            r"unknown noise item 'depolarising=0.02' \(accepted: depolarizing, .*readout\); "
            r"did you mean 'depolarizing'\?",
        ),
        ("depolarizing=2", r"noise item 'depolarizing=2': 'depolarizing p' must be a probability in \[0, 1\]"),
        ("pauli=0.1", r"noise item 'pauli=0.1': expected pauli=px:py:pz"),
        ("pauli=0.5:0.4:0.3", r"px \+ py \+ pz <= 1"),
        ("thermal_relaxation=10:30:1", r"t2 <= 2 \* t1"),
        ("thermal_relaxation=0:0:1", r"'t1' must be > 0"),
        ("readout=0.1:0.2:0.3", r"expected readout=p1_given_0\[:p0_given_1\]"),
        ("amplitude_damping=x", r"noise item 'amplitude_damping=x': could not convert"),
        ("bit_flip=0.1,bit_flip=0.2", r"'bit_flip' is given twice"),
    ],
)
def test_parse_refuses_in_one_line(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        NoiseModel.parse(text)
    assert "\n" not in str(caught.value)


def test_noiseless_readout_and_last_readout_wins():
    assert NoiseModel().is_noiseless and NoiseModel.depolarizing(0.0).is_noiseless
    assert thermal_relaxation(10, 5, 0).is_identity and not thermal_relaxation(10, 5, 1).is_identity
    assert not NoiseModel().with_readout(0.01).is_noiseless
    model = NoiseModel().with_readout(0.1).with_readout(0.0, wires=[2]).with_readout(0.2, 0.3, wires=[1])
    np.testing.assert_allclose(model.confusion(0), [[0.9, 0.1], [0.1, 0.9]])
    np.testing.assert_allclose(model.confusion(1), [[0.8, 0.3], [0.2, 0.7]])
    assert model.confusion(2) is None
    assert model.features == {"readout"} and model.channel_names == frozenset()


def test_backend_options_and_refusals():
    assert noise_model(depolarizing=0.02) == NoiseModel.depolarizing(0.02)
    assert noise_model() == NoiseModel()
    assert noise_model("amplitude_damping=0.1") == NoiseModel().with_channel(amplitude_damping(0.1))
    with pytest.raises(ValueError, match="either 'noise' or 'depolarizing'"):
        noise_model(NoiseModel(), depolarizing=0.1)
    model = NoiseModel.parse("thermal_relaxation=5:5:1,readout=0.1")
    with pytest.raises(
        ValueError,
        match=r"backend 'b' does not run noise readout, thermal_relaxation "
        r"\(it runs: depolarizing\)",
    ):
        model.require("b", frozenset({"depolarizing"}))
    model.require("b", frozenset({"thermal_relaxation", "readout"}))
    with pytest.raises(ValueError, match="'gates' must name gates"):
        NoiseModel().with_channel(bit_flip(0.1), gates=["cx"])
    with pytest.raises(ValueError, match="'wires' must be integers >= 0"):
        NoiseModel().with_channel(bit_flip(0.1), wires=[-1])


def test_capabilities_declare_known_channels_only():
    assert Capabilities().channels == frozenset()
    assert Capabilities(noise=True, channels={"depolarizing", "readout"}).channels == {"depolarizing", "readout"}
    with pytest.raises(ValueError, match="'channels' must be among"):
        Capabilities(channels={"crosstalk"})
