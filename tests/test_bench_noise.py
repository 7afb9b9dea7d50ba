"""``hqf bench --noise``: the noisy peers compute hqf's density-matrix values, the command's surface and output
(no timing assertions)."""

import importlib.util
import json
import pathlib
import sys

import pytest
import torch
from click.testing import CliRunner

import hqf.studies.bench_suite
import hqf.studies.noisy_peers
from hqf.cli import main
from hqf.errors import ConfigError
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.quantum.gradients import expval
from hqf.quantum.interfaces import Capabilities
from hqf.quantum.noise import AmplitudeDamping, Depolarizing, NoiseModel
from hqf.registry.loader import registry
from hqf.registry.make import make_backend
from hqf.studies.bench import Row, Workload
from hqf.studies.bench_suite import estimates, fitting_noisy_backends, run_noisy_bench
from hqf.studies.noisy_peers import (
    NOISY_PEERS,
    AerDensityMatrixLayer,
    ReadoutLayer,
    pennylane_mixed_layer,
    readout_map,
    select_noisy_peers,
)

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
#: every channel, and readout error
EVERY_CHANNEL = NoiseModel.parse(
    "depolarizing=0.02,bit_flip=0.01,phase_flip=0.015,pauli=0.01:0.02:0.03,amplitude_damping=0.05,"
    "phase_damping=0.04,thermal_relaxation=50:40:1,readout=0.03:0.05"
)
#: channels on some gates or wires only: a peer that swaps a two-qubit gate's wires disagrees
FILTERED = (
    NoiseModel().with_channel(AmplitudeDamping(0.2), gates="CNOT", wires=1).with_channel(Depolarizing(0.05), wires=0)
)
#: the packages each peer needs; the CI (`dev` extra) has PennyLane, Qiskit Aer and qulacs
NEEDS = {name: peer.modules for name, peer in NOISY_PEERS.items()}


def _skip_unless_installed(name: str) -> None:
    missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"peer {name} needs {', '.join(missing)}, not installed here")


def _case(noise: NoiseModel, ansatz: str = "hea3x2", batch: int = 3):
    """The bench circuit, its inputs and weights, and torch-dm's values (float64) under ``noise``."""
    workload = Workload(ansatz, batch=batch)
    x, weights = workload.inputs()
    flat = weights.reshape(-1)
    want = expval(make_backend("torch-dm", noise=noise), workload.circuit(), torch.cat([x, flat.expand(batch, -1)], 1))
    return workload, x, flat, want


@pytest.mark.parametrize("noise", [EVERY_CHANNEL, FILTERED], ids=["every-channel", "filtered"])
def test_the_exact_backends_agree_on_the_reference_case(noise):
    workload, x, flat, want = _case(noise)
    got = expval(make_backend("ptm", noise=noise), workload.circuit(), torch.cat([x, flat.expand(3, -1)], 1))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["qulacs-dm", "qiskit-aer-dm", "cudaq-dm"])
@pytest.mark.parametrize("noise", [EVERY_CHANNEL, FILTERED], ids=["every-channel", "filtered"])
def test_a_forward_only_peer_computes_the_density_matrix_values(name, noise):
    _skip_unless_installed(name)
    workload, x, flat, want = _case(noise)
    layer = NOISY_PEERS[name].build(workload.circuit(), workload.n_inputs, flat, noise)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("noise", [EVERY_CHANNEL, FILTERED], ids=["every-channel", "filtered"])
def test_pennylane_default_mixed_computes_the_density_matrix_values(noise):
    _skip_unless_installed("pennylane-mixed")
    workload, x, flat, want = _case(noise)
    exact = pennylane_mixed_layer(workload.circuit(), workload.n_inputs, flat, noise, diff_method="parameter-shift")
    timed = NOISY_PEERS["pennylane-mixed"].build(workload.circuit(), workload.n_inputs, flat, noise)
    with torch.no_grad():
        torch.testing.assert_close(exact(x), want, rtol=0, atol=1e-10)
        # PennyLane 0.45 evaluates default.mixed's backprop path in torch to ~1e-8 (noiseless too)
        torch.testing.assert_close(timed(x), want, rtol=0, atol=1e-7)


def test_the_pennylane_peer_differentiates_inputs_and_weights():
    _skip_unless_installed("pennylane-mixed")
    noise = NoiseModel.parse("depolarizing=0.02,amplitude_damping=0.05")
    workload, x, flat, _ = _case(noise, "hea2x1", batch=2)
    layer = NOISY_PEERS["pennylane-mixed"].build(workload.circuit(), workload.n_inputs, flat, noise)
    xs = x.clone().requires_grad_()
    layer(xs).sum().backward()
    rows = torch.cat([xs.detach(), flat.expand(2, -1)], 1).requires_grad_()
    expval(make_backend("torch-dm", noise=noise), workload.circuit(), rows).sum().backward()
    torch.testing.assert_close(xs.grad, rows.grad[:, : workload.n_inputs], rtol=0, atol=1e-6)
    torch.testing.assert_close(layer.inner.weights.grad, rows.grad[:, workload.n_inputs :].sum(0), rtol=0, atol=1e-6)


