"""``classical-only``: no quantum branch; the classical baseline of the ablation (Table IV)."""

from __future__ import annotations

import torch

from hqf.plugins.fusions._checks import check_positive, check_width
from hqf.registry.contracts import Fusion


class ClassicalOnlyFusion(Fusion):
    """``F = H_c`` (width k); ``uses_quantum = False``, so the model need not build a quantum layer.

    ``quantum_features`` may be 0; ``H_q`` is passed as ``None`` and ignored.

    Example::

        >>> ClassicalOnlyFusion(16, 0)(torch.ones(2, 16), None).shape
        torch.Size([2, 16])
    """

    name = "classical-only"
    uses_quantum = False

    def __init__(self, classical_features: int, quantum_features: int) -> None:
        check_positive(classical_features=classical_features)
        super().__init__(classical_features, quantum_features)

    @property
    def out_features(self) -> int:
        return self.classical_features

    def forward(self, h_c: torch.Tensor | None, h_q: torch.Tensor | None) -> torch.Tensor:
        return check_width("H_c", h_c, self.classical_features)
