"""``stability``: the spread of the fused representation over the mini-batch (eq. 10, ``L_stab``)."""

from __future__ import annotations

import attrs
import torch

from hqf.registry.contracts import Regularizer, RegularizerInputs
from hqf.registry.options import number, option


@attrs.frozen
class StabilityOptions:
    """``[regularizer_options.stability]``: its weight λ in the loss (flat key ``lambda_stab``)."""

    weight: float = option(0.1, number(0.0), flat_key="lambda_stab")


class StabilityRegularizer(Regularizer):
    """``L_stab = (1/n) Σ_i ‖F_i − F̄‖²`` with ``F̄`` the batch mean of the fused features ``F[n, k]``.

    The mean squared Euclidean distance to the batch mean (the trace of the biased batch covariance);
    0 for a batch of one. No constructor options; in a run its weight λ is the option ``weight``
    (:class:`StabilityOptions`, flat key ``lambda_stab``) and its curve column ``stab``.

    Example::

        >>> F = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
        >>> StabilityRegularizer().penalty(RegularizerInputs(F, F, F.sum(), ())).item()
        1.0
    """

    name = "stability"
    options = StabilityOptions
    column = "stab"

    def penalty(self, inputs: RegularizerInputs) -> torch.Tensor:
        features = inputs.features
        if features.ndim != 2 or features.shape[0] < 1:
            raise ValueError(f"'features' must have shape [B >= 1, k] (got {list(features.shape)})")
        centred = features - features.mean(dim=0, keepdim=True)
        return (centred * centred).sum(dim=1).mean()

    def __repr__(self) -> str:
        return "StabilityRegularizer()"
