"""The trajectory backend: its mean is the density-matrix value and its gradient's mean the exact gradient,
within Hoeffding bounds derived from the trajectory count (seeded: no flaky test); the kernels equal the
plain path on the same branches; p = 0 is the torch backend; a seed replays bit for bit.

Hoeffding: the mean of ``K`` independent values in ``[−c, c]`` is within ``c·sqrt(2 ln(2/δ)/K)`` of their
expectation with probability at least ``1 − δ``. A trajectory's value is ``⟨ψ̃|O|ψ̃⟩`` with ``‖O‖ ≤ 1``
and ``‖ψ̃‖² ≤ c = Π_sites max_k ‖M_k‖²`` (1 under Pauli noise); its derivative in an angle read by one
rotation is ``(f(θ + π/2) − f(θ − π/2))/2`` (a fixed branch makes ``f`` a degree-one trigonometric
polynomial), so it lies in ``[−c, c]`` too. δ = 1e-9 per checked number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hqf.backends.readout import readout
from hqf.backends.torch import TorchBackend
from hqf.backends.trajectories.backend import TrajectoryBackend, compiled
from hqf.backends.trajectories.branches import sites
from hqf.backends.trajectories.kernels import CLIFFORD, GATE, PERMUTATION, PHASE
from hqf.backends.trajectories.plain import word_values
from hqf.backends.trajectories.program import KernelWordValues, commuted_order
from hqf.quantum.circuit import Circuit, Operation, PauliWord, Probs
from hqf.quantum.gates import full_angles
from hqf.quantum.noise import NoiseModel
from hqf.testing.reference import ReferenceDensityBackend

DELTA = 1e-9

#: every channel, strong enough that a wrong convention moves the values by more than the bound
MODELS = {
    "depolarizing": "depolarizing=0.2",
    "bit_flip": "bit_flip=0.3",
    "phase_flip": "phase_flip=0.3",
    "pauli": "pauli=0.1:0.15:0.05",
    "amplitude_damping": "amplitude_damping=0.4",
    "phase_damping": "phase_damping=0.4",
    "thermal_relaxation": "thermal_relaxation=1.0:1.5:0.5",
    "readout": "bit_flip=0.1,readout=0.05:0.1",
}


def small_circuit() -> Circuit:
    """Two qubits, a data angle (column 0) and two weights, read out in a rotated basis; Z words and a ZZ word."""
    ops = [
        Operation("RY", 0, 0),
        Operation("H", 1),
        Operation("CNOT", (0, 1)),
        Operation("RX", 1, 1),
        Operation("CZ", (1, 0)),
        Operation("RZ", 0, 2),
        Operation("H", 0),
        Operation("SX", 1),
    ]
    words = [PauliWord.z(0), PauliWord.z(1), PauliWord(((0, "Z"), (1, "Z")))]
    return Circuit(2, ops, words)


def range_bound(circuit: Circuit, noise: NoiseModel) -> float:
    """``c``: the largest ``‖ψ̃‖²`` a trajectory can reach (the product over sites of the largest branch's
    squared spectral norm)."""
    found = sites(circuit, noise)
    c = 1.0
    for channel in found.channel:
        c *= max(np.linalg.norm(m, 2) ** 2 for m in found.unravellings[channel].matrices)
    return c


def hoeffding(c: float, k: int) -> float:
    return c * math.sqrt(2 * math.log(2 / DELTA) / k)


def damping_on_cnot(text: str) -> NoiseModel:
    """``text``'s channels after the CNOT only (few sites keep ``c`` small), Pauli channels after every gate."""
    model = NoiseModel.parse(text)
    rules = [r if r.channel.pauli_probabilities() is not None else type(r)(r.channel, "CNOT") for r in model.rules]
    return NoiseModel(rules, model.readout)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mean_converges_to_the_density_matrix(name):
    circuit, noise = small_circuit(), damping_on_cnot(MODELS[name])
    k = 2**19
    angles = torch.tensor([[0.7, -1.1, 0.4]], dtype=torch.float64)
    exact = ReferenceDensityBackend(noise=noise).expval(circuit, angles)
    noiseless = ReferenceDensityBackend().expval(circuit, angles)
    estimate = TrajectoryBackend(noise=noise, trajectories=k, seed=11).expval(circuit, angles)
    bound = hoeffding(range_bound(circuit, noise), k)
    assert bound < 0.05
    assert (estimate - exact).abs().max() <= bound
    assert (noiseless - exact).abs().max() > 2 * bound  # the noise is visible: a wrong channel would be too