def test_qiskit_depolarizing_lambda_is_converted_and_the_test_would_catch_it_otherwise():
    _skip_unless_installed("qiskit-aer-dm")
    from qiskit_aer.noise import depolarizing_error

    noise = NoiseModel.parse("depolarizing=0.05")
    workload, x, flat, want = _case(noise)
    unconverted = AerDensityMatrixLayer(
        workload.circuit(), workload.n_inputs, flat, noise, error=lambda channel: depolarizing_error(channel.p, 1)
    )  # Qiskit's λ = p
    converted = AerDensityMatrixLayer(workload.circuit(), workload.n_inputs, flat, noise)  # λ = 4p/3
    with torch.no_grad():
        assert float((unconverted(x) - want).abs().max()) > 1e-3
        torch.testing.assert_close(converted(x), want, rtol=0, atol=1e-10)


def test_readout_error_is_an_affine_map_of_single_z_words_only():
    noise = NoiseModel.parse("readout=0.03:0.05")
    circuit = Circuit(2, [Operation("RY", 0, 0)], [PauliWord.parse("Z0"), PauliWord.parse("X1")])
    with pytest.raises(ConfigError, match="single-wire Z"):
        readout_map(circuit, noise)
    scale, shift = readout_map(Circuit(1, [Operation("RY", 0, 0)], [PauliWord.z(0)]), noise)
    assert scale.tolist() == pytest.approx([0.92]) and shift.tolist() == pytest.approx([0.02])
    identity = ReadoutLayer(torch.nn.Identity(), circuit, NoiseModel.parse("depolarizing=0.1"))
    assert identity.affine is None


def test_the_noisy_backends_are_the_exact_ones_with_a_native_gradient():
    workload = Workload("hea3x2")
    names, skipped = fitting_noisy_backends(workload, EVERY_CHANNEL)
    assert {"ptm", "torch-dm"} <= set(names) and "torch" not in names
    assert "backend torch: no noise model" in skipped
    for name in names:
        caps = registry().get("backend", name).cls.capabilities
        assert caps.noise and caps.gradients and EVERY_CHANNEL.features <= caps.channels
    adapters = [line for line in skipped if "no native gradient" in line]
    registered = registry().names("backend")
    assert any(line.startswith("backend qiskit-aer-dm:") for line in adapters) or "qiskit-aer-dm" not in registered
    assert "torch-dm" not in fitting_noisy_backends(Workload("hea12x1"), EVERY_CHANNEL)[0]  # at most 10 qubits


def test_select_noisy_peers_names_unknown_and_large_ones():
    with pytest.raises(ConfigError, match="unknown noisy peer"):
        select_noisy_peers(["qiskit-ml"], 8)
    chosen, skipped = select_noisy_peers([], 12)
    assert "pennylane-mixed" not in chosen
    assert any(line.startswith("peer pennylane-mixed:") for line in skipped)


def test_a_trajectory_backend_is_labelled_an_estimate():
    if "trajectories" not in registry().names("backend"):
        pytest.skip("no trajectory backend registered here")
    noise = NoiseModel.parse("depolarizing=0.02")
    result = run_noisy_bench(Workload("hea2x1", batch=2), noise, ["trajectories", "ptm"], repeats=1, warmup=0)
    labels = {row.key.split("/")[0]: row for row in result.rows}
    assert labels["trajectories"].label.endswith("(estimate)") and labels["trajectories"].note.startswith("estimate")
    assert "estimate" not in labels["ptm"].label


def test_estimates_are_the_backends_that_sample():
    class Sampled:
        capabilities = Capabilities(exact=False)

    assert estimates(Sampled()) and not estimates(make_backend("ptm", noise=EVERY_CHANNEL))


PEAK_GROWTH = """
import numpy as np
from hqf.studies.bench import Row, peak_growth_mib

def allocate():
    block = np.ones(2**23)  # 64 MiB, every page written
    return Row("a/b", "a", "b", float(block[-1]), None, 1)

print(peak_growth_mib(allocate).peak_mib)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the peak is reset through Linux's /proc clear_refs")
def test_peak_growth_counts_the_memory_a_row_touched():
    """In a fresh process: what earlier tests left in this one's heap and counters is not the function's."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", PEAK_GROWTH], capture_output=True, text=True, check=True, timeout=120)
    assert float(out.stdout) >= 60


