"""The answer key is checked against definitions written independently of it (its density-matrix mode:
against the state-vector reference without noise, and against closed forms with noise).

``tests/reference.py`` writes every gate as numpy Kronecker products from scratch; here the gate maths
of :mod:`hqf.quantum.gates` and the shipped reference simulator (:class:`hqf.testing.ReferenceBackend`)
must equal those definitions, and the reference's own Jacobian must equal finite differences.
"""

import importlib.metadata
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import FIXED, I2, PAULI, gate_unitary, kron_on, reference_expval
from strategies import angle_batches, circuits

from hqf.quantum import gates
from hqf.quantum.circuit import GATES, Circuit, Operation, PauliWord, Probs
from hqf.quantum.noise import NoiseModel
from hqf.registry.loader import GROUP
from hqf.testing import ReferenceBackend, check_backend
from hqf.testing.reference import MAX_DENSITY_QUBITS, MAX_QUBITS, ReferenceDensityBackend

ANGLES = (0.0, 0.3, -1.7, math.pi, 5.1)


def _as_matrix(source: torch.Tensor, coeff: torch.Tensor) -> np.ndarray:
    """The matrix ``M`` with ``(M ψ)[i] = coeff[i] · ψ[source[i]]``."""
    size = source.shape[0]
    matrix = np.zeros((size, size), dtype=complex)
    matrix[np.arange(size), source.numpy()] = coeff.numpy()
    return matrix


# -- hqf.quantum.gates against tests/reference.py --------------------------------------------------
def test_pauli_and_fixed_matrices():
    assert set(gates.PAULI) == set(PAULI)
    for letter, matrix in gates.PAULI.items():
        np.testing.assert_array_equal(np.array(matrix, dtype=complex), PAULI[letter])
    assert set(gates.FIXED_1Q) == set(FIXED)
    for gate, matrix in gates.FIXED_1Q.items():
        np.testing.assert_allclose(np.array(matrix, dtype=complex), FIXED[gate], atol=1e-15, rtol=0)


@pytest.mark.parametrize("gate", sorted(gates.ROTATIONS))
def test_rotation_matrices_are_exp_of_minus_i_theta_p_over_2(gate):
    assert gates.ROTATIONS[gate] == gate[1]
    theta = torch.tensor(ANGLES, dtype=torch.float64)
    for dtype, atol in ((torch.complex128, 1e-15), (torch.complex64, 1e-7)):
        got = gates.rotation_matrices(gate, theta, dtype)
        assert got.dtype == dtype and got.shape == (len(ANGLES), 2, 2)
        for matrix, angle in zip(got, ANGLES):
            want = math.cos(angle / 2) * I2 - 1j * math.sin(angle / 2) * PAULI[gate[1]]
            np.testing.assert_allclose(matrix.numpy(), want, atol=atol, rtol=0)
        one_qubit = gates.one_qubit_matrices(gate, theta, len(ANGLES), dtype, "cpu")
        torch.testing.assert_close(one_qubit, got, atol=0, rtol=0)


@pytest.mark.parametrize("gate", sorted(gates.FIXED_1Q))
def test_one_qubit_matrices_of_fixed_gates(gate):
    got = gates.one_qubit_matrices(gate, None, 3, torch.complex128, "cpu")
    assert got.shape == (3, 2, 2)
    for matrix in got:
        np.testing.assert_allclose(matrix.numpy(), FIXED[gate], atol=1e-15, rtol=0)


@pytest.mark.parametrize("n_qubits", [1, 2, 3, 4])
def test_bit_tables_and_z_signs_follow_wire_zero_most_significant(n_qubits):
    for wire in range(n_qubits):
        zero_one = np.real(np.diag(kron_on(n_qubits, {wire: np.diag([0, 1]).astype(complex)})))
        np.testing.assert_array_equal(gates.bit_table(n_qubits, wire), zero_one)
        np.testing.assert_array_equal(gates.bits(n_qubits, wire).numpy(), zero_one)
    for wires in ([0], list(range(n_qubits)), [n_qubits - 1]):
        z = np.real(np.diag(kron_on(n_qubits, {w: PAULI["Z"] for w in wires})))
        np.testing.assert_array_equal(gates.z_signs(n_qubits, wires), z)


