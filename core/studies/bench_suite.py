"""What one ``hqf bench`` call times, and in which order.

The hqf backends timed are the ones named, or (:func:`fitting_backends`) every registered backend that
can run the workload here. Each is timed with the gradient methods asked, else ``auto``; alongside the
peers also with the peers' gradients (``parameter-shift``; ``adjoint`` where the backend declares it).
A forward-only peer is compared with every hqf row's forward.

Under a noise model (:func:`run_noisy_bench`) the hqf rows are the exact noisy backends, and the trajectory
backends labelled as estimates (:func:`fitting_noisy_backends`); the peers are those of
:mod:`hqf.studies.noisy_peers`; every row also records its peak memory (:attr:`Row.peak_mib`).

Timing order: first whatever spares torch (the backends that compute in torch, which declare the
``backprop`` gradient, and the peers marked so), then the inference latency and the epoch estimate
(torch too), then everything else. Another runtime can slow torch for the rest of the process (once
Qiskit Aer's OpenMP runtime has run, torch's multi-threaded steps run about 2× slower), and a backend
that computes outside torch may start one, so it waits until the torch measurements are done.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Collection, Sequence

import attrs

from hqf.errors import ConfigError
from hqf.quantum.interfaces import Backend
from hqf.quantum.noise import NoiseModel
from hqf.registry.loader import registry
from hqf.registry.make import make_backend
from hqf.studies.bench import (
    Comparison,
    EpochEstimate,
    Latency,
    Ratio,
    Row,
    Workload,
    epoch_estimate,
    inference_latency,
    peak_growth_mib,
    peer_comparisons,
    ratios,
    resident_mib,
    resolve_gradient,
    time_backend,
)
from hqf.studies.noisy_peers import NOISY_PEERS, time_noisy_peer
from hqf.studies.peers import PEERS, time_peer


@attrs.frozen
class BenchResult:
    """The rows in the order asked (hqf backends, then peers), and the extras measured."""

    rows: list[Row]
    ratios: list[Ratio]  # every hqf row against every peer row of the same gradient
    latency: Latency | None
    epoch: EpochEstimate | None
    skipped: list[str]  # what was not timed, and why
    #: the process's peak resident memory (MiB) once the hqf rows that compute in torch were timed, before any
    #: peer (under noise: the highest peak while an hqf row was timed)
    hqf_peak_rss_mib: float | None = None


def fitting_backends(workload: Workload) -> tuple[list[str], list[str]]:
    """The registered backends that can run ``workload`` here, and why each other one cannot.

    A backend fits when it is available and declares the workload's dtype, the CPU, at least its qubits,
    exact values and no noise model: the workload is a noiseless pure-state circuit, and a backend that
    models noise simulates density matrices (``4^Q`` numbers per row); name one to time it.
    """
    names, skipped = [], []
    for entry in registry().entries("backend"):
        caps = entry.cls.capabilities
        availability = entry.availability()
        if not availability.ok:
            reason = availability.reason
        elif workload.dtype not in caps.dtypes or "cpu" not in caps.devices:
            reason = f"no {workload.dtype} on the CPU"
        elif caps.max_qubits < workload.n_qubits:
            reason = f"at most {caps.max_qubits} qubits"
        elif not caps.exact or caps.noise:
            reason = "not an exact pure-state simulator"
        else:
            names.append(entry.name)
            continue
        skipped.append(f"backend {entry.name}: {reason}")
    return names, skipped


def spares_torch(backend: Backend) -> bool:
    """Whether ``backend`` is known to leave torch as fast as it found it: it computes in torch (``backprop``)."""
    return "backprop" in backend.capabilities.gradients


def gradient_methods(
    backend: Backend, asked: Sequence[str], peer_gradients: Collection[str] = ()
) -> tuple[list[str], list[str]]:
    """The gradient methods to time on ``backend`` (one per resolved method), and a reason for each
    refused: those asked, else ``auto`` and the peers' (``peer_gradients``) that it runs."""
    methods = list(asked) or ["auto"] + (["parameter-shift"] if "parameter-shift" in peer_gradients else [])
    if "adjoint" in peer_gradients and not asked and "adjoint" in backend.capabilities.gradients:
        methods.append("adjoint")
    chosen, resolved, skipped = [], set(), []
    for method in methods:
        if method not in ("auto", "parameter-shift") and method not in backend.capabilities.gradients:
            skipped.append(f"{backend.name}/{method}: backend has no native {method!r} gradient")
        elif resolve_gradient(backend, method) not in resolved:  # auto is one of the others
            resolved.add(resolve_gradient(backend, method))
            chosen.append(method)
    return chosen, skipped


