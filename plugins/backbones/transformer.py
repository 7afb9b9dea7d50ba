"""``transformer``: a small transformer encoder over feature tokens (the seed's "transformer-based backbone")."""

from __future__ import annotations

import torch
from torch import nn

from hqf.quantum.interfaces import Backbone


class _EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer with explicit attention ``softmax(QKᵀ/√d_h) V``.

    Written out (rather than ``nn.TransformerEncoderLayer``) because torch's fused CPU attention kernel
    has no double backward, which the curvature regularizer needs.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / (dim // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((weights @ v).transpose(1, 2).reshape(b, n, dim))
        return x + self.ff(self.norm2(x))


class TransformerBackbone(Backbone):
    """A small transformer encoder over feature tokens.

    Feature ``j`` of ``x`` becomes the token ``x_j · v_j + e_j`` (a learned value direction and a
    learned feature embedding, width ``dim``); ``layers`` pre-norm encoder layers with ``heads`` heads
    (feed-forward width ``2·dim``, no dropout); mean pooling over tokens; ``H_c = GELU(W · pooled + b)``
    of width ``latent``. Cost grows with the square of the number of features.

    Args:
        in_features, latent: the widths of ``x`` and ``H_c``.
        dim, layers, heads: run-configuration keys ``transformer_dim``, ``transformer_layers``,
            ``transformer_heads``; ``dim`` must be divisible by ``heads``.

    Raises:
        ValueError: ``dim`` is not divisible by ``heads``.

    Example::

        >>> TransformerBackbone(5, 3, dim=8, layers=1, heads=2)(torch.zeros(2, 5)).shape
        torch.Size([2, 3])
    """

    name = "transformer"
    config_options = (("dim", "transformer_dim"), ("layers", "transformer_layers"), ("heads", "transformer_heads"))

    def __init__(self, in_features: int, latent: int, dim: int = 32, layers: int = 2, heads: int = 4) -> None:
        super().__init__(in_features, latent)
        if dim % heads:
            raise ValueError(f"'transformer_dim' ({dim}) must be divisible by 'transformer_heads' ({heads})")
        self.value = nn.Parameter(torch.randn(in_features, dim) / dim**0.5)
        self.position = nn.Parameter(torch.randn(in_features, dim) * 0.02)
        self.layers = nn.Sequential(*(_EncoderLayer(dim, heads) for _ in range(layers)))
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, latent), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.value + self.position  # [B, d, dim]
        return self.out(self.layers(tokens).mean(dim=1))
