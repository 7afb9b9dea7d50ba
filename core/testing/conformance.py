"""The backend conformance suite: properties every hqf backend must have, checked with Hypothesis.

Each property draws a random circuit (1–8 qubits, the whole gate set, Pauli-word observables) and an
angle batch, runs it on the backend under test and on the reference (the torch backend in
``complex128``), and compares within the bound of :mod:`hqf.testing.tolerance`:

- ``shape``: ``expval`` returns a real tensor ``[B, R]`` of the backend's real dtype on the angles'
  device, finite, for ``B = 1`` and ``R = 1`` as well as larger batches;
- ``expval``: the expectation values match the reference (the drawn observables, then X, Y and Z on
  every wire: see :func:`with_probes`);
- ``shift-jacobian``: :func:`hqf.quantum.gradients.shift_jacobian` on the backend matches the reference's
  (same observables);
- ``shift-gradient``: gradients through :func:`hqf.quantum.gradients.expval` with ``parameter-shift``, in a
  small hybrid graph (data columns ``x @ proj``, weight columns shared by the batch), match torch
  autograd on the reference;
- ``native-gradient``: the same with each native gradient the backend declares (``adjoint``: its
  ``vjp``; ``backprop``: autograd through its ``expval``); skipped when it declares none.

A failing example is shrunk by Hypothesis; the result carries the smallest failing circuit as
:meth:`hqf.quantum.circuit.Circuit.diagram` text and its angles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import numpy as np
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from hqf.quantum.circuit import Circuit, PauliWord
from hqf.quantum.gates import SHIFT
from hqf.quantum.gradients import expval, shift_jacobian
from hqf.quantum.interfaces import Backend
from hqf.testing.strategies import angle_batches, circuits
from hqf.testing.tolerance import Tolerance

PROPERTIES: dict[str, str] = {
    "shape": "expval returns a real [B, R] tensor (dtype, device, B=1, R=1)",
    "expval": "expectation values match the torch complex128 reference",
    "shift-jacobian": "parameter-shift Jacobian matches the reference's",
    "shift-gradient": "parameter-shift gradients in a hybrid graph match torch autograd",
    "native-gradient": "the declared native gradient (adjoint vjp / backprop) matches torch autograd",
}
NATIVE = ("backprop", "adjoint")

BackendFactory = Callable[[], Backend]


@attrs.frozen
class Limits:
    """The size of the drawn examples."""

    max_qubits: int = 8
    max_ops: int = 20
    max_batch: int = 3


@attrs.frozen
class PropertyResult:
    """The outcome of one property: ``pass``, ``fail`` or ``skip``, and the evidence."""

    property: str
    status: str
    examples: int = 0
    #: the largest |backend − reference| seen, and the bound it was held to at that point
    worst_error: float | None = None
    bound: float | None = None
    message: str = ""
    #: the smallest failing circuit (``Circuit.diagram()``) and its angles, when the property failed
    circuit: str | None = None
    angles: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def report(self) -> str:
        """A readable account, with the failing circuit when there is one."""
        lines = [f"{self.property}: {self.status} ({self.examples} examples) {self.message}".rstrip()]
        if self.circuit:
            lines += ["smallest failing circuit:", self.circuit]
        if self.angles:
            lines += ["angles:", self.angles]
        return "\n".join(lines)


class Mismatch(AssertionError):
    """A backend disagreed with the reference (or raised) on one example."""

    def __init__(self, message: str, circuit: Circuit, angles: torch.Tensor | None = None):
        super().__init__(message)
        self.message, self.circuit, self.angles = message, circuit, angles


@attrs.define
class _Stats:
    examples: int = 0
    ratio: float = -1.0
    worst_error: float | None = None
    bound: float | None = None

    def record(self, error: float, bound: float) -> None:
        ratio = error / bound if bound > 0 else (0.0 if error == 0 else float("inf"))
        if ratio > self.ratio or (ratio == self.ratio and bound > (self.bound or 0.0)):
            self.ratio, self.worst_error, self.bound = ratio, error, bound


@attrs.frozen
class _Example:
    """One drawn example and what runs it."""

    backend: Backend
    reference: Backend
    tolerance: Tolerance
    circuit: Circuit
    angles: torch.Tensor  # in the backend's real dtype
    stats: _Stats

    def fail(self, message: str, circuit: Circuit | None = None) -> Mismatch:
        """A mismatch on this example; ``circuit`` is what ran when it differs from the drawn one."""
        return Mismatch(message, circuit or self.circuit, self.angles)

    def compare(
        self, what: str, got: torch.Tensor, want: torch.Tensor, bound: torch.Tensor, circuit: Circuit | None = None
    ) -> None:
        """Raise :class:`Mismatch` unless ``|got − want| ≤ bound`` everywhere (``circuit``: what ran)."""
        got = got.detach().to(torch.float64).cpu()
        if got.shape != want.shape:
            raise self.fail(f"{what}: shape {list(got.shape)}, expected {list(want.shape)}", circuit)
        if not bool(torch.isfinite(got).all()):
            raise self.fail(f"{what}: non-finite values {got.flatten()[:6].tolist()}", circuit)
        if got.numel() == 0:
            return
        error = (got - want).abs()
        excess = torch.where(bound > 0, error / bound.clamp(min=1e-300), torch.where(error > 0, torch.inf, 0.0))
        index = int(torch.argmax(excess))
        worst, limit = error.flatten()[index].item(), bound.flatten()[index].item()
        self.stats.record(worst, limit)
        if worst > limit:
            where = tuple(int(i) for i in np.unravel_index(index, tuple(got.shape)))
            observable = ""
            if circuit is not None and len(where) >= 2:  # [B, R] values or [B, R, P] Jacobians
                observable = f", observable <{circuit.observables[where[1]]}>"
            raise self.fail(
                f"{what}: |Δ| = {worst:.3g} > bound {limit:.3g} at index {where}{observable} "
                f"(backend {got.flatten()[index].item():.10g}, reference {want.flatten()[index].item():.10g})",
                circuit,
            )


def _reference() -> Backend:
    from hqf.backends.torch_sv import TorchBackend

    return TorchBackend(dtype="complex128")


def _shifted_rows(angles: torch.Tensor) -> torch.Tensor:
    """The ``[2, P, B, P]`` rows the two-term shift rule evaluates (+π/2 first, then −π/2)."""
    n_params = angles.shape[1]
    shifts = torch.eye(n_params, dtype=angles.dtype) * SHIFT
    return angles.unsqueeze(0) + torch.stack([shifts, -shifts]).unsqueeze(2)


def _jacobian_bound(ex: _Example, angles64: torch.Tensor, circuit: Circuit | None = None) -> torch.Tensor:
    """``[B, R, P]`` bound on a shift-rule Jacobian: ``(b(E₊) + b(E₋))/2``."""
    circuit = circuit or ex.circuit
    batch, n_params = angles64.shape
    if n_params == 0:
        return torch.zeros(batch, circuit.n_outputs, 0, dtype=torch.float64)
    rows = _shifted_rows(angles64).reshape(-1, n_params)
    exact = ex.reference.expval(circuit, rows).reshape(2, n_params, batch, -1)
    bound = ex.tolerance.value_bound(exact)
    return ((bound[0] + bound[1]) / 2).permute(1, 2, 0)


# -- the properties ----------------------------------------------------------------------------
def _check_shape(ex: _Example) -> None:
    circuit, angles = ex.circuit, ex.angles
    single = Circuit(circuit.n_qubits, circuit.operations, circuit.observables[:1])
    for c, rows in ((circuit, angles[:1]), (single, angles[:1]), (single, angles), (circuit, angles)):
        batch, n_out = rows.shape[0], c.n_outputs
        try:
            out = ex.backend.expval(c, rows)
        except Exception as exc:
            raise ex.fail(f"expval raised {type(exc).__name__}: {exc} (B={batch}, R={n_out})") from exc
        if not isinstance(out, torch.Tensor):
            raise ex.fail(f"expval returned {type(out).__name__}, not a torch.Tensor (B={batch}, R={n_out})")
        if tuple(out.shape) != (batch, n_out):
            raise ex.fail(
                f"expval returned shape {list(out.shape)} for B={batch}, R={n_out}; expected [{batch}, {n_out}]"
            )
        if out.dtype != ex.backend.real_dtype:
            raise ex.fail(
                f"expval returned dtype {out.dtype}; dtype {ex.backend.dtype} needs {ex.backend.real_dtype}"
            )
        if out.device != rows.device:
            raise ex.fail(f"expval returned a tensor on {out.device}; the angles are on {rows.device}")
        if not bool(torch.isfinite(out).all()):
            raise ex.fail(f"expval returned non-finite values for B={batch}, R={n_out}")
        ex.stats.record(0.0, 1.0)


def with_probes(circuit: Circuit) -> Circuit:
    """The circuit measuring its own observables, then X, Y and Z on every wire.

    Drawn Pauli words often have expectation value 0 on every backend whatever the state; the
    one-qubit probes see every wire, so a wrong wire or sign cannot hide behind them.
    """
    probes = [PauliWord(((w, p),)) for w in range(circuit.n_qubits) for p in "ZXY"]
    extra = [word for word in probes if word not in circuit.observables]
    return Circuit(circuit.n_qubits, circuit.operations, circuit.observables + tuple(extra))


def _check_expval(ex: _Example) -> None:
    angles64 = ex.angles.to(torch.float64)
    circuit = with_probes(ex.circuit)
    exact = ex.reference.expval(circuit, angles64)
    got = ex.backend.expval(circuit, ex.angles)
    ex.compare("expval", got, exact, ex.tolerance.value_bound(exact), circuit)


def _check_shift_jacobian(ex: _Example) -> None:
    angles64 = ex.angles.to(torch.float64)
    circuit = with_probes(ex.circuit)
    want = shift_jacobian(lambda a: ex.reference.expval(circuit, a), angles64)
    got = shift_jacobian(lambda a: ex.backend.expval(circuit, a), ex.angles)
    ex.compare("shift Jacobian", got, want, _jacobian_bound(ex, angles64, circuit), circuit)


def _hybrid_gradients(
    ex: _Example, backend: Backend, method: str, seed: int
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Gradients ``[d/dx, d/dw]`` of ``Σ cot · expval(angles(x, w))`` for one method; also ``proj``, ``cot``.

    ``angles = [A[:, :d] + x @ proj, w]`` with ``x = 0``: the values are :func:`_hybrid_angles` (the
    drawn angles, weight columns shared by the batch), and gradients flow through a random ``proj``.
    """
    gen = torch.Generator().manual_seed(seed)
    base = _hybrid_angles(ex)
    batch, n_params = base.shape
    n_data = n_params // 2
    proj = torch.randn(4, n_data, dtype=torch.float64, generator=gen)
    cotangent = torch.randn(batch, ex.circuit.n_outputs, dtype=torch.float64, generator=gen)
    x = torch.zeros(batch, 4, dtype=torch.float64, requires_grad=True)
    w = base[0, n_data:].clone().requires_grad_(True)
    angles = torch.cat([base[:, :n_data] + x @ proj, w.expand(batch, -1)], dim=1)
    out = expval(backend, ex.circuit, angles, gradient=method)
    grads = torch.autograd.grad((out.to(torch.float64) * cotangent).sum(), [x, w], allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g.detach() for g, t in zip(grads, (x, w))]
    return grads, proj, cotangent


