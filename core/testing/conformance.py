"""The backend conformance suite: properties every hqf backend must have, checked with Hypothesis.

Each property (:data:`~hqf.testing.properties.PROPERTIES`) first runs the fixed cases of
:mod:`hqf.testing.fixed` (every declared gate on every order of its wires at chosen angles, every
declared observable kind on a known state), then draws random circuits (1–8 qubits, the gates and
observable kinds the backend declares in ``capabilities``) and angle batches, runs them on the backend
under test and on the
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

For a backend that declares noise channels, :data:`~hqf.testing.noisy.NOISE_PROPERTIES` (``noisy-expval``,
``noisy-gradient``) run the same way under a noise model against
:class:`~hqf.testing.reference.ReferenceDensityBackend` (:mod:`hqf.testing.noisy`).

A failing example is shrunk by Hypothesis for at most ``Limits.shrink_seconds``; the result carries
the smallest failing circuit as :meth:`hqf.quantum.circuit.Circuit.diagram` text, its angles, and the
backend's and the reference's whole output row where they differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from hqf.quantum.circuit import DECLARABLE_GATES, OBSERVABLE_KINDS
from hqf.quantum.interfaces import Backend
from hqf.quantum.noise import NoiseModel
from hqf.registry.make import make_backend
from hqf.testing.fixed import fixed_cases
from hqf.testing.noisy import (
    MAX_NOISY_QUBITS,
    NOISE_PROPERTIES,
    check_noisy,
    default_noise,
    estimates,
    noisy_tolerance,
)
from hqf.testing.properties import PROPERTIES, Example, Mismatch, Stats, check, native_gradients
from hqf.testing.reference import ReferenceBackend, ReferenceDensityBackend
from hqf.testing.strategies import angle_batches, circuits
from hqf.testing.tolerance import Hoeffding, Tolerance

BackendFactory = Callable[[], Backend]


@attrs.frozen
class Limits:
    """The size of the drawn examples. Circuits stay within the backend's ``max_qubits`` and the
    reference's (:data:`hqf.testing.reference.MAX_QUBITS`)."""

    max_qubits: int = 8
    max_ops: int = 20
    max_batch: int = 3
    #: seconds Hypothesis may spend shrinking a failure; then the smallest failure seen is reported, which
    #: depends on the machine's speed and load (``math.inf``: Hypothesis' own limits only, the same witness
    #: for the same seed on any machine)
    shrink_seconds: float = 20.0


@attrs.frozen
class PropertyResult:
    """The outcome of one property: ``pass``, ``fail`` or ``skip``, and the evidence."""

    property: str
    status: str
    #: examples run up to and including the first failure (all of them when the property held)
    examples: int = 0
    #: the largest |backend − reference| seen, and the bound it was held to at that point
    worst_error: float | None = None
    bound: float | None = None
    message: str = ""
    #: the smallest failing circuit (``Circuit.diagram()``) and its angles, when the property failed
    circuit: str | None = None
    angles: str | None = None
    #: the backend's and the reference's whole output row where they differ
    rows: str | None = None
    #: calls after the first failure: Hypothesis shrinking it to the smallest failing example
    shrink_steps: int = 0
    #: fixed cases run before Hypothesis (:mod:`hqf.testing.fixed`; up to the first failing one)
    fixed_cases: int = 0

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def report(self) -> str:
        """A readable account, with the failing circuit when there is one."""
        counted = f"{self.examples} examples" + (f", {self.shrink_steps} shrink steps" if self.shrink_steps else "")
        fixed = f" after {self.fixed_cases} fixed cases" if self.fixed_cases else ""
        lines = [f"{self.property}: {self.status} ({counted}){fixed} {self.message}".rstrip()]
        if self.circuit:
            lines += ["smallest failing circuit:", self.circuit]
        if self.angles:
            lines += ["angles:", self.angles]
        if self.rows:
            lines += ["output row:", self.rows]
        return "\n".join(lines)


# -- running -----------------------------------------------------------------------------------
def _as_factory(backend: str | BackendFactory | Backend, options: dict[str, Any] | None) -> BackendFactory:
    """A factory of fresh backends; its keyword arguments (``noise=``) join ``options``."""
    if isinstance(backend, Backend):
        if options:
            raise ValueError("options apply to a backend name or factory, not to an instance")
        return lambda **extra: _same_instance(backend, extra)
    if isinstance(backend, str):
        name, opts = backend, dict(options or {})
        make_backend(name, **opts)  # fail early: unknown name, unavailable, bad options
        return lambda **extra: make_backend(name, **opts, **extra)
    if callable(backend):
        if options:
            return lambda **extra: backend(**options, **extra)
        return backend
    raise TypeError(f"backend must be a name, a factory or a Backend instance (got {type(backend).__name__})")


