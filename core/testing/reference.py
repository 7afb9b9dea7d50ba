"""The conformance suite's answer key: a small dense state-vector simulator, written to be read.

- Every gate is its full ``2**n × 2**n`` matrix. A one-qubit gate is the Kronecker product, over wires
  ``0 … n−1``, of its 2×2 matrix from :mod:`hqf.quantum.gates` and identities. Wire 0 is the leftmost
  factor, so it is the most significant bit of a basis index, as :mod:`hqf.quantum.circuit` says. A
  gate ``U`` on wires ``(w_0, …, w_{k−1})`` is ``U ⊗ 1`` on the wire order ``(w_0, …, w_{k−1}, the
  others)``, its tensor axes put back in wire order (so ``wires[0]``, the control of a controlled gate,
  is the most significant bit of the gate's own index).
- The state starts as ``|0…0⟩`` and is multiplied by each gate matrix in turn, one angle row at a time.
- Every output is ``⟨ψ|O|ψ⟩`` with ``O`` a dense Hermitian matrix: a Pauli word's Kronecker product,
  a Hamiltonian's weighted sum of those, and for ``Probs`` one projector ``⊗_m |j_m⟩⟨j_m|`` per outcome.
- Derivatives never use the parameter-shift rule. :meth:`ReferenceBackend.expval` is differentiable
  by torch autograd through the matrix products (declared ``backprop``), and
  :meth:`ReferenceBackend.jacobian` applies the generator formula: for ``U(θ) = exp(−iθG)``,
  ``dU/dθ = −i G U`` and ``∂⟨O⟩/∂θ = 2 Re⟨ψ|O|∂ψ⟩``. So a wrong shift rule in the core cannot cancel
  out against it.

Nothing is cached, fused or batched: each gate costs ``O(4**n)``, which is why it stops at
:data:`MAX_QUBITS`. It is not registered as a plugin (like PennyLane's ``reference_qubit``): it
exists to check the others.

:class:`ReferenceDensityBackend` is the same answer key under a :class:`~hqf.quantum.noise.NoiseModel`:

- ``ρ`` is a dense ``2**n × 2**n`` matrix, starting as ``|0…0⟩⟨0…0|``; each gate is ``U ρ U†`` with the
  full matrix above, then each ``(wire, channel)`` of ``NoiseModel.after`` is ``Σ_K K ρ K†`` with ``K``
  the full matrix of each Kraus operator (:meth:`hqf.quantum.noise.Channel.kraus`) on that wire.
- Outputs are read as a device reads them. A Pauli word is measured wire by wire in its own basis: the
  outcome bits ``b`` of its wires have probability ``Tr(ρ ⊗_m Π_{b_m})``, ``Π_0 = (1 + P_m)/2``,
  ``Π_1 = (1 − P_m)/2``; each bit is then misread through its wire's confusion matrix
  (:meth:`hqf.quantum.noise.NoiseModel.confusion`), and the word's value is ``Σ_b p_read(b) (−1)^{|b|}``.
  ``Probs`` is the read distribution of its wires measured in the Z basis; a Hamiltonian is the weighted
  sum of its words, each measured on its own.
"""

from __future__ import annotations

import torch

from hqf.quantum.circuit import (
    DECLARABLE_GATES,
    GATES,
    OBSERVABLE_KINDS,
    Circuit,
    Hamiltonian,
    Operation,
    PauliWord,
    Probs,
)
from hqf.quantum.gates import FIXED_1Q, GENERATORS, PAULI, ROTATIONS, gate_matrices, rotation_matrices
from hqf.quantum.interfaces import Backend, Capabilities
from hqf.quantum.noise import NOISE_FEATURES, NoiseModel