def _hybrid_angles(ex: _Example) -> torch.Tensor:
    """The drawn angles (float64) with the weight columns (the second half) taken from row 0."""
    base = ex.angles.to(torch.float64)
    n_data = base.shape[1] // 2
    return torch.cat([base[:, :n_data], base[:1, n_data:].expand(base.shape[0], -1)], dim=1)


def _check_gradients(ex: _Example, methods: Iterable[str], seed: int) -> None:
    if ex.circuit.n_params == 0:  # nothing to differentiate
        return
    (want_x, want_w), proj, cotangent = _hybrid_gradients(ex, ex.reference, "backprop", seed)
    n_data = proj.shape[1]
    jac_bound = _jacobian_bound(ex, _hybrid_angles(ex))  # [B, R, P]
    angle_bound = torch.einsum("br,brp->bp", cotangent.abs(), jac_bound)
    bound_x = angle_bound[:, :n_data] @ proj.abs().T
    bound_w = angle_bound[:, n_data:].sum(0)
    for method in methods:
        try:
            (got_x, got_w), _, _ = _hybrid_gradients(ex, ex.backend, method, seed)
        except Mismatch:
            raise
        except Exception as exc:
            raise ex.fail(f"{method} gradient raised {type(exc).__name__}: {exc}") from exc
        ex.compare(f"{method} gradient w.r.t. data", got_x, want_x, bound_x)
        ex.compare(f"{method} gradient w.r.t. weights", got_w, want_w, bound_w)


