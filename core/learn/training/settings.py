"""The settings of one training call (optimizer, budget, stopping thresholds) and its optimizer."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch


@attrs.frozen
class TrainSettings:
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 1
    max_iterations: int | None = None
    eps: float = 1e-3
    delta: float = 1e-4
    grad_ema: float = 0.9
    eval_every: int | None = None  # None: once per epoch
    seed: int = 0

    @classmethod
    def from_config(cls, config) -> TrainSettings:
        return cls(**{f.name: getattr(config, f.name) for f in attrs.fields(cls)})


def make_optimizer(name: str, params: Sequence[torch.nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer ``name`` (adam, sgd, rmsprop) over ``params`` with the learning rate, momentum and
    weight decay of ``settings``."""
    if name == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    raise ValueError(f"'optimizer' must be adam, sgd or rmsprop (got {name!r})")
