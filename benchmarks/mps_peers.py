"""The ``torch-mps`` backend against its MPS peers in one run: quimb's ``CircuitMPS``, Qiskit Aer's
``matrix_product_state`` method and PennyLane's ``default.tensor`` (docs/mps.md, issue 31 item 5).

The circuit is that of benchmarks/mps_scale.py: an RY encoding of random data (one column per wire), then
``hea<n>x<layers>`` with uniform random weights in [0, 2π) shared by the rows, Z read on every wire; bond
dimension ``χ`` for every simulator, one thread for all of them. Before any timing, every peer's values
(and ``default.tensor``'s parameter-shift gradient of the summed outputs, data and weights) are checked
against torch-mps at exact bond on a small circuit, and at every size the timed rows' values are compared
(at 24 qubits or fewer also against the torch state vector). Then the simulators take turns, ``--repeats``
rounds, best time of each kept:

- torch-mps: ``--rows`` rows per call (its batch), and one row per call; forward under ``no_grad``, and
  forward+backward (gradient of the summed outputs for the data and the shared weights);
- Aer: ``--rows`` rows in one call (one simulation per row), forward only (it has no gradients);
- quimb and default.tensor: one row per call, ``--peer-rows`` rows;
- default.tensor's parameter-shift gradient: ``2k`` shifted executions for ``k = --shift-params`` of the
  ``P`` parameters, evenly spaced; the full gradient is ``P/k`` times that (parameter shift costs two
  executions per parameter, whichever), plus one forward for the values.

    python benchmarks/mps_peers.py                                  # 24 and 50 qubits, χ = 32
    python benchmarks/mps_peers.py --qubits 8 --rows 4 --peer-rows 1 --repeats 1
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hqf.backends.mps import MpsBackend  # noqa: E402
from hqf.plugins.ansatze.hea import HardwareEfficient  # noqa: E402
from hqf.quantum.circuit import Circuit, Operation, PauliWord  # noqa: E402


def build(n: int, layers: int, rows: int, seed: int = 0) -> tuple[Circuit, torch.Tensor, torch.Tensor]:
    """``RY`` encoding + ``hea<n>x<layers>``, Z on every wire; data in [0, π), weights in [0, 2π)."""
    encoder = [Operation("RY", q, q) for q in range(n)]
    ansatz = [op.renumbered(n) for op in HardwareEfficient(n, layers).operations()]
    circuit = Circuit(n, encoder + ansatz, [PauliWord.z(q) for q in range(n)])
    generator = torch.Generator().manual_seed(seed)
    data = torch.rand(rows, n, generator=generator, dtype=torch.float64) * math.pi
    weights = torch.rand(circuit.n_params - n, generator=generator, dtype=torch.float64) * 2 * math.pi
    return circuit, data, weights


def gate_list(circuit: Circuit, params: np.ndarray) -> list[tuple[str, tuple[int, ...], float | None, int | None]]:
    """The circuit's gates for one row: name, wires, angle (or None) and the parameter's index (or None)."""
    out = []
    for op in circuit.operations:
        if op.gate not in ("RY", "RZ", "CNOT"):
            raise ValueError(f"gate {op.gate} is not translated for the peers")
        angle = None if op.param is None else float(params[op.param])
        out.append((op.gate, op.wires, angle, op.param))
    return out


def spread(total: int, k: int) -> list[int]:
    """``k`` indices of ``range(total)`` evenly spaced, first and last included (all of them if ``k ≥ total``)."""
    if k >= total:
        return list(range(total))
    if k == 1:
        return [0]
    return sorted({round(i * (total - 1) / (k - 1)) for i in range(k)})


# --- the simulators: each returns values [rows, n] (and gradients where it has them) ------------------


def torch_mps(circuit, data, weights, chi, grad=False):
    """Values ``[rows, n]``; with ``grad``, also the gradient of the summed outputs: data ``[rows, n]``
    and the shared weights summed over the rows, one row of ``[data, weights]`` per row where ``rows == 1``."""
    backend = MpsBackend(chi=chi)
    if not grad:
        with torch.no_grad():
            return backend.expval_broadcast(circuit, data, weights).numpy()
    x, w = data.clone().requires_grad_(), weights.clone().requires_grad_()
    values = backend.expval_broadcast(circuit, x, w)
    values.sum().backward()
    return values.detach().numpy(), torch.cat([x.grad, w.grad[None].expand(len(x), -1)], dim=1).numpy()


def statevector(circuit, data, weights):
    from hqf.backends.torch import TorchBackend

    with torch.no_grad():
        return TorchBackend().expval_broadcast(circuit, data, weights).numpy()


def quimb_rows(circuit, data, weights, chi):
    import quimb
    import quimb.tensor as qtn

    z = quimb.pauli("Z")
    out = []
    for row in torch.cat([data, weights[None].expand(len(data), -1)], dim=1).numpy():
        circ = qtn.CircuitMPS(circuit.n_qubits, max_bond=chi, cutoff=1e-12)
        for gate, wires, angle, _ in gate_list(circuit, row):
            circ.apply_gate(gate, *(() if angle is None else (angle,)), *wires)
        out.append([circ.local_expectation(z, q, normalized=True).real for q in range(circuit.n_qubits)])
    return np.asarray(out)


def aer_rows(circuit, data, weights, chi):
    from qiskit.primitives.containers import BindingsArray
    from qiskit_aer.primitives import EstimatorV2

    from hqf.backends.qiskit_aer import compile_circuit

    compiled = compile_circuit(circuit)
    options = {
        "method": "matrix_product_state",
        "matrix_product_state_max_bond_dimension": chi,
        "max_parallel_threads": 1,
        "runtime_parameter_bind_enable": True,
    }
    estimator = EstimatorV2(options={"default_precision": 0.0, "backend_options": options})
    values = torch.cat([data, weights[None].expand(len(data), -1)], dim=1).numpy()
    pub = (compiled.circuit, [[obs] for obs in compiled.observables], BindingsArray({compiled.params: values}))
    (result,) = estimator.run([pub], precision=0.0).result()
    return np.asarray(result.data.evs).T


def _pl_tape(circuit, row):
    import pennylane as qml

    gates = {"RY": qml.RY, "RZ": qml.RZ}
    ops, owners = [], []
    for gate, wires, angle, param in gate_list(circuit, row):
        if gate == "CNOT":
            ops.append(qml.CNOT(wires=list(wires)))
        else:
            ops.append(gates[gate](angle, wires=wires[0]))
            owners.append(param)
    measurements = [qml.expval(qml.Z(q)) for q in range(circuit.n_qubits)]
    return qml.tape.QuantumScript(ops, measurements), owners


def _pl_device(n, chi):
    import pennylane as qml

    return qml.device("default.tensor", wires=n, method="mps", max_bond_dim=chi, cutoff=1e-12)


def pennylane_rows(circuit, data, weights, chi):
    import pennylane as qml

    device = _pl_device(circuit.n_qubits, chi)
    tapes = [_pl_tape(circuit, row)[0] for row in torch.cat([data, weights[None].expand(len(data), -1)], 1).numpy()]
    return np.asarray([np.asarray(r) for r in qml.execute(tapes, device, diff_method=None)])


def pennylane_shift(circuit, data, weights, chi, params):
    """Parameter-shift gradient of the summed outputs for the hqf parameters ``params`` (or all), per row."""
    import pennylane as qml

    device = _pl_device(circuit.n_qubits, chi)
    out = []
    for row in torch.cat([data, weights[None].expand(len(data), -1)], 1).numpy():
        tape, owners = _pl_tape(circuit, row)
        wanted = range(circuit.n_params) if params is None else params
        tape.trainable_params = [owners.index(p) for p in wanted]
        tapes, post = qml.gradients.param_shift(tape)
        jac = post(qml.execute(tapes, device, diff_method=None))  # [outputs][params]
        out.append(np.sum(np.asarray(jac, dtype=float).reshape(circuit.n_qubits, -1), axis=0))
    return np.asarray(out)


# --- checks and timing ----------------------------------------------------------------------------------


def check_small(n: int, layers: int) -> dict:
    """Every peer against torch-mps at exact bond on ``hea<n>x<layers>``, 2 rows: values and the gradient."""
    circuit, data, weights = build(n, layers, 2, seed=1)
    chi = 2 ** (n // 2)
    values = torch_mps(circuit, data, weights, None)
    _, grad = torch_mps(circuit, data[:1], weights, None, grad=True)
    gaps = {
        "state vector": np.abs(statevector(circuit, data, weights) - values).max(),
        "quimb": np.abs(quimb_rows(circuit, data, weights, chi) - values).max(),
        "aer": np.abs(aer_rows(circuit, data, weights, chi) - values).max(),
        "default.tensor": np.abs(pennylane_rows(circuit, data, weights, chi) - values).max(),
        "default.tensor shift grad": np.abs(pennylane_shift(circuit, data[:1], weights, chi, None) - grad).max(),
    }
    return {k: float(v) for k, v in gaps.items()}


def best_of(timings: dict[str, list[float]], name: str, fn: Callable[[], object], per: int) -> object:
    t0 = time.perf_counter()
    result = fn()
    timings.setdefault(name, []).append((time.perf_counter() - t0) / per)
    return result


def measure(n: int, layers: int, chi: int, rows: int, peer_rows: int, shift_params: int, repeats: int) -> dict:
    circuit, data, weights = build(n, layers, rows)
    few = data[:peer_rows]
    chosen = spread(circuit.n_params, shift_params)
    out: dict = {"qubits": n, "layers": layers, "chi": chi, "rows": rows, "peer_rows": peer_rows}
    out["params"], out["shift_params"] = circuit.n_params, len(chosen)
    # warm-up and values (the lowering is cached by the circuit; imports happen here)
    ref = torch_mps(circuit, data, weights, chi)
    torch_mps(circuit, data, weights, chi, grad=True)
    _, ref_grad = torch_mps(circuit, few[:1], weights, chi, grad=True)
    gaps = {
        "quimb": quimb_rows(circuit, few, weights, chi) - ref[:peer_rows],
        "aer": aer_rows(circuit, data, weights, chi) - ref,
        "default.tensor": pennylane_rows(circuit, few, weights, chi) - ref[:peer_rows],
        "default.tensor shift grad": pennylane_shift(circuit, few[:1], weights, chi, chosen) - ref_grad[:1, chosen],
    }
    if n <= 24:
        gaps["state vector"] = statevector(circuit, data, weights) - ref
    out["max_abs_diff"] = {k: float(np.abs(v).max()) for k, v in gaps.items()}
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        best_of(times, "torch-mps forward", lambda: torch_mps(circuit, data, weights, chi), rows)
        best_of(times, "torch-mps forward+backward", lambda: torch_mps(circuit, data, weights, chi, True), rows)
        best_of(times, "torch-mps forward, 1 row/call", lambda: torch_mps(circuit, few[:1], weights, chi), 1)
        one = lambda: torch_mps(circuit, few[:1], weights, chi, True)  # noqa: E731
        best_of(times, "torch-mps forward+backward, 1 row/call", one, 1)
        best_of(times, "aer forward", lambda: aer_rows(circuit, data, weights, chi), rows)
        best_of(times, "quimb forward", lambda: quimb_rows(circuit, few, weights, chi), peer_rows)
        best_of(times, "default.tensor forward", lambda: pennylane_rows(circuit, few, weights, chi), peer_rows)
        shift = lambda: pennylane_shift(circuit, few[:1], weights, chi, chosen)  # noqa: E731
        best_of(times, f"default.tensor shift, {len(chosen)} params", shift, 1)
    out["s_per_row"] = {k: min(v) for k, v in times.items()}
    s = out["s_per_row"]
    # the full parameter-shift gradient: P/k times the k parameters' shifts, and one forward for the values
    full_shift = s[f"default.tensor shift, {len(chosen)} params"] * circuit.n_params / len(chosen)
    s["default.tensor shift gradient (all P, scaled)"] = full_shift
    s["default.tensor values + shift gradient"] = full_shift + s["default.tensor forward"]
    peers = {k: s[k] for k in ("aer forward", "quimb forward", "default.tensor forward")}
    fastest = min(peers, key=peers.get)
    out["ratios"] = {
        f"forward: {fastest} / torch-mps": peers[fastest] / s["torch-mps forward"],
        **{f"forward: {k} / torch-mps": v / s["torch-mps forward"] for k, v in peers.items()},
        "forward, 1 row/call: fastest peer / torch-mps": peers[fastest] / s["torch-mps forward, 1 row/call"],
        "fwd+bwd: default.tensor values + shift gradient / torch-mps": s["default.tensor values + shift gradient"]
        / s["torch-mps forward+backward"],
        "fwd+bwd, 1 row/call: default.tensor values + shift gradient / torch-mps": s[
            "default.tensor values + shift gradient"
        ]
        / s["torch-mps forward+backward, 1 row/call"],
    }
    return out


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", default="24,50")
    parser.add_argument("--chi", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=32, help="rows per call for torch-mps and Aer")
    parser.add_argument("--peer-rows", type=int, default=2, help="rows timed one by one for quimb, default.tensor")
    parser.add_argument("--shift-params", type=int, default=4, help="parameters default.tensor's shift is timed on")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--check-qubits", type=int, default=6, help="the exact-bond agreement check's size")
    parser.add_argument("--out", default=None, help="write the results as JSON here too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import pennylane
    import qiskit_aer
    import quimb

    versions = {"torch": torch.__version__, "quimb": quimb.__version__, "qiskit-aer": qiskit_aer.__version__}
    versions["pennylane"] = pennylane.__version__
    report: dict = {"versions": versions, "uptime_before": uptime(), "args": vars(args)}
    print(f"uptime before: {report['uptime_before']}  (2 cores, shared machine)", flush=True)
    report["exact_check"] = check_small(args.check_qubits, args.layers)
    print(f"exact bond, hea{args.check_qubits}x{args.layers}: max |Δ| against torch-mps:", flush=True)
    for name, gap in report["exact_check"].items():
        print(f"  {name:<28} {gap:.1e}")
    if max(report["exact_check"].values()) > 1e-8:
        raise SystemExit("a peer disagrees with torch-mps at exact bond by more than 1e-8")
    report["sizes"] = []
    for n in (int(v) for v in args.qubits.split(",")):
        started = uptime()
        row = measure(n, args.layers, args.chi, args.rows, args.peer_rows, args.shift_params, args.repeats)
        row["uptime_before"], row["uptime_after"] = started, uptime()
        report["sizes"].append(row)
        print(f"\nhea{n}x{args.layers}, χ = {args.chi}, {row['params']} parameters  [{row['uptime_after']}]")
        print("  max |Δ| against torch-mps:", ", ".join(f"{k} {v:.1e}" for k, v in row["max_abs_diff"].items()))
        for name, sec in row["s_per_row"].items():
            print(f"  {name:<48} {1e3 * sec:>12.1f} ms/row  {1 / sec:>10.3f} rows/s")
        for name, ratio in row["ratios"].items():
            print(f"  {name:<64} {ratio:>8.2f}×", flush=True)
    report["uptime_after"] = uptime()
    print(f"\nuptime after: {report['uptime_after']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
