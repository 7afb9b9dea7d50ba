"""``torch-dm``: an exact density-matrix simulator in PyTorch, with hqf's depolarizing gate noise.

The batch of density matrices is a tensor ``[B, 4**n]``: ``ρ[r, c]`` flattened, the row bits being wires
``0..n-1`` and the column bits wires ``n..2n-1`` of a ``2n``-wire vector (wire 0 most significant).
A one-qubit gate ``U`` followed by ``D_p`` is one superoperator on that wire's (row, column) bits;
CNOT and CZ permute or sign the entries; any other gate of the vocabulary is ``U ρ U†``, ``U`` on the
row bits of its wires and ``U*`` on their column bits; then ``D_p`` acts on each wire the gate acts on
(see :mod:`hqf.quantum.noise`). Read-outs: Pauli words, Hamiltonians and ``Probs`` (the diagonal's
marginals). Differentiable by autograd.
Memory is ``16 · 4**n`` bytes per sample: meant for small circuits (≤ 10 qubits).
"""

from __future__ import annotations

import functools

import torch

from hqf.backends.torch.plain import apply_matrix
from hqf.quantum.circuit import GATES, OBSERVABLE_KINDS, Circuit, Hamiltonian, Probs
from hqf.quantum.gates import ROTATIONS, bits, gate_matrices, one_qubit_matrices, pauli_action
from hqf.registry.hookspecs import hookimpl
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.quantum.noise import check_probability, noisy_wires


@functools.lru_cache(maxsize=128)
def _cnot_permutation(n: int, control: int, target: int) -> torch.Tensor:
    """Index map of CNOT on the rows and on the columns of the flattened ``2n``-wire vector."""
    index = torch.arange(4**n)
    for c, t in ((control, target), (n + control, n + target)):
        flip = 1 << (2 * n - 1 - t)
        index = torch.where(bits(2 * n, c).bool(), index ^ flip, index)
    return index


@functools.lru_cache(maxsize=128)
def _cz_signs(n: int, a: int, b: int) -> torch.Tensor:
    rows = bits(2 * n, a) & bits(2 * n, b)
    cols = bits(2 * n, n + a) & bits(2 * n, n + b)
    return (1 - 2 * (rows ^ cols)).to(torch.float64)


def depolarizing_superoperator(p: float, dtype: torch.dtype, device) -> torch.Tensor:
    """``D_p`` on one wire as a ``[2, 2, 2, 2]`` map ``(i', j', i, j)`` of that wire's (row, column) bits."""
    s = torch.zeros(2, 2, 2, 2, dtype=dtype, device=device)
    for i in range(2):
        s[i, i, i, i] = 1 - 2 * p / 3
        s[1 - i, 1 - i, i, i] = 2 * p / 3
    s[0, 1, 0, 1] = s[1, 0, 1, 0] = 1 - 4 * p / 3
    return s


def _apply_super(rho: torch.Tensor, n: int, wire: int, s: torch.Tensor) -> torch.Tensor:
    """Apply a superoperator ``s`` (``[2,2,2,2]`` or batched ``[B,2,2,2,2]``) to ``wire``'s (row, col) bits."""
    batch = rho.shape[0]
    left, right = 2**wire, 2 ** (n - wire - 1)
    view = rho.reshape(batch, left, 2, right, left, 2, right)
    spec = "bIJij,blirmjq->blIrmJq" if s.dim() == 5 else "IJij,blirmjq->blIrmJq"
    return torch.einsum(spec, s, view).reshape(batch, -1)


def depolarize(rho: torch.Tensor, n: int, wire: int, p: float) -> torch.Tensor:
    """``D_p`` on ``wire``: ``(1 − 4p/3) ρ + (2p/3) · I ⊗ Tr_wire ρ``."""
    return _apply_super(rho, n, wire, depolarizing_superoperator(p, rho.dtype, rho.device))


