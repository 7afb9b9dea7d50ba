"""Expectation values as a differentiable torch operation on any backend.

:func:`expval` is the single entry point: it validates the angle matrix, then either calls a backend
whose result torch autograd already differentiates (``backprop``), or wraps the backend in an
autograd function whose backward is the backend's native vector-Jacobian product (``adjoint``) or the
core's parameter-shift rule.

Parameter shift: each column uses the exact recipe of the gate that reads it
(:data:`hqf.quantum.gates.SHIFT_RULES`, derived from the generator's spectrum):
``∂⟨O⟩/∂θ = Σ_k c_k ⟨O⟩(θ + s_k)``. For generator eigenvalues ``±1/2`` (``exp(−iθP/2)``, Ising
couplings, phase shifts) it is the two-term rule ``(⟨O⟩(θ + π/2) − ⟨O⟩(θ − π/2)) / 2``; controlled
rotations (eigenvalues ``{0, ±1/2}``) take four terms at ``±π/2, ±3π/2``. A first-order backward asks the
backend for all shifted values at once (:meth:`~hqf.quantum.interfaces.Backend.expval_shifted` when every
recipe is two-term, else :meth:`~hqf.quantum.interfaces.Backend.expval_shifts`). A backward that must
itself be differentiable is built from differentiable ``expval`` calls, so second derivatives (double
backward) are exact too.

A :class:`~hqf.quantum.lowering.UserCircuit` (shared columns, fixed angles, constant terms, variances) is
lowered here to its strict circuit: its angles gathered into the strict columns, a variance ``⟨O²⟩ − ⟨O⟩²``
from the values of ``O`` and ``O²`` (exact backends only), its constants added to the values, so the backend
and the checks below see a strict circuit only. A 1-D angle vector is one row, and gives 1-D values.

A circuit the backend does not declare support for is refused before any work. Every value the backend
returns, and its native vector-Jacobian product, is checked (:mod:`hqf.quantum.outputs`); an exception or
``sys.exit`` inside a backend call becomes a :class:`~hqf.errors.BackendContractError` naming the backend
(its own :class:`~hqf.errors.HqfError` and a ``NotImplementedError``, the declared "cannot", pass unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from hqf.errors import BackendContractError, HqfError, InvalidCircuitError, UnsupportedCircuitError
from hqf.quantum.circuit import Circuit
from hqf.quantum.gates import full_angles, recipe_values, shift_coefficients, shifted_values, two_term_only
from hqf.quantum.interfaces import GRADIENTS, Backend, check_supported
from hqf.quantum.lowering import UserCircuit
from hqf.quantum.outputs import check_outputs, check_vjp


def check_angles(circuit: Circuit, angles: torch.Tensor, shared: torch.Tensor | None = None) -> None:
    """Raise :class:`InvalidCircuitError` unless ``angles`` is a finite real ``[B, P − S]`` and ``shared``
    (when given) a finite real ``[S]``, with ``P = circuit.n_params`` (``S = 0`` without ``shared``)."""
    parts = [("angles", angles)] + ([] if shared is None else [("shared angles", shared)])
    for name, tensor in parts:
        if not isinstance(tensor, torch.Tensor):
            raise InvalidCircuitError(f"{name} must be a torch.Tensor (got {type(tensor).__name__})")
        if tensor.is_complex() or not tensor.is_floating_point():
            raise InvalidCircuitError(f"{name} must be real floating point (got {tensor.dtype})")
    if shared is not None and shared.ndim != 1:
        raise InvalidCircuitError(f"shared angles must be 1-D (got shape {list(shared.shape)})")
    width = circuit.n_params - (0 if shared is None else shared.shape[0])
    if angles.ndim != 2 or angles.shape[1] != width:
        also = "" if shared is None else f" with {shared.shape[0]} shared"
        raise InvalidCircuitError(
            f"angles must have shape [B, {width}] for this circuit{also} (got {list(angles.shape)})"
        )
    for _, tensor in parts:  # one reduction each: a finite sum means every angle is finite
        if not math.isfinite(float(tensor.detach().sum())) and not bool(torch.isfinite(tensor).all()):
            raise InvalidCircuitError("angles contain NaN or infinity")


def call_backend(backend: Backend, method: str, *args: Any) -> Any:
    """``backend.<method>(*args)``, with an exception it raises (not an :class:`HqfError`, not
    ``NotImplementedError``) or a ``sys.exit`` turned into a :class:`BackendContractError` naming it."""
    try:
        return getattr(backend, method)(*args)
    except (HqfError, NotImplementedError):
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's failure, whatever it is, is named
        text = str(exc).strip().splitlines()
        raised = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        raise BackendContractError(backend.name, f"{method} raised {raised}") from exc


def _bounded(backend: Backend) -> bool:
    """Whether ``backend``'s values must lie in the observables' ranges: not for mitigated extrapolations
    (``bounded`` False) nor for Monte Carlo estimates (``capabilities.estimates``), finite all the same."""
    return backend.bounded and not backend.capabilities.estimates


def _values(backend: Backend, circuit: Circuit, method: str, *args: Any, leading: tuple[int, ...]) -> torch.Tensor:
    """:func:`call_backend`, its values checked (:func:`hqf.quantum.outputs.check_outputs`) to be ``[*leading, R]``."""
    out = call_backend(backend, method, circuit, *args)
    check_outputs(backend.name, circuit, out, method, leading, _bounded(backend))
    return out


def shift_jacobian(
    evaluate: Callable[[torch.Tensor], torch.Tensor],
    angles: torch.Tensor,
    chunk: int | None = None,
    column_gates: tuple[str, ...] | None = None,
) -> torch.Tensor:
    """Jacobian ``[B, R, P]`` of ``evaluate: [N, P] -> [N, R]`` at ``angles[B, P]`` by parameter shift.

    ``column_gates[p]`` names the gate reading column ``p`` (its recipe is used; default: the two-term
    rule everywhere). One call of ``evaluate`` on all shifted rows, or calls of at most ``chunk`` rows.
    """
    if angles.shape[1] == 0:
        return evaluate(angles).unsqueeze(-1)[..., :0]
    if column_gates is None or two_term_only(column_gates):
        values = shifted_values(evaluate, angles, chunk)  # [2, P, B, R]
        return ((values[0] - values[1]) / 2).permute(1, 2, 0)
    coefficients = shift_coefficients(column_gates).to(angles.dtype)
    values = recipe_values(evaluate, angles, coefficients, chunk)  # [S, P, B, R]
    return torch.einsum("sp,spbr->brp", coefficients.to(values.dtype), values)


class _ShiftRule(torch.autograd.Function):
    """``backend.expval`` with a parameter-shift backward (differentiable again)."""

    @staticmethod
    def forward(ctx, angles: torch.Tensor, backend: Backend, circuit: Circuit, chunk: int | None):
        ctx.save_for_backward(angles)
        ctx.backend, ctx.circuit, ctx.chunk = backend, circuit, chunk
        with torch.no_grad():
            return _values(backend, circuit, "expval", angles.detach(), leading=(angles.shape[0],))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (angles,) = ctx.saved_tensors
        backend, circuit, chunk = ctx.backend, ctx.circuit, ctx.chunk
        if torch.is_grad_enabled():  # create_graph: the shifted values must be differentiable again
            jac = shift_jacobian(
                lambda a: _ShiftRule.apply(a, backend, circuit, chunk), angles, chunk, circuit.column_gates
            )
            return torch.einsum("brp,br->bp", jac, grad_output), None, None, None
        if angles.shape[1] == 0:
            return torch.zeros_like(angles), None, None, None
        rows, width, detached = angles.shape[0], angles.shape[1], angles.detach()
        if two_term_only(circuit.column_gates):
            values = _values(backend, circuit, "expval_shifted", detached, chunk, leading=(2, width, rows))
            jac = (values[0] - values[1]) / 2  # [P, B, R]
        else:
            coefficients = shift_coefficients(circuit.column_gates)  # [S, P]; values where not 0
            values = call_backend(backend, "expval_shifts", circuit, detached, chunk)  # [S, P, B, R]
            leading = (coefficients.shape[0], width, rows)
            check_outputs(backend.name, circuit, values, "expval_shifts", leading, bounded=False)
            used = values[coefficients.to(values.device) != 0]
            check_outputs(backend.name, circuit, used, "expval_shifts", bounded=_bounded(backend))
            coefficients = coefficients.to(device=values.device, dtype=values.dtype)
            jac = torch.einsum("sp,spbr->pbr", coefficients, values)
        return torch.einsum("pbr,br->bp", jac.to(grad_output.dtype), grad_output), None, None, None


class _NativeVjp(torch.autograd.Function):
    """``backend.expval`` with the backend's own vector-Jacobian product as backward.

    A native VJP is first-order only. When a second derivative is asked for (``create_graph=True``,
    e.g. the curvature regularizer's Hessian-vector products) the backward falls back to the
    differentiable parameter-shift rule, which is exact to every order.
    """

    @staticmethod
    def forward(ctx, angles: torch.Tensor, backend: Backend, circuit: Circuit):
        ctx.save_for_backward(angles)
        ctx.backend, ctx.circuit = backend, circuit
        with torch.no_grad():
            return _values(backend, circuit, "expval", angles.detach(), leading=(angles.shape[0],))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (angles,) = ctx.saved_tensors
        backend, circuit = ctx.backend, ctx.circuit
        if torch.is_grad_enabled():  # create_graph: a higher derivative will follow
            jac = shift_jacobian(
                lambda a: _ShiftRule.apply(a, backend, circuit, None), angles, None, circuit.column_gates
            )
            return torch.einsum("brp,br->bp", jac, grad_output), None, None
        with torch.no_grad():
            grad = call_backend(backend, "vjp", circuit, angles.detach(), grad_output)
        check_vjp(backend.name, grad, tuple(angles.shape))
        return grad, None, None


def default_gradient(backend: Backend) -> str:
    """The cheapest exact gradient a backend offers: backprop, then adjoint, then parameter-shift."""
    for method in GRADIENTS:
        if method == "parameter-shift" or method in backend.capabilities.gradients:
            return method
    raise AssertionError("unreachable")


def expval(
    backend: Backend,
    circuit: Circuit | UserCircuit,
    angles: torch.Tensor,
    gradient: str = "auto",
    chunk: int | None = None,
    shared: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable expectation values ``[B, R]`` of ``circuit`` at ``angles[B, P]`` on ``backend``.

    ``circuit``: a :class:`~hqf.quantum.circuit.Circuit` or a :class:`~hqf.quantum.lowering.UserCircuit` (columns
    shared by several gates, whose gradients are summed, fixed angles, constant terms). ``angles`` may be a
    1-D vector ``[P]``: one row, and the values are ``[R]``.
    ``gradient`` is ``auto`` (the backend's cheapest exact method), ``backprop``, ``adjoint`` or
    ``parameter-shift`` (always available). ``chunk`` caps the rows of one shifted ``expval`` call.
    ``shared[S]``: angles appended to every row (the ansatz weights; then ``angles`` is ``[B, P − S]``).
    Same values and gradients as passing the full matrix; with ``backprop`` the backend sees the
    shared angles as such (:meth:`Backend.expval_broadcast`: e.g. their gradient summed over the rows
    directly, or frozen weights recognised at inference).
    """
    one_row = isinstance(angles, torch.Tensor) and angles.ndim == 1
    if one_row:
        angles = angles.unsqueeze(0)
    if isinstance(circuit, UserCircuit):
        values = _lowered_expval(backend, circuit, angles, gradient, chunk, shared)
    else:
        check_supported(backend, circuit)
        check_angles(circuit, angles, shared)
        values = _strict_expval(backend, circuit, angles, gradient, chunk, shared)
    return values[0] if one_row else values


def _lowered_expval(
    backend: Backend,
    circuit: UserCircuit,
    angles: torch.Tensor,
    gradient: str,
    chunk: int | None,
    shared: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`expval` of a user circuit: its strict circuit at the gathered angles, plus its constants."""
    lowered = circuit.lowered
    check_supported(backend, lowered.circuit)
    if any(lowered.variances) and (not backend.capabilities.exact or backend.capabilities.estimates):
        biased = "var (1 - <P>^2 of estimated values is biased)"
        raise UnsupportedCircuitError(backend.name, "observable", biased, backend.capabilities.observables)
    check_angles(circuit, angles, shared)
    if lowered.identity:
        return _strict_expval(backend, lowered.circuit, angles, gradient, chunk, shared)
    data, tail = lowered.gather(angles, shared, backend.real_dtype)
    return lowered.finish(_strict_expval(backend, lowered.circuit, data, gradient, chunk, tail))


def _strict_expval(
    backend: Backend,
    circuit: Circuit,
    angles: torch.Tensor,
    gradient: str,
    chunk: int | None,
    shared: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`expval` of a strict circuit whose angles are checked."""
    method = default_gradient(backend) if gradient == "auto" else gradient
    if method not in GRADIENTS:
        raise ValueError(f"'gradient' must be 'auto' or one of {GRADIENTS} (got {gradient!r})")
    if method != "parameter-shift" and method not in backend.capabilities.gradients:
        raise ValueError(f"backend {backend.name!r} has no native {method!r} gradient")
    real, rows = backend.real_dtype, (angles.shape[0],)
    if method == "backprop" and shared is not None:
        angles, shared = [t if t.dtype == real else t.to(real) for t in (angles, shared)]
        return _values(backend, circuit, "expval_broadcast", angles, shared, leading=rows)
    full = (angles if shared is None else full_angles(angles, shared)).to(real)
    if method == "backprop":
        return _values(backend, circuit, "expval", full, leading=rows)
    if method == "adjoint":
        return _NativeVjp.apply(full, backend, circuit)
    return _ShiftRule.apply(full, backend, circuit, chunk)
