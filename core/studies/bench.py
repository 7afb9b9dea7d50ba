"""Timing hqf backends (and, in :mod:`hqf.studies.peers`, the native peer implementations) on one workload.

A :class:`Workload` names the circuit every row runs: an RY angle encoding of ``Q`` inputs, then the
ansatz (``hea8x6`` by default), ``⟨Z⟩`` on every qubit, a batch of ``B`` rows. Each row is timed twice:

- **forward**: expectation values under ``torch.no_grad()`` with the same weights every call (what
  inference costs: a backend may cache what depends on the weights alone);
- **forward, new weights**: the same with different weights in every call (hqf backends only: what a
  forward pass costs during training, with no weight-keyed cache);
- **forward+backward**: expectation values, then the gradient of their sum with respect to the
  ansatz weights *and* the inputs (peers that cannot differentiate the inputs say so in their note).

A time is the median of ``repeats`` samples after ``warmup`` calls, a sample being the mean of as many calls as
fill 20 ms (one call for slower ones or without warm-up); throughput is ``batch / time`` in samples per
second. :func:`ratios` divides the throughputs of named rows (:class:`Comparison`);
:func:`peer_comparisons` pairs every hqf row with every peer row of the same gradient. What a ratio
should reach is no part of the library: benchmarks/targets.toml states the goals.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import torch

from hqf.learn.config import RunConfig
from hqf.learn.training.loop import train
from hqf.learn.training.model import build_model
from hqf.learn.training.settings import TrainSettings
from hqf.learn.training.terms import build_terms
from hqf.quantum.circuit import Circuit, Operation, compose
from hqf.quantum.gradients import default_gradient, expval
from hqf.quantum.interfaces import Backend
from hqf.registry.make import make_ansatz, make_backend

#: the key prefix of a native peer's row (hqf rows are keyed ``BACKEND/GRADIENT``)
PEER_PREFIX = "peer/"
#: a row's throughput columns, in samples per second
COLUMNS = ("forward", "forward_new_weights", "forward_backward")


@attrs.frozen
class Workload:
    """The circuit and data every row of one benchmark runs."""

    ansatz: str = "hea8x6"
    batch: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    dtype: str = "complex128"
    seed: int = 0

    @property
    def n_qubits(self) -> int:
        return make_ansatz(self.ansatz).n_qubits

    @property
    def n_inputs(self) -> int:
        """Columns ``0..n_inputs-1`` of the circuit read the inputs; the others the flattened ansatz weights."""
        return self.n_qubits

    def circuit(self) -> Circuit:
        """RY(x_q) on every wire, then the ansatz; ``⟨Z_q⟩`` on every wire."""
        ansatz = make_ansatz(self.ansatz)
        encoding = [Operation("RY", q, q) for q in range(ansatz.n_qubits)]
        return compose(ansatz.n_qubits, [encoding, ansatz.operations()])

    def inputs(self, batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x[B, Q], weights)`` (float64, seeded): inputs uniform in ``[0, π)``, weights the ansatz's init."""
        ansatz = make_ansatz(self.ansatz)
        generator = torch.Generator().manual_seed(self.seed)
        x = torch.rand(batch or self.batch, ansatz.n_qubits, generator=generator, dtype=torch.float64) * math.pi
        return x, ansatz.init_weights(generator)

    def input_stream(self, count: int = 4, batch: int | None = None) -> Callable[[], torch.Tensor]:
        """A function returning ``count`` different input batches in turn.

        Timed calls never see the same inputs twice in a row, so no cache keyed on the inputs (the torch
        backend resumes from the previous pass where the angles are equal) can stand in for the work.
        """
        x, _ = self.inputs(batch)
        batches = [(x + k * 0.1) % math.pi for k in range(count)]
        state = {"k": -1}

        def next_batch() -> torch.Tensor:
            state["k"] = (state["k"] + 1) % count
            return batches[state["k"]]

        return next_batch


@attrs.frozen
class Row:
    """One timed implementation: throughputs in samples per second (None: not measured or failed)."""

    key: str  # e.g. "torch/backprop", "peer/pennylane-backprop"
    label: str
    gradient: str
    forward: float | None
    forward_backward: float | None
    batch: int
    note: str = ""
    forward_new_weights: float | None = None
    #: the process's peak resident memory while this row was timed, above the memory at its start (MiB)
    peak_mib: float | None = None

    @property
    def is_peer(self) -> bool:
        """Whether a native peer implementation was timed (not an hqf backend)."""
        return self.key.startswith(PEER_PREFIX)

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class Comparison:
    """``numerator`` row's ``column`` divided by ``denominator`` row's ``denominator_column``."""

    numerator: str  # a row's key
    denominator: str
    column: str = attrs.field(validator=attrs.validators.in_(COLUMNS))
    #: default: ``column``
    denominator_column: str = attrs.field(
        default=attrs.Factory(lambda self: self.column, takes_self=True), validator=attrs.validators.in_(COLUMNS)
    )