COMPLEX, REAL = torch.complex128, torch.float64
#: the largest circuit it simulates (one gate matrix is 16 MiB at 10 qubits)
MAX_QUBITS = 10
#: the largest circuit the density-matrix mode simulates (each channel costs several ``2**n`` products)
MAX_DENSITY_QUBITS = 8
#: the gate each controlled two-wire gate applies to its target
CONTROLLED = {"CNOT": "X", "CZ": "Z", "CY": "Y"}

IDENTITY = torch.eye(2, dtype=COMPLEX)
#: ``|0⟩⟨0|`` and ``|1⟩⟨1|``: the control wire's two cases
PROJECTORS = (torch.tensor([[1, 0], [0, 0]], dtype=COMPLEX), torch.tensor([[0, 0], [0, 1]], dtype=COMPLEX))


def two_by_two(rows) -> torch.Tensor:
    """A 2×2 matrix of :mod:`hqf.quantum.gates` (nested tuples) as a complex128 tensor."""
    return torch.tensor(rows, dtype=COMPLEX)


def on_wires(n_qubits: int, factors: dict[int, torch.Tensor]) -> torch.Tensor:
    """``factors[0] ⊗ factors[1] ⊗ … ⊗ factors[n−1]``, the identity on every wire not given."""
    out = torch.ones(1, 1, dtype=COMPLEX)
    for wire in range(n_qubits):
        out = torch.kron(out, factors.get(wire, IDENTITY))
    return out


def placed(n_qubits: int, wires: tuple[int, ...], matrix: torch.Tensor) -> torch.Tensor:
    """A gate's own matrix (over ``wires``, ``wires[0]`` its most significant bit) as a full one:
    ``matrix ⊗ 1`` on the wire order (``wires``, then the others), its tensor axes put back in the
    order ``0 … n−1`` for rows and columns alike."""
    k = len(wires)
    order = list(wires) + [w for w in range(n_qubits) if w not in wires]
    full = torch.kron(matrix, torch.eye(2 ** (n_qubits - k), dtype=COMPLEX)).reshape([2] * (2 * n_qubits))
    back = [order.index(w) for w in range(n_qubits)]
    return full.permute(back + [n_qubits + i for i in back]).reshape(2**n_qubits, 2**n_qubits)


def gate_matrix(n_qubits: int, op: Operation, angle: torch.Tensor | None = None) -> torch.Tensor:
    """The full matrix of one gate; a parametric one at ``angle`` (a 0-d float64 tensor)."""
    if op.gate in ROTATIONS:
        (rotation,) = rotation_matrices(op.gate, angle.reshape(1), COMPLEX)
        return on_wires(n_qubits, {op.wires[0]: rotation})
    if op.gate in FIXED_1Q:
        return on_wires(n_qubits, {op.wires[0]: two_by_two(FIXED_1Q[op.gate])})
    if op.gate in CONTROLLED:
        control, target = op.wires
        applied = two_by_two(PAULI[CONTROLLED[op.gate]])
        control_off = on_wires(n_qubits, {control: PROJECTORS[0]})
        control_on = on_wires(n_qubits, {control: PROJECTORS[1], target: applied})
        return control_off + control_on
    if op.matrix is not None:  # QubitUnitary: a fixed matrix
        return placed(n_qubits, op.wires, torch.as_tensor(op.unitary, dtype=COMPLEX))
    if op.gate in GATES:
        theta = None if angle is None else angle.reshape(1)
        (own,) = gate_matrices(op.gate, theta, 1, COMPLEX, "cpu")
        return placed(n_qubits, op.wires, own)
    raise NotImplementedError(f"the reference simulator has no matrix for gate {op.gate!r}")


def generator_matrix(n_qubits: int, op: Operation) -> torch.Tensor:
    """The full matrix of the gate's generator ``G``: ``U(θ) = exp(−iθG)`` (``P/2`` for ``R_P``)."""
    if op.gate in ROTATIONS:
        return on_wires(n_qubits, {op.wires[0]: two_by_two(PAULI[ROTATIONS[op.gate]]) / 2})
    return placed(n_qubits, op.wires, torch.as_tensor(GENERATORS[op.gate], dtype=COMPLEX))


