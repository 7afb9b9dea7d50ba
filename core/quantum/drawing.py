"""A text diagram of a circuit in the style of ``qml.draw``: one line per wire, gates in columns.

Each gate takes one column (gates on disjoint wire spans share a column). A controlled gate shows
``●`` on its control(s) and the applied gate on its target, joined by ``╭ │ ╰``; a parametric gate
shows its angle column (``RX(θ3)``) or, given one angle row, the value (``RX(0.30)``). The observables
touching a wire end its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# (no import of hqf.quantum.circuit: ``Circuit.draw`` calls this module; gates and observables are read
# by their fields and ``kind``)
Circuit = Operation = Any

#: controlled gates: the number of controls and the label of what they apply
CONTROLLED: dict[str, tuple[int, str]] = {
    "CNOT": (1, "X"),
    "CZ": (1, "Z"),
    "CY": (1, "Y"),
    "CRX": (1, "RX"),
    "CRY": (1, "RY"),
    "CRZ": (1, "RZ"),
    "CPhase": (1, "Rϕ"),
    "Toffoli": (2, "X"),
    "CSWAP": (1, "SWAP"),
}
#: display names where they differ from the gate name
LABELS = {"PhaseShift": "Rϕ"}


def _angle(op: Operation, angles: Sequence[float] | None, decimals: int) -> str:
    if op.param is None:
        return ""
    if angles is None:
        return f"(θ{op.param})"
    return f"({float(angles[op.param]):.{decimals}f})"


def _cells(op: Operation, angles: Sequence[float] | None, decimals: int) -> dict[int, str]:
    """The label on each wire the gate spans (controls, targets and the wires in between)."""
    angle = _angle(op, angles, decimals)
    if op.gate in CONTROLLED:
        n_controls, applied = CONTROLLED[op.gate]
        labels = {w: "●" for w in op.wires[:n_controls]}
        labels.update({w: applied + (angle if applied.startswith("R") else "") for w in op.wires[n_controls:]})
    elif op.gate == "SWAP":
        labels = {w: "SWAP" for w in op.wires}
    else:
        labels = {w: LABELS.get(op.gate, op.gate) + angle for w in op.wires}
    if len(op.wires) == 1:
        return labels
    low, high = min(op.wires), max(op.wires)
    out = {}
    for w in range(low, high + 1):
        corner = "╭" if w == low else "╰" if w == high else "├" if w in labels else "│"
        out[w] = corner + labels.get(w, "")
    return out


def _observable_label(obs) -> str:
    if obs.kind == "pauli":
        return "<" + "@".join(p for _, p in obs.terms) + ">"
    return "<H>" if obs.kind == "hamiltonian" else "Probs"


def layout(
    circuit: Circuit, angles: Sequence[float] | None = None, decimals: int = 2
) -> list[list[tuple[Operation, dict[int, str]]]]:
    """The gates in columns: each column a list of ``(gate, label per wire it spans)``; a gate goes in
    the first column after every earlier gate on the wires it spans."""
    if angles is not None and len(angles) != circuit.n_params:
        raise ValueError(f"draw needs one angle row of {circuit.n_params} values (got {len(angles)})")
    layers: list[list[tuple[Operation, dict[int, str]]]] = []
    free_from = [0] * circuit.n_qubits  # first column where each wire is free
    for op in circuit.operations:
        cells = _cells(op, angles, decimals)
        column = max(free_from[w] for w in cells)
        if column == len(layers):
            layers.append([])
        layers[column].append((op, cells))
        for w in cells:
            free_from[w] = column + 1
    return layers


def observable_ends(circuit: Circuit) -> list[str]:
    """Per wire, the labels of the observables that read it (``<Z>``, ``<X@Y>``, ``<H>``, ``Probs``)."""
    return [
        ", ".join(_observable_label(o) for o in circuit.observables if w in o.wires) for w in range(circuit.n_qubits)
    ]


def draw_text(circuit: Circuit, angles: Sequence[float] | None = None, decimals: int = 2) -> str:
    """The diagram (see the module docstring); ``angles`` is one row ``[P]`` or ``None``."""
    width = len(str(circuit.n_qubits - 1)) + 2
    lines = [f"{w}: ".rjust(width) for w in range(circuit.n_qubits)]
    for column in layout(circuit, angles, decimals):
        cells = {w: label for _, labels in column for w, label in labels.items()}
        size = max(len(cell) for cell in cells.values())
        for w in range(circuit.n_qubits):
            cell = cells.get(w, "")
            lines[w] += "──" + cell + "─" * (size - len(cell))
    for w, ends in enumerate(observable_ends(circuit)):
        lines[w] += "──┤" + ("  " + ends if ends else "")
    return "\n".join(lines)
