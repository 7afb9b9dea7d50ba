"""One run end to end: resolve the backend, load data, build the model, train, evaluate, write the run dir.

Programmatic API (also what ``hqf run``, ``hqf sweep`` and the search baselines call)::

    from hqf.learn.experiment import RunConfig, run
    metrics = run(RunConfig(samples=3000, epochs=2, seed=1), "runs/example")

``run`` refuses an existing non-empty ``out_dir`` before doing any work and checks the backend before
anything else. The run directory exists while the run trains, holding its checkpoints; it is finished
when its metrics.json, written last and atomically, parses (:mod:`hqf.learn.rundir.lifecycle`).
``run(config, out_dir, resume=True)`` continues an interrupted run from its last checkpoint.
"""

from __future__ import annotations

import math
import pathlib
import platform
import sys
import time
from collections.abc import Callable

import attrs
import numpy as np
import torch

from hqf import __version__
from hqf.errors import ConfigError
from hqf.learn.training import metrics as M
from hqf.learn.process import tensorboard as tb
from hqf.learn.config import RunConfig, resolved_toml
from hqf.learn.data.load import load_dataset
from hqf.learn.process.energy import EnergyMeter, Reading
from hqf.learn.process.eta import PeriodicEta
from hqf.learn.process.distributed import DataParallel, Ranks, adapt_terms
from hqf.learn.rundir import lifecycle
from hqf.learn.training.model import BaselineModel, HybridModel, build_model, check_backend_contract, count_parameters, make_run_backend
from hqf.learn.process.pace import slow_run_warning
from hqf.learn.training.probes import full_batch_gradient, full_batch_metrics
from hqf.learn.process.runtime import resolve_threads, set_threads
from hqf.learn.rundir.folder import clean, finish_into, plot_convergence, write_csv, write_json
from hqf.learn.rundir.saved import MODEL, save_model
from hqf.learn.training.terms import Term, build_terms, declared_keys
from hqf.learn.training.loop import EVAL_COLUMNS, TrainResult, TrainSettings
from hqf.quantum.interfaces import GRADIENTS, Backend
from hqf.registry.make import make_ansatz
from hqf.registry.loader import registry

__all__ = ["RunConfig", "Preflight", "preflight", "run", "TIMING_KEYS", "METRIC_KEYS"]

#: metrics that measure time or energy, and what measured it (they differ between otherwise identical runs)
TIMING_KEYS = (
    "wall_time_s",
    "time_per_epoch_s",
    "total_time_s",
    "latency_ms_batch1",
    "latency_ms_batch256",
    "energy_j",
    "energy_per_epoch_j",
    "energy_source",
)
#: every key of metrics.json, documented in docs/method.md
METRIC_KEYS = (
    "accuracy",
    "macro_f1",
    "ece",
    "nll",
    "reliability",
    "val_loss",
    "val_accuracy",
    "iterations_to_eps",
    "iterations_to_eps_reason",
    "iterations_to_eps_full",
    "full_grad_norm_min",
    "full_grad_norm_final",
    "iterations_to_val_within_1pct",
    "grad_norm_ema_min",
    "grad_norm_ema_final",
    "eps",
    "stop_reason",
    "steps",
    "epochs_completed",
    "variance_amplification_index",
    "vai_noise_var",
    "vai_signal_var",
    "accuracy_input_noise",
    "gate_mean",
    "kernel_circuits_gram",
    "kernel_circuits_prediction",
    "support_vectors",
    "kernel_target_alignment",
    "n_parameters",
    "n_quantum_parameters",
    *TIMING_KEYS,
)
#: metrics a fusion may report through its ``diagnostics()`` (None where it does not)
FUSION_DIAGNOSTICS = ("gate_mean",)
#: metrics a baseline's module may report through its ``diagnostics()`` (the quantum-kernel SVM's counts)
BASELINE_DIAGNOSTICS = ("kernel_circuits_gram", "kernel_circuits_prediction", "support_vectors", "kernel_target_alignment")

