"""hqf's zero-noise extrapolation against mitiq's: the same global folding, the same extrapolation.

    python -m venv /tmp/mitiqvenv && /tmp/mitiqvenv/bin/pip install mitiq     # mitiq 1.1 needs numpy < 2.3
    python benchmarks/zne_vs_mitiq.py --mitiq-python /tmp/mitiqvenv/bin/python
    python benchmarks/zne_vs_mitiq.py --mitiq-python /tmp/mitiqvenv/bin/python --record tests/data/zne_mitiq.json

mitiq runs in its own environment (:data:`MITIQ_SIDE`, a subprocess that reads and prints JSON); hqf runs
here. For one noisy circuit (:func:`case`, each row's angles bound into the gates), mitiq's
``mitiq.zne.scaling.fold_global`` folds a cirq copy at the scale factors :data:`SCALES`, and its
``RichardsonFactory.extrapolate`` and ``LinearFactory.extrapolate`` extrapolate the values of those folded
circuits, run on hqf's ``torch-dm`` under :data:`NOISE`. hqf's half (:func:`compare`) checks that
:func:`hqf.quantum.mitigation.fold` gives the same gate sequences, that its folded circuits give the same
noisy values, and that :func:`hqf.quantum.mitigation.zne` gives mitiq's estimates. Prints the differences;
exit status 1 when one is above :data:`TOLERANCE`. ``--record`` writes mitiq's folds, the noisy values and
mitiq's estimates to a file that tests/test_zne_mitiq.py checks without mitiq.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import torch

from hqf.quantum.circuit import GATES, Circuit, Operation, PauliWord, compose
from hqf.quantum.mitigation import fold, folded_angles, zne
from hqf.registry.make import make_ansatz, make_backend

#: the noise model, every gate's channels and a readout error (neither side folds the readout)
NOISE = "depolarizing=0.01,amplitude_damping=0.02,phase_damping=0.01,thermal_relaxation=50:70:0.3,readout=0.02:0.05"
SCALES = (1, 3, 5)
METHODS = ("richardson", "linear")
TOLERANCE = 1e-10

#: the mitiq side, run by the mitiq environment's Python: reads ``{"mode", …}`` on stdin, prints JSON
MITIQ_SIDE = r'''
import json, math, sys
import cirq
import mitiq
from mitiq.zne.inference import LinearFactory, RichardsonFactory
from mitiq.zne.scaling import fold_global

ROTATIONS = {cirq.Rx: ("RX", cirq.rx), cirq.Ry: ("RY", cirq.ry), cirq.Rz: ("RZ", cirq.rz)}
FIXED = {cirq.HPowGate: ("H", cirq.H), cirq.XPowGate: ("X", cirq.X), cirq.CXPowGate: ("CNOT", cirq.CNOT),
         cirq.CZPowGate: ("CZ", cirq.CZ)}


def to_cirq(n_qubits, gates):
    qubits = cirq.LineQubit.range(n_qubits)
    by_name = {name: make for name, make in list(ROTATIONS.values()) + list(FIXED.values())}
    ops = [by_name[name](angle) if angle is not None else by_name[name] for name, _, angle in gates]
    return cirq.Circuit(cirq.Moment([op.on(*(qubits[w] for w in wires))]) for op, (_, wires, _) in zip(ops, gates))


def from_cirq(circuit):
    """[gate, wires, angle or None] per operation; a fixed gate to the power -1 is itself (all are self-inverse)."""
    gates = []
    for moment in circuit:
        for op in moment:
            wires = [q.x for q in op.qubits]
            if type(op.gate) in ROTATIONS:
                gates.append([ROTATIONS[type(op.gate)][0], wires, float(op.gate.exponent) * math.pi])
            elif type(op.gate) in FIXED and abs(op.gate.exponent) == 1 and op.gate.global_shift == 0:
                gates.append([FIXED[type(op.gate)][0], wires, None])
            else:
                raise ValueError(f"unexpected gate {op.gate!r}")
    return gates


request = json.load(sys.stdin)
if request["mode"] == "fold":
    folds = [[from_cirq(fold_global(to_cirq(request["n_qubits"], row), scale)) for scale in request["scales"]]
             for row in request["rows"]]
    print(json.dumps({"mitiq": mitiq.__version__, "folds": folds}))
else:
    factories = {"richardson": RichardsonFactory, "linear": LinearFactory}
    estimates = {method: [[float(factory.extrapolate(request["scales"], values)) for values in row]
                          for row in request["values"]] for method, factory in factories.items()}
    print(json.dumps({"mitiq": mitiq.__version__, "estimates": estimates}))
'''


def case() -> tuple[Circuit, torch.Tensor]:
    """The circuit (RX encoding, hea3x2, an H and a CZ) with four observables, and two angle rows."""
    operations = [Operation("RX", w, w) for w in range(3)] + [Operation("H", 1), Operation("CZ", (2, 0))]
    observables = [PauliWord.z(0), PauliWord.z(2), PauliWord.parse("Z0 Z1"), PauliWord.parse("X1")]
    circuit = compose(3, [operations, make_ansatz("hea3x2").operations()], observables)
    angles = torch.rand(2, circuit.n_params, generator=torch.Generator().manual_seed(11), dtype=torch.float64) * 6.28
    return circuit, angles


def bound_gates(circuit: Circuit, row: torch.Tensor) -> list[list]:
    """``[gate, wires, angle or None]`` per operation of ``circuit`` with ``row``'s angles in place."""
    return [[op.gate, list(op.wires), None if op.param is None else float(row[op.param])] for op in circuit.operations]


