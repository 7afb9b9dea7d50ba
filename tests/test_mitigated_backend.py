"""MitigatedBackend (hqf.quantum.mitigation): readout inversion and ZNE as a backend any model can use."""

from __future__ import annotations

import pytest
import torch

from hqf.quantum.circuit import PauliWord, compose
from hqf.quantum.gradients import expval
from hqf.quantum.layer import QuantumLayer
from hqf.quantum.mitigation import ZNE, MitigatedBackend, mitigate_readout, parse_mitigation, zne
from hqf.quantum.noise import NoiseModel
from hqf.registry.make import make_ansatz, make_backend, make_encoder, noise_factory
from hqf.testing.reference import ReferenceBackend

#: asymmetric readout errors, another one on wire 1
READOUT = NoiseModel().with_readout(0.02, 0.07).with_readout(0.1, 0.03, wires=1)
GATES_AND_READOUT = "depolarizing=0.02,amplitude_damping=0.01,readout=0.03"


def small_circuit() -> tuple:
    """hea3x2 with seeded random angles, four observables; three rows."""
    observables = [PauliWord.z(0), PauliWord.z(2), PauliWord.parse("Z0 Z1"), PauliWord.parse("X1")]
    circuit = compose(3, [make_ansatz("hea3x2").operations()], observables)
    angles = torch.rand(3, circuit.n_params, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 6.28
    return circuit, angles


@pytest.mark.parametrize("zne_of", [None, ZNE()], ids=["readout", "zne+readout"])
@pytest.mark.parametrize("name", ["torch-dm", "ptm"])
def test_with_readout_error_only_the_mitigated_values_are_the_noiseless_ones(name, zne_of):
    circuit, angles = small_circuit()
    noisy = make_backend(name, noise=READOUT)
    exact = ReferenceBackend().expval(circuit, angles)
    assert (noisy.expval(circuit, angles) - exact).abs().max() > 1e-2
    mitigated = MitigatedBackend(noisy, zne=zne_of, readout=True)
    assert torch.allclose(mitigated.expval(circuit, angles), exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["torch-dm", "ptm"])
def test_zne_moves_gate_noisy_values_toward_the_noiseless_ones(name):
    circuit, angles = small_circuit()
    exact = ReferenceBackend().expval(circuit, angles)
    noisy = make_backend(name, depolarizing=0.02)
    mitigated = MitigatedBackend(noisy, zne=ZNE(scales=(1, 3, 5), method="richardson", scaling="folding"))
    before = (noisy.expval(circuit, angles) - exact).abs().mean()
    after = (mitigated.expval(circuit, angles) - exact).abs().mean()
    # measured: mean |error| 0.0914 without mitigation, 0.0200 with it (both backends)
    assert before > 0.08 and after < 0.025, (float(before), float(after))


@pytest.mark.parametrize("name", ["torch-dm", "ptm"])
def test_the_wrapper_gives_what_the_functions_give(name):
    circuit, angles = small_circuit()
    noisy = make_backend(name, noise=GATES_AND_READOUT)
    model = noisy.noise
    both = MitigatedBackend(noisy, zne=ZNE(scales=(1, 3)), readout=True).expval(circuit, angles)
    assert torch.equal(both, zne(circuit, angles, noisy, (1, 3), readout=model).estimate)
    readout = MitigatedBackend(noisy, readout=True).expval(circuit, angles)
    assert torch.equal(readout, mitigate_readout(circuit, angles, noisy, model))
    factory = noise_factory(name, model)
    channel = ZNE(scales=(1, 2, 3), method="linear", scaling="channel")
    scaled = MitigatedBackend(noisy, zne=channel, factory=factory).expval(circuit, angles)
    assert torch.allclose(scaled, zne(circuit, angles, factory, (1, 2, 3), "linear", "channel").estimate, atol=1e-14)


def test_gate_and_readout_noise_each_mitigation_helps_and_both_help_most():
    circuit, angles = small_circuit()
    exact = ReferenceBackend().expval(circuit, angles)
    noisy = make_backend("ptm", noise=GATES_AND_READOUT)
    error = {"none": float((noisy.expval(circuit, angles) - exact).abs().mean())}
    for label, options in {
        "zne": dict(zne=ZNE()),
        "readout": dict(readout=True),
        "both": dict(zne=ZNE(), readout=True),
    }.items():
        error[label] = float((MitigatedBackend(noisy, **options).expval(circuit, angles) - exact).abs().mean())
    # measured: none 0.123, readout 0.110, zne 0.053, both 0.035
    assert error["both"] < 0.04 < error["zne"] < 0.06 < error["readout"] < 0.115 < error["none"], error


def test_capabilities_dtype_and_device_follow_the_wrapped_backend():
    noisy = make_backend("torch-dm", noise=GATES_AND_READOUT)
    mitigated = MitigatedBackend(noisy, zne=ZNE(), readout=True)
    inner, caps = noisy.capabilities, mitigated.capabilities
    assert (caps.gates, caps.observables, caps.channels) == (inner.gates, inner.observables, inner.channels)
    assert caps.gradients == frozenset() and caps.dtypes == {noisy.dtype} and caps.devices == {"cpu"}
    assert mitigated.real_dtype == noisy.real_dtype and mitigated.name == "torch-dm+zne+readout"
    mitigated.set_threads(1)
    assert noisy.threads == 1


def test_mitigated_values_have_no_gradient():
    circuit, angles = small_circuit()
    mitigated = MitigatedBackend(make_backend("torch-dm", depolarizing=0.01), zne=ZNE())
    out = expval(mitigated, circuit, angles.clone().requires_grad_())  # parameter shift: the only way left
    with pytest.raises(NotImplementedError, match="values only"):
        out.sum().backward()
    with pytest.raises(ValueError, match="no native 'backprop'"):
        expval(mitigated, circuit, angles, gradient="backprop")
    with pytest.raises(RuntimeError, match="torch.no_grad"):
        mitigated.expval(circuit, angles.clone().requires_grad_())


def test_a_quantum_layer_on_the_wrapper_evaluates_under_no_grad():
    ansatz = make_ansatz("hea3x2")
    encoder = make_encoder("angle", 3, 3)
    noisy = make_backend("ptm", noise=GATES_AND_READOUT)
    layer = QuantumLayer(encoder, ansatz, noisy, generator=torch.Generator().manual_seed(0))
    x = torch.rand(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        plain = layer(x)
        layer.backend = MitigatedBackend(noisy, zne=ZNE(), readout=True)
        mitigated = layer(x)
        layer.backend = ReferenceBackend()
        exact = layer(x)
    assert (mitigated - exact).abs().mean() < 0.5 * (plain - exact).abs().mean()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (dict(), "nothing to mitigate"),
        (dict(readout=True), "needs a readout error; backend 'torch-dm' has none"),
        (dict(zne=ZNE(scales=(1, 2), scaling="channel")), "needs a factory"),
    ],
)
def test_bad_constructions_are_one_line(options, words):
    with pytest.raises(ValueError, match=words):
        MitigatedBackend(make_backend("torch-dm", depolarizing=0.01), **options)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (dict(scales=(1,)), "at least two distinct"),
        (dict(scales=(1, 2)), "odd integers"),
        (dict(method="cubic"), "'method' must be one of linear, richardson"),
        (dict(scaling="pulse"), "'scaling' must be one of folding, channel"),
    ],
)
def test_zne_settings_are_checked_when_made(arguments, words):
    with pytest.raises(ValueError, match=words):
        ZNE(**arguments)


def test_parse_mitigation():
    assert parse_mitigation("zne") == (ZNE(scales=(1, 3, 5), method="richardson", scaling="folding"), False)
    assert parse_mitigation("readout") == (None, True)
    assert parse_mitigation(" readout, zne") == (ZNE(), True)
    for bad in ("", "zne,zne", "rem", "zne,"):
        with pytest.raises(ValueError, match="'mitigate' must name some of zne, readout"):
            parse_mitigation(bad)
