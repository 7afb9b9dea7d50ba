"""``mlp``: the default backbone, ``in_features → hidden → latent`` with GELUs."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from hqf.registry.contracts import Backbone
from hqf.registry.options import integer, option


@attrs.frozen
class MLPOptions:
    """``[backbone_options.mlp]``: the hidden width (flat key ``hidden``)."""

    hidden: int = option(64, integer(1), flat_key="hidden")


class MLPBackbone(Backbone):
    """``H_c = GELU(W₂ GELU(W₁ x + b₁) + b₂)``: ``in_features → hidden → latent``.

    Args:
        in_features: the width of ``x``.
        latent: the width of ``H_c``.
        hidden: the hidden width (:class:`MLPOptions`; flat key ``hidden``).

    Example::

        >>> MLPBackbone(5, 3, hidden=8)(torch.zeros(2, 5)).shape
        torch.Size([2, 3])
    """

    name = "mlp"
    options = MLPOptions

    def __init__(self, in_features: int, latent: int, hidden: int = 64) -> None:
        super().__init__(in_features, latent)
        if hidden < 1:
            raise ValueError(f"'hidden' must be >= 1 (got {hidden})")
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, latent), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, _, second, _ = self.net  # the GELUs as functions: two module calls fewer at batch 1
        return nn.functional.gelu(second(nn.functional.gelu(first(x))))