def run_bench(
    workload: Workload,
    backends: Sequence[str],
    peers: Sequence[str] = (),
    gradients: Sequence[str] = (),
    repeats: int = 7,
    warmup: int = 2,
    slow_batch: int = 1,
    latency: bool = False,
    epoch_iterations: int | None = None,
    **epoch_overrides,
) -> BenchResult:
    """Time ``backends`` and ``peers`` on ``workload`` (and the latency, the epoch) in the order above.

    Every backend is built first, so an unknown or unavailable one stops the call before any timing.
    """
    engines = {name: make_backend(name, dtype=workload.dtype) for name in backends}
    skipped: list[str] = []
    backend_rows: dict[str, list[Row]] = {}
    peer_rows: dict[str, list[Row]] = {}

    def time_group(torch_first: bool, backends_too: bool = True, peers_too: bool = True) -> None:
        for name, engine in engines.items():
            if backends_too and spares_torch(engine) == torch_first:
                methods, refused = gradient_methods(engine, gradients, {PEERS[peer].gradient for peer in peers})
                skipped.extend(refused)
                backend_rows[name] = [time_backend(name, workload, method, repeats, warmup) for method in methods]
        for name in peers:
            if peers_too and PEERS[name].spares_torch == torch_first:
                try:
                    peer_rows[name] = [time_peer(PEERS[name], workload, slow_batch)]
                except Exception as exc:  # a peer's own failure is reported, not fatal
                    skipped.append(f"peer {name}: {type(exc).__name__}: {exc}")

    time_group(torch_first=True, peers_too=False)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        2**20 if sys.platform == "darwin" else 2**10
    )  # bytes / KiB
    time_group(torch_first=True, backends_too=False)
    lat = inference_latency() if latency else None
    epoch = epoch_estimate(epoch_iterations, **epoch_overrides) if epoch_iterations else None
    time_group(torch_first=False)
    rows = [row for name in backends for row in backend_rows[name]]
    rows += [row for name in peers for row in peer_rows.get(name, [])]
    comparisons = peer_comparisons(rows) + forward_comparisons(rows)
    return BenchResult(rows, ratios(rows, comparisons), lat, epoch, skipped, peak_rss_mib)


def forward_comparisons(rows: Sequence[Row]) -> list[Comparison]:
    """Every hqf row's forward (and forward with new weights) against each forward-only peer's forward."""
    hqf_rows = [row for row in rows if not row.is_peer]
    forward_only = [row for row in rows if row.is_peer and row.forward_backward is None and row.forward]
    return [
        comparison
        for row in hqf_rows
        for peer in forward_only
        for comparison in (
            Comparison(row.key, peer.key, "forward"),
            Comparison(row.key, peer.key, "forward_new_weights", "forward"),
        )
    ]


