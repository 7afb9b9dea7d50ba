"""A circuit lowered to the steps a batched MPS runs: one-site gates, two-site gates on neighbouring
sites, and centre moves, with the orthogonality centre's path planned once per circuit.

Long-range two-qubit gates go through a swap network: the qubit nearer the centre is swapped, one
neighbour at a time, next to the other, the gate acts there, and the same swaps take it home (wire
``w`` is always site ``w`` between gates). Toffoli and CSWAP become one- and two-qubit gates (the
six-CNOT Toffoli of Nielsen & Chuang, Fig. 4.9; ``CSWAP(c, a, b) = CNOT(b, a) Toffoli(c, a, b)
CNOT(b, a)``), exact.
"""

from __future__ import annotations

import functools

import attrs
import numpy as np

from hqf.quantum.circuit import Circuit, Operation
from hqf.quantum.gates import matrix

#: fixed matrices outside the vocabulary that the lowering uses
EXTRA: dict[str, np.ndarray] = {"Tdg": matrix("T").conj()}


@attrs.frozen
class Step:
    """One step: ``kind`` ``one`` (gate on ``site``), ``two`` (gate on ``site, site + 1``, its wires in
    that order unless ``flipped``; the centre ends at ``site + 1`` if ``right`` else at ``site``), or
    ``move`` (the centre from ``site`` one site ``right`` or left). ``gate`` names a vocabulary gate or
    one of :data:`EXTRA`; ``param`` is its angle column."""

    kind: str
    site: int
    gate: str = ""
    param: int | None = None
    flipped: bool = False
    right: bool = True


def _expand(op: Operation) -> list[tuple[str, tuple[int, ...], int | None]]:
    """``op`` as gates of at most two wires."""
    if op.gate == "Toffoli":
        a, b, c = op.wires
        return [
            ("H", (c,), None), ("CNOT", (b, c), None), ("Tdg", (c,), None), ("CNOT", (a, c), None),
            ("T", (c,), None), ("CNOT", (b, c), None), ("Tdg", (c,), None), ("CNOT", (a, c), None),
            ("T", (b,), None), ("T", (c,), None), ("H", (c,), None), ("CNOT", (a, b), None),
            ("T", (a,), None), ("Tdg", (b,), None), ("CNOT", (a, b), None),
        ]  # fmt: skip
    if op.gate == "CSWAP":
        c, a, b = op.wires
        return [("CNOT", (b, a), None), *_expand(Operation("Toffoli", (c, a, b))), ("CNOT", (b, a), None)]
    return [(op.gate, op.wires, op.param)]


class _Planner:
    """Builds the step list while tracking where the centre is."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.centre = 0

    def move_to(self, lo: int) -> None:
        """Bring the centre onto site ``lo`` or ``lo + 1``."""
        while self.centre < lo:
            self.steps.append(Step("move", self.centre, right=True))
            self.centre += 1
        while self.centre > lo + 1:
            self.steps.append(Step("move", self.centre, right=False))
            self.centre -= 1

    def two(self, lo: int, gate: str, param: int | None, flipped: bool, right: bool) -> None:
        self.move_to(lo)
        self.steps.append(Step("two", lo, gate, param, flipped, right))
        self.centre = lo + 1 if right else lo

    def gate(self, gate: str, wires: tuple[int, ...], param: int | None) -> None:
        if len(wires) == 1:
            self.steps.append(Step("one", wires[0], gate, param))
            return
        a, b = wires
        lo, hi = min(a, b), max(a, b)
        if hi == lo + 1:
            self.two(lo, gate, param, a > b, right=self.centre <= lo)
            return
        if abs(self.centre - hi) < abs(self.centre - lo):  # bring the high qubit down to lo + 1, then back
            path = list(range(hi - 1, lo, -1))
            for s in path:
                self.two(s, "SWAP", None, False, right=False)
            self.two(lo, gate, param, a > b, right=True)
            for s in reversed(path):
                self.two(s, "SWAP", None, False, right=True)
        else:  # bring the low qubit up to hi - 1, then back
            path = list(range(lo, hi - 1))
            for s in path:
                self.two(s, "SWAP", None, False, right=True)
            self.two(hi - 1, gate, param, a > b, right=False)
            for s in reversed(path):
                self.two(s, "SWAP", None, False, right=False)


@functools.lru_cache(maxsize=64)
def lower(circuit: Circuit) -> tuple[Step, ...]:
    """The steps of ``circuit`` (cached): every gate on at most two neighbouring sites, centre moves planned."""
    planner = _Planner()
    for op in circuit.operations:
        for gate, wires, param in _expand(op):
            planner.gate(gate, wires, param)
    return tuple(planner.steps)
