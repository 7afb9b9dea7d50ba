"""The scalability study of seed 002: time per epoch, memory and gradient variance against qubits and depth.

Circuit studied: an RY data-encoding layer on every qubit followed by the ``hea{Q}x{L}`` ansatz.

- **Time per epoch**: forward and backward passes (the backend's default gradient) over ``samples``
  random inputs in mini-batches of ``batch`` rows, wall-clock seconds, one warm-up batch excluded.
- **Memory**: the analytical size of one mini-batch of state vectors (``batch · 2^Q`` complex
  amplitudes; a density-matrix backend holds ``4^Q`` per sample instead) and the process's peak resident set
  size after the point was measured (``ru_maxrss``, monotone over a run: read it as an upper bound).
- **Gradient variance** (barren plateaus): ``Var[∂C/∂θ_1]`` over ``inits`` independent uniform
  initializations of the ansatz weights in ``[0, 2π)`` (input angles also uniform), where ``θ_1`` is
  the ansatz's first trainable angle (RY on wire 0 in layer 1) and ``C`` is a *local* cost
  ``⟨Z0 Z1⟩`` or a *global* cost ``⟨Z0 Z1 … Z_{Q−1}⟩``. McClean et al. (2018) and Cerezo et al. (2021)
  predict exponential decay in ``Q`` for the global cost and for deep circuits. The decay rate is the
  slope of ``log2 Var`` against ``Q`` by least squares.
"""

from __future__ import annotations

import math
import resource
import sys
import time

import attrs
import numpy as np
import torch

from hqf.learn.training.plotting import pyplot
from hqf.quantum.circuit import Circuit, Operation, PauliWord, compose
from hqf.quantum.gradients import expval
from hqf.quantum.interfaces import Backend
from hqf.registry.make import make_ansatz


def study_circuit(n_qubits: int, n_layers: int, cost: str = "local") -> Circuit:
    """RY encoding on every wire, then ``hea{Q}x{L}``; observable ``Z0 Z1`` (local) or ``Z0…Z_{Q-1}``."""
    if cost not in ("local", "global"):
        raise ValueError(f"'cost' must be 'local' or 'global' (got {cost!r})")
    encoding = [Operation("RY", q, q) for q in range(n_qubits)]
    ansatz = make_ansatz(f"hea{n_qubits}x{n_layers}")
    wires = range(min(2, n_qubits)) if cost == "local" else range(n_qubits)
    observable = PauliWord((w, "Z") for w in wires)
    return compose(n_qubits, [encoding, ansatz.operations()], [observable])


@attrs.frozen
class CostPoint:
    n_qubits: int
    n_layers: int
    batch: int
    samples: int
    epoch_seconds: float
    state_bytes: int
    peak_rss_mb: float


@attrs.frozen
class VariancePoint:
    n_qubits: int
    n_layers: int
    cost: str
    inits: int
    variance: float
    mean_abs: float


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def epoch_cost(
    backend: Backend, n_qubits: int, n_layers: int, samples: int = 256, batch: int = 64, seed: int = 0
) -> CostPoint:
    """Time one epoch of forward + backward passes; see the module docstring."""
    gen = torch.Generator().manual_seed(seed)
    circuit = study_circuit(n_qubits, n_layers)
    n_weights = circuit.n_params - n_qubits
    weights = (torch.rand(n_weights, generator=gen, dtype=torch.float64) * 2 * math.pi).requires_grad_(True)
    data = torch.rand(samples, n_qubits, generator=gen, dtype=torch.float64) * math.pi

    def step(rows: torch.Tensor) -> None:
        angles = torch.cat([rows, weights.expand(rows.shape[0], -1)], dim=1)
        expval(backend, circuit, angles).sum().backward()

    step(data[: min(batch, samples)])  # warm-up: caches, lazy imports
    start = time.perf_counter()
    for rows in data.split(batch):
        step(rows)
    seconds = time.perf_counter() - start
    state_bytes = min(batch, samples) * 2**n_qubits * torch.empty((), dtype=backend.complex_dtype).element_size()
    return CostPoint(n_qubits, n_layers, batch, samples, seconds, state_bytes, _peak_rss_mb())


def gradient_variance(
    backend: Backend, n_qubits: int, n_layers: int, cost: str = "local", inits: int = 200, seed: int = 0
) -> VariancePoint:
    """``Var[∂C/∂θ_1]`` over ``inits`` random initializations, one batch of ``inits`` rows on ``backend``."""
    circuit = study_circuit(n_qubits, n_layers, cost)
    gen = torch.Generator().manual_seed(seed)
    angles = (torch.rand(inits, circuit.n_params, generator=gen, dtype=torch.float64) * 2 * math.pi).requires_grad_(
        True
    )
    (grad,) = torch.autograd.grad(expval(backend, circuit, angles).sum(), angles)
    g = grad[:, n_qubits].numpy()  # column n_qubits: the first ansatz angle (RY, wire 0, layer 1)
    return VariancePoint(n_qubits, n_layers, cost, inits, float(np.var(g, ddof=1)), float(np.mean(np.abs(g))))


def decay_rate(points: list[VariancePoint]) -> float:
    """Least-squares slope of ``log2 Var`` against the qubit count (NaN with fewer than 2 points)."""
    pts = [p for p in points if p.variance > 1e-20]  # exactly-zero gradients (by symmetry) carry no rate
    if len({p.n_qubits for p in pts}) < 2:
        return math.nan
    q = np.array([p.n_qubits for p in pts], dtype=float)
    return float(np.polyfit(q, np.log2([p.variance for p in pts]), 1)[0])


def plot(costs: list[CostPoint], variances: list[VariancePoint], path) -> None:
    """Three panels: time per epoch and state memory against qubits, gradient variance (log scale)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    layers = sorted({c.n_layers for c in costs} | {v.n_layers for v in variances})
    color = {n: f"C{i}" for i, n in enumerate(layers)}
    for n_layers in sorted({c.n_layers for c in costs}):
        pts = sorted((c for c in costs if c.n_layers == n_layers), key=lambda c: c.n_qubits)
        axes[0].plot(
            [c.n_qubits for c in pts],
            [c.epoch_seconds for c in pts],
            "o-",
            color=color[n_layers],
            label=f"{n_layers} layer(s)",
        )
    mem = sorted({(c.n_qubits, c.state_bytes, c.batch) for c in costs})
    axes[1].plot(
        [m[0] for m in mem], [m[1] / 2**20 for m in mem], "o-", color="k", label=f"state vectors, batch {mem[0][2]}"
    )
    axes[0].set(title="Time per epoch (forward + backward)", xlabel="qubits", ylabel="seconds per epoch", yscale="log")
    axes[1].set(
        title="State memory of one mini-batch (any depth)", xlabel="qubits", ylabel="MiB (complex128)", yscale="log"
    )
    for cost, n_layers in sorted({(v.cost, v.n_layers) for v in variances}):
        pts = sorted((v for v in variances if v.cost == cost and v.n_layers == n_layers), key=lambda v: v.n_qubits)
        style = "o-" if cost == "global" else "s--"
        axes[2].plot(
            [v.n_qubits for v in pts],
            [v.variance for v in pts],
            style,
            color=color[n_layers],
            label=f"{cost} cost, {n_layers} layer(s)",
        )
    axes[2].set(
        title="Gradient variance Var[∂C/∂θ₁] (barren plateaus)",
        xlabel="qubits",
        ylabel="variance over initializations",
        yscale="log",
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
