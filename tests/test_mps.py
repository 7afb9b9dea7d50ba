"""The ``torch-mps`` backend: exact at a large enough bond dimension (values and gradients against the
reference), bounded by its own discarded weight below it, and its SVD backward at degenerate spectra."""

from __future__ import annotations

import math

import pytest
import torch

from hqf.backends.mps import MpsBackend
from hqf.backends.mps.program import lower
from hqf.backends.mps.split import split_left, split_right
from hqf.backends.torch import TorchBackend
from hqf.errors import ConfigError
from hqf.plugins.ansatze.hea import HardwareEfficient
from hqf.quantum.circuit import Circuit, Hamiltonian, Operation, PauliWord, Probs
from hqf.testing import Limits, ReferenceBackend, check_backend


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as ``hqf run --threads auto`` gives small circuits: the batched SVDs of small
    matrices only lose to a second thread on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _hea(n: int, layers: int, observables) -> Circuit:
    return Circuit(n, HardwareEfficient(n, layers).operations(), observables)


def _angles(circuit: Circuit, rows: int, scale: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(rows, circuit.n_params, generator=generator, dtype=torch.float64)


# -- exact at a large enough bond ---------------------------------------------------------------------------
def test_conformance_suite_passes_at_the_exact_bond_dimension_itself():
    """χ = 4 = 2^(4/2) on circuits of at most 4 qubits (tests/test_conformance.py runs the default, no limit)."""
    results = check_backend(
        "torch-mps",
        examples=5,
        seed=0,
        options={"chi": 4},
        properties=["shape", "expval", "shift-jacobian", "shift-gradient", "native-gradient"],
        limits=Limits(max_qubits=4, max_ops=10),
    )
    assert all(r.ok for r in results), [r.report() for r in results]


def test_hea_ring_values_and_gradients_are_exact_at_10_qubits_and_chi_32():
    """The ring's closing CNOT (9, 0) runs through a swap network; at χ = 2^5 nothing is dropped."""
    n = 10
    observables = [PauliWord.z(q) for q in range(n)] + [
        PauliWord.parse("X0 Y5 Z9"),
        Probs((7, 2, 4)),
        Hamiltonian([(0.5, "Z0 Z9"), (-1.25, "X3 X4")]),
    ]
    circuit = Circuit(
        n,
        [*HardwareEfficient(n, 2).operations(), Operation("CRY", (8, 1), 40), Operation("Toffoli", (9, 0, 5))],
        observables,
    )
    angles = _angles(circuit, 2, 1.5)
    backend = MpsBackend(chi=32)
    weights = torch.linspace(-1, 1, circuit.n_outputs, dtype=torch.float64)
    grads = []
    for simulator in (backend, TorchBackend()):  # torch: checked against the reference by its own suite
        rows = angles.clone().requires_grad_()
        values = simulator.expval(circuit, rows)
        grads.append((values.detach(), *torch.autograd.grad((values * weights).sum(), rows)))
    (values, grad), (expected_values, expected_grad) = grads
    assert torch.allclose(values, expected_values, atol=1e-10, rtol=0)
    assert torch.allclose(grad, expected_grad, atol=1e-10, rtol=0)
    assert float(backend.discarded_weight.max()) < 1e-20


def test_long_range_gates_take_the_swap_network_from_either_end():
    """Both directions of the swap network (the centre near the low or the high qubit), both wire orders."""
    ops = [Operation("H", 0), Operation("RY", 3, 0), Operation("CNOT", (0, 4)), Operation("CRX", (4, 1), 1)]
    ops += [Operation("CNOT", (3, 4)), Operation("CZ", (0, 3)), Operation("RXX", (4, 0), 2)]
    circuit = Circuit(5, ops, [PauliWord.parse(w) for w in ("Z0 Z4", "X1", "Y0 X4", "Z3")])
    steps = lower(circuit)
    swaps = [s for s in steps if s.gate == "SWAP"]
    assert {s.right for s in swaps} == {True, False}
    angles = _angles(circuit, 2, 2.0)
    assert torch.allclose(MpsBackend().expval(circuit, angles), ReferenceBackend().expval(circuit, angles), atol=1e-12)


def test_gradients_are_finite_and_exact_at_degenerate_singular_values():
    """A GHZ state has two equal Schmidt values on every bond, and rows of one batch differ in rank (a zero
    angle keeps a product state): the plain SVD backward divides by s_i² − s_j² = 0 there."""
    n = 6
    ops = [Operation("RY", 0, 0), *[Operation("CNOT", (q, q + 1)) for q in range(n - 1)]]
    ops += [Operation("RX", q, q) for q in range(1, n)] + [Operation("CNOT", (n - 1, 0))]
    circuit = Circuit(n, ops, [PauliWord.parse("Z0 Z5"), PauliWord.parse("X0 X1 X2 X3 X4 X5"), PauliWord.z(2)])
    angles = torch.tensor([[math.pi / 2, *[0.0] * (n - 1)], [0.0, *[0.3] * (n - 1)], [math.pi / 2, *[0.7] * 5]])
    angles = angles.to(torch.float64)
    rows = angles.clone().requires_grad_()
    (grad,) = torch.autograd.grad(MpsBackend().expval(circuit, rows).sum(), rows)
    expected = ReferenceBackend().jacobian(circuit, angles).sum(dim=1)
    assert torch.isfinite(grad).all()
    assert torch.allclose(grad, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("chi", [2, 4])
def test_backprop_under_truncation_is_the_derivative_of_the_truncated_values(chi):
    """Below the exact bond the gradient is that of what the backend computes (central differences),
    not of the exact circuit: the cuts here fall between distinct singular values."""
    circuit = _hea(6, 2, [PauliWord.z(0), PauliWord.parse("X2 X3"), Probs((1, 5))])
    angles = _angles(circuit, 2, 1.0, seed=3)
    weights = torch.linspace(-1, 1, circuit.n_outputs, dtype=torch.float64)
    backend = MpsBackend(chi=chi)

    def loss(rows):
        return (backend.expval(circuit, rows) * weights).sum(dim=1)

    rows = angles.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(rows).sum(), rows)
    assert float(backend.discarded_weight.min()) > 1e-3
    step = 1e-6
    shifts = torch.eye(circuit.n_params, dtype=torch.float64) * step
    central = torch.stack([(loss(angles + e) - loss(angles - e)) / (2 * step) for e in shifts], dim=1)
    assert torch.allclose(grad, central, atol=1e-6 * max(1.0, float(grad.abs().max())), rtol=0)


# -- the split and its backward ---------------------------------------------------------------------------
def _random(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(3, 6, 4), (3, 4, 6), (3, 5, 5)])
def test_an_untruncated_split_passes_the_gradient_of_its_product_through(shape):
    a = _random(*shape).requires_grad_()
    target = _random(*shape, seed=1)

    def loss(x):
        return (target.conj() * x).sum().real + (x.abs() ** 4).sum()

    (expected,) = torch.autograd.grad(loss(a), a)
    for split in (split_left, split_right):
        x, y, discarded = split(a, None, 0.0, 1e-10)
        (grad,) = torch.autograd.grad(loss(x @ y), a)
        assert torch.allclose(grad, expected, atol=1e-12, rtol=0)
        assert float(discarded.abs().max()) < 1e-14


