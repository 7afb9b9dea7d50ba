"""The learning plugin interfaces: Fusion, Regularizer, Baseline, Backbone (the quantum ones:
:mod:`hqf.quantum.interfaces`).

Each has one required method; optional abilities are declared as data. Plugins subclass these and
register the class through a hook (:mod:`hqf.registry.hookspecs`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np
import torch

from hqf.quantum.interfaces import Backend, check_sizes


class Fusion(torch.nn.Module, abc.ABC):
    """Combines the classical latent ``H_c[B, k]`` and the quantum features ``H_q[B, r]`` into ``F``."""

    name: ClassVar[str]
    uses_classical: ClassVar[bool] = True
    uses_quantum: ClassVar[bool] = True
    #: keys of ``metrics.json`` its :meth:`diagnostics` may report (``gated``: ``gate_mean``)
    metric_keys: ClassVar[tuple[str, ...]] = ()

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

        A run reports those named in :attr:`metric_keys`, after one call on test inputs.
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


class Regularizer(abc.ABC):
    """A penalty added to the loss with a weight the run configuration sets (λ, γ, ...).

    Its settings are its table of the run configuration (``[regularizer_options.<name>]``), read by
    its :attr:`options` class. A run reads four options by name when the class has them: ``weight``
    (its weight in the loss; default 1), ``every`` (computed on iterations t with (t − 1) mod k = 0,
    absent on the others; default 1), ``batch`` (computed on the first m samples of the mini-batch;
    None: all) and ``scope`` (``auto``, ``full``, ``classical``: whether it sees the quantum features
    held constant; default ``auto``, see :attr:`needs_second_derivatives`). The other options go to
    its constructor, with those of :attr:`run_keys`. Without an options class its table is passed to
    the constructor as given, less ``weight``.
    """

    name: ClassVar[str]
    #: its settings (an attrs class, fields made with :func:`hqf.registry.options.option`); None: none declared
    options: ClassVar[type | None] = None
    #: its column in the per-iteration curves (``stab``, ``curv``); None: ``reg_<name>``
    column: ClassVar[str | None] = None
    #: constructor option -> a run-configuration key the core owns that gives it (``(("seed", "seed"),)``)
    run_keys: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: its penalty is built from gradients of the loss (double backward), so training on it needs third
    #: derivatives: where the quantum layer has no backprop (the parameter-shift rule would cost
    #: ``(2P)³`` circuit runs per sample) it sees the quantum features held constant under scope ``auto``
    needs_second_derivatives: ClassVar[bool] = False

    @abc.abstractmethod
    def penalty(self, inputs: RegularizerInputs) -> torch.Tensor:
        """A differentiable scalar."""


@attrs.frozen(eq=False)
class BaselineInputs:
    """What a baseline's :meth:`Baseline.build` receives from the run.

    ``train_x[N, in_features]`` (float32, standardized as the model sees it) and ``train_y[N]`` are the
    training split (None unless the baseline declares ``uses_training_split``); ``make_backend()``
    builds the run's backend (on its device, with its noise); ``build_hybrid()`` builds the hybrid
    model of the run on the noiseless torch backend (the same seed, so the same initial weights), whose
    quantum block a baseline may replace.
    """

    in_features: int
    n_classes: int
    train_x: np.ndarray | None
    train_y: np.ndarray | None
    #: the baseline's options (an instance of its ``options`` class; None when it declares none)
    options: Any
    seed: int
    #: the run's encoder and its options
    encoder: str
    encoder_options: dict
    make_backend: Callable[[], Backend]
    build_hybrid: Callable[[], torch.nn.Module]


class Baseline(abc.ABC):
    """A whole classical model (registered through ``register_baselines``) trained by the same loop as
    the hybrid, for comparison.

    ``build`` takes one :class:`BaselineInputs` when :attr:`receives_inputs` is True. A baseline that
    leaves it False (the earlier form) gets ``configure(config)`` with the run configuration, then
    ``build(in_features, n_classes)``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: its settings, read from ``[baseline_options.<name>]`` (an attrs class); None: none declared
    options: ClassVar[type | None] = None
    #: keys of ``metrics.json`` its module's ``diagnostics()`` may report (None where it does not)
    metric_keys: ClassVar[tuple[str, ...]] = ()
    #: True: ``build(inputs: BaselineInputs)``; False: ``configure(config)``, then ``build(in_features, n_classes)``
    receives_inputs: ClassVar[bool] = False
    #: its :class:`BaselineInputs` carry the training split (the run loads it in any case; a model
    #: rebuilt from a run directory loads it only for such a baseline)
    uses_training_split: ClassVar[bool] = False

    def configure(self, config) -> None:  # noqa: B027 — an optional hook, a no-op by default
        """The earlier form only: read the run configuration before :meth:`build`. Does nothing by default."""

    @abc.abstractmethod
    def build(self, *args) -> torch.nn.Module:
        """A module mapping ``x[B, in_features]`` to logits ``[B, n_classes]``."""


class Backbone(torch.nn.Module, abc.ABC):
    """The classical feature extractor ``f_c``: rows ``x[B, in_features]`` to the latent ``H_c[B, latent]``.

    An image backbone (``image_input = True``) reads each row as an image ``[C, H, W]`` stored row-major
    (the layout of the image datasets) and views the batch as ``[B, C, H, W]``. Options beyond
    ``in_features`` and ``latent`` come from its table of the run configuration
    (``[backbone_options.<name>]``), read by its :attr:`options` class (as given where it has none).
    """

    name: ClassVar[str]
    #: its constructor options (an attrs class, fields made with :func:`hqf.registry.options.option`)
    options: ClassVar[type | None] = None
    #: True for a backbone that reads its input rows as images ``[C, H, W]``
    image_input: ClassVar[bool] = False

    def __init__(self, in_features: int, latent: int) -> None:
        super().__init__()
        check_sizes(in_features=in_features, latent=latent)
        self.in_features, self.out_features = in_features, latent

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``H_c[B, out_features]`` from ``x[B, in_features]`` (or ``[B, C, H, W]`` for an image backbone)."""
