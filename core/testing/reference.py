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
"""

from __future__ import annotations

import torch

from hqf.quantum.circuit import GATES, OBSERVABLE_KINDS, Circuit, Hamiltonian, Operation, PauliWord, Probs
from hqf.quantum.gates import FIXED_1Q, GENERATORS, PAULI, ROTATIONS, gate_matrices, rotation_matrices
from hqf.quantum.interfaces import Backend, Capabilities

COMPLEX, REAL = torch.complex128, torch.float64
#: the largest circuit it simulates (one gate matrix is 16 MiB at 10 qubits)
MAX_QUBITS = 10
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
        gates=GATES,
        observables=OBSERVABLE_KINDS,
    )

    def gate_matrices(self, circuit: Circuit, row: torch.Tensor) -> list[torch.Tensor]:
        """The full matrix of every gate, in order, for one angle row ``[P]``."""
        if circuit.n_qubits > MAX_QUBITS:
            raise ValueError(f"the reference simulates at most {MAX_QUBITS} qubits (got {circuit.n_qubits})")
        return [
            gate_matrix(circuit.n_qubits, op, None if op.param is None else row[op.param])
            for op in circuit.operations
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
