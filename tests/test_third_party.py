"""A third-party backend package (examples/hqf-numpy-backend) plugs in through its entry point alone.

The package is installed into the test environment if it is not there yet (editable, no dependencies,
offline). ``hqf`` runs in subprocesses so that entry points are read afresh.
"""

import importlib.metadata
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hqf-numpy-backend"


def _hqf(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-c", "from hqf.cli import main; main()", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


@pytest.fixture(scope="module")
def installed():
    try:
        importlib.metadata.distribution("hqf-numpy-backend")
    except importlib.metadata.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "-e", str(EXAMPLE)],
            check=True, capture_output=True, text=True, timeout=300,
        )
    dist = importlib.metadata.distribution("hqf-numpy-backend")
    points = [ep for ep in dist.entry_points if ep.group == "hqf"]
    assert [(ep.name, ep.value) for ep in points] == [("numpy", "hqf_numpy_backend")]


def test_hqf_list_finds_the_numpy_backend(installed):
    result = _hqf("list")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("numpy "))
    assert "[hqf-numpy-backend]" in line and "available" in line


def test_hqf_check_passes_the_numpy_backend(installed):
    result = _hqf("check", "--backend", "numpy", "--examples", "10", "--max-qubits", "6")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed, 0 failed, 1 skipped" in result.stdout
    assert "skipped native-gradient: declares no native gradient" in result.stdout


def test_hqf_run_trains_with_the_numpy_backend(installed, tmp_path):
    out = tmp_path / "run"
    result = _hqf("run", "--backend", "numpy", "--ansatz", "hea2x1", "--samples", "300", "--epochs", "1",
                  "--batch-size", "32", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] >= 1 and metrics["epochs_completed"] == 1
    assert 'backend = "numpy"' in (out / "config.toml").read_text()


def test_the_example_is_registered_only_through_its_entry_point():
    # nothing in hqf itself names the example's module or backend
    for path in [*(ROOT / "core").rglob("*.py"), *(ROOT / "backends").rglob("*.py"), ROOT / "pyproject.toml"]:
        assert "hqf_numpy_backend" not in path.read_text(), path
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert '[project.entry-points.hqf]\nnumpy = "hqf_numpy_backend"' in text
