"""The conformance suite (hqf.testing) over every registered backend, under the active Hypothesis profile.

The answer key for every target, torch included, is the reference simulator shipped in hqf.testing
(tests/test_reference.py checks it; tests/test_conformance_bounds.py pins the tolerances).

Each registered backend is tested with its default options; the ones below are also tested in their other
configurations. Unavailable backends are skipped with the reason ``hqf list`` shows. Slow backends get fewer
or smaller examples (still within the ``ci`` profile's bounds; ``nightly`` raises them).
"""

import os

import pytest

from hqf.testing import PROPERTIES, Limits, Target, targets

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
        Target("pennylane", {"pl_device": "lightning.qubit", "dtype": "complex64"}, examples=_examples(10), limits=SMALL),
    ],
    "qiskit-aer": [
        Target("qiskit-aer", limits=SMALL),
        Target("qiskit-aer", {"shots": 2000, "seed": 7}, examples=_examples(10), limits=SMALL),
    ],
    "torch-dm": [Target("torch-dm", examples=_examples(10), limits=DENSITY)],
    "pennylane-mixed": [Target("pennylane-mixed", examples=_examples(10), limits=DENSITY)],
    "qiskit-aer-dm": [Target("qiskit-aer-dm", examples=_examples(10), limits=DENSITY)],
}
DEFAULT_EXAMPLES = _examples(10)


def _all_targets():
    found = []
    for target in targets(VARIANTS):
        if target.backend not in VARIANTS:  # a backend registered after this file was written
            target = Target(target.backend, target.options, examples=DEFAULT_EXAMPLES, limits=DENSITY)
        found.append(target)
    return found


TARGETS = _all_targets()


@pytest.mark.parametrize("prop", list(PROPERTIES))
@pytest.mark.parametrize("target", TARGETS, ids=[t.id for t in TARGETS])
def test_backend_conforms(target, prop):
    availability = target.availability()
    if not availability.ok:
        pytest.skip(f"{target.backend}: {availability.reason}")
    result = target.check(prop)
    assert result.ok, result.report()
    if result.status == "skip":
        assert prop == "native-gradient", result.report()


def test_every_builtin_backend_is_a_target():
    ids = {t.id for t in TARGETS}
    for wanted in ("torch", "torch[dtype=complex64]", "pennylane[pl_device=default.qubit]",
                   "pennylane[pl_device=lightning.qubit]", "qiskit-aer", "qiskit-aer[seed=7,shots=2000]"):
        assert wanted in ids
