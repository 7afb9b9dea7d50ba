"""Quantum kernels (hqf.quantum.kernels) and the adjoint helper (hqf.quantum.circuit.adjoint), against
the dense reference simulator of hqf.testing."""

from __future__ import annotations

import math

import pytest
import torch

from hqf.quantum.circuit import GATES, Circuit, Operation, PauliWord, adjoint, compose
from hqf.quantum.kernels import FidelityKernel, ProjectedKernel, ideal_kernel, overlap_circuit, target_alignment
from hqf.registry.make import make_backend, make_encoder
from hqf.testing.reference import ReferenceBackend, gate_matrix

REFERENCE = ReferenceBackend()


def every_gate_operations() -> tuple[Operation, ...]:
    """One operation of every gate of the vocabulary on 3 qubits, each parametric one its own column."""
    ops, column = [], 0
    for gate, (n_wires, parameterized) in GATES.items():
        wires = (2, 0, 1)[:n_wires]
        ops.append(Operation(gate, wires, column if parameterized else None))
        column += parameterized
    return tuple(ops)


def unitary(n_qubits: int, operations, row: torch.Tensor) -> torch.Tensor:
    """The dense product of the operations' matrices (the reference's gate matrices) at one angle row."""
    out = torch.eye(2**n_qubits, dtype=torch.complex128)
    for op in operations:
        out = gate_matrix(n_qubits, op, None if op.param is None else row[op.param]) @ out
    return out


def states(n_qubits: int, operations, angles: torch.Tensor) -> torch.Tensor:
    circuit = Circuit(n_qubits, operations, [PauliWord.z(0)])
    return torch.stack([REFERENCE.state(circuit, row) for row in angles])


@pytest.mark.parametrize("gate", ["S", "T", "SX", "H", "CNOT", "Toffoli", "CSWAP"])
def test_adjoint_of_a_fixed_gate_is_its_dagger(gate):
    n_wires = GATES[gate][0]
    op = Operation(gate, tuple(range(n_wires)))
    empty = torch.zeros(0, dtype=torch.float64)
    forward, backward = unitary(n_wires, [op], empty), unitary(n_wires, adjoint([op]), empty)
    assert torch.allclose(backward, forward.conj().T, atol=1e-12)


def test_adjoint_of_every_gate_at_negated_angles_is_the_inverse():
    ops = every_gate_operations()
    n_params = sum(op.param is not None for op in ops)
    theta = torch.linspace(-2.5, 2.9, n_params, dtype=torch.float64)
    forward, backward = unitary(3, ops, theta), unitary(3, adjoint(ops), -theta)
    assert torch.allclose(backward, forward.conj().T, atol=1e-12)
    assert torch.allclose(backward @ forward, torch.eye(8, dtype=torch.complex128), atol=1e-12)
    assert not torch.allclose(unitary(3, adjoint(ops), theta), forward.conj().T, atol=1e-6)  # the sign matters


