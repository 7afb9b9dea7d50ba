"""Where a noise model acts in a circuit (its sites) and how one trajectory picks a branch at each.

A channel with Kraus operators ``K_k`` is unravelled with branch probabilities that do not depend on the
state: ``q_k = Tr(K_k† K_k) / 2`` (they sum to 1 because ``Σ K_k† K_k = 1``), and branch ``k`` applies
``M_k = K_k / √q_k`` without renormalising. Then ``E[M_k ρ M_k†] = Σ_k K_k ρ K_k†``: the mean of a
trajectory's ``⟨ψ|O|ψ⟩`` is the density-matrix value, and since the ``q_k`` do not depend on the angles
the mean of its gradient is the gradient of that value. For a Pauli channel ``q_k`` are the Pauli
probabilities and ``M_k`` the Paulis themselves (unitary); for amplitude damping ``q_1 = γ/2``.
"""

from __future__ import annotations

import functools
import math

import attrs
import numba
import numpy as np
import torch

from hqf.quantum.circuit import Circuit
from hqf.quantum.noise import IDENTITY, PAULI_X, PAULI_Y, PAULI_Z, Channel, NoiseModel


@attrs.frozen(eq=False)
class Unravelling:
    """One channel's branches: ``matrices[k]`` (2×2, ``K_k/√q_k``) drawn with probability ``probabilities[k]``."""

    matrices: np.ndarray
    probabilities: np.ndarray
    #: every branch is unitary (a Pauli): the adjoint pass undoes it instead of restoring a stored state
    unitary: bool
    #: branch 0 is the identity: a row drawing it is left alone
    identity_first: bool
    #: each branch's Pauli (0 I, 1 X, 2 Y, 3 Z) when the channel is a Pauli channel, else -1
    letters: np.ndarray


def unravel(channel: Channel) -> Unravelling:
    """The branches of ``channel`` with non-zero probability (a Pauli channel: identity first, then X, Y, Z)."""
    paulis = channel.pauli_probabilities()
    if paulis is not None:
        px, py, pz = paulis
        pairs = [(max(0.0, 1.0 - px - py - pz), IDENTITY), (px, PAULI_X), (py, PAULI_Y), (pz, PAULI_Z)]
        kept = [(q, m, letter) for letter, (q, m) in enumerate(pairs) if q > 0]
        return Unravelling(
            np.array([m for _, m, _ in kept]),
            np.array([q for q, _, _ in kept]),
            True,
            kept[0][2] == 0,
            np.array([letter for _, _, letter in kept], dtype=np.int64),
        )
    kept = []
    for k in channel.kraus():
        q = float(np.trace(k.conj().T @ k).real) / 2
        if q > 0:
            kept.append((q, k / math.sqrt(q)))
    total = sum(q for q, _ in kept)
    return Unravelling(
        np.array([m for _, m in kept]),
        np.array([q / total for q, _ in kept]),
        False,
        False,
        np.full(len(kept), -1, dtype=np.int64),
    )


@numba.njit(cache=True, nogil=True)
def choose(uniform, channel, edges):
    """``[rows, sites]``: the branch where each uniform draw falls among its site's channel's ``edges``."""
    out = np.empty(uniform.shape, dtype=np.int64)
    for r in range(uniform.shape[0]):
        for s in range(uniform.shape[1]):
            e, u, k = edges[channel[s]], uniform[r, s], 0
            while k < e.shape[0] and u >= e[k]:
                k += 1
            out[r, s] = k
    return out


@attrs.frozen(eq=False)
class Sites:
    """The noise sites of a circuit, in circuit order: site ``s`` follows operation ``op[s]`` on ``wire[s]``
    and draws from unravelling ``channel[s]`` of :attr:`unravellings` (identity channels have no site)."""

    op: np.ndarray
    wire: np.ndarray
    channel: np.ndarray
    unravellings: tuple[Unravelling, ...]

    @property
    def count(self) -> int:
        """How many sites."""
        return int(self.op.shape[0])

    def after(self, op_index: int) -> range:
        """The sites following operation ``op_index``."""
        first, last = np.searchsorted(self.op, [op_index, op_index + 1])
        return range(int(first), int(last))

    def draw(self, rows: int, generator: torch.Generator) -> np.ndarray:
        """``[rows, sites]`` int64: each row's branch at each site, from ``rows × sites`` uniform draws of
        ``generator`` (float64; branch ``k`` where the draw falls in ``[q_0 + … + q_{k-1}, q_0 + … + q_k)``)."""
        uniform = torch.rand((rows, self.count), generator=generator, dtype=torch.float64).numpy()
        return choose(uniform, self.channel, self.edges)

    def draw_keyed(self, rows: int, seed: int, key: int) -> np.ndarray:
        """:meth:`draw` from the uniform draws of :func:`keyed_uniform` of ``(seed, key)``: the first ``m``
        rows are the same for every ``rows >= m``."""
        return choose(keyed_uniform(rows, self.count, seed, key), self.channel, self.edges)

    @functools.cached_property
    def edges(self) -> np.ndarray:
        """``[channels, width]``: each unravelling's cumulative probabilities but the last, padded with ``inf``."""
        width = max((len(u.probabilities) for u in self.unravellings), default=1)
        edges = np.full((len(self.unravellings), max(width - 1, 1)), np.inf)
        for c, u in enumerate(self.unravellings):
            edges[c, : len(u.probabilities) - 1] = np.cumsum(u.probabilities)[:-1]
        return edges

    @property
    def unitary(self) -> np.ndarray:
        """``[sites]`` bool: the site's branches are all unitary."""
        return np.array([self.unravellings[c].unitary for c in self.channel], dtype=np.bool_)


def keyed_uniform(rows: int, count: int, seed: int, key: int) -> np.ndarray:
    """``[rows, count]`` float64 uniform draws in ``[0, 1)`` that depend on ``(seed, key)`` alone (Philox
    seeded by ``SeedSequence((seed, key))``, filled row by row): row ``r`` is the same whatever ``rows``."""
    generator = np.random.Generator(np.random.Philox(np.random.SeedSequence((seed, key))))
    return generator.random((rows, count))


def sites(circuit: Circuit, noise: NoiseModel) -> Sites:
    """The :class:`Sites` of ``noise`` in ``circuit``."""
    index: dict[Channel, int] = {}
    unravellings: list[Unravelling] = []
    ops, wires, channels = [], [], []
    for o, op in enumerate(circuit.operations):
        for wire, channel in noise.after(op):
            if channel.is_identity:
                continue
            if channel not in index:
                index[channel] = len(unravellings)
                unravellings.append(unravel(channel))
            ops.append(o)
            wires.append(wire)
            channels.append(index[channel])
    return Sites(
        np.array(ops, dtype=np.int64),
        np.array(wires, dtype=np.int64),
        np.array(channels, dtype=np.int64),
        tuple(unravellings),
    )
