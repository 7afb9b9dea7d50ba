"""The loss terms of a run: each configured regularizer with its weight, schedule and sub-batch.

A regularizer's options (``Regularizer.options``, its table ``[regularizer_options.<name>]``) give
these by name (``weight``, ``every``, ``batch``, ``scope``; e.g. ``curvature``: weight 0.01, every 10
iterations on 64 samples); :func:`build_terms` reads them, so a new regularizer needs no change here.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn.functional as F

from hqf.errors import ConfigError, HqfError
from hqf.learn.config import RunConfig
from hqf.learn.training.model import BaselineModel, HybridModel
from hqf.registry.contracts import Regularizer, RegularizerInputs
from hqf.registry.loader import registry
from hqf.registry.make import make_regularizer
from hqf.registry.options import flat_keys

#: values of a scope option: what a term differentiates through
SCOPES = ("auto", "full", "classical")
#: options a run reads itself, with their values where a regularizer does not declare them
TERM_OPTIONS = {"weight": 1.0, "every": 1, "batch": None, "scope": "auto"}


def _positive_int(_, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"'{attribute.name}' must be an integer >= 1 (got {value!r})")


@attrs.frozen
class Term:
    """A regularizer in the loss with its weight; computed on iterations ``t`` with ``(t−1) % every == 0``.

    ``batch``: evaluate the penalty on the first ``batch`` samples of the mini-batch only (a separate
    forward pass on that sub-batch; None: on the whole mini-batch, sharing its forward pass).
    """

    name: str
    regularizer: Regularizer
    weight: float
    every: int = attrs.field(default=1, validator=_positive_int)
    column: str = ""
    batch: int | None = attrs.field(default=None, validator=attrs.validators.optional(_positive_int))
    #: evaluate the penalty with the quantum features held constant (a separate forward pass)
    quantum_constant: bool = False
    #: offer the penalty the loss as a function of float64 parameter values (``RegularizerInputs.loss_at``)
    float64_loss: bool = False

    def due(self, step: int) -> bool:
        return (step - 1) % self.every == 0

    def inputs(
        self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor, full: RegularizerInputs
    ) -> RegularizerInputs:
        """What the penalty sees: ``full`` (the mini-batch's own forward pass), or a separate forward
        pass on the first ``batch`` samples and/or with the quantum features held constant."""
        whole = self.batch is None or self.batch >= len(yb)
        size = len(yb) if whole else self.batch
        if self.float64_loss:
            logits = full.logits[:size]
            ce = full.ce_loss if whole else F.cross_entropy(logits.float(), yb[:size])
            return RegularizerInputs(
                full.features[:size], logits, ce, full.parameters, loss_at(model, xb[:size], yb[:size], full.parameters)
            )
        if whole and not self.quantum_constant:
            return full
        if self.quantum_constant:
            features, logits = model.forward_features(xb[:size], quantum_constant=True)
        else:
            features, logits = model.forward_features(xb[:size])
        ce = F.cross_entropy(logits.float(), yb[:size])
        return RegularizerInputs(features, logits, ce, full.parameters)


def loss_at(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, parameters: tuple[torch.Tensor, ...]):
    """The cross-entropy of ``model`` on ``(x, y)`` in float64 as a function of values of the trainable
    ones among ``parameters`` (in their order).

    Every call sees the same random draws (dropout) and leaves the model's buffers (batch-norm
    statistics) and torch's random state as they were.
    """
    names = {id(p): name for name, p in model.named_parameters()}
    keys = [names[id(p)] for p in parameters if p.requires_grad]
    x64 = x.double()
    devices = [x.device] if x.device.type == "cuda" else []

    def loss(values):
        buffers = {n: b.detach().double() if b.is_floating_point() else b.clone() for n, b in model.named_buffers()}
        with torch.random.fork_rng(devices=devices):
            logits = torch.func.functional_call(model, {**buffers, **dict(zip(keys, values))}, (x64,))
        return F.cross_entropy(logits.double(), y)

    return loss


def build_terms(config: RunConfig, model: HybridModel | BaselineModel | None = None) -> list[Term]:
    """The weighted terms of ``config.regularizers``, each read from its regularizer's options.

    ``model`` tells whether its quantum branch has backprop, which a term of scope ``auto`` that needs
    second derivatives depends on; None: no quantum branch.
    """
    return [_term(name, config, model) for name in config.regularizers]


def check_regularizer(name: str) -> type[Regularizer]:
    """The class registered as regularizer ``name``; one whose ``run_keys`` name no field is a ConfigError."""
    cls = registry().get("regularizer", name).cls
    for _, key in cls.run_keys:
        if key not in RunConfig.keys():
            raise ConfigError(f"regularizer {name!r} reads run-configuration key {key!r}, which does not exist")
    return cls


def scope_key(name: str) -> str | None:
    """How the ``[resolved]`` table of a run directory names regularizer ``name``'s scope: the option's
    flat key (``curvature_scope``) or ``regularizer_options.<name>.scope``; None without a scope option."""
    options = registry().get("regularizer", name).cls.options
    if options is None or "scope" not in attrs.fields_dict(options):
        return None
    flat = {option: key for key, option in flat_keys(options).items()}
    return flat.get("scope", f"regularizer_options.{name}.scope")


def _term(name: str, config: RunConfig, model: HybridModel | BaselineModel | None) -> Term:
    cls = check_regularizer(name)
    options = config.plugin_options("regularizer", name)
    if cls.options is None:  # its table as given: only the weight is the run's, the rest the constructor's
        values = dict(options)
        weight, (every, batch, scope) = values.pop("weight", TERM_OPTIONS["weight"]), list(TERM_OPTIONS.values())[1:]
    else:
        values = {**TERM_OPTIONS, **{f.name: getattr(options, f.name) for f in attrs.fields(cls.options)}}
        weight, every, batch, scope = (values.pop(key) for key in TERM_OPTIONS)
    for option, key in cls.run_keys:
        values.setdefault(option, getattr(config, key))
    regularizer = _make(name, values)
    constant = _holds_quantum_constant(regularizer, scope, model)
    return Term(
        name,
        regularizer,
        _weight(name, weight),
        every,
        cls.column or f"reg_{name}",
        batch,
        constant,
        _offers_float64_loss(name, regularizer, constant, config),
    )


def _make(name: str, options: dict[str, Any]) -> Regularizer:
    try:
        return make_regularizer(name, **options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, HqfError):
            raise
        raise ConfigError(f"regularizer {name!r} with options {options}: {exc}") from None


def _weight(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"regularizer {name!r}: the weight must be a number (got {value!r})") from None


def _offers_float64_loss(name: str, regularizer: Regularizer, quantum_constant: bool, config: RunConfig) -> bool:
    """Whether the term gets ``loss_at``: a regularizer that needs second derivatives, differentiating
    through the quantum layer, on a simulator in double precision."""
    offered = regularizer.needs_second_derivatives and not quantum_constant and config.dtype == "complex128"
    if getattr(regularizer, "method", None) == "finite-difference" and not offered:
        raise ConfigError(
            f"regularizer {name!r}: method 'finite-difference' needs dtype complex128 and the full scope "
            f"(got dtype {config.dtype!r}{', quantum features held constant' if quantum_constant else ''})"
        )
    return offered


def _holds_quantum_constant(regularizer: Regularizer, scope: str, model: HybridModel | BaselineModel | None) -> bool:
    """Whether the term sees the quantum features held constant: its scope ``classical``, or ``auto``
    for a regularizer that needs second derivatives on a quantum branch without backprop."""
    if scope not in SCOPES:
        raise ConfigError(f"'scope' must be one of {', '.join(SCOPES)} (got {scope!r})")
    if scope != "auto":
        return scope == "classical"
    gradient = model.quantum_gradient if model is not None else None
    return regularizer.needs_second_derivatives and gradient not in (None, "backprop")