@pytest.mark.parametrize("name", ["depolarizing", "pauli", "amplitude_damping", "thermal_relaxation"])
def test_gradient_of_a_linear_loss_is_unbiased(name):
    circuit, noise = small_circuit(), damping_on_cnot(MODELS[name])
    k = 2**16
    data = torch.tensor([[0.3]], dtype=torch.float64)
    weights = torch.tensor([0.9, -0.5], dtype=torch.float64)
    mix = torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64)  # Σ|w| = 1: the loss stays in [−c, c]

    def gradient(backend):
        d, w = data.clone().requires_grad_(), weights.clone().requires_grad_()
        (backend.expval_broadcast(circuit, d, w) @ mix).sum().backward()
        return torch.cat([d.grad.flatten(), w.grad])

    exact = gradient(ReferenceDensityBackend(noise=noise))
    estimate = gradient(TrajectoryBackend(noise=noise, trajectories=k, seed=5))
    assert (estimate - exact).abs().max() <= hoeffding(range_bound(circuit, noise), k)


def layered_circuit(n: int, layers: int, extra: tuple[Operation, ...] = ()) -> Circuit:
    """Angle encoding (columns 0..n-1) then ``layers`` of RY, RX, RZ on every wire and a CNOT ring with a CZ;
    Z on every wire and a ZZ word."""
    ops = [Operation("RY", w, w) for w in range(n)] + [Operation("H", 0), Operation("S", 1)]
    column = n
    for _ in range(layers):
        for gate in ("RY", "RX", "RZ"):
            for w in range(n):
                ops.append(Operation(gate, w, column))
                column += 1
        ops += [Operation("CNOT", (w, (w + 1) % n)) for w in range(n)] + [Operation("CZ", (0, n - 1))]
    ops += list(extra)
    return Circuit(n, ops, [PauliWord.z(w) for w in range(n)] + [PauliWord(((0, "Z"), (n - 1, "Z")))])


@pytest.mark.parametrize(
    "text",
    [
        "depolarizing=0.1",
        "pauli=0.05:0.1:0.02,phase_flip=0.1",
        "amplitude_damping=0.2,phase_damping=0.1",
        "thermal_relaxation=1:1.5:0.3,bit_flip=0.1",
        "none",
    ],
)
@pytest.mark.parametrize("n_data", [4, 28])  # broadcast weights, or every column per row
def test_kernels_equal_the_plain_path_on_the_same_branches(text, n_data):
    circuit, noise = layered_circuit(4, 2), NoiseModel.parse(text)
    found, program = compiled(circuit, noise)
    assert program is not None
    generator = torch.Generator().manual_seed(3)
    angles = torch.randn(13, circuit.n_params, dtype=torch.float64, generator=generator)
    angles[:, n_data:] = angles[0, n_data:]
    branches = found.draw(13, generator)
    words = readout(circuit, noise)

    def plain(d, w):
        return word_values(circuit, found, branches, full_angles(d, w), words, torch.complex128)

    full = angles.clone().requires_grad_()
    data, shared = angles[:, :n_data].clone().requires_grad_(), angles[0, n_data:].clone().requires_grad_()
    expected = word_values(circuit, found, branches, full, words, torch.complex128)
    got = KernelWordValues.apply(data, shared, program, branches, 1, plain)
    cotangent = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
    (expected * cotangent).sum().backward()
    (got * cotangent).sum().backward()
    scale = max(1.0, expected.abs().max().item())
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * scale)
    assert torch.allclose(data.grad, full.grad[:, :n_data], rtol=0, atol=1e-11 * scale)
    assert torch.allclose(shared.grad, full.grad[:, n_data:].sum(0), rtol=0, atol=1e-11 * scale)


