"""The ``basis``, ``iqp`` and ``reupload`` encoders: angle layouts against hand-written circuits,
validation, and the re-uploading gradients against finite differences of an independent simulator."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from reference import reference_expval

from hqf.errors import ConfigError, DataError, UnknownPluginError
from hqf.quantum.circuit import Circuit, Operation, PauliWord, compose
from hqf.quantum.gradients import expval
from hqf.quantum.layer import QuantumLayer
from hqf.registry.make import make_ansatz, make_backend, make_encoder
from hqf.testing import ReferenceBackend

# -- basis ------------------------------------------------------------------------------------------


def test_basis_layout_is_rx_pi_per_bit_and_prepares_the_basis_state():
    enc = make_encoder("basis", 3, 3)
    assert enc.operations() == tuple(Operation("RX", q, q) for q in range(3))
    assert not list(enc.parameters())
    bits = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    angles = enc(bits)
    torch.testing.assert_close(angles, math.pi * bits)
    circuit = compose(3, [enc.operations()])
    for row, want_index in zip(angles, (0b101, 0b011, 0b000)):
        state = ReferenceBackend().state(circuit, row)
        probabilities = state.abs() ** 2
        assert float(probabilities[want_index]) == pytest.approx(1.0, abs=1e-14)
    # read-out: <Z_q> = 1 - 2 x_q (wire 0 is the first bit)
    out = expval(make_backend("torch"), circuit, angles)
    torch.testing.assert_close(out, 1 - 2 * bits, atol=1e-12, rtol=0)


@pytest.mark.parametrize("value", [0.5, -1.0, 2.0, float("nan")])
def test_basis_refuses_non_binary_input_in_one_line(value):
    enc = make_encoder("basis", 2, 2)
    x = torch.tensor([[1.0, 0.0], [0.0, value]])
    with pytest.raises(DataError, match=r"^basis encoding takes bits 0 or 1; got .* at row 1, feature 1$"):
        enc(x)


def test_basis_needs_one_bit_per_qubit():
    with pytest.raises(ValueError, match=r"one bit on each of the 3 qubit\(s\) \(got 4 features\)"):
        make_encoder("basis", 4, 3)


# -- iqp --------------------------------------------------------------------------------------------
def _iqp_state(x: np.ndarray, reps: int, pairs) -> np.ndarray:
    """Havlíček's map written out densely: (U_Φ H^⊗n)^reps |0⟩ with
    U_Φ = exp(−i/2 (Σ x_i Z_i + Σ (π−x_i)(π−x_j) Z_i Z_j)), a diagonal."""
    n = len(x)
    z = 1 - 2 * ((np.arange(2**n)[:, None] >> (n - 1 - np.arange(n))[None, :]) & 1)  # [2^n, n] eigenvalues
    phase = (z * x).sum(axis=1) + sum((math.pi - x[i]) * (math.pi - x[j]) * z[:, i] * z[:, j] for i, j in pairs)
    hadamard = np.ones((1, 1))
    for _ in range(n):
        hadamard = np.kron(hadamard, np.array([[1, 1], [1, -1]]) / math.sqrt(2))
    state = np.zeros(2**n, dtype=complex)
    state[0] = 1
    for _ in range(reps):
        state = np.exp(-0.5j * phase) * (hadamard @ state)
    return state


@pytest.mark.parametrize(("n", "reps", "pairs"), [(3, 2, "all"), (4, 1, "linear"), (1, 3, "all"), (4, 2, "all")])
def test_iqp_matches_the_zz_feature_map_written_out(n, reps, pairs):
    enc = make_encoder("iqp", n, n, reps=reps, pairs=pairs)
    coupled = list(itertools.combinations(range(n), 2)) if pairs == "all" else [(i, i + 1) for i in range(n - 1)]
    width = n + len(coupled)
    assert enc.n_angles == reps * width and enc.projection is None
    # the layout the docstring states: per repetition H on every wire, RZ(x_i), then RZZ per pair
    want_ops = []
    for r in range(reps):
        want_ops += [Operation("H", q) for q in range(n)]
        want_ops += [Operation("RZ", q, r * width + q) for q in range(n)]
        want_ops += [Operation("RZZ", pair, r * width + n + k) for k, pair in enumerate(coupled)]
    assert enc.operations() == tuple(want_ops)
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(3, n, generator=gen, dtype=torch.float64) * 4 - 2
    angles = enc(x)
    for b in range(3):
        xs = x[b].numpy()
        want_block = list(xs) + [(math.pi - xs[i]) * (math.pi - xs[j]) for i, j in coupled]
        np.testing.assert_allclose(angles[b].numpy(), want_block * reps, atol=1e-14)
        state = ReferenceBackend().state(compose(n, [enc.operations()]), angles[b]).numpy()
        np.testing.assert_allclose(state, _iqp_state(xs, reps, coupled), atol=1e-12)


def test_iqp_projects_other_widths_and_gradients_reach_the_input():
    enc = make_encoder("iqp", 5, 3, reps=1)
    assert enc.projection is not None and enc.n_angles == 3 + 3
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    angles = enc(x)
    assert angles.shape == (4, 6)
    assert float(angles.detach()[:, :3].abs().max()) <= math.pi
    angles.sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reps": 0}, r"'reps' must be an integer >= 1 \(got 0\)"),
        ({"pairs": "ring"}, r"'pairs' must be one of \('all', 'linear'\) \(got 'ring'\)"),
        ({"projection": "sometimes"}, r"'projection' must be one of"),
        ({"projection": "never", "n_features": 4}, r"projection='never' needs in_features == n_qubits"),
    ],
)
def test_iqp_validates_its_options(options, message):
    features = options.pop("n_features", 3)
    with pytest.raises(ValueError, match=message):
        make_encoder("iqp", features, 3, **options)


# -- reupload ---------------------------------------------------------------------------------------
def test_reupload_interleaves_blocks_with_the_ansatz_layers():
    enc = make_encoder("reupload", 3, 3, encoder="angle", rotation="RX")
    ansatz = make_ansatz("hea3x2")
    layer = QuantumLayer(enc, ansatz, make_backend("torch"))
    assert enc.n_layers == 2 and enc.scaling.shape == (2, 3) and enc.n_angles == 6
    # written out by hand: RX block (columns 0-2), hea layer 1 (weights 6-11), RX block (3-5), layer 2 (12-17)
    ops = []
    for layer_index in range(2):
        ops += [Operation("RX", q, 3 * layer_index + q) for q in range(3)]
        for q in range(3):
            base = 6 + 2 * (3 * layer_index + q)
            ops += [Operation("RY", q, base), Operation("RZ", q, base + 1)]
        ops += [Operation("CNOT", (0, 1)), Operation("CNOT", (1, 2)), Operation("CNOT", (2, 0))]
    assert layer.circuit == Circuit(3, ops, [PauliWord.z(q) for q in range(3)])
    x = torch.tensor([[0.2, -0.4, 1.1]], dtype=torch.float64)
    with torch.no_grad():
        enc.scaling.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]))
    torch.testing.assert_close(enc(x), torch.tensor([[0.2, -0.8, 3.3, -0.2, -0.2, 0.0]], dtype=torch.float64))


def test_ansatz_layers_make_up_its_operations_and_default_circuits_are_unchanged():
    for spec in ("hea4x3", "basic3x2", "sel4x3", "sel1x2"):
        ansatz = make_ansatz(spec)
        layers = [ansatz.layer_operations(layer) for layer in range(ansatz.n_layers)]
        assert sum(layers, ()) == ansatz.operations()
        assert len({len(layer) for layer in layers}) == 1
    with pytest.raises(ValueError, match=r"'layer' must be in 0..2 \(got 3\)"):
        make_ansatz("hea4x3").layer_operations(3)
    enc, ansatz = make_encoder("angle", 4, 4), make_ansatz("hea4x2")
    layer = QuantumLayer(enc, ansatz, make_backend("torch"))
    assert layer.circuit == compose(4, [enc.operations(), ansatz.operations()])


def _reference_loss(x, scaling, weights, circuit, cotangent) -> float:
    """Σ cotangent · ⟨Z⟩ of the re-uploading circuit, from the independent dense simulator."""
    data = np.concatenate([x * s for s in scaling], axis=1)
    angles = np.concatenate([data, np.broadcast_to(weights, (x.shape[0], weights.size))], axis=1)
    return float((reference_expval(circuit, angles) * cotangent).sum())


@pytest.mark.parametrize("gradient", ["backprop", "parameter-shift"])
def test_reupload_gradients_wrt_inputs_and_scalings_match_finite_differences(gradient):
    gen = torch.Generator().manual_seed(7)
    enc = make_encoder("reupload", 3, 3)  # angle encoding, RY, no projection
    layer = QuantumLayer(enc, make_ansatz("hea3x2"), make_backend("torch"), gradient=gradient, generator=gen)
    with torch.no_grad():
        enc.scaling.copy_(torch.rand(2, 3, generator=gen, dtype=torch.float64) * 2 - 0.5)
    x = (torch.rand(4, 3, generator=gen, dtype=torch.float64) * 3 - 1.5).requires_grad_()
    cotangent = torch.rand(4, 3, generator=gen, dtype=torch.float64)
    out = layer(x)
    (out * cotangent).sum().backward()
    xs, scaling, weights = x.detach().numpy(), enc.scaling.detach().numpy(), layer.weights.detach().numpy().ravel()
    data = np.concatenate([xs * s for s in scaling], axis=1)  # the layout: block l is w_l ⊙ x
    angles = np.concatenate([data, np.broadcast_to(weights, (4, weights.size))], axis=1)
    np.testing.assert_allclose(out.detach().numpy(), reference_expval(layer.circuit, angles), atol=1e-12)
    args = (layer.circuit, cotangent.numpy())
    h = 1e-6

    def central(array, index, loss):
        plus, minus = array.copy(), array.copy()
        plus[index] += h
        minus[index] -= h
        return (loss(plus) - loss(minus)) / (2 * h)

    want_x = np.array([[central(xs, (b, f), lambda a: _reference_loss(a, scaling, weights, *args))
                        for f in range(3)] for b in range(4)])  # fmt: skip
    want_s = np.array([[central(scaling, (layer, f), lambda s: _reference_loss(xs, s, weights, *args))
                        for f in range(3)] for layer in range(2)])  # fmt: skip
    np.testing.assert_allclose(x.grad.numpy(), want_x, atol=1e-7)
    np.testing.assert_allclose(enc.scaling.grad.numpy(), want_s, atol=1e-7)
    assert bool(np.abs(want_s).min() > 1e-4)  # every scaling matters: the check can fail


def test_reupload_over_iqp_has_one_iqp_block_per_layer():
    enc = make_encoder("reupload", 2, 2, encoder="iqp", reps=1)
    layer = QuantumLayer(enc, make_ansatz("basic2x3"), make_backend("torch"))
    assert enc.n_angles == 3 * 3 and layer.circuit.n_params == 9 + 6
    gates = [op.gate for op in layer.circuit.operations]
    assert gates == (["H", "H", "RZ", "RZ", "RZZ", "RX", "RX", "CNOT"]) * 3
    out = layer(torch.rand(5, 2, dtype=torch.float64))
    assert out.shape == (5, 2) and bool(torch.isfinite(out).all())


def test_reupload_validates():
    with pytest.raises(ValueError, match="other than 'reupload'"):
        make_encoder("reupload", 2, 2, encoder="reupload")
    with pytest.raises(UnknownPluginError, match="unknown encoder 'nope'"):
        make_encoder("reupload", 2, 2, encoder="nope")
    with pytest.raises(TypeError):
        make_encoder("reupload", 2, 2, encoder="angle", reps=2)  # an option the inner encoder lacks
    with pytest.raises(ValueError, match=r"'layers' must be an integer >= 1 \(got 0\)"):
        make_encoder("reupload", 2, 2, layers=0)
    unbound = make_encoder("reupload", 2, 2)
    with pytest.raises(ConfigError, match="does not know its number of blocks yet"):
        unbound(torch.zeros(1, 2))
    built = make_encoder("reupload", 2, 2, layers=3)
    with pytest.raises(ValueError, match=r"built for 3 layer\(s\); the ansatz has 2"):
        QuantumLayer(built, make_ansatz("hea2x2"), make_backend("torch"))
    with pytest.raises(ValueError, match=r"expected input of shape \[B, 2\]"):
        built(torch.zeros(1, 3))
