"""The shift rule's values in the fused CPU kernels (backends/torch/shift_cpu.py) against the torch
kernels' paired shift rule (``fused=False``), the dense reference's Jacobian (hqf.testing) and an
independent numpy simulator (tests/reference.py)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_expval
from strategies import circuits, encoded

from hqf.backends.torch import TorchBackend
from hqf.quantum.circuit import BASE_GATES, Circuit, Operation, PauliWord, compose
from hqf.quantum.gates import full_angles
from hqf.quantum.gradients import expval
from hqf.registry.make import make_ansatz
from hqf.testing import ReferenceBackend


def _hea(n_qubits: int, n_layers: int) -> Circuit:
    """RY encoding of ``n_qubits`` inputs, then ``hea{n_qubits}x{n_layers}``, ⟨Z⟩ on every wire."""
    encoding = [Operation("RY", q, q) for q in range(n_qubits)]
    return compose(n_qubits, [encoding, make_ansatz(f"hea{n_qubits}x{n_layers}").operations()])


def _mixed() -> Circuit:
    """Two gates per wire in the product state (H, RX, RZ, RY), then every kind of later gate and Z words
    on some wires: fixed gates, all three rotations, phases, CZ and CNOT."""
    ops = [
        Operation("H", 0),
        Operation("RX", 1, 0),
        Operation("RZ", 2, 1),
        Operation("RY", 3, 2),
        Operation("RZ", 0, 3),
        Operation("RY", 1, 4),
        Operation("RX", 3, 5),
        Operation("CZ", (0, 1)),
        Operation("CNOT", (2, 3)),
        Operation("RX", 0, 6),
        Operation("RY", 1, 7),
        Operation("H", 2),
        Operation("RZ", 3, 8),
        Operation("RZ", 1, 9),
        Operation("CNOT", (1, 2)),
        Operation("X", 0),
        Operation("RY", 2, 10),
        Operation("RZ", 0, 11),
    ]
    observables = [PauliWord.z(0), PauliWord.parse("Z1 Z3"), PauliWord.parse("Z0 Z2 Z3")]
    return Circuit(4, ops, observables)


#: (id, circuit, the columns read by the product state: per-row inputs)
CIRCUITS = [("hea8x6", _hea(8, 6), 8), ("hea4x1", _hea(4, 1), 4), ("mixed", _mixed(), 6)]


def _inputs(circuit: Circuit, n_data: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(data [B, n_data], weights [P − n_data])``, uniform in ``[−2π, 2π)``."""
    gen = torch.Generator().manual_seed(seed)
    data = (torch.rand(batch, n_data, dtype=torch.float64, generator=gen) - 0.5) * 4 * math.pi
    weights = (torch.rand(circuit.n_params - n_data, dtype=torch.float64, generator=gen) - 0.5) * 4 * math.pi
    return data, weights