@pytest.mark.parametrize("n_qubits", [2, 3])
def test_flip_permutations_are_x_and_cnot(n_qubits):
    for target in range(n_qubits):
        flip = gates.flip_permutation(n_qubits, target, None)
        want = gate_unitary(n_qubits, "X", (target,), None)
        np.testing.assert_array_equal(_as_matrix(flip, torch.ones(2**n_qubits)), want)
        for control in set(range(n_qubits)) - {target}:
            flip = gates.flip_permutation(n_qubits, target, control)
            want = gate_unitary(n_qubits, "CNOT", (control, target), None)
            np.testing.assert_array_equal(_as_matrix(flip, torch.ones(2**n_qubits)), want)


@given(data=st.data())
def test_pauli_action_is_the_kronecker_product_of_the_word(data):
    n_qubits = data.draw(st.integers(1, 4))
    letters = data.draw(st.lists(st.sampled_from("IXYZ"), min_size=n_qubits, max_size=n_qubits))
    terms = [(w, p) for w, p in enumerate(letters) if p != "I"]
    want = kron_on(n_qubits, {w: PAULI[p] for w, p in terms})
    np.testing.assert_array_equal(_as_matrix(*gates.pauli_action(n_qubits, terms)), want)


def test_shifted_rows_shift_one_column_by_plus_then_minus_half_pi():
    angles = torch.tensor([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]], dtype=torch.float64)
    rows = gates.shifted_rows(angles).reshape(2, 3, 2, 3)  # [sign, column, row, P]
    for s, sign in enumerate((1, -1)):
        for p in range(3):
            want = angles.clone()
            want[:, p] += sign * math.pi / 2
            torch.testing.assert_close(rows[s, p], want, atol=0, rtol=0)


# -- the reference simulator against tests/reference.py ---------------------------------------------
def _every_gate(n_qubits):
    for gate, (arity, parameterized) in GATES.items():
        for wires in itertools.permutations(range(n_qubits), arity):
            yield Operation(gate, wires, 0 if parameterized else None)


@pytest.mark.parametrize("n_qubits", [1, 2, 3])
def test_every_gate_matrix_of_the_reference(n_qubits):
    reference = ReferenceBackend()
    for op in _every_gate(n_qubits):
        for angle in ANGLES:
            circuit = Circuit(n_qubits, [op], [PauliWord.z(0)])
            (got,) = reference.gate_matrices(circuit, torch.tensor([angle], dtype=torch.float64))
            want = gate_unitary(n_qubits, op.gate, op.wires, angle if op.param is not None else None)
            np.testing.assert_allclose(got.numpy(), want, atol=1e-15, rtol=0, err_msg=str(op))


BELL = Circuit(
    2,
    [Operation("H", 0), Operation("CNOT", (0, 1))],
    [PauliWord.parse("Z0 Z1"), PauliWord.parse("X0 X1"), PauliWord.parse("Y0 Y1"), PauliWord.z(0)],
)
FIXED_CIRCUITS = [
    # (circuit, angles, closed form or None)
    (BELL, np.zeros((1, 0)), np.array([[1.0, 1.0, -1.0, 0.0]])),
    (
        Circuit(
            3,
            [Operation("X", 0), Operation("RY", 2, 0)],
            [PauliWord.z(0), PauliWord.z(2), PauliWord.parse("X2"), PauliWord.parse("Z0 X2")],
        ),
        np.array([[0.4], [-2.2]]),
        None,
    ),
    (
        Circuit(
            3,
            [
                Operation("RX", 0, 0),
                Operation("CZ", (0, 2)),
                Operation("H", 2),
                Operation("RZ", 1, 1),
                Operation("CNOT", (2, 1)),
                Operation("RY", 1, 2),
            ],
            [PauliWord.parse("Z0 Z1 Z2"), PauliWord.parse("Y1"), PauliWord.parse("X2 Z0")],
        ),
        np.array([[0.3, -1.2, 2.5], [1.9, 0.0, -0.7]]),
        None,
    ),
]


