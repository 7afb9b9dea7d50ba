"""``hqf.backends.qiskit_estimator.Estimator``: Qiskit's EstimatorV2 on hqf, checked against Aer's estimator and
through Qiskit Machine Learning's EstimatorQNN, its parameter-shift gradient and TorchConnector."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.circuit import Parameter, ParameterVector  # noqa: E402
from qiskit.circuit.library import real_amplitudes, zz_feature_map  # noqa: E402
from qiskit.primitives import BaseEstimatorV2, StatevectorEstimator  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402
from qiskit_aer.primitives import EstimatorV2 as AerEstimator  # noqa: E402

from hqf.backends.qiskit_estimator import Estimator, translate  # noqa: E402
from hqf.errors import InvalidCircuitError  # noqa: E402

EXACT = 1e-10


def aer() -> AerEstimator:
    return AerEstimator(options={"backend_options": {"method": "statevector", "max_parallel_threads": 1}})


def feature_map_circuit(n: int = 4, reps: int = 2) -> tuple[QuantumCircuit, QuantumCircuit, QuantumCircuit]:
    """ZZ feature map (angles nonlinear in the inputs, phase gates) followed by RealAmplitudes."""
    features, ansatz = zz_feature_map(n), real_amplitudes(n, reps=reps)
    qc = QuantumCircuit(n)
    qc.compose(features, inplace=True)
    qc.compose(ansatz, inplace=True)
    return qc, features, ansatz


def every_gate_circuit() -> QuantumCircuit:
    """Gates Qiskit has and hqf does not (sdg, u, rzx, ...) beside hqf's own, constants and expressions."""
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.sdg(1)
    qc.u(0.3, a, -0.2, 2)
    qc.rzx(2 * b - 0.1, 0, 1)
    qc.crx(a + b, 1, 2)
    qc.cp(0.7, 2, 0)
    qc.barrier()
    qc.ry(np.pi / 5, 1)
    qc.rzz(a * b, 0, 2)
    qc.cswap(0, 1, 2)
    return qc


OBSERVABLES = [
    SparsePauliOp.from_list([("ZIZ", 0.5), ("XYI", -1.25), ("III", 0.75)]),
    SparsePauliOp("IIZ"),
    SparsePauliOp.from_list([("III", 2.0)]),
]


@pytest.mark.parametrize(
    "param_shape, observables",
    [((5,), [[o] for o in OBSERVABLES]), ((2, 3), [OBSERVABLES]), ((), OBSERVABLES)],
    ids=["rows x column", "grid x row", "one row"],
)
def test_values_and_shapes_match_qiskits_reference(param_shape, observables):
    """Against Qiskit's own ``StatevectorEstimator``: Aer 0.18.2 gives wrong values for a bound ``crx`` angle
    (see hqf.backends.qiskit_aer.DECOMPOSED), which this circuit holds."""
    qc = every_gate_circuit()
    rng = np.random.default_rng(0)
    values = rng.uniform(-np.pi, np.pi, param_shape + (qc.num_parameters,))
    pub = (qc, observables, values)
    expected = StatevectorEstimator().run([pub]).result()[0].data.evs
    got = Estimator().run([pub]).result()[0].data.evs
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=EXACT, rtol=0)


def test_nonlinear_feature_map_matches_aer_and_one_call_serves_many_pubs():
    qc, _, _ = feature_map_circuit()
    rng = np.random.default_rng(1)
    obs = SparsePauliOp.from_list([("ZZII", 0.5), ("IIIX", -1.0)])
    pubs = [(qc, obs, rng.uniform(-1, 1, qc.num_parameters)) for _ in range(6)]
    expected = [r.data.evs for r in aer().run(pubs).result()]
    estimator = Estimator()
    calls = []
    expval = estimator.backend.expval
    estimator.backend.expval = lambda *args: calls.append(1) or expval(*args)
    got = [r.data.evs for r in estimator.run(pubs).result()]
    np.testing.assert_allclose(got, expected, atol=EXACT, rtol=0)
    assert len(calls) == 1


def test_estimator_qnn_values_and_gradients_match_aer():
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    qc, features, ansatz = feature_map_circuit(3, reps=1)
    observables = [SparsePauliOp("ZII"), SparsePauliOp.from_list([("IZZ", 0.5), ("XII", 0.3)])]
    rng = np.random.default_rng(2)
    x, w = rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, ansatz.num_parameters)
    results = []
    for estimator in (aer(), Estimator()):
        qnn = EstimatorQNN(
            circuit=qc,
            estimator=estimator,
            observables=observables,
            input_params=features.parameters,
            weight_params=ansatz.parameters,
            input_gradients=True,
            default_precision=0.0,
        )
        results.append((qnn.forward(x, w), *qnn.backward(x, w)))
    for expected, got in zip(*results, strict=True):
        np.testing.assert_allclose(got, expected, atol=EXACT, rtol=0)


@pytest.mark.slow
def test_torch_connector_trains_on_it():
    import torch
    from qiskit_machine_learning.connectors import TorchConnector
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    qc, features, ansatz = feature_map_circuit(2, reps=1)
    qnn = EstimatorQNN(
        circuit=qc,
        estimator=Estimator(),
        input_params=features.parameters,
        weight_params=ansatz.parameters,
        default_precision=0.0,
    )
    model = TorchConnector(qnn, initial_weights=np.full(ansatz.num_parameters, 0.1))
    x = torch.tensor([[0.1, -0.4], [0.7, 0.2]])
    target = torch.tensor([[0.5], [-0.5]])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_is_an_estimator_v2_and_precision_adds_seeded_noise():
    qc = QuantumCircuit(1)
    qc.ry(0.4, 0)
    assert isinstance(Estimator(), BaseEstimatorV2)
    exact = Estimator().run([(qc, SparsePauliOp("Z"))]).result()[0].data.evs
    assert exact == pytest.approx(np.cos(0.4), abs=EXACT)
    pub = (qc, [SparsePauliOp("Z")] * 4000)
    noisy = [Estimator(seed=3).run([pub], precision=0.05).result()[0].data for _ in range(2)]
    np.testing.assert_array_equal(noisy[0].evs, noisy[1].evs)
    assert np.std(noisy[0].evs - np.cos(0.4)) == pytest.approx(0.05, rel=0.1)
    np.testing.assert_array_equal(noisy[0].stds, 0.05)


def test_a_measured_circuit_is_a_one_line_error():
    measured = QuantumCircuit(1, 1)
    measured.measure(0, 0)
    with pytest.raises(InvalidCircuitError, match="gates only; got 'measure'"):
        translate(measured)


def test_parameter_vector_order_follows_qiskit_not_insertion():
    """Values bind by Qiskit's parameter order (sorted by name), whatever order the gates use them in."""
    theta = ParameterVector("t", 11)
    qc = QuantumCircuit(1)
    for i in (10, 2, 0, 1):
        qc.ry(theta[i], 0)
        qc.rx(0.3 * theta[i], 0)
    for i in range(3, 10):
        qc.rz(theta[i], 0)
    values = np.random.default_rng(4).uniform(-1, 1, (3, 11))
    pub = (qc, SparsePauliOp("Y"), values)
    np.testing.assert_allclose(
        Estimator().run([pub]).result()[0].data.evs, aer().run([pub]).result()[0].data.evs, atol=EXACT, rtol=0
    )
