"""One unchanged PennyLane TorchLayer on ``hqf.torch``, ``default.qubit`` and ``lightning.qubit``: forward+backward
time per batch, ratios from the same run, and hqf's agreement with ``default.qubit``.

    python benchmarks/pennylane_device.py                      # hea8x6-like, batch 256, one thread
    python benchmarks/pennylane_device.py --repeats 3 --json out.json
    python benchmarks/pennylane_device.py --qubits 4 --layers 2 --batch 16 --repeats 1   # a smoke run

The model is the one a PennyLane user writes: ``AngleEmbedding`` of the inputs, then per layer RY and RZ on
every wire (the weights) and a CNOT ring, ``⟨Z_q⟩`` on every wire, wrapped in ``qml.qnn.TorchLayer`` with the
QNode's default ``diff_method`` (``best``: backprop on hqf.torch and default.qubit, adjoint on lightning). Only
the device string differs. One step is ``layer(x)`` and ``(out ** 2).sum().backward()`` in float64. Each
device runs one warm-up step, then the devices take turns ``--repeats`` times (so a change in the machine's
load falls on all of them); the median is reported. One thread everywhere: torch, OpenMP (lightning) and the
numba kernels (hqf). The load average is printed before and after: on a shared machine, read the ratios, not
the times.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch and lightning load their OpenMP runtimes

import argparse
import importlib.metadata
import json
import platform
import statistics
import time

import pennylane as qml
import torch

DEVICES = ("hqf.torch", "default.qubit", "lightning.qubit")


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def torch_layer(device: str, n_qubits: int, n_layers: int) -> qml.qnn.TorchLayer:
    """The hea-like TorchLayer on ``device`` (weights seeded, float64)."""
    options = {"threads": 1} if device == "hqf.torch" else {}
    dev = qml.device(device, wires=n_qubits, **options)

    @qml.qnode(dev, interface="torch")
    def circuit(inputs, weights):
        qml.AngleEmbedding(inputs, wires=range(n_qubits))
        for layer in range(n_layers):
            for q in range(n_qubits):
                qml.RY(weights[layer, q, 0], wires=q)
                qml.RZ(weights[layer, q, 1], wires=q)
            for q in range(n_qubits):
                qml.CNOT(wires=[q, (q + 1) % n_qubits])
        return [qml.expval(qml.Z(q)) for q in range(n_qubits)]

    torch.manual_seed(0)
    return qml.qnn.TorchLayer(circuit, {"weights": (n_layers, n_qubits, 2)}).double()


def step(layer: qml.qnn.TorchLayer, x: torch.Tensor) -> tuple[float, tuple[torch.Tensor, ...]]:
    """Seconds for one forward+backward, and (values, weight gradient, input gradient)."""
    layer.zero_grad()
    x = x.clone().requires_grad_()
    start = time.perf_counter()
    out = layer(x)
    (out**2).sum().backward()
    seconds = time.perf_counter() - start
    return seconds, (out.detach(), layer.weights.grad.clone(), x.grad.clone())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qubits", type=int, default=8)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--devices", nargs="+", default=list(DEVICES))
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = torch.rand(args.batch, args.qubits, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    before = load()
    layers = {name: torch_layer(name, args.qubits, args.layers) for name in args.devices}
    results = {name: step(layer, x)[1] for name, layer in layers.items()}  # warm-up (compiles hqf's kernels)
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(args.repeats):
        for name, layer in layers.items():
            times[name].append(step(layer, x)[0])
    after = load()
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"TorchLayer hea{args.qubits}x{args.layers}-like, batch {args.batch}, float64, one thread, forward+backward")
    print(f"{before} (before); {after} (after); median of {args.repeats}, devices interleaved")
    print(f"{'device':18} {'median s':>10} {'min s':>10} {'hqf.torch is':>14}")
    for name in layers:
        ratio = median[name] / median["hqf.torch"] if "hqf.torch" in median else float("nan")
        print(f"{name:18} {median[name]:10.4f} {min(times[name]):10.4f} {ratio:13.1f}x")
    agreement = {}
    if "hqf.torch" in results and "default.qubit" in results:
        names = ("values", "weight gradients", "input gradients")
        pairs = zip(names, results["hqf.torch"], results["default.qubit"])
        agreement = {name: float((a - b).abs().max()) for name, a, b in pairs}
        print(
            "hqf.torch vs default.qubit, max |difference|: " + ", ".join(f"{k} {v:.1e}" for k, v in agreement.items())
        )
    if args.json:
        record = {
            "command": "python benchmarks/pennylane_device.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": platform.platform(),
            "load_before": before,
            "load_after": after,
            "pennylane": importlib.metadata.version("pennylane"),
            "seconds": times,
            "median_seconds": median,
            "agreement_with_default_qubit": agreement,
        }
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