def unbound(n_qubits: int, gates: list[list], observables) -> tuple[Circuit, torch.Tensor]:
    """The circuit of :func:`bound_gates`' form, each angle in its own column, and its one angle row."""
    operations, row = [], []
    for name, wires, angle in gates:
        if GATES[name][1]:
            operations.append(Operation(name, tuple(wires), len(row)))
            row.append(angle)
        else:
            operations.append(Operation(name, tuple(wires)))
    return Circuit(n_qubits, operations, observables), torch.tensor([row], dtype=torch.float64)


def run_mitiq(python: str, request: dict) -> dict:
    """What :data:`MITIQ_SIDE` prints for ``request``, run by ``python``."""
    done = subprocess.run([python, "-c", MITIQ_SIDE], input=json.dumps(request), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the mitiq side failed:\n{done.stderr}")
    return json.loads(done.stdout)


def mitiq_record(python: str) -> dict:
    """mitiq's folds of :func:`case`, their values on ``torch-dm`` under :data:`NOISE`, and mitiq's estimates."""
    circuit, angles = case()
    rows = [bound_gates(circuit, row) for row in angles]
    folded = run_mitiq(python, {"mode": "fold", "n_qubits": circuit.n_qubits, "rows": rows, "scales": SCALES})
    values = noisy_values(circuit, folded["folds"])  # [B][S][R]
    per_output = [
        [[values[b][s][r] for s in range(len(SCALES))] for r in range(circuit.n_outputs)] for b in range(len(rows))
    ]
    estimated = run_mitiq(python, {"mode": "extrapolate", "scales": SCALES, "values": per_output})
    return {
        "mitiq": folded["mitiq"],
        "noise": NOISE,
        "scales": list(SCALES),
        "folds": folded["folds"],
        "values": values,
        "estimates": estimated["estimates"],
    }


def noisy_values(circuit: Circuit, folds: list[list[list]]) -> list[list[list[float]]]:
    """``[B][S][R]``: each row's folded gate sequences run on ``torch-dm`` under :data:`NOISE`."""
    backend = make_backend("torch-dm", noise=NOISE)
    values = []
    for row_folds in folds:
        values.append([])
        for gates in row_folds:
            folded, row = unbound(circuit.n_qubits, gates, circuit.observables)
            values[-1].append(backend.expval(folded, row)[0].tolist())
    return values


def compare(record: dict) -> dict[str, float]:
    """The largest differences between hqf and ``record`` (:func:`mitiq_record`): the folded gates' angles,
    the folded circuits' noisy values, and the zero-noise estimates of each method.

    Raises:
        ValueError: a folded sequence of hqf names other gates or wires than mitiq's.
    """
    circuit, angles = case()
    scales = tuple(record["scales"])
    angle_difference = 0.0
    for b, row_folds in enumerate(record["folds"]):
        for scale, theirs in zip(scales, row_folds):
            ours = bound_gates(fold(circuit, scale), folded_angles(angles[b : b + 1], scale)[0])
            if [g[:2] for g in ours] != [g[:2] for g in theirs]:
                raise ValueError(f"hqf's fold at scale {scale} (row {b}) is not mitiq's fold_global")
            pairs = [(a, t) for (_, _, a), (_, _, t) in zip(ours, theirs) if a is not None]
            angle_difference = max([angle_difference] + [abs(a - t) for a, t in pairs])
    backend = make_backend("torch-dm", noise=record["noise"])
    theirs_values = torch.tensor(record["values"], dtype=torch.float64).transpose(0, 1)  # [S, B, R]
    differences = {"fold angles": angle_difference, "noisy values": 0.0}
    for method in METHODS:
        result = zne(circuit, angles, backend, scales, method)
        noisy_difference = float((result.values - theirs_values).abs().max())
        differences["noisy values"] = max(differences["noisy values"], noisy_difference)
        estimate = torch.tensor(record["estimates"][method], dtype=torch.float64)
        differences[f"{method} estimate"] = float((result.estimate - estimate).abs().max())
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mitiq-python", required=True, help="the Python of an environment with mitiq")
    parser.add_argument("--record", type=pathlib.Path, help="also write mitiq's numbers to this JSON file")
    args = parser.parse_args(argv)
    record = mitiq_record(args.mitiq_python)
    circuit, angles = case()
    for method in METHODS:
        hqf = zne(circuit, angles, make_backend("torch-dm", noise=NOISE), SCALES, method).estimate
        print(f"{method}: hqf   {[[round(v, 12) for v in row] for row in hqf.tolist()]}")
        print(f"{method}: mitiq {[[round(v, 12) for v in row] for row in record['estimates'][method]]}")
    differences = compare(record)
    for name, difference in differences.items():
        print(f"max |hqf − mitiq {record['mitiq']}| of the {name}: {difference:.3g}")
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        lines = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in record.items()]  # one key a line
        args.record.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    worst = max(differences.values())
    print(f"{'agree' if worst <= TOLERANCE else 'DIFFER'}: max difference {worst:.3g} (tolerance {TOLERANCE:g})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