def test_bench_noise_user_errors_are_one_line():
    runner = CliRunner()
    for args, message in (
        (["--noise", "depolarising=0.02"], "did you mean 'depolarizing'"),
        (["--noise", "depolarizing=2"], "depolarizing"),
        (["--noise", "depolarizing=0.02", "--backend", "torch"], "'torch' runs no noise model"),
        (["--noise", "depolarizing=0.02", "--gradient", "adjoint"], "--gradient"),
        (["--noise", "depolarizing=0.02", "--peer", "qiskit-ml"], "unknown noisy peer"),
    ):
        result = runner.invoke(main, ["bench", "--ansatz", "hea2x1", "--batch", "2", "--repeats", "1", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_bench_noise_json_has_the_noise_rows_memory_and_ratios(monkeypatch):
    def fake_peer(peer, workload, noise):
        backward = 1.0 if peer.differentiable else None
        return Row(f"peer/{peer.name}", peer.label, peer.gradient, 2.0, backward, 2)

    monkeypatch.setattr(hqf.studies.bench_suite, "time_noisy_peer", fake_peer)
    monkeypatch.setattr(hqf.studies.noisy_peers.NoisyPeer, "installed", property(lambda self: True))
    args = [
        "bench",
        "--noise",
        "depolarizing=0.02",
        "--ansatz",
        "hea2x1",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--backend",
        "ptm",
        "--backend",
        "torch-dm",
        "--peers",
        "--json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload) == {"workload", "machine", "rows", "ratios", "memory", "skipped"}
    assert payload["workload"] == {"ansatz": "hea2x1", "batch": 2, "dtype": "complex128", "noise": "depolarizing=0.02"}
    keys = [row["key"] for row in payload["rows"]]
    assert keys == ["ptm/backprop", "torch-dm/backprop", *(f"peer/{name}" for name in NOISY_PEERS)]
    for row in payload["rows"]:
        assert set(row) == set(Row("k", "l", "g", 1.0, 1.0, 1).to_dict())
        assert row["forward"] > 0 and (row["peak_mib"] is None or row["peak_mib"] >= 0)
    pairs = {(r["numerator"], r["denominator"], r["column"], r["denominator_column"]) for r in payload["ratios"]}
    assert ("ptm/backprop", "peer/qiskit-aer-dm", "forward", "forward") in pairs
    assert ("ptm/backprop", "peer/qiskit-aer-dm", "forward_backward", "forward") in pairs
    assert ("ptm/backprop", "peer/pennylane-mixed", "forward_backward", "forward_backward") in pairs
    assert payload["memory"]["hqf_peak_rss_mib"] > 0


def test_bench_noise_prints_rows_per_second_memory_and_ratios(monkeypatch):
    monkeypatch.setattr(
        hqf.studies.bench_suite,
        "time_noisy_peer",
        lambda peer, workload, noise: Row(f"peer/{peer.name}", peer.label, peer.gradient, 2.0, None, 2),
    )
    monkeypatch.setattr(hqf.studies.noisy_peers.NoisyPeer, "installed", property(lambda self: True))
    args = [
        "bench",
        "--noise",
        "amplitude_damping=0.05",
        "--ansatz",
        "hea2x1",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--backend",
        "ptm",
        "--peer",
        "qiskit-aer-dm",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "noise amplitude_damping=0.05" in result.output.splitlines()[0]
    assert "fwd rows/s" in result.output and "MiB/row" in result.output and "peer/qiskit-aer-dm" in result.output
    assert "and every row's fwd+bwd" in result.output


def test_the_noise_goals_check_a_saved_run():
    spec = importlib.util.spec_from_file_location("targets", BENCHMARKS / "targets.py")
    targets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(targets)
    goals = targets.tomllib.loads((BENCHMARKS / "targets.toml").read_text())
    rows = [
        Row("ptm/backprop", "hqf ptm", "backprop", 120.0, 25.0, 16, forward_new_weights=110.0),
        Row("peer/qiskit-aer-dm", "Aer", "forward only", 10.0, None, 16),
    ]
    workload = {"ansatz": "hea8x6", "batch": 16, "noise": "depolarizing=0.02"}
    run = {"workload": workload, "rows": [r.to_dict() for r in rows]}
    verdicts = {v.name: v for v in targets.check(run, goals)}
    prefix = "hea8x6 depolarizing 0.02: ptm "
    forward = verdicts[prefix + "forward vs Qiskit Aer density matrix forward, per row"]
    backward = verdicts[prefix + "forward+backward vs Qiskit Aer density matrix forward alone, per row"]
    assert forward.value == pytest.approx(12.0) and forward.met is True
    assert backward.value == pytest.approx(2.5) and backward.met is False
    run["workload"]["noise"] = "depolarizing=0.05"
    assert all(v.met is None for v in targets.check(run, goals) if v.name.startswith("hea8x6 depolarizing"))