def observable_matrix(n_qubits: int, word: PauliWord | Hamiltonian) -> torch.Tensor:
    """The full matrix of a Pauli word or of a Hamiltonian (the weighted sum of its words' matrices)."""
    if isinstance(word, Hamiltonian):
        return sum(coefficient * observable_matrix(n_qubits, w) for coefficient, w in word.terms)
    return on_wires(n_qubits, {wire: two_by_two(PAULI[letter]) for wire, letter in word.terms})


def output_matrices(n_qubits: int, circuit: Circuit) -> list[torch.Tensor]:
    """One Hermitian matrix per output column: each observable's, and for ``Probs(wires)`` the projector
    ``⊗_m |j_m⟩⟨j_m|`` onto each outcome ``j`` (``wires[0]`` the most significant bit of ``j``)."""
    out = []
    for obs in circuit.observables:
        if isinstance(obs, Probs):
            k = len(obs.wires)
            for j in range(2**k):
                outcome = {w: PROJECTORS[(j >> (k - 1 - m)) & 1] for m, w in enumerate(obs.wires)}
                out.append(on_wires(n_qubits, outcome))
        else:
            out.append(observable_matrix(n_qubits, obs))
    return out


def zero_state(n_qubits: int) -> torch.Tensor:
    """``|0…0⟩``, ``[2**n]``."""
    state = torch.zeros(2**n_qubits, dtype=COMPLEX)
    state[0] = 1
    return state


def evolve(matrices: list[torch.Tensor], state: torch.Tensor) -> torch.Tensor:
    """``state`` multiplied by each matrix in turn."""
    for matrix in matrices:
        state = matrix @ state
    return state


def expectation(state: torch.Tensor, observable: torch.Tensor) -> torch.Tensor:
    """``⟨ψ|O|ψ⟩`` (real, as ``O`` is Hermitian)."""
    return torch.vdot(state, observable @ state).real


