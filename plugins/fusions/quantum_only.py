"""``quantum-only``: the QENN layout, quantum features straight into the classical head."""

from __future__ import annotations

import torch

from hqf.plugins.fusions._checks import check_positive, check_width
from hqf.registry.contracts import Fusion


class QuantumOnlyFusion(Fusion):
    """``F = H_q`` (width r); the classical latent is not used (``uses_classical = False``).

    The model still runs its backbone when the quantum branch is fed from the backbone latent; ``H_c``
    is passed as ``None`` and ignored. ``classical_features`` may be 0.

    Example::

        >>> QuantumOnlyFusion(0, 8)(None, torch.ones(2, 8)).shape
        torch.Size([2, 8])
    """

    name = "quantum-only"
    uses_classical = False

    def __init__(self, classical_features: int, quantum_features: int) -> None:
        check_positive(quantum_features=quantum_features)
        super().__init__(classical_features, quantum_features)

    @property
    def out_features(self) -> int:
        return self.quantum_features

    def forward(self, h_c: torch.Tensor | None, h_q: torch.Tensor | None) -> torch.Tensor:
        return check_width("H_q", h_q, self.quantum_features)
