"""``QuantumLayer.from_circuit``: a torch module training a user's own circuit (shared columns, fixed angles), whose
gradients are finite differences of its values in float64."""

from __future__ import annotations

import pytest
import torch

from hqf.errors import InvalidCircuitError
from hqf.quantum.circuit import Operation, Var, X, Z
from hqf.quantum.gates import full_angles
from hqf.quantum.gradients import expval
from hqf.quantum.layer import QuantumLayer
from hqf.quantum.lowering import UserCircuit
from hqf.registry.make import make_backend


def _circuit() -> UserCircuit:
    """Columns 0, 1: the inputs; 2, 3: weights, column 2 read by three gates; two fixed angles."""
    return UserCircuit(
        3,
        [
            Operation("RY", 0, 0),
            Operation("RY", 1, 1),
            Operation("RX", 2, angle=0.7),
            Operation("IsingZZ", (0, 1), 2),
            Operation("RX", 0, 2),
            Operation("CNOT", (1, 2)),
            Operation("RY", 2, 3),
            Operation("CRZ", (2, 0), 2),
            Operation("RZ", 1, angle=-0.4),
        ],
        [Z(0), 0.5 * Z(1) @ X(2) + 1.0, Var(Z(0) + 0.3 * X(1))],
    )


def test_a_circuit_layer_is_expval_with_its_weights_shared_by_every_row():
    circuit = _circuit()
    layer = QuantumLayer.from_circuit(
        circuit, make_backend("torch"), n_inputs=2, generator=torch.Generator().manual_seed(1)
    )
    assert layer.weights.shape == (2,) and layer.out_features == 3
    x = torch.rand(5, 2, dtype=torch.float64)
    expected = expval(make_backend("torch"), circuit, full_angles(x, layer.weights.detach()))
    torch.testing.assert_close(layer(x), expected, atol=1e-14, rtol=0)
    assert layer(x[0]).shape == (3,)  # one row


@pytest.mark.parametrize("gradient", ["backprop", "adjoint", "parameter-shift"])
def test_a_circuit_layers_gradient_is_the_finite_differences_in_float64(gradient):
    layer = QuantumLayer.from_circuit(_circuit(), make_backend("torch"), n_inputs=2, gradient=gradient)
    x = torch.rand(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)

    def values(inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, {"weights": weights}, (inputs,))

    assert torch.autograd.gradcheck(
        values, (x, layer.weights.detach().clone().requires_grad_(True)), eps=1e-6, atol=1e-8
    )


def test_a_circuit_layer_trains():
    layer = QuantumLayer.from_circuit(
        _circuit(), make_backend("torch"), n_inputs=2, generator=torch.Generator().manual_seed(3)
    )
    x = torch.rand(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = layer(x)[:, 0].mean()  # drive <Z0> down
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((_circuit(), 5), r"^'n_inputs' must be an integer in 0\.\.4 \(the circuit's columns\); got 5$"),
        (("RY 0", 0), r"^from_circuit takes a hqf\.Circuit or a hqf\.UserCircuit; got 'RY 0'$"),
    ],
)
def test_a_misused_circuit_layer_is_one_line(args, message):
    circuit, n_inputs = args
    with pytest.raises(InvalidCircuitError, match=message):
        QuantumLayer.from_circuit(circuit, make_backend("torch"), n_inputs=n_inputs)
