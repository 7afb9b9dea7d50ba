"""The PennyLane device ``hqf.torch``: the same values and gradients as ``default.qubit`` on unchanged
PennyLane code, through backprop (torch) and the device's adjoint derivatives."""

import math
import pathlib
import re

import numpy as np
import pytest
import tomllib

qml = pytest.importorskip("pennylane")
torch = pytest.importorskip("torch")

from hqf.backends.pennylane_device import HqfTorchDevice  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOL = 1e-12


def hea_layer(name: str, n: int, layers: int, **options):
    """A hea-like TorchLayer: AngleEmbedding, then per layer RY and RZ on every wire and a CNOT ring."""
    dev = qml.device(name, wires=n, **options)

    @qml.qnode(dev, interface="torch")
    def circuit(inputs, weights):
        qml.AngleEmbedding(inputs, wires=range(n))
        for layer in range(layers):
            for q in range(n):
                qml.RY(weights[layer, q, 0], wires=q)
                qml.RZ(weights[layer, q, 1], wires=q)
            for q in range(n):
                qml.CNOT(wires=[q, (q + 1) % n])
        return [qml.expval(qml.Z(q)) for q in range(n)]

    torch.manual_seed(0)
    return qml.qnn.TorchLayer(circuit, {"weights": (layers, n, 2)}).double(), dev


def value_and_grads(layer, x):
    x = x.clone().requires_grad_()
    out = layer(x)
    (out**2 + out).sum().backward()
    return out.detach(), layer.weights.grad.clone(), x.grad.clone()


def test_the_device_is_registered_under_pennylanes_entry_point_group():
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry_points["pennylane.plugins"] == {"hqf.torch": "hqf.backends.pennylane_device:HqfTorchDevice"}
    assert isinstance(qml.device("hqf.torch", wires=2), HqfTorchDevice)


def test_an_unchanged_torchlayer_gives_default_qubits_values_and_gradients():
    x = torch.rand(32, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * math.pi
    reference, _ = hea_layer("default.qubit", 8, 6)
    layer, dev = hea_layer("hqf.torch", 8, 6)
    for ours, theirs in zip(value_and_grads(layer, x), value_and_grads(reference, x)):
        assert ours.dtype == torch.float64
        torch.testing.assert_close(ours, theirs, atol=TOL, rtol=0)
    assert dev.backend.last_path == "fused"  # the batch reached the fused kernels as one broadcast call


def test_best_is_backprop_with_torch_or_autograd_and_adjoint_with_jax():
    dev = qml.device("hqf.torch", wires=1)
    tape = qml.tape.QuantumScript([qml.RX(torch.tensor(0.1, requires_grad=True), 0)], [qml.expval(qml.Z(0))])
    for interface in ("auto", "torch"):  # a QNode's default, and torch named
        config = qml.devices.ExecutionConfig(gradient_method="best", interface=interface)
        assert dev.setup_execution_config(config, tape).gradient_method == "backprop"
    autograd_config = qml.devices.ExecutionConfig(gradient_method="best", interface="autograd")
    assert dev.setup_execution_config(autograd_config).gradient_method == "backprop"
    jax_config = qml.devices.ExecutionConfig(gradient_method="best", interface="jax")
    assert dev.setup_execution_config(jax_config).gradient_method == "adjoint"


def _mixed_circuit(dev, diff_method="best"):
    @qml.qnode(dev, diff_method=diff_method)
    def circuit(a, b, c):
        qml.Rot(a, b, c, wires=0)
        qml.U3(b, c, a, wires=1)
        qml.IsingZZ(a, wires=[0, 2])
        qml.CRX(b, wires=[1, 2])
        qml.Toffoli(wires=[0, 1, 2])
        qml.RY(0.3, wires=1)  # a constant angle
        qml.RX(a, wires=2)  # a parameter read by a second gate
        qml.QubitUnitary(qml.matrix(qml.Hadamard(0) @ qml.S(1)), wires=[0, 1])
        return (
            qml.expval(0.5 * qml.Z(0) @ qml.Z(1) + qml.X(2) - 0.25 * qml.Identity(0)),
            qml.expval(qml.Y(1)),
            qml.var(qml.X(0) + qml.Z(2)),
            qml.probs(wires=[2, 0]),
        )

    return circuit


def test_gates_observables_and_constants_match_default_qubit_in_values_and_backprop_gradients():
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.4, -1.1, 2.3)]
    ours = _mixed_circuit(qml.device("hqf.torch", wires=3))
    theirs = _mixed_circuit(qml.device("default.qubit", wires=3))
    for mine, reference in zip(ours(*params), theirs(*params)):
        torch.testing.assert_close(mine, reference, atol=TOL, rtol=0)

    def flat(circuit):
        return lambda *p: torch.cat([torch.atleast_1d(r) for r in circuit(*p)])

    jac = torch.autograd.functional.jacobian(flat(ours), tuple(params))
    ref = torch.autograd.functional.jacobian(flat(theirs), tuple(params))
    for mine, reference in zip(jac, ref):
        torch.testing.assert_close(mine, reference, atol=TOL, rtol=0)