@attrs.frozen
class Ratio:
    comparison: Comparison
    value: float | None  # None: a throughput is missing or zero

    def to_dict(self) -> dict:
        return {**attrs.asdict(self.comparison), "value": self.value}


def ratios(rows: Sequence[Row], comparisons: Sequence[Comparison]) -> list[Ratio]:
    """Each comparison whose two rows were both measured, evaluated on ``rows``."""
    by_key = {row.key: row for row in rows}
    out = []
    for comparison in comparisons:
        num, den = by_key.get(comparison.numerator), by_key.get(comparison.denominator)
        if num is None or den is None:
            continue
        a, b = getattr(num, comparison.column), getattr(den, comparison.denominator_column)
        out.append(Ratio(comparison, a / b if a and b else None))
    return out


def peer_comparisons(rows: Sequence[Row]) -> list[Comparison]:
    """Every hqf row against every peer row of the same gradient: forward, forward with new weights, fwd+bwd.

    The forward with new weights is divided by the peer's forward: a peer keeps nothing keyed on the
    weights, so its forward is what a forward with new weights costs it.
    """
    hqf_rows, peer_rows = [row for row in rows if not row.is_peer], [row for row in rows if row.is_peer]
    return [
        comparison
        for row in hqf_rows
        for peer in peer_rows
        if peer.gradient == row.gradient
        for comparison in (
            Comparison(row.key, peer.key, "forward"),
            Comparison(row.key, peer.key, "forward_new_weights", "forward"),
            Comparison(row.key, peer.key, "forward_backward"),
        )
    ]


#: a timed sample lasts at least this long: calls faster than it are repeated within one sample
MIN_SAMPLE_S = 0.02
#: at most this many calls in one sample
MAX_CALLS_PER_SAMPLE = 1000


def median_seconds(
    fn: Callable[[], object],
    repeats: int,
    warmup: int,
    budget_s: float | None = None,
    min_sample_s: float = MIN_SAMPLE_S,
) -> float:
    """Median wall-clock seconds of one ``fn()`` over ``repeats`` samples, after ``warmup`` calls.

    A sample is the mean of as many consecutive calls as fill ``min_sample_s`` (one call for slower
    ones, and one call when there is no warm-up; the count is read off the last warm-up call): a
    sub-millisecond call timed alone measures the clock and the scheduler more than the call. With
    ``budget_s``, stops sampling once that much time was spent (at least one sample). ``min_sample_s = 0``
    times every call alone (a latency: the time of one call on its own, not one of a warm run of calls).
    """
    calls = 1
    for _ in range(warmup):
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        calls = min(MAX_CALLS_PER_SAMPLE, max(1, math.ceil(min_sample_s / max(once, 1e-9))))
    times: list[float] = []
    spent = 0.0
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        times.append(elapsed / calls)
        spent += elapsed
        if budget_s is not None and spent >= budget_s:
            break
    return statistics.median(times)


def resident_mib(field: str = "VmRSS") -> float | None:
    """The process's resident memory (``VmRSS``) or its peak (``VmHWM``) in MiB; None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def peak_growth_mib(fn: Callable[[], Row]) -> Row:
    """``fn()``'s row with :attr:`Row.peak_mib`: the peak resident memory while it ran (the peak reset to the
    current memory first, Linux's ``/proc/self/clear_refs``) less the memory at its start; None where the
    peak cannot be reset. Memory freed before and reused during the call is not counted."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        start = resident_mib()
    except OSError:
        start = None
    row = fn()
    peak = resident_mib("VmHWM")
    return attrs.evolve(row, peak_mib=None if start is None or peak is None else max(0.0, peak - start))


