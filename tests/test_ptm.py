"""The ``ptm`` backend (hqf.backends.ptm): Pauli-transfer-matrix kernels against torch-dm, against a dense
numpy density matrix written here (``Σ K ρ K†`` after every gate), and against the state-vector backend;
adjoint gradients against finite differences and torch-dm's autograd."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from hqf.backends.ptm import PtmBackend, transfer
from hqf.backends.ptm.program import ROWS, channel_ptm
from hqf.quantum import noise as nm
from hqf.quantum.circuit import GATES, Circuit, Hamiltonian, Operation, PauliWord, Probs
from hqf.quantum.gates import matrix
from hqf.registry.make import make_backend
from hqf.testing.reference import ReferenceDensityBackend

CHANNELS = {
    "depolarizing": nm.depolarizing(0.07),
    "bit_flip": nm.bit_flip(0.11),
    "phase_flip": nm.phase_flip(0.09),
    "pauli": nm.pauli(0.03, 0.05, 0.08),
    "amplitude_damping": nm.amplitude_damping(0.13),
    "phase_damping": nm.phase_damping(0.17),
    "thermal_relaxation": nm.thermal_relaxation(50.0, 70.0, 6.0),
}
PAULI_MATRICES = {letter: transfer.PAULI_BASIS[i] for i, letter in enumerate("IXYZ")}


# -- the dense reference: a 2^n × 2^n density matrix --------------------------------------------------
def embed(m: np.ndarray, wires: tuple[int, ...], n: int) -> np.ndarray:
    """``m`` (on ``wires``, ``wires[0]`` most significant) as a ``2^n × 2^n`` matrix (wire 0 most significant)."""
    k = len(wires)
    rest = [w for w in range(n) if w not in wires]
    full = np.kron(m, np.eye(2 ** (n - k))).reshape([2] * (2 * n))
    order = list(wires) + rest  # the axes of `full` name these wires
    perm = [order.index(w) for w in range(n)]
    return full.transpose(perm + [n + p for p in perm]).reshape(2**n, 2**n)


def dense_outputs(circuit: Circuit, angles: np.ndarray, noise: nm.NoiseModel) -> np.ndarray:
    """``[B, R]``: the circuit's outputs from an exact density matrix, channels as ``Σ K ρ K†``."""
    n = circuit.n_qubits
    out = []
    for row in angles:
        rho = np.zeros((2**n, 2**n), dtype=complex)
        rho[0, 0] = 1
        for op in circuit.operations:
            u = embed(matrix(op.gate, None if op.param is None else row[op.param]), op.wires, n)
            rho = u @ rho @ u.conj().T
            for wire, channel in noise.after(op):
                kraus = [embed(k, (wire,), n) for k in channel.kraus()]
                rho = sum(k @ rho @ k.conj().T for k in kraus)
        probs = np.real(np.diag(rho))
        for w in range(n):  # readout: the read distribution is the confusion matrix applied per wire
            confusion = noise.confusion(w)
            if confusion is not None:
                probs = np.moveaxis(np.tensordot(confusion, np.moveaxis(probs.reshape([2] * n), w, 0), 1), 0, w).ravel()
        values = []
        for obs in circuit.observables:
            if isinstance(obs, Probs):
                table = probs.reshape([2] * n)
                others = tuple(w for w in range(n) if w not in obs.wires)
                marginal = table.sum(axis=others) if others else table
                kept = sorted(obs.wires)
                values += list(np.transpose(marginal, [kept.index(w) for w in obs.wires]).ravel())
            else:
                terms = obs.terms if isinstance(obs, Hamiltonian) else ((1.0, obs),)
                values.append(sum(c * word_value(rho, probs, word, n, noise) for c, word in terms))
        out.append(values)
    return np.array(out)


def word_value(rho: np.ndarray, probs: np.ndarray, word: PauliWord, n: int, noise: nm.NoiseModel) -> float:
    """``⟨P⟩``; with readout error, a word of Z letters is read from the read distribution (other words
    are measured after a basis change, which readout error treats the same way)."""
    if not noise.has_readout:
        full = functools.reduce(np.kron, [PAULI_MATRICES[dict(word.terms).get(w, "I")] for w in range(n)])
        return float(np.real(np.trace(full @ rho)))
    rotation = {"X": matrix("H"), "Y": matrix("H") @ np.diag([1, -1j]), "Z": np.eye(2)}
    u = functools.reduce(np.kron, [rotation[dict(word.terms).get(w, "Z")] for w in range(n)])
    diag = np.real(np.diag(u @ rho @ u.conj().T))
    for w in range(n):
        confusion = noise.confusion(w)
        if confusion is not None:
            diag = np.moveaxis(np.tensordot(confusion, np.moveaxis(diag.reshape([2] * n), w, 0), 1), 0, w).ravel()
    signs = np.ones(2**n)
    for w in word.wires:
        signs = signs * (1 - 2 * ((np.arange(2**n) >> (n - 1 - w)) & 1))
    return float(signs @ diag)


