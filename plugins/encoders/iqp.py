"""``iqp``: the ZZ feature map of Havlíček et al. (2019), an IQP-type encoding with pairwise terms."""

from __future__ import annotations

import itertools
import math

import torch

from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Encoder

PAIRS = ("all", "linear")
PROJECTIONS = ("auto", "always", "never")


def feature_pairs(n_qubits: int, pairs: str) -> tuple[tuple[int, int], ...]:
    """The coupled wire pairs ``(i, j)``, ``i < j``, in lexicographic order: every pair, or ``(i, i+1)``."""
    if pairs == "linear":
        return tuple((i, i + 1) for i in range(n_qubits - 1))
    return tuple(itertools.combinations(range(n_qubits), 2))


class IQPEncoder(Encoder):
    """Havlíček et al.'s ZZ feature map ("Supervised learning with quantum-enhanced feature spaces",
    Nature 2019), repeated ``reps`` times: per repetition, H on every wire, ``RZ(x_i)`` on wire ``i``,
    then ``RZZ((π − x_i)(π − x_j))`` on every coupled pair ``i < j``.

    Angle layout (``n`` qubits, ``K`` pairs from :func:`feature_pairs`): ``reps`` blocks of ``n + K``
    columns; in block ``r`` (columns from ``r·(n + K)``) column ``i`` is ``x_i`` (the RZ on wire ``i``)
    and column ``n + k`` is ``(π − x_i)(π − x_j)`` for the ``k``-th pair ``(i, j)``. Every column is
    read by one gate, so a repetition repeats the values in new columns. The angles are torch
    functions of ``x`` (gradients reach ``x``). ``RZ(θ) = exp(−iθZ/2)`` and ``RZZ(θ) = exp(−iθ Z⊗Z/2)``.

    The features ``x`` are the input itself when ``in_features == n_qubits`` (``projection`` ``auto``
    or ``never``); otherwise (or with ``projection="always"``) a learned, bounded projection
    ``x = π · tanh(W·input + b)`` (``nn.Linear(in_features, n_qubits)``), as in the ``angle`` encoder.

    Args:
        in_features: width of the input ``[B, in_features]``.
        n_qubits: number of qubits (one feature each).
        reps: repetitions of the block (default 2, as in Havlíček et al.).
        pairs: ``"all"`` (default) couples every pair of wires, ``"linear"`` neighbours ``(i, i+1)``.
        projection: ``"auto"`` (default), ``"always"`` or ``"never"``; ``"never"`` with
            ``in_features != n_qubits`` is an error.

    Raises:
        ValueError: ``reps < 1``, an unknown ``pairs`` or ``projection``, or ``projection="never"``
            with ``in_features != n_qubits``.

    Example::

        >>> enc = IQPEncoder(3, 3, reps=2)
        >>> enc.n_angles, enc(torch.zeros(4, 3)).shape
        (12, torch.Size([4, 12]))
    """

    name = "iqp"

    def __init__(
        self, in_features: int, n_qubits: int, *, reps: int = 2, pairs: str = "all", projection: str = "auto"
    ) -> None:
        super().__init__(in_features, n_qubits)
        if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
            raise ValueError(f"'reps' must be an integer >= 1 (got {reps!r})")
        if pairs not in PAIRS:
            raise ValueError(f"'pairs' must be one of {PAIRS} (got {pairs!r})")
        if projection not in PROJECTIONS:
            raise ValueError(f"'projection' must be one of {PROJECTIONS} (got {projection!r})")
        if projection == "never" and in_features != n_qubits:
            raise ValueError(
                f"projection='never' needs in_features == n_qubits (got {in_features} features "
                f"for {n_qubits} qubits); use projection='auto' for a learned projection"
            )
        self.reps, self.pairs = reps, pairs
        self._pairs = feature_pairs(n_qubits, pairs)
        use_projection = projection == "always" or (projection == "auto" and in_features != n_qubits)
        self.projection = torch.nn.Linear(in_features, n_qubits) if use_projection else None

    def operations(self) -> tuple[Operation, ...]:
        n, width = self.n_qubits, self.n_qubits + len(self._pairs)
        ops: list[Operation] = []
        for rep in range(self.reps):
            base = rep * width
            ops += [Operation("H", q) for q in range(n)]
            ops += [Operation("RZ", q, base + q) for q in range(n)]
            ops += [Operation("RZZ", pair, base + n + k) for k, pair in enumerate(self._pairs)]
        return tuple(ops)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The features ``x[B, n_qubits]`` the map encodes: the input, or its projection."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of shape [B, {self.in_features}] (got {list(x.shape)})")
        if self.projection is None:
            return x
        dtype = self.projection.weight.dtype
        return math.pi * torch.tanh(self.projection(x if x.dtype == dtype else x.to(dtype)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        if self._pairs:
            first, second = (list(side) for side in zip(*self._pairs))
            couplings = (math.pi - features[:, first]) * (math.pi - features[:, second])
            block = torch.cat([features, couplings], dim=1)
        else:
            block = features
        return block.repeat(1, self.reps)

    def extra_repr(self) -> str:
        mode = "projection" if self.projection is not None else "features"
        return f"{self.in_features} -> {self.n_qubits} qubits, reps={self.reps}, pairs={self.pairs}, {mode}"
