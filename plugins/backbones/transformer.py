"""``transformer``: a small transformer encoder over feature tokens or patches (the seed's "transformer-based
backbone")."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from hqf.registry.contracts import Backbone
from hqf.registry.options import integer, option


@attrs.frozen
class TransformerOptions:
    """``[backbone_options.transformer]`` (flat keys ``transformer_dim``, ``_layers``, ``_heads``)."""

    dim: int = option(32, integer(1), flat_key="transformer_dim")
    layers: int = option(2, integer(1), flat_key="transformer_layers")
    heads: int = option(4, integer(1), flat_key="transformer_heads")
    #: features per token
    patch: int = option(1, integer(1))


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
    """A small transformer encoder over feature tokens, or over patches of ``patch`` features.

    Patch ``t`` (features ``t·patch … t·patch + patch − 1``, the last one zero-padded) becomes the
    token ``Σ_j x_j · v_j + e_t`` (a learned value direction per feature and a learned embedding per
    patch, width ``dim``; with ``patch = 1`` each feature is one token ``x_j · v_j + e_j``); ``layers``
    pre-norm encoder layers with ``heads`` heads (feed-forward width ``2·dim``, no dropout); mean
    pooling over tokens; ``H_c = GELU(W · pooled + b)`` of width ``latent``. Cost grows with the square
    of the number of tokens, ``ceil(in_features / patch)``.

    Args:
        in_features, latent: the widths of ``x`` and ``H_c``.
        dim, layers, heads: token width, encoder layers and attention heads (:class:`TransformerOptions`;
            flat keys ``transformer_dim``, ``transformer_layers``, ``transformer_heads``); ``dim`` must
            be divisible by ``heads``.
        patch: features per token (``[backbone_options.transformer] patch = 8``), from 1 to ``in_features``.

    Raises:
        ValueError: ``dim`` is not divisible by ``heads``, or ``patch`` is out of range.

    Example::

        >>> TransformerBackbone(5, 3, dim=8, layers=1, heads=2)(torch.zeros(2, 5)).shape
        torch.Size([2, 3])
    """

    name = "transformer"
    options = TransformerOptions

    def __init__(
        self, in_features: int, latent: int, dim: int = 32, layers: int = 2, heads: int = 4, patch: int = 1
    ) -> None:
        super().__init__(in_features, latent)
        if dim % heads:
            raise ValueError(f"'transformer_dim' ({dim}) must be divisible by 'transformer_heads' ({heads})")
        if isinstance(patch, bool) or not isinstance(patch, int) or not 1 <= patch <= in_features:
            raise ValueError(f"the transformer's 'patch' must be an integer from 1 to {in_features} (got {patch!r})")
        self.patch, self.tokens = patch, -(-in_features // patch)
        self.value = nn.Parameter(torch.randn(self.tokens * patch, dim) / dim**0.5)
        self.position = nn.Parameter(torch.randn(self.tokens, dim) * 0.02)
        self.layers = nn.Sequential(*(_EncoderLayer(dim, heads) for _ in range(layers)))
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, latent), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.patch == 1:
            tokens = x.unsqueeze(-1) * self.value + self.position  # [B, d, dim]
        else:
            padded = nn.functional.pad(x, (0, self.tokens * self.patch - x.shape[-1]))
            patches = padded.reshape(*x.shape[:-1], self.tokens, self.patch)
            tokens = (
                torch.einsum("btp,tpd->btd", patches, self.value.reshape(self.tokens, self.patch, -1)) + self.position
            )
        return self.out(self.layers(tokens).mean(dim=1))