def _torch_path(circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
    backend = TorchBackend(fused=False)
    values = backend.expval_shifted(circuit, angles)
    assert backend.last_path == "plan"
    return values


@pytest.mark.parametrize("name, circuit, n_data", CIRCUITS, ids=[c[0] for c in CIRCUITS])
@pytest.mark.parametrize("batch", [1, 13])  # 13: not a multiple of the tile width
def test_fused_shifted_values_equal_the_torch_path(name, circuit, n_data, batch):
    angles = full_angles(*_inputs(circuit, n_data, batch, seed=batch))
    backend = TorchBackend()
    got = backend.expval_shifted(circuit, angles)
    assert backend.last_path == "fused"
    want = _torch_path(circuit, angles)
    assert got.shape == want.shape == (2, circuit.n_params, batch, circuit.n_outputs)
    assert torch.max(torch.abs(got - want)).item() <= 1e-12


@pytest.mark.parametrize(
    "name, circuit, n_data, columns, batch",
    [
        ("hea4x1", CIRCUITS[1][1], 4, None, 3),
        ("hea4x3", _hea(4, 3), 4, None, 3),
        ("mixed", CIRCUITS[2][1], 6, None, 3),
        # data, product state, layers 2 and 6 (last RZ): ~20 s of dense 256×256 products
        pytest.param("hea8x6", CIRCUITS[0][1], 8, [0, 20, 24, 103], 1, marks=pytest.mark.slow),
    ],
    ids=["hea4x1", "hea4x3", "mixed", "hea8x6"],
)
def test_fused_shifted_values_match_an_independent_simulator(name, circuit, n_data, columns, batch):
    angles = full_angles(*_inputs(circuit, n_data, batch, seed=7))
    got = TorchBackend().expval_shifted(circuit, angles)
    for c in columns or range(circuit.n_params):
        for s, sign in enumerate((1, -1)):
            shifted = angles.clone()
            shifted[:, c] += sign * math.pi / 2
            want = torch.from_numpy(reference_expval(circuit, shifted.numpy()))
            assert torch.max(torch.abs(got[s, c] - want)).item() <= 1e-11, (c, sign)


@pytest.mark.parametrize("name, circuit, n_data", CIRCUITS, ids=[c[0] for c in CIRCUITS])
def test_parameter_shift_gradients_match_the_reference_jacobian(name, circuit, n_data):
    # through the core's parameter-shift gradient, weights broadcast as QuantumLayer passes them
    data, weights = _inputs(circuit, n_data, 2, seed=11)
    data.requires_grad_(), weights.requires_grad_()
    cotangent = torch.randn(2, circuit.n_outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    backend = TorchBackend()
    out = expval(backend, circuit, data, "parameter-shift", shared=weights)
    (out * cotangent).sum().backward()
    assert backend.last_path == "fused"
    jacobian = ReferenceBackend().jacobian(circuit, full_angles(data, weights).detach())  # [B, R, P]
    grad = torch.einsum("br,brp->bp", cotangent, jacobian)
    assert torch.max(torch.abs(data.grad - grad[:, :n_data])).item() <= 1e-11
    assert torch.max(torch.abs(weights.grad - grad[:, n_data:].sum(0))).item() <= 1e-11


@pytest.mark.parametrize("name, circuit, n_data", CIRCUITS[:2], ids=[c[0] for c in CIRCUITS[:2]])
def test_float32_angles(name, circuit, n_data):
    # float32 angles on the complex128 backend run the fused kernels on their float64 values; the
    # complex64 backend keeps the torch path and agrees to float32 rounding
    data, weights = _inputs(circuit, n_data, 9, seed=5)
    angles32 = full_angles(data, weights).float()
    backend = TorchBackend()
    got = backend.expval_shifted(circuit, angles32)
    assert backend.last_path == "fused" and got.dtype == torch.float64
    assert torch.max(torch.abs(got - _torch_path(circuit, angles32.double()))).item() <= 1e-12
    single = TorchBackend(dtype="complex64")
    low = single.expval_shifted(circuit, angles32)
    assert single.last_path == "plan" and low.dtype == torch.float32
    assert torch.max(torch.abs(low.double() - got)).item() <= 1e-5


def test_per_row_weights_keep_the_torch_path():
    circuit, n_data = _hea(4, 2), 4
    data, weights = _inputs(circuit, n_data, 5, seed=2)
    angles = full_angles(data, weights)
    angles[1, n_data + 8] += 0.25  # a column of layer 2 (after the product state) differs in one row
    backend = TorchBackend()
    got = backend.expval_shifted(circuit, angles)
    assert backend.last_path == "plan"
    want = torch.from_numpy(
        reference_expval(circuit, (angles + torch.eye(circuit.n_params, dtype=torch.float64)[3] * math.pi / 2).numpy())
    )
    assert torch.max(torch.abs(got[0, 3] - want)).item() <= 1e-11


def test_two_threads_give_the_same_values():
    circuit, n_data = CIRCUITS[0][1], 8
    angles = full_angles(*_inputs(circuit, n_data, 40, seed=4))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = TorchBackend().expval_shifted(circuit, angles)
        torch.set_num_threads(2)
        two = TorchBackend().expval_shifted(circuit, angles)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)  # the same tiles, the same arithmetic: only their split differs


@given(
    body=circuits(gates=BASE_GATES, max_qubits=6, max_ops=30, paulis="Z"),
    encoding=st.lists(st.sampled_from(["RY", "RX", "RZ", "H"]), min_size=1, max_size=3).filter(
        lambda g: g != ["H"] * len(g)
    ),
    batch=st.integers(1, 11),
    seed=st.integers(0, 2**16),
)
def test_random_circuits_give_the_torch_path_values(body, encoding, batch, seed):
    circuit = encoded(body, encoding)
    n_data = circuit.n_params - body.n_params
    angles = full_angles(*_inputs(circuit, n_data, batch, seed))
    backend = TorchBackend()
    got = backend.expval_shifted(circuit, angles)
    assert backend.last_path == "fused", circuit.diagram()
    assert torch.max(torch.abs(got - _torch_path(circuit, angles))).item() <= 1e-12, circuit.diagram()