def native_gradients(backend: Backend) -> tuple[str, ...]:
    """The native gradients a backend declares, in the order :mod:`hqf.quantum.gradients` prefers them."""
    return tuple(m for m in NATIVE if m in backend.capabilities.gradients)


# -- running -----------------------------------------------------------------------------------
def _as_factory(backend: str | BackendFactory | Backend, options: dict[str, Any] | None) -> BackendFactory:
    if isinstance(backend, Backend):
        if options:
            raise ValueError("options apply to a backend name or factory, not to an instance")
        return lambda: backend
    if isinstance(backend, str):
        from hqf.quantum.make import make_backend

        name, opts = backend, dict(options or {})
        make_backend(name, **opts)  # fail early: unknown name, unavailable, bad options
        return lambda: make_backend(name, **opts)
    if callable(backend):
        if options:
            return lambda: backend(**options)
        return backend
    raise TypeError(f"backend must be a name, a factory or a Backend instance (got {type(backend).__name__})")


def default_settings(examples: int = 25, seed: int | None = 0) -> settings:
    """Hypothesis settings for a run: ``examples`` per property, quiet, no example database.

    With ``seed=None`` the run is derandomized (a fixed seed per property).
    """
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        verbosity=Verbosity.quiet,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def check_property(
    backend: str | BackendFactory | Backend,
    prop: str,
    *,
    options: dict[str, Any] | None = None,
    hypothesis_settings: settings | None = None,
    seed: int | None = 0,
    limits: Limits = Limits(),
) -> PropertyResult:
    """Run one property (a key of :data:`PROPERTIES`) against a backend and collect the outcome.

    A fresh backend is built for every example (so a shot-based backend with a ``seed`` option
    replays exactly while Hypothesis shrinks). ``hypothesis_settings`` default to
    :func:`default_settings` (25 examples); ``seed`` seeds Hypothesis unless the settings derandomize.
    """
    if prop not in PROPERTIES:
        raise ValueError(f"unknown property {prop!r}; properties: {', '.join(PROPERTIES)}")
    factory = _as_factory(backend, options)
    probe = factory()
    methods = native_gradients(probe)
    if prop == "native-gradient" and not methods:
        return PropertyResult(prop, "skip", message="declares no native gradient")
    tolerance = Tolerance.for_backend(probe)
    reference = _reference()
    stats = _Stats()
    max_qubits = max(1, min(limits.max_qubits, probe.capabilities.max_qubits))

    @given(data=st.data())
    def run(data):
        circuit = data.draw(circuits(max_qubits=max_qubits, max_ops=limits.max_ops), label="circuit")
        values = data.draw(angle_batches(circuit, max_batch=limits.max_batch), label="angles")
        gradient_seed = data.draw(st.integers(0, 2**16), label="seed")
        example = _Example(
            factory(), reference, tolerance, circuit,
            torch.from_numpy(values).to(probe.real_dtype), stats,
        )
        stats.examples += 1
        try:
            if prop == "shape":
                _check_shape(example)
            elif prop == "expval":
                _check_expval(example)
            elif prop == "shift-jacobian":
                _check_shift_jacobian(example)
            elif prop == "shift-gradient":
                _check_gradients(example, ["parameter-shift"], gradient_seed)
            else:
                _check_gradients(example, methods, gradient_seed)
        except Mismatch:
            raise
        except Exception as exc:  # the backend raised: report it with the circuit that made it
            raise example.fail(f"raised {type(exc).__name__}: {exc}") from exc

    run = (hypothesis_settings or default_settings(seed=seed))(run)
    if seed is not None:
        run = hypothesis_seed(seed)(run)
    try:
        run()
    except BaseException as exc:  # noqa: BLE001 - Hypothesis may raise groups or its own errors
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _failure(prop, exc, stats, tolerance)
    return PropertyResult(
        prop, "pass", stats.examples, stats.worst_error, stats.bound, message=f"({tolerance.describe()})"
        if prop != "shape" else "",
    )