def test_overlap_circuit_returns_to_zero_state_for_equal_points():
    ops = every_gate_operations()
    circuit = overlap_circuit(3, ops)
    theta = torch.tensor([[0.3, -1.1, 2.0, 0.7, 0.4, -0.9, 1.6, 2.2, -0.5, 0.1, 1.3, -2.4, 0.8]], dtype=torch.float64)
    theta = theta[:, : circuit.n_params // 2]
    values = REFERENCE.expval(circuit, torch.cat([theta, -theta], dim=1))
    assert values.shape == (1, 8)
    assert values[0, 0].item() == pytest.approx(1.0, abs=1e-12)


def iqp_angles(n_points: int, n_qubits: int = 3, seed: int = 0):
    encoder = make_encoder("iqp", n_qubits, n_qubits, reps=2).to(torch.float64)
    x = torch.randn(n_points, n_qubits, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        return encoder.operations(), encoder(x)


@pytest.mark.parametrize("backend", ["torch", "torch-dm"])
def test_fidelity_gram_equals_reference_overlaps(backend):
    ops, angles = iqp_angles(7)
    kernel = FidelityKernel(make_backend(backend), 3, ops)
    gram = kernel.gram(angles)
    psi = states(3, ops, angles)
    expected = (psi.conj() @ psi.T).abs().square()
    assert torch.allclose(gram, expected, atol=1e-10)
    assert torch.equal(gram, gram.T)
    assert torch.equal(torch.diagonal(gram), torch.ones(7, dtype=torch.float64))
    assert torch.linalg.eigvalsh(gram).min() > -1e-10
    assert kernel.evaluations == 7 * 6 // 2


def test_fidelity_cross_rows_and_pairs_count_their_circuits():
    ops, angles = iqp_angles(9, seed=3)
    kernel = FidelityKernel(make_backend("torch"), 3, ops, chunk=5)
    rows = kernel.cross(angles[:4], angles[4:])
    assert rows.shape == (4, 5) and kernel.evaluations == 20
    psi = states(3, ops, angles)
    assert torch.allclose(rows, (psi[:4].conj() @ psi[4:].T).abs().square(), atol=1e-10)
    assert kernel.pairs(angles[:2], angles[:2]).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert kernel.evaluations == 22


def test_angle_encoder_kernel_has_the_closed_form():
    # RY(x) on one qubit: k(x, x') = cos²((x − x')/2)
    kernel = FidelityKernel(make_backend("torch"), 1, [Operation("RY", 0, 0)])
    x = torch.tensor([[0.2], [1.5], [-2.0]], dtype=torch.float64)
    expected = torch.cos((x - x.T) / 2).square()
    assert torch.allclose(kernel.gram(x), expected, atol=1e-12)


def test_kernel_refuses_wrong_angle_shapes():
    ops, angles = iqp_angles(3)
    kernel = FidelityKernel(make_backend("torch"), 3, ops)
    with pytest.raises(ValueError, match=r"\[N, 12\]"):
        kernel.gram(angles[:, :5])
    with pytest.raises(ValueError, match="as many rows"):
        kernel.pairs(angles[:2], angles)


def test_projected_kernel_equals_reduced_states_from_reference():
    ops, angles = iqp_angles(5, seed=1)
    gamma = 0.7
    kernel = ProjectedKernel(make_backend("torch"), 3, ops, gamma=gamma)
    gram = kernel.gram(angles)
    assert kernel.evaluations == 5
    psi = states(3, ops, angles).reshape(5, 2, 2, 2)
    reduced = [  # ρ_q for each point, from the reference state vectors
        torch.stack([torch.einsum(spec, p, p.conj()) for p in psi])
        for spec in ("abc,dbc->ad", "abc,adc->bd", "abc,abd->cd")
    ]
    distance = sum((r[:, None] - r[None, :]).abs().square().sum(dim=(-1, -2)) for r in reduced)
    assert torch.allclose(gram, torch.exp(-gamma * distance), atol=1e-10)
    assert torch.linalg.eigvalsh(gram).min() > -1e-10


def test_alignment_of_the_ideal_kernel_is_one_and_of_the_identity_known():
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    assert target_alignment(ideal_kernel(labels), labels) == pytest.approx(1.0, abs=1e-12)
    # ⟨I, y yᵀ⟩ = N, ‖I‖ = √N, ‖y yᵀ‖ = N
    assert target_alignment(torch.eye(6), labels) == pytest.approx(1 / math.sqrt(6), abs=1e-12)
    assert target_alignment(-ideal_kernel(labels), labels) == pytest.approx(-1.0, abs=1e-12)


def test_ideal_kernel_for_three_classes():
    labels = torch.tensor([2, 0, 2, 1])
    expected = torch.tensor([[1, -0.5, 1, -0.5], [-0.5, 1, -0.5, -0.5], [1, -0.5, 1, -0.5], [-0.5, -0.5, -0.5, 1]])
    assert torch.equal(ideal_kernel(labels), expected.to(torch.float64))


def test_alignment_refuses_a_mismatched_kernel():
    with pytest.raises(ValueError, match="N = 3"):
        target_alignment(torch.eye(2), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="all zeros"):
        target_alignment(torch.zeros(2, 2), torch.tensor([0, 1]))


def test_compose_with_adjoint_block_reads_negated_columns():
    ops = (Operation("RX", 0, 0), Operation("S", 0), Operation("RZ", 0, 1))
    circuit = compose(1, [ops, adjoint(ops)], [PauliWord.z(0)])
    assert circuit.n_params == 4
    assert [op.gate for op in circuit.operations] == ["RX", "S", "RZ", "RZ", "S", "Z", "RX"]
    assert [op.param for op in circuit.operations if op.param is not None] == [0, 1, 3, 2]
