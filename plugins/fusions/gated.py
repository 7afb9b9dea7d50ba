"""``gated``: the adaptive gated fusion of the seed paper (eqs. 7–8)."""

from __future__ import annotations

import torch

from hqf.plugins.fusions._checks import check_positive, check_width
from hqf.registry.contracts import Fusion


class GatedFusion(Fusion):
    """``G = σ(W_g [H_c; H_q] + b_g)``, ``F = G ⊙ H_c + (1 − G) ⊙ H̃_q`` with ``H̃_q = W_p H_q + b_p``.

    ``W_g`` is ``nn.Linear(k + r, k)`` and the projection ``nn.Linear(r, k)``, both with a bias (the
    paper writes ``W_g`` only; a bias lets the gate start away from 1/2 and costs ``k`` parameters).
    ``out_features = k``. The gate values of the last call are kept in ``last_gate`` (detached); their
    mean is its diagnostic ``gate_mean``, which a run reports: how much the quantum branch is used.

    Args:
        classical_features: k, the width of ``H_c``.
        quantum_features: r, the width of ``H_q``.
        bias: give both linear maps a bias (default True).

    Example::

        >>> fusion = GatedFusion(16, 8)
        >>> fusion(torch.randn(4, 16), torch.randn(4, 8)).shape
        torch.Size([4, 16])
    """

    name = "gated"
    metric_keys = ("gate_mean",)

    def __init__(self, classical_features: int, quantum_features: int, *, bias: bool = True) -> None:
        check_positive(classical_features=classical_features, quantum_features=quantum_features)
        super().__init__(classical_features, quantum_features)
        k, r = classical_features, quantum_features
        self.gate = torch.nn.Linear(k + r, k, bias=bias)
        self.project = torch.nn.Linear(r, k, bias=bias)
        self.last_gate: torch.Tensor | None = None

    @property
    def out_features(self) -> int:
        return self.classical_features

    def forward(self, h_c: torch.Tensor | None, h_q: torch.Tensor | None) -> torch.Tensor:
        h_c = check_width("H_c", h_c, self.classical_features)
        h_q = check_width("H_q", h_q, self.quantum_features)
        dtype = self.gate.weight.dtype
        h_c, h_q = h_c.to(dtype), h_q.to(dtype)
        g = torch.sigmoid(self.gate(torch.cat([h_c, h_q], dim=1)))
        self.last_gate = g.detach()
        return torch.lerp(self.project(h_q), h_c, g)  # g ⊙ h_c + (1 − g) ⊙ W_p h_q in one operation

    def diagnostics(self) -> dict[str, float]:
        """``gate_mean``: the mean of ``G`` in the last call (1 = classical branch only); none before a call."""
        if self.last_gate is None:
            return {}
        return {"gate_mean": float(self.last_gate.float().mean())}
