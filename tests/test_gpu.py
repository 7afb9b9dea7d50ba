"""GPU checks (marker ``gpu``): skipped cleanly when torch sees no CUDA GPU.

- the conformance suite (:mod:`hqf.testing`) on ``cuquantum`` (complex128, complex64, the per-state
  loop) and on ``torch`` with ``device="cuda"`` (complex128, complex64);
- what the CPU double of cuStateVec in test_backend_cuquantum.py cannot show: that the library
  follows the conventions the double encodes (the states have torch's memory layout; multi-bit Pauli
  words, inside the conformance suite), that both batching modes and chunked passes agree, that
  results follow the angles' device, and a 20-qubit case;
- ``hqf run --device cuda`` end to end on a tiny configuration.

The cuquantum tests skip (with the reason) only where cuquantum-python is not installed; where it is
installed but cannot start, they fail.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import hqf.backends.cuquantum as cq
from hqf.backends.torch import TorchBackend
from hqf.cli import main
from hqf.quantum.circuit import Circuit, Operation, PauliWord, compose
from hqf.quantum.gradients import expval
from hqf.registry.make import make_ansatz
from hqf.testing import PROPERTIES, Limits, Target

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
]

TARGETS = [
    Target("cuquantum"),
    Target("cuquantum", {"dtype": "complex64", "adjoint": True}),
    Target("cuquantum", {"adjoint": True}),
    Target("cuquantum", {"batching": "loop"}, examples=8, limits=Limits(max_batch=2)),
    Target("torch", {"device": "cuda"}),
    Target("torch", {"device": "cuda", "dtype": "complex64"}),
]


def require_cuquantum() -> None:
    """Skip where cuquantum-python is absent; fail where it is installed but cannot start."""
    if cq.binding_name() is None:
        pytest.skip(cq.probe().reason)
    availability = cq.probe()
    assert availability.ok, availability.reason


@pytest.mark.parametrize("prop", list(PROPERTIES))
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.id)
def test_conformance(target, prop):
    if target.backend == "cuquantum":
        require_cuquantum()
    result = target.check(prop)
    assert result.ok, result.report()


def _hea_circuit(n_qubits: int, n_layers: int, observables=None) -> Circuit:
    return compose(n_qubits, [make_ansatz(f"hea{n_qubits}x{n_layers}").operations()], observables)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize("batching", cq.BATCHING)
def test_final_states_match_torch_cuda(batching, dtype):
    require_cuquantum()
    ops = [Operation("H", 1), Operation("CZ", (1, 4)), Operation("X", 5)]
    circuit = Circuit(6, list(_hea_circuit(6, 2).operations) + ops, [PauliWord.z(0)])
    angles = torch.rand(3, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 6
    reference = TorchBackend(device="cuda", dtype=dtype)
    want = reference.initial_state(6, 3)
    for op in circuit.operations:
        want = reference.apply(want, 6, op, angles.to("cuda", reference.real_dtype))
    got = cq.CuQuantumBackend(dtype=dtype, batching=batching).final_states(circuit, angles)
    tol = 1e-12 if dtype == "complex128" else 2e-6
    torch.testing.assert_close(got, want, atol=tol, rtol=0)


def test_batched_loop_and_chunked_passes_agree_and_follow_the_angles_device():
    require_cuquantum()
    words = [PauliWord.parse(w) for w in ("Z0", "Z7", "X1 Y6", "Z2 Z3 X5", "Y4")]
    circuit = _hea_circuit(8, 3, words)
    angles = torch.rand(11, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 6
    batched = cq.CuQuantumBackend().expval(circuit, angles)
    loop = cq.CuQuantumBackend(batching="loop").expval(circuit, angles)
    chunked = cq.CuQuantumBackend(max_rows=4).expval(circuit, angles.cuda())
    assert batched.device.type == "cpu" and chunked.device.type == "cuda"
    want = TorchBackend().expval(circuit, angles)
    for got in (batched, loop, chunked.cpu()):
        torch.testing.assert_close(got, want, atol=1e-11, rtol=0)


def test_twenty_qubits_match_torch_cuda():
    require_cuquantum()
    circuit = _hea_circuit(20, 2, [PauliWord.z(0), PauliWord.z(19), PauliWord.parse("X3 Z17")])
    angles = torch.rand(2, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 6
    got = cq.CuQuantumBackend().expval(circuit, angles)
    want = TorchBackend(device="cuda").expval(circuit, angles)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_adjoint_gradient_matches_torch_cuda_autograd_at_14_qubits(dtype):
    require_cuquantum()
    circuit = _hea_circuit(14, 2, [PauliWord.z(0), PauliWord.parse("X5 Y9"), PauliWord.z(13)])
    angles = torch.rand(3, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 6
    weights = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6)).cuda()
    mine, ref = angles.cuda().requires_grad_(), angles.cuda().requires_grad_()
    (
        expval(cq.CuQuantumBackend(dtype=dtype, adjoint=True), circuit, mine, gradient="adjoint").double() * weights
    ).sum().backward()
    (TorchBackend(device="cuda").expval(circuit, ref) * weights).sum().backward()
    torch.testing.assert_close(mine.grad, ref.grad, atol=1e-9 if dtype == "complex128" else 2e-4, rtol=0)


def test_torch_backend_runs_on_cuda_end_to_end_through_the_shift_rule_and_autograd():
    circuit = _hea_circuit(5, 2)
    angles = torch.rand(4, circuit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    cpu, gpu = angles.clone().requires_grad_(), angles.cuda().requires_grad_()
    expval(TorchBackend(), circuit, cpu).sum().backward()
    out = expval(TorchBackend(device="cuda"), circuit, gpu, gradient="parameter-shift")
    assert out.device.type == "cuda"
    out.sum().backward()
    torch.testing.assert_close(gpu.grad.cpu(), cpu.grad, atol=1e-10, rtol=0)


RUNS = {
    # torch on CUDA with the default regularizers (the curvature term takes a double backward)
    "torch": ["--backend", "torch"],
    # cuquantum as the users name it: the shift rule (twice differentiable) with the curvature term
    "cuquantum": ["--backend", "cuquantum"],
    # the adjoint vjp is opt-in and first-order only: with it, no curvature term
    "cuquantum-adjoint": [
        "--backend",
        "cuquantum",
        "--set",
        "backend_options={adjoint = true}",
        "--gradient",
        "adjoint",
        "--regularizer",
        "stability",
    ],  # fmt: skip
}


@pytest.mark.parametrize("name", list(RUNS))
def test_hqf_run_on_cuda_end_to_end(name, tmp_path):
    if name.startswith("cuquantum"):
        require_cuquantum()
    out = tmp_path / "run"
    args = ["run", *RUNS[name], "--device", "cuda", "--ansatz", "hea4x1", "--samples", "300", "--epochs", "1",
            "--quiet", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    environment = json.loads((out / "meta.json").read_text())["environment"]
    assert environment["device"] == "cuda" and environment["backend"] == RUNS[name][1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["steps"] >= 1
