"""Classical backbones ``f_c`` shipped with hqf.

- ``mlp``: two GELU layers (the default).
- ``transformer``: a small transformer encoder over feature tokens (the seed paper's option).
- ``cnn``: a configurable convolution stack over images (seed 003's feature extractor).
- ``resnet``: a small residual network over images.
"""

from hqf.plugins.backbones.cnn import CNNBackbone
from hqf.plugins.backbones.mlp import MLPBackbone
from hqf.plugins.backbones.resnet import ResNetBackbone
from hqf.plugins.backbones.transformer import TransformerBackbone
from hqf.registry.hookspecs import hookimpl


@hookimpl
def register_backbones(register) -> None:
    register(MLPBackbone)
    register(TransformerBackbone)
    register(CNNBackbone)
    register(ResNetBackbone)
