"""Strict parsing of ansatz specs such as ``hea8x6`` (family ``hea``, 8 qubits, 6 layers)."""

from __future__ import annotations

import re

import attrs

from hqf.errors import InvalidSpecError
from hqf.quantum.circuit import MAX_QUBITS

_SPEC = re.compile(r"([a-z][a-z_]*?)(\d+)x(\d+)")


@attrs.frozen
class AnsatzSpec:
    family: str
    n_qubits: int
    n_layers: int

    def __str__(self) -> str:
        return f"{self.family}{self.n_qubits}x{self.n_layers}"


def parse_ansatz_spec(text: str) -> AnsatzSpec:
    """Read ``FAMILY{Q}x{L}``; anything else is an :class:`InvalidSpecError` saying what was wrong."""
    match = _SPEC.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidSpecError(
            f"ansatz spec {text!r} does not parse: expected FAMILY{{Q}}x{{L}} such as 'hea8x6' "
            "(Q qubits >= 1, L layers >= 1)"
        )
    family, qubits, layers = match.group(1), int(match.group(2)), int(match.group(3))
    if not 1 <= qubits <= MAX_QUBITS:
        raise InvalidSpecError(f"ansatz spec {text!r}: qubits must be in 1..{MAX_QUBITS} (got {qubits})")
    if layers < 1:
        raise InvalidSpecError(f"ansatz spec {text!r}: layers must be >= 1 (got {layers})")
    return AnsatzSpec(family, qubits, layers)
