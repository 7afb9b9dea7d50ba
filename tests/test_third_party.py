"""A third-party backend package (examples/hqf-numpy-backend) plugs in through its entry point alone.

The package is installed (a copy of it, no dependencies, offline) into a temporary folder, never into
the test environment, so later runs do not see an extra backend. ``hqf`` runs in subprocesses with
that folder on ``PYTHONPATH``, so entry points are read afresh and include the example's.
"""

import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hqf-numpy-backend"


def _installed_names() -> set[str]:
    return {dist.metadata["Name"] for dist in importlib.metadata.distributions()}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    """A folder holding the installed example package (its module and its entry points)."""
    before = _installed_names()
    # a build writes into the source folder: build a copy, so the example stays untouched
    source = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("source") / EXAMPLE.name)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            str(target),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (dist,) = importlib.metadata.distributions(name="hqf-numpy-backend", path=[str(target)])
    points = [ep for ep in dist.entry_points if ep.group == "hqf"]
    assert [(ep.name, ep.value) for ep in points] == [("numpy", "hqf_numpy_backend")]
    assert _installed_names() == before  # this environment is unchanged
    return target


def _hqf(site: pathlib.Path, *args, timeout=300):
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", "from hqf.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
    )


def test_hqf_list_finds_the_numpy_backend(site):
    result = _hqf(site, "list")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("numpy "))
    assert "[hqf-numpy-backend]" in line and "available" in line


def test_hqf_check_passes_the_numpy_backend(site):
    result = _hqf(site, "check", "--backend", "numpy", "--examples", "10", "--max-qubits", "6")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed, 0 failed, 1 skipped" in result.stdout
    assert "skipped native-gradient: declares no native gradient" in result.stdout


def test_hqf_run_trains_with_the_numpy_backend(site, tmp_path):
    out = tmp_path / "run"
    result = _hqf(
        site,
        "run",
        "--backend",
        "numpy",
        "--ansatz",
        "hea2x1",
        "--samples",
        "300",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--out",
        str(out),
        "--quiet",
    )
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
