"""The conformance suite (hqf.testing) over every registered backend, under the active Hypothesis profile.

The answer key for every target, torch included, is the reference simulator shipped in hqf.testing
(tests/test_reference.py checks it; tests/test_conformance_bounds.py pins the tolerances).

Every backend hqf registers is tested in the configurations listed below (a test fails if one has none);
a backend registered by another distribution is tested with its default options. The targets are names
until a test runs: collecting this file loads no plugin and builds no backend. Unavailable backends are
skipped with the reason ``hqf list`` shows. Slow backends get fewer or smaller examples (still within the
``ci`` profile's bounds; ``nightly`` raises them).
"""

import os
import pathlib
import subprocess
import sys

import pytest

from hqf.registry.loader import registry
from hqf.testing import PROPERTIES, Limits, Target, listed, targets

ROOT = pathlib.Path(__file__).resolve().parents[1]
NIGHTLY = os.environ.get("HQF_HYPOTHESIS_PROFILE") == "nightly"


def _examples(ci: int) -> int | None:
    return None if NIGHTLY else ci  # None: the profile's max_examples


SMALL = Limits(max_qubits=8, max_ops=16, max_batch=3)
DENSITY = Limits(max_qubits=5, max_ops=12, max_batch=2)

VARIANTS = {
    "torch": [
        Target("torch", limits=SMALL),
        Target("torch", {"dtype": "complex64"}, examples=_examples(15), limits=SMALL),
    ],
    "pennylane": [
        Target("pennylane", {"pl_device": "default.qubit"}, limits=SMALL),
        Target("pennylane", {"pl_device": "lightning.qubit"}, examples=_examples(20), limits=SMALL),
        Target(
            "pennylane", {"pl_device": "lightning.qubit", "dtype": "complex64"}, examples=_examples(10), limits=SMALL
        ),
    ],
    "qiskit-aer": [
        Target("qiskit-aer", limits=SMALL),
        Target("qiskit-aer", {"shots": 2000, "seed": 7}, examples=_examples(10), limits=SMALL),
    ],
    "torch-dm": [Target("torch-dm", examples=_examples(10), limits=DENSITY)],
    "pennylane-mixed": [Target("pennylane-mixed", examples=_examples(10), limits=DENSITY)],
    "qiskit-aer-dm": [Target("qiskit-aer-dm", examples=_examples(10), limits=DENSITY)],
    "ptm": [Target("ptm", examples=_examples(10), limits=DENSITY)],
    "trajectories": [Target("trajectories", examples=_examples(10), limits=DENSITY)],
    "torch-mps": [Target("torch-mps", examples=_examples(10), limits=DENSITY)],
    "cuquantum": [Target("cuquantum", examples=_examples(10), limits=DENSITY)],
}
DEFAULT_EXAMPLES = _examples(10)


TARGETS = listed(VARIANTS)


def _assert_conforms(target: Target, prop: str) -> None:
    result = target.check(prop)
    assert result.ok, result.report()
    if result.status == "skip":
        assert prop == "native-gradient", result.report()


@pytest.mark.parametrize("prop", list(PROPERTIES))
@pytest.mark.parametrize("target", TARGETS, ids=[t.id for t in TARGETS])
def test_backend_conforms(target, prop):
    availability = target.availability()
    if not availability.ok:
        pytest.skip(f"{target.backend}: {availability.reason}")
    _assert_conforms(target, prop)


def test_backends_of_other_distributions_conform():
    others = [
        Target(t.backend, t.options, examples=DEFAULT_EXAMPLES, limits=DENSITY)
        for t in targets(VARIANTS)
        if t.backend not in VARIANTS
    ]
    runnable = [t for t in others if t.availability().ok]
    if not runnable:
        pytest.skip("no backend of another distribution can run here" if others else "no other backend registered")
    for target in runnable:
        for prop in PROPERTIES:
            _assert_conforms(target, prop)


def test_every_builtin_backend_is_a_target():
    builtin = {e.name for e in registry().entries("backend") if e.package == "hqf"}
    assert builtin - VARIANTS.keys() == set(), "list the configurations of every built-in backend in VARIANTS"
    ids = {t.id for t in TARGETS}
    for wanted in (
        "torch",
        "torch[dtype=complex64]",
        "pennylane[pl_device=default.qubit]",
        "pennylane[pl_device=lightning.qubit]",
        "qiskit-aer",
        "qiskit-aer[seed=7,shots=2000]",
    ):
        assert wanted in ids


COLLECT = """
import sys
import pytest
assert pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_conformance.py"]) == 0
loaded = sorted(m for m in sys.modules if m.startswith(("hqf.backends", "hqf.plugins")))
assert not loaded, f"collecting imported {loaded}"
"""


def test_collecting_the_targets_loads_no_plugin():
    done = subprocess.run([sys.executable, "-c", COLLECT], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
