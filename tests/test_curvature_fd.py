"""The curvature term by finite differences of float64 gradients, against double backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.training.model import build_model
from hqf.learn.training.terms import build_terms, loss_at
from hqf.plugins.regularizers import hessian
from hqf.registry.contracts import RegularizerInputs
from hqf.registry.make import make_regularizer


def _relative(a, b) -> float:
    return float(hessian.norm([x - y for x, y in zip(a, b)]) / hessian.norm(b))


def _quartic():
    """A smooth non-quadratic loss of two tensors, its gradient as a function of their values."""
    torch.manual_seed(0)
    data = torch.randn(16, 3, dtype=torch.float64)

    def loss(values):
        w, b = values
        return torch.log1p(torch.exp(torch.tanh(data @ w + b))).sum() + (w**4).sum()

    def gradient_at(values):
        leaves = [v.detach().requires_grad_(True) for v in values]
        return torch.autograd.grad(loss(leaves), leaves)

    theta = [torch.randn(3, dtype=torch.float64), torch.randn((), dtype=torch.float64)]
    return loss, gradient_at, theta


def test_hessian_vector_equals_double_backward():
    loss, gradient_at, theta = _quartic()
    v = [torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64), torch.tensor(-1.0, dtype=torch.float64)]
    leaves = [t.clone().requires_grad_(True) for t in theta]
    grads = torch.autograd.grad(loss(leaves), leaves, create_graph=True)
    exact = torch.autograd.grad(grads, leaves, grad_outputs=v)
    assert _relative(hessian.hessian_vector(gradient_at, theta, v), exact) < 1e-8


def test_bilinear_gradient_equals_third_derivative():
    loss, gradient_at, theta = _quartic()
    a = [torch.tensor([0.3, -2.0, 0.5], dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64)]
    b = [torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64), torch.tensor(-1.0, dtype=torch.float64)]
    leaves = [t.clone().requires_grad_(True) for t in theta]
    grads = torch.autograd.grad(loss(leaves), leaves, create_graph=True)
    hb = torch.autograd.grad(grads, leaves, grad_outputs=b, create_graph=True)
    exact = torch.autograd.grad(sum((x * y).sum() for x, y in zip(a, hb)), leaves)
    assert _relative(hessian.bilinear_gradient(gradient_at, theta, a, b), exact) < 1e-6


def test_attached_gradient_has_the_given_value_and_gradient():
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    out = hessian.attach_gradient(torch.tensor(5.0), [p], [torch.tensor([3.0, -4.0], dtype=torch.float64)])
    out.backward()
    assert out.item() == 5.0 and p.grad.tolist() == [3.0, -4.0]


def _hybrid_inputs(method_loss_at: bool):
    config = RunConfig(ansatz="hea4x2", latent=4, hidden=8, seed=3)
    model = build_model(config, 6, 3).double()
    torch.manual_seed(1)
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randint(0, 3, (10,))
    params = tuple(p for p in model.parameters() if p.requires_grad)
    features, logits = model.forward_features(x)
    ce = F.cross_entropy(logits, y)
    return RegularizerInputs(
        features, logits, ce, params, loss_at(model, x, y, params) if method_loss_at else None
    ), params


@pytest.mark.parametrize("probes", [1, 3])
def test_finite_difference_penalty_and_gradient_equal_autograd_on_a_hybrid(probes):
    results = []
    for method in ("autograd", "finite-difference"):
        inputs, params = _hybrid_inputs(method_loss_at=method == "finite-difference")
        penalty = make_regularizer("curvature", probes=probes, seed=5, method=method).penalty(inputs)
        grads = torch.autograd.grad(penalty, params)
        results.append((penalty.detach(), grads))
    (value_ad, grads_ad), (value_fd, grads_fd) = results
    assert abs(float(value_fd - value_ad)) <= 1e-8 * float(value_ad)
    assert _relative(grads_fd, grads_ad) < 1e-6


def test_auto_takes_finite_differences_only_where_loss_at_is_given():
    inputs, _ = _hybrid_inputs(method_loss_at=False)
    reg = make_regularizer("curvature", seed=0)
    assert reg.penalty(inputs).requires_grad  # double backward
    with pytest.raises(ValueError, match="loss_at"):
        make_regularizer("curvature", seed=0, method="finite-difference").penalty(inputs)
    with pytest.raises(ValueError, match="method"):
        make_regularizer("curvature", method="secant")


def test_loss_at_is_deterministic_under_dropout_and_leaves_the_random_state():
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 2))
    model.train()
    params = tuple(model.parameters())
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    loss = loss_at(model, x, y, params)
    values = [p.detach().double() for p in params]
    state = torch.get_rng_state()
    first, second = loss(values), loss(values)
    assert first.dtype == torch.float64 and first.item() == second.item()
    assert torch.equal(state, torch.get_rng_state())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_terms_offer_float64_loss_only_in_double_precision_with_the_full_scope():
    model = build_model(RunConfig(ansatz="hea4x2", latent=4, hidden=8), 6, 3)
    by_name = {t.name: t for t in build_terms(RunConfig(), model)}
    assert by_name["curvature"].float64_loss and not by_name["stability"].float64_loss
    single = {t.name: t for t in build_terms(RunConfig(dtype="complex64"), model)}
    assert not single["curvature"].float64_loss
    assert not {t.name: t for t in build_terms(RunConfig(curvature_scope="classical"), model)}["curvature"].float64_loss
    with pytest.raises(ConfigError, match="complex128"):
        build_terms(RunConfig(dtype="complex64", curvature_method="finite-difference"), model)