def test_state_density_matrix_and_hermitian_read_the_state_with_global_phases():
    def circuits(dev):
        @qml.qnode(dev)
        def state(x):
            qml.StatePrep(np.array([0.6, 0.0, 0.0, 0.8j]), wires=[0, 1])
            qml.U3(x, 0.2, 0.3, wires=0)  # decomposes with a global phase
            qml.CNOT(wires=[0, 1])
            return qml.state()

        @qml.qnode(dev)
        def mixed(x):
            qml.RX(x, wires=0)
            qml.Snapshot("after RX")  # changes nothing
            qml.CNOT(wires=[0, 1])
            qml.DoubleExcitationPlus(x, wires=[0, 1, 2, 3])  # a matrix without a decomposition
            return qml.density_matrix(wires=[1]), qml.expval(qml.Hermitian(np.array([[1, 2j], [-2j, 0]]), wires=0))

        return state, mixed

    ours, theirs = circuits(qml.device("hqf.torch", wires=4)), circuits(qml.device("default.qubit", wires=4))
    np.testing.assert_allclose(ours[0](0.7), theirs[0](0.7), atol=TOL, rtol=0)
    for mine, reference in zip(ours[1](0.7), theirs[1](0.7)):
        np.testing.assert_allclose(mine, reference, atol=TOL, rtol=0)


def test_adjoint_derivatives_match_default_qubit():
    def circuit(dev):
        @qml.qnode(dev, diff_method="adjoint")
        def run(a, b):
            qml.Rot(a, b, 0.3, wires=0)
            qml.IsingXX(b, wires=[0, 1])
            qml.CRY(a, wires=[1, 0])
            return qml.expval(qml.Z(0) @ qml.X(1)), qml.expval(2.0 * qml.Y(1) + qml.Z(0))

        return run

    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.4, -1.1)]
    dev = qml.device("hqf.torch", wires=2)
    ours, theirs = circuit(dev), circuit(qml.device("default.qubit", wires=2))
    jac = torch.autograd.functional.jacobian(lambda *p: torch.stack(ours(*p)), tuple(params))
    ref = torch.autograd.functional.jacobian(lambda *p: torch.stack(theirs(*p)), tuple(params))
    for mine, reference in zip(jac, ref):
        torch.testing.assert_close(mine, reference, atol=TOL, rtol=0)
    tapes, _ = qml.workflow.construct_batch(ours, level="device")(*[p.detach().numpy() for p in params])
    config = qml.devices.ExecutionConfig(gradient_method="adjoint")
    jacobian = dev.compute_derivatives(tapes, config)[0]
    assert len(jacobian) == 2 and all(len(row) == len(tapes[0].trainable_params) for row in jacobian)


def test_broadcast_numpy_parameters_give_numpy_rows():
    dev = qml.device("hqf.torch", wires=2)

    @qml.qnode(dev)
    def circuit(x):
        qml.RX(x, wires=0)
        qml.CNOT(wires=[0, 1])
        return qml.expval(qml.Z(1)), qml.probs(wires=[1])

    x = np.array([0.0, 0.5, math.pi])
    value, probs = circuit(x)
    assert isinstance(value, np.ndarray) and value.shape == (3,) and probs.shape == (3, 2)
    np.testing.assert_allclose(value, np.cos(x), atol=TOL)


def test_samples_come_from_the_simulated_state():
    dev = qml.device("hqf.torch", wires=2, seed=3)

    @qml.set_shots(200)
    @qml.qnode(dev)
    def circuit():
        qml.Hadamard(wires=0)
        qml.CNOT(wires=[0, 1])
        return qml.sample(wires=[0, 1])

    samples = circuit()
    assert samples.shape == (200, 2) and set(np.unique(samples[:, 0] - samples[:, 1])) == {0}


def test_other_mid_circuit_measurement_methods_are_refused_in_one_line():
    dev = qml.device("hqf.torch", wires=2)

    @qml.qnode(dev, mcm_method="tree-traversal")
    def circuit():
        qml.measure(0)
        return qml.expval(qml.Z(0))

    with pytest.raises(qml.exceptions.DeviceError, match="deferred"):
        circuit()


