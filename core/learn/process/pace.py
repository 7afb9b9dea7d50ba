"""Before training: how long the quantum layer will take per iteration, and a warning when that is slow.

Backends and gradient methods differ in cost by orders of magnitude (the parameter-shift rule runs
the circuit ``2P`` times per row; a per-row adjoint pass is not batched), so a run can be hours long
where a declared alternative takes minutes. :func:`slow_run_warning` finds out cheaply:

- it times one forward and backward pass of the run's circuit on the run's backend (a fresh instance
  of it when it samples shots or noise branches, so that the run's random state is untouched), after one untimed warm-up
  pass: at 1 row, then 2, 4, … up to the batch size while its budget lasts (:func:`probe`), and
  extrapolates to the batch size along the line through the last two timings (a backend whose cost
  grows faster than linearly in the rows is then underestimated; the warning says how it was timed);
- when the whole run's estimate exceeds :data:`SLOW_RUN_S`, it times the alternatives the same way —
  the configuration's default backend with ``gradient = "auto"``, then every other gradient the
  backend declares (and the parameter-shift rule) — and names those at least :data:`FASTER_BY` times
  faster. Under noise an alternative is a backend that runs the run's noise (one that cannot is never
  built, so never named), labelled by the backend that would train (``trajectories`` for
  ``--backend torch``) and marked when its values are estimates.

The estimate covers the quantum layer's forward and backward only (not the classical layers, nor the
curvature term's extra passes). A probe that fails is skipped: the estimate never stops a run.
"""

from __future__ import annotations

import math
import time

import attrs
import torch

from hqf.learn.config import RunConfig
from hqf.learn.training.model import HybridModel, make_run_backend
from hqf.quantum.circuit import Circuit
from hqf.quantum.gradients import GRADIENTS, default_gradient, expval
from hqf.quantum.interfaces import Backend
from hqf.quantum.layer import QuantumLayer

#: the probe times 1 row, then this many times more each time, up to the batch size
PROBE_GROWTH = 2
#: the seconds the probe of one choice may spend timing (its next step is skipped if it would not fit) ...
PROBE_BUDGET_S = 1.0
#: ... or as many one-row passes as this where those take longer (a batched backend: see :func:`probe`) ...
PROBE_PASSES = 8
#: ... but never more seconds than this
PROBE_CAP_S = 10.0
#: a run whose quantum layer is estimated to take longer than this (seconds) gets a warning
SLOW_RUN_S = 300.0
#: an alternative is named when it is at least this many times faster
FASTER_BY = 2.0
#: stop timing alternatives once the probes have taken this long (seconds)
BUDGET_S = 4.0


@attrs.frozen
class Pace:
    """One timed choice: a backend and gradient method, and its seconds per iteration (quantum layer)."""

    #: the backend that would train (under noise, ``trajectories`` for ``--backend torch``)
    backend: str
    gradient: str
    per_iteration_s: float
    #: the command-line options that select it instead of the run's choice
    options: str = ""
    #: the most rows the probe timed (fewer than the batch: the rest is extrapolated)
    probed_rows: int = 0
    #: its values are estimates under noise (sampled branches), not the exact noisy values
    estimates: bool = False


def probe(
    backend: Backend, circuit: Circuit, angles: torch.Tensor, weights: torch.Tensor, gradient: str, batch: int
) -> tuple[float, int]:
    """Seconds per iteration of ``expval`` forward and backward at ``batch`` rows (``angles``: the data
    angles ``[B, D]``, repeated as needed; ``weights``: the shared ones), and the most rows timed.

    Timed at 1, 2, 4, … rows while the next timing, predicted from the line through the last two (or
    twice the last), fits in the budget; extrapolated along that line to ``batch``. The budget is
    :data:`PROBE_BUDGET_S`, or :data:`PROBE_PASSES` times the one-row pass where that is more (at most
    :data:`PROBE_CAP_S`): a batched backend (torch-mps: one set of tensors for all rows) pays most of a
    pass once per call, and one timing, extrapolated in proportion to the rows, would charge that cost
    once per row.
    """
    _pass(backend, circuit, _rows(angles, 1), weights, gradient)  # warm-up: caches, compilation
    timings: list[tuple[int, float]] = []
    rows, spent = 1, 0.0
    while True:
        seconds = _pass(backend, circuit, _rows(angles, rows), weights, gradient)
        timings.append((rows, seconds))
        spent += seconds
        following = min(rows * PROBE_GROWTH, batch)
        budget = min(max(PROBE_BUDGET_S, PROBE_PASSES * timings[0][1]), PROBE_CAP_S)
        if rows >= batch or spent + max(_along(timings, following), seconds) > budget:
            break
        rows = following
    return _along(timings, batch), timings[-1][0]


def _along(timings: list[tuple[int, float]], rows: int) -> float:
    """The seconds at ``rows`` on the line through the last two timings (one timing: proportional)."""
    last_rows, last = timings[-1]
    if len(timings) == 1:
        return last * rows / last_rows
    first_rows, first = timings[-2]
    return last + max((last - first) / (last_rows - first_rows), 0.0) * (rows - last_rows)


