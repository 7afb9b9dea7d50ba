"""The backend conformance suite: properties every hqf backend must have, checked with Hypothesis.

Each property (:data:`~hqf.testing.properties.PROPERTIES`) draws a random circuit (1–8 qubits, the whole
gate set, Pauli-word observables) and an angle batch, runs it on the backend under test and on the
reference simulator (:class:`~hqf.testing.reference.ReferenceBackend`, dense, ``complex128``), and
compares within the bound of :mod:`hqf.testing.tolerance`:

- ``shape``: ``expval`` returns a real tensor ``[B, R]`` of the backend's real dtype on the angles'
  device, finite, for ``B = 1`` and ``R = 1`` as well as larger batches;
- ``expval``: the expectation values match the reference's (the drawn observables, then X, Y and Z on
  every wire: see :func:`~hqf.testing.properties.with_probes`);
- ``shift-jacobian``: :func:`hqf.quantum.gradients.shift_jacobian` on the backend matches the reference's
  own Jacobian (the generator formula; same observables);
- ``shift-gradient``: gradients through :func:`hqf.quantum.gradients.expval` with ``parameter-shift``, in a
  small hybrid graph (data columns ``x @ proj``, weight columns shared by the batch), match the
  reference Jacobian's;
- ``native-gradient``: the same with each native gradient the backend declares (``adjoint``: its
  ``vjp``; ``backprop``: autograd through its ``expval``); skipped when it declares none.

A failing example is shrunk by Hypothesis; the result carries the smallest failing circuit as
:meth:`hqf.quantum.circuit.Circuit.diagram` text and its angles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from hqf.quantum.interfaces import Backend
from hqf.quantum.make import make_backend
from hqf.testing.properties import PROPERTIES, Example, Mismatch, Stats, check, native_gradients
from hqf.testing.reference import ReferenceBackend
from hqf.testing.strategies import angle_batches, circuits
from hqf.testing.tolerance import Tolerance

BackendFactory = Callable[[], Backend]


@attrs.frozen
class Limits:
    """The size of the drawn examples. Circuits stay within the backend's ``max_qubits`` and the
    reference's (:data:`hqf.testing.reference.MAX_QUBITS`)."""

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


# -- running -----------------------------------------------------------------------------------
def _as_factory(backend: str | BackendFactory | Backend, options: dict[str, Any] | None) -> BackendFactory:
    if isinstance(backend, Backend):
        if options:
            raise ValueError("options apply to a backend name or factory, not to an instance")
        return lambda: backend
    if isinstance(backend, str):
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
    if prop == "native-gradient" and not native_gradients(probe):
        return PropertyResult(prop, "skip", message="declares no native gradient")
    tolerance = Tolerance.for_backend(probe)
    reference = ReferenceBackend()
    stats = Stats()
    max_qubits = max(1, min(limits.max_qubits, probe.capabilities.max_qubits, reference.capabilities.max_qubits))

    @given(data=st.data())
    def run(data):
        circuit = data.draw(circuits(max_qubits=max_qubits, max_ops=limits.max_ops), label="circuit")
        values = data.draw(angle_batches(circuit, max_batch=limits.max_batch), label="angles")
        gradient_seed = data.draw(st.integers(0, 2**16), label="seed")
        angles = torch.from_numpy(values).to(probe.real_dtype)
        example = Example(factory(), reference, tolerance, circuit, angles, stats)
        stats.examples += 1
        try:
            check(prop, example, gradient_seed)
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


def _failure(prop: str, exc: BaseException, stats: Stats, tolerance: Tolerance) -> PropertyResult:
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
