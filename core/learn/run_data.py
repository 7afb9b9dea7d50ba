"""The data of a run: its dataset, drawn as its configuration says, and its splits as tensors on the
device it names (checked by :func:`check_device`)."""

from __future__ import annotations

import numpy as np
import torch

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.data.dataset import Dataset
from hqf.learn.data.load import load_dataset


def load_data(config: RunConfig) -> Dataset:
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


def as_tensor(array: np.ndarray, device: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``array`` as a tensor on ``device`` (``dtype``: converted first)."""
    return torch.as_tensor(array, dtype=dtype).to(device)


def check_device(text: str) -> torch.device:
    """The torch device ``text`` names; a ConfigError when it names none, or CUDA that torch cannot see."""
    device = torch.device(text) if _valid_device(text) else None
    if device is None:
        raise ConfigError(f"'device' must be a torch device such as cpu, cuda or cuda:1 (got {text!r})")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {text!r} requested but torch sees no CUDA GPU (use --device cpu)")
    return device


def _valid_device(text: str) -> bool:
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        return False
    return True
