"""The scalability study of seed 002: time per epoch, memory and gradient variance against qubits and depth,
and for a matrix-product-state backend against its bond dimension.

Circuit studied: an RY data-encoding layer on every qubit followed by the ``hea{Q}x{L}`` ansatz.

- **Time per epoch**: forward and backward passes (the backend's default gradient) over ``samples``
  random inputs in mini-batches of ``batch`` rows, wall-clock seconds, one warm-up batch excluded; the
  same epoch forward only (no gradients); both also per row, in milliseconds.
- **Memory**: the analytical size of one mini-batch of states — state vectors: ``batch · 2^Q`` complex
  amplitudes (a density-matrix backend holds ``4^Q`` per sample instead); a matrix-product state: its site
  tensors ``[batch, χ_i, 2, χ_{i+1}]`` with every bond at the largest reached, ``χ_i ≤ min(χ_max, 2^i,
  2^(Q−i))`` (an upper bound) — and the peak resident set size while the point ran (on Linux the
  high-water mark is reset before each point; it includes memory the process kept from earlier points, so
  read it as an upper bound; elsewhere it is the process's peak so far).
- **Truncation** (a backend that truncates, such as ``torch-mps``, holding ``discarded_weight`` per row
  and ``max_bond`` after each call): the discarded weight per row (the sum over all splits of the dropped
  squared singular values), its mean over the epoch's rows or the variance's draws, and the largest bond
  dimension reached.
- **Gradient variance** (barren plateaus): ``Var[∂C/∂θ_1]`` over ``inits`` independent uniform
  initializations of the ansatz weights in ``[0, 2π)`` (input angles also uniform), where ``θ_1`` is
  the ansatz's first trainable angle (RY on wire 0 in layer 1) and ``C`` is a *local* cost
  ``⟨Z0 Z1⟩`` or a *global* cost ``⟨Z0 Z1 … Z_{Q−1}⟩``. McClean et al. (2018) and Cerezo et al. (2021)
  predict exponential decay in ``Q`` for the global cost and for deep circuits. The decay rate is the
  slope of ``log2 Var`` against ``Q`` by least squares.
"""

from __future__ import annotations

import math
import re
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
    """One point's time and memory; ``bond``, ``discarded_weight`` and ``max_bond`` are None for a backend
    that does not truncate."""

    n_qubits: int
    n_layers: int
    batch: int
    samples: int
    epoch_seconds: float
    state_bytes: int
    peak_rss_mb: float
    forward_ms_per_row: float = math.nan
    forward_backward_ms_per_row: float = math.nan
    bond: int | None = None
    discarded_weight: float | None = None
    max_bond: int | None = None


@attrs.frozen
class VariancePoint:
    """``Var[∂C/∂θ_1]`` at one point; ``discarded_weight`` is the mean over the draws (None: no truncation)."""

    n_qubits: int
    n_layers: int
    cost: str
    inits: int
    variance: float
    mean_abs: float
    bond: int | None = None
    discarded_weight: float | None = None


def reset_peak_rss() -> None:
    """Start a new high-water mark of the resident set size (Linux); elsewhere the peak stays the process's."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            return int(re.search(r"VmHWM:\s+(\d+)", fh.read()).group(1)) / 1024
    except (OSError, AttributeError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _discarded(backend: Backend) -> torch.Tensor | None:
    """The discarded weight per row of the backend's last call (None for a backend that does not truncate)."""
    weight = getattr(backend, "discarded_weight", None)
    return None if weight is None else weight.detach()


def mps_bytes(n_qubits: int, batch: int, bond: int, item_bytes: int) -> int:
    """Bytes of ``batch`` matrix-product states of ``n_qubits`` sites with every bond at most ``bond``."""
    dims = [min(bond, 2**i, 2 ** (n_qubits - i)) for i in range(n_qubits + 1)]
    return batch * item_bytes * sum(2 * dims[i] * dims[i + 1] for i in range(n_qubits))


