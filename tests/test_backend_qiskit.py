"""The ``qiskit-aer`` backend: qubit order, compile-once, one primitive call per batch, exact and shots modes."""

import importlib.util
import math

import numpy as np
import pytest
import torch

pytest.importorskip("qiskit_aer")
from qiskit_aer.primitives import EstimatorV2  # noqa: E402

from hqf.backends.qiskit_aer import QiskitAerBackend, compile_circuit, measurement_groups, parity_expectation  # noqa: E402
from hqf.errors import ConfigError  # noqa: E402
from hqf.quantum.circuit import Circuit, Operation, PauliWord  # noqa: E402
from hqf.registry.make import make_backend  # noqa: E402
from hqf.testing import ReferenceBackend, Tolerance  # noqa: E402

NO_ANGLES = torch.zeros(1, 0, dtype=torch.float64)


@pytest.mark.parametrize("options", [{}, {"method": "density_matrix"}, {"shots": 64, "seed": 0}])
def test_x_on_wire_zero_flips_only_wire_zero(options):
    # Qiskit is little-endian; hqf wire w is Qiskit qubit w and the answer is asymmetric in the wires.
    circuit = Circuit(3, [Operation("X", 0)], [PauliWord.z(q) for q in range(3)] + [PauliWord.parse("Z0 Z1")])
    assert QiskitAerBackend(**options).expval(circuit, NO_ANGLES).tolist() == [[-1.0, 1.0, 1.0, -1.0]]


def test_rotation_on_one_wire_with_mixed_pauli_words():
    # RY(a) on wire 1, X on wire 0: <Z0> = -1, <Z1> = cos a, <X1> = sin a, <Z0 X1> = -sin a,
    # <X1 Z2> = sin a, <Z2> = 1.
    circuit = Circuit(
        3,
        [Operation("X", 0), Operation("RY", 1, 0)],
        [
            PauliWord.z(0),
            PauliWord.z(1),
            PauliWord.parse("X1"),
            PauliWord.parse("Z0 X1"),
            PauliWord.parse("X1 Z2"),
            PauliWord.z(2),
        ],
    )
    a = torch.tensor([[0.3], [-1.1], [2.5]], dtype=torch.float64)
    s, c, one = torch.sin(a), torch.cos(a), torch.ones_like(a)
    want = torch.cat([-one, c, s, -s, s, one], dim=1)
    torch.testing.assert_close(QiskitAerBackend().expval(circuit, a), want, atol=1e-12, rtol=0)