# -- circuits ------------------------------------------------------------------------------------------
def gate_circuit(gate: str, n: int, seed: int, observables=None) -> Circuit:
    """Random one-qubit rotations on every wire, ``gate`` on random wires, rotations again."""
    rng = np.random.default_rng(seed)
    size, parameterized = GATES[gate]
    ops, col = [], 0
    for w in range(n):
        ops += [Operation("RY", w, col), Operation("RX", w, col + 1)]
        col += 2
    wires = tuple(int(w) for w in rng.permutation(n)[:size])
    ops.append(Operation(gate, wires, col if parameterized else None))
    col += parameterized
    for w in range(n):
        ops.append(Operation("RZ", w, col))
        ops.append(Operation("RX", w, col + 1))
        col += 2
    if observables is None:
        observables = [PauliWord.z(w) for w in range(n)] + [PauliWord.parse(f"X0 Y{n - 1}" if n > 1 else "Y0")]
    return Circuit(n, ops, observables)


def angles_for(circuit: Circuit, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, circuit.n_params, generator=g, dtype=torch.float64) - 0.5) * 4 * np.pi


def cases(max_qubits: int = 5):
    for gate, (size, _) in GATES.items():
        for n in range(max(size, 1), max_qubits + 1, 2 if size == 1 else 1):
            yield gate, n


def weighted_sum(out: torch.Tensor) -> torch.Tensor:
    return (out * torch.linspace(0.5, 1.5, out.shape[1], dtype=out.dtype)).sum()


# -- the PTM maths ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_channel_ptm_sparse_form_equals_the_kraus_form(name):
    channel = CHANNELS[name]
    assert np.allclose(channel_ptm(channel), transfer.kraus_ptm(channel.kraus()), atol=1e-15, rtol=0)


def test_depolarizing_scales_x_y_z_by_one_minus_four_thirds_p():
    assert np.allclose(channel_ptm(nm.depolarizing(0.03)), np.diag([1, 0.96, 0.96, 0.96]), atol=1e-15)


@pytest.mark.parametrize("gate", ["RX", "RY", "RZ"])
def test_rotation_ptm_is_a_two_by_two_rotation_of_two_digits(gate):
    theta = 0.37
    k, terms = transfer.gate_terms(gate)
    ptm = np.einsum("q,qij->ij", transfer.term_weights(np.cos(k * theta), np.sin(k * theta)), terms)
    axis = "IXYZ".index(gate[1])
    a, b = axis % 3 + 1, (axis + 1) % 3 + 1  # the cyclic successors: exp(−iθX/2) turns Y towards Z
    want = np.eye(4)
    want[a, a] = want[b, b] = np.cos(theta)
    want[b, a], want[a, b] = np.sin(theta), -np.sin(theta)
    assert np.allclose(ptm, want, atol=1e-15)
    assert np.allclose(ptm, transfer.unitary_ptm(matrix(gate, theta)), atol=1e-15)


@pytest.mark.parametrize("gate", ["CNOT", "CZ", "SWAP", "CY"])
def test_clifford_ptms_are_signed_permutations(gate):
    ptm = transfer.fixed_gate(gate)
    assert set(np.unique(ptm)) <= {-1.0, 0.0, 1.0}
    assert np.array_equal(np.abs(ptm).sum(axis=0), np.ones(16)) and np.array_equal(np.abs(ptm).sum(axis=1), np.ones(16))


def test_lift_matches_kron_and_wire_order():
    rng = np.random.default_rng(0)
    a, c = rng.normal(size=(4, 4)), rng.normal(size=(16, 16))
    assert np.allclose(transfer.lift(a, (1,), (0, 1)), np.kron(np.eye(4), a))
    assert np.allclose(transfer.lift(a, (0,), (0, 1)), np.kron(a, np.eye(4)))
    swap = np.eye(16).reshape(4, 4, 4, 4).transpose(0, 1, 3, 2).reshape(16, 16)
    assert np.allclose(transfer.lift(c, (1, 0), (0, 1)), swap @ c @ swap)