@pytest.mark.parametrize("extra", [(), (Operation("CRX", (0, 2), 28), Operation("SWAP", (1, 3)))])
def test_zero_noise_is_the_torch_backend(extra):
    circuit = layered_circuit(4, 2, extra)
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(9, 4, dtype=torch.float64, generator=generator)
    weights = torch.randn(circuit.n_params - 4, dtype=torch.float64, generator=generator)

    def run(backend):
        d, w = data.clone().requires_grad_(), weights.clone().requires_grad_()
        out = backend.expval_broadcast(circuit, d, w)
        out.pow(2).sum().backward()
        return out.detach(), d.grad, w.grad

    expected = run(TorchBackend())
    assert (compiled(circuit, NoiseModel())[1] is None) == bool(extra)  # both paths
    for backend in (TrajectoryBackend(depolarizing=0.0, trajectories=2, seed=1), TrajectoryBackend(noise="none")):
        for got, want in zip(run(backend), expected):
            assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_a_seed_replays_bit_for_bit_and_each_call_draws_afresh():
    circuit = layered_circuit(3, 1)
    angles = torch.rand(16, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    first, second = (TrajectoryBackend(noise="depolarizing=0.1,amplitude_damping=0.1", seed=4) for _ in range(2))
    a1, a2 = first.expval(circuit, angles), first.expval(circuit, angles)
    assert not torch.equal(a1, a2)
    assert torch.equal(second.expval(circuit, angles), a1)
    state = second.rng_state()
    b2 = second.expval(circuit, angles)
    assert torch.equal(b2, a2)
    second.set_rng_state(state)
    assert torch.equal(second.expval(circuit, angles), a2)


def test_probs_and_other_words_take_the_plain_path():
    circuit = Circuit(2, [Operation("RY", 0, 0), Operation("CNOT", (0, 1))], [PauliWord.parse("X0 Y1"), Probs((0, 1))])
    noise = NoiseModel.parse("amplitude_damping=0.3,readout=0.1")
    assert compiled(circuit, noise)[1] is None
    angles = torch.tensor([[0.4]], dtype=torch.float64)
    k = 2**16
    estimate = TrajectoryBackend(noise=noise, trajectories=k, seed=3).expval(circuit, angles)
    exact = ReferenceDensityBackend(noise=noise).expval(circuit, angles)
    assert (estimate - exact).abs().max() <= hoeffding(range_bound(circuit, noise), k)


@pytest.mark.parametrize("n", [16, 20])
def test_sizes_a_density_matrix_cannot_reach(n):
    ops = [Operation("RY", w, w) for w in range(n)] + [Operation("CNOT", (w, w + 1)) for w in range(n - 1)]
    circuit = Circuit(n, ops + [Operation("RX", n - 1, n)], [PauliWord.z(0), PauliWord.z(n - 1)])
    assert compiled(circuit, NoiseModel.depolarizing(0.02))[1] is not None
    backend = TrajectoryBackend(depolarizing=0.02, seed=0)
    data = torch.full((2, n), 0.3, dtype=torch.float64, requires_grad=True)
    weight = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    out = backend.expval_broadcast(circuit, data, weight)
    out.sum().backward()
    assert out.shape == (2, 2) and bool(out.abs().le(1 + 1e-12).all())
    assert torch.isfinite(data.grad).all() and torch.isfinite(weight.grad).all()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trajectories": 0}, "'trajectories' must be an integer >= 1 (got 0)"),
        ({"trajectories": 2.5}, "'trajectories' must be an integer >= 1 (got 2.5)"),
        ({"seed": "one"}, "'seed' must be an integer or None (got 'one')"),
        ({"noise": "depolarising=0.1"}, "unknown noise item"),
        ({"noise": "bit_flip=0.1", "depolarizing": 0.1}, "give either 'noise' or 'depolarizing', not both"),
        ({"depolarizing": 1.5}, "'depolarizing' must be a probability in [0, 1] (got 1.5)"),
        ({"dtype": "complex64"}, "supports dtypes ['complex128']"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError) as error:
        TrajectoryBackend(**options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_differentiable_backward_gives_second_derivatives():
    circuit = layered_circuit(3, 1)
    data = torch.tensor([[0.2, -0.4, 0.9], [1.1, 0.3, -0.7]], dtype=torch.float64)
    weights = torch.linspace(-1, 1, circuit.n_params - 3, dtype=torch.float64)

    def hessian_diagonal(backend):
        d = data.clone().requires_grad_()
        (grad,) = torch.autograd.grad(backend.expval_broadcast(circuit, d, weights).sum(), d, create_graph=True)
        (second,) = torch.autograd.grad(grad.sum(), d)
        return grad.detach(), second

    for got, want in zip(hessian_diagonal(TrajectoryBackend(depolarizing=0.0)), hessian_diagonal(TorchBackend())):
        assert torch.allclose(got, want, rtol=0, atol=1e-12)


# --- common random numbers (Backend.fix_randomness) and the declaration of estimates ---


def test_a_key_gives_the_first_rows_the_same_branches_whatever_the_batch():
    circuit = layered_circuit(3, 1)
    angles = torch.rand(24, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    found = sites(circuit, NoiseModel.parse("depolarizing=0.1,amplitude_damping=0.1"))
    whole, first = found.draw_keyed(24 * 3, 9, 7), found.draw_keyed(5 * 3, 9, 7)
    assert np.array_equal(whole[: 5 * 3], first)
    assert not np.array_equal(found.draw_keyed(24 * 3, 9, 8), whole)  # another key, other branches
    backend = TrajectoryBackend(noise="depolarizing=0.1,amplitude_damping=0.1", trajectories=3, seed=9)
    state = backend.rng_state()
    backend.fix_randomness(7)
    all_rows = backend.expval(circuit, angles)
    assert torch.equal(backend.expval(circuit, angles[:5]), all_rows[:5])  # the curvature probe's first m rows
    assert torch.equal(backend.expval(circuit, angles), all_rows)  # every call under the key: the same draws
    assert torch.equal(backend.rng_state(), state)  # the generator is left alone
    backend.fix_randomness(None)
    fresh = backend.expval(circuit, angles)
    assert not torch.equal(fresh, all_rows)
    assert not torch.equal(backend.rng_state(), state)


def test_keyed_draws_depend_on_the_seed_and_key_alone():
    circuit = layered_circuit(3, 1)
    angles = torch.rand(8, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    first, second = (TrajectoryBackend(noise="depolarizing=0.2", seed=3) for _ in range(2))
    first.expval(circuit, angles)  # a call between: keyed draws do not read the generator's state
    first.fix_randomness(11), second.fix_randomness(11)
    assert torch.equal(first.expval(circuit, angles), second.expval(circuit, angles))
    other = TrajectoryBackend(noise="depolarizing=0.2", seed=4)
    other.fix_randomness(11)
    assert not torch.equal(other.expval(circuit, angles), first.expval(circuit, angles))


def test_a_key_makes_a_finite_difference_measure_the_function_not_the_noise():
    circuit = layered_circuit(3, 1)
    angles = torch.rand(16, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    backend = TrajectoryBackend(noise="depolarizing=0.05", seed=1)
    step = torch.zeros_like(angles)
    step[:, -1] = 1e-5
    exact = TorchBackend().expval(circuit, angles + step) - TorchBackend().expval(circuit, angles - step)
    fresh = backend.expval(circuit, angles + step) - backend.expval(circuit, angles - step)
    backend.fix_randomness(0)
    common = backend.expval(circuit, angles + step) - backend.expval(circuit, angles - step)
    assert float(fresh.abs().max()) > 1e-2  # sampling noise swamps a 2e-5 difference
    assert float(common.abs().max()) < 1e-3 and float(exact.abs().max()) < 1e-3


@pytest.mark.parametrize("key", [-1, 1.5, True, "0"])
def test_a_bad_key_is_a_one_line_error(key):
    with pytest.raises(ValueError, match="'key' must be a non-negative integer or None"):
        TrajectoryBackend(noise="depolarizing=0.1", seed=1).fix_randomness(key)


def test_trajectories_declare_estimates_and_exact_backends_do_not():
    assert TrajectoryBackend.capabilities.estimates
    assert not TorchBackend.capabilities.estimates
    TorchBackend().fix_randomness(3)  # the contract's default: a backend that draws nothing ignores it


# --- the kernels' product layer and commuted one-qubit runs (kernels against the plain path) ---


def interleaved_circuit(n: int, layers: int) -> Circuit:
    """A product layer of every kind (per-row RY and RX on wire 0, per-row RY elsewhere, a shared RZ, H, S,
    SX), then ``layers`` of RY, RZ wire by wire (as ``hea`` orders them) and a CNOT ring; Z on every wire."""
    ops = [Operation("RY", w, w) for w in range(n)] + [Operation("RX", 0, n), Operation("RZ", 2, n + 1)]
    ops += [Operation("H", 1), Operation("S", 1), Operation("SX", 3)]
    column = n + 2
    for _ in range(layers):
        for w in range(n):
            ops += [Operation("RY", w, column), Operation("RZ", w, column + 1)]
            column += 2
        ops += [Operation("CNOT", (w, (w + 1) % n)) for w in range(n)]
    return Circuit(n, ops, [PauliWord.z(w) for w in range(n)] + [PauliWord(((0, "Z"), (n - 1, "Z")))])


def kernel_and_plain(circuit: Circuit, noise: NoiseModel, n_data: int, rows: int = 13):
    """``(kernel values, plain values, kernel data grad, plain data grad, kernel shared grad, plain shared grad)``
    on the same drawn branches, the first ``n_data`` columns per row and the others shared."""
    found, program = compiled(circuit, noise)
    assert program is not None
    generator = torch.Generator().manual_seed(7)
    angles = torch.randn(rows, circuit.n_params, dtype=torch.float64, generator=generator)
    angles[:, n_data:] = angles[0, n_data:]
    branches = found.draw(rows, generator)
    words = readout(circuit, noise)

    def plain(d, w):
        return word_values(circuit, found, branches, full_angles(d, w), words, torch.complex128)

    full = angles.clone().requires_grad_()
    data, shared = angles[:, :n_data].clone().requires_grad_(), angles[0, n_data:].clone().requires_grad_()
    expected = word_values(circuit, found, branches, full, words, torch.complex128)
    got = KernelWordValues.apply(data, shared, program, branches, 1, plain)
    cotangent = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
    (expected * cotangent).sum().backward()
    (got * cotangent).sum().backward()
    return got, expected, data.grad, full.grad[:, :n_data], shared.grad, full.grad[:, n_data:].sum(0)


@pytest.mark.parametrize(
    "text", ["depolarizing=0.15", "pauli=0.1:0.1:0.1,phase_flip=0.2", "amplitude_damping=0.3,phase_damping=0.2", "none"]
)
@pytest.mark.parametrize("n_data", [4, 22])  # broadcast weights, or every column per row
def test_kernels_with_a_product_layer_and_commuted_runs_equal_the_plain_path(text, n_data):
    circuit, noise = interleaved_circuit(4, 2), NoiseModel.parse(text)
    found, program = compiled(circuit, noise)
    assert (program.prefix[:, 0] == GATE).sum() == 9 + 8  # every one-qubit gate before the first CNOT
    assert program.ops[0, 0] in (CLIFFORD, PERMUTATION)
    if bool(found.unitary.all()):  # frames: the second layer's RZ gates, commuted together, are one diagonal
        assert (program.ops[:, 0] == PHASE).sum() == 1
    got, expected, *grads = kernel_and_plain(circuit, noise, n_data)
    scale = max(1.0, expected.abs().max().item())
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * scale)
    for kernel_grad, plain_grad in zip(grads[::2], grads[1::2]):
        assert torch.allclose(kernel_grad, plain_grad, rtol=0, atol=1e-11 * scale)


def test_commuted_order_keeps_every_wire_in_order_and_gathers_the_trailing_rz_gates():
    circuit = interleaved_circuit(4, 2)
    order = commuted_order(circuit, 9)
    assert sorted(order) == list(range(9, len(circuit.operations)))
    for o, op in enumerate(circuit.operations[9:], start=9):
        if len(op.wires) > 1:
            assert order[o - 9] == o  # two-qubit gates stay where they are
    for w in range(4):
        on_wire = [o for o in order if w in circuit.operations[o].wires]
        assert on_wire == sorted(on_wire)
    assert [circuit.operations[o].gate for o in order[:8]] == ["RY"] * 4 + ["RZ"] * 4