def _rows(angles: torch.Tensor, rows: int) -> torch.Tensor:
    """``rows`` rows of ``angles`` (cycled when it has fewer)."""
    if len(angles) >= rows:
        return angles[:rows]
    return angles.repeat(-(-rows // len(angles)), 1)[:rows]


def _pass(backend: Backend, circuit: Circuit, angles: torch.Tensor, weights: torch.Tensor, gradient: str) -> float:
    data = angles.detach().clone().requires_grad_(True)
    shared = weights.detach().reshape(-1).clone().requires_grad_(True)
    started = time.perf_counter()
    out = expval(backend, circuit, data, gradient, shared=shared)
    out.sum().backward()
    return time.perf_counter() - started


def data_angles(model: HybridModel, x: torch.Tensor) -> torch.Tensor:
    """The encoder's angles for the rows ``x`` (what the quantum layer receives in training)."""
    with torch.no_grad():
        source = model.backbone(x) if model.quantum_input == "latent" else x
        return model.quantum.encoder(source)


def timed(
    config: RunConfig,
    layer: QuantumLayer,
    angles: torch.Tensor,
    gradient: str,
    options: str = "",
    backend: Backend | None = None,
    batch: int | None = None,
) -> Pace:
    """The :class:`Pace` of ``layer``'s circuit with ``gradient`` on ``backend`` (None: a fresh instance of
    ``config``'s backend) at ``batch`` rows an iteration (None: ``config.batch_size``)."""
    backend = backend if backend is not None else make_run_backend(config)
    batch = config.batch_size if batch is None else batch
    seconds, rows = probe(backend, layer.circuit, angles, layer.weights, gradient, batch)
    method = default_gradient(backend) if gradient == "auto" else gradient
    return Pace(backend.name, method, seconds, options, rows, backend.capabilities.estimates)


def slow_run_warning(config: RunConfig, model, x: torch.Tensor, iterations: int) -> str | None:
    """A warning for a run whose quantum layer will be slow (with the estimate and faster choices), or
    None: fast enough, no quantum layer, or the probe failed. An iteration takes a batch of
    ``config.batch_size`` rows, or all of ``x`` (the training rows) when it has fewer."""
    layer = getattr(model, "quantum", None)
    if not isinstance(model, HybridModel) or not isinstance(layer, QuantumLayer) or iterations < 1:
        return None
    started = time.perf_counter()
    batch = max(1, min(config.batch_size, len(x)))
    try:
        angles = data_angles(model, x[:batch])
        # the run's own backend when exact (no random state to disturb; its caches warm up for training),
        # else a fresh instance, so that the run's shots and noise branches are drawn as without the probe
        capabilities = layer.backend.capabilities
        own = layer.backend if capabilities.exact and not capabilities.estimates else None
        chosen = timed(config, layer, angles, layer.gradient, backend=own, batch=batch)
    except Exception:  # noqa: BLE001 - an estimate that cannot be made is no reason to stop the run
        return None
    if chosen.per_iteration_s * iterations <= SLOW_RUN_S:
        return None
    faster = [
        p
        for p in alternatives(config, layer, angles, started, batch)
        if p.per_iteration_s * FASTER_BY <= chosen.per_iteration_s
    ]
    return describe(chosen, batch, iterations, sorted(faster, key=lambda p: p.per_iteration_s))


def alternatives(
    config: RunConfig, layer: QuantumLayer, angles: torch.Tensor, started: float, batch: int | None = None
) -> list[Pace]:
    """The configuration's default backend with ``gradient = "auto"``, then every other gradient the
    run's backend declares (and the parameter-shift rule), timed at ``batch`` rows (None: the
    configuration's batch size) while :data:`BUDGET_S` lasts."""
    candidates = []
    default = attrs.fields(RunConfig).backend.default
    if config.backend != default:
        candidates.append(
            (config.replace(backend=default, backend_options={}, gradient="auto"), "auto", f"--backend {default}")
        )
    declared = layer.backend.capabilities.gradients
    for method in GRADIENTS:
        if method != layer.gradient_method and (method == "parameter-shift" or method in declared):
            candidates.append((config, method, f"--gradient {method}"))
    found = []
    for candidate, gradient, options in candidates:
        if time.perf_counter() - started > BUDGET_S:
            break
        try:
            found.append(timed(candidate, layer, angles, gradient, options, batch=batch))
        except Exception:  # noqa: BLE001 - unavailable here, or rejects this circuit or dtype: not a choice
            continue
    return found


def describe(chosen: Pace, batch: int, iterations: int, faster: list[Pace]) -> str:
    """The warning's text: the estimate, how it was made, and the faster choices (or that none was found)."""
    text = (
        f"warning: slow run ahead: the quantum layer alone will take about {_duration(chosen.per_iteration_s)} per "
        f"iteration (backend {chosen.backend}, gradient {chosen.gradient}; {_how(chosen, batch)}), about "
        f"{_duration(chosen.per_iteration_s * iterations)} for {iterations} iterations."
    )
    if not faster:
        return text + " No faster choice found among this backend's declared gradients and the default backend."
    choices = "; ".join(
        f"{p.options} (about {_duration(p.per_iteration_s)} per iteration{_note(p, chosen)})" for p in faster
    )
    return f"{text} Faster: {choices}."


def _how(pace: Pace, batch: int) -> str:
    if pace.probed_rows >= batch:
        return f"timed at the batch size, {batch} rows"
    return f"timed at {pace.probed_rows} of the batch's {batch} rows and extrapolated"


def _note(pace: Pace, chosen: Pace) -> str:
    if pace.backend == chosen.backend:
        return "" if pace.gradient == "parameter-shift" else f"; this backend declares {pace.gradient}"
    sampled = f"; trains on {pace.backend}: estimates from sampled noise branches" if pace.estimates else ""
    return f"; gradient {pace.gradient}{sampled}"


def _duration(seconds: float) -> str:
    """``0.012 s``, ``14 s``, ``25 min``, ``5.1 h``."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 1:
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
