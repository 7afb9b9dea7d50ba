"""Backbones as plugins: the registry, the image backbones' shapes and gradients, a CNN-amplitude hybrid run."""

import math

import pytest
import torch
from torch import nn

from hqf.errors import ConfigError, UnknownPluginError
from hqf.learn.config import RunConfig
from hqf.learn.experiment import run
from hqf.learn.training.model import build_backbone, build_model
from hqf.plugins.backbones._shape import resolve_image_shape
from hqf.plugins.backbones.cnn import CNNBackbone
from hqf.plugins.backbones.mlp import MLPBackbone
from hqf.plugins.backbones.resnet import ResNetBackbone
from hqf.registry.contracts import Backbone
from hqf.registry.loader import registry

SEED003 = dict(
    backbone="cnn",
    backbone_options={"channels": [4, 8], "fc": [16]},
    latent=16,
    encoder="amplitude",
    ansatz="basic4x2",
    fusion="quantum-only",
    head=[12],
    head_dropout=0.2,
    regularizers=[],
)


def test_registry_lists_every_built_in_backbone():
    entries = {e.name: e for e in registry().entries("backbone")}
    assert {"mlp", "transformer", "cnn", "resnet"} <= set(entries)
    assert all(issubclass(e.cls, Backbone) and e.availability().ok for e in entries.values())
    assert entries["cnn"].cls.image_input and not entries["mlp"].cls.image_input


def test_unknown_backbone_lists_the_registered_ones():
    with pytest.raises(UnknownPluginError, match="cnn"):
        build_model(RunConfig(backbone="lstm"), 5, 3)


def test_mlp_through_the_registry_is_the_two_gelu_layers():
    torch.manual_seed(0)
    backbone = build_backbone(RunConfig(hidden=7, latent=3), 5)
    assert isinstance(backbone, MLPBackbone)
    x = torch.randn(4, 5, dtype=torch.float64)
    first, second = backbone.net[0], backbone.net[2]
    gelu = lambda t: 0.5 * t * (1 + torch.erf(t / math.sqrt(2)))  # noqa: E731
    expected = gelu(
        gelu(x @ first.weight.double().T + first.bias.double()) @ second.weight.double().T + second.bias.double()
    )
    torch.testing.assert_close(backbone.double()(x), expected, rtol=1e-12, atol=1e-12)


def test_transformer_patches_are_tokens_of_summed_feature_values():
    """patch = 4 on 10 features: 3 tokens (the last padded), each Σ_j x_j v_j + e_t, written out by hand."""
    from hqf.plugins.backbones.transformer import TransformerBackbone

    torch.manual_seed(0)
    backbone = build_backbone(
        RunConfig(
            backbone="transformer",
            transformer_dim=8,
            transformer_heads=2,
            transformer_layers=1,
            latent=3,
            backbone_options={"patch": 4},
        ),
        10,
    ).double()
    assert isinstance(backbone, TransformerBackbone) and backbone.tokens == 3
    x = torch.randn(5, 10, dtype=torch.float64)
    seen = []
    backbone.layers.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    out = backbone(x)
    v, e = backbone.value.detach(), backbone.position.detach()
    expected = torch.stack(
        [sum(x[:, j, None] * v[j] for j in range(4 * t, min(4 * t + 4, 10))) + e[t] for t in range(3)], dim=1
    )
    torch.testing.assert_close(seen[0], expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        backbone.value[10:] += 1.0  # the padding's value directions meet zeros only
    torch.testing.assert_close(backbone(x), out, rtol=0, atol=0)


def test_transformer_with_patch_one_is_one_token_per_feature():
    from hqf.plugins.backbones.transformer import TransformerBackbone

    torch.manual_seed(1)
    backbone = TransformerBackbone(6, 3, dim=8, layers=1, heads=2, patch=1).double()
    x = torch.randn(2, 6, dtype=torch.float64)
    seen = []
    backbone.layers.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    backbone(x)
    torch.testing.assert_close(seen[0], x.unsqueeze(-1) * backbone.value + backbone.position, rtol=0, atol=0)
    for bad in (0, 7, 2.5, True):
        with pytest.raises(ValueError, match="'patch' must be an integer from 1 to 6"):
            TransformerBackbone(6, 3, dim=8, layers=1, heads=2, patch=bad)


@pytest.mark.parametrize(
    "in_features, shape", [(64, (1, 8, 8)), (784, (1, 28, 28)), (3072, (3, 32, 32)), (27648, (3, 96, 96))]
)
def test_square_image_shapes_are_inferred(in_features, shape):
    assert resolve_image_shape(in_features) == shape


def test_image_shape_that_does_not_fit_is_a_config_error():
    with pytest.raises(ConfigError, match="backbone_options.image_shape"):
        build_backbone(RunConfig(backbone="cnn"), 50)
    with pytest.raises(ConfigError, match="holds 48 values"):
        build_backbone(RunConfig(backbone="cnn", backbone_options={"image_shape": [3, 4, 4]}), 50)
    with pytest.raises(ConfigError, match="at most 3"):
        build_backbone(RunConfig(backbone="cnn", backbone_options={"channels": [2, 2, 2, 2]}), 64)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        build_backbone(RunConfig(backbone="cnn", backbone_options={"chanels": [2]}), 64)


def test_cnn_reads_flat_rows_and_images_alike_non_square_included():
    torch.manual_seed(1)
    backbone = CNNBackbone(3 * 6 * 10, 5, channels=[4], pool="avg", dropout=0.1, image_shape=[3, 6, 10]).eval()
    images = torch.randn(7, 3, 6, 10)
    out = backbone(images)
    assert out.shape == (7, 5)
    torch.testing.assert_close(backbone(images.reshape(7, -1)), out)
    layers = [type(m) for m in backbone.features]
    assert layers == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d, nn.Dropout2d, nn.AdaptiveAvgPool2d, nn.Flatten]


