"""The metrics of a trained run (metrics.json): test-set quality, robustness, the plugins' diagnostics,
latency, convergence and energy. Every key is documented in docs/method.md."""

from __future__ import annotations

import numpy as np
import torch

from hqf.learn.config import RunConfig
from hqf.learn.data.dataset import Dataset
from hqf.learn.process.energy import Reading
from hqf.learn.run_data import as_tensor
from hqf.learn.training import metrics as M
from hqf.learn.training.curves import TrainResult
from hqf.learn.training.model import BaselineModel, HybridModel
from hqf.learn.training.probes import full_batch_metrics
from hqf.registry.loader import registry

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
#: the keys of metrics.json the core computes, before those the plugins declare
CORE_METRIC_KEYS = (
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
    "vai_reason",
    "accuracy_input_noise",
)
#: the parameter counts, after the plugins' keys
COUNT_KEYS = ("n_parameters", "n_quantum_parameters")
#: the run's noise model ("none" without noise) and the backends it trained and was evaluated on
NOISE_KEYS = ("noise", "train_backend", "eval_backend")
#: the plugin kinds whose classes declare ``metric_keys`` (fusions' and baselines' diagnostics)
DIAGNOSING_KINDS = ("fusion", "baseline")


def metric_keys() -> tuple[str, ...]:
    """Every key of metrics.json: the core's, the ``metric_keys`` the registered fusions and baselines
    declare, the parameter counts, :data:`NOISE_KEYS` and :data:`TIMING_KEYS`."""
    declared = [key for kind in DIAGNOSING_KINDS for entry in registry().entries(kind) for key in entry.cls.metric_keys]
    core = {*CORE_METRIC_KEYS, *COUNT_KEYS, *NOISE_KEYS, *TIMING_KEYS}
    plugins = [key for key in dict.fromkeys(declared) if key not in core]
    return (*CORE_METRIC_KEYS, *plugins, *COUNT_KEYS, *NOISE_KEYS, *TIMING_KEYS)


def evaluate(model: HybridModel | BaselineModel, config: RunConfig, dataset: Dataset, device: str) -> dict:
    """Test-set metrics, VAI, accuracy under input noise, the plugins' diagnostics and latency of a trained model."""
    x_test = as_tensor(dataset.test.x, device)
    probs = M.predict_proba(model, x_test)
    out = M.classification_metrics(probs, dataset.test.y, dataset.n_classes)
    generator = torch.Generator().manual_seed(config.seed + 7919)
    pick = torch.randperm(len(x_test), generator=generator)[: config.vai_samples].to(x_test.device)
    vai = M.variance_amplification(model.features, x_test[pick], config.vai_sigma, config.vai_draws, generator)
    noisy = x_test + config.vai_sigma * torch.randn(x_test.shape, generator=generator).to(x_test.device)
    out["accuracy_input_noise"] = M.accuracy(dataset.test.y, M.predict_proba(model, noisy).argmax(axis=1))
    out.update(
        variance_amplification_index=vai["vai"],
        vai_noise_var=vai["noise_var"],
        vai_signal_var=vai["signal_var"],
        vai_reason=vai["reason"],
    )
    diagnostics = model.fusion_diagnostics(x_test[:1024])
    fusion = getattr(model, "fusion", None)
    out.update({key: diagnostics.get(key) for key in (type(fusion).metric_keys if fusion is not None else ())})
    baseline = getattr(getattr(model, "module", None), "diagnostics", None)
    if baseline is not None and config.baseline is not None:
        counts = baseline()  # measured before the latency passes below add prediction circuits
        out.update({key: counts.get(key) for key in registry().get("baseline", config.baseline).cls.metric_keys})
    out["latency_ms_batch1"] = 1e3 * M.latency_per_instance(model, x_test, 1, config.latency_repeats)
    out["latency_ms_batch256"] = 1e3 * M.latency_per_instance(model, x_test, 256, max(3, config.latency_repeats // 5))
    return out


def energy_metrics(energy: Reading, epochs: int) -> dict:
    """``energy_j`` of training, ``energy_per_epoch_j`` over its full epochs, and ``energy_source``."""
    per_epoch = energy.joules / epochs if energy.joules is not None and epochs else None
    return {"energy_j": energy.joules, "energy_per_epoch_j": per_epoch, "energy_source": energy.source}


def convergence_metrics(result: TrainResult, config: RunConfig) -> dict:
    """Iterations to ε (or why it was not reached), its surrogates, the stop, the final validation and
    training time."""
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
