"""The conformance suite holds a backend to its stated bound: off by 10× the bound fails, off by 0.1× passes.

The bounds are written here as numbers (those docs/write-a-backend.md states), not read from
:data:`hqf.testing.ATOL`, so loosening the suite's tolerance fails these tests. Each wrong backend is a
test double around the reference simulator, wrong by a known multiple of the bound in one place:

- values: every expectation value off by ``ε``;
- shift Jacobian: values plus ``ε · Σ_p 2θ_p/π``, whose shift-rule derivative is exactly ``ε``;
- shift-rule gradient: ``expval_shifted`` off by ``±ε``, so each Jacobian entry is off by ``ε``;
- native gradient: the ``vjp`` off by ``ε · Σ_r |g_br|`` in every column ``p``, which puts the weight
  gradients off by exactly ``ε/atol`` times their bound ``Σ_b Σ_r |g_br| · atol``.
"""

import math

import attrs
import pytest
import torch

from hqf.testing import PROPERTIES, Limits, ReferenceBackend, check_backend, check_property

#: the per-value bounds the suite states for exact backends
BOUND = {"complex128": 1e-8, "complex64": 1e-4}
LIMITS = Limits(max_qubits=4, max_ops=10, max_batch=3)


class _Off(ReferenceBackend):
    """The reference, made wrong by ``error`` in the way a subclass says; no native gradient unless declared."""

    capabilities = attrs.evolve(ReferenceBackend.capabilities, dtypes={"complex128", "complex64"}, gradients=set())

    def __init__(self, error: float, **options):
        super().__init__(**options)
        self.error = error

    def exact(self, circuit, angles):
        return super().expval(circuit, angles.to(torch.float64))


class ValuesOff(_Off):
    def expval(self, circuit, angles):
        return (self.exact(circuit, angles) + self.error).to(self.real_dtype)


class DriftingValues(_Off):
    def expval(self, circuit, angles):
        drift = self.error * (2 / math.pi) * angles.to(torch.float64).sum(dim=1, keepdim=True)
        return (self.exact(circuit, angles) + drift).to(self.real_dtype)


class ShiftedValuesOff(_Off):
    def expval(self, circuit, angles):
        return self.exact(circuit, angles).to(self.real_dtype)

    def expval_shifted(self, circuit, angles, chunk=None):
        shifted = super().expval_shifted(circuit, angles, chunk)
        return shifted + torch.tensor([self.error, -self.error], dtype=shifted.dtype).reshape(2, 1, 1, 1)


class VjpOff(_Off):
    capabilities = attrs.evolve(ReferenceBackend.capabilities, gradients={"adjoint"})

    def expval(self, circuit, angles):
        return self.exact(circuit, angles).to(self.real_dtype)

    def vjp(self, circuit, angles, grad_output):
        exact = torch.einsum("br,brp->bp", grad_output.to(torch.float64), self.jacobian(circuit, angles))
        return exact + self.error * grad_output.abs().sum(dim=1, keepdim=True).to(torch.float64)


def _results(double, factor, dtype="complex128", examples=10, **kwargs):
    def make():
        return double(factor * BOUND[dtype], dtype=dtype)

    return {r.property: r for r in check_backend(make, examples=examples, seed=0, limits=LIMITS, **kwargs)}


@pytest.mark.parametrize("dtype", list(BOUND))
def test_values_off_by_ten_times_the_bound_fail(dtype):
    result = _results(ValuesOff, 10, dtype, properties=["expval"])["expval"]
    assert result.status == "fail", result.report()
    assert result.bound == BOUND[dtype]
    assert result.worst_error == pytest.approx(10 * BOUND[dtype], rel=1e-2)  # float32 rounds at ~1e-7 of a value


@pytest.mark.parametrize("dtype", list(BOUND))
def test_values_off_by_a_tenth_of_the_bound_pass_every_property(dtype):
    results = _results(ValuesOff, 0.1, dtype)
    assert [r.status for r in results.values()] == ["pass"] * 4 + ["skip"], [r.report() for r in results.values()]
    assert results["expval"].worst_error == pytest.approx(0.1 * BOUND[dtype], rel=1e-2)  # float32 rounding


@pytest.mark.parametrize(
    "double, prop", [(ShiftedValuesOff, "shift-gradient"), (VjpOff, "native-gradient")], ids=["shift-rule", "native"]
)
def test_gradients_off_by_ten_times_the_bound_fail(double, prop):
    result = _results(double, 10, properties=[prop])[prop]
    assert result.status == "fail", result.report()
    assert "gradient" in result.message


@pytest.mark.parametrize("double", [ShiftedValuesOff, VjpOff], ids=["shift-rule", "native"])
def test_gradients_off_by_a_tenth_of_the_bound_pass_every_property(double):
    results = _results(double, 0.1)
    native = "pass" if double is VjpOff else "skip"
    assert [r.status for r in results.values()] == ["pass"] * 4 + [native], [r.report() for r in results.values()]
    changed = "native-gradient" if double is VjpOff else "shift-gradient"
    assert results[changed].worst_error > 0.05 * results[changed].bound  # the error reached the check


@pytest.mark.parametrize("factor, status", [(10, "fail"), (0.1, "pass")])
def test_shift_jacobian_off_by_a_multiple_of_the_bound(factor, status):
    result = check_property(
        lambda: DriftingValues(factor * BOUND["complex128"]), "shift-jacobian", seed=0, limits=LIMITS
    )
    assert result.status == status, result.report()
    assert result.worst_error == pytest.approx(factor * BOUND["complex128"], rel=1e-3)


def test_every_property_is_pinned_here():
    pinned = {"expval", "shift-jacobian", "shift-gradient", "native-gradient"}
    assert set(PROPERTIES) - pinned == {"shape"}  # shape has no tolerance
