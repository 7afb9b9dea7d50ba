import numpy as np
import pytest
import torch

from hqf.registry.contracts import RegularizerInputs
from hqf.registry.loader import registry
from hqf.registry.make import make_regularizer


def _inputs(loss, params, features=None):
    features = torch.zeros(1, 1) if features is None else features
    return RegularizerInputs(features=features, logits=features, ce_loss=loss, parameters=tuple(params))


def test_registered_names():
    assert {"stability", "curvature"} <= set(registry().names("regularizer"))


# -- stability ------------------------------------------------------------------------------------


def test_stability_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(9, 5)) * rng.uniform(0.1, 3, size=5)
    expected = np.mean([np.sum((row - f.mean(axis=0)) ** 2) for row in f])
    features = torch.tensor(f, requires_grad=True)
    value = make_regularizer("stability").penalty(_inputs(features.sum(), [], features))
    assert value.item() == pytest.approx(expected, rel=1e-13)
    value.backward()  # d/dF_i = 2 (F_i - F̄) / n
    np.testing.assert_allclose(features.grad.numpy(), 2 * (f - f.mean(axis=0)) / len(f), atol=1e-13)


def test_stability_of_one_sample_or_identical_samples_is_zero():
    reg = make_regularizer("stability")
    assert reg.penalty(_inputs(torch.tensor(0.0), [], torch.randn(1, 4))).item() == 0.0
    assert reg.penalty(_inputs(torch.tensor(0.0), [], torch.ones(6, 3) * 2.5)).item() == 0.0
    with pytest.raises(ValueError, match=r"shape \[B >= 1, k\] \(got \[4\]\)"):
        reg.penalty(_inputs(torch.tensor(0.0), [], torch.ones(4)))


# -- curvature ------------------------------------------------------------------------------------