def time_backend(
    name: str,
    workload: Workload,
    gradient: str = "auto",
    repeats: int = 7,
    warmup: int = 2,
    budget_s: float | None = 20.0,
    **options,
) -> Row:
    """Time hqf's ``expval`` on the backend registered as ``name`` (the core's gradient ``gradient``)."""
    backend = make_backend(name, dtype=workload.dtype, **options)
    circuit = workload.circuit()
    _, weights = workload.inputs()
    stream = workload.input_stream()
    batch = workload.batch
    flat = weights.reshape(-1)
    other_weights = [flat + 1e-3 * k for k in range(4)]  # consecutive calls never see the same weights

    def forward() -> None:
        with torch.no_grad():
            expval(backend, circuit, stream(), gradient, shared=flat)

    def forward_new_weights() -> None:
        other_weights.append(other_weights.pop(0))
        with torch.no_grad():
            expval(backend, circuit, stream(), gradient, shared=other_weights[0])

    def forward_backward() -> None:
        xs, ws = stream().clone().requires_grad_(), flat.clone().requires_grad_()
        out = expval(backend, circuit, xs, gradient, shared=ws)  # the weights broadcast, as QuantumLayer does
        out.sum().backward()

    resolved = resolve_gradient(backend, gradient)
    fwd = batch / median_seconds(forward, repeats, warmup, budget_s)
    fwd_new = batch / median_seconds(forward_new_weights, repeats, warmup, budget_s)
    # the shift rule's backward runs 2·P·B rows: fewer repeats keep it within the budget
    fb = batch / median_seconds(forward_backward, repeats, min(warmup, 1), budget_s)
    label = f"hqf {name}" + (f" ({workload.dtype})" if workload.dtype != "complex128" else "")
    note = "weights and inputs" + ("; the default gradient" if gradient == "auto" else "")
    return Row(f"{name}/{resolved}", label, resolved, fwd, fb, batch, note, fwd_new)


def resolve_gradient(backend: Backend, gradient: str) -> str:
    """The method ``gradient`` names on ``backend`` (``auto``: the backend's cheapest exact one)."""
    return default_gradient(backend) if gradient == "auto" else gradient


@attrs.frozen
class Latency:
    """Inference latency per instance at batch 1 (model in eval mode, weights frozen, inference mode)."""

    model_seconds: float  # the default hybrid model (hqf.learn.training.model.build_model), one row
    layer_seconds: float  # its quantum layer alone, one row

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def inference_latency(repeats: int = 200, warmup: int = 20, in_features: int = 128, n_classes: int = 12) -> Latency:
    """Median seconds per call of the default hybrid model and of its quantum layer at batch 1."""
    model = build_model(RunConfig(), in_features, n_classes).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, in_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        latent = model.backbone(x)
        seconds = median_seconds(lambda: model(x), repeats, warmup, min_sample_s=0.0)
        layer_seconds = median_seconds(lambda: model.quantum(latent), repeats, warmup, min_sample_s=0.0)
    return Latency(seconds, layer_seconds)


@attrs.frozen
class EpochEstimate:
    """Seconds per training iteration of the default run, extrapolated to one epoch of ``epoch_samples``."""

    iterations: int
    seconds_per_iteration: float  # mean over all measured iterations (curvature ones included)
    seconds_plain_iteration: float  # median of iterations without the curvature term
    seconds_curvature_iteration: float | None  # median of iterations with it
    curvature_every: int
    epoch_samples: int
    batch: int

    @property
    def epoch_seconds(self) -> float:
        return math.ceil(self.epoch_samples / self.batch) * self.seconds_per_iteration

    def to_dict(self) -> dict:
        return {**attrs.asdict(self), "epoch_seconds": self.epoch_seconds}


def epoch_estimate(
    iterations: int = 200, epoch_samples: int = 1_050_000, in_features: int = 128, n_classes: int = 12, **overrides
) -> EpochEstimate:
    """Run ``iterations`` steps of the default training loop (both regularizers) on random data and extrapolate.

    The loop is :func:`hqf.learn.training.loop.train` on the default :class:`~hqf.learn.config.RunConfig` (``overrides``
    change it); the curvature term comes every ``curvature_every`` iterations as configured.
    """
    config = RunConfig(max_iterations=iterations, epochs=1, eps=0.0, **overrides)
    model = build_model(config, in_features, n_classes)
    generator = torch.Generator().manual_seed(0)
    n = iterations * config.batch_size
    x = torch.randn(n, in_features, generator=generator)
    y = torch.randint(0, n_classes, (n,), generator=generator)
    result = train(model, x, y, x[:64], y[:64], build_terms(config), TrainSettings.from_config(config))
    wall = np.diff(np.asarray([0.0] + result.curves["wall_time_s"]))[1:]  # first iteration is warm-up
    curv = np.isfinite(np.asarray(result.curves["curv"], dtype=float))[1:]
    return EpochEstimate(
        iterations=len(wall),
        seconds_per_iteration=float(wall.mean()),
        seconds_plain_iteration=float(np.median(wall[~curv])),
        seconds_curvature_iteration=float(np.median(wall[curv])) if curv.any() else None,
        curvature_every=config.value("curvature_every"),
        epoch_samples=epoch_samples,
        batch=config.batch_size,
    )
