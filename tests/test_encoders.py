import math

import numpy as np
import pytest
import torch
from reference import reference_expval

from hqf.backends.torch import TorchBackend
from hqf.errors import DataError
from hqf.plugins.encoders.amplitude import AmplitudeEncoder, walsh_gray_matrix
from hqf.plugins.encoders.angle import AngleEncoder
from hqf.quantum.circuit import PauliWord, compose
from hqf.quantum.gradients import expval
from hqf.registry.make import make_encoder


def _state(encoder, x):
    """The torch backend's state vector after the encoding block alone."""
    backend = TorchBackend()
    circuit = compose(encoder.n_qubits, [encoder.operations()])
    angles = encoder(x)
    state = backend.initial_state(circuit.n_qubits, x.shape[0])
    for op in circuit.operations:
        state = backend.apply(state, circuit.n_qubits, op, angles)
    return state


# -- angle ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rotation", ["RX", "RY"])
def test_angle_identity_path_gives_cos_of_scaled_feature(rotation):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, generator=gen, dtype=torch.float64) * 4 - 2
    enc = make_encoder("angle", 3, 3, rotation=rotation, scale=0.5)
    assert enc.projection is None and not list(enc.parameters())
    assert [op.gate for op in enc.operations()] == [rotation] * 3
    circuit = compose(3, [enc.operations()])
    out = expval(TorchBackend(), circuit, enc(x))
    np.testing.assert_allclose(out.numpy(), np.cos(0.5 * x.numpy()), atol=1e-12)


def test_angle_rz_puts_a_hadamard_first_so_the_angle_is_visible():
    enc = AngleEncoder(2, 2, rotation="rz")
    assert [(op.gate, op.wires, op.param) for op in enc.operations()] == [
        ("H", (0,), None),
        ("RZ", (0,), 0),
        ("H", (1,), None),
        ("RZ", (1,), 1),
    ]
    x = torch.tensor([[0.3, -1.2], [2.0, 0.0]], dtype=torch.float64)
    words = [PauliWord.parse(w) for w in ("X0", "Y0", "Z0", "X1", "Y1")]
    out = expval(TorchBackend(), compose(2, [enc.operations()], words), enc(x)).numpy()
    xs = x.numpy()
    expected = np.stack([np.cos(xs[:, 0]), np.sin(xs[:, 0]), 0 * xs[:, 0], np.cos(xs[:, 1]), np.sin(xs[:, 1])], 1)
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("in_features", [12, 2])
def test_angle_projection_is_learnable_and_bounded(in_features):
    torch.manual_seed(0)
    enc = AngleEncoder(in_features, 4)
    assert enc.n_angles == 4 and enc.projection is not None
    x = (torch.randn(64, in_features) * 50).requires_grad_(True)
    angles = enc(x)
    assert angles.shape == (64, 4)
    largest = float(angles.detach().abs().max())
    assert largest <= math.pi + 1e-6  # float32 tanh saturates at exactly 1
    assert largest > 3.0  # large inputs go towards ±π
    expected = math.pi * torch.tanh(x @ enc.projection.weight.T + enc.projection.bias)
    torch.testing.assert_close(angles, expected)
    angles.sum().backward()
    assert x.grad is not None and enc.projection.weight.grad is not None
    assert float(enc.projection.weight.grad.abs().sum()) > 0


def test_angle_projection_modes():
    assert AngleEncoder(4, 4, projection="always").projection is not None
    with pytest.raises(ValueError, match="projection='never' needs in_features == n_qubits"):
        AngleEncoder(5, 4, projection="never")
    with pytest.raises(ValueError, match="'rotation' must be one of"):
        AngleEncoder(4, 4, rotation="RW")
    with pytest.raises(ValueError, match="'projection' must be one of"):
        AngleEncoder(4, 4, projection="sometimes")
    with pytest.raises(ValueError, match=r"expected input of shape \[B, 4\]"):
        AngleEncoder(4, 4)(torch.zeros(2, 5))