def fitting_noisy_backends(workload: Workload, noise: NoiseModel) -> tuple[list[str], list[str]]:
    """The registered backends that run ``workload`` under ``noise`` here, and why each other one does not.

    A backend fits when it is available, declares the workload's dtype, the CPU, at least its qubits, every
    channel of ``noise`` (and readout when it sets one) and a native gradient: the adapters of other
    libraries' simulators, which differentiate by the shift rule alone, are timed as the peers they wrap.
    """
    names, skipped = [], []
    for entry in registry().entries("backend"):
        caps = entry.cls.capabilities
        availability = entry.availability()
        missing = sorted(noise.features - caps.channels)
        if not availability.ok:
            reason = availability.reason
        elif not caps.noise:
            reason = "no noise model"
        elif missing:
            reason = f"does not run noise {', '.join(missing)}"
        elif workload.dtype not in caps.dtypes or "cpu" not in caps.devices:
            reason = f"no {workload.dtype} on the CPU"
        elif caps.max_qubits < workload.n_qubits:
            reason = f"at most {caps.max_qubits} qubits"
        elif not caps.gradients:
            reason = "no native gradient (another library's simulator: see the peers)"
        else:
            names.append(entry.name)
            continue
        skipped.append(f"backend {entry.name}: {reason}")
    return names, skipped


def estimates(backend: Backend) -> bool:
    """Whether ``backend``'s values are estimates: it declares so, or it samples trajectories."""
    return not backend.capabilities.exact or getattr(backend, "trajectories", None) is not None


def run_noisy_bench(
    workload: Workload,
    noise: NoiseModel,
    backends: Sequence[str],
    peers: Sequence[str] = (),
    repeats: int = 7,
    warmup: int = 2,
) -> BenchResult:
    """Time ``backends`` (the default gradient each) and the noisy ``peers`` on ``workload`` under ``noise``,
    each row with its peak memory; hqf backends that compute in torch first, the peers that spare torch
    next, the rest last. Every backend is built first, so an unknown or unavailable one (or one that does
    not run ``noise``) stops the call before any timing."""
    for name in backends:
        caps = registry().get("backend", name).cls.capabilities
        if not caps.noise:
            raise ConfigError(f"backend {name!r} runs no noise model; under --noise time a noisy backend")
        try:
            noise.require(name, caps.channels)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    engines = {name: make_backend(name, dtype=workload.dtype, noise=noise) for name in backends}
    skipped: list[str] = []
    timed: dict[str, Row] = {}
    hqf_peak = None
    for name in sorted(engines, key=lambda name: not spares_torch(engines[name])):
        row = peak_growth_mib(lambda name=name: time_backend(name, workload, "auto", repeats, warmup, noise=noise))
        peak = resident_mib("VmHWM")
        hqf_peak = peak if hqf_peak is None or peak is None else max(hqf_peak, peak)
        if estimates(engines[name]):
            count = getattr(engines[name], "trajectories", None)
            sampled = "" if count is None else f", {count} trajector{'y' if count == 1 else 'ies'} per row"
            row = attrs.evolve(row, label=row.label + " (estimate)", note=f"estimate{sampled}; " + row.note)
        timed[name] = row
    peer_rows: dict[str, Row] = {}
    for name in sorted(peers, key=lambda name: not NOISY_PEERS[name].spares_torch):
        try:
            peer_rows[name] = peak_growth_mib(lambda name=name: time_noisy_peer(NOISY_PEERS[name], workload, noise))
        except Exception as exc:  # a peer's own failure is reported, not fatal
            skipped.append(f"peer {name}: {type(exc).__name__}: {exc}")
    rows = [timed[name] for name in backends] + [peer_rows[name] for name in peers if name in peer_rows]
    comparisons = peer_comparisons(rows) + forward_comparisons(rows) + backward_comparisons(rows)
    return BenchResult(rows, ratios(rows, comparisons), None, None, skipped, hqf_peak)


def backward_comparisons(rows: Sequence[Row]) -> list[Comparison]:
    """Every hqf row's forward+backward against each forward-only peer's forward."""
    forward_only = [row for row in rows if row.is_peer and row.forward_backward is None and row.forward]
    return [
        Comparison(row.key, peer.key, "forward_backward", "forward")
        for row in rows
        if not row.is_peer
        for peer in forward_only
    ]