# -- values --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gate,n", list(cases()))
def test_values_match_torch_dm_for_every_gate(gate, n):
    circuit = gate_circuit(gate, n, seed=n)
    angles = angles_for(circuit, 3, seed=n)
    for p in (0.0, 0.02):
        got = PtmBackend(depolarizing=p).expval(circuit, angles)
        want = make_backend("torch-dm", depolarizing=p).expval(circuit, angles)
        assert torch.allclose(got, want, atol=1e-12, rtol=0), (gate, n, p, (got - want).abs().max())


@pytest.mark.parametrize("name", sorted(CHANNELS))
@pytest.mark.parametrize("gate", sorted(GATES))
def test_values_match_a_dense_density_matrix_for_every_channel_and_gate(name, gate):
    n = max(GATES[gate][0], 2) + 1
    circuit = gate_circuit(gate, n, seed=len(gate) + len(name))
    angles = angles_for(circuit, 2, seed=7)
    model = nm.NoiseModel().with_channel(CHANNELS[name])
    got = PtmBackend(noise=model).expval(circuit, angles).numpy()
    assert np.allclose(got, dense_outputs(circuit, angles.numpy(), model), atol=1e-12, rtol=0)


def test_rules_with_gate_and_wire_filters_and_several_channels_per_wire():
    model = (
        nm.NoiseModel()
        .with_channel(nm.amplitude_damping(0.2), gates="CNOT", wires=[0])
        .with_channel(nm.depolarizing(0.05))
        .with_channel(nm.thermal_relaxation(40.0, 30.0, 5.0), gates=["RY", "CRX"], wires=[1, 2])
    )
    circuit = gate_circuit("CRX", 3, seed=3)
    circuit = Circuit(3, circuit.operations + (Operation("CNOT", (0, 2)),), circuit.observables)
    angles = angles_for(circuit, 2, seed=1)
    got = PtmBackend(noise=model).expval(circuit, angles).numpy()
    assert np.allclose(got, dense_outputs(circuit, angles.numpy(), model), atol=1e-12, rtol=0)


def test_probs_hamiltonians_and_readout_error_match_the_dense_reference():
    observables = [
        Probs((2, 0)),
        Hamiltonian([(0.5, "Z0 Z1"), (-1.25, "X2"), (2.0, "Y1")]),
        PauliWord.parse("Z0 Z2"),
        PauliWord.parse("X1"),
    ]
    circuit = gate_circuit("CNOT", 3, seed=5, observables=observables)
    angles = angles_for(circuit, 3, seed=2)
    for model in (
        nm.NoiseModel.parse("amplitude_damping=0.1,depolarizing=0.02"),
        nm.NoiseModel.parse("phase_damping=0.05,readout=0.03"),
        nm.NoiseModel().with_readout(0.02, 0.07, wires=[0, 1]).with_readout(0.1, 0.01, wires=[2]),
    ):
        got = PtmBackend(noise=model).expval(circuit, angles).numpy()
        assert np.allclose(got, dense_outputs(circuit, angles.numpy(), model), atol=1e-12, rtol=0), str(model)


@pytest.mark.parametrize("gate,n", [(g, n) for g, n in cases(4) if n == max(GATES[g][0], 2)])
def test_noiseless_equals_the_state_vector_backend(gate, n):
    circuit = gate_circuit(gate, n, seed=11)
    angles = angles_for(circuit, 4, seed=3)
    got = PtmBackend().expval(circuit, angles)
    want = make_backend("torch").expval(circuit, angles)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)


def test_noise_text_and_depolarizing_shorthand_agree():
    circuit = gate_circuit("CZ", 3, seed=1)
    angles = angles_for(circuit, 2, seed=0)
    a = PtmBackend(depolarizing=0.04).expval(circuit, angles)
    b = PtmBackend(noise="depolarizing=0.04").expval(circuit, angles)
    c = PtmBackend(noise=nm.NoiseModel.depolarizing(0.04)).expval(circuit, angles)
    assert torch.equal(a, b) and torch.equal(a, c)
    with pytest.raises(ValueError, match="not both"):
        PtmBackend(noise="bit_flip=0.1", depolarizing=0.1)
    with pytest.raises(ValueError, match="complex128"):
        PtmBackend(dtype="complex64")


