"""Each parametric gate's declared shift recipe gives its exact derivative: against torch autograd through
the dense reference and against central finite differences, at several angles, in complex128; through
the core's ``expval`` (first and second order) on the torch backend."""

import math

import numpy as np
import pytest
import torch
from reference import reference_expval

from hqf.backends.torch import TorchBackend
from hqf.quantum import gates
from hqf.quantum.circuit import GATES, Circuit, Operation, PauliWord
from hqf.quantum.gradients import expval, shift_jacobian
from hqf.testing import ReferenceBackend

PARAMETRIC = sorted(g for g, (_, p) in GATES.items() if p)
ANGLES = (-2.9, -0.6, 0.0, 0.45, 1.9, 3.7)


def _circuit(gate: str) -> Circuit:
    """A generic two- (or one-) qubit state, then the gate on column 4, read by every Pauli word."""
    arity = GATES[gate][0]
    n = 2
    prep = [Operation("RY", 0, 0), Operation("RZ", 0, 1), Operation("RY", 1, 2), Operation("RZ", 1, 3)]
    wires = (1, 0) if arity == 2 else (1,)
    words = [PauliWord(((0, p), (1, q))) for p in "XYZ" for q in "XYZ"] + [PauliWord.z(0), PauliWord(((1, "X"),))]
    return Circuit(n, prep + [Operation(gate, wires, 4)], words)


def _rows(theta: float) -> torch.Tensor:
    return torch.tensor([[0.7, -0.4, 1.3, 0.25, theta]], dtype=torch.float64)


def _recipe(gate: str, f, theta: float):
    return sum(c * f(theta + s) for c, s in gates.SHIFT_RULES[gate])


@pytest.mark.parametrize("gate", PARAMETRIC)
def test_recipe_equals_autograd_and_finite_differences(gate):
    circuit, reference = _circuit(gate), ReferenceBackend()

    def f(theta: float) -> np.ndarray:
        return reference_expval(circuit, _rows(theta).numpy())[0]  # tests/reference.py, independent

    for theta in ANGLES:
        by_recipe = _recipe(gate, f, theta)
        rows = _rows(theta).requires_grad_()
        (autograd,) = torch.autograd.grad(
            reference.expval(circuit, rows)[0] @ torch.ones(circuit.n_outputs, dtype=torch.float64), rows
        )
        jac = torch.autograd.functional.jacobian(lambda r: reference.expval(circuit, r)[0], _rows(theta))[:, 0, 4]
        h = 1e-5
        central = (f(theta + h) - f(theta - h)) / (2 * h)
        np.testing.assert_allclose(by_recipe, jac.numpy(), atol=1e-8, rtol=0, err_msg=f"{gate} at {theta}")
        np.testing.assert_allclose(by_recipe, central, atol=1e-8, rtol=0, err_msg=f"{gate} at {theta}")
        assert abs(by_recipe.sum() - autograd[0, 4].item()) < 1e-8


def test_four_term_recipe_is_needed_for_controlled_rotations():
    """The two-term rule is wrong for CRX (frequencies {1/2, 1}): the test above would catch a wrong recipe."""
    circuit = _circuit("CRX")
    f = lambda t: reference_expval(circuit, _rows(t).numpy())[0]  # noqa: E731
    two_term = (f(0.45 + math.pi / 2) - f(0.45 - math.pi / 2)) / 2
    assert np.abs(two_term - _recipe("CRX", f, 0.45)).max() > 1e-3


@pytest.mark.parametrize("gate", PARAMETRIC)
@pytest.mark.parametrize("method", ["parameter-shift", "adjoint", "backprop"])
def test_torch_gradients_of_every_parametric_gate(gate, method):
    circuit, backend = _circuit(gate), TorchBackend()
    angles = torch.cat([_rows(t) for t in (0.45, -2.9)]).requires_grad_()
    weights = torch.randn(2, circuit.n_outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (grad,) = torch.autograd.grad((expval(backend, circuit, angles, method) * weights).sum(), angles)
    want = torch.einsum("br,brp->bp", weights, ReferenceBackend().jacobian(circuit, angles.detach()))
    torch.testing.assert_close(grad, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("gate", ["CRX", "CRY", "CRZ", "CPhase", "RYY"])
def test_second_derivatives_through_the_shift_rule_are_exact(gate):
    circuit = _circuit(gate)
    angles = torch.cat([_rows(t) for t in (0.45, 1.9)])

    def first(a, method):
        a = a.clone().requires_grad_()
        (g,) = torch.autograd.grad(expval(TorchBackend(), circuit, a, method).sum(), a, create_graph=True)
        return g

    x = angles.clone().requires_grad_()
    (shift_hvp,) = torch.autograd.grad(first(x, "parameter-shift")[:, 4].sum(), x)
    y = angles.clone().requires_grad_()
    (auto_hvp,) = torch.autograd.grad(first(y, "backprop")[:, 4].sum(), y)
    torch.testing.assert_close(shift_hvp, auto_hvp, atol=1e-10, rtol=0)


def test_shift_jacobian_uses_each_columns_recipe():
    circuit = Circuit(
        2, [Operation("H", 0), Operation("CRZ", (0, 1), 0), Operation("RX", 1, 1)], [PauliWord.parse("X0")]
    )
    angles = torch.tensor([[0.8, -0.3]], dtype=torch.float64)
    backend = ReferenceBackend()
    got = shift_jacobian(lambda a: backend.expval(circuit, a), angles, None, circuit.column_gates)
    torch.testing.assert_close(got, backend.jacobian(circuit, angles), atol=1e-12, rtol=0)
    values = backend.expval_shifts(circuit, angles)
    assert values.shape == (4, 2, 1, 1)
    assert torch.all(values[2:, 1] == 0)  # RX (two-term) has no ±3π/2 rows
