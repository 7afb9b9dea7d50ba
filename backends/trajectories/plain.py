"""The trajectories' plain path: the rows' states ``[rows, 2**n]`` gate by gate in torch (any gate, any
observable, any size; differentiable by autograd), each row's drawn branch applied at every site.

A site's rows that drew the identity branch of a Pauli channel are left alone; the others get their
branch's 2×2 matrix on the site's wire (a Pauli, or ``K_k/√q_k``, not renormalised).
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from hqf.backends.readout import Readout
from hqf.backends.torch.plain import apply, apply_matrix, initial_state, measure
from hqf.backends.trajectories.branches import Sites
from hqf.quantum.circuit import Circuit


def word_values(
    circuit: Circuit, sites: Sites, branches: np.ndarray, angles: torch.Tensor, words: Readout, complex_dtype
) -> torch.Tensor:
    """``[rows, M]``: each row's ``⟨ψ|P|ψ⟩`` of the Pauli words ``words.words`` on its trajectory, for
    ``angles[rows, P]`` and the drawn ``branches[rows, sites]``."""
    n = circuit.n_qubits
    state = initial_state(n, angles.shape[0], complex_dtype, angles.device)
    matrices = [torch.as_tensor(u.matrices, dtype=complex_dtype, device=angles.device) for u in sites.unravellings]
    drawn = torch.as_tensor(branches, device=angles.device)
    for o, op in enumerate(circuit.operations):
        state = apply(state, n, op, angles)
        for s in sites.after(o):
            channel = int(sites.channel[s])
            branch = drawn[:, s]
            rows = torch.nonzero(branch != 0).flatten() if sites.unravellings[channel].identity_first else None
            if rows is None:
                state = apply_matrix(state, n, (int(sites.wire[s]),), matrices[channel][branch])
            elif rows.numel():
                hit = apply_matrix(state[rows], n, (int(sites.wire[s]),), matrices[channel][branch[rows]])
                state = state.index_copy(0, rows, hit)
    return measure(state, attrs.evolve(circuit, observables=words.words))
