"""What a finished run writes into its directory besides its checkpoints: config.toml (with what
``auto`` resolved to), meta.json, the curves, the convergence plot, the model and metrics.json."""

from __future__ import annotations

import pathlib
import platform
import sys

import numpy as np
import torch

from hqf import __version__
from hqf.learn.config import RunConfig, resolved_toml
from hqf.learn.data.dataset import Dataset
from hqf.learn.rundir.folder import finish_into, plot_convergence, write_csv, write_json
from hqf.learn.rundir.saved import MODEL, save_model
from hqf.learn.training.curves import EVAL_COLUMNS, TrainResult
from hqf.learn.training.model import BaselineModel, HybridModel
from hqf.quantum.interfaces import Backend


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
        "backend": backend.name if backend is not None else None,
        "backend_dtype": backend.dtype if backend is not None else None,
        # the simulator's own kernels: results differ with the thread count (docs/seeds.md)
        "backend_threads": backend.threads if backend is not None else None,
    }
    if torch.device(config.device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(config.device))
    return info


def write_run_dir(
    out: pathlib.Path,
    config: RunConfig,
    dataset: Dataset,
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
            simulator = backend.name if backend is not None else config.backend
            what = f"{config.fusion} fusion, {config.ansatz} on {simulator}"
        title = f"{what}, {config.optimizer} lr={config.lr:g}, {dataset.name}, seed {config.seed}"
        plot_convergence(tmp / "convergence.png", result.curves, result.evals, config.eps, title)
        save_model(tmp / MODEL, model, dataset)
        write_json(tmp / "metrics.json", metrics)  # moved in last: a run counts as finished when this parses