def _failure(prop: str, exc: BaseException, stats: _Stats, tolerance: Tolerance) -> PropertyResult:
    mismatches = _mismatches(exc)
    if not mismatches:
        return PropertyResult(prop, "fail", stats.examples, message=f"{type(exc).__name__}: {exc}".splitlines()[0])
    smallest = min(mismatches, key=lambda m: (len(m.circuit.operations), m.circuit.n_qubits))
    angles = None
    if smallest.angles is not None:
        angles = np.array2string(smallest.angles.detach().cpu().numpy(), precision=6, max_line_width=100)
    return PropertyResult(
        prop, "fail", stats.examples, stats.worst_error, stats.bound,
        message=f"{smallest.message} ({tolerance.describe()})",
        circuit=smallest.circuit.diagram(), angles=angles,
    )


def _mismatches(exc: BaseException) -> list[Mismatch]:
    if isinstance(exc, Mismatch):
        return [exc]
    found = []
    for inner in getattr(exc, "exceptions", ()):  # ExceptionGroup from several distinct failures
        found += _mismatches(inner)
    if exc.__cause__ is not None and not found:
        found += _mismatches(exc.__cause__)
    return found


def check_backend(
    backend: str | BackendFactory | Backend,
    *,
    examples: int = 25,
    seed: int | None = 0,
    options: dict[str, Any] | None = None,
    properties: Sequence[str] | None = None,
    limits: Limits = Limits(),
    hypothesis_settings: settings | None = None,
) -> list[PropertyResult]:
    """Run every property (or those named) against a backend; one :class:`PropertyResult` each.

    ``backend`` is a registered name (built with ``options`` through :func:`hqf.quantum.make.make_backend`), a
    factory returning a fresh backend, or an instance. ``examples`` is Hypothesis' ``max_examples``
    per property; ``seed`` makes the run reproducible (``None``: derandomized).
    """
    factory = _as_factory(backend, options)
    chosen = list(PROPERTIES) if properties is None else list(properties)
    run_settings = hypothesis_settings or default_settings(examples, seed)
    return [
        check_property(factory, prop, hypothesis_settings=run_settings, seed=seed, limits=limits)
        for prop in chosen
    ]