def test_the_docs_torchlayer_runs_on_hqf_by_changing_the_device_string():
    page = (ROOT / "docs" / "pennylane-device.md").read_text()
    source = re.findall(r"```python\n(.*?)```", page, re.S)[0]
    assert 'qml.device("hqf.torch"' in source
    runs = []
    for name in ("hqf.torch", "default.qubit"):
        namespace = {"__name__": "__docs__"}
        exec(compile(source.replace('"hqf.torch"', f'"{name}"'), f"pennylane-device.md on {name}", "exec"), namespace)
        model = namespace["model"]
        runs.append([namespace["loss"].detach()] + [p.grad.clone() for p in model.parameters()])
    for ours, theirs in zip(*runs):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)  # the tutorial's model is float32


def _count_backend_rows(monkeypatch, dev) -> list[tuple[str, int]]:
    """Record ``(what, rows)`` for each backend call the device makes: values or an adjoint pass."""
    import hqf.backends.pennylane_device.device as device_module

    calls = []
    values, vjp = device_module.expval, dev.backend.vjp
    monkeypatch.setattr(
        device_module, "expval", lambda b, c, a, **k: (calls.append(("values", len(a))), values(b, c, a, **k))[1]
    )
    monkeypatch.setattr(dev.backend, "vjp", lambda c, a, g: (calls.append(("vjp", len(a))), vjp(c, a, g))[1])
    return calls


def test_the_tapes_of_a_parameter_shift_gradient_run_as_one_backend_call(monkeypatch):
    def circuit(dev):
        @qml.qnode(dev, diff_method="parameter-shift")
        def run(w):
            for q in range(3):
                qml.RY(w[q], wires=q)
            qml.CNOT(wires=[0, 1])
            qml.CRZ(w[3], wires=[1, 2])
            return qml.expval(qml.Z(2)), qml.expval(qml.X(0) @ qml.Y(1))

        return run

    dev = qml.device("hqf.torch", wires=3)
    calls = _count_backend_rows(monkeypatch, dev)
    grads = []
    for device in (dev, qml.device("default.qubit", wires=3)):
        w = torch.tensor([0.3, -0.7, 1.1, 0.5], dtype=torch.float64, requires_grad=True)
        first, second = circuit(device)(w)
        (first + 2 * second).backward()
        grads.append(w.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=TOL, rtol=0)
    # the forward tape, then 3 two-term RY shifts and CRZ's four-term rule: 10 shifted tapes in one call
    assert calls == [("values", 1), ("values", 10)]


@pytest.mark.parametrize("device_vjp", [False, True])
def test_adjoint_runs_a_broadcast_torchlayer_as_one_forward_and_one_adjoint_call(monkeypatch, device_vjp):
    x = torch.rand(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    reference, _ = hea_layer("default.qubit", 3, 2)
    layer, dev = hea_layer("hqf.torch", 3, 2)
    layer.qnode.diff_method = "adjoint"
    layer.qnode.execute_kwargs["device_vjp"] = device_vjp  # the Jacobian (compute_derivatives) or compute_vjp
    calls = _count_backend_rows(monkeypatch, dev)
    for ours, theirs in zip(value_and_grads(layer, x), value_and_grads(reference, x)):
        torch.testing.assert_close(ours, theirs, atol=TOL, rtol=0)
    # PennyLane splits the batch into 5 tapes; they run as one call, and their adjoint pass (3 outputs each) as one
    assert calls == [("values", 5), ("vjp", 15)]


def test_autograd_backprop_matches_default_qubit_to_second_order():
    from pennylane import numpy as pnp

    def circuits(dev):
        @qml.qnode(dev, diff_method="backprop", max_diff=2)
        def values(x, y):
            qml.RX(x, wires=0)
            qml.IsingYY(y, wires=[0, 1])
            qml.CRZ(x * y, wires=[1, 0])
            return qml.expval(qml.Z(0) @ qml.X(1)), qml.probs(wires=[1])

        @qml.qnode(dev, diff_method="backprop")
        def state(x, y):
            qml.RX(x, wires=0)
            qml.RY(y, wires=1)
            qml.CNOT(wires=[0, 1])
            return qml.state()

        def cost(x, y):
            expectation, probs = values(x, y)
            return expectation + probs[0] ** 2 + pnp.abs(state(x, y)[2]) ** 2

        return cost

    x, y = pnp.array(0.543, requires_grad=True), pnp.array(-0.654, requires_grad=True)
    ours, theirs = circuits(qml.device("hqf.torch", wires=2)), circuits(qml.device("default.qubit", wires=2))
    np.testing.assert_allclose(ours(x, y), theirs(x, y), atol=TOL, rtol=0)
    np.testing.assert_allclose(qml.grad(ours)(x, y), qml.grad(theirs)(x, y), atol=TOL, rtol=0)
    hessians = [qml.jacobian(qml.grad(lambda v, f=f: f(v, y)))(x) for f in (ours, theirs)]
    np.testing.assert_allclose(hessians[0], hessians[1], atol=1e-10, rtol=0)
