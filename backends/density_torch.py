"""``torch-dm``: an exact density-matrix simulator in PyTorch, under any :class:`~hqf.quantum.noise.NoiseModel`.

The batch of density matrices is a tensor ``[B, 4**n]``: ``ρ[r, c]`` flattened, the row bits being wires
``0..n-1`` and the column bits wires ``n..2n-1`` of a ``2n``-wire vector (wire 0 most significant).
A one-qubit gate ``U`` followed by its channels (``NoiseModel.after``) is one superoperator on that wire's
(row, column) bits; CNOT and CZ permute or sign the entries; any other gate of the vocabulary is
``U ρ U†``, ``U`` on the row bits of its wires and ``U*`` on their column bits; then each channel after it
is its superoperator ``Σ K ⊗ K*`` on its wire. Read-outs: Pauli words, Hamiltonians and ``Probs`` (the
diagonal's marginals), through the readout error's confusion matrices (docs/noise.md). Differentiable
by autograd.
Memory is ``16 · 4**n`` bytes per sample and state; autograd keeps about :data:`SAVED_STATES_PER_OPERATION`
states per operation for the backward, so a differentiable call whose estimate (:func:`training_bytes`)
exceeds the memory available is refused in one line before any work. Meant for small circuits (≤ 10 qubits).
"""

from __future__ import annotations

import functools
import os

import torch

from hqf.backends.readout import misread
from hqf.backends.torch.plain import apply_matrix
from hqf.errors import ConfigError
from hqf.quantum.circuit import GATES, OBSERVABLE_KINDS, Circuit, Hamiltonian, PauliWord, Probs
from hqf.quantum.gates import ROTATIONS, bits, gate_matrices, one_qubit_matrices, pauli_action
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.quantum.noise import NOISE_FEATURES, Channel, NoiseModel, noise_model
from hqf.registry.hookspecs import hookimpl

#: density matrices autograd keeps per operation of a differentiable call (measured: hea8x6 with angle
#: encoding, 152 operations, 8 qubits under depolarizing noise, peak RSS 1.78 GB at 4 rows and 6.06 GB at 16)
SAVED_STATES_PER_OPERATION = 2.25
#: density matrices held besides (the running state, the readout's temporaries)
EXTRA_STATES = 4


