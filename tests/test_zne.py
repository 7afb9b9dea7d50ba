"""Zero-noise extrapolation (hqf.quantum.mitigation): folding, extrapolation, and its effect on torch-dm."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from hqf.quantum.circuit import Circuit, Hamiltonian, Operation, PauliWord, Probs, compose
from hqf.quantum.mitigation import (
    ZNE,
    extrapolate,
    extrapolation_weights,
    fold,
    folded_angles,
    mitigate_readout,
    readout_mitigation,
    zne,
)
from hqf.quantum.noise import (
    NoiseModel,
    amplitude_damping,
    bit_flip,
    count_channels,
    depolarizing,
    pauli,
    phase_damping,
    phase_flip,
    thermal_relaxation,
)
from hqf.registry.make import depolarizing_factory, make_ansatz, make_backend, noise_factory
from hqf.testing.reference import ReferenceBackend, ReferenceDensityBackend

#: every channel, a filtered rule and a readout error
MIXED = (
    NoiseModel()
    .with_channel(depolarizing(0.004))
    .with_channel(amplitude_damping(0.005))
    .with_channel(phase_damping(0.006), wires={0, 2})
    .with_channel(bit_flip(0.004), gates={"CNOT"})
    .with_channel(phase_flip(0.002))
    .with_channel(pauli(0.001, 0.0005, 0.0015))
    .with_channel(thermal_relaxation(50.0, 70.0, 0.1))
)


def noisy_test_circuit() -> tuple[Circuit, torch.Tensor]:
    """hea3x2 with fixed random weights, four observables; three angle rows."""
    ansatz = make_ansatz("hea3x2")
    observables = [PauliWord.z(0), PauliWord.z(2), PauliWord.parse("Z0 Z1"), PauliWord.parse("X1")]
    circuit = compose(3, [ansatz.operations()], observables)
    angles = torch.rand(3, circuit.n_params, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 6.28
    return circuit, angles


def test_folding_keeps_the_unitary_and_multiplies_the_gates():
    circuit, angles = noisy_test_circuit()
    circuit = Circuit(3, [*circuit.operations, Operation("S", 1), Operation("T", 2)], circuit.observables)
    exact = ReferenceBackend().expval(circuit, angles)
    for scale in (1, 3, 5):
        folded = fold(circuit, scale)
        assert folded.n_params == scale * circuit.n_params
        # U†'s S and T are two and three gates (S† = Z S, T† = Z S T)
        assert len(folded.operations) == len(circuit.operations) * scale + 3 * (scale - 1) // 2
        assert torch.allclose(ReferenceBackend().expval(folded, folded_angles(angles, scale)), exact, atol=1e-10)
    assert count_channels(fold(circuit, 3)) > 3 * count_channels(circuit) - 1


@pytest.mark.parametrize("scale", [0, 2, 1.5, True])
def test_fold_refuses_a_scale_that_is_not_odd(scale):
    circuit, _ = noisy_test_circuit()
    with pytest.raises(ValueError, match="odd integer"):
        fold(circuit, scale)


def test_richardson_is_exact_on_a_polynomial_of_the_scale():
    scales = (1.0, 1.5, 2.0, 3.0)
    a = torch.tensor([[0.3, -0.8], [1.2, 0.05]], dtype=torch.float64)
    values = torch.stack([a + 0.4 * s - 0.25 * s**2 + 0.03 * s**3 for s in scales])  # degree 3 = S − 1
    assert torch.allclose(extrapolate(scales, values, "richardson"), a, atol=1e-12)


def test_linear_fit_is_exact_on_a_line_and_least_squares_otherwise():
    scales = (1, 3, 5)
    line = torch.tensor([0.9 - 0.1 * s for s in scales], dtype=torch.float64)
    assert extrapolate(scales, line, "linear").item() == pytest.approx(0.9, abs=1e-12)
    bent = torch.tensor([1.0, 0.5, 0.4], dtype=torch.float64)
    design = torch.tensor([[1.0, 1], [3, 1], [5, 1]], dtype=torch.float64)
    slope, intercept = torch.linalg.lstsq(design, bent[:, None]).solution
    assert extrapolate(scales, bent, "linear").item() == pytest.approx(intercept.item(), abs=1e-12)
    assert float(extrapolation_weights(scales, "linear").sum()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("scaling", "scales"), [("folding", (1, 3, 5)), ("channel", (1, 2, 3))])
@pytest.mark.parametrize("method", ["richardson", "linear"])
def test_zne_moves_the_noisy_estimate_toward_the_exact_value(scaling, scales, method):
    circuit, angles = noisy_test_circuit()
    p = 0.02
    exact = make_backend("torch").expval(circuit, angles)
    noisy = make_backend("torch-dm", depolarizing=p).expval(circuit, angles)
    result = zne(circuit, angles, depolarizing_factory("torch-dm", p), scales, method, scaling)
    assert result.values.shape == (3, 3, 4)
    assert torch.allclose(result.values[0], noisy, atol=1e-12)
    before, after = (noisy - exact).abs().mean(), (result.estimate - exact).abs().mean()
    assert after < 0.8 * before
    if method == "richardson":
        assert after < 0.5 * before


def test_zne_with_folding_takes_one_noisy_backend():
    circuit, angles = noisy_test_circuit()
    backend = make_backend("torch-dm", depolarizing=0.01)
    by_instance = zne(circuit, angles, backend, (1, 3))
    by_factory = zne(circuit, angles, depolarizing_factory("torch-dm", 0.01), (1, 3))
    assert torch.allclose(by_instance.estimate, by_factory.estimate, atol=1e-12)


def test_zne_on_a_noiseless_backend_changes_nothing():
    circuit, angles = noisy_test_circuit()
    exact = make_backend("torch").expval(circuit, angles)
    result = zne(circuit, angles, make_backend("torch"), (1, 3, 5))
    assert torch.allclose(result.estimate, exact, atol=1e-10)


def test_zne_refuses_bad_arguments():
    circuit, angles = noisy_test_circuit()
    backend = make_backend("torch-dm", depolarizing=0.01)
    with pytest.raises(ValueError, match="at least two"):
        zne(circuit, angles, backend, (1,))
    with pytest.raises(ValueError, match="'method'"):
        zne(circuit, angles, backend, (1, 3), method="cubic")
    with pytest.raises(ValueError, match="'scaling'"):
        zne(circuit, angles, backend, (1, 3), scaling="pulse")
    with pytest.raises(ValueError, match="factory"):
        zne(circuit, angles, backend, (1, 2), scaling="channel")
    with pytest.raises(ValueError, match="odd integers"):
        zne(circuit, angles, backend, (1, 2))
    with pytest.raises(ValueError, match="at least two"):
        extrapolate((1, 1), torch.zeros(2), "linear")


def test_scaled_multiplies_every_channel_strength_and_keeps_filters_and_readout():
    model = MIXED.with_readout(0.02, 0.05)
    scaled = model.scaled(3)
    assert [rule.channel for rule in scaled.rules] == [
        depolarizing(3 * 0.004),
        amplitude_damping(3 * 0.005),
        phase_damping(3 * 0.006),
        bit_flip(3 * 0.004),
        phase_flip(3 * 0.002),
        pauli(3 * 0.001, 3 * 0.0005, 3 * 0.0015),
        thermal_relaxation(50.0, 70.0, 3 * 0.1),
    ]
    assert [(r.gates, r.wires) for r in scaled.rules] == [(r.gates, r.wires) for r in model.rules]
    assert scaled.readout == model.readout
    assert model.scaled(1) == model
    assert model.scaled(0).rules[0].channel.is_identity and not model.scaled(0).is_noiseless


@pytest.mark.parametrize(
    ("channel", "factor", "name"),
    [
        (depolarizing(0.3), 4, "depolarizing"),
        (amplitude_damping(0.5), 2.5, "amplitude_damping"),
        (phase_damping(0.6), 2, "phase_damping"),
        (pauli(0.3, 0.3, 0.3), 1.5, "pauli"),
    ],
)
def test_scaled_past_a_probability_range_is_one_line_naming_the_channel_and_factor(channel, factor, name):
    with pytest.raises(ValueError, match=f"'{name}' scaled by {float(factor)!r}") as error:
        NoiseModel().with_channel(channel).scaled(factor)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("factor", [-1, math.inf, math.nan])
def test_scaled_refuses_a_factor_that_is_not_finite_and_nonnegative(factor):
    with pytest.raises(ValueError, match="scale factor"):
        MIXED.scaled(factor)


def test_thermal_relaxation_scaled_is_a_longer_gate():
    channel = thermal_relaxation(50.0, 70.0, 0.2).scaled(2.5)
    assert (channel.t1, channel.t2, channel.time) == (50.0, 70.0, 0.5)


def test_noise_factory_of_the_depolarizing_model_is_depolarizing_factory():
    circuit, angles = noisy_test_circuit()
    for scale in (1, 2.5):
        by_model = noise_factory("torch-dm", NoiseModel.depolarizing(0.02))(scale).expval(circuit, angles)
        by_text = noise_factory("torch-dm", "depolarizing=0.02")(scale).expval(circuit, angles)
        by_p = depolarizing_factory("torch-dm", 0.02)(scale).expval(circuit, angles)
        assert torch.allclose(by_model, by_p, atol=1e-12) and torch.allclose(by_text, by_p, atol=1e-12)


@pytest.mark.parametrize(("scaling", "scales"), [("folding", (1, 3, 5)), ("channel", (1, 2, 3))])
def test_zne_on_every_channel_moves_the_estimate_toward_the_exact_value(scaling, scales):
    circuit, angles = noisy_test_circuit()
    exact = make_backend("torch").expval(circuit, angles)
    factory = noise_factory("torch-dm", MIXED)
    noisy = factory(1).expval(circuit, angles)
    result = zne(circuit, angles, factory, scales, "richardson", scaling)
    assert torch.allclose(result.values[0], noisy, atol=1e-12)
    if scaling == "channel":
        assert torch.allclose(result.values[2], factory(3).expval(circuit, angles), atol=1e-12)
    before, after = (noisy - exact).abs().mean(), (result.estimate - exact).abs().mean()
    assert after < 0.2 * before


def test_folding_multiplies_the_channels_of_a_filtered_rule_by_the_scale():
    circuit, _ = noisy_test_circuit()
    model = NoiseModel().with_channel(bit_flip(0.01), gates={"CNOT", "RY"}).with_channel(depolarizing(0.01), wires=1)
    for scale in (3, 5):
        assert model.count(fold(circuit, scale)) == scale * model.count(circuit)


def readout_test_circuit() -> tuple[Circuit, torch.Tensor]:
    """hea3x2 read through words (one, two and three wires, X and Y bases), a Hamiltonian and Probs."""
    observables = [
        PauliWord.z(0),
        PauliWord.parse("Z0 Z1"),
        PauliWord.parse("X1 Y2"),
        PauliWord.parse("Z0 X1 Z2"),
        Hamiltonian([(0.5, PauliWord.parse("Z0 X2")), (-1.2, PauliWord.z(1)), (0.3, PauliWord.parse("Z0 Z1"))]),
        Probs([2, 0]),
        Probs([1]),
        Probs([0, 1, 2]),
    ]
    circuit = compose(3, [make_ansatz("hea3x2").operations()], observables)
    angles = torch.rand(4, circuit.n_params, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 6.28
    return circuit, angles


#: asymmetric on wires 0 and 2, another asymmetric error on wire 1, and one symmetric case below
READOUT = NoiseModel().with_readout(0.02, 0.07).with_readout(0.1, 0.03, wires=1)


@pytest.mark.parametrize("readout", [READOUT, NoiseModel().with_readout(0.04)], ids=["asymmetric", "symmetric"])
@pytest.mark.parametrize("backend", ["torch-dm", "reference"])
def test_readout_mitigation_with_readout_error_only_gives_the_noiseless_values(backend, readout):
    circuit, angles = readout_test_circuit()
    noisy = make_backend("torch-dm", noise=readout) if backend == "torch-dm" else ReferenceDensityBackend(noise=readout)
    exact = ReferenceBackend().expval(circuit, angles)
    read = noisy.expval(circuit, angles)
    assert (read - exact).abs().max() > 1e-2
    assert torch.allclose(mitigate_readout(circuit, angles, noisy, readout), exact, rtol=0, atol=1e-12)


def test_readout_mitigation_of_a_symmetric_error_divides_each_word_by_its_factors():
    circuit, _ = readout_test_circuit()
    plan = readout_mitigation(circuit, NoiseModel().with_readout(0.04))
    word_rows = plan.matrix[:4]
    assert word_rows[word_rows != 0].tolist() == pytest.approx([1 / 0.92, 1 / 0.92**2, 1 / 0.92**2, 1 / 0.92**3])
    assert not plan.offset[:4].any()


def test_readout_mitigation_without_readout_error_changes_nothing():
    circuit, angles = readout_test_circuit()
    noisy = make_backend("torch-dm", noise=MIXED)
    plan = readout_mitigation(circuit, MIXED)
    assert plan.measured.operations == circuit.operations and plan.measured.n_outputs == 6 + 4 + 2 + 8
    assert not plan.offset.any()
    assert torch.allclose(mitigate_readout(circuit, angles, noisy, MIXED), noisy.expval(circuit, angles), atol=1e-14)


def test_readout_mitigation_refuses_a_confusion_matrix_that_cannot_be_inverted():
    circuit, _ = readout_test_circuit()
    with pytest.raises(ValueError, match="wire 1 cannot be inverted"):
        readout_mitigation(circuit, NoiseModel().with_readout(0.3, 0.7, wires=1))


def test_zne_with_the_readout_calibration_removes_gate_and_readout_noise():
    circuit, angles = readout_test_circuit()
    exact = ReferenceBackend().expval(circuit, angles)
    only_readout = zne(circuit, angles, make_backend("torch-dm", noise=READOUT), (1, 3), readout=READOUT)
    assert torch.allclose(only_readout.estimate, exact, rtol=0, atol=1e-12)
    model = with_readout_of(NoiseModel.depolarizing(0.01), READOUT)
    factory = noise_factory("torch-dm", model)
    noisy = factory(1).expval(circuit, angles)
    without = zne(circuit, angles, factory, (1, 2, 3), scaling="channel")
    with_readout = zne(circuit, angles, factory, (1, 2, 3), scaling="channel", readout=model)
    error = {
        name: (value - exact).abs().mean()
        for name, value in [("noisy", noisy), ("zne", without.estimate), ("both", with_readout.estimate)]
    }
    assert error["both"] < 0.1 * error["zne"] and error["both"] < 0.1 * error["noisy"]


def with_readout_of(model: NoiseModel, readout: NoiseModel) -> NoiseModel:
    """``model``'s channels with ``readout``'s readout errors."""
    return NoiseModel(model.rules, readout.readout)


def test_the_zne_settings_value_defaults_to_the_functions_defaults():
    defaults = {name: p.default for name, p in inspect.signature(zne).parameters.items()}
    assert (ZNE().scales, ZNE().method, ZNE().scaling) == (defaults["scales"], defaults["method"], defaults["scaling"])