def epoch_cost(
    backend: Backend,
    n_qubits: int,
    n_layers: int,
    samples: int = 256,
    batch: int = 64,
    seed: int = 0,
    bond: int | None = None,
) -> CostPoint:
    """Time one epoch forward only and one of forward + backward passes; see the module docstring.
    ``bond``: the bond dimension ``backend`` was made with, recorded in the point."""
    gen = torch.Generator().manual_seed(seed)
    circuit = study_circuit(n_qubits, n_layers)
    n_weights = circuit.n_params - n_qubits
    weights = (torch.rand(n_weights, generator=gen, dtype=torch.float64) * 2 * math.pi).requires_grad_(True)
    data = torch.rand(samples, n_qubits, generator=gen, dtype=torch.float64) * math.pi
    discarded: list[torch.Tensor] = []
    bonds: list[int] = []

    def forward(rows: torch.Tensor) -> None:
        with torch.no_grad():
            expval(backend, circuit, rows, shared=weights)
        weight = _discarded(backend)
        if weight is not None:
            discarded.append(weight)
            bonds.append(backend.max_bond)

    def step(rows: torch.Tensor) -> None:
        expval(backend, circuit, rows, shared=weights).sum().backward()

    reset_peak_rss()
    first = data[: min(batch, samples)]
    forward(first)  # warm-up: caches, lazy imports
    step(first)
    discarded.clear()
    bonds.clear()
    seconds = {}
    for name, fn in (("forward", forward), ("both", step)):
        start = time.perf_counter()
        for rows in data.split(batch):
            fn(rows)
        seconds[name] = time.perf_counter() - start
    item_bytes = torch.empty((), dtype=backend.complex_dtype).element_size()
    max_bond = max(bonds) if bonds else None
    if max_bond is None:
        state_bytes = min(batch, samples) * 2**n_qubits * item_bytes
    else:
        state_bytes = mps_bytes(n_qubits, min(batch, samples), max_bond, item_bytes)
    return CostPoint(
        n_qubits,
        n_layers,
        batch,
        samples,
        seconds["both"],
        state_bytes,
        _peak_rss_mb(),
        1e3 * seconds["forward"] / samples,
        1e3 * seconds["both"] / samples,
        bond,
        float(torch.cat(discarded).mean()) if discarded else None,
        max_bond,
    )


def gradient_variance(
    backend: Backend,
    n_qubits: int,
    n_layers: int,
    cost: str = "local",
    inits: int = 200,
    seed: int = 0,
    bond: int | None = None,
) -> VariancePoint:
    """``Var[∂C/∂θ_1]`` over ``inits`` random initializations, one batch of ``inits`` rows on ``backend``
    (made with bond dimension ``bond``, recorded in the point)."""
    circuit = study_circuit(n_qubits, n_layers, cost)
    gen = torch.Generator().manual_seed(seed)
    angles = (torch.rand(inits, circuit.n_params, generator=gen, dtype=torch.float64) * 2 * math.pi).requires_grad_(
        True
    )
    (grad,) = torch.autograd.grad(expval(backend, circuit, angles).sum(), angles)
    g = grad[:, n_qubits].numpy()  # column n_qubits: the first ansatz angle (RY, wire 0, layer 1)
    weight = _discarded(backend)
    return VariancePoint(
        n_qubits,
        n_layers,
        cost,
        inits,
        float(np.var(g, ddof=1)),
        float(np.mean(np.abs(g))),
        bond,
        None if weight is None else float(weight.mean()),
    )


def decay_rate(points: list[VariancePoint]) -> float:
    """Least-squares slope of ``log2 Var`` against the qubit count (NaN with fewer than 2 points)."""
    pts = [p for p in points if p.variance > 1e-20]  # exactly-zero gradients (by symmetry) carry no rate
    if len({p.n_qubits for p in pts}) < 2:
        return math.nan
    q = np.array([p.n_qubits for p in pts], dtype=float)
    return float(np.polyfit(q, np.log2([p.variance for p in pts]), 1)[0])


