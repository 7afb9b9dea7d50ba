"""``cnn``: a configurable convolution stack over images, ending in the latent the encoder reads."""

from __future__ import annotations

import torch
from torch import nn

from hqf.plugins.backbones._shape import resolve_image_shape
from hqf.registry.contracts import Backbone

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class CNNBackbone(Backbone):
    """Convolution blocks, global average pooling, then fully connected layers to the latent.

    Block ``i``: ``Conv2d(c_{i−1} → channels[i], kernel, padding kernel//2)`` → ``BatchNorm2d`` (if
    ``batch_norm``) → ReLU → a 2×2 max or average pool (``pool``; ``"none"``: no pooling) → ``Dropout2d``
    (if ``dropout``). Then ``AdaptiveAvgPool2d(1)``, and ``Linear → ReLU`` for each width in ``fc``, and
    a final ``Linear`` to ``latent`` (no activation: the latent is what the encoder reads, seed 003's
    ``Linear(256→16)``). Seed 003's extractor is ``channels = [32, 64, 128, 512]``, ``fc = [256]``,
    ``latent = 16``.

    Input rows are images ``[C, H, W]`` stored row-major; ``x`` may be ``[B, C·H·W]`` or ``[B, C, H, W]``.

    Args:
        in_features: values per image (``C·H·W``).
        latent: the width of ``H_c``.
        channels: output channels of each convolution block.
        kernel: the (odd) convolution kernel size.
        pool: ``"max"``, ``"avg"`` or ``"none"``.
        dropout: the ``Dropout2d`` probability after each block (0: none).
        batch_norm: a ``BatchNorm2d`` after each convolution.
        fc: hidden widths of the fully connected layers before the latent.
        image_shape: ``[C, H, W]``; by default the square image ``in_features`` is (grey or colour).

    Raises:
        ValueError: an empty ``channels``, an even or non-positive ``kernel``, an unknown ``pool``, a
            ``dropout`` outside [0, 1), an image too small for the pooling, or an image shape that does not fit.

    Example::

        >>> CNNBackbone(64, 16, channels=[8, 16])(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 16])
    """

    name = "cnn"
    image_input = True

    def __init__(
        self,
        in_features: int,
        latent: int,
        channels: list[int] | tuple[int, ...] = (16, 32),
        kernel: int = 3,
        pool: str = "max",
        dropout: float = 0.0,
        batch_norm: bool = True,
        fc: list[int] | tuple[int, ...] = (),
        image_shape: list[int] | None = None,
    ) -> None:
        super().__init__(in_features, latent)
        self.image_shape = _check(in_features, channels, kernel, pool, dropout, fc, image_shape)
        c = self.image_shape[0]
        layers: list[nn.Module] = []
        for width in channels:
            layers += [nn.Conv2d(c, width, kernel, padding=kernel // 2)]
            layers += [nn.BatchNorm2d(width)] if batch_norm else []
            layers += [nn.ReLU()]
            layers += [POOLS[pool](2)] if pool != "none" else []
            layers += [nn.Dropout2d(dropout)] if dropout else []
            c = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        dense: list[nn.Module] = []
        for width in fc:
            dense += [nn.Linear(c, width), nn.ReLU()]
            c = width
        self.head = nn.Sequential(*dense, nn.Linear(c, latent))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(len(x), *self.image_shape)))


def _check(in_features, channels, kernel, pool, dropout, fc, given) -> tuple[int, int, int]:
    if not channels or not all(isinstance(n, int) and n >= 1 for n in channels):
        raise ValueError(f"'channels' must be a non-empty list of positive integers (got {channels!r})")
    if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"'kernel' must be an odd positive integer (got {kernel!r})")
    if pool not in (*POOLS, "none"):
        raise ValueError(f"'pool' must be one of max, avg, none (got {pool!r})")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"'dropout' must be in [0, 1) (got {dropout!r})")
    if not all(isinstance(n, int) and n >= 1 for n in fc):
        raise ValueError(f"'fc' must be a list of positive integers (got {fc!r})")
    shape = resolve_image_shape(in_features, given)
    if pool != "none" and min(shape[1:]) < 2 ** len(channels):
        raise ValueError(
            f"{len(channels)} pooled blocks halve the image {len(channels)} times; a {shape[1]}×{shape[2]} image "
            f"allows at most {min(shape[1:]).bit_length() - 1} (fewer 'channels', or pool = \"none\")"
        )
    return shape