def _tiny_mlp_problem():
    """A 3-4-3 tanh MLP (31 parameters) with a cross-entropy loss on fixed data, float64."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (4,), (3, 4), (3,)]
    params = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_(True) for s in shapes]
    x = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=gen)

    def loss_of(w1, b1, w2, b2):
        return torch.nn.functional.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)

    return params, loss_of


def _exact_hessian(params, loss_of):
    sizes = [p.numel() for p in params]
    flat = torch.cat([p.detach().flatten() for p in params])

    def f(theta):
        parts = theta.split(sizes)
        return loss_of(*(part.reshape(p.shape) for part, p in zip(parts, params)))

    return torch.autograd.functional.hessian(f, flat, vectorize=True)


def test_hutchinson_estimate_is_within_its_sampling_error_of_the_exact_hessian_norm():
    params, loss_of = _tiny_mlp_problem()
    hessian = _exact_hessian(params, loss_of)
    assert hessian.shape == (31, 31)
    exact = float((hessian**2).sum())  # ‖H‖_F²

    reg = make_regularizer("curvature", probes=2000, seed=1, vectorize=True)
    samples = reg.hv_squared_norms(_inputs(loss_of(*params), params)).detach().numpy()
    mean, std_error = samples.mean(), samples.std(ddof=1) / np.sqrt(len(samples))
    assert std_error < 0.05 * exact  # the check below is informative
    assert abs(mean - exact) < 4 * std_error, (mean, exact, std_error)
    # the spread of the samples is the one theory gives for Rademacher probes:
    # Var(vᵀAv) = 2 Σ_{i≠j} A_ij² with A = H²
    a = (hessian @ hessian).numpy()
    theory = 2 * (np.sum(a**2) - np.sum(np.diag(a) ** 2))
    assert samples.var(ddof=1) == pytest.approx(theory, rel=0.2)


def test_vectorized_probes_equal_the_probe_by_probe_loop():
    params, loss_of = _tiny_mlp_problem()
    loop = make_regularizer("curvature", probes=5, seed=2).hv_squared_norms(_inputs(loss_of(*params), params))
    reg = make_regularizer("curvature", probes=5, seed=2, vectorize=True)
    batched = reg.hv_squared_norms(_inputs(loss_of(*params), params))
    torch.testing.assert_close(batched, loop, rtol=1e-12, atol=0)
    assert batched.requires_grad


def test_one_probe_is_exact_for_a_diagonal_hessian():
    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[0.3, 1.5], [-1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    loss = (a**4).sum() + 0.5 * (b**3).sum() + (3 * a).sum()  # separable: H = diag(12a², 3b)
    diag = torch.cat([12 * a.detach() ** 2, 3 * b.detach().flatten()])
    for seed in range(3):
        value = make_regularizer("curvature", seed=seed).penalty(_inputs(loss, [a, b]))
        assert value.item() == pytest.approx(float(diag.norm()), rel=1e-14)


def test_penalty_is_differentiable_and_its_gradient_is_right():
    params, loss_of = _tiny_mlp_problem()
    sizes = [p.numel() for p in params]

    def penalty_of(theta):  # fixed probes: a fresh regularizer with the same seed each time
        parts = [part.reshape(p.shape) for part, p in zip(theta.split(sizes), params)]
        reg = make_regularizer("curvature", probes=3, seed=4)
        return reg.penalty(_inputs(loss_of(*parts), parts))

    theta = torch.cat([p.detach().flatten() for p in params]).requires_grad_(True)
    assert torch.autograd.gradcheck(penalty_of, (theta,))
    value = penalty_of(theta)
    (grad,) = torch.autograd.grad(value, theta)
    assert float(grad.abs().sum()) > 0


def test_curvature_is_reproducible_and_handles_flat_or_unused_parameters():
    params, loss_of = _tiny_mlp_problem()
    first = make_regularizer("curvature", probes=4, seed=9).penalty(_inputs(loss_of(*params), params))
    again = make_regularizer("curvature", probes=4, seed=9).penalty(_inputs(loss_of(*params), params))
    assert first.item() == again.item()

    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    unused = torch.ones(3, dtype=torch.float64, requires_grad=True)
    linear = (3 * w).sum()  # zero Hessian
    assert make_regularizer("curvature").penalty(_inputs(linear, [w, unused])).item() == 0.0
    quad = (w**2).sum()  # H = 2I on w, 0 on the unused parameter
    value = make_regularizer("curvature", seed=0).penalty(_inputs(quad, [w, unused]))
    assert value.item() == pytest.approx(2 * np.sqrt(2), rel=1e-14)


def test_curvature_errors():
    with pytest.raises(ValueError, match=r"'probes' must be an integer >= 1 \(got 0\)"):
        make_regularizer("curvature", probes=0)
    with pytest.raises(ValueError, match="not both"):
        make_regularizer("curvature", seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="not attached to a graph"):
        make_regularizer("curvature").penalty(_inputs(torch.tensor(1.0), []))


def test_curvature_through_a_quantum_layer_is_the_same_with_backprop_and_parameter_shift():
    from hqf.quantum.layer import QuantumLayer
    from hqf.registry.make import make_ansatz, make_backend, make_encoder

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (5,), generator=gen)
    results = []
    for gradient in ("backprop", "parameter-shift"):
        torch.manual_seed(0)
        encoder = make_encoder("amplitude", 4, 2)
        layer = QuantumLayer(encoder, make_ansatz("sel2x1"), make_backend("torch"), gradient=gradient)
        head = torch.nn.Linear(2, 3).double()
        params = (*layer.parameters(), *head.parameters())
        logits = head(layer(x))
        inputs = RegularizerInputs(logits, logits, torch.nn.functional.cross_entropy(logits, y), params)
        value = make_regularizer("curvature", probes=2, seed=0).penalty(inputs)
        results.append((value, torch.autograd.grad(value, params)))
    (v_bp, g_bp), (v_ps, g_ps) = results
    assert v_bp.item() > 0
    torch.testing.assert_close(v_ps, v_bp, rtol=1e-12, atol=1e-14)
    for a, b in zip(g_ps, g_bp):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