def _same_instance(backend: Backend, extra: dict[str, Any]) -> Backend:
    """An instance checked as it is: under noise only when it already runs that model."""
    noise = extra.pop("noise", None)
    if extra or (noise is not None and getattr(backend, "noise", None) != noise):
        raise ValueError("a backend instance is checked as it is: pass a name or a factory to set its noise")
    return backend


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


@attrs.frozen
class Setup:
    """What one property runs: fresh backends, the answer key, the bound, the drawn size and the check."""

    factory: BackendFactory
    probe: Backend
    reference: Backend
    tolerance: Tolerance | Hoeffding
    max_qubits: int
    #: ``run(example, gradient_seed)`` raises :class:`Mismatch` when the backend is wrong on it
    run: Callable[[Example, int], None]
    #: what the result's message says on a pass
    described: str


def _plain_setup(factory: BackendFactory, probe: Backend, prop: str, limits: Limits) -> Setup | PropertyResult:
    if prop == "native-gradient" and not native_gradients(probe):
        return PropertyResult(prop, "skip", message="declares no native gradient")
    tolerance = Tolerance.for_backend(probe)
    reference = ReferenceBackend()
    max_qubits = max(1, min(limits.max_qubits, probe.capabilities.max_qubits, reference.capabilities.max_qubits))
    described = "" if prop == "shape" else f"({tolerance.describe()})"
    return Setup(factory, probe, reference, tolerance, max_qubits, lambda ex, seed: check(prop, ex, seed), described)


def _noisy_setup(
    factory: BackendFactory, probe: Backend, prop: str, noise: NoiseModel | None, limits: Limits
) -> Setup | PropertyResult:
    channels = probe.capabilities.channels
    if not probe.capabilities.noise or not channels:
        return PropertyResult(prop, "skip", message="declares no noise channels")
    model = default_noise(channels, estimates(probe)) if noise is None else noise
    try:
        model.require(probe.name, channels)
    except ValueError as error:
        return PropertyResult(prop, "skip", message=str(error))

    def noisy() -> Backend:
        return factory(noise=model)

    probe = noisy()
    if prop == "noisy-gradient" and estimates(probe):
        return PropertyResult(prop, "skip", message="an estimate: noisy-expval checks its values")
    if prop == "noisy-gradient" and not native_gradients(probe):
        return PropertyResult(prop, "skip", message="declares no native gradient")
    tolerance = noisy_tolerance(probe)
    reference = ReferenceDensityBackend(noise=model)
    max_qubits = max(
        1, min(limits.max_qubits, MAX_NOISY_QUBITS, probe.capabilities.max_qubits, reference.capabilities.max_qubits)
    )
    return Setup(
        noisy,
        probe,
        reference,
        tolerance,
        max_qubits,
        lambda ex, seed: check_noisy(prop, ex, model, seed),
        f"(noise {model}; {tolerance.describe()})",
    )