def test_columns_bind_by_mapping_not_by_parameter_name_order():
    # 12 columns read in reverse gate order: binding by the sorted parameter names would scramble them.
    n_params = 12
    ops = [Operation(("RX", "RY", "RZ")[k % 3], k % 4, n_params - 1 - k) for k in range(n_params)]
    ops += [Operation("CNOT", (q, q + 1)) for q in range(3)]
    circuit = Circuit(4, ops, [PauliWord.z(q) for q in range(4)] + [PauliWord.parse("X0 Y3")])
    angles = torch.rand(5, n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * math.tau
    torch.testing.assert_close(
        QiskitAerBackend().expval(circuit, angles), ReferenceBackend().expval(circuit, angles), atol=1e-12, rtol=0
    )


def test_compiled_once_per_circuit():
    circuit = Circuit(2, [Operation("RY", 0, 0), Operation("CZ", (0, 1))], [PauliWord.parse("X0")])
    first = compile_circuit(circuit)
    again = compile_circuit(Circuit(2, list(circuit.operations), list(circuit.observables)))  # equal, new object
    assert again is first


def test_whole_batch_in_one_primitive_call(monkeypatch):
    calls = []
    real_run = EstimatorV2.run

    def spy(self, pubs, **kwargs):
        calls.append([pub[2].shape if pub[2] is not None else None for pub in pubs])
        return real_run(self, pubs, **kwargs)

    monkeypatch.setattr(EstimatorV2, "run", spy)
    circuit = Circuit(2, [Operation("RY", 0, 0), Operation("RX", 1, 1)], [PauliWord.z(0), PauliWord.z(1)])
    got = QiskitAerBackend().expval(circuit, torch.rand(7, 2, dtype=torch.float64))
    assert got.shape == (7, 2) and calls == [[(7,)]]


@pytest.mark.parametrize("batch, n_outputs", [(1, 1), (1, 3), (4, 1)])
def test_output_is_b_by_r(batch, n_outputs):
    circuit = Circuit(
        2,
        [Operation("H", 0), Operation("RY", 1, 0)],
        [PauliWord.parse("X0"), PauliWord.z(1), PauliWord.parse("Z0 Z1")][:n_outputs],
    )
    angles = torch.rand(batch, 1, dtype=torch.float64)
    for backend in (QiskitAerBackend(), QiskitAerBackend(shots=10, seed=1)):
        got = backend.expval(circuit, angles)
        assert got.shape == (batch, n_outputs) and got.dtype == torch.float64


def test_exact_by_default_and_sampled_with_shots():
    assert QiskitAerBackend().capabilities.exact
    sampled = QiskitAerBackend(shots=4000, seed=3)
    assert not sampled.capabilities.exact and QiskitAerBackend.capabilities.exact
    circuit = Circuit(
        2,
        [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RX", 1, 1)],
        [PauliWord.parse("Z0 Z1"), PauliWord.parse("Y1"), PauliWord.z(0)],
    )
    angles = torch.tensor([[0.4, 1.0], [2.0, -0.5]], dtype=torch.float64)
    exact = ReferenceBackend().expval(circuit, angles)
    got = sampled.expval(circuit, angles)
    bound = Tolerance.for_backend(sampled).value_bound(exact)
    assert bool(((got - exact).abs() <= bound).all())
    assert not torch.equal(got, exact)  # really sampled
    # the same seed replays; a second call draws fresh shots
    replay = QiskitAerBackend(shots=4000, seed=3)
    assert torch.equal(replay.expval(circuit, angles), got)
    assert not torch.equal(replay.expval(circuit, angles), got)


def test_rows_of_a_parameterless_circuit_are_independent_samples():
    circuit = Circuit(1, [Operation("H", 0)], [PauliWord.z(0)])
    got = QiskitAerBackend(shots=50, seed=0).expval(circuit, torch.zeros(6, 0, dtype=torch.float64))
    assert got.shape == (6, 1) and len(set(got[:, 0].tolist())) > 1


def test_measurement_groups_share_compatible_bases():
    words = [PauliWord.parse(t) for t in ("Z0", "Z0 Z1", "X0", "X0 Y2", "Y2", "Z1")]
    groups = measurement_groups(tuple(words))
    assert [members for _, members in groups] == [[0, 1, 4, 5], [2, 3]]  # Y2 fits the first group
    assert [basis for basis, _ in groups] == [{0: "Z", 1: "Z", 2: "Y"}, {0: "X", 2: "Y"}]
    assert parity_expectation({"01": 3, "10": 1}, (0,)) == -0.5  # bit 0 is the rightmost character


def test_shots_bound_is_valid_near_eigenstates():
    # An almost-eigenstate: a single odd shot is a 2/N jump, far beyond a Gaussian 5σ.
    tol = Tolerance(atol=1e-8, shots=1000)
    exact = torch.tensor([1 - 1e-7], dtype=torch.float64)
    assert tol.value_bound(exact).item() >= 2 / 1000
    # and for E = 0 it is about sqrt(2 ln(2/δ)) σ
    sigma = 1 / math.sqrt(1000)
    assert 5 * sigma < tol.value_bound(torch.zeros(1, dtype=torch.float64)).item() < 6.5 * sigma


@pytest.mark.parametrize(
    "options, message", [({"method": "mps"}, "'method'"), ({"shots": 0}, "'shots'"), ({"shots": 2.5}, "'shots'")]
)
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        QiskitAerBackend(**options)


def test_registered_as_qiskit_aer():
    backend = make_backend("qiskit-aer", shots=100)
    assert isinstance(backend, QiskitAerBackend) and backend.shots == 100


def test_availability_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "qiskit_aer" else real(name, *a))
    availability = QiskitAerBackend.availability()
    assert not availability.ok and "pip install 'hqf[qiskit]'" in availability.reason


def test_density_matrix_method_matches_statevector():
    circuit = Circuit(
        3,
        [Operation("H", 0), Operation("CNOT", (0, 2)), Operation("RY", 1, 0), Operation("CZ", (1, 2))],
        [PauliWord.parse("X0 X2"), PauliWord.parse("Z1"), PauliWord.parse("Y1 Z2")],
    )
    angles = torch.tensor(np.linspace(-3, 3, 4).reshape(4, 1))
    a = QiskitAerBackend(method="density_matrix").expval(circuit, angles)
    torch.testing.assert_close(a, QiskitAerBackend().expval(circuit, angles), atol=1e-12, rtol=0)
