"""hqf's zero-noise extrapolation against mitiq's numbers (benchmarks/zne_vs_mitiq.py).

tests/data/zne_mitiq.json holds what mitiq 1.1 computed (``fold_global`` at the scale factors, the folded
circuits' values on ``torch-dm``, ``RichardsonFactory`` and ``LinearFactory`` estimates); it is written by
``python benchmarks/zne_vs_mitiq.py --mitiq-python PY --record tests/data/zne_mitiq.json``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECORD = ROOT / "tests" / "data" / "zne_mitiq.json"
MITIQ_PYTHON = os.environ.get("HQF_MITIQ_PYTHON")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("zne_vs_mitiq", ROOT / "benchmarks" / "zne_vs_mitiq.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def record():
    return json.loads(RECORD.read_text())


def test_the_record_is_the_scripts_case(script, record):
    assert record["noise"] == script.NOISE and tuple(record["scales"]) == script.SCALES
    circuit, angles = script.case()
    ours, theirs = script.bound_gates(circuit, angles[0]), record["folds"][0][0]  # mitiq's scale 1: the circuit
    assert [g[:2] for g in theirs] == [g[:2] for g in ours]
    assert [g[2] for g in theirs] == pytest.approx([g[2] for g in ours], abs=1e-14)  # cirq keeps angle / π
    assert len(record["folds"][1][2]) == 5 * len(circuit.operations)


def test_hqf_folds_and_extrapolates_as_mitiq_did(script, record):
    differences = script.compare(record)
    assert set(differences) == {"fold angles", "noisy values", "richardson estimate", "linear estimate"}
    assert max(differences.values()) <= script.TOLERANCE


def test_the_comparison_sees_a_wrong_estimate_and_a_wrong_fold(script, record):
    shifted = copy.deepcopy(record)
    shifted["estimates"]["linear"][1][2] += 1e-9
    assert script.compare(shifted)["linear estimate"] > script.TOLERANCE
    reordered = copy.deepcopy(record)
    folds = reordered["folds"][0][1]
    folds[-1], folds[-2] = folds[-2], folds[-1]  # the last two gates of U (U†U) swapped
    with pytest.raises(ValueError, match="scale 3"):
        script.compare(reordered)


@pytest.mark.skipif(MITIQ_PYTHON is None, reason="needs HQF_MITIQ_PYTHON, the Python of a venv with mitiq")
def test_live_against_mitiq(script):
    """The whole comparison with mitiq running now. mitiq 1.1 needs numpy < 2.3, which this environment
    cannot have (other packages need numpy 2.4), so mitiq lives in its own venv, named by
    ``HQF_MITIQ_PYTHON``; without one the recorded numbers above are what is checked."""
    differences = script.compare(script.mitiq_record(MITIQ_PYTHON))
    assert max(differences.values()) <= script.TOLERANCE