Progress = Callable[[int, int, dict], None]


def environment(config: RunConfig, backend=None) -> dict:
    """Versions, device and threads, for meta.json."""
    info = {
        "hqf": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "device": config.device,
        "seed": config.seed,
        "backend": config.backend if backend is not None else None,
        "backend_dtype": backend.dtype if backend is not None else None,
    }
    if torch.device(config.device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(config.device))
    return info


def load_data(config: RunConfig):
    """The dataset of a configuration (``data_seed`` defaults to ``seed``)."""
    return load_dataset(
        config.dataset,
        samples=config.samples,
        seed=config.seed if config.data_seed is None else config.data_seed,
        imbalance=config.imbalance,
        label_noise=config.label_noise,
        label_column=config.label_column,
        features=config.features,
        input_noise=config.input_noise,
        input_noise_on=config.input_noise_on,
    )


def _tensor(array: np.ndarray, device: str, dtype=None) -> torch.Tensor:
    return torch.as_tensor(array, dtype=dtype).to(device)


def evaluate(model: HybridModel | BaselineModel, config: RunConfig, dataset, device: str) -> dict:
    """Test-set metrics, VAI, accuracy under input noise, the fusion's diagnostics and latency of a trained model."""
    x_test = _tensor(dataset.test.x, device)
    probs = M.predict_proba(model, x_test)
    out = M.classification_metrics(probs, dataset.test.y, dataset.n_classes)
    generator = torch.Generator().manual_seed(config.seed + 7919)
    pick = torch.randperm(len(x_test), generator=generator)[: config.vai_samples].to(x_test.device)
    vai = M.variance_amplification(model.features, x_test[pick], config.vai_sigma, config.vai_draws, generator)
    noisy = x_test + config.vai_sigma * torch.randn(x_test.shape, generator=generator).to(x_test.device)
    out["accuracy_input_noise"] = M.accuracy(dataset.test.y, M.predict_proba(model, noisy).argmax(axis=1))
    out.update(variance_amplification_index=vai["vai"], vai_noise_var=vai["noise_var"], vai_signal_var=vai["signal_var"])
    diagnostics = model.fusion_diagnostics(x_test[:1024])
    out.update({key: diagnostics.get(key) for key in FUSION_DIAGNOSTICS})
    baseline = getattr(getattr(model, "module", None), "diagnostics", None)
    if baseline is not None:
        counts = baseline()  # measured before the latency passes below add prediction circuits
        out.update({key: counts.get(key) for key in BASELINE_DIAGNOSTICS})
    out["latency_ms_batch1"] = 1e3 * M.latency_per_instance(model, x_test, 1, config.latency_repeats)
    out["latency_ms_batch256"] = 1e3 * M.latency_per_instance(model, x_test, 256, max(3, config.latency_repeats // 5))
    return out


def energy_metrics(energy: Reading, epochs: int) -> dict:
    """``energy_j`` of training, ``energy_per_epoch_j`` over its full epochs, and ``energy_source``."""
    per_epoch = energy.joules / epochs if energy.joules is not None and epochs else None
    return {"energy_j": energy.joules, "energy_per_epoch_j": per_epoch, "energy_source": energy.source}


def convergence_metrics(result: TrainResult, config: RunConfig) -> dict:
    out = {
        "iterations_to_eps": result.iterations_to_eps,
        "eps": config.eps,
        "stop_reason": result.stop_reason,
        "steps": result.steps,
        "epochs_completed": result.epochs_completed,
        **result.surrogates(),
        **full_batch_metrics(result.curves, config.eps),
    }
    if result.iterations_to_eps is None:
        low = out["grad_norm_ema_min"]
        low_text = f"{low:.3g}" if low is not None else "n/a"
        out["iterations_to_eps_reason"] = (
            f"smoothed gradient norm never <= eps={config.eps:g} (lowest {low_text}); stopped by {result.stop_reason} "
            f"after {result.steps} iterations"
        )
    else:
        out["iterations_to_eps_reason"] = None
    final = result.evals[-1] if result.evals else None
    out["val_loss"] = final["val_loss"] if final else None
    out["val_accuracy"] = final["val_accuracy"] if final else None
    out["wall_time_s"] = result.train_time_s
    out["time_per_epoch_s"] = float(np.mean(result.epoch_times_s)) if result.epoch_times_s else None
    return out


@attrs.frozen
class Preflight:
    """A configuration that passed :func:`preflight`, with the backend built for it (None when the model
    has no quantum branch), so that :func:`run` neither checks nor builds again."""

    config: RunConfig
    backend: Backend | None


def preflight(config: RunConfig) -> Preflight:
    """Checks that need no data: the device, the plugin names and the keys the regularizers read, then
    the backend (built). Raises the one-line HqfError a user can act on."""
    device = torch.device(config.device) if _valid_device(config.device) else None
    if device is None:
        raise ConfigError(f"'device' must be a torch device such as cpu, cuda or cuda:1 (got {config.device!r})")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {config.device!r} requested but torch sees no CUDA GPU (use --device cpu)")
    if config.tensorboard:
        tb.require()
    if config.gradient not in ("auto", *GRADIENTS):
        raise ConfigError(f"'gradient' must be auto or one of {', '.join(GRADIENTS)} (got {config.gradient!r})")
    if config.baseline is not None:
        registry().get("baseline", config.baseline)
        return Preflight(config, None)
    for name in config.regularizers:
        declared_keys(name)
    if not registry().get("fusion", config.fusion).cls.uses_quantum:
        return Preflight(config, None)
    make_ansatz(config.ansatz)  # the spec parses and its family is registered
    registry().get("encoder", config.encoder)
    backend = make_run_backend(config)
    if config.gradient not in ("auto", "parameter-shift") and config.gradient not in backend.capabilities.gradients:
        native = ", ".join(sorted(backend.capabilities.gradients)) or "none"
        raise ConfigError(f"backend {config.backend!r} has no native {config.gradient!r} gradient (native: {native}; "
                          "parameter-shift works on every backend)")
    return Preflight(config, backend)


def _valid_device(text: str) -> bool:
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        return False
    return True


def run(
    config: RunConfig,
    out_dir: str | pathlib.Path,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    checked: Preflight | None = None,
    warn: Callable[[str], None] | None = None,
    resume: bool = False,
    ranks: Ranks | None = None,
) -> dict:
    """Train and evaluate ``config``; write the run directory ``out_dir``; return the metrics.

    ``progress(step, total_steps, row)`` is called after every iteration; ``log(text)`` receives a few
    status lines. ``checked``: the :func:`preflight` of ``config`` already done (its backend is used).
    ``warn(text)``: receives, before training, a warning when the quantum layer will be slow
    (:func:`hqf.learn.process.pace.slow_run_warning`; without ``warn`` that probe is not run).
    Sets torch's and the backend's thread count for the process (``config.threads``,
    :func:`hqf.learn.process.runtime.resolve_threads`).
    ``resume``: continue the unfinished run in ``out_dir`` (its config.toml must equal ``config``) from
    its last checkpoint; the result is the same, bit for bit, as that of a run never interrupted.
    ``ranks``: this process is one rank of a data-parallel run (:mod:`hqf.learn.process.distributed`, in an
    initialized process group): it trains its shard of every batch; rank 0 alone evaluates, writes
    ``out_dir`` and returns the metrics, the other ranks return ``{}`` (their ``out_dir`` is scratch).
    Raises :class:`hqf.errors.HqfError` subclasses for user mistakes (before any work where they can be
    detected up front: the output directory, the backend, the plugin names);
    :class:`hqf.errors.RunFailedError` when the loss becomes non-finite (the directory records why), and
    :class:`hqf.errors.RunInterrupted` on SIGINT/SIGTERM after saving a checkpoint.
    """
    started = time.perf_counter()
    out = pathlib.Path(out_dir)
    if resume:  # the unfinished run in out_dir, continued from its checkpoint (see hqf.learn.rundir.lifecycle)
        lifecycle.check_resumable(out, config)
    else:
        lifecycle.check_fresh(out)
    say = log or (lambda text: None)
    if checked is None:
        checked = preflight(config)
    elif checked.config != config:
        raise ValueError("'checked' is the preflight of another configuration")
    dataset = load_data(config)
    say(f"data: {dataset.name}: {len(dataset.train)} train / {len(dataset.val)} val / {len(dataset.test)} test, "
        f"{dataset.n_features} features, {dataset.n_classes} classes")
    model = build_model(config, dataset.n_features, dataset.n_classes, backend=checked.backend)
    check_backend_contract(model)
    counts = count_parameters(model)
    terms = build_terms(config, model)
    trained = model
    if ranks is not None and config.full_grad_every is not None:
        raise ConfigError("'full_grad_every' is not supported under data-parallel training (--ddp)")
    if ranks is not None:  # every rank trains its shard of each mini-batch (hqf.learn.process.distributed)
        terms, trained = adapt_terms(terms, ranks), DataParallel(model, ranks)
    device = config.device
    x_train, y_train = _tensor(dataset.train.x, device), _tensor(dataset.train.y, device, torch.int64)
    x_val, y_val = _tensor(dataset.val.x, device), _tensor(dataset.val.y, device, torch.int64)
    settings = TrainSettings.from_config(config)
    per_epoch = math.ceil(len(y_train) / config.batch_size)
    total_steps = per_epoch * config.epochs
    if config.max_iterations is not None:
        total_steps = min(total_steps, config.max_iterations)
    threads = resolve_threads(config.threads, _amplitudes(model, config.batch_size))
    set_threads(threads, checked.backend if getattr(model, "quantum", None) is not None else None)
    say(f"model: {counts['n_parameters']:,} parameters ({counts['n_quantum_parameters']:,} quantum), {threads} thread(s); "
        "preparing its kernels (compiled on first use, then cached)")
    if warn is not None and (text := slow_run_warning(config, model, x_train, total_steps)) is not None:
        warn(text)
    with lifecycle.open_run(out, config, resume) as live, tb.live(config.tensorboard, out, model, x_val) as board:
        callback = _iteration_callback(progress, board, total_steps, terms)
        on_validation = board.validation if board is not None else None
        tensors = (x_train, y_train, x_val, y_val)
        probe = full_batch_gradient(config, x_train, y_train, terms)
        meter = EnergyMeter(config.device)
        meter.start()
        result = lifecycle.train_durably(live, trained, tensors, terms, settings, dataset, callback, on_validation,
                                         probes=(probe,) if probe is not None else ())
        energy = meter.stop() if not resume else Reading(None, "not measured: a resumed run's counters cover part of its training")
        if ranks is not None and not ranks.writes:  # rank 0 alone evaluates and writes the run directory
            live.finished()
            return {}
        say(f"trained: {result.steps} iterations, stopped by {result.stop_reason}; evaluating on the test split")
        metrics = {**evaluate(model, config, dataset, device), **convergence_metrics(result, config), **counts,
                   **energy_metrics(energy, result.epochs_completed)}
        metrics["total_time_s"] = time.perf_counter() - started
        metrics = {key: metrics.get(key) for key in METRIC_KEYS}
        if board is not None:
            board.finish(config.to_dict(), metrics)
        resolved = resolved_values(model, terms)
        _write_run_dir(out, config, dataset, model, result, metrics, checked.backend, resolved)
        live.finished()
    return clean(metrics)


def _amplitudes(model: HybridModel | BaselineModel, batch: int) -> int:
    """Amplitudes one simulator operation touches: ``batch × 2**n_qubits`` (0 without a simulated circuit)."""
    circuit = getattr(getattr(model, "quantum", None), "circuit", None)
    return batch * 2**circuit.n_qubits if circuit is not None else 0


def _iteration_callback(progress: Progress | None, board: tb.TensorBoardLog | None, total_steps: int, terms: list[Term]):
    """What :func:`train` calls after every iteration: the caller's ``progress`` (its row also holds
    ``eta_s``, the seconds left: :class:`hqf.learn.process.eta.PeriodicEta`) and the event files."""
    if progress is None and board is None:
        return None
    eta = PeriodicEta(total_steps, [term.every for term in terms])

    def callback(step: int, row: dict) -> None:
        if board is not None:
            board.iteration(row)
        if progress is not None:
            eta.update(step, row["wall_time_s"])
            progress(step, total_steps, {**row, "eta_s": eta.seconds_left()})

    return callback


#: what ``auto`` resolves to where the quantum layer has backprop (the default backend): the gradient
#: method, and any regularizer's scope key; a run that resolves otherwise gives other numbers per seed
BACKPROP_RESOLUTION = {"gradient": "backprop", "scope": "full"}


def resolved_values(model: HybridModel | BaselineModel, terms: list[Term]) -> dict:
    """What this run used for the settings that may be ``auto``: the quantum layer's gradient method
    (None without one) and each regularizer's scope key (``full``, or ``classical``: the quantum
    features held constant in that term)."""
    values = {"gradient": model.quantum_gradient}
    for term in terms:
        key = declared_keys(term.name).scope
        if key is not None:
            values[key] = "classical" if term.quantum_constant else "full"
    return values


def resolution_notes(config: RunConfig, resolved: dict) -> list[str]:
    """One line per ``auto`` setting that resolved otherwise than where the quantum layer has backprop."""
    notes = []
    for key, value in resolved.items():
        usual = BACKPROP_RESOLUTION["gradient" if key == "gradient" else "scope"]
        if getattr(config, key, None) == "auto" and value != usual:
            notes.append(
                f"note: {key} = \"auto\" resolved to {value!r} here; where the quantum layer has backprop "
                f"(the default backend) it is {usual!r}, so the same seed gives other numbers there"
            )
    return notes


def _write_run_dir(
    out: pathlib.Path,
    config: RunConfig,
    dataset,
    model: HybridModel | BaselineModel,
    result: TrainResult,
    metrics: dict,
    backend: Backend | None,
    resolved: dict | None = None,
) -> None:
    """The run directory, written atomically; ``metrics.json`` last (a run counts as finished when it parses).

    ``resolved``: what ``auto`` settings became (the ``[resolved]`` table of config.toml).
    """
    meta = {"environment": environment(config, backend), "data": dataset.summary(), "model": repr(model)}
    with finish_into(out) as tmp:
        (tmp / "config.toml").write_text(config.to_toml() + resolved_toml(resolved or {}))
        write_json(tmp / "meta.json", meta)
        columns = list(result.curves)
        rows = [dict(zip(columns, values)) for values in zip(*result.curves.values())]
        write_csv(tmp / "curves.csv", columns, rows)
        write_csv(tmp / "epochs.csv", EVAL_COLUMNS, result.evals)
        if config.baseline is not None:
            what = f"baseline {config.baseline}"
        elif model.quantum is None:
            what = f"{config.fusion} fusion (no quantum layer)"
        else:
            what = f"{config.fusion} fusion, {config.ansatz} on {config.backend}"
        title = f"{what}, {config.optimizer} lr={config.lr:g}, {dataset.name}, seed {config.seed}"
        plot_convergence(tmp / "convergence.png", result.curves, result.evals, config.eps, title)
        save_model(tmp / MODEL, model, dataset)
        write_json(tmp / "metrics.json", metrics)  # moved in last: a run counts as finished when this parses

