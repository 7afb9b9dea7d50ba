"""hqf's gate-noise model, defined once: depolarizing noise of probability ``p`` after every gate.

**Definition.** After every gate of a circuit (data-encoding and trainable gates alike, parameterized or
not), each wire the gate acts on goes through the one-qubit depolarizing channel

    D_p(ρ) = (1 − p) ρ + (p/3) (XρX + YρY + ZρZ) = (1 − 4p/3) ρ + (4p/3) · I/2 ⊗ Tr_w ρ,

independently: a two-qubit gate (CNOT, CZ) is followed by ``D_p ⊗ D_p`` on its two wires. ``p`` is
the probability that one of the three Pauli errors hits the wire, ``0 ≤ p ≤ 1``; the paper's "2% gate
error" is ``p = 0.02``.

**Conventions of the simulators.** PennyLane's ``qml.DepolarizingChannel(p)`` is exactly ``D_p``.
Qiskit's ``depolarizing_error(λ, 1)`` is ``(1 − λ) ρ + λ I/2 ⊗ Tr ρ``, so the same channel is
``λ = 4p/3`` (:func:`qiskit_lambda`). Both noisy backends convert with these functions; a test checks
that they agree with each other and with hqf's own torch density-matrix backend.
"""

from __future__ import annotations

import math

from hqf.quantum.circuit import Circuit, Operation


def check_probability(p: float) -> float:
    """``p`` as a float; raises ``ValueError`` unless ``0 ≤ p ≤ 1``."""
    p = float(p)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise ValueError(f"'depolarizing' must be a probability in [0, 1] (got {p})")
    return p


def pennylane_probability(p: float) -> float:
    """The argument of ``qml.DepolarizingChannel`` for hqf's ``p`` (the same number)."""
    return check_probability(p)


def qiskit_lambda(p: float) -> float:
    """The ``λ`` of ``qiskit_aer.noise.depolarizing_error(λ, 1)`` for hqf's ``p``: ``4p/3``."""
    return 4.0 * check_probability(p) / 3.0


def noisy_wires(op: Operation) -> tuple[int, ...]:
    """The wires depolarized after ``op``: every wire it acts on."""
    return op.wires


def count_channels(circuit: Circuit) -> int:
    """How many one-qubit depolarizing channels the noise model inserts into ``circuit``."""
    return sum(len(noisy_wires(op)) for op in circuit.operations)
