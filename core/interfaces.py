"""Compatibility path: the plugin interfaces live in :mod:`hqf.quantum.interfaces`.

Third-party plugins written against ``hqf.interfaces`` keep working; new code imports from
:mod:`hqf.quantum.interfaces`.
"""

from hqf.quantum.interfaces import DTYPES, GRADIENTS, Ansatz, Availability, Backend, Capabilities, Encoder
from hqf.registry.contracts import Backbone, Baseline, Fusion, Regularizer, RegularizerInputs

__all__ = [
    "DTYPES",
    "GRADIENTS",
    "Ansatz",
    "Availability",
    "Backbone",
    "Backend",
    "Baseline",
    "Capabilities",
    "Encoder",
    "Fusion",
    "Regularizer",
    "RegularizerInputs",
]
