"""Training and evaluating under a noise model from the configuration, the CLI and Python (issue 28)."""

from __future__ import annotations

import csv
import json
import os
import signal
import time

import pytest
import torch
from click.testing import CliRunner

from hqf.backends import density_torch
from hqf.backends.trajectories import TrajectoryBackend
from hqf.cli import main
from hqf.errors import ConfigError, RunInterrupted
from hqf.learn.config import RunConfig
from hqf.learn.evaluation import TIMING_KEYS
from hqf.learn.experiment import run
from hqf.learn.process import pace
from hqf.learn.rundir.saved import load, run_dataset
from hqf.learn.training.model import build_model
from hqf.learn.training.run_backend import (
    data_parallel_rank,
    evaluation_backend,
    make_run_backend,
    training_backend,
)
from hqf.learn.training.step import train_step
from hqf.learn.training.terms import build_terms
from hqf.quantum.circuit import Circuit, Operation, PauliWord

MODEL = "depolarizing=0.02,amplitude_damping=0.01,readout=0.03"
#: the text form of MODEL (NoiseModel.__str__: readout in both directions)
NORMALISED = "depolarizing=0.02,amplitude_damping=0.01,readout=0.03:0.03"
#: a run of seconds: 4 qubits, 2 epochs of 7 iterations, one regularizer, few evaluation rows
TINY = dict(
    dataset="digits-4x4",
    samples=300,
    epochs=2,
    batch_size=32,
    ansatz="hea4x2",
    latent=4,
    hidden=8,
    vai_samples=32,
    latency_repeats=2,
    regularizers=["stability"],
    checkpoint_every=3,
)
#: the same through `hqf run --quick`
TINY_CLI = [
    "--quick",
    "--quiet",
    "--dataset",
    "digits-4x4",
    "--samples",
    "300",
    "--ansatz",
    "hea4x2",
    "--regularizer",
    "stability",
    "--set",
    "latent=4",
    "--set",
    "hidden=8",
    "--set",
    "vai_samples=32",
    "--set",
    "max_iterations=10",
]