# -- amplitude ------------------------------------------------------------------------------------


def test_walsh_gray_matrix_is_orthogonal_up_to_its_size():
    for k in range(5):
        m = walsh_gray_matrix(k)
        torch.testing.assert_close(m.T @ m, 2**k * torch.eye(2**k, dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_amplitude_state_is_the_normalized_input_with_signs(n):
    gen = torch.Generator().manual_seed(100 + n)
    x = torch.randn(6, 2**n, generator=gen, dtype=torch.float64) * 3
    x[0, : 2 ** (n - 1)] = 0  # a zero half: exercises the zero-block branch
    x[1] = -x[1].abs()  # all negative
    enc = AmplitudeEncoder(2**n, n)
    assert enc.n_angles == 2**n - 1
    assert sum(op.gate == "CNOT" for op in enc.operations()) == 2**n - 2
    state = _state(enc, x)
    target = x / x.norm(dim=1, keepdim=True)
    assert float((state - target.to(state.dtype)).abs().max()) <= 1e-12


@pytest.mark.parametrize("n", [2, 4])
def test_amplitude_expvals_match_the_reference_simulator(n):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(4, 2**n, generator=gen, dtype=torch.float64)
    enc = AmplitudeEncoder(2**n, n)
    words = [PauliWord.z(q) for q in range(n)] + [PauliWord.parse("X0 Z1"), PauliWord.parse("Y1 Y0")]
    circuit = compose(n, [enc.operations()], words)
    angles = enc(x)
    got = expval(TorchBackend(), circuit, angles).numpy()
    np.testing.assert_allclose(got, reference_expval(circuit, angles.numpy()), atol=1e-12)
    # and the Z values are the signed probability differences of x/|x|
    p = (x / x.norm(dim=1, keepdim=True)).numpy() ** 2
    bits = (np.arange(2**n)[:, None] >> (n - 1 - np.arange(n))[None, :]) & 1
    np.testing.assert_allclose(got[:, :n], p @ (1 - 2 * bits), atol=1e-12)


def test_amplitude_gradients_reach_the_input():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    x[2, 4:] = 0  # a zero block: the gradient must stay finite
    enc = AmplitudeEncoder(8, 3)
    circuit = compose(3, [enc.operations()], [PauliWord.parse("X0 X1"), PauliWord.parse("Z2 X0")])
    f = lambda inp: expval(TorchBackend(), circuit, enc(inp))  # noqa: E731
    torch.autograd.gradcheck(f, (x[:2].clone().requires_grad_(True),))
    xz = x.clone().requires_grad_(True)
    f(xz).sum().backward()
    assert bool(torch.isfinite(xz.grad).all()) and float(xz.grad.abs().sum()) > 0
    # the same gradient through the parameter-shift rule
    xs = x.clone().requires_grad_(True)
    expval(TorchBackend(), circuit, enc(xs), gradient="parameter-shift").sum().backward()
    torch.testing.assert_close(xs.grad, xz.grad)


def test_amplitude_errors_and_padding():
    with pytest.raises(DataError, match=r"all-zero input \(rows \[1\]"):
        AmplitudeEncoder(4, 2)(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(DataError, match="non-finite"):
        AmplitudeEncoder(4, 2)(torch.tensor([[1.0, float("nan"), 0, 0]]))
    with pytest.raises(ValueError, match=r"takes 8 features \(got 6\); pass pad=True"):
        AmplitudeEncoder(6, 3)
    with pytest.raises(ValueError, match=r"takes 8 features \(got 9\)"):
        AmplitudeEncoder(9, 3, pad=True)
    x = torch.tensor([[3.0, -4.0, 0.0]], dtype=torch.float64)
    state = _state(AmplitudeEncoder(3, 2, pad=True), x)
    torch.testing.assert_close(state.real, torch.tensor([[0.6, -0.8, 0.0, 0.0]], dtype=torch.float64))
