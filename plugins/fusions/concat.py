"""``concat``: the two branches side by side, ``F = [H_c; H_q]``."""

from __future__ import annotations

import torch

from hqf.plugins.fusions._checks import check_positive, check_width
from hqf.registry.contracts import Fusion


class ConcatFusion(Fusion):
    """``F = [H_c; H_q]``, width ``k + r``; no parameters.

    Example::

        >>> ConcatFusion(16, 8)(torch.zeros(2, 16), torch.ones(2, 8)).shape
        torch.Size([2, 24])
    """

    name = "concat"

    def __init__(self, classical_features: int, quantum_features: int) -> None:
        check_positive(classical_features=classical_features, quantum_features=quantum_features)
        super().__init__(classical_features, quantum_features)

    @property
    def out_features(self) -> int:
        return self.classical_features + self.quantum_features

    def forward(self, h_c: torch.Tensor | None, h_q: torch.Tensor | None) -> torch.Tensor:
        h_c = check_width("H_c", h_c, self.classical_features)
        h_q = check_width("H_q", h_q, self.quantum_features)
        return torch.cat([h_c, h_q.to(h_c.dtype)], dim=1)
