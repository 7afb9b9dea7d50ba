"""The backend conformance suite, importable by backend authors (``hqf check``, ``tests/test_conformance.py``).

    from hqf.testing import check_backend
    for result in check_backend("pennylane", options={"pl_device": "lightning.qubit"}, examples=20):
        print(result.report())

- :func:`check_backend` / :func:`check_property` run the properties of :data:`PROPERTIES` with Hypothesis
  and return :class:`PropertyResult` values (pass / fail / skip, worst error, smallest failing circuit);
- :class:`ReferenceBackend` is the answer key: a small dense simulator with its own derivatives
  (not registered as a plugin);
- :class:`Tolerance` is the stated error bound (dtype tolerance, or a Bernstein bound for shots);
- :mod:`hqf.testing.strategies` holds the circuit, angle and observable strategies (over a declared
  vocabulary), and :mod:`hqf.testing.fixed` the fixed cases every property runs first;
- :class:`Target`, :func:`listed` and :func:`targets` name the backend configurations to test (pytest helpers:
  parametrize over :func:`listed` targets, which need no plugin loaded, and ask :func:`targets` in a test).
"""

from hqf.testing.conformance import Limits, PropertyResult, check_backend, check_property, default_settings
from hqf.testing.properties import PROPERTIES, Mismatch, native_gradients
from hqf.testing.reference import ReferenceBackend
from hqf.testing.targets import Target, listed, targets
from hqf.testing.tolerance import ATOL, Tolerance

__all__ = [
    "ATOL",
    "PROPERTIES",
    "Limits",
    "Mismatch",
    "PropertyResult",
    "ReferenceBackend",
    "Target",
    "Tolerance",
    "check_backend",
    "check_property",
    "default_settings",
    "listed",
    "native_gradients",
    "targets",
]
