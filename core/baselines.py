"""The interface of classical baseline models (registered through ``register_baselines``)."""

from __future__ import annotations

import abc
from typing import ClassVar

import torch


class Baseline(abc.ABC):
    """A whole classical model trained by the same loop as the hybrid, for comparison."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def build(self, in_features: int, n_classes: int) -> torch.nn.Module:
        """A module mapping ``x[B, in_features]`` to logits ``[B, n_classes]``."""
