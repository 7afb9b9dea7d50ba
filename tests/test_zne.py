"""Zero-noise extrapolation (hqf.quantum.mitigation): folding, extrapolation, and its effect on torch-dm."""

from __future__ import annotations

import pytest
import torch

from hqf.quantum.circuit import Circuit, Operation, PauliWord, compose
from hqf.registry.make import make_ansatz, make_backend
from hqf.registry.make import depolarizing_factory
from hqf.quantum.mitigation import extrapolate, extrapolation_weights, fold, folded_angles, zne
from hqf.quantum.noise import count_channels
from hqf.testing.reference import ReferenceBackend


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
    slope, intercept = torch.linalg.lstsq(torch.tensor([[1.0, 1], [3, 1], [5, 1]], dtype=torch.float64), bent[:, None]).solution
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
