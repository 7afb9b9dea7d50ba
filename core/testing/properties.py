"""The conformance properties: what one drawn example must satisfy, checked against the reference.

Each check takes an :class:`Example` (the backend under test, the reference simulator
:class:`~hqf.testing.reference.ReferenceBackend`, the tolerance, a drawn circuit and angle batch) and
raises :class:`Mismatch` when the backend is wrong on it. Every answer comes from the reference alone:
its values, and its own Jacobian (the generator formula, not the parameter-shift rule), so a wrong
shift rule in the core cannot cancel out between the two sides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs
import numpy as np
import torch

from hqf.quantum.circuit import Circuit, PauliWord
from hqf.quantum.gates import recipe_values, shift_coefficients
from hqf.quantum.gradients import expval, shift_jacobian
from hqf.quantum.interfaces import Backend
from hqf.testing.tolerance import Tolerance

#: property name -> what must hold (the names are those ``hqf check --property`` takes)
PROPERTIES: dict[str, str] = {
    "shape": "expval returns a real [B, R] tensor (dtype, device, B=1, R=1)",
    "expval": "expectation values match the reference simulator's",
    "shift-jacobian": "the core's parameter-shift Jacobian on the backend matches the reference's own Jacobian",
    "shift-gradient": "parameter-shift gradients in a hybrid graph match the reference's",
    "native-gradient": "the declared native gradient (adjoint vjp / backprop) matches the reference's",
}
#: the native gradients a backend may declare, in the order :mod:`hqf.quantum.gradients` prefers them
NATIVE = ("backprop", "adjoint")


class Mismatch(AssertionError):
    """A backend disagreed with the reference (or raised) on one example."""

    def __init__(self, message: str, circuit: Circuit, angles: torch.Tensor | None = None, rows: str | None = None):
        super().__init__(message)
        self.message, self.circuit, self.angles, self.rows = message, circuit, angles, rows

    @property
    def size(self) -> tuple[int, int]:
        """How small the failing circuit is (gates, then qubits): the smallest one is reported."""
        return (len(self.circuit.operations), self.circuit.n_qubits)


@attrs.define
class Stats:
    """The examples run so far, and the comparison that came closest to its bound.

    ``examples``: drawn examples run up to and including the first failure (all of them when the
    property holds); ``shrink_steps``: the calls after the first failure — Hypothesis shrinking it to
    the smallest failing example and replaying that (with any further search for other failures).
    """

    examples: int = 0
    ratio: float = -1.0
    worst_error: float | None = None
    bound: float | None = None
    shrink_steps: int = 0
    failed: bool = False
    #: the smallest mismatch seen so far (what a time-bounded shrink reports)
    smallest: Mismatch | None = None

    def note(self, mismatch: Mismatch) -> None:
        """Remember ``mismatch`` if its circuit is the smallest failing one so far."""
        if self.smallest is None or mismatch.size < self.smallest.size:
            self.smallest = mismatch

    def count_call(self) -> None:
        """Count one call of the property: an example until a failure was seen, a shrink step after."""
        if self.failed:
            self.shrink_steps += 1
        else:
            self.examples += 1

    def record(self, error: float, bound: float) -> None:
        ratio = error / bound if bound > 0 else (0.0 if error == 0 else float("inf"))
        if ratio > self.ratio or (ratio == self.ratio and bound > (self.bound or 0.0)):
            self.ratio, self.worst_error, self.bound = ratio, error, bound


@attrs.frozen
class Example:
    """One drawn example and what runs it."""

    backend: Backend
    #: :class:`~hqf.testing.reference.ReferenceBackend`, or
    #: :class:`~hqf.testing.reference.ReferenceDensityBackend` under noise
    reference: Backend
    #: :class:`Tolerance`, or :class:`~hqf.testing.tolerance.Hoeffding` for a trajectory estimate
    tolerance: Tolerance
    circuit: Circuit
    angles: torch.Tensor  # in the backend's real dtype
    stats: Stats

    @property
    def angles64(self) -> torch.Tensor:
        """The angles as the reference reads them (float64)."""
        return self.angles.to(torch.float64)

    def fail(self, message: str, circuit: Circuit | None = None, rows: str | None = None) -> Mismatch:
        """A mismatch on this example; ``circuit`` is what ran when it differs from the drawn one."""
        return Mismatch(message, circuit or self.circuit, self.angles, rows)

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
                observable = f", observable <{output_label(circuit, where[1])}>"
            raise self.fail(
                f"{what}: |Δ| = {worst:.3g} > bound {limit:.3g} at index {where}{observable} "
                f"(backend {got.flatten()[index].item():.10g}, reference {want.flatten()[index].item():.10g})",
                circuit,
                whole_rows(got, want, where),
            )


def output_label(circuit: Circuit, column: int) -> str:
    """The observable that output ``column`` belongs to (with the outcome, for ``Probs``)."""
    at = 0
    for obs in circuit.observables:
        if column < at + obs.n_outputs:
            return str(obs) if obs.n_outputs == 1 else f"{obs} outcome {column - at}"
        at += obs.n_outputs
    return f"column {column}"


def whole_rows(got: torch.Tensor, want: torch.Tensor, where: tuple[int, ...]) -> str:
    """The backend's and the reference's whole output row around index ``where``: ``[b, :]`` of a
    ``[B, R]`` result, ``[b, :, p]`` of a ``[B, R, P]`` Jacobian, the whole of a 1-D one."""
    if got.ndim == 1:
        pick = (slice(None),)
    elif got.ndim == 2:
        pick = (where[0], slice(None))
    else:
        pick = (where[0], slice(None), *where[2:])

    def text(t: torch.Tensor) -> str:
        return np.array2string(t[pick].numpy(), precision=8, max_line_width=100, separator=", ")

    return f"backend:   {text(got)}\nreference: {text(want)}"


def with_probes(circuit: Circuit) -> Circuit:
    """The circuit measuring its own observables, then X, Y and Z on every wire.

    Drawn Pauli words often have expectation value 0 on every backend whatever the state; the
    one-qubit probes see every wire, so a wrong wire or sign cannot hide behind them.
    """
    probes = [PauliWord(((w, p),)) for w in range(circuit.n_qubits) for p in "ZXY"]
    extra = [word for word in probes if word not in circuit.observables]
    return Circuit(circuit.n_qubits, circuit.operations, circuit.observables + tuple(extra))


def jacobian_bound(ex: Example, angles64: torch.Tensor, circuit: Circuit) -> torch.Tensor:
    """``[B, R, P]`` bound on a shift-rule derivative ``Σ_s c_s E_s``: ``Σ_s |c_s| b(E_s)`` (for exact
    backends ``atol``, as ``Σ |c_s| = 1`` in every recipe).

    A shot-based bound depends on the exact shifted values ``E_s``, which the reference supplies.
    """
    batch, n_params = angles64.shape
    if ex.tolerance.shots is None or n_params == 0:
        return torch.full((batch, circuit.n_outputs, n_params), ex.tolerance.atol, dtype=torch.float64)
    coefficients = shift_coefficients(circuit.column_gates)  # [S, P]
    exact = recipe_values(lambda rows: ex.reference.expval(circuit, rows), angles64, coefficients)  # [S, P, B, R]
    bound = ex.tolerance.output_bound(circuit, exact)
    return torch.einsum("sp,spbr->brp", coefficients.abs(), bound)


# -- the properties ----------------------------------------------------------------------------
def check_shape(ex: Example) -> None:
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
            raise ex.fail(f"expval returned dtype {out.dtype}; dtype {ex.backend.dtype} needs {ex.backend.real_dtype}")
        if out.device != rows.device:
            raise ex.fail(f"expval returned a tensor on {out.device}; the angles are on {rows.device}")
        if not bool(torch.isfinite(out).all()):
            raise ex.fail(f"expval returned non-finite values for B={batch}, R={n_out}")
        ex.stats.record(0.0, 1.0)


def check_expval(ex: Example) -> None:
    circuit = with_probes(ex.circuit)
    exact = ex.reference.expval(circuit, ex.angles64)
    got = ex.backend.expval(circuit, ex.angles)
    ex.compare("expval", got, exact, ex.tolerance.output_bound(circuit, exact), circuit)


def check_shift_jacobian(ex: Example) -> None:
    circuit = with_probes(ex.circuit)
    want = ex.reference.jacobian(circuit, ex.angles64)
    got = shift_jacobian(lambda a: ex.backend.expval(circuit, a), ex.angles, None, circuit.column_gates)
    ex.compare("shift Jacobian", got, want, jacobian_bound(ex, ex.angles64, circuit), circuit)


@attrs.frozen
class HybridGraph:
    """``loss = Σ cotangent · expval(angles(x, w))`` with ``angles = [base[:, :d] + x @ proj, w]`` at ``x = 0``.

    The data columns (the first half) reach the angles through a random ``proj``; the weight columns
    (the second half, taken from the drawn angles' row 0) are shared by the batch.
    """

    base: torch.Tensor  # [B, P] float64
    proj: torch.Tensor  # [4, d]
    cotangent: torch.Tensor  # [B, R]

    @classmethod
    def draw(cls, ex: Example, seed: int) -> HybridGraph:
        gen = torch.Generator().manual_seed(seed)
        drawn = ex.angles64
        n_data = drawn.shape[1] // 2
        base = torch.cat([drawn[:, :n_data], drawn[:1, n_data:].expand(drawn.shape[0], -1)], dim=1)
        proj = torch.randn(4, n_data, dtype=torch.float64, generator=gen)
        cotangent = torch.randn(drawn.shape[0], ex.circuit.n_outputs, dtype=torch.float64, generator=gen)
        return cls(base, proj, cotangent)

    @property
    def n_data(self) -> int:
        return self.proj.shape[1]

    def gradients(self, backend: Backend, circuit: Circuit, method: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(∂loss/∂x [B, 4], ∂loss/∂w [P − d])``: torch autograd through :func:`hqf.quantum.gradients.expval`."""
        batch, n_data = self.base.shape[0], self.n_data
        x = torch.zeros(batch, 4, dtype=torch.float64, requires_grad=True)
        w = self.base[0, n_data:].clone().requires_grad_(True)
        angles = torch.cat([self.base[:, :n_data] + x @ self.proj, w.expand(batch, -1)], dim=1)
        out = expval(backend, circuit, angles, gradient=method)
        grads = torch.autograd.grad((out.to(torch.float64) * self.cotangent).sum(), [x, w], allow_unused=True)
        grad_x, grad_w = (torch.zeros_like(t) if g is None else g.detach() for g, t in zip(grads, (x, w)))
        return grad_x, grad_w

    def chain(self, per_angle: torch.Tensor, proj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, P]`` per angle to ``(x [B, 4], w [P − d])``: data through ``proj``, weights summed over rows.

        ``proj`` is the graph's own for gradients, its absolute value for error bounds.
        """
        return per_angle[:, : self.n_data] @ proj.T, per_angle[:, self.n_data :].sum(0)


def check_gradients(ex: Example, methods: Iterable[str], seed: int) -> None:
    """Each method's gradients in a :class:`HybridGraph` against the reference Jacobian's."""
    if ex.circuit.n_params == 0:  # nothing to differentiate
        return
    graph = HybridGraph.draw(ex, seed)
    jacobian = ex.reference.jacobian(ex.circuit, graph.base)  # [B, R, P]
    want_x, want_w = graph.chain(torch.einsum("br,brp->bp", graph.cotangent, jacobian), graph.proj)
    angle_bound = torch.einsum("br,brp->bp", graph.cotangent.abs(), jacobian_bound(ex, graph.base, ex.circuit))
    bound_x, bound_w = graph.chain(angle_bound, graph.proj.abs())
    for method in methods:
        try:
            got_x, got_w = graph.gradients(ex.backend, ex.circuit, method)
        except Exception as exc:
            raise ex.fail(f"{method} gradient raised {type(exc).__name__}: {exc}") from exc
        ex.compare(f"{method} gradient w.r.t. data", got_x, want_x, bound_x)
        ex.compare(f"{method} gradient w.r.t. weights", got_w, want_w, bound_w)


def native_gradients(backend: Backend) -> tuple[str, ...]:
    """The native gradients a backend declares, in the order :mod:`hqf.quantum.gradients` prefers them."""
    return tuple(m for m in NATIVE if m in backend.capabilities.gradients)


def check(prop: str, ex: Example, gradient_seed: int) -> None:
    """Run the property named ``prop`` (a key of :data:`PROPERTIES`) on one example."""
    checks: dict[str, Callable[[], None]] = {
        "shape": lambda: check_shape(ex),
        "expval": lambda: check_expval(ex),
        "shift-jacobian": lambda: check_shift_jacobian(ex),
        "shift-gradient": lambda: check_gradients(ex, ["parameter-shift"], gradient_seed),
        "native-gradient": lambda: check_gradients(ex, native_gradients(ex.backend), gradient_seed),
    }
    checks[prop]()