def table(costs: list[CostPoint], variances: list[VariancePoint]) -> list[str]:
    """The study as Markdown lines: one row per point, then the slope of ``log2 Var`` per cost, depth and bond."""
    bonded = any(c.bond is not None for c in costs)
    head = ["qubits", "layers"] + (["χ"] if bonded else [])
    head += ["fwd ms/row", "fwd+bwd ms/row", "s/epoch", "state MiB", "peak RSS MiB"]
    head += (["bond reached", "discarded weight"] if bonded else []) + ["Var local", "Var global"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in costs:
        var = {
            v.cost: v.variance
            for v in variances
            if (v.n_qubits, v.n_layers, v.bond) == (c.n_qubits, c.n_layers, c.bond)
        }
        cells = [str(c.n_qubits), str(c.n_layers)] + ([str(c.bond)] if bonded else [])
        cells += [f"{c.forward_ms_per_row:.2f}", f"{c.forward_backward_ms_per_row:.2f}", f"{c.epoch_seconds:.3f}"]
        cells += [f"{c.state_bytes / 2**20:.3f}", f"{c.peak_rss_mb:.0f}"]
        if bonded:
            cells += [str(c.max_bond), f"{c.discarded_weight:.3g}"]
        cells += [f"{var.get('local', math.nan):.2e}", f"{var.get('global', math.nan):.2e}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for cost, n_layers, bond in sorted({(v.cost, v.n_layers, v.bond or 0) for v in variances}):
        pts = [v for v in variances if (v.cost, v.n_layers, v.bond or 0) == (cost, n_layers, bond)]
        lines.append(
            f"- {cost} cost, {_label(n_layers, bond or None)}: log2 Var changes by {decay_rate(pts):+.2f} per qubit"
        )
    return lines


def _label(n_layers: int, bond: int | None) -> str:
    return f"{n_layers} layer(s)" + ("" if bond is None else f", χ = {bond}")


def plot(costs: list[CostPoint], variances: list[VariancePoint], path) -> None:
    """Three panels: time per row and state memory against qubits, gradient variance (log scale); one line
    per depth (and bond dimension)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    groups = sorted({(c.n_layers, c.bond or 0) for c in costs} | {(v.n_layers, v.bond or 0) for v in variances})
    color = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    for n_layers, bond in sorted({(c.n_layers, c.bond or 0) for c in costs}):
        pts = sorted((c for c in costs if (c.n_layers, c.bond or 0) == (n_layers, bond)), key=lambda c: c.n_qubits)
        qs = [c.n_qubits for c in pts]
        label = _label(n_layers, bond or None)
        axes[0].plot(qs, [c.forward_backward_ms_per_row for c in pts], "o-", color=color[n_layers, bond], label=label)
        axes[0].plot(qs, [c.forward_ms_per_row for c in pts], "o:", color=color[n_layers, bond])
        axes[1].plot(qs, [c.state_bytes / 2**20 for c in pts], "o-", color=color[n_layers, bond], label=label)
    axes[0].set(
        title="Time per row: forward + backward (solid), forward (dotted)",
        xlabel="qubits",
        ylabel="ms per row",
        yscale="log",
    )
    axes[1].set(
        title=f"State memory of one mini-batch (batch {costs[0].batch})",
        xlabel="qubits",
        ylabel="MiB",
        yscale="log",
    )
    for cost, n_layers, bond in sorted({(v.cost, v.n_layers, v.bond or 0) for v in variances}):
        key = (cost, n_layers, bond)
        pts = sorted((v for v in variances if (v.cost, v.n_layers, v.bond or 0) == key), key=lambda v: v.n_qubits)
        style = "o-" if cost == "global" else "s--"
        axes[2].plot(
            [v.n_qubits for v in pts],
            [v.variance for v in pts],
            style,
            color=color[n_layers, bond],
            label=f"{cost} cost, {_label(n_layers, bond or None)}",
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
