"""``hqf evaluate``: a finished run's model on its own test split, on a noisy backend, under any noise model."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from hqf.cli import main
from hqf.learn.config import RunConfig
from hqf.learn.experiment import run
from hqf.learn.rundir.saved import load, run_dataset
from hqf.quantum.mitigation import MitigatedBackend

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
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate") / "run"
    return folder, run(RunConfig(**TINY), folder)


def _evaluate(*args):
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    return result, {
        line.split()[0]: float(line.split()[1]) for line in result.output.splitlines()[:4]
    } if result.exit_code == 0 else {}


def test_the_runs_own_backend_gives_the_runs_metrics(finished):
    folder, metrics = finished
    result, got = _evaluate(folder)
    assert result.exit_code == 0, result.output
    assert got["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-4)
    assert got["nll"] == pytest.approx(metrics["nll"], rel=1e-3)


def test_the_exact_density_matrix_without_noise_agrees_and_noise_changes_the_numbers(finished, tmp_path):
    folder, metrics = finished
    _, exact = _evaluate(folder, "--backend", "torch-dm", "--depolarizing", 0)
    assert exact["nll"] == pytest.approx(metrics["nll"], rel=1e-3)
    out = tmp_path / "noisy.json"
    result, noisy = _evaluate(folder, "--backend", "torch-dm", "--depolarizing", 0.05, "--out", out)
    assert result.exit_code == 0, result.output
    assert noisy["nll"] != pytest.approx(exact["nll"], rel=1e-6)
    saved = json.loads(out.read_text())
    assert (
        saved["depolarizing"] == 0.05
        and saved["backend"] == "torch-dm"
        and saved["nll"] == pytest.approx(noisy["nll"], rel=1e-3)
    )
    again = CliRunner().invoke(main, ["evaluate", str(folder), "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output and out.read_text() == json.dumps(saved, indent=2)


def test_gate_noise_on_a_noiseless_backend_is_one_line(finished):
    folder, _ = finished
    result = CliRunner().invoke(main, ["evaluate", str(folder), "--backend", "torch", "--depolarizing", "0.02"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "'torch' does not run noise depolarizing" in result.output


def test_any_noise_model_runs_on_an_exact_backend_and_is_written_into_the_json(finished, tmp_path):
    folder, _ = finished
    model = "depolarizing=0.02,amplitude_damping=0.01,readout=0.03"
    out = tmp_path / "noisy.json"
    result, noisy = _evaluate(folder, "--noise", model, "--out", out)
    assert result.exit_code == 0, result.output
    assert "backend ptm, noise depolarizing=0.02,amplitude_damping=0.01,readout=0.03:0.03" in result.output
    saved = json.loads(out.read_text())
    assert (saved["noise"], saved["backend"]) == ("depolarizing=0.02,amplitude_damping=0.01,readout=0.03:0.03", "ptm")
    _, on_dm = _evaluate(folder, "--noise", model, "--backend", "torch-dm")
    assert on_dm["nll"] == pytest.approx(noisy["nll"], rel=1e-3)
    _, shorthand = _evaluate(folder, "--depolarizing", 0.02)
    _, text = _evaluate(folder, "--noise", "depolarizing=0.02")
    assert shorthand == text and text["nll"] != pytest.approx(noisy["nll"], rel=1e-6)


@pytest.mark.parametrize(("args", "words"), [
    (["--noise", "depolarizing=0.02", "--depolarizing", "0.02"], "not both"),
    (["--noise", "damping=0.1"], "accepted: depolarizing"),
])  # fmt: skip
def test_bad_noise_options_are_one_line(finished, args, words):
    folder, _ = finished
    result = CliRunner().invoke(main, ["evaluate", str(folder), *args])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and words in result.output


def test_rows_per_batch_keep_a_density_matrix_batch_small():
    import attrs

    from hqf.cli.evaluate_cmd import BATCH_STATE_BYTES, rows_per_batch
    from hqf.learn.experiment import RunConfig

    config = RunConfig()  # hea8x6 on the state vector: 4 KiB per row
    assert rows_per_batch(config) == 1024
    noisy = attrs.evolve(config, backend="torch-dm", depolarizing=0.02)  # 1 MiB per row
    assert rows_per_batch(noisy) == BATCH_STATE_BYTES // (16 * 4**8) == 16
    assert rows_per_batch(attrs.evolve(config, backend="torch-dm")) == 16  # a mixed-state backend without noise
    assert rows_per_batch(attrs.evolve(config, ansatz="hea4x2", backend="torch-dm")) == 1024


def test_mitigation_moves_the_metrics_back_and_is_written_into_the_json(finished, tmp_path):
    folder, _ = finished
    model = "depolarizing=0.05,readout=0.05"
    saved = {}
    for name, mitigate in [("exact", None), ("noisy", None), ("readout", "readout"), ("both", "zne,readout")]:
        out = tmp_path / f"{name}.json"
        noise = ["--noise", "none", "--backend", "ptm"] if name == "exact" else ["--noise", model]
        result, _ = _evaluate(folder, *noise, *(["--mitigate", mitigate] if mitigate else []), "--out", out)
        assert result.exit_code == 0, result.output
        saved[name] = json.loads(out.read_text())
    assert "backend ptm, noise depolarizing=0.05,readout=0.05:0.05, mitigation zne,readout," in result.output
    assert saved["both"]["backend"] == "ptm" and saved["both"]["mitigation"] == {
        "zne": {"scales": [1, 3, 5], "method": "richardson", "scaling": "folding"},
        "readout": True,
    }
    assert saved["readout"]["mitigation"] == {"zne": None, "readout": True} and saved["noisy"]["mitigation"] == "none"
    nll = {name: metrics["nll"] for name, metrics in saved.items()}
    assert len(set(nll.values())) == 4, nll


def test_a_mitigated_model_reads_its_quantum_outputs_closer_to_the_noiseless_ones(finished):
    folder, _ = finished
    exact = load(folder, backend="ptm", noise="")
    x = run_dataset(exact).test.x[:64]
    reference = quantum_outputs(exact, x)

    def error(noise, mitigate, reduce=torch.mean):
        trained = load(folder, noise=noise, mitigate=mitigate)
        assert isinstance(trained.model.quantum.backend, MitigatedBackend) == (mitigate is not None)
        return float(reduce((quantum_outputs(trained, x) - reference).abs()))

    # readout error only: undone up to the weights' float32 rounding on the values-only path (4e-8 measured)
    assert error("readout=0.05", None, torch.max) > 5e-2 and error("readout=0.05", "readout", torch.max) < 1e-6
    model = "depolarizing=0.01,readout=0.05"
    errors = {mitigate: error(model, mitigate) for mitigate in (None, "readout", "zne", "zne,readout")}
    # measured: 0.164 noisy, 0.128 readout, 0.062 zne, 0.015 both (hea4x2, 64 rows)
    assert errors["zne,readout"] < 0.02 < errors["zne"] < 0.07 < errors["readout"] < 0.14 < errors[None], errors


def quantum_outputs(trained, x) -> torch.Tensor:
    """``H_q`` of ``trained``'s quantum layer on raw features ``x``."""
    seen = []
    hook = trained.model.quantum.register_forward_hook(lambda module, args, output: seen.append(output))
    try:
        trained.predict_proba(x)
    finally:
        hook.remove()
    return torch.cat(seen)


def test_the_classical_surrogate_is_evaluated_under_input_noise_without_a_simulator(tmp_path):
    folder = tmp_path / "surrogate"
    metrics = run(RunConfig(**TINY, baseline="classical-surrogate"), folder)
    result, got = _evaluate(folder, "--input-noise", "0.02", "--out", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    assert 0.0 <= got["accuracy"] <= 1.0 and metrics["accuracy"] is not None
    assert json.loads((tmp_path / "e.json").read_text())["input_noise"] == 0.02