class ReferenceBackend(Backend):
    """A dense simulator (complex128, CPU, at most :data:`MAX_QUBITS` qubits) as the answer key.

    Raises:
        ValueError: for a circuit of more than :data:`MAX_QUBITS` qubits.

    Example:
        >>> from hqf.quantum.circuit import Circuit, Operation, PauliWord
        >>> bell = Circuit(2, [Operation("H", 0), Operation("CNOT", (0, 1))], [PauliWord.parse("Z0 Z1")])
        >>> ReferenceBackend().expval(bell, torch.zeros(1, 0, dtype=torch.float64)).round(decimals=12).tolist()
        [[1.0]]
    """

    name = "reference"
    description = "dense reference simulator of hqf.testing (the conformance suite's answer key)"
    capabilities = Capabilities(
        dtypes={"complex128"},
        devices={"cpu"},
        max_qubits=MAX_QUBITS,
        gradients={"backprop"},
        gates=DECLARABLE_GATES,
        observables=OBSERVABLE_KINDS,
    )

    def gate_matrices(self, circuit: Circuit, row: torch.Tensor) -> list[torch.Tensor]:
        """The full matrix of every gate, in order, for one angle row ``[P]``."""
        if circuit.n_qubits > MAX_QUBITS:
            raise ValueError(f"the reference simulates at most {MAX_QUBITS} qubits (got {circuit.n_qubits})")
        return [
            gate_matrix(circuit.n_qubits, op, None if op.param is None else row[op.param]) for op in circuit.operations
        ]

    def state(self, circuit: Circuit, row: torch.Tensor) -> torch.Tensor:
        """The final state ``[2**n]`` for one angle row ``[P]``."""
        return evolve(self.gate_matrices(circuit, row.to("cpu", REAL)), zero_state(circuit.n_qubits))

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """``[B, R]`` float64 on ``angles.device``; differentiable by torch autograd."""
        observables = output_matrices(circuit.n_qubits, circuit)
        rows = []
        for row in angles.to("cpu", REAL):
            state = self.state(circuit, row)
            rows.append(torch.stack([expectation(state, observable) for observable in observables]))
        if not rows:
            return torch.zeros(0, circuit.n_outputs, dtype=REAL, device=angles.device)
        return torch.stack(rows).to(angles.device)

    def jacobian(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """``[B, R, P]``: ``∂⟨O_r⟩/∂θ_p`` for each row, from the generator formula (not differentiable).

        For gate ``k`` of ``m`` reading column ``p``, with generator ``G_k``,
        ``∂ψ/∂θ_p = U_m ⋯ U_{k+1} (−i G_k) U_k ⋯ U_1 |0…0⟩``.
        """
        n_qubits, n_params = circuit.n_qubits, circuit.n_params
        observables = output_matrices(n_qubits, circuit)
        generators = {  # gate index -> its generator, for the parametric gates
            k: generator_matrix(n_qubits, op) for k, op in enumerate(circuit.operations) if op.param is not None
        }
        out = torch.zeros(angles.shape[0], circuit.n_outputs, n_params, dtype=REAL)
        for b, row in enumerate(angles.detach().to("cpu", REAL)):
            matrices = self.gate_matrices(circuit, row)
            states = [zero_state(n_qubits)]  # states[k]: after the first k gates
            for matrix in matrices:
                states.append(matrix @ states[-1])
            measured = [observable @ states[-1] for observable in observables]  # O|ψ⟩: ⟨ψ|O = (O|ψ⟩)†
            for k, generator in generators.items():
                derivative = evolve(matrices[k + 1 :], -1j * (generator @ states[k + 1]))
                for r, bra in enumerate(measured):
                    out[b, r, circuit.operations[k].param] = 2 * torch.vdot(bra, derivative).real
        return out.to(angles.device)


def apply_channel(n_qubits: int, rho: torch.Tensor, wire: int, kraus) -> torch.Tensor:
    """``Σ_K K ρ K†``, each 2×2 Kraus operator ``K`` (numpy) as its full matrix on ``wire``."""
    full = [on_wires(n_qubits, {wire: torch.as_tensor(k, dtype=COMPLEX)}) for k in kraus]
    return sum(k @ rho @ k.conj().T for k in full)


def outcome_probabilities(n_qubits: int, rho: torch.Tensor, word: tuple[tuple[int, str], ...]) -> torch.Tensor:
    """``[2**k]``: the probabilities of the outcome bits of the wires of ``word`` (``(wire, letter)`` pairs),
    each measured in its letter's basis; bit 0 is the ``+1`` eigenvalue, ``word[0]`` the most significant bit."""
    k = len(word)
    out = []
    for b in range(2**k):
        projector = {}
        for m, (wire, letter) in enumerate(word):
            sign = 1 - 2 * ((b >> (k - 1 - m)) & 1)
            projector[wire] = (IDENTITY + sign * two_by_two(PAULI[letter])) / 2
        out.append(torch.trace(on_wires(n_qubits, projector) @ rho).real)
    return torch.stack(out)


def misread(probabilities: torch.Tensor, confusions: list[torch.Tensor]) -> torch.Tensor:
    """``(⊗_m M_m) p``: the read distribution from the true one, ``M_m[read, true]`` for bit ``m``
    (the first the most significant)."""
    full = torch.ones(1, 1, dtype=REAL)
    for confusion in confusions:
        full = torch.kron(full, confusion)
    return full @ probabilities


class ReferenceDensityBackend(Backend):
    """A dense density-matrix simulator under a noise model (complex128, CPU, at most
    :data:`MAX_DENSITY_QUBITS` qubits): the answer key for the noisy backends.

    Example:
        >>> from hqf.quantum.circuit import Circuit, Operation, PauliWord
        >>> from hqf.quantum.noise import NoiseModel
        >>> one = Circuit(1, [Operation("X", 0)], [PauliWord.z(0)])
        >>> backend = ReferenceDensityBackend(noise=NoiseModel.parse("amplitude_damping=0.25"))
        >>> backend.expval(one, torch.zeros(1, 0, dtype=torch.float64)).round(decimals=12).tolist()  # ρ11 = 3/4
        [[-0.5]]
    """

    name = "reference-dm"
    description = "dense density-matrix reference simulator of hqf.testing (the noisy backends' answer key)"
    capabilities = Capabilities(
        dtypes={"complex128"},
        devices={"cpu"},
        max_qubits=MAX_DENSITY_QUBITS,
        gradients={"backprop"},
        noise=True,
        channels=NOISE_FEATURES,
        gates=GATES,
        observables=OBSERVABLE_KINDS,
    )

    def __init__(self, *, noise: NoiseModel | None = None, dtype: str = "complex128", device: str = "cpu") -> None:
        super().__init__(dtype=dtype, device=device)
        self.noise = NoiseModel() if noise is None else noise
        self.noise.require(self.name, self.capabilities.channels)

    def density(self, circuit: Circuit, row: torch.Tensor) -> torch.Tensor:
        """The final ``ρ`` ``[2**n, 2**n]`` for one angle row ``[P]``."""
        n_qubits = circuit.n_qubits
        if n_qubits > MAX_DENSITY_QUBITS:
            raise ValueError(f"the density reference simulates at most {MAX_DENSITY_QUBITS} qubits (got {n_qubits})")
        state = zero_state(n_qubits)
        rho = torch.outer(state, state.conj())
        gates = ReferenceBackend().gate_matrices(circuit, row.to("cpu", REAL))
        for op, gate in zip(circuit.operations, gates):
            rho = gate @ rho @ gate.conj().T
            for wire, channel in self.noise.after(op):
                rho = apply_channel(n_qubits, rho, wire, channel.kraus())
        return rho

    def read(self, n_qubits: int, rho: torch.Tensor, word: tuple[tuple[int, str], ...]) -> torch.Tensor:
        """``[2**k]``: the read distribution of ``word``'s wires, each measured in its letter's basis."""
        identity = torch.eye(2, dtype=REAL)
        confusions = []
        for wire, _ in word:
            confusion = self.noise.confusion(wire)
            confusions.append(identity if confusion is None else torch.as_tensor(confusion, dtype=REAL))
        return misread(outcome_probabilities(n_qubits, rho, word), confusions)

    def word_value(self, n_qubits: int, rho: torch.Tensor, word: PauliWord) -> torch.Tensor:
        """``Σ_b p_read(b) (−1)^{|b|}``: the mean of the product of the read ``±1`` outcomes."""
        k = len(word.terms)
        signs = torch.tensor([(-1.0) ** bin(b).count("1") for b in range(2**k)], dtype=REAL)
        return signs @ self.read(n_qubits, rho, word.terms)

    def outputs(self, circuit: Circuit, rho: torch.Tensor) -> torch.Tensor:
        """``[R]``: every output column of ``circuit`` read from ``rho``."""
        n_qubits = circuit.n_qubits
        out = []
        for obs in circuit.observables:
            if isinstance(obs, Probs):
                out += list(self.read(n_qubits, rho, tuple((w, "Z") for w in obs.wires)).unbind(0))
            elif isinstance(obs, Hamiltonian):
                out.append(sum(c * self.word_value(n_qubits, rho, word) for c, word in obs.terms))
            else:
                out.append(self.word_value(n_qubits, rho, obs))
        return torch.stack(out)

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """``[B, R]`` float64 on ``angles.device``; differentiable by torch autograd."""
        rows = [self.outputs(circuit, self.density(circuit, row)) for row in angles.to("cpu", REAL)]
        if not rows:
            return torch.zeros(0, circuit.n_outputs, dtype=REAL, device=angles.device)
        return torch.stack(rows).to(angles.device)
