"""What a backend's values must be: the declared shape, finite, each within its observable's range.

:func:`check_outputs` is applied by :func:`hqf.quantum.gradients.expval` to every value a backend returns
(its ``expval``, ``expval_broadcast``, the shifted values of the parameter-shift rule) and
:func:`check_vjp` to a native vector-Jacobian product, so training, evaluation, ``hqf predict`` and
``hqf bench`` all see a broken backend as a :class:`~hqf.errors.BackendContractError` naming it.

The ranges: a Pauli word's value lies in ``[−1, 1]``; a Hamiltonian ``Σ_k c_k P_k``'s in
``[−Σ|c_k|, Σ|c_k|]``; each output of ``Probs`` in ``[0, 1]``, and one ``Probs``'s outputs sum to 1.
Each bound ``b`` holds up to ``t·max(b, 1)`` with ``t`` = :func:`tolerance` (``1e-6`` in float64,
``1e-3`` in float32 or narrower); a sum of ``2**k`` probabilities is 1 up to ``k·t``. Values that are
not expectation values of one state are checked for shape and finiteness only: a backend declaring
``Backend.bounded`` False (mitigated extrapolations) or ``Capabilities.estimates`` (Monte Carlo
trajectories, whose unbiased one-branch estimates carry weights beyond the range).

Cost: for circuits of Pauli words alone one reduction (``max |v|``, which is NaN for NaN values) and
one host sync per call (up to :data:`SMALL` values, a loop in Python instead: cheaper at batch 1); the
slower checks and the message run only when that one fails.
"""

from __future__ import annotations

import functools
import math

import attrs
import torch

from hqf.errors import BackendContractError
from hqf.quantum.circuit import Circuit, Hamiltonian, Probs

#: how far a value of each real dtype may lie outside its observable's range, relative to the bound (or to
#: 1, when the bound is smaller: a Hamiltonian with tiny coefficients)
TOLERANCES = {torch.float64: 1e-6, torch.float32: 1e-3, torch.float16: 1e-3, torch.bfloat16: 1e-3}


#: up to this many values are checked in Python, above it by one torch reduction
SMALL = 64


def tolerance(dtype: torch.dtype) -> float:
    """:data:`TOLERANCES` of ``dtype``."""
    return TOLERANCES[dtype]


@attrs.frozen
class _Ranges:
    """A circuit's output ranges: ``bounds[r]`` for ``|v_r|``, the ``Probs`` blocks ``(start, stop, k)``,
    a label per output and its range as text."""

    bounds: tuple[float, ...]
    probs: tuple[tuple[int, int, int], ...]
    labels: tuple[str, ...]
    spans: tuple[str, ...]
    width: int = attrs.field(init=False)
    largest: float = attrs.field(init=False)
    #: every output has the same bound and none is a probability: ``max |v|`` alone decides
    uniform: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        largest = max(self.bounds)
        object.__setattr__(self, "width", len(self.bounds))
        object.__setattr__(self, "largest", largest)
        object.__setattr__(self, "uniform", not self.probs and min(self.bounds) == largest)


@functools.lru_cache(maxsize=256)
def ranges(circuit: Circuit) -> _Ranges:
    """The output ranges of ``circuit`` (cached per circuit)."""
    bounds, probs, labels, spans = [], [], [], []
    for obs in circuit.observables:
        if isinstance(obs, Probs):
            start = len(bounds)
            probs.append((start, start + obs.n_outputs, len(obs.wires)))
            bounds += [1.0] * obs.n_outputs
            labels += [f"{obs}[{i}]" for i in range(obs.n_outputs)]
            spans += ["[0, 1]"] * obs.n_outputs
        else:
            bound = sum(abs(c) for c, _ in obs.terms) if isinstance(obs, Hamiltonian) else 1.0
            bounds.append(bound)
            labels.append(f"<{obs}>")
            spans.append(f"[{-bound:g}, {bound:g}]")
    return _Ranges(tuple(bounds), tuple(probs), tuple(labels), tuple(spans))


