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
import time
from collections.abc import Callable

import torch

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.evaluation import TIMING_KEYS, convergence_metrics, energy_metrics, evaluate, metric_keys
from hqf.learn.preflight import Preflight, preflight
from hqf.learn.process import tensorboard as tb
from hqf.learn.process.distributed import DataParallel, Ranks, adapt_terms
from hqf.learn.process.energy import EnergyMeter, Reading
from hqf.learn.process.eta import PeriodicEta
from hqf.learn.process.pace import slow_run_warning
from hqf.learn.process.runtime import resolve_threads, set_threads
from hqf.learn.resolution import resolved_values
from hqf.learn.run_data import as_tensor, load_data
from hqf.learn.run_record import write_run_dir
from hqf.learn.rundir import checkpoint, lifecycle
from hqf.learn.rundir.folder import clean
from hqf.learn.rundir.saved import save_model
from hqf.learn.training.model import BaselineModel, HybridModel, build_model, check_backend_contract, count_parameters
from hqf.learn.training.probes import full_batch_gradient
from hqf.learn.training.run_backend import evaluation_backend, make_run_backend
from hqf.learn.training.settings import TrainSettings
from hqf.learn.training.terms import Term, build_terms
from hqf.quantum.interfaces import Backend

#: the programmatic API: a configuration, its checks, a run, and the keys of its metrics
__all__ = ["RunConfig", "Preflight", "preflight", "run", "TIMING_KEYS", "metric_keys"]

Progress = Callable[[int, int, dict], None]


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
    :class:`hqf.errors.RunFailedError` when the loss becomes non-finite, a backend breaks its contract
    (values out of range or not finite, an exception or ``sys.exit`` in a backend call) or anything else
    fails while training or evaluating (the directory records why; after training, the trained model
    is kept), and :class:`hqf.errors.RunInterrupted` on SIGINT/SIGTERM after saving a checkpoint (also
    during the final evaluation).
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
    say(
        f"data: {dataset.name}: {len(dataset.train)} train / {len(dataset.val)} val / {len(dataset.test)} test, "
        f"{dataset.n_features} features, {dataset.n_classes} classes"
    )
    model = build_model(config, dataset.n_features, dataset.n_classes, backend=checked.backend, train=dataset.train)
    check_backend_contract(model)
    counts = count_parameters(model)
    terms = build_terms(config, model)
    trained = model
    if ranks is not None and config.full_grad_every is not None:
        raise ConfigError("'full_grad_every' is not supported under data-parallel training (--ddp)")
    if ranks is not None:  # every rank trains its shard of each mini-batch (hqf.learn.process.distributed)
        terms, trained = adapt_terms(terms, ranks), DataParallel(model, ranks)
    device = config.device
    x_train, y_train = as_tensor(dataset.train.x, device), as_tensor(dataset.train.y, device, torch.int64)
    x_val, y_val = as_tensor(dataset.val.x, device), as_tensor(dataset.val.y, device, torch.int64)
    settings = TrainSettings.from_config(config)
    per_epoch = math.ceil(len(y_train) / config.batch_size)
    total_steps = per_epoch * config.epochs
    if config.max_iterations is not None:
        total_steps = min(total_steps, config.max_iterations)
    threads = resolve_threads(config.threads, _amplitudes(model, config.batch_size))
    set_threads(threads, checked.backend if getattr(model, "quantum", None) is not None else None)
    say(
        f"model: {counts['n_parameters']:,} parameters ({counts['n_quantum_parameters']:,} quantum), "
        f"{threads} thread(s); "
        "preparing its kernels (compiled on first use, then cached)"
    )
    if warn is not None:
        with checkpoint.kept_states(checkpoint.backend_generators(checked.backend)):  # the probe draws no branches
            text = slow_run_warning(config, model, x_train, total_steps)
        if text is not None:
            warn(text)
    with lifecycle.open_run(out, config, resume) as live, tb.live(config.tensorboard, out, model, x_val) as board:
        callback = _iteration_callback(progress, board, total_steps, terms)
        on_validation = board.validation if board is not None else None
        tensors = (x_train, y_train, x_val, y_val)
        probe = full_batch_gradient(config, x_train, y_train, terms)
        meter = EnergyMeter(config.device)
        meter.start()
        with lifecycle.failing_in_one_line(live):
            result = lifecycle.train_durably(
                live,
                trained,
                tensors,
                terms,
                settings,
                dataset,
                callback,
                on_validation,
                probes=(probe,) if probe is not None else (),
                backend=checked.backend,
            )
        energy = (
            meter.stop()
            if not resume
            else Reading(None, "not measured: a resumed run's counters cover part of its training")
        )
        if ranks is not None and not ranks.writes:  # rank 0 alone evaluates and writes the run directory
            live.finished()
            return {}
        with lifecycle.after_training(live, result.steps, lambda path: save_model(path, model, dataset)):
            resolved = resolved_values(model, terms)
            backends = evaluate_on(model, config, checked.backend, threads)
            noisy = backends["noise"] != "none"
            under = f" under noise {backends['noise']} on {backends['eval_backend']}" if noisy else ""
            stopped = f"trained: {result.steps} iterations, stopped by {result.stop_reason}"
            say(f"{stopped}; evaluating on the test split{under}")
            metrics = {
                **evaluate(model, config, dataset, device),
                **convergence_metrics(result, config),
                **counts,
                **energy_metrics(energy, result.epochs_completed),
                **backends,
            }
            metrics["total_time_s"] = time.perf_counter() - started
            metrics = {key: metrics.get(key) for key in metric_keys()}
            if board is not None:
                board.finish(config.to_dict(), metrics)
        with lifecycle.StopSignals():  # a signal now waits: the results are moving in
            write_run_dir(out, config, dataset, model, result, metrics, checked.backend, resolved)
            live.finished()
    return clean(metrics)


def evaluate_on(model: HybridModel | BaselineModel, config: RunConfig, backend: Backend | None, threads: int) -> dict:
    """Put the exact backend the run's test metrics come from (:func:`evaluation_backend`) into ``model``'s
    quantum layer when it is not the training ``backend``; the metrics naming the noise and both backends."""
    quantum = getattr(model, "quantum", None)
    train_name = backend.name if backend is not None and quantum is not None else None
    eval_name = evaluation_backend(config) if train_name is not None else None
    if eval_name is not None and eval_name != train_name:
        quantum.backend = make_run_backend(config, eval_name)
        set_threads(threads, quantum.backend)
    return {"noise": config.noise_text or "none", "train_backend": train_name, "eval_backend": eval_name}


def _amplitudes(model: HybridModel | BaselineModel, batch: int) -> int:
    """Amplitudes one simulator operation touches: ``batch × 2**n_qubits`` (0 without a simulated circuit)."""
    circuit = getattr(getattr(model, "quantum", None), "circuit", None)
    return batch * 2**circuit.n_qubits if circuit is not None else 0


def _iteration_callback(
    progress: Progress | None, board: tb.TensorBoardLog | None, total_steps: int, terms: list[Term]
):
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
