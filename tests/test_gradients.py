"""The core's gradients (hqf.quantum.gradients) on the reference simulator, and on the torch backend.

Autograd through the reference's dense matrices is independent of the shift rule; the torch backend's
own backward (its adjoint pass) is checked against the shift rule the same way.
"""

import attrs
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import angle_batches, circuits

from hqf.errors import InvalidCircuitError
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.quantum.gradients import default_gradient, expval, shift_jacobian
from hqf.quantum.interfaces import Encoder
from hqf.quantum.layer import QuantumLayer
from hqf.registry.make import make_ansatz, make_backend
from hqf.testing import ReferenceBackend

BACKENDS = {"reference": ReferenceBackend, "torch": lambda: make_backend("torch")}


def _angles_from_data_and_weights(circuit, seed):
    """Angles whose first columns come from data through a linear map and the rest are weights."""
    gen = torch.Generator().manual_seed(seed)
    n_data = circuit.n_params // 2
    x = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    proj = torch.randn(4, n_data, dtype=torch.float64, generator=gen)
    w = torch.randn(circuit.n_params - n_data, dtype=torch.float64, generator=gen, requires_grad=True)
    angles = torch.cat([x @ proj, w.expand(3, -1)], dim=1)
    return x, w, angles


@pytest.mark.parametrize("backend_name", list(BACKENDS))
@given(circuit=circuits(max_qubits=6, max_ops=16).filter(lambda c: c.n_params >= 2), seed=st.integers(0, 2**16))
def test_parameter_shift_equals_autograd_for_data_and_weights(backend_name, circuit, seed):
    backend = BACKENDS[backend_name]()
    cotangent = torch.randn(3, circuit.n_outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    grads = {}
    for method in ("backprop", "parameter-shift"):
        x, w, angles = _angles_from_data_and_weights(circuit, seed)
        out = expval(backend, circuit, angles, gradient=method)
        gx, gw = torch.autograd.grad((out * cotangent).sum(), [x, w], allow_unused=True)
        grads[method] = [torch.zeros_like(t) if g is None else g for g, t in ((gx, x), (gw, w))]
    for a, b in zip(grads["backprop"], grads["parameter-shift"]):
        assert torch.max(torch.abs(a - b)).item() <= 1e-8, circuit.diagram()


@pytest.mark.parametrize("backend_name", list(BACKENDS))
@given(data=st.data())
def test_shift_jacobian_equals_autograd_jacobian(backend_name, data):
    circuit = data.draw(circuits(max_qubits=5, max_ops=12))
    angles = torch.from_numpy(data.draw(angle_batches(circuit, max_batch=2)))
    backend = BACKENDS[backend_name]()
    jac_shift = shift_jacobian(lambda a: backend.expval(circuit, a), angles, None, circuit.column_gates)
    jac_auto = torch.autograd.functional.jacobian(lambda a: backend.expval(circuit, a), angles)  # [B,R,B,P]
    diag = torch.stack([jac_auto[b, :, b, :] for b in range(angles.shape[0])])
    assert jac_shift.shape == diag.shape == (angles.shape[0], circuit.n_outputs, circuit.n_params)
    assert torch.allclose(jac_shift, diag, atol=1e-10, rtol=0), circuit.diagram()


@pytest.mark.parametrize("backend_name", list(BACKENDS))
def test_shift_rule_second_derivatives_are_exact(backend_name):
    circuit = Circuit(
        2,
        [
            Operation("RY", 0, 0),
            Operation("RX", 1, 1),
            Operation("CNOT", (0, 1)),
            Operation("RZ", 1, 2),
            Operation("RY", 1, 3),
        ],
        [PauliWord.parse("Z0 Z1"), PauliWord.parse("X1")],
    )
    backend = BACKENDS[backend_name]()
    a0 = torch.tensor([[0.3, -1.2, 0.7, 2.0]], dtype=torch.float64)

    def loss(method):
        return lambda a: (
            expval(backend, circuit, a, gradient=method) * torch.tensor([1.0, -0.5], dtype=torch.float64)
        ).sum()

    h_shift = torch.autograd.functional.hessian(loss("parameter-shift"), a0)
    h_auto = torch.autograd.functional.hessian(loss("backprop"), a0)
    assert torch.max(torch.abs(h_shift - h_auto)).item() <= 1e-10


def test_chunked_shift_equals_single_call():
    circuit = Circuit(
        3, [Operation("RY", q, q) for q in range(3)] + [Operation("CZ", (0, 2))], [PauliWord.parse("X0 Z2")]
    )
    angles = torch.rand(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    backend = make_backend("torch")
    one = shift_jacobian(lambda a: backend.expval(circuit, a), angles)
    chunked = shift_jacobian(lambda a: backend.expval(circuit, a), angles, chunk=5)
    # the same numbers up to the order of one sum over amplitudes (a batch of 5 columns vectorizes it differently)
    torch.testing.assert_close(one, chunked, atol=1e-15, rtol=0)


def test_angle_validation_happens_before_simulation():
    circuit = Circuit(1, [Operation("RX", 0, 0)], [PauliWord.z(0)])
    backend = ReferenceBackend()
    with pytest.raises(InvalidCircuitError, match=r"shape \[B, 1\]"):
        expval(backend, circuit, torch.zeros(2, 3))
    with pytest.raises(InvalidCircuitError, match="NaN"):
        expval(backend, circuit, torch.tensor([[float("nan")]]))
    with pytest.raises(InvalidCircuitError, match="real"):
        expval(backend, circuit, torch.zeros(1, 1, dtype=torch.complex128))

    class BackpropOnly(ReferenceBackend):
        capabilities = attrs.evolve(ReferenceBackend.capabilities, gradients={"backprop"})

    with pytest.raises(ValueError, match="no native 'adjoint'"):
        expval(BackpropOnly(), circuit, torch.zeros(1, 1), gradient="adjoint")


def test_default_gradient_prefers_backprop_on_torch():
    assert default_gradient(make_backend("torch")) == "backprop"


def test_quantum_layer_trains_with_shift_gradients():
    class Linear(Encoder):
        name = "test-linear"

        def __init__(self, in_features, n_qubits):
            super().__init__(in_features, n_qubits)
            self.proj = torch.nn.Linear(in_features, n_qubits, dtype=torch.float64)

        def operations(self):
            return tuple(Operation("RY", q, q) for q in range(self.n_qubits))

        def forward(self, x):
            return self.proj(x)

    torch.manual_seed(0)
    layers = {
        m: QuantumLayer(
            Linear(5, 3),
            make_ansatz("hea3x2"),
            make_backend("torch"),
            gradient=m,
            generator=torch.Generator().manual_seed(0),
        )
        for m in ("backprop", "parameter-shift")
    }
    layers["parameter-shift"].load_state_dict(layers["backprop"].state_dict())
    x = torch.randn(7, 5, dtype=torch.float64)
    grads = {}
    for m, layer in layers.items():
        layer(x).square().sum().backward()
        grads[m] = [p.grad.clone() for p in layer.parameters()]
    for a, b in zip(*grads.values()):
        assert torch.max(torch.abs(a - b)).item() <= 1e-10
    assert layers["backprop"].weights.shape == (2, 3, 2)


class _AutogradVjpBackend(ReferenceBackend):
    """A backend whose native VJP is first-order only (computed by torch autograd on detached angles)."""

    name = "test-adjoint"
    capabilities = attrs.evolve(ReferenceBackend.capabilities, gradients={"adjoint"})

    def vjp(self, circuit, angles, grad_output):
        with torch.enable_grad():
            a = angles.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.expval(circuit, a), a, grad_output)
        return g


def test_native_vjp_gives_exact_second_derivatives_through_the_shift_rule():
    circuit = Circuit(
        2,
        [Operation("RX", 0, 0), Operation("CNOT", (0, 1)), Operation("RY", 1, 1), Operation("RZ", 0, 2)],
        [PauliWord.parse("Z1"), PauliWord.parse("Y0 X1")],
    )
    a0 = torch.tensor([[0.4, -0.9, 1.3]], dtype=torch.float64)
    weights = torch.tensor([0.7, -1.1], dtype=torch.float64)
    native = _AutogradVjpBackend()
    h_native = torch.autograd.functional.hessian(
        lambda a: (expval(native, circuit, a, gradient="adjoint") * weights).sum(), a0
    )
    h_auto = torch.autograd.functional.hessian(lambda a: (expval(ReferenceBackend(), circuit, a) * weights).sum(), a0)
    assert torch.max(torch.abs(h_native - h_auto)).item() <= 1e-10
    # first order still goes through the native vjp
    a = a0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((expval(native, circuit, a, gradient="adjoint") * weights).sum(), a)
    (g_ref,) = torch.autograd.grad((expval(ReferenceBackend(), circuit, a) * weights).sum(), a)
    assert torch.max(torch.abs(g - g_ref)).item() <= 1e-12
