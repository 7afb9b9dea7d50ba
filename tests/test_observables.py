"""Hamiltonian and probability read-outs against the independent dense definitions; shot estimates within a
bound derived from the shot count, at a fixed seed."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_expval

from hqf.backends.density_torch import TorchDensityMatrixBackend
from hqf.backends.torch import TorchBackend
from hqf.errors import InvalidCircuitError
from hqf.quantum.circuit import Circuit, Hamiltonian, Operation, PauliWord, Probs
from hqf.quantum.gradients import expval
from hqf.testing import ReferenceBackend, Tolerance, check_backend
from hqf.testing.strategies import angle_batches, circuits

BACKENDS = {"reference": ReferenceBackend, "torch": TorchBackend, "torch-dm": TorchDensityMatrixBackend}
KINDS = ("pauli", "hamiltonian", "probs")


def _state_circuit(observables) -> Circuit:
    ops = [
        Operation("RY", 0, 0),
        Operation("RX", 1, 1),
        Operation("H", 2),
        Operation("CNOT", (0, 1)),
        Operation("CRY", (2, 0), 2),
    ]
    return Circuit(3, ops, observables)


def test_probs_are_ordered_with_the_first_listed_wire_most_significant():
    # |ψ⟩ = |0⟩|1⟩ after X on wire 1: Probs((0, 1)) peaks at index 0b01, Probs((1, 0)) at 0b10
    circuit = Circuit(2, [Operation("X", 1)], [Probs((0, 1)), Probs((1, 0)), Probs((1,))])
    assert circuit.n_outputs == 10
    for name, make in BACKENDS.items():
        out = make().expval(circuit, torch.zeros(1, 0, dtype=torch.float64))[0].tolist()
        assert out == [0, 1, 0, 0, 0, 0, 1, 0, 0, 1], name


@pytest.mark.parametrize("name", list(BACKENDS))
def test_hamiltonian_and_probs_match_the_dense_definition(name):
    ham = Hamiltonian([(0.5, "Z0 Z1"), (-1.5, PauliWord.parse("X2")), (2.0, "Y0 X1 Z2")])
    circuit = _state_circuit([PauliWord.z(1), ham, Probs((2, 0)), Probs((1,))])
    angles = torch.tensor([[0.3, -1.2, 2.2], [1.7, 0.4, -0.6]], dtype=torch.float64)
    got = BACKENDS[name]().expval(circuit, angles)
    want = reference_expval(circuit, angles.numpy())
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    words = Circuit(3, circuit.operations, [word for _, word in ham.terms])
    parts = reference_expval(words, angles.numpy())
    np.testing.assert_allclose(got[:, 1].numpy(), parts @ np.array([0.5, -1.5, 2.0]), atol=1e-12)
    np.testing.assert_allclose(got[:, 2:6].sum(1).numpy(), 1, atol=1e-12)


@given(data=st.data())
def test_torch_matches_the_dense_definition_on_random_observables(data):
    circuit = data.draw(circuits(max_qubits=4, max_ops=10, observable_kinds=KINDS))
    angles = data.draw(angle_batches(circuit, max_batch=2))
    got = TorchBackend().expval(circuit, torch.from_numpy(angles))
    np.testing.assert_allclose(got.numpy(), reference_expval(circuit, angles), atol=1e-10)


def test_gradients_of_hamiltonians_and_probs_through_every_method():
    circuit = _state_circuit([Hamiltonian([(0.5, "Z0 Z1"), (2.0, "X2")]), Probs((0, 2))])
    angles = torch.tensor([[0.3, -1.2, 2.2]], dtype=torch.float64)
    want = ReferenceBackend().jacobian(circuit, angles).sum(1)
    for method in ("parameter-shift", "adjoint", "backprop"):
        a = angles.clone().requires_grad_()
        (grad,) = torch.autograd.grad(expval(TorchBackend(), circuit, a, method).sum(), a)
        torch.testing.assert_close(grad, want, atol=1e-10, rtol=0)


def test_observables_validate():
    with pytest.raises(InvalidCircuitError, match="distinct wires"):
        Probs((0, 0))
    with pytest.raises(InvalidCircuitError, match="at least one term"):
        Hamiltonian([])
    with pytest.raises(InvalidCircuitError, match="finite"):
        Hamiltonian([(math.nan, "Z0")])
    with pytest.raises(InvalidCircuitError, match="outside"):
        Circuit(1, [], [Probs((0, 1))])


# -- shots ---------------------------------------------------------------------------------------------------
def test_shot_estimates_lie_within_the_bound_of_the_shot_count():
    shots = 2000
    ham = Hamiltonian([(0.5, "Z0 Z1"), (-1.5, "X2")])
    circuit = _state_circuit([PauliWord.parse("X0 Y1"), ham, Probs((2, 0))])
    angles = torch.tensor([[0.3, -1.2, 2.2], [1.7, 0.4, -0.6], [0.0, 0.0, 0.0]], dtype=torch.float64)
    backend = TorchBackend(shots=shots, seed=7)
    assert backend.capabilities.exact is False and TorchBackend.capabilities.exact is True
    assert backend.capabilities.gradients == frozenset()
    exact = ReferenceBackend().expval(circuit, angles)
    got = backend.expval(circuit, angles)
    bound = Tolerance(1e-8, shots).output_bound(circuit, exact)
    assert torch.all((got - exact).abs() <= bound)
    # the bound is of the order of 1/sqrt(shots), not vacuous: values off by 0.2 lie outside it
    assert torch.all(bound[:, [0, 2, 3, 4, 5]] < 0.2)
    # estimates, not the exact values; one shot's resolution
    assert not torch.equal(got, exact)
    assert torch.allclose(got[:, 2:] * shots, (got[:, 2:] * shots).round(), atol=1e-9)
    # the same seed replays, another seed differs
    torch.testing.assert_close(TorchBackend(shots=shots, seed=7).expval(circuit, angles), got, atol=0, rtol=0)
    assert not torch.equal(TorchBackend(shots=shots, seed=8).expval(circuit, angles), got)


def test_torch_with_shots_passes_the_conformance_suite():
    results = check_backend(
        lambda: TorchBackend(shots=4000, seed=3), examples=4, seed=0, properties=["expval", "shift-gradient"]
    )
    assert [r.status for r in results] == ["pass", "pass"], [r.report() for r in results]


def test_shots_must_be_a_positive_integer():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="'shots' must be an integer >= 1"):
            TorchBackend(shots=bad)
