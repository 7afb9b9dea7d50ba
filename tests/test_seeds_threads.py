"""meta.json records the thread counts a run trained with: torch's reductions (a plain sum, the oneDNN
convolution's weight gradient) are split across threads, so a run's numbers depend on them (docs/seeds.md)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hqf.cli import main

TINY = [
    "--samples", "300", "--epochs", "1", "--ansatz", "hea2x2", "--batch-size", "64",
    "--set", "hidden=8", "--set", "latent=4", "--set", "vai_samples=64", "--set", "latency_repeats=1",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    import torch  # noqa: PLC0415

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_meta_json_records_torch_and_simulator_threads(tmp_path, threads):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--quiet", *TINY, "--set", f"threads={threads}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    environment = json.loads((out / "meta.json").read_text())["environment"]
    assert environment["torch_threads"] == threads
    assert environment["backend_threads"] == threads