@pytest.mark.parametrize("circuit, angles, closed_form", FIXED_CIRCUITS)
def test_reference_on_fixed_circuits(circuit, angles, closed_form):
    got = ReferenceBackend().expval(circuit, torch.from_numpy(angles)).numpy()
    np.testing.assert_allclose(got, reference_expval(circuit, angles), atol=1e-14, rtol=0)
    if closed_form is not None:
        np.testing.assert_allclose(got, closed_form, atol=1e-14, rtol=0)


def test_reference_puts_wire_zero_on_the_most_significant_bit():
    # X on wire 0, RY(a) on wire 2: <Z0> = -1, <Z2> = cos a, <X2> = sin a, <Z0 X2> = -sin a
    circuit, angles, _ = FIXED_CIRCUITS[1]
    a = angles[:, 0]
    want = np.stack([-np.ones_like(a), np.cos(a), np.sin(a), -np.sin(a)], axis=1)
    np.testing.assert_allclose(ReferenceBackend().expval(circuit, torch.from_numpy(angles)).numpy(), want, atol=1e-14)
    state = ReferenceBackend().state(Circuit(3, [Operation("X", 0)], [PauliWord.z(0)]), torch.zeros(0))
    assert int(torch.argmax(state.abs())) == 4  # |100>


@given(data=st.data())
def test_reference_matches_the_independent_simulator_on_random_circuits(data):
    circuit = data.draw(circuits(max_qubits=5, max_ops=14))
    angles = data.draw(angle_batches(circuit))
    got = ReferenceBackend().expval(circuit, torch.from_numpy(angles)).numpy()
    np.testing.assert_allclose(got, reference_expval(circuit, angles), atol=1e-12, rtol=0, err_msg=circuit.diagram())


@given(data=st.data())
def test_reference_jacobian_equals_finite_differences_and_autograd(data):
    circuit = data.draw(circuits(max_qubits=4, max_ops=12))
    angles = torch.from_numpy(data.draw(angle_batches(circuit, max_batch=2)))
    reference = ReferenceBackend()
    jacobian = reference.jacobian(circuit, angles)
    assert jacobian.shape == (angles.shape[0], circuit.n_outputs, circuit.n_params)
    step = 1e-5
    for p in range(circuit.n_params):  # central differences of the independent simulator: O(step²) ≈ 1e-10
        up, down = angles.numpy().copy(), angles.numpy().copy()
        up[:, p] += step
        down[:, p] -= step
        central = (reference_expval(circuit, up) - reference_expval(circuit, down)) / (2 * step)
        np.testing.assert_allclose(jacobian[:, :, p].numpy(), central, atol=1e-8, rtol=0, err_msg=circuit.diagram())
    autograd = torch.autograd.functional.jacobian(lambda a: reference.expval(circuit, a), angles)  # [B, R, B, P]
    for b in range(angles.shape[0]):
        torch.testing.assert_close(jacobian[b], autograd[b, :, b, :], atol=1e-12, rtol=0)


def test_reference_passes_its_own_suite():
    # shift-jacobian: the core's shift rule on the reference against its generator formula;
    # native-gradient: its autograd against the same
    results = check_backend(ReferenceBackend, examples=10, seed=3)
    assert [r.status for r in results] == ["pass"] * 5, [r.report() for r in results]


def test_reference_is_a_complex128_cpu_backend_and_not_a_plugin():
    reference = ReferenceBackend()
    assert reference.capabilities.gradients == {"backprop"} and reference.capabilities.dtypes == {"complex128"}
    assert reference.real_dtype == torch.float64 and reference.device.type == "cpu"
    registered = {ep.value for ep in importlib.metadata.entry_points(group=GROUP)}
    assert not any(value.startswith("hqf.testing") for value in registered)
    with pytest.raises(ValueError, match=f"at most {MAX_QUBITS} qubits"):
        reference.expval(Circuit(MAX_QUBITS + 1, [Operation("H", 0)], [PauliWord.z(0)]), torch.zeros(1, 0))
    empty = reference.expval(BELL, torch.zeros(0, 0, dtype=torch.float64))
    assert empty.shape == (0, BELL.n_outputs) and empty.dtype == torch.float64