def training_bytes(n_qubits: int, n_operations: int, rows: int, itemsize: int = 16) -> int:
    """Estimated peak bytes of a differentiable call on ``rows`` rows: ``rows`` density matrices of
    ``itemsize · 4**n`` bytes, :data:`SAVED_STATES_PER_OPERATION` per operation plus :data:`EXTRA_STATES`."""
    states = SAVED_STATES_PER_OPERATION * n_operations + EXTRA_STATES
    return int(rows * states * itemsize * 4**n_qubits)


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a new allocation on ``device``: CUDA's free memory, or the host's ``MemAvailable``
    (None where it cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


@functools.lru_cache(maxsize=128)
@torch.inference_mode(False)  # cached: must not be an inference tensor
def _cnot_permutation(n: int, control: int, target: int) -> torch.Tensor:
    """Index map of CNOT on the rows and on the columns of the flattened ``2n``-wire vector."""
    index = torch.arange(4**n)
    for c, t in ((control, target), (n + control, n + target)):
        flip = 1 << (2 * n - 1 - t)
        index = torch.where(bits(2 * n, c).bool(), index ^ flip, index)
    return index


@functools.lru_cache(maxsize=128)
@torch.inference_mode(False)  # cached: must not be an inference tensor
def _cz_signs(n: int, a: int, b: int) -> torch.Tensor:
    rows = bits(2 * n, a) & bits(2 * n, b)
    cols = bits(2 * n, n + a) & bits(2 * n, n + b)
    return (1 - 2 * (rows ^ cols)).to(torch.float64)


def _apply_super(rho: torch.Tensor, n: int, wire: int, s: torch.Tensor) -> torch.Tensor:
    """Apply a superoperator ``s`` (``[2,2,2,2]`` or batched ``[B,2,2,2,2]``) to ``wire``'s (row, col) bits."""
    batch = rho.shape[0]
    left, right = 2**wire, 2 ** (n - wire - 1)
    view = rho.reshape(batch, left, 2, right, left, 2, right)
    spec = "bIJij,blirmjq->blIrmJq" if s.dim() == 5 else "IJij,blirmjq->blIrmJq"
    return torch.einsum(spec, s, view).reshape(batch, -1)


class TorchDensityMatrixBackend(Backend):
    """Exact mixed-state simulation in PyTorch under a :class:`~hqf.quantum.noise.NoiseModel` (option
    ``noise``; ``depolarizing=p`` is shorthand for ``NoiseModel.depolarizing(p)``)."""

    name = "torch-dm"
    description = "PyTorch density matrix, any noise model (option noise=NoiseModel or depolarizing=p)"
    capabilities = Capabilities(
        dtypes={"complex128", "complex64"},
        devices={"cpu", "cuda"},
        max_qubits=10,
        gradients={"backprop"},
        noise=True,
        channels=NOISE_FEATURES,
        gates=GATES,
        observables=OBSERVABLE_KINDS,
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True)

    def __init__(
        self,
        *,
        noise: NoiseModel | str | None = None,
        depolarizing: float = 0.0,
        dtype: str = "complex128",
        device: str = "cpu",
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.noise = noise_model(noise, depolarizing)
        self.noise.require(self.name, self.capabilities.channels)

    def check_memory(self, circuit: Circuit, rows: int) -> None:
        """Raise a one-line :class:`~hqf.errors.ConfigError` when a differentiable call of ``circuit`` on
        ``rows`` rows is estimated (:func:`training_bytes`) to need more memory than is available."""
        itemsize = torch.empty(0, dtype=self.complex_dtype).element_size()
        need = training_bytes(circuit.n_qubits, len(circuit.operations), rows, itemsize)
        free = available_bytes(self.device)
        if free is None or need <= free:
            return
        per_row = need / rows
        fits = max(int(free // per_row), 0)
        raise ConfigError(
            f"torch-dm: a differentiable batch of {rows} rows of {circuit.n_qubits} qubits and "
            f"{len(circuit.operations)} operations needs about {_gib(need)} ({_gib(per_row)} per row), "
            f"more than the {_gib(free)} available; use at most {fits} rows (--batch-size), or --backend ptm"
        )

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and angles.requires_grad:
            self.check_memory(circuit, angles.shape[0])
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        n, batch = circuit.n_qubits, angles.shape[0]
        rho = torch.zeros(batch, 4**n, dtype=self.complex_dtype, device=self.device)
        rho[:, 0] = 1
        supers = (
            {}
            if self.noise.is_noiseless
            else {
                rule.channel: self.channel_superoperator(rule.channel)
                for rule in self.noise.rules
                if not rule.channel.is_identity
            }
        )
        for op in circuit.operations:
            channels = [(wire, supers[channel]) for wire, channel in self.noise.after(op) if channel in supers]
            theta = None if op.param is None else angles[:, op.param]
            if op.gate in ROTATIONS or op.gate in ("H", "X"):
                m = one_qubit_matrices(op.gate, theta, batch, self.complex_dtype, self.device)
                # U ρ U† on this wire as one superoperator: (i',j',i,j) -> U[i',i] conj(U[j',j]), then its channels
                unitary = torch.einsum("bIi,bJj->bIJij", m, m.conj())
                for _, channel in channels:
                    unitary = torch.einsum("IJkl,bklij->bIJij", channel, unitary)
                rho = _apply_super(rho, n, op.wires[0], unitary)
                continue
            if op.gate == "CNOT":
                rho = rho[:, _cnot_permutation(n, *op.wires).to(self.device)]
            elif op.gate == "CZ":
                rho = rho * _cz_signs(n, *op.wires).to(device=self.device, dtype=self.real_dtype)
            else:
                rho = self._apply_gate(rho, n, op, theta)
            for wire, channel in channels:
                rho = _apply_super(rho, n, wire, channel)
        return self.measure(rho, circuit).to(out_device)

    def channel_superoperator(self, channel: Channel) -> torch.Tensor:
        """``channel`` as a ``[2, 2, 2, 2]`` map ``(i', j', i, j)`` of a wire's (row, column) bits
        (:meth:`hqf.quantum.noise.Channel.superoperator`)."""
        s = channel.superoperator().reshape(2, 2, 2, 2)
        return torch.as_tensor(s, dtype=self.complex_dtype, device=self.device)

    def _apply_gate(self, rho: torch.Tensor, n: int, op, theta) -> torch.Tensor:
        """``U ρ U†`` for any gate: ``U`` on the row bits of its wires, ``U*`` on the column bits."""
        m = gate_matrices(op.gate, theta, rho.shape[0], self.complex_dtype, self.device)
        rho = apply_matrix(rho, 2 * n, op.wires, m)
        return apply_matrix(rho, 2 * n, tuple(n + w for w in op.wires), m.conj())

    def measure(self, rho: torch.Tensor, circuit: Circuit) -> torch.Tensor:
        """``Tr(P ρ)`` for each Pauli word (``Σ_i coeff[i] ρ[source[i], i]``), Hamiltonians as weighted
        sums of those, and ``Probs`` as marginals of the diagonal; under a readout error, a word's misread
        sub-words (:func:`hqf.backends.readout.misread`) and each marginal's wires through their confusion."""
        n = circuit.n_qubits
        matrix = rho.reshape(rho.shape[0], 2**n, 2**n)
        columns = []
        for obs in circuit.observables:
            if isinstance(obs, Probs):
                columns += list(self._probs(matrix, n, obs.wires).unbind(1))
            elif isinstance(obs, Hamiltonian):
                columns.append(sum(c * self._read(matrix, n, word) for c, word in obs.terms))
            else:
                columns.append(self._read(matrix, n, obs))
        return torch.stack(columns, dim=1)

    def _probs(self, matrix: torch.Tensor, n: int, wires: tuple[int, ...]) -> torch.Tensor:
        """``[B, 2**k]``: the read distribution of ``wires`` (``wires[0]`` the most significant bit)."""
        diagonal = torch.diagonal(matrix, dim1=1, dim2=2).real.reshape(-1, *[2] * n)
        others = [1 + w for w in range(n) if w not in wires]
        summed = diagonal.sum(dim=others) if others else diagonal
        kept = sorted(wires)
        marginal = summed.permute(0, *[1 + kept.index(w) for w in wires])  # [B, 2, …, 2] in wires' order
        for axis, wire in enumerate(wires):
            confusion = self.noise.confusion(wire)
            if confusion is not None:
                confusion = torch.as_tensor(confusion, dtype=marginal.dtype, device=marginal.device)
                marginal = torch.movedim(torch.tensordot(marginal, confusion, dims=([1 + axis], [1])), -1, 1 + axis)
        return marginal.reshape(matrix.shape[0], -1)

    def _read(self, matrix: torch.Tensor, n: int, word: PauliWord) -> torch.Tensor:
        """``[B]``: what measuring one Pauli word reads (its misread sub-words under a readout error)."""
        if not self.noise.has_readout:
            return self._pauli(matrix, n, word)
        terms = misread(word, self.noise)
        return sum(c * (1.0 if part is None else self._pauli(matrix, n, part)) for c, part in terms)

    def _pauli(self, matrix: torch.Tensor, n: int, word: PauliWord) -> torch.Tensor:
        """``[B]``: ``Tr(P ρ)`` for one Pauli word."""
        source, coeff = pauli_action(n, word.terms)
        picked = matrix[:, source.to(self.device), torch.arange(2**n, device=self.device)]
        return (picked * coeff.to(device=self.device, dtype=self.complex_dtype)).sum(dim=1).real


@hookimpl
def register_backends(register) -> None:
    register(TorchDensityMatrixBackend)
