"""The ``pennylane`` backend: wire order, the [B, R] contract on both devices, batching, native gradients.

Values and gradients are compared with the reference simulator of :mod:`hqf.testing`.
"""

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("pennylane")
import pennylane as qml  # noqa: E402

from hqf.backends.pennylane import PennyLaneBackend, build_tape  # noqa: E402
from hqf.errors import ConfigError  # noqa: E402
from hqf.quantum.circuit import Circuit, Operation, PauliWord  # noqa: E402
from hqf.quantum.gradients import expval  # noqa: E402
from hqf.registry.make import make_backend  # noqa: E402
from hqf.testing import ReferenceBackend  # noqa: E402

DEVICES = ["default.qubit", "lightning.qubit"]

CIRCUIT = Circuit(
    3,
    [
        Operation("RY", 0, 0),
        Operation("CNOT", (0, 2)),
        Operation("RX", 1, 1),
        Operation("H", 2),
        Operation("RZ", 2, 2),
        Operation("CZ", (2, 1)),
        Operation("RY", 1, 3),
    ],
    [PauliWord.parse("Z0 Z2"), PauliWord.parse("Y1"), PauliWord.parse("X2 Z1")],
)


def _angles(batch, n_params, seed=0):
    return torch.rand(batch, n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * math.tau


def test_wire_zero_is_the_most_significant_bit_in_pennylane_too():
    # X on wire 0 of 3: hqf's basis index 4 (|100>); PennyLane's state must put the amplitude there.
    circuit = Circuit(3, [Operation("X", 0)], [PauliWord.z(q) for q in range(3)])
    tape = build_tape(circuit, np.zeros((0,)))
    state = qml.execute([qml.tape.QuantumScript(tape.operations, [qml.state()])], qml.device("default.qubit", wires=3))[
        0
    ]
    assert int(np.argmax(np.abs(state))) == 4
    for device in DEVICES:
        got = PennyLaneBackend(pl_device=device).expval(circuit, torch.zeros(1, 0, dtype=torch.float64))
        assert got.tolist() == [[-1.0, 1.0, 1.0]]


@pytest.mark.parametrize("device", DEVICES)
def test_asymmetric_rotations_match_closed_forms(device):
    # RY(a) on wire 2 only: <Z2> = cos a, <X2> = sin a, <Z0> = <Z1> = 1, <Z0 X2> = sin a
    circuit = Circuit(
        3,
        [Operation("RY", 2, 0)],
        [PauliWord.z(0), PauliWord.z(1), PauliWord.z(2), PauliWord.parse("X2"), PauliWord.parse("Z0 X2")],
    )
    a = torch.tensor([[0.3], [1.2]], dtype=torch.float64)
    want = torch.cat([torch.ones(2, 2, dtype=torch.float64), torch.cos(a), torch.sin(a), torch.sin(a)], dim=1)
    torch.testing.assert_close(PennyLaneBackend(pl_device=device).expval(circuit, a), want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_output_is_b_by_r_on_both_devices(device, batch, n_outputs):
    # PennyLane #5977: devices once disagreed on the shape of a batch of one; hqf pins [B, R].
    circuit = Circuit(CIRCUIT.n_qubits, CIRCUIT.operations, CIRCUIT.observables[:n_outputs])
    angles = _angles(batch, circuit.n_params)
    got = PennyLaneBackend(pl_device=device).expval(circuit, angles)
    assert got.shape == (batch, n_outputs) and got.dtype == torch.float64
    torch.testing.assert_close(got, ReferenceBackend().expval(circuit, angles), atol=1e-12, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_circuit_without_parameters_is_broadcast_to_the_batch(device):
    circuit = Circuit(
        2, [Operation("H", 0), Operation("CNOT", (0, 1))], [PauliWord.parse("Z0 Z1"), PauliWord.parse("X0")]
    )
    got = PennyLaneBackend(pl_device=device).expval(circuit, torch.zeros(3, 0, dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor([[1.0, 0.0]] * 3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_default_qubit_runs_the_batch_as_one_broadcast_tape(monkeypatch):
    seen = []
    real_execute = qml.execute

    def spy(tapes, *args, **kwargs):
        seen.extend(tapes)
        return real_execute(tapes, *args, **kwargs)

    monkeypatch.setattr(qml, "execute", spy)
    PennyLaneBackend().expval(CIRCUIT, _angles(16, CIRCUIT.n_params))
    assert len(seen) == 1 and seen[0].batch_size == 16


def test_native_gradients_are_declared_per_device():
    assert PennyLaneBackend(pl_device="default.qubit").capabilities.gradients == {"backprop", "adjoint"}
    assert PennyLaneBackend(pl_device="lightning.qubit").capabilities.gradients == {"adjoint"}
    assert PennyLaneBackend.capabilities.gradients == {"backprop", "adjoint"}  # what some device offers


@pytest.mark.parametrize(
    "device, method",
    [
        ("default.qubit", "backprop"),
        ("default.qubit", "adjoint"),
        ("lightning.qubit", "adjoint"),
        ("lightning.qubit", "parameter-shift"),
    ],
)
@pytest.mark.parametrize("batch, n_outputs", [(1, 1), (5, 3)])
def test_native_gradients_match_autograd_on_the_reference(device, method, batch, n_outputs):
    circuit = Circuit(CIRCUIT.n_qubits, CIRCUIT.operations, CIRCUIT.observables[:n_outputs])
    angles = _angles(batch, circuit.n_params, seed=3)
    cotangent = torch.randn(batch, n_outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    grads = []
    for backend, how in ((PennyLaneBackend(pl_device=device), method), (ReferenceBackend(), "backprop")):
        leaf = angles.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((expval(backend, circuit, leaf, gradient=how) * cotangent).sum(), leaf)
        grads.append(grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-10, rtol=0)


@pytest.mark.parametrize("device", ["default.qubit", "lightning.qubit"])
def test_adjoint_vjp_with_wires_met_out_of_order(device):
    # found by the conformance suite's nightly profile: default.qubit 0.45's adjoint pass raised
    # IndexError for a tape whose wires come as (2, 0, 1); the tapes are relabelled before it
    circuit = Circuit(3, [Operation("RX", 2, 0), Operation("H", 0)], [PauliWord.parse("X1"), PauliWord.parse("Z2 X0")])
    angles = _angles(2, circuit.n_params, seed=5)
    cotangent = torch.randn(2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    got = PennyLaneBackend(pl_device=device).vjp(circuit, angles, cotangent)
    leaf = angles.clone().requires_grad_(True)
    (want,) = torch.autograd.grad((ReferenceBackend().expval(circuit, leaf) * cotangent).sum(), leaf)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_adjoint_vjp_is_float64_on_lightning():
    # PennyLane's torch path would cast lightning's Python-float results (and the cotangent) to float32.
    circuit = Circuit(1, [Operation("RX", 0, 0)], [PauliWord.parse("Y0")])
    backend = PennyLaneBackend(pl_device="lightning.qubit")
    grad = backend.vjp(
        circuit, torch.zeros(1, 1, dtype=torch.float64), torch.tensor([[-1.540996108]], dtype=torch.float64)
    )
    assert grad.dtype == torch.float64 and abs(grad.item() - 1.540996108) < 1e-14


def test_backprop_on_default_qubit_gives_exact_second_derivatives():
    circuit = Circuit(
        2, [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RX", 1, 1)], [PauliWord.parse("Z1")]
    )
    a0 = torch.tensor([[0.4, -0.9]], dtype=torch.float64)
    hessians = [
        torch.autograd.functional.hessian(lambda a, b=backend: expval(b, circuit, a, gradient="backprop").sum(), a0)
        for backend in (PennyLaneBackend(), ReferenceBackend())
    ]
    torch.testing.assert_close(hessians[0], hessians[1], atol=1e-12, rtol=0)


def test_complex64_on_lightning_only():
    backend = PennyLaneBackend(pl_device="lightning.qubit", dtype="complex64")
    got = backend.expval(CIRCUIT, _angles(2, CIRCUIT.n_params))
    assert got.dtype == torch.float32
    torch.testing.assert_close(
        got.double(), ReferenceBackend().expval(CIRCUIT, _angles(2, CIRCUIT.n_params)), atol=1e-5, rtol=0
    )
    assert backend.capabilities.dtypes == {"complex64"} and "backprop" not in backend.capabilities.gradients
    with pytest.raises(ConfigError, match="complex64.*lightning"):
        PennyLaneBackend(pl_device="default.qubit", dtype="complex64")


@pytest.mark.parametrize("threads", [1, 2, None])
def test_omp_threads_option_keeps_the_values(threads):
    backend = PennyLaneBackend(pl_device="lightning.qubit", omp_threads=threads)
    angles = _angles(3, CIRCUIT.n_params)
    torch.testing.assert_close(
        backend.expval(CIRCUIT, angles), ReferenceBackend().expval(CIRCUIT, angles), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("threads", [0, 1.5, True])
def test_bad_omp_threads_is_a_config_error(threads):
    with pytest.raises(ConfigError, match="'omp_threads'"):
        PennyLaneBackend(omp_threads=threads)


def test_unknown_device_is_a_config_error():
    with pytest.raises(ConfigError, match="'no.such.device' cannot be created"):
        PennyLaneBackend(pl_device="no.such.device")


def test_registered_and_built_by_name():
    backend = make_backend("pennylane", pl_device="lightning.qubit")
    assert isinstance(backend, PennyLaneBackend) and backend.pl_device == "lightning.qubit"


def test_availability_names_the_extra_when_pennylane_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pennylane" else real(name, *a))
    availability = PennyLaneBackend.availability()
    assert not availability.ok and "pip install 'hqf[pennylane]'" in availability.reason


def test_importing_the_plugin_and_probing_it_does_not_import_pennylane():
    code = (
        "import sys, hqf.backends.pennylane as m; assert m.PennyLaneBackend.availability().ok; "
        "print('pennylane' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("pl_device", ["default.qubit", "lightning.qubit"])
def test_shots_are_estimates_within_the_bernstein_bound_and_probabilities_are_not_offered(pl_device):
    from hqf.errors import UnsupportedCircuitError
    from hqf.quantum.circuit import Hamiltonian, Probs
    from hqf.testing import Tolerance

    backend = PennyLaneBackend(pl_device=pl_device, shots=3000, seed=4)
    assert not backend.capabilities.exact and not backend.capabilities.gradients
    assert "probs" not in backend.capabilities.observables and "probs" in PennyLaneBackend.capabilities.observables
    ops = [Operation("RY", 0, 0), Operation("CRX", (0, 1), 1), Operation("RZZ", (1, 2), 2), Operation("H", 2)]
    words = [PauliWord.parse("Z1"), PauliWord.parse("X2 Z0"), PauliWord.parse("Y1")]
    circuit = Circuit(3, ops, words)
    angles = torch.tensor([[0.9, 2.1, -0.4], [-1.7, 0.6, 1.2]], dtype=torch.float64)
    got, want = backend.expval(circuit, angles), ReferenceBackend().expval(circuit, angles)
    assert bool((got - want).abs().le(Tolerance.for_backend(backend).value_bound(want)).all())
    assert bool((got - want).abs().gt(1e-6).any())  # sampled, not exact
    again = PennyLaneBackend(pl_device=pl_device, shots=3000, seed=4).expval(circuit, angles)
    torch.testing.assert_close(again, got, atol=0, rtol=0)  # the seed replays
    with pytest.raises(UnsupportedCircuitError, match="does not support observable 'probs'"):
        expval(backend, Circuit(3, ops, [Probs((0,))]), angles)
    hamiltonian = Circuit(3, ops, [Hamiltonian(((0.5, "Z1"), (2.0, "Y1")))])
    assert backend.expval(hamiltonian, angles).shape == (2, 1)
    with pytest.raises(ConfigError, match=r"'shots' must be None or an integer >= 1 \(got 0\)"):
        PennyLaneBackend(shots=0)
