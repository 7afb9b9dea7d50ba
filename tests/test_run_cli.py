import csv
import json
import math

import attrs
import pytest
from click.testing import CliRunner

import hqf.registry.loader
from hqf.cli import main
from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.evaluation import TIMING_KEYS, metric_keys
from hqf.learn.experiment import run
from hqf.quantum.interfaces import Availability, Backend

TINY = [
    "--samples", "300", "--epochs", "2", "--ansatz", "hea2x2", "--batch-size", "64",
    "--set", "hidden=8", "--set", "latent=4", "--set", "vai_samples=64", "--set", "latency_repeats=2",
]  # fmt: skip


def _invoke(*args):
    return CliRunner().invoke(main, ["run", "--quiet", *args])


def test_run_end_to_end_writes_a_complete_run_directory(tmp_path):
    out = tmp_path / "run1"
    result = _invoke(*TINY, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "accuracy (test)" in result.output and "iterations to ε=0.001" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "config.toml", "convergence.png", "curves.csv", "epochs.csv", "meta.json", "metrics.json", "model.safetensors",
    ]  # fmt: skip
    config = RunConfig.from_toml(out / "config.toml")
    assert config.samples == 300 and config.ansatz == "hea2x2" and config.latent == 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == set(metric_keys())
    assert {"gate_mean", "kernel_circuits_gram", "support_vectors"} <= set(metrics)  # declared by gated and qsvm
    assert 0 <= metrics["accuracy"] <= 1 and metrics["steps"] == 8 and metrics["stop_reason"] == "epochs"
    assert metrics["iterations_to_eps"] is None and "never <= eps=0.001" in metrics["iterations_to_eps_reason"]
    assert len(metrics["reliability"]["count"]) == 15
    with open(out / "curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, 9)) and float(rows[0]["curv"]) > 0 and rows[1]["curv"] == ""
    with open(out / "epochs.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2]
    meta = json.loads((out / "meta.json").read_text())
    assert (
        meta["environment"]["torch"]
        and meta["environment"]["seed"] == 0
        and meta["data"]["n_train"] + meta["data"]["n_val"] + meta["data"]["n_test"] == 300
    )
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(p.name.startswith(".run1.tmp") for p in tmp_path.iterdir())


def test_same_seed_same_metrics(tmp_path):
    config = RunConfig.from_dict(dict(
        samples=300, epochs=1, ansatz="hea2x2", batch_size=64, hidden=8, latent=4, vai_samples=64, latency_repeats=1,
    ))  # fmt: skip
    a, b = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMING_KEYS}  # noqa: E731
    assert strip(a) == strip(b) and a["steps"] == 4


def test_config_file_cli_overrides_and_unknown_keys(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('samples = 300\nepochs = 5\nansatz = "hea2x2"\nregularizer = ["stability"]\nbatch-size = 64\n')
    from hqf.cli.run_cmd import resolve_config

    config = resolve_config(str(good), {"epochs": 1}, (), ("latent=4", "encoder_options={rotation = 'RX'}"))
    assert (config.samples, config.epochs, config.batch_size, config.latent) == (300, 1, 64, 4)
    assert config.regularizers == ("stability",) and config.encoder_options == {"rotation": "RX"}
    bad = tmp_path / "bad.toml"
    bad.write_text("epochz = 3\n")
    result = _invoke("--config", str(bad), "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "unknown key 'epochz'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()
    result = _invoke("--epochs", "0", "--out", str(tmp_path / "y"))
    assert result.exit_code == 2 and "'epochs' must be an integer >= 1 (got 0)" in result.output
    with pytest.raises(ConfigError, match="'none' cannot be combined"):
        RunConfig(regularizers=["none", "stability"])
    assert RunConfig(regularizers=["none"]).regularizers == ()


def test_toml_round_trip_of_every_key(tmp_path):
    config = RunConfig(
        samples=None,
        curvature_batch=None,
        max_iterations=7,
        encoder_options={"rotation": "RX"},
        regularizer_options={"curvature": {"probes": 2}},
        label_column="3",
        imbalance=2.5,
    )
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml())
    assert RunConfig.from_toml(path) == config
    assert 'samples = "all"' in config.to_toml()


def test_flat_keys_and_cli_options_set_plugin_options_over_a_file(tmp_path):
    from hqf.cli.run_cmd import resolve_config

    path = tmp_path / "c.toml"
    path.write_text("lambda_stab = 0.2\n[regularizer_options.curvature]\nevery = 4\nprobes = 2\n")
    sets = ("curvature_every=5", 'regularizer_options={curvature={method="autograd"}}')
    config = resolve_config(str(path), {"gamma_curv": 0.5}, (), sets)
    assert config.regularizer_options["curvature"] == {
        **RunConfig().regularizer_options["curvature"],
        "every": 5,
        "probes": 2,
        "method": "autograd",
        "weight": 0.5,
    }
    assert config.value("lambda_stab") == 0.2
    with pytest.raises(ConfigError, match="run configuration: unknown key 'curvature_evry'"):
        resolve_config(None, {}, (), ("curvature_evry=5",))


def test_refuses_a_non_empty_output_directory(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = _invoke(*TINY, "--out", str(out))
    assert result.exit_code == 2 and "exists and is not empty" in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_device_without_cuda_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = _invoke("--device", "cuda", "--fusion", "classical-only", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "torch sees no CUDA GPU" in result.output and "Traceback" not in result.output


def test_unknown_backend_lists_the_available_ones(tmp_path):
    result = _invoke("--backend", "warp-drive", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "unknown backend 'warp-drive'; registered:" in lines[0] and "torch" in lines[0]


class _GhostBackend(Backend):
    name = "ghost"

    @classmethod
    def availability(cls) -> Availability:
        return Availability(False, "needs a ghost GPU (pip install 'hqf[ghost]' on a machine with one)")

    def expval(self, circuit, angles):  # pragma: no cover - never reached
        raise AssertionError("an unavailable backend must not run")


@pytest.fixture
def ghost_registry(fake_plugins):
    """A fresh registry holding hqf's own plugins plus an unavailable fake backend."""
    fake_plugins(_GhostBackend)


def test_unavailable_backend_stops_before_any_work(tmp_path, ghost_registry, monkeypatch):
    import hqf.learn.run_data

    def no_data(*args, **kwargs):
        raise AssertionError("data must not be loaded for an unavailable backend")

    monkeypatch.setattr(hqf.learn.run_data, "load_dataset", no_data)
    result = _invoke("--backend", "ghost", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [
        "Error: backend 'ghost' is unavailable: needs a ghost GPU (pip install 'hqf[ghost]' on a machine with one)"
    ]
    assert not (tmp_path / "r").exists()
    # the programmatic API stops the same way
    with pytest.raises(hqf.errors.BackendUnavailableError):
        run(RunConfig(backend="ghost"), tmp_path / "api")
    # a classical-only run does not need the backend at all
    assert hqf.registry.loader.registry().get("backend", "ghost").availability().ok is False


def test_no_regularizer_and_classical_only(tmp_path):
    result = _invoke(*TINY, "--fusion", "classical-only", "--regularizer", "none", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["n_quantum_parameters"] == 0 and metrics["gate_mean"] is None
    assert RunConfig.from_toml(tmp_path / "r" / "config.toml").regularizers == ()


def test_help_states_the_real_defaults():
    import re

    from hqf.cli.run_cmd import OPTION_KEYS, run_command

    defaults = RunConfig()
    stated = {}
    for param in run_command.params:
        match = re.search(r"\[default: ([^\]]+)\]", param.help or "")
        if match and param.name in OPTION_KEYS:
            stated[OPTION_KEYS[param.name]] = match.group(1)
    assert len(stated) == len(OPTION_KEYS)
    for key, text in stated.items():
        value = defaults.value(key)  # lambda_stab, gamma_curv: flat keys of the regularizers' options
        if key == "noise":  # the noiseless model is "" in the configuration, "none" in words
            assert (text, value) == ("none", ""), (key, text, value)
            continue
        assert text == str(value) or float(text) == value, (key, text, value)
    assert stated.keys() >= {"backend", "ansatz", "samples", "epochs", "lr"}
    assert "stability, curvature" in next(p.help for p in run_command.params if p.name == "regularizers")


class _GpuOnlyBackend(Backend):
    """Declares CUDA only (like cuquantum); simulates with the torch backend so the test runs anywhere."""

    name = "gpu-only"
    capabilities = attrs.evolve(Backend.capabilities, devices={"cuda"})

    def __init__(self, *, dtype="complex128", device="cuda"):
        super().__init__(dtype=dtype, device=device)

    def expval(self, circuit, angles):
        from hqf.backends.torch import TorchBackend

        return TorchBackend().expval(circuit, angles)


def test_a_gpu_only_backend_keeps_its_device_while_the_model_stays_on_the_cpu(tmp_path, fake_plugins):
    fake_plugins(_GpuOnlyBackend)
    from hqf.learn.training.model import make_run_backend

    assert make_run_backend(RunConfig(backend="gpu-only")).device.type == "cuda"
    assert make_run_backend(RunConfig(backend="torch")).device.type == "cpu"
    result = _invoke(*TINY, "--backend", "gpu-only", "--regularizer", "none", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output


class _CountedBackend(Backend):
    """The torch backend's results, counting how often it is built."""

    name = "counted"
    built = 0

    def __init__(self, *, dtype="complex128", device="cpu"):
        super().__init__(dtype=dtype, device=device)
        type(self).built += 1

    def expval(self, circuit, angles):
        from hqf.backends.torch import TorchBackend

        return TorchBackend().expval(circuit, angles)


def test_one_hqf_run_builds_its_backend_once(tmp_path, monkeypatch, fake_plugins):
    fake_plugins(_CountedBackend)
    monkeypatch.setattr(_CountedBackend, "built", 0)
    result = _invoke(*TINY, "--backend", "counted", "--regularizer", "none", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert _CountedBackend.built == 1


def test_run_refuses_the_preflight_of_another_configuration(tmp_path):
    from hqf.learn.experiment import preflight

    checked = preflight(RunConfig(fusion="classical-only"))
    assert checked.backend is None
    with pytest.raises(ValueError, match="another configuration"):
        run(RunConfig(fusion="classical-only", seed=1), tmp_path / "r", checked=checked)


@pytest.mark.parametrize("backend, batch_size", [("pennylane", 32), ("qiskit-aer", 16)])
def test_hqf_run_trains_the_default_model_on_other_backends(tmp_path, backend, batch_size):
    """The default model (gated fusion, stability and curvature terms) end to end on each simulator."""
    if not hqf.registry.loader.registry().get("backend", backend).availability().ok:
        pytest.skip(f"{backend} backend unavailable here")
    out = tmp_path / "run"
    result = _invoke(
        "--backend",
        backend,
        "--ansatz",
        "hea2x1",
        "--samples",
        "300",
        "--epochs",
        "1",
        "--batch-size",
        str(batch_size),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] >= 1 and math.isfinite(metrics["val_loss"])
    assert f'backend = "{backend}"' in (out / "config.toml").read_text()
