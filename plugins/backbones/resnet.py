"""``resnet``: a small residual network over images (He et al. 2016's basic blocks)."""

from __future__ import annotations

import torch
from torch import nn

from hqf.plugins.backbones._shape import resolve_image_shape
from hqf.registry.contracts import Backbone


class _BasicBlock(nn.Module):
    """``ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))``; the shortcut is a strided 1×1 convolution
    with batch norm where the width or the resolution changes, else the identity."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetBackbone(Backbone):
    """A 3×3 stem convolution (BN, ReLU), then one stage per entry of ``widths``, each ``blocks`` basic
    blocks (the first of every stage after the first halves the resolution), global average pooling
    and a ``Linear`` to ``latent``.

    Input rows are images ``[C, H, W]`` stored row-major; ``x`` may be ``[B, C·H·W]`` or ``[B, C, H, W]``.

    Args:
        in_features: values per image (``C·H·W``).
        latent: the width of ``H_c``.
        widths: the channels of each stage.
        blocks: basic blocks per stage.
        image_shape: ``[C, H, W]``; by default the square image ``in_features`` is (grey or colour).

    Raises:
        ValueError: an empty ``widths``, ``blocks`` < 1, or an image shape that does not fit.

    Example::

        >>> ResNetBackbone(64, 16, widths=[8, 16])(torch.zeros(2, 64)).shape
        torch.Size([2, 16])
    """

    name = "resnet"
    image_input = True

    def __init__(
        self,
        in_features: int,
        latent: int,
        widths: list[int] | tuple[int, ...] = (16, 32, 64),
        blocks: int = 1,
        image_shape: list[int] | None = None,
    ) -> None:
        super().__init__(in_features, latent)
        if not widths or not all(isinstance(n, int) and n >= 1 for n in widths):
            raise ValueError(f"'widths' must be a non-empty list of positive integers (got {widths!r})")
        if not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"'blocks' must be an integer >= 1 (got {blocks!r})")
        self.image_shape = resolve_image_shape(in_features, image_shape)
        layers: list[nn.Module] = [
            nn.Conv2d(self.image_shape[0], widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        c = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                layers.append(_BasicBlock(c, width, stride=2 if stage > 0 and block == 0 else 1))
                c = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(c, latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x.reshape(len(x), *self.image_shape)))
