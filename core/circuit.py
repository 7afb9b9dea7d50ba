"""Compatibility path: the circuit description lives in :mod:`hqf.quantum.circuit`.

Third-party backends written against ``hqf.circuit`` keep working; new code imports from
:mod:`hqf.quantum.circuit`.
"""

from hqf.quantum.circuit import GATES, MAX_QUBITS, Circuit, Operation, PauliWord, compose

__all__ = ["GATES", "MAX_QUBITS", "Circuit", "Operation", "PauliWord", "compose"]