def _non_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def _hqf(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


# -- configuration forms -----------------------------------------------------------------------------------------


def test_noise_as_text_as_a_table_and_from_toml_are_one_value(tmp_path):
    table = {"depolarizing": 0.02, "amplitude_damping": 0.01, "readout": 0.03}
    assert RunConfig(noise=MODEL).noise == RunConfig(noise=table).noise == NORMALISED
    path = tmp_path / "noisy.toml"
    path.write_text("samples = 300\n\n[noise]\ndepolarizing = 0.02\namplitude_damping = 0.01\nreadout = 0.03\n")
    config = RunConfig.from_toml(path)
    assert config.noise == NORMALISED
    path.write_text(config.to_toml())
    assert RunConfig.from_toml(path) == config
    several = RunConfig(noise={"pauli": [0.01, 0, 0.02], "readout": [0.01, 0.05]}).noise
    assert several == "pauli=0.01:0.0:0.02,readout=0.01:0.05"
    assert RunConfig(noise="none").noise == RunConfig().noise == ""


def test_depolarizing_stays_a_shorthand_and_old_configurations_load(tmp_path):
    assert RunConfig(depolarizing=0.02).noise_text == "depolarizing=0.02"
    assert RunConfig().noise_text == ""
    old = tmp_path / "old.toml"  # a run directory's config.toml written before the noise key existed
    old.write_text('backend = "torch"\ndepolarizing = 0.0\nseed = 3\n')
    assert RunConfig.from_toml(old) == RunConfig(seed=3)
    with pytest.raises(ConfigError, match="either 'noise' or its shorthand 'depolarizing'"):
        RunConfig.from_dict({"noise": "depolarizing=0.02", "depolarizing": 0.02})


@pytest.mark.parametrize(("noise", "words"), [
    ("depolarising=0.02", ["'depolarising=0.02'", "accepted: depolarizing, bit_flip", "did you mean 'depolarizing'"]),
    ("amplitude_damping=1.5", ["'amplitude_damping=1.5'", "[0, 1]"]),
    ("pauli=0.1", ["expected pauli=px:py:pz"]),
])  # fmt: skip
def test_bad_noise_text_is_one_line_naming_the_item_before_any_work(tmp_path, noise, words):
    out = tmp_path / "never"
    result = _hqf("run", "--quiet", "--noise", noise, "--out", out)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and all(w in result.output for w in words), result.output
    assert not out.exists()


def test_a_backend_that_cannot_run_the_noise_is_refused_in_one_line(tmp_path):
    out = tmp_path / "x"
    result = _hqf("run", "--quiet", "--backend", "pennylane", "--noise", "amplitude_damping=0.05", "--out", out)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "'pennylane' does not run noise amplitude_damping" in result.output and "torch-dm" in result.output
    assert not out.exists()


def test_the_default_backend_trains_on_trajectories_and_evaluates_exactly():
    noisy = RunConfig(noise="depolarizing=0.02")
    assert (training_backend(noisy), evaluation_backend(noisy)) == ("trajectories", "ptm")
    assert training_backend(RunConfig(depolarizing=0.02)) == "trajectories"
    assert evaluation_backend(RunConfig()) == "torch"
    dm = RunConfig(noise="depolarizing=0.02", backend="torch-dm")
    assert (training_backend(dm), evaluation_backend(dm)) == ("torch-dm", "torch-dm")


# -- runs ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """``hqf run --quick`` (tiny) without noise, with depolarizing 0.02 and with amplitude damping 0.05."""
    folder = tmp_path_factory.mktemp("noise-runs")
    runs = {}
    models = (("noiseless", None), ("depolarizing", "depolarizing=0.02"), ("damping", "amplitude_damping=0.05"))
    for name, noise in models:
        result = _hqf("run", *TINY_CLI, *(["--noise", noise] if noise else []), "--out", folder / name)
        assert result.exit_code == 0, result.output
        runs[name] = (result.output, json.loads((folder / name / "metrics.json").read_text()), folder / name)
    return runs


def test_quick_runs_under_noise_finish_and_differ_from_the_noiseless_run(quick_runs):
    _, clean, _ = quick_runs["noiseless"]
    for name in ("depolarizing", "damping"):
        _, metrics, _ = quick_runs[name]
        assert metrics["nll"] != clean["nll"] and metrics["val_loss"] != clean["val_loss"], name
    assert quick_runs["depolarizing"][1]["nll"] != quick_runs["damping"][1]["nll"]


def test_a_noisy_run_states_its_noise_and_backends_in_its_table_and_metrics(quick_runs):
    output, metrics, folder = quick_runs["damping"]
    assert (metrics["noise"], metrics["train_backend"], metrics["eval_backend"]) == (
        "amplitude_damping=0.05",
        "trajectories",
        "ptm",
    )
    assert "noise" in output and "amplitude_damping=0.05 (trained on trajectories, evaluated on ptm)" in output
    assert 'noise = "amplitude_damping=0.05"' in (folder / "config.toml").read_text()
    assert json.loads((folder / "meta.json").read_text())["environment"]["backend"] == "trajectories"
    _, clean, _ = quick_runs["noiseless"]
    assert (clean["noise"], clean["train_backend"], clean["eval_backend"]) == ("none", "torch", "torch")


def test_a_noisy_runs_model_loads_on_its_evaluation_backend_and_gives_its_metrics(quick_runs):
    _, metrics, folder = quick_runs["depolarizing"]
    trained = load(folder)
    assert trained.model.quantum.backend.name == "ptm"
    data = run_dataset(trained)
    probs = trained.predict_proba(data.test.x, scaled=True)
    assert float((probs.argmax(axis=1) == data.test.y).mean()) == pytest.approx(metrics["accuracy"], abs=1e-12)


def test_load_takes_any_noise_model_from_python(quick_runs):
    _, _, folder = quick_runs["noiseless"]
    x = run_dataset(load(folder)).test.x[:8]
    clean = load(folder).predict_proba(x, scaled=True)
    damped = load(folder, noise="amplitude_damping=0.05")
    assert damped.model.quantum.backend.name == "ptm"
    exact = load(folder, noise={"amplitude_damping": 0.05}, backend="torch-dm").predict_proba(x, scaled=True)
    assert damped.predict_proba(x, scaled=True) == pytest.approx(exact, abs=1e-10)
    assert abs(exact - clean).max() > 1e-6
    with pytest.raises(ConfigError, match="not both"):
        load(folder, noise="depolarizing=0.01", depolarizing=0.01)


def test_training_on_exact_density_matrices_when_asked(tmp_path):
    config = RunConfig(**{**TINY, "max_iterations": 4}, noise="phase_damping=0.1", backend="torch-dm")
    metrics = run(config, tmp_path / "dm")
    assert (metrics["noise"], metrics["train_backend"], metrics["eval_backend"]) == (
        "phase_damping=0.1",
        "torch-dm",
        "torch-dm",
    )


def test_a_trajectory_run_stopped_by_sigterm_resumes_to_the_same_result_bit_for_bit(tmp_path):
    config = RunConfig(**TINY, noise="depolarizing=0.05,amplitude_damping=0.05")
    whole = run(config, tmp_path / "whole")
    assert whole["train_backend"] == "trajectories"

    def progress(step, total, row):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(RunInterrupted):
        run(config, tmp_path / "stopped", progress=progress)
    assert (tmp_path / "stopped" / "checkpoint.pt").exists()
    resumed = run(config, tmp_path / "stopped", resume=True)
    assert _non_timing(resumed) == _non_timing(whole)
    assert _curves(tmp_path / "whole") == _curves(tmp_path / "stopped")


def _curves(folder) -> list[dict]:
    with open(folder / "curves.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(handle)]


# -- common random numbers within a training step; data-parallel ranks draw apart ---------------------------------


class KeyRecorder(TrajectoryBackend):
    """Trajectories that record the key of every call."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.seen: list[int | None] = []

    def expval_broadcast(self, circuit, angles, shared):
        self.seen.append(self.key)
        return super().expval_broadcast(circuit, angles, shared)


def test_every_backend_call_of_a_training_step_draws_from_its_iteration():
    config = RunConfig(**{**TINY, "regularizers": ["curvature"]}, noise="depolarizing=0.05")
    backend = KeyRecorder(noise="depolarizing=0.05", seed=0)
    model = build_model(config, 16, 4, backend=backend)
    terms = build_terms(config, model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01)
    x, y = torch.rand(32, 16, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 4
    result = train_step(model, optimizer, params, terms, x, y, 1)
    assert list(result.penalties) == ["curv"] and len(backend.seen) > 2  # the forward and the probe's calls
    assert set(backend.seen) == {1} and backend.key is None
    backend.seen.clear()
    train_step(model, optimizer, params, terms, x, y, 2)
    assert set(backend.seen) == {2} and backend.key is None


def test_data_parallel_ranks_seed_their_trajectories_apart(monkeypatch):
    assert data_parallel_rank({"RANK": "1", "WORLD_SIZE": "2"}) == 1
    assert data_parallel_rank({"RANK": "0", "WORLD_SIZE": "1"}) == 0 and data_parallel_rank({}) == 0
    config = RunConfig(noise="depolarizing=0.02", seed=5)
    assert make_run_backend(config).key_seed == 5
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert make_run_backend(config).key_seed == 8


# -- the slow-run probe under noise ----------------------------------------------------------------------------------


def test_the_slow_run_probe_leaves_a_trajectory_runs_draws_alone_and_names_what_trains(monkeypatch):
    config = RunConfig(**TINY, noise="depolarizing=0.05")
    model = build_model(config, 16, 4)
    backend = model.quantum.backend
    assert backend.capabilities.estimates
    state = backend.rng_state()
    monkeypatch.setattr(pace, "SLOW_RUN_S", 0.0)
    text = pace.slow_run_warning(config, model, torch.rand(32, 16, generator=torch.Generator().manual_seed(1)), 10)
    assert torch.equal(backend.rng_state(), state)  # timed on a fresh instance, not the run's generator
    assert "(backend trajectories," in text
    chosen = pace.timed(config, model.quantum, pace.data_angles(model, torch.rand(4, 16)), "auto")
    assert (chosen.backend, chosen.estimates) == ("trajectories", True)


def test_under_noise_the_probe_names_only_backends_that_run_the_noise():
    dm = RunConfig(**TINY, noise="depolarizing=0.05", backend="torch-dm")
    model = build_model(dm, 16, 4)
    angles = pace.data_angles(model, torch.rand(8, 16, generator=torch.Generator().manual_seed(2)))
    found = pace.alternatives(dm, model.quantum, angles, time.perf_counter())
    default = [p for p in found if p.options == "--backend torch"]
    assert [(p.backend, p.estimates) for p in default] == [("trajectories", True)]
    assert {p.backend for p in found} <= {"torch-dm", "trajectories"}
    text = pace.describe(pace.Pace("torch-dm", "backprop", 10.0, probed_rows=8), 32, 100, default)
    assert "trains on trajectories: estimates from sampled noise branches" in text


# -- torch-dm's memory: a batch that cannot fit is one line before any work ------------------------------------------


def test_torch_dm_refuses_a_differentiable_batch_beyond_the_memory_available(monkeypatch, tmp_path):
    assert density_torch.training_bytes(8, 152, 256) == int(256 * (2.25 * 152 + 4) * 16 * 4**8)
    monkeypatch.setattr(density_torch, "available_bytes", lambda device: 2**20)
    backend = density_torch.TorchDensityMatrixBackend(noise="depolarizing=0.02")
    circuit = Circuit(4, [Operation("RY", w, w) for w in range(4)], [PauliWord.z(0)])
    angles = torch.zeros(64, 4, dtype=torch.float64)
    assert backend.expval(circuit, angles).shape == (64, 1)  # not differentiable: nothing kept
    with pytest.raises(ConfigError, match=r"torch-dm: a differentiable batch of 64 rows .* use at most 19 rows"):
        backend.expval(circuit, angles.requires_grad_(True))
    result = _hqf("run", *TINY_CLI, "--backend", "torch-dm", "--noise", "depolarizing=0.02", "--out", tmp_path / "r")
    assert result.exit_code != 0 and "torch-dm: a differentiable batch of" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert json.loads((tmp_path / "r" / "status.json").read_text())["status"] == "failed"