def test_a_truncated_split_has_the_gradient_of_the_truncated_svd():
    """Away from degeneracy the backward equals autograd through torch.linalg.svd for a gauge-invariant loss."""
    a = _random(2, 6, 5).requires_grad_()
    target, other = _random(2, 6, 5, seed=1), _random(2, 6, 6, seed=2)

    def loss(u, w):
        state = u @ w
        return (target.conj() * state).sum().real + (state.abs() ** 4).sum() + ((u @ u.mH) * other).sum().real

    u, w, discarded = split_left(a, 2, 0.0, 1e-10)
    (grad,) = torch.autograd.grad(loss(u, w), a)
    full_u, s, vh = torch.linalg.svd(a, full_matrices=False)
    (expected,) = torch.autograd.grad(loss(full_u[:, :, :2], s[:, :2, None] * vh[:, :2]), a)
    assert torch.allclose(grad, expected, atol=1e-11, rtol=0)
    s = s.detach()
    assert torch.allclose(discarded, (s[:, 2:] ** 2).sum(1) / (s**2).sum(1))


# -- below the exact bond: the error is bounded by the discarded weight -------------------------------------
def _spread(observable) -> list[float]:
    """λ_max − λ_min of each output: 2 for a Pauli word, 1 for a probability, 2 Σ|c| for a Hamiltonian."""
    if isinstance(observable, PauliWord):
        return [2.0]
    if isinstance(observable, Probs):
        return [1.0] * observable.n_outputs
    return [2 * sum(abs(c) for c, _ in observable.terms)]


def _assert_bounded(n: int, layers: int, chis, rows: int = 3):
    observables = [PauliWord.z(q) for q in range(n)] + [
        PauliWord.parse(f"Z0 Z{n - 1}"),
        PauliWord.parse(f"X{n // 2} Y{n // 2 + 1}"),
        Probs((0, n // 2, n - 1)),
        Hamiltonian([(0.5, "Z0 Z1"), (-1.0, f"X{n - 1}")]),
    ]
    circuit = _hea(n, layers, observables)
    angles = _angles(circuit, rows, 0.1, seed=1)
    exact = TorchBackend().expval(circuit, angles)
    spread = torch.tensor([s for obs in observables for s in _spread(obs)], dtype=torch.float64)
    for chi in chis:
        backend = MpsBackend(chi=chi)
        values = backend.expval(circuit, angles)
        error = (values - exact).abs()
        bound = spread[None, :] * backend.error_bound[:, None]
        assert backend.max_bond <= chi
        assert float(backend.discarded_weight.min()) > 1e-8, "nothing was truncated: the bound is not tested"
        assert float(error.max()) > 1e-8
        assert bool((error <= bound).all()), (chi, float((error / bound).max()))
        assert float(backend.error_bound.max()) < 1, "the bound is informative (a Pauli word's trivial one is 2)"


def test_error_is_bounded_by_the_discarded_weight_at_12_qubits():
    _assert_bounded(12, 3, chis=(8, 16))


@pytest.mark.slow
def test_error_is_bounded_by_the_discarded_weight_at_24_qubits():
    _assert_bounded(24, 3, chis=(16, 32), rows=2)


def test_discarded_weight_is_reported_per_row():
    circuit = _hea(8, 3, [PauliWord.z(0)])
    angles = _angles(circuit, 4, 1.0)
    backend = MpsBackend(chi=2)
    backend.expval(circuit, angles)
    assert backend.discarded_weight.shape == (4,) and float(backend.discarded_weight.min()) > 0
    assert torch.all(backend.error_bound**2 >= backend.discarded_weight - 1e-15)
    MpsBackend().expval(circuit, angles)  # another instance's record is its own


@pytest.mark.parametrize("options", [{"chi": 0}, {"chi": 2.5}, {"cutoff": -1.0}, {"broadening": 2.0}])
def test_bad_options_are_one_line_errors(options):
    with pytest.raises(ConfigError):
        MpsBackend(**options)
