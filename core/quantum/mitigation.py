"""Zero-noise extrapolation (ZNE): expectation values measured at amplified noise, extrapolated to none.

The noise is scaled by a factor ``λ ≥ 1`` in one of two ways (Temme et al. 2017; Giurgica-Tiron et
al. 2020):

- ``folding``: the whole circuit ``U`` is replaced by ``U (U† U)^k`` (global unitary folding), which is
  the same unitary with ``λ = 2k + 1`` times as many gates, so ``λ`` times the gate noise of a backend
  that adds noise per gate (hqf's depolarizing model, :mod:`hqf.quantum.noise`). ``U†`` is
  :func:`hqf.quantum.circuit.adjoint`, its columns holding the negated angles. Needs one backend.
- ``channel``: the same circuit on a backend whose noise strength is ``λ·p``: needs a factory
  ``scale -> backend`` (:func:`hqf.registry.make.depolarizing_factory`).

Then the values ``E(λ_i)`` are extrapolated to ``λ = 0``:

- ``linear``: the least-squares line through the points, read at 0;
- ``richardson``: the polynomial of degree ``S − 1`` through the ``S`` points, read at 0:
  ``E(0) = Σ_i E(λ_i) Π_{j≠i} λ_j / (λ_j − λ_i)`` (exact for such a polynomial).

Example::

    >>> import torch
    >>> from hqf.quantum.circuit import Circuit, Operation, PauliWord
    >>> circuit = Circuit(1, [Operation("RX", 0, 0)], [PauliWord.z(0)])
    >>> from hqf.registry.make import depolarizing_factory
    >>> result = zne(circuit, torch.tensor([[0.3]]), depolarizing_factory("torch-dm", 0.02), scaling="channel")
    >>> abs(float(result.estimate[0, 0]) - math.cos(0.3)) < 1e-3
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import attrs
import torch

from hqf.quantum.circuit import Circuit, adjoint, compose
from hqf.quantum.gradients import expval
from hqf.quantum.interfaces import Backend

SCALINGS = ("folding", "channel")
METHODS = ("linear", "richardson")


def fold(circuit: Circuit, scale: int) -> Circuit:
    """``U (U† U)^k`` for ``scale = 2k + 1``: the same unitary, ``scale`` times the gates; its angle rows
    are :func:`folded_angles`."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1 or scale % 2 == 0:
        raise ValueError(f"a folding scale must be an odd integer >= 1 (got {scale!r})")
    operations = circuit.operations
    blocks = [operations] + [adjoint(operations), operations] * ((scale - 1) // 2)
    return compose(circuit.n_qubits, blocks, circuit.observables)


def folded_angles(angles: torch.Tensor, scale: int) -> torch.Tensor:
    """The rows of :func:`fold` ``(circuit, scale)`` for ``angles[B, P]``: ``[θ, −θ, θ, …]``."""
    return torch.cat([angles] + [-angles, angles] * ((scale - 1) // 2), dim=1)


def extrapolation_weights(scales: Sequence[float], method: str) -> torch.Tensor:
    """``[S]`` weights ``w`` with ``E(0) ≈ Σ_i w_i E(λ_i)`` for ``method`` (both are linear in the values)."""
    if method not in METHODS:
        raise ValueError(f"'method' must be one of {', '.join(METHODS)} (got {method!r})")
    x = torch.tensor([float(s) for s in scales], dtype=torch.float64)
    if method == "richardson":
        weights = [math.prod(x[j] / (x[j] - x[i]) for j in range(len(x)) if j != i) for i in range(len(x))]
        return torch.stack([torch.as_tensor(w, dtype=torch.float64) for w in weights])
    design = torch.stack([torch.ones_like(x), x], dim=1)  # least squares: intercept row of the pseudo-inverse
    return torch.linalg.pinv(design)[0]


def extrapolate(scales: Sequence[float], values: torch.Tensor, method: str = "richardson") -> torch.Tensor:
    """``values[S, …]`` measured at ``scales[S]`` extrapolated to zero noise: ``[…]``."""
    check_scales(scales)
    if values.shape[0] != len(scales):
        raise ValueError(f"'values' must have one entry per scale on its first axis ({len(scales)}; got {values.shape[0]})")
    weights = extrapolation_weights(scales, method).to(values.dtype)
    return torch.tensordot(weights, values, dims=1)


def check_scales(scales: Sequence[float]) -> None:
    """Raise ``ValueError`` unless ``scales`` holds at least two distinct finite numbers ``>= 1``."""
    values = [float(s) for s in scales]
    if len(values) < 2 or len(set(values)) != len(values) or not all(math.isfinite(s) and s >= 1 for s in values):
        raise ValueError(f"'scales' must be at least two distinct numbers >= 1 (got {list(scales)})")


def _odd_integers(scales: Sequence[float]) -> list[int]:
    """The folding scales as ints; a scale that is not an odd integer is a ``ValueError``."""
    if any(isinstance(s, bool) or float(s) != int(s) or int(s) % 2 == 0 for s in scales):
        raise ValueError(f"folding scales must be odd integers >= 1 (got {list(scales)})")
    return [int(s) for s in scales]


@attrs.frozen
class ZNEResult:
    """What :func:`zne` measured and its zero-noise estimate."""

    scales: tuple[float, ...]
    #: ``[S, B, R]``: the expectation values at each noise scale
    values: torch.Tensor
    #: ``[B, R]``: the values extrapolated to zero noise
    estimate: torch.Tensor
    method: str
    scaling: str


def zne(
    circuit: Circuit,
    angles: torch.Tensor,
    backend: Backend | Callable[[float], Backend],
    scales: Sequence[float] = (1, 3, 5),
    method: str = "richardson",
    scaling: str = "folding",
) -> ZNEResult:
    """Zero-noise estimate of ``circuit``'s expectation values at ``angles[B, P]``.

    Args:
        circuit: any circuit the backend runs.
        angles: its angle rows.
        backend: a noisy backend (``folding``), or ``scale -> backend`` (``channel``; e.g.
            :func:`depolarizing_factory`; ``folding`` accepts a factory too and calls it at scale 1).
        scales: the noise factors ``λ_i`` (``folding``: odd integers).
        method: ``richardson`` or ``linear``.
        scaling: ``folding`` or ``channel``.

    Raises:
        ValueError: an unknown method or scaling, unsuitable scales, or ``channel`` without a factory.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"'scaling' must be one of {', '.join(SCALINGS)} (got {scaling!r})")
    check_scales(scales)
    extrapolation_weights(scales, method)  # the method is known before any circuit runs
    factory = None if isinstance(backend, Backend) else backend
    if scaling == "channel" and factory is None:
        raise ValueError("'channel' scaling needs a factory scale -> backend (e.g. depolarizing_factory)")
    with torch.no_grad():
        if scaling == "folding":
            folds = [fold(circuit, scale) for scale in _odd_integers(scales)]  # every scale checked first
            noisy = backend if factory is None else factory(1)
            values = [
                expval(noisy, folded, folded_angles(angles.to(noisy.real_dtype), scale))
                for folded, scale in zip(folds, _odd_integers(scales))
            ]
        else:
            values = []
            for scale in scales:
                noisy = factory(scale)
                values.append(expval(noisy, circuit, angles.to(noisy.real_dtype)))
    stacked = torch.stack([v.to("cpu", torch.float64) for v in values])
    return ZNEResult(tuple(float(s) for s in scales), stacked, extrapolate(scales, stacked, method), method, scaling)