# -- the density-matrix mode ------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_density_reference_without_noise_is_the_state_vector_reference(data):
    circuit = data.draw(circuits(max_qubits=4, max_ops=12, observable_kinds=("pauli", "hamiltonian", "probs")))
    angles = torch.from_numpy(data.draw(angle_batches(circuit)))
    got = ReferenceDensityBackend().expval(circuit, angles)
    torch.testing.assert_close(got, ReferenceBackend().expval(circuit, angles), atol=1e-12, rtol=0)


def test_density_reference_closed_forms_of_channels_and_readout():
    """X then amplitude damping γ: ⟨Z⟩ = −(1 − 2γ) (damping towards |0⟩); RY(θ) then phase damping λ:
    ⟨X⟩ = √(1−λ) sin θ; RY(θ) then depolarizing p: ⟨X⟩ = (1 − 4p/3) sin θ. Readout (p(1|0), p(0|1)) =
    (0.1, 0.3) on RY(θ): Probs reads p0' = 0.9 p0 + 0.3 p1, and ⟨X⟩ measured in X's basis reads
    a ⟨X⟩ + b with a = 1 − 0.1 − 0.3, b = 0.3 − 0.1."""
    theta = torch.tensor([[0.7], [-2.2]], dtype=torch.float64)
    s, c = torch.sin(theta[:, 0]), torch.cos(theta[:, 0])

    def run(circuit, text, angles=theta):
        return ReferenceDensityBackend(noise=NoiseModel.parse(text)).expval(circuit, angles)

    flipped = Circuit(1, [Operation("X", 0)], [PauliWord.z(0)])
    torch.testing.assert_close(
        run(flipped, "amplitude_damping=0.2", torch.zeros(1, 0, dtype=torch.float64)),
        torch.tensor([[-0.6]], dtype=torch.float64),
        atol=1e-15,
        rtol=0,
    )
    rotated = Circuit(1, [Operation("RY", 0, 0)], [PauliWord(((0, "X"),)), Probs((0,))])
    p0, p1 = (1 + c) / 2, (1 - c) / 2
    cases = {
        "phase_damping=0.36": [0.8 * s, p0, p1],
        "depolarizing=0.3": [0.6 * s, 0.5 + 0.6 * c / 2, 0.5 - 0.6 * c / 2],
        "readout=0.1:0.3": [0.6 * s + 0.2, 0.9 * p0 + 0.3 * p1, 0.1 * p0 + 0.7 * p1],
    }
    for text, columns in cases.items():
        torch.testing.assert_close(run(rotated, text), torch.stack(columns, dim=1), atol=1e-14, rtol=0, msg=text)


def test_density_reference_gradients_by_autograd_equal_finite_differences():
    circuit = Circuit(
        3,
        [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RZZ", (1, 2), 1), Operation("RX", 2, 2)],
        [PauliWord.parse("Z0 Y2"), Probs((1,))],
    )
    backend = ReferenceDensityBackend(
        noise=NoiseModel.parse("amplitude_damping=0.1,thermal_relaxation=9:12:1,readout=0.02:0.05")
    )
    angles = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    autograd = torch.autograd.functional.jacobian(lambda a: backend.expval(circuit, a), angles)[0, :, 0, :]
    step = 1e-6
    for p in range(3):
        shift = torch.zeros_like(angles)
        shift[0, p] = step
        central = (backend.expval(circuit, angles + shift) - backend.expval(circuit, angles - shift))[0] / (2 * step)
        torch.testing.assert_close(autograd[:, p], central, atol=1e-8, rtol=0)


def test_density_reference_refuses_large_circuits():
    with pytest.raises(ValueError, match=f"at most {MAX_DENSITY_QUBITS} qubits"):
        ReferenceDensityBackend().expval(
            Circuit(MAX_DENSITY_QUBITS + 1, [Operation("H", 0)], [PauliWord.z(0)]), torch.zeros(1, 0)
        )