def test_two_threads_give_the_rows_of_one():
    circuit = gate_circuit("RXX", 4, seed=2)
    angles = angles_for(circuit, 5, seed=4)
    one, two = PtmBackend(depolarizing=0.03), PtmBackend(depolarizing=0.03)
    one.set_threads(1)
    two.set_threads(2)
    assert torch.equal(one.expval(circuit, angles), two.expval(circuit, angles))
    g = torch.rand(5, circuit.n_outputs, dtype=torch.float64)
    assert torch.equal(one.vjp(circuit, angles, g), two.vjp(circuit, angles, g))


def test_twelve_qubits_run():
    n, p = 12, 0.02
    ops = [Operation("RY", w, w) for w in range(n)] + [Operation("CZ", (0, n - 1))]
    circuit = Circuit(n, ops, [PauliWord.z(w) for w in range(n)])
    angles = torch.linspace(0.1, 1.2, n, dtype=torch.float64).reshape(1, n)
    out = PtmBackend(depolarizing=p).expval(circuit, angles)
    # CZ commutes with Z: each ⟨Z_w⟩ is cos θ_w, shrunk by D_p once per gate on the wire
    shrink = torch.tensor([(1 - 4 * p / 3) ** (2 if w in (0, n - 1) else 1) for w in range(n)], dtype=torch.float64)
    assert torch.allclose(out[0], torch.cos(angles[0]) * shrink, atol=1e-12, rtol=0)


# -- gradients ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gate,n", [(g, n) for g, n in cases(4) if n == max(GATES[g][0], 2) or g in ("CNOT", "RY")])
def test_adjoint_gradients_match_torch_dm_autograd(gate, n):
    circuit = gate_circuit(gate, n, seed=13)
    angles = angles_for(circuit, 2, seed=5)
    grads = []
    for backend in (PtmBackend(depolarizing=0.03), make_backend("torch-dm", depolarizing=0.03)):
        leaf = angles.clone().requires_grad_()
        (grad,) = torch.autograd.grad(weighted_sum(backend.expval(circuit, leaf)), leaf)
        grads.append(grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-10, rtol=0)
    cotangent = torch.linspace(0.5, 1.5, circuit.n_outputs, dtype=torch.float64).expand(2, -1)
    vjp = PtmBackend(depolarizing=0.03).vjp(circuit, angles, cotangent)
    assert torch.allclose(vjp, grads[1], atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_adjoint_gradients_match_finite_differences_for_every_channel(name):
    observables = [PauliWord.z(0), Probs((1, 2)), Hamiltonian([(0.7, "X0 Z2"), (0.2, "Y1")])]
    circuit = gate_circuit("CRY", 3, seed=17, observables=observables)
    model = nm.NoiseModel().with_channel(CHANNELS[name]).with_readout(0.02, 0.05)
    backend = PtmBackend(noise=model)
    angles = angles_for(circuit, 2, seed=6)
    cotangent = torch.linspace(-1.0, 1.0, circuit.n_outputs, dtype=torch.float64).expand(2, -1)
    got = backend.vjp(circuit, angles, cotangent)
    h = 1e-5
    want = torch.zeros_like(angles)
    for col in range(circuit.n_params):
        step = torch.zeros_like(angles)
        step[:, col] = h
        plus = (backend.expval(circuit, angles + step) * cotangent).sum(1)
        minus = (backend.expval(circuit, angles - step) * cotangent).sum(1)
        want[:, col] = (plus - minus) / (2 * h)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_kept_and_recomputed_checkpoints_give_the_same_gradient():
    circuit = gate_circuit("CNOT", 5, seed=19)
    angles = angles_for(circuit, 3, seed=8)
    grads = []
    for mib in (512.0, 0.0):  # the forward keeps its checkpoints / the backward recomputes them
        leaf = angles.clone().requires_grad_()
        backend = PtmBackend(depolarizing=0.02, checkpoint_mib=mib)
        (grad,) = torch.autograd.grad(weighted_sum(backend.expval(circuit, leaf)), leaf)
        grads.append(grad)
    assert torch.equal(grads[0], grads[1])


def test_second_derivatives_fall_back_to_the_exact_shift_rule():
    circuit = gate_circuit("RY", 2, seed=23)
    angles = angles_for(circuit, 1, seed=9)
    hessians = []
    for backend in (PtmBackend(depolarizing=0.05), make_backend("torch-dm", depolarizing=0.05)):
        leaf = angles.clone().requires_grad_()
        (grad,) = torch.autograd.grad(weighted_sum(backend.expval(circuit, leaf)), leaf, create_graph=True)
        (hvp,) = torch.autograd.grad(grad.sum(), leaf)
        hessians.append(hvp)
    assert torch.allclose(hessians[0], hessians[1], atol=1e-10, rtol=0)


@pytest.mark.parametrize("every", [1, 2, 3, 5])
def test_any_checkpoint_interval_gives_the_same_gradient(every):
    circuit = gate_circuit("CZ", 4, seed=29)
    backend = PtmBackend(noise="amplitude_damping=0.1,depolarizing=0.02")
    rows = angles_for(circuit, 2, seed=10).numpy()
    cotangent = np.linspace(-1.0, 2.0, circuit.n_outputs)[None].repeat(2, 0)
    _, checkpoints = backend.words(circuit, rows, every)
    kept = backend.gradient(circuit, rows, cotangent, checkpoints, every)
    assert np.allclose(kept, backend.gradient(circuit, rows, cotangent), atol=1e-14, rtol=0)


def test_a_circuit_without_gates_reads_the_initial_state():
    circuit = Circuit(2, [], [PauliWord.z(0), PauliWord.parse("X1"), Probs((0, 1))])
    out = PtmBackend(depolarizing=0.1).expval(circuit, torch.zeros(2, 0, dtype=torch.float64))
    assert out.tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]] * 2
    assert PtmBackend().vjp(circuit, torch.zeros(2, 0, dtype=torch.float64), torch.ones(2, 6)).shape == (2, 0)


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_every_channel_with_readout_agrees_with_torch_dm_and_the_density_reference(name):
    observables = [PauliWord.parse("X0 Z2"), Probs((1, 0)), Hamiltonian([(0.3, "Y1"), (-0.8, "Z0 Z1")])]
    circuit = gate_circuit("CRZ", 3, seed=31, observables=observables)
    model = nm.NoiseModel().with_channel(CHANNELS[name]).with_readout(0.03, 0.08, wires=[0, 2])
    angles = angles_for(circuit, 2, seed=12)
    got = PtmBackend(noise=model).expval(circuit, angles)
    for other in (make_backend("torch-dm", noise=model), ReferenceDensityBackend(noise=model)):
        assert torch.allclose(got, other.expval(circuit, angles), atol=1e-12, rtol=0), other.name


