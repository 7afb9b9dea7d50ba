"""``hqf evaluate``: a finished run's model on its own test split, on a noisy backend."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hqf.cli import main
from hqf.learn.config import RunConfig
from hqf.learn.experiment import run

TINY = dict(dataset="digits-4x4", samples=300, epochs=2, batch_size=32, ansatz="hea4x2", latent=4, hidden=8,
            vai_samples=32, latency_repeats=2, regularizers=["stability"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate") / "run"
    return folder, run(RunConfig(**TINY), folder)


def _evaluate(*args):
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    return result, {line.split()[0]: float(line.split()[1]) for line in result.output.splitlines()[:4]} if result.exit_code == 0 else {}


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
    assert saved["depolarizing"] == 0.05 and saved["backend"] == "torch-dm" and saved["nll"] == pytest.approx(noisy["nll"], rel=1e-3)
    again = CliRunner().invoke(main, ["evaluate", str(folder), "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output and out.read_text() == json.dumps(saved, indent=2)


def test_gate_noise_on_a_noiseless_backend_is_one_line(finished):
    folder, _ = finished
    result = CliRunner().invoke(main, ["evaluate", str(folder), "--depolarizing", "0.02"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


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