def check_outputs(
    backend: str,
    circuit: Circuit,
    values: object,
    what: str = "expval",
    leading: tuple[int, ...] | None = None,
    bounded: bool = True,
) -> None:
    """Raise :class:`BackendContractError` naming ``backend`` unless ``values`` is a real tensor
    ``[..., R]`` (``[*leading, R]`` when ``leading`` is given) of finite values in ``circuit``'s output
    ranges (only finite unless ``bounded``). ``what`` names the method that returned them."""
    spec = ranges(circuit)
    if not isinstance(values, torch.Tensor):
        raise BackendContractError(backend, f"{what} returned {type(values).__name__}, not a torch.Tensor")
    shape = values.shape
    if shape[-1:] != (spec.width,) or (leading is not None and shape[:-1] != leading):
        expected = [*(leading if leading is not None else shape[:-1]), spec.width]
        raise BackendContractError(backend, f"{what} returned shape {list(shape)}; expected {expected}")
    tol = TOLERANCES.get(values.dtype)
    if tol is None:
        raise BackendContractError(backend, f"{what} returned dtype {values.dtype}; expected real values")
    if not values.numel():
        return
    if spec.uniform:
        limit = spec.largest + tol * max(spec.largest, 1.0)
        if values.numel() <= SMALL:  # a few values: cheaper in Python than a torch reduction (batch-1 latency)
            rows = values.tolist() if values.dim() == 2 else values.detach().reshape(-1, spec.width).tolist()
            if all(-limit <= v <= limit for row in rows for v in row):  # False for NaN
                return
        elif float(values.detach().abs().amax()) <= limit:  # NaN when any value is NaN: the test fails then
            return
    flat = values.detach().reshape(-1, spec.width)
    if not bounded:
        if bool(torch.isfinite(flat).all()):
            return
        raise BackendContractError(backend, f"{what} returned {_non_finite(flat, spec)}")
    problem = _problem(flat, spec, tol)
    if problem is not None:
        raise BackendContractError(backend, f"{what} returned {problem}")


def _non_finite(flat: torch.Tensor, spec: _Ranges) -> str:
    column = int((~torch.isfinite(flat)).any(dim=0).nonzero()[0])
    return f"NaN or infinity in output {column} ({spec.labels[column]})"


def _problem(flat: torch.Tensor, spec: _Ranges, tol: float) -> str | None:
    """What is wrong with ``flat[N, R]`` (None: nothing)."""
    if not bool(torch.isfinite(flat).all()):
        return _non_finite(flat, spec)
    bounds = torch.tensor(spec.bounds, dtype=flat.dtype, device=flat.device)
    excess = flat.abs() - (bounds + tol * bounds.clamp(min=1.0))
    if bool((excess > 0).any()):
        row, column = (int(i) for i in (excess == excess.max()).nonzero()[0])
        return f"{spec.labels[column]} = {float(flat[row, column]):.3g}, outside {spec.spans[column]}"
    for start, stop, k in spec.probs:
        block = flat[:, start:stop]
        low = block.min(dim=1)
        if float(low.values.min()) < -tol:
            row = int(low.values.argmin())
            column = start + int(low.indices[row])
            return f"{spec.labels[column]} = {float(flat[row, column]):.3g}, outside {spec.spans[column]}"
        sums = block.sum(dim=1)
        off = (sums - 1).abs()
        if float(off.max()) > tol * k:
            label = spec.labels[start].rsplit("[", 1)[0]
            return f"{label} that sum to {float(sums[int(off.argmax())]):.3g}, not 1"
    return None


def check_vjp(backend: str, values: object, shape: tuple[int, ...]) -> None:
    """Raise :class:`BackendContractError` naming ``backend`` unless its vector-Jacobian product
    ``values`` is a finite real tensor of ``shape``."""
    if not isinstance(values, torch.Tensor):
        raise BackendContractError(backend, f"vjp returned {type(values).__name__}, not a torch.Tensor")
    if tuple(values.shape) != tuple(shape):
        raise BackendContractError(backend, f"vjp returned shape {list(values.shape)}; expected {list(shape)}")
    if values.numel() and not math.isfinite(float(values.detach().abs().amax())):
        raise BackendContractError(backend, "vjp returned NaN or infinity")