class TorchDensityMatrixBackend(Backend):
    """Exact mixed-state simulation in PyTorch; option ``depolarizing=p`` adds hqf's gate noise."""

    name = "torch-dm"
    description = "PyTorch density matrix, depolarizing gate noise (option depolarizing=p)"
    capabilities = Capabilities(
        dtypes={"complex128", "complex64"},
        devices={"cpu", "cuda"},
        max_qubits=10,
        gradients={"backprop"},
        noise=True,
        gates=GATES,
        observables=OBSERVABLE_KINDS,
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True)

    def __init__(self, *, depolarizing: float = 0.0, dtype: str = "complex128", device: str = "cpu") -> None:
        super().__init__(dtype=dtype, device=device)
        self.depolarizing = check_probability(depolarizing)

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        n, batch, p = circuit.n_qubits, angles.shape[0], self.depolarizing
        rho = torch.zeros(batch, 4**n, dtype=self.complex_dtype, device=self.device)
        rho[:, 0] = 1
        noise = depolarizing_superoperator(p, self.complex_dtype, self.device) if p > 0 else None
        for op in circuit.operations:
            if op.gate in ("CNOT", "CZ"):
                if op.gate == "CNOT":
                    rho = rho[:, _cnot_permutation(n, *op.wires).to(self.device)]
                else:
                    rho = rho * _cz_signs(n, *op.wires).to(device=self.device, dtype=self.real_dtype)
                if noise is not None:
                    for wire in noisy_wires(op):
                        rho = _apply_super(rho, n, wire, noise)
                continue
            theta = None if op.param is None else angles[:, op.param]
            if op.gate not in ROTATIONS and op.gate not in ("H", "X"):
                rho = self._apply_gate(rho, n, op, theta, noise)
                continue
            m = one_qubit_matrices(op.gate, theta, batch, self.complex_dtype, self.device)
            # U ρ U† on this wire as one superoperator: (i',j',i,j) -> U[i',i] conj(U[j',j]), then D_p
            unitary = torch.einsum("bIi,bJj->bIJij", m, m.conj())
            if noise is not None:
                unitary = torch.einsum("IJkl,bklij->bIJij", noise, unitary)
            rho = _apply_super(rho, n, op.wires[0], unitary)
        return self.measure(rho, circuit).to(out_device)

    def _apply_gate(self, rho: torch.Tensor, n: int, op, theta, noise) -> torch.Tensor:
        """``U ρ U†`` for any gate (``U`` on the row bits of its wires, ``U*`` on the column bits), then ``D_p``."""
        m = gate_matrices(op.gate, theta, rho.shape[0], self.complex_dtype, self.device)
        rho = apply_matrix(rho, 2 * n, op.wires, m)
        rho = apply_matrix(rho, 2 * n, tuple(n + w for w in op.wires), m.conj())
        for wire in noisy_wires(op) if noise is not None else ():
            rho = _apply_super(rho, n, wire, noise)
        return rho

    def measure(self, rho: torch.Tensor, circuit: Circuit) -> torch.Tensor:
        """``Tr(P ρ)`` for each Pauli word (``Σ_i coeff[i] ρ[source[i], i]``), Hamiltonians as weighted
        sums of those, and ``Probs`` as marginals of the diagonal."""
        n = circuit.n_qubits
        matrix = rho.reshape(rho.shape[0], 2**n, 2**n)
        columns = []
        for obs in circuit.observables:
            if isinstance(obs, Probs):
                diagonal = torch.diagonal(matrix, dim1=1, dim2=2).real.reshape(-1, *[2] * n)
                others = [1 + w for w in range(n) if w not in obs.wires]
                summed = diagonal.sum(dim=others) if others else diagonal
                kept = sorted(obs.wires)
                marginal = summed.permute(0, *[1 + kept.index(w) for w in obs.wires]).reshape(rho.shape[0], -1)
                columns += list(marginal.unbind(1))
            elif isinstance(obs, Hamiltonian):
                columns.append(sum(c * self._pauli(matrix, n, word) for c, word in obs.terms))
            else:
                columns.append(self._pauli(matrix, n, obs))
        return torch.stack(columns, dim=1)

    def _pauli(self, matrix: torch.Tensor, n: int, word) -> torch.Tensor:
        """``[B]``: ``Tr(P ρ)`` for one Pauli word."""
        source, coeff = pauli_action(n, word.terms)
        picked = matrix[:, source.to(self.device), torch.arange(2**n, device=self.device)]
        return (picked * coeff.to(device=self.device, dtype=self.complex_dtype)).sum(dim=1).real


@hookimpl
def register_backends(register) -> None:
    register(TorchDensityMatrixBackend)
