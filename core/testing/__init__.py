"""The backend conformance suite, importable by backend authors (``hqf check``, ``tests/test_conformance.py``).

    from hqf.testing import check_backend
    for result in check_backend("pennylane", options={"pl_device": "lightning.qubit"}, examples=20):
        print(result.report())

- :func:`check_backend` / :func:`check_property` run the properties of :data:`PROPERTIES` with Hypothesis
  and return :class:`PropertyResult` values (pass / fail / skip, worst error, smallest failing circuit);
- :class:`ReferenceBackend` is the answer key: a small dense simulator with its own derivatives
  (not registered as a plugin); :class:`ReferenceDensityBackend` is the noisy backends' one (a dense
  density matrix under a :class:`~hqf.quantum.noise.NoiseModel`), checked by :data:`NOISE_PROPERTIES`
  (:mod:`hqf.testing.noisy`) under a given model or :func:`default_noise`;
- :class:`Tolerance` is the stated error bound (dtype tolerance, or a Bernstein bound for shots);
  :class:`Hoeffding` the bound for a trajectory estimate;
- :mod:`hqf.testing.strategies` holds the circuit, angle and observable strategies (over a declared
  vocabulary), and :mod:`hqf.testing.fixed` the fixed cases every property runs first;
- :class:`Target`, :func:`listed` and :func:`targets` name the backend configurations to test (pytest helpers:
  parametrize over :func:`listed` targets, which need no plugin loaded, and ask :func:`targets` in a test).
"""

from hqf.testing.conformance import Limits, PropertyResult, check_backend, check_property, default_settings
from hqf.testing.noisy import NOISE_PROPERTIES, default_noise, estimates
from hqf.testing.properties import PROPERTIES, Mismatch, native_gradients
from hqf.testing.reference import ReferenceBackend, ReferenceDensityBackend
from hqf.testing.targets import Target, listed, targets
from hqf.testing.tolerance import ATOL, Hoeffding, Tolerance

__all__ = [
    "ATOL",
    "NOISE_PROPERTIES",
    "PROPERTIES",
    "Hoeffding",
    "Limits",
    "Mismatch",
    "PropertyResult",
    "ReferenceBackend",
    "ReferenceDensityBackend",
    "Target",
    "Tolerance",
    "check_backend",
    "check_property",
    "default_noise",
    "default_settings",
    "estimates",
    "listed",
    "native_gradients",
    "targets",
]
