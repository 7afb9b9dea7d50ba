import pytest
import torch

from hqf.errors import ConfigError, UnknownPluginError
from hqf.learn.config import RunConfig
from hqf.learn.training.model import HybridModel, build_model, count_parameters
from hqf.plugins.backbones.transformer import TransformerBackbone
from hqf.quantum.layer import QuantumLayer


def _config(**changes):
    return RunConfig(**{"ansatz": "hea3x2", "hidden": 8, "latent": 6, **changes})


def test_default_layout_shapes_and_dtypes():
    model = build_model(_config(), in_features=10, n_classes=4)
    assert isinstance(model, HybridModel) and isinstance(model.quantum, QuantumLayer)
    assert model.quantum.encoder.in_features == 6  # fed from the latent
    x = torch.randn(5, 10)
    features, logits = model.forward_features(x)
    assert features.shape == (5, 6) and logits.shape == (5, 4)
    assert features.dtype == logits.dtype == torch.float32
    assert model.quantum.weights.dtype == torch.float64  # complex128 simulation
    torch.testing.assert_close(model(x), logits)


def test_gated_wiring_matches_eqs_7_and_8():
    model = build_model(_config(), in_features=10, n_classes=4)
    x = torch.randn(7, 10)
    h_c = model.backbone(x)
    h_q = model.quantum(h_c).float()
    gate = torch.sigmoid(model.fusion.gate(torch.cat([h_c, h_q], dim=1)))
    expected = gate * h_c + (1 - gate) * model.fusion.project(h_q)
    torch.testing.assert_close(model.features(x), expected)
    torch.testing.assert_close(model(x), model.head(expected))


def test_gradients_reach_classical_and_quantum_parameters():
    model = build_model(_config(), in_features=10, n_classes=3)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(8, 10)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.quantum.weights.grad.abs().sum() > 0


def test_classical_only_builds_no_quantum_layer_and_needs_no_backend():
    model = build_model(_config(fusion="classical-only", backend="no-such-backend"), 10, 3)
    assert model.quantum is None
    assert not any(isinstance(m, QuantumLayer) for m in model.modules())
    assert count_parameters(model)["n_quantum_parameters"] == 0
    assert model(torch.randn(2, 10)).shape == (2, 3)


def test_quantum_only_from_the_input_has_no_backbone():
    config = _config(fusion="quantum-only", quantum_input="input", encoder="amplitude", ansatz="basic4x2")
    model = build_model(config, in_features=16, n_classes=10)
    assert model.backbone is None and model.quantum.encoder.in_features == 16
    features, logits = model.forward_features(torch.randn(3, 16))
    assert features.shape == (3, 4) and logits.shape == (3, 10)


def test_concat_and_input_fed_quantum_branch():
    model = build_model(_config(fusion="concat", quantum_input="input"), in_features=10, n_classes=3)
    assert model.quantum.encoder.in_features == 10
    assert model.forward_features(torch.randn(2, 10))[0].shape[1] == model.fusion.out_features


def test_transformer_backbone_supports_double_backward():
    model = build_model(
        _config(backbone="transformer", transformer_dim=8, transformer_heads=2, transformer_layers=1), 5, 3
    )
    assert isinstance(model.backbone, TransformerBackbone)
    out = model(torch.randn(4, 5))
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0]))
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, create_graph=True)
    hv = torch.autograd.grad(grads, params, grad_outputs=[torch.ones_like(g) for g in grads], allow_unused=True)
    assert any(h is not None and h.abs().sum() > 0 for h in hv) and out.shape == (4, 3)


def test_transformer_attention_equals_torch_multihead_attention():
    from hqf.plugins.backbones.transformer import _EncoderLayer

    torch.manual_seed(0)
    layer = _EncoderLayer(8, 2)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(layer.qkv.weight)
        mha.in_proj_bias.copy_(layer.qkv.bias)
        mha.out_proj.weight.copy_(layer.proj.weight)
        mha.out_proj.bias.copy_(layer.proj.bias)
    x = torch.randn(3, 5, 8)
    h = layer.norm1(x)
    expected = x + mha(h, h, h, need_weights=False)[0]
    expected = expected + layer.ff(layer.norm2(expected))
    torch.testing.assert_close(layer(x), expected)


def test_same_seed_same_initial_weights():
    a = build_model(_config(seed=3), 10, 3).state_dict()
    b = build_model(_config(seed=3), 10, 3).state_dict()
    c = build_model(_config(seed=4), 10, 3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["quantum.weights"], c["quantum.weights"])


def test_baseline_replaces_the_model():
    model = build_model(_config(baseline="logistic"), 10, 3)
    features, logits = model.forward_features(torch.randn(2, 10))
    assert logits.shape == (2, 3) and model.quantum is None
    assert model.quantum_gradient is None and model.fusion_diagnostics(torch.randn(2, 10)) == {}


def test_the_model_declares_its_quantum_gradient_and_fusion_diagnostics():
    model = build_model(_config(), 10, 3)
    assert model.quantum_gradient == "backprop"  # the torch backend under gradient="auto"
    assert build_model(_config(gradient="parameter-shift"), 10, 3).quantum_gradient == "parameter-shift"
    assert build_model(_config(fusion="classical-only"), 10, 3).quantum_gradient is None
    x = torch.randn(6, 10)
    diagnostics = model.fusion_diagnostics(x)
    with torch.no_grad():
        h_c = model.backbone(x)
        gate = torch.sigmoid(model.fusion.gate(torch.cat([h_c, model.quantum(h_c).float()], 1)))
    assert diagnostics == {"gate_mean": pytest.approx(float(gate.mean()), rel=1e-6)}


def test_bad_names_and_options_are_clear_errors():
    with pytest.raises(UnknownPluginError, match="unknown fusion 'glued'"):
        build_model(_config(fusion="glued"), 10, 3)
    with pytest.raises(ConfigError, match="encoder 'angle'"):
        build_model(_config(encoder_options={"rotation": "RQ"}), 10, 3)
    with pytest.raises(ConfigError, match="'quantum_input' must be one of latent, input"):
        _config(quantum_input="both")