def check_property(
    backend: str | BackendFactory | Backend,
    prop: str,
    *,
    options: dict[str, Any] | None = None,
    hypothesis_settings: settings | None = None,
    seed: int | None = 0,
    limits: Limits = Limits(),
    noise: NoiseModel | None = None,
) -> PropertyResult:
    """Run one property (a key of :data:`PROPERTIES` or of :data:`~hqf.testing.noisy.NOISE_PROPERTIES`)
    against a backend and collect the outcome.

    A fresh backend is built for every example (so a shot-based backend with a ``seed`` option
    replays exactly while Hypothesis shrinks). ``hypothesis_settings`` default to
    :func:`default_settings` (25 examples); ``seed`` seeds Hypothesis unless the settings derandomize.
    A noise property builds the backend with ``noise=`` the model (``noise``, or
    :func:`~hqf.testing.noisy.default_noise` of the channels it declares); a factory must accept it.
    """
    if prop not in PROPERTIES and prop not in NOISE_PROPERTIES:
        names = ", ".join([*PROPERTIES, *NOISE_PROPERTIES])
        raise ValueError(f"unknown property {prop!r}; properties: {names}")
    factory = _as_factory(backend, options)
    probe = factory()
    if prop in NOISE_PROPERTIES:
        setup = _noisy_setup(factory, probe, prop, noise, limits)
    else:
        setup = _plain_setup(factory, probe, prop, limits)
    if isinstance(setup, PropertyResult):
        return setup
    probe, tolerance, max_qubits = setup.probe, setup.tolerance, setup.max_qubits
    stats = Stats()
    gates = probe.capabilities.gates & DECLARABLE_GATES
    kinds = probe.capabilities.observables & set(OBSERVABLE_KINDS)

    def one(circuit, values: np.ndarray, gradient_seed: int) -> None:
        angles = torch.from_numpy(values).to(probe.real_dtype)
        example = Example(setup.factory(), setup.reference, tolerance, circuit, angles, stats)
        try:
            setup.run(example, gradient_seed)
        except Mismatch as mismatch:
            stats.note(mismatch)
            raise
        except Exception as exc:  # the backend raised: report it with the circuit that made it
            mismatch = example.fail(f"raised {type(exc).__name__}: {exc}")
            stats.note(mismatch)
            raise mismatch from exc

    fixed_failure, n_fixed = None, 0
    for case, values in fixed_cases(gates, kinds, max_qubits):  # before Hypothesis, whatever --examples is
        n_fixed += 1
        try:
            one(case, values, 0)
        except Mismatch as mismatch:  # reported whatever Hypothesis finds next
            fixed_failure = mismatch
            break
    stats.smallest = None

    shrink_until: list[float] = []  # set at the first failure

    @given(data=st.data())
    def run(data):
        circuit = data.draw(
            circuits(max_qubits=max_qubits, max_ops=limits.max_ops, gates=gates, observable_kinds=kinds),
            label="circuit",
        )
        values = data.draw(angle_batches(circuit, max_batch=limits.max_batch), label="angles")
        gradient_seed = data.draw(st.integers(0, 2**16), label="seed")
        stats.count_call()
        if shrink_until and time.monotonic() > shrink_until[0]:  # out of shrinking time: report the smallest seen
            smallest = stats.smallest
            raise Mismatch(smallest.message, smallest.circuit, smallest.angles, smallest.rows)
        try:
            one(circuit, values, gradient_seed)
        except Mismatch:
            if not stats.failed:
                stats.failed = True
                shrink_until.append(time.monotonic() + limits.shrink_seconds)
            raise

    run = (hypothesis_settings or default_settings(seed=seed))(run)
    if seed is not None:
        run = hypothesis_seed(seed)(run)
    try:
        run()
    except BaseException as exc:  # noqa: BLE001 - Hypothesis may raise groups or its own errors
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _failure(prop, exc, stats, tolerance, n_fixed, fixed_failure)
    if fixed_failure is not None:
        return _failure(prop, Exception(), stats, tolerance, n_fixed, fixed_failure)
    return PropertyResult(
        prop, "pass", stats.examples, stats.worst_error, stats.bound, message=setup.described, fixed_cases=n_fixed
    )


def _failure(
    prop: str,
    exc: BaseException,
    stats: Stats,
    tolerance: Tolerance | Hoeffding,
    n_fixed: int = 0,
    fixed: Mismatch | None = None,
) -> PropertyResult:
    """The failed result, with the smallest failing circuit: Hypothesis' or the failing fixed case's."""
    mismatches = _mismatches(exc) + ([] if fixed is None else [fixed])
    if not mismatches:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return PropertyResult(
            prop, "fail", stats.examples, message=message, shrink_steps=stats.shrink_steps, fixed_cases=n_fixed
        )
    smallest = min(mismatches, key=lambda m: m.size)
    angles = None
    if smallest.angles is not None:
        angles = np.array2string(smallest.angles.detach().cpu().numpy(), precision=6, max_line_width=100)
    return PropertyResult(
        prop,
        "fail",
        stats.examples,
        stats.worst_error,
        stats.bound,
        message=f"{'fixed case: ' if smallest is fixed else ''}{smallest.message} ({tolerance.describe()})",
        circuit=smallest.circuit.diagram(),
        angles=angles,
        rows=smallest.rows,
        shrink_steps=stats.shrink_steps,
        fixed_cases=n_fixed,
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
    noise: NoiseModel | None = None,
) -> list[PropertyResult]:
    """Run every property (or those named) against a backend; one :class:`PropertyResult` each.

    ``backend`` is a registered name (built with ``options`` through :func:`hqf.registry.make.make_backend`), a
    factory returning a fresh backend, or an instance. ``examples`` is Hypothesis' ``max_examples``
    per property; ``seed`` makes the run reproducible (``None``: derandomized). Every property means the
    noise properties too when the backend declares noise channels (or ``noise`` is given); they run under
    ``noise``, by default :func:`~hqf.testing.noisy.default_noise` of those channels.
    """
    factory = _as_factory(backend, options)
    if properties is None:
        noisy = noise is not None or bool(factory().capabilities.channels)
        chosen = list(PROPERTIES) + (list(NOISE_PROPERTIES) if noisy else [])
    else:
        chosen = list(properties)
    run_settings = hypothesis_settings or default_settings(examples, seed)
    return [
        check_property(factory, prop, hypothesis_settings=run_settings, seed=seed, limits=limits, noise=noise)
        for prop in chosen
    ]