@pytest.mark.parametrize("peer", ["qiskit-aer-dm", "pennylane-mixed"])
def test_every_channel_agrees_with_aer_and_default_mixed(peer):
    pytest.importorskip({"qiskit-aer-dm": "qiskit_aer", "pennylane-mixed": "pennylane"}[peer])
    ops = [
        Operation("RY", 0, 0),
        Operation("RX", 1, 1),
        Operation("H", 2),
        Operation("CNOT", (0, 1)),
        Operation("RZ", 1, 2),
        Operation("CZ", (1, 2)),
        Operation("RY", 2, 3),
        Operation("CNOT", (2, 0)),
    ]
    circuit = Circuit(3, ops, [PauliWord.z(0), PauliWord.parse("X1 Z2"), PauliWord.parse("Y2")])
    angles = angles_for(circuit, 2, seed=14)
    for channel in CHANNELS.values():
        model = nm.NoiseModel().with_channel(channel)
        want = make_backend(peer, noise=model).expval(circuit, angles)
        assert torch.allclose(PtmBackend(noise=model).expval(circuit, angles), want, atol=1e-10, rtol=0), channel


def test_a_batch_larger_than_the_step_chunk_gives_each_row_its_own_values_and_gradient():
    circuit = gate_circuit("CRX", 3, seed=37)
    backend = PtmBackend(noise="phase_damping=0.04,depolarizing=0.01")
    batch = ROWS + 7
    angles = angles_for(circuit, batch, seed=15)
    cotangent = torch.linspace(-1.0, 1.0, batch * circuit.n_outputs, dtype=torch.float64).reshape(batch, -1)
    values, grads = backend.expval(circuit, angles), backend.vjp(circuit, angles, cotangent)
    for b in (0, ROWS - 1, ROWS, batch - 1):
        assert torch.allclose(values[b], backend.expval(circuit, angles[b : b + 1])[0], atol=1e-14, rtol=0)
        alone = backend.vjp(circuit, angles[b : b + 1], cotangent[b : b + 1])[0]
        assert torch.allclose(grads[b], alone, atol=1e-14, rtol=0)
