"""The classical head after the fusion: ``head = [widths]`` and ``head_dropout``; the default is one Linear."""

import pytest
import torch
from torch import nn

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.training.model import build_model, make_head


def _config(**changes):
    return RunConfig(**{"ansatz": "hea3x2", "hidden": 8, "latent": 6, **changes})


def test_default_head_is_the_single_linear_layer():
    model = build_model(_config(), 5, 4)
    assert type(model.head) is nn.Linear and model.head.in_features == model.fusion.out_features
    assert model.head.out_features == 4
    assert {k for k in model.state_dict() if k.startswith("head.")} == {"head.weight", "head.bias"}


def test_default_head_leaves_the_model_unchanged():
    """An explicit empty head and the default build the same weights; the logits are W_o F + b_o."""
    default, explicit = (
        build_model(_config(seed=2), 5, 4),
        build_model(_config(seed=2, head=[], head_dropout=0.0), 5, 4),
    )
    for (name, a), (_, b) in zip(default.state_dict().items(), explicit.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(3, 5)
    features = default.features(x)
    torch.testing.assert_close(default(x), features @ default.head.weight.T + default.head.bias)


def test_hidden_head_layers_and_the_rest_of_the_model_untouched():
    plain, deep = (
        build_model(_config(seed=3), 5, 4),
        build_model(_config(seed=3, head=[16, 7], head_dropout=0.25), 5, 4),
    )
    kinds = [type(m) for m in deep.head]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert deep.head[2].p == 0.25 and [deep.head[0].out_features, deep.head[3].out_features] == [16, 7]
    # the head is built last: backbone, quantum weights and fusion start from the same values
    for name, value in plain.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(value, deep.state_dict()[name]), name


def test_hidden_head_computes_relu_layers_in_eval_mode():
    head = make_head(4, 3, (5,), dropout=0.5).double().eval()
    first, last = head[0], head[3]
    f = torch.randn(6, 4, dtype=torch.float64)
    expected = torch.clamp(f @ first.weight.T + first.bias, min=0) @ last.weight.T + last.bias
    torch.testing.assert_close(head(f), expected, rtol=1e-12, atol=1e-12)
    assert len(make_head(4, 3, (5,), dropout=0.0)) == 3  # no Dropout module without dropout


@pytest.mark.parametrize("changes", [{"head": [0]}, {"head": "128"}, {"head": [True]}, {"head_dropout": 1.0}])
def test_bad_head_settings_are_config_errors(changes):
    with pytest.raises(ConfigError):
        RunConfig.from_dict(changes)


def test_head_survives_the_toml_round_trip(tmp_path):
    config = RunConfig(head=[128], head_dropout=0.2)
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert RunConfig.from_toml(path) == config
