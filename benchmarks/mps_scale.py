"""The ``torch-mps`` backend against qubits and bond dimension: time per row forward and forward+backward,
peak memory, discarded weight (docs/mps.md).

Each configuration runs in a fresh process (so that its peak resident memory is its own), one torch
thread, on ``hea<n>x<layers>`` with uniform random weights in [0, 2π) shared by the rows and an angle
encoding (RY) of random data per row in front, Z read on every wire.

    python benchmarks/mps_scale.py                      # 16, 32, 50 qubits × χ 16, 32; 2 layers; 8 rows
    python benchmarks/mps_scale.py --qubits 16 --chi 8 --rows 4 --repeats 1
    python benchmarks/mps_scale.py --aer                # and Qiskit Aer's matrix_product_state, forward
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

PRELUDE = r"""
import json, math, resource, sys, time
import torch
torch.set_num_threads(1)
from hqf.plugins.ansatze.hea import HardwareEfficient
from hqf.quantum.circuit import Circuit, Operation, PauliWord
n, layers, chi, rows, repeats = (int(v) for v in sys.argv[1:6])
encoder = [Operation("RY", q, q) for q in range(n)]
ansatz = [op.renumbered(n) for op in HardwareEfficient(n, layers).operations()]
observables = [PauliWord.z(q) for q in range(n)]
circuit = Circuit(n, encoder + ansatz, observables)
generator = torch.Generator().manual_seed(0)
data = torch.rand(rows, n, generator=generator, dtype=torch.float64) * math.pi
weights = torch.rand(circuit.n_params - n, generator=generator, dtype=torch.float64) * 2 * math.pi
"""

ONE = (
    PRELUDE
    + r"""
from hqf.backends.mps import MpsBackend
backend = MpsBackend(chi=chi)
def forward():
    with torch.no_grad():
        backend.expval_broadcast(circuit, data, weights)
def both():
    shared = weights.clone().requires_grad_()
    x = data.clone().requires_grad_()
    backend.expval_broadcast(circuit, x, shared).sum().backward()
out = {"qubits": n, "layers": layers, "chi": chi, "rows": rows}
for name, fn in (("forward", forward), ("forward_backward", both)):
    fn()  # warm-up (the lowering is cached)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
    out[name + "_ms_per_row"] = 1e3 * best / rows
out["max_bond"] = backend.max_bond
out["discarded_weight_mean"] = float(backend.discarded_weight.mean())
out["error_bound_mean"] = float(backend.error_bound.mean())
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with torch.no_grad():
    out["values"] = backend.expval_broadcast(circuit, data, weights).tolist()
print(json.dumps(out))
"""
)

#: Qiskit Aer's ``matrix_product_state`` method on the same circuit and rows (forward only: it has no
#: gradients), bond dimension ``chi``, one thread, parameters bound at run time, all rows in one call
AER = (
    PRELUDE
    + r"""
import numpy as np
from qiskit.primitives.containers import BindingsArray
from qiskit_aer.primitives import EstimatorV2
from hqf.backends.qiskit_aer import compile_circuit
compiled = compile_circuit(circuit)
options = {"method": "matrix_product_state", "matrix_product_state_max_bond_dimension": chi,
           "max_parallel_threads": 1, "runtime_parameter_bind_enable": True}
estimator = EstimatorV2(options={"default_precision": 0.0, "backend_options": options})
values = torch.cat([data, weights[None].expand(rows, -1)], dim=1).numpy()
pub = (compiled.circuit, [[obs] for obs in compiled.observables], BindingsArray({compiled.params: values}))
def forward():
    (result,) = estimator.run([pub], precision=0.0).result()
    return np.asarray(result.data.evs).T
forward()
best = math.inf
for _ in range(repeats):
    t0 = time.perf_counter(); evs = forward(); best = min(best, time.perf_counter() - t0)
print(json.dumps({"forward_ms_per_row": 1e3 * best / rows, "values": evs.tolist()}))
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", default="16,32,50")
    parser.add_argument("--chi", default="16,32")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--aer", action="store_true", help="also time Qiskit Aer's matrix_product_state forward")
    parser.add_argument("--out", default=None, help="write the rows as JSON here too")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores, shared machine)")
    rows = []
    header = f"{'qubits':>6} {'chi':>4} {'fwd ms/row':>10} {'fwd+bwd ms/row':>14} {'ratio':>5} {'max χ':>5}"
    print(
        header
        + f" {'disc. weight':>12} {'Σ√ε':>8} {'peak RSS MiB':>12}"
        + (" Aer fwd ms/row  Aer/mps  max|Δ|" if args.aer else "")
    )
    for n in (int(v) for v in args.qubits.split(",")):
        for chi in (int(v) for v in args.chi.split(",")):
            argv = [str(v) for v in (n, args.layers, chi, args.rows, args.repeats)]
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", ONE, *argv], capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["wall_s"] = time.perf_counter() - started
            peer = ""
            if args.aer:
                done = subprocess.run([sys.executable, "-c", AER, *argv], capture_output=True, text=True, check=True)
                aer = json.loads(done.stdout.strip().splitlines()[-1])
                gap = max(abs(a - b) for x, y in zip(row["values"], aer["values"]) for a, b in zip(x, y))
                row["aer_forward_ms_per_row"], row["aer_max_abs_diff"] = aer["forward_ms_per_row"], gap
                aer_ms = aer["forward_ms_per_row"]
                peer = f" {aer_ms:>14.1f} {aer_ms / row['forward_ms_per_row']:>8.2f} {gap:>7.1e}"
            del row["values"]
            rows.append(row)
            ratio = row["forward_backward_ms_per_row"] / row["forward_ms_per_row"]
            print(
                f"{n:>6} {chi:>4} {row['forward_ms_per_row']:>10.1f} {row['forward_backward_ms_per_row']:>14.1f}"
                f" {ratio:>5.1f} {row['max_bond']:>5} {row['discarded_weight_mean']:>12.4g}"
                f" {row['error_bound_mean']:>8.3g} {row['peak_rss_mib']:>12.0f}" + peer,
                flush=True,
            )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "layers": args.layers}, f, indent=1)


if __name__ == "__main__":
    main()
