"""Classical baselines and the search baselines (BO, CMA-ES) of Table I."""

from __future__ import annotations

import json
import math
import pathlib

import pytest
import torch

from hqf.errors import ConfigError, RunFailedError
from hqf.plugins.baselines.logistic import LogisticRegression
from hqf.plugins.baselines.surrogate import SurrogateLayer, surrogate_shape
from hqf.registry.contracts import Baseline, BaselineInputs
from hqf.registry.loader import registry
from hqf.registry.make import make_ansatz, make_encoder
from hqf.studies.search import BOUNDS, run_search


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_baselines_are_registered():
    names = registry().names("baseline")
    assert {"logistic", "classical-surrogate"} <= set(names)


def _sizes(in_features: int, n_classes: int) -> BaselineInputs:
    return BaselineInputs(in_features, n_classes, None, None, None, 0, "angle", {}, None, None)


def test_logistic_regression_is_one_linear_map():
    model = LogisticRegression().build(_sizes(5, 3))
    assert _count(model) == 5 * 3 + 3 and model(torch.zeros(2, 5)).shape == (2, 3)
    with pytest.raises(ValueError, match="n_classes >= 2"):
        LogisticRegression().build(_sizes(5, 1))


class _OldFormBaseline(Baseline):
    """A third party's baseline in the earlier form: ``configure(config)``, then ``build(in_features, n_classes)``."""

    name = "old-form"

    def configure(self, config) -> None:
        self.seed = config.seed

    def build(self, in_features: int, n_classes: int) -> torch.nn.Module:
        return torch.nn.Linear(in_features, n_classes + self.seed)


def test_a_baseline_in_the_earlier_form_still_builds(fake_plugins):
    from hqf.learn.config import RunConfig
    from hqf.learn.training.model import build_model

    fake_plugins(_OldFormBaseline)
    model = build_model(RunConfig(baseline="old-form", seed=2), 5, 3)
    assert model(torch.zeros(1, 5)).shape == (1, 5)


@pytest.mark.parametrize("in_features, qubits, layers", [(16, 8, 6), (4, 4, 2), (32, 3, 2), (7, 5, 3)])
def test_surrogate_has_the_quantum_blocks_parameter_count(in_features, qubits, layers):
    from hqf.quantum.layer import QuantumLayer
    from hqf.registry.make import make_backend

    gen = torch.Generator().manual_seed(0)
    quantum = QuantumLayer(
        make_encoder("angle", in_features, qubits), make_ansatz(f"hea{qubits}x{layers}"), make_backend("torch")
    )
    ansatz_weights = quantum.weights.numel()
    surrogate = SurrogateLayer(make_encoder("angle", in_features, qubits), ansatz_weights, quantum.out_features, gen)
    assert _count(surrogate) == _count(quantum)
    out = surrogate(torch.randn(6, in_features))
    assert out.shape == (6, quantum.out_features) and bool((out.abs() <= 1).all())
    out.sum().backward()  # every parameter is used
    assert all(p.grad is not None for p in surrogate.parameters())


def test_surrogate_shape_uses_every_parameter():
    for n_w in range(20, 200):
        hidden, biases, gains = surrogate_shape(n_w, 8, 8)
        assert hidden * (8 + 1 + 8) + biases + gains == n_w and biases <= 8 and gains <= 8
    with pytest.raises(ValueError, match="cannot hold one hidden unit"):
        surrogate_shape(5, 8, 8)


def _fake_trainer(log: list):
    """A 'training run' whose validation loss is a known bowl in (log lr, log wd)."""

    def train(config: dict, directory: pathlib.Path) -> dict:
        log.append(config)
        directory.mkdir(parents=True)
        loss = (math.log10(config["lr"]) + 2.5) ** 2 + 0.1 * (math.log10(config["weight_decay"]) + 4) ** 2
        metrics = {"val_loss": loss, "accuracy": 1 - loss / 10, "steps": 40}
        (directory / "metrics.json").write_text(json.dumps(metrics))
        (directory / "curves.csv").write_text("step,loss\n1,0.5\n")
        return metrics

    return train


@pytest.mark.parametrize("method", ["bo", "es"])
def test_search_spends_the_same_budget_with_the_same_initialization(tmp_path, method):
    log: list = []
    metrics = run_search({"seed": 3, "epochs": 2}, tmp_path / "run", method, trials=6, train=_fake_trainer(log))
    assert len(log) == 6  # the same number of trials for both searches
    assert all(c["seed"] == 3 and c["epochs"] == 2 for c in log)  # same seed (initialization), same budget
    for c in log:
        assert BOUNDS["lr"][0] - 1e-9 <= math.log10(c["lr"]) <= BOUNDS["lr"][1] + 1e-9
    trials = json.loads((tmp_path / "run" / "search.json").read_text())["trials"]
    best = min(trials, key=lambda t: t["score"])
    assert metrics["search_selected_trial"] == best["trial"] and metrics["search_total_steps"] == 6 * 40
    assert metrics["val_loss"] == pytest.approx(best["score"])
    assert (tmp_path / "run" / "curves.csv").exists()  # the selected trial's run directory is the result
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["search_method"] == method


@pytest.mark.parametrize("method", ["bo", "es"])
def test_a_diverged_trial_scores_worst_and_the_search_goes_on(tmp_path, method):
    log: list = []
    fine = _fake_trainer(log)

    def train(config: dict, directory: pathlib.Path) -> dict:
        if len(log) == 0:  # the first trial's loss became NaN: its run failed
            log.append(config)
            directory.mkdir(parents=True)
            raise RunFailedError(str(directory), "the loss became non-finite at iteration 3")
        return fine(config, directory)

    metrics = run_search({"seed": 3}, tmp_path / "run", method, trials=4, train=train)
    trials = json.loads((tmp_path / "run" / "search.json").read_text())["trials"]
    assert len(log) == 4 and trials[0]["score"] == math.inf and metrics["search_selected_trial"] != 0


def test_a_search_whose_every_trial_failed_fails(tmp_path):
    def train(config: dict, directory: pathlib.Path) -> dict:
        directory.mkdir(parents=True)
        raise RunFailedError(str(directory), "the loss became non-finite")

    with pytest.raises(RunFailedError, match="every one of the 3 search trials failed"):
        run_search({"seed": 0}, tmp_path / "run", "bo", trials=3, train=train)


def test_search_validates_its_options(tmp_path):
    with pytest.raises(ConfigError, match="'search' must be one of"):
        run_search({}, tmp_path, "grid")
    with pytest.raises(ConfigError, match="'trials' must be >= 2"):
        run_search({}, tmp_path, "bo", trials=1)


def test_surrogate_model_matches_the_hybrids_parameter_count_and_shape():
    from hqf.learn.experiment import RunConfig
    from hqf.learn.training.model import build_model, count_parameters

    config = RunConfig(ansatz="hea4x2", latent=8, hidden=16, seed=2)
    hybrid = build_model(config, 12, 3)
    surrogate = build_model(config.replace(baseline="classical-surrogate"), 12, 3)
    assert count_parameters(surrogate) == count_parameters(hybrid)
    assert isinstance(surrogate.quantum, SurrogateLayer) and type(surrogate.fusion) is type(hybrid.fusion)
    # the same seed gives the same backbone initialization outside the replaced block
    torch.testing.assert_close(surrogate.backbone.net[0].weight, hybrid.backbone.net[0].weight)
    features, logits = surrogate.forward_features(torch.randn(5, 12))
    assert features.shape == (5, 8) and logits.shape == (5, 3)