def test_cnn_is_translation_aware_unlike_a_shuffled_view():
    """The first convolution sees neighbouring pixels: its output at one position equals the kernel applied to
    the 3×3 patch of the [C, H, W] view (an independent correlation in float64)."""
    torch.manual_seed(2)
    backbone = CNNBackbone(64, 4, channels=[3], pool="none", batch_norm=False).double()
    x = torch.randn(2, 64, dtype=torch.float64)
    conv = backbone.features[0]
    out = conv(x.reshape(2, 1, 8, 8))
    patch = x.reshape(2, 8, 8)[:, 2:5, 3:6]  # centred on (3, 4)
    expected = (patch[:, None] * conv.weight[None, :, 0]).sum(dim=(2, 3)) + conv.bias
    torch.testing.assert_close(out[:, :, 3, 4], expected, rtol=1e-12, atol=1e-12)


def test_resnet_shapes_and_its_downsampling_shortcut():
    backbone = ResNetBackbone(3 * 16 * 16, 6, widths=[4, 8], blocks=2).eval()
    assert backbone(torch.randn(3, 3 * 16 * 16)).shape == (3, 6)
    first_of_stage_two = backbone.body[5]  # after the stem (3 modules) and stage one (2 blocks)
    assert first_of_stage_two.conv1.stride == (2, 2) and isinstance(first_of_stage_two.shortcut, nn.Sequential)


def test_gradients_reach_the_quantum_weights_and_the_convolutions():
    model = build_model(RunConfig(seed=3, **SEED003), 64, 10)
    x, y = torch.randn(8, 64), torch.arange(8) % 10
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    weights = model.quantum.weights.grad
    assert weights is not None and torch.isfinite(weights).all() and weights.abs().sum() > 0
    conv = model.backbone.features[0].weight.grad
    assert conv is not None and conv.abs().sum() > 0
    assert model.quantum.encoder.name == "amplitude" and model.quantum.out_features == 4


def test_quantum_weight_gradient_matches_finite_differences():
    """The gradient that flows through CNN → amplitude encoder → circuit, against central differences (float64
    circuit)."""
    model = build_model(RunConfig(seed=4, **SEED003), 64, 10).eval()
    x, y = torch.randn(6, 64), torch.arange(6) % 10
    loss_of = lambda: nn.functional.cross_entropy(model(x).double(), y)  # noqa: E731
    loss_of().backward()
    grad = model.quantum.weights.grad.clone()
    step = 1e-4
    with torch.no_grad():
        for k in range(grad.numel()):
            flat = model.quantum.weights.view(-1)
            flat[k] += step
            up = loss_of().item()
            flat[k] -= 2 * step
            down = loss_of().item()
            flat[k] += step
            assert grad.view(-1)[k].item() == pytest.approx((up - down) / (2 * step), abs=2e-4)


def test_cnn_supports_double_backward_for_the_curvature_term():
    model = build_model(RunConfig(seed=5, **SEED003), 64, 10)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 64)), torch.arange(4))
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, create_graph=True)
    second = torch.autograd.grad(sum((g * g).sum() for g in grads), model.backbone.features[0].weight)
    assert torch.isfinite(second[0]).all()


def test_a_cnn_amplitude_hybrid_trains_on_digits_images(tmp_path):
    config = RunConfig(
        dataset="digits",
        samples=300,
        epochs=1,
        max_iterations=4,
        batch_size=32,
        vai_samples=16,
        vai_draws=2,
        latency_repeats=1,
        seed=6,
        **SEED003,
    )
    metrics = run(config, tmp_path / "run")
    assert metrics["steps"] == 4 and 0 <= metrics["accuracy"] <= 1
    assert metrics["n_quantum_parameters"] == 8
