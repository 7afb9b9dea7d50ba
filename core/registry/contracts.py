"""The learning plugin interfaces: Fusion, Regularizer, Baseline, Backbone (the quantum ones:
:mod:`hqf.quantum.interfaces`).

Each has one required method; optional abilities are declared as data. Plugins subclass these and
register the class through a hook (:mod:`hqf.registry.hookspecs`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import ClassVar

import attrs
import torch

from hqf.quantum.interfaces import check_sizes


class Fusion(torch.nn.Module, abc.ABC):
    """Combines the classical latent ``H_c[B, k]`` and the quantum features ``H_q[B, r]`` into ``F``."""

    name: ClassVar[str]
    uses_classical: ClassVar[bool] = True
    uses_quantum: ClassVar[bool] = True

    def __init__(self, classical_features: int, quantum_features: int) -> None:
        super().__init__()
        self.classical_features, self.quantum_features = classical_features, quantum_features

    @property
    @abc.abstractmethod
    def out_features(self) -> int:
        """The width of ``F``."""

    @abc.abstractmethod
    def forward(self, h_c: torch.Tensor | None, h_q: torch.Tensor | None) -> torch.Tensor:
        """``F[B, out_features]``; an input the fusion does not use is passed as ``None``."""

    def diagnostics(self) -> dict[str, float]:
        """Numbers describing its most recent call, by metric name (``gated``: ``gate_mean``); none by default.

        A run reports those that are keys of ``metrics.json`` (docs/method.md), after one call on test inputs.
        """
        return {}


@attrs.frozen(eq=False)
class RegularizerInputs:
    """What a regularizer may look at for one mini-batch."""

    features: torch.Tensor  # F, the fused representation [B, k]
    logits: torch.Tensor  # [B, C]
    ce_loss: torch.Tensor  # scalar, still attached to the graph
    parameters: tuple[torch.Tensor, ...]  # the trainable parameters
    #: the same cross-entropy as a function of float64 values of the trainable ``parameters`` (a float64 scalar with
    #: its own graph), where the run can evaluate it so; None elsewhere
    loss_at: Callable[[Sequence[torch.Tensor]], torch.Tensor] | None = None


def _option_pairs(value) -> tuple[tuple[str, str], ...]:
    return tuple(dict(value).items())


@attrs.frozen
class RegularizerKeys:
    """The run-configuration keys a regularizer reads (field names of ``hqf.learn.config.RunConfig``).

    Every key is optional: a regularizer declaring none is computed on every iteration, on the whole
    mini-batch, with the weight ``regularizer_options[name]["weight"]`` (default 1) and the curve column
    ``reg_<name>``.
    """

    #: the key of its weight in the loss (``lambda_stab``, ``gamma_curv``)
    weight: str | None = None
    #: its column in the per-iteration curves (``stab``, ``curv``)
    column: str | None = None
    #: the key of its schedule k: computed on iterations t with (t − 1) mod k = 0, absent (0) on the others
    every: str | None = None
    #: the key of its sub-batch size m: computed on the first m samples of the mini-batch (None: all)
    batch: str | None = None
    #: constructor option -> the key that gives it (``regularizer_options`` still override these)
    options: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_option_pairs)
    #: the key (values ``auto``, ``full``, ``classical``) that chooses whether it sees the quantum
    #: features held constant; without one it is ``auto``, see :attr:`Regularizer.needs_second_derivatives`
    scope: str | None = None


class Regularizer(abc.ABC):
    """A penalty added to the loss with a weight the run configuration sets (λ, γ, ...).

    It declares the run-configuration keys it reads in :attr:`config_keys` (its weight, curve column,
    schedule, sub-batch and options); a run builds its term of the loss from that declaration alone.
    """

    name: ClassVar[str]
    config_keys: ClassVar[RegularizerKeys] = RegularizerKeys()
    #: its penalty is built from gradients of the loss (double backward), so training on it needs third
    #: derivatives: where the quantum layer has no backprop (the parameter-shift rule would cost
    #: ``(2P)³`` circuit runs per sample) it sees the quantum features held constant under scope ``auto``
    needs_second_derivatives: ClassVar[bool] = False

    @abc.abstractmethod
    def penalty(self, inputs: RegularizerInputs) -> torch.Tensor:
        """A differentiable scalar."""


class Baseline(abc.ABC):
    """A whole classical model (registered through ``register_baselines``) trained by the same loop as the hybrid, for comparison."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def configure(self, config) -> None:
        """Read the run configuration (a ``hqf.learn.config.RunConfig``) before :meth:`build`; a baseline
        that mirrors the hybrid needs it. Does nothing by default."""

    @abc.abstractmethod
    def build(self, in_features: int, n_classes: int) -> torch.nn.Module:
        """A module mapping ``x[B, in_features]`` to logits ``[B, n_classes]``."""


class Backbone(torch.nn.Module, abc.ABC):
    """The classical feature extractor ``f_c``: rows ``x[B, in_features]`` to the latent ``H_c[B, latent]``.

    An image backbone (``image_input = True``) reads each row as an image ``[C, H, W]`` stored row-major
    (the layout of the image datasets) and views the batch as ``[B, C, H, W]``. Options beyond
    ``in_features`` and ``latent`` come from the run configuration: the keys named in
    :attr:`config_options`, then the ``backbone_options`` table.
    """

    name: ClassVar[str]
    #: constructor option -> the run-configuration key that gives it (``mlp``: ``(("hidden", "hidden"),)``)
    config_options: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: True for a backbone that reads its input rows as images ``[C, H, W]``
    image_input: ClassVar[bool] = False

    def __init__(self, in_features: int, latent: int) -> None:
        super().__init__()
        check_sizes(in_features=in_features, latent=latent)
        self.in_features, self.out_features = in_features, latent

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``H_c[B, out_features]`` from ``x[B, in_features]`` (or ``[B, C, H, W]`` for an image backbone)."""
