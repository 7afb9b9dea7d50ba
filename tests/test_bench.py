"""``hqf bench`` and hqf.studies.bench: the workload, the ratios, the command's output (no timing assertions)."""

import importlib.util
import json
import math
import pathlib
import time

import pytest
import torch
from click.testing import CliRunner

import hqf.studies.bench_suite
import hqf.studies.peers
from hqf.cli import main
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.quantum.gradients import expval
from hqf.registry.make import make_backend
from hqf.studies.bench import (
    MAX_CALLS_PER_SAMPLE,
    MIN_SAMPLE_S,
    Comparison,
    Latency,
    Row,
    Workload,
    median_seconds,
    peer_comparisons,
    ratios,
    time_backend,
)
from hqf.studies.bench_suite import fitting_backends
from hqf.studies.peers import PEERS, pennylane_layer, qiskit_connector

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _targets_script():
    spec = importlib.util.spec_from_file_location("targets", BENCHMARKS / "targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workload_is_ry_encoding_then_the_ansatz_with_z_on_every_qubit():
    workload = Workload("hea3x2", batch=5)
    circuit = workload.circuit()
    assert [op.gate for op in circuit.operations[:3]] == ["RY"] * 3
    assert [op.param for op in circuit.operations[:3]] == [0, 1, 2]
    assert circuit.n_params == 3 + 2 * 3 * 2 and circuit.n_outputs == 3
    x, weights = workload.inputs()
    assert x.shape == (5, 3) and weights.shape == (2, 3, 2)
    assert torch.equal(x, workload.inputs()[0])  # seeded
    stream = workload.input_stream(count=2)
    first, second, third = stream(), stream(), stream()
    assert not torch.equal(first, second) and torch.equal(first, third)
    assert float(first.min()) >= 0 and float(first.max()) < math.pi


def test_ratios_divide_the_named_columns_and_skip_missing_rows():
    rows = [
        Row("torch/backprop", "hqf torch", "backprop", 2000.0, 600.0, 256, forward_new_weights=1000.0),
        Row("peer/pennylane-backprop", "PL", "backprop", 100.0, 40.0, 256),
        Row("torch/parameter-shift", "hqf torch", "parameter-shift", 2000.0, 50.0, 256, forward_new_weights=1000.0),
    ]
    measured = {(r.comparison.numerator, r.comparison.column): r.value for r in ratios(rows, peer_comparisons(rows))}
    assert measured == {  # each hqf row against the peer rows of its gradient only
        ("torch/backprop", "forward"): pytest.approx(20.0),
        ("torch/backprop", "forward_new_weights"): pytest.approx(10.0),  # its own column against the peer's forward
        ("torch/backprop", "forward_backward"): pytest.approx(15.0),
    }
    missing = Comparison("torch/adjoint", "peer/lightning-adjoint", "forward")
    assert ratios(rows, [missing, Comparison("torch/backprop", "peer/pennylane-backprop", "forward")])[
        0
    ].value == pytest.approx(20.0)
    assert len(ratios(rows, [missing])) == 0


def test_the_goals_file_checks_a_saved_run():
    targets = _targets_script()
    goals = targets.tomllib.loads((BENCHMARKS / "targets.toml").read_text())
    assert {g["numerator"] for g in goals["ratio"]} >= {
        "torch/backprop",
        "torch/parameter-shift",
        "torch/adjoint",
        "qiskit-aer/parameter-shift",
    }
    rows = [
        Row("torch/backprop", "hqf torch", "backprop", 2000.0, 600.0, 256, forward_new_weights=1000.0),
        Row("peer/pennylane-backprop", "PL", "backprop", 100.0, 40.0, 256),
    ]
    run = {
        "workload": {"ansatz": "hea8x6", "batch": 256},
        "rows": [r.to_dict() for r in rows],
        "latency": {"model_seconds": 2e-4},
    }
    verdicts = {v.name: v for v in targets.check(run, goals)}
    new = verdicts["torch forward, new weights every call, vs PennyLane backprop forward"]
    assert new.value == pytest.approx(10.0) and new.met is False
    fwd = verdicts["torch forward vs PennyLane backprop forward"]
    assert fwd.value == pytest.approx(20.0) and fwd.met is True
    fb = verdicts["torch fwd+bwd vs PennyLane backprop fwd+bwd"]
    assert fb.value == pytest.approx(15.0) and fb.met is False
    assert verdicts["torch adjoint vs lightning adjoint fwd+bwd"].met is None  # rows not in this run
    assert verdicts["hea16x6 fwd+bwd (default gradient) vs lightning adjoint"].met is None  # another workload
    assert verdicts["inference latency of the default model at batch 1 (seconds)"].met is False
    assert verdicts["full epoch, 1.05M samples, batch 256, both regularizers (seconds)"].met is None


def test_the_goals_script_exits_1_on_a_missed_goal(tmp_path, capsys):
    targets = _targets_script()
    row = Row("torch/backprop", "hqf torch", "backprop", 2000.0, 600.0, 256, forward_new_weights=3000.0).to_dict()
    peer = Row("peer/pennylane-backprop", "PL", "backprop", 100.0, 20.0, 256).to_dict()
    run = {"workload": {"ansatz": "hea8x6", "batch": 256}, "rows": [row, peer]}
    (tmp_path / "met.json").write_text(json.dumps(run))
    assert targets.main([str(tmp_path / "met.json")]) == 0
    assert "30.0× (goal ≥ 20×) met" in capsys.readouterr().out
    run["rows"][1]["forward_backward"] = 40.0
    (tmp_path / "missed.json").write_text(json.dumps(run))
    assert targets.main([str(tmp_path / "missed.json")]) == 1
    assert "15.0× (goal ≥ 20×) MISSED" in capsys.readouterr().out


def test_median_seconds_counts_warmup_and_budget():
    calls = []
    median_seconds(lambda: time.sleep(0.03) or calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7  # calls slower than a sample's minimum: one call per sample
    calls.clear()
    median_seconds(lambda: calls.append(1), repeats=5, warmup=0, budget_s=0.0)
    assert len(calls) == 1  # the budget stops after one timed call


def test_median_seconds_repeats_fast_calls_within_a_sample():
    calls = []
    seconds = median_seconds(lambda: calls.append(1), repeats=3, warmup=1)
    assert len(calls) == 1 + 3 * MAX_CALLS_PER_SAMPLE  # a no-op fills no sample: the cap
    assert 0 < seconds < MIN_SAMPLE_S / 10  # the time of one call, not of a sample


def test_time_backend_reports_throughput_and_the_resolved_gradient():
    row = time_backend("torch", Workload("hea2x1", batch=4), "auto", repeats=1, warmup=0)
    assert row.key == "torch/backprop" and row.gradient == "backprop"
    assert row.forward > 0 and row.forward_backward > 0 and row.forward_new_weights > 0 and row.batch == 4


def test_bench_command_prints_a_table_and_json():
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "bench",
            "--ansatz",
            "hea2x1",
            "--batch",
            "4",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--gradient",
            "auto",
            "--gradient",
            "adjoint",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "hqf torch" in result.output and "adjoint" in result.output and "fwd+bwd samples/s" in result.output
    result = runner.invoke(
        main, ["bench", "--ansatz", "hea2x1", "--batch", "4", "--repeats", "1", "--warmup", "0", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["workload"] == {"ansatz": "hea2x1", "batch": 4, "dtype": "complex128"}
    assert [r["key"] for r in payload["rows"]] == ["torch/backprop"]


def test_bench_command_user_errors_are_one_line():
    runner = CliRunner()
    for args, message in (
        (["--ansatz", "hea0x1"], "qubit"),
        (["--backend", "no-such-backend"], "no-such-backend"),
        (["--peer", "no-such-peer"], "unknown peer"),
    ):
        result = runner.invoke(main, ["bench", "--batch", "2", "--repeats", "1", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_bench_epoch_estimate_takes_the_curvature_interval():
    args = [
        "bench",
        "--ansatz",
        "hea2x1",
        "--batch",
        "4",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--epoch",
        "3",
        "--curvature-every",
        "2",
        "--json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    epoch = json.loads(result.output)["epoch"]
    assert epoch["curvature_every"] == 2 and epoch["iterations"] == 2 and epoch["epoch_seconds"] > 0


def _fake_timings(monkeypatch, order: list[str]):
    def fake_backend(name, workload, gradient="auto", repeats=7, warmup=2, **_):
        order.append(f"{name}/{gradient}")
        return Row(f"{name}/{gradient}", f"hqf {name}", gradient, 4.0, 2.0, workload.batch, forward_new_weights=3.0)

    def fake_peer(peer, workload, slow_batch=1):
        order.append(peer.name)
        return Row(f"peer/{peer.name}", peer.name, peer.gradient, 1.0, 1.0, workload.batch)

    monkeypatch.setattr(hqf.studies.bench_suite, "time_backend", fake_backend)
    monkeypatch.setattr(hqf.studies.bench_suite, "time_peer", fake_peer)
    monkeypatch.setattr(
        hqf.studies.bench_suite, "inference_latency", lambda: order.append("latency") or Latency(1e-4, 1e-4)
    )
    monkeypatch.setattr(hqf.studies.bench_suite, "epoch_estimate", lambda n, **kw: order.append("epoch") or None)
    monkeypatch.setattr(hqf.studies.peers, "available_peers", lambda: list(PEERS))


def test_bench_times_qiskit_aer_last_and_the_latency_and_epoch_before_it(monkeypatch):
    # once Qiskit Aer's own OpenMP runtime has run in a process, torch's two-thread steps slow down:
    # everything else (the torch-based peers, the latency, the epoch) is timed before it
    order = []
    _fake_timings(monkeypatch, order)
    args = [
        "bench",
        "--ansatz",
        "hea2x1",
        "--batch",
        "2",
        "--backend",
        "qiskit-aer",
        "--backend",
        "torch",
        "--gradient",
        "auto",
        "--peer",
        "qiskit-ml",
        "--peer",
        "pennylane-backprop",
        "--latency",
        "--epoch",
        "3",
        "--json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert order == ["torch/auto", "pennylane-backprop", "latency", "epoch", "qiskit-aer/auto", "qiskit-ml"]
    keys = [r["key"] for r in json.loads(result.output)["rows"]]
    assert keys == ["qiskit-aer/auto", "torch/auto", "peer/qiskit-ml", "peer/pennylane-backprop"]  # as asked


def test_bench_peers_times_the_fitting_registered_backends_and_prints_the_ratios(monkeypatch):
    order = []
    _fake_timings(monkeypatch, order)
    args = ["bench", "--ansatz", "hea2x1", "--batch", "2", "--peer", "pennylane-backprop", "--gradient", "backprop"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    fitting, unfit = fitting_backends(Workload("hea2x1"))
    assert (
        "torch" in fitting and "torch-dm" not in fitting and any(line.startswith("backend torch-dm:") for line in unfit)
    )
    timed = [name.split("/")[0] for name in order if "/" in name]
    assert sorted(timed) == sorted(n for n in fitting if "backprop" in make_backend(n).capabilities.gradients)
    assert "Ratios, hqf row ÷ peer row of the same gradient" in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("| torch/backprop ")]
    assert [cell.strip() for cell in line.split("|")[1:-1]] == [
        "torch/backprop",
        "peer/pennylane-backprop",
        "4.0×",
        "3.0×",
        "2.0×",
    ]
    assert "skipped: backend torch-dm: not an exact pure-state simulator" in result.output


def _every_gate_circuit() -> tuple[Circuit, int]:
    """Three qubits, every gate hqf knows, inputs in columns 0-2 and weights in 3-5, multi-wire Pauli words."""
    ops = [
        Operation("RY", 0, 0),
        Operation("RX", 1, 1),
        Operation("H", 2),
        Operation("RZ", 2, 2),
        Operation("RY", 0, 3),
        Operation("RZ", 1, 4),
        Operation("CNOT", (0, 1)),
        Operation("CZ", (1, 2)),
        Operation("X", 0),
        Operation("CNOT", (2, 0)),
        Operation("RX", 2, 5),
    ]
    observables = [PauliWord.parse("Z0"), PauliWord.parse("X1 Y2"), PauliWord.parse("Z0 Z1 Z2"), PauliWord.parse("Y0")]
    return Circuit(3, ops, observables), 3


def _every_gate_inputs() -> tuple[Circuit, int, torch.Tensor, torch.Tensor, torch.Tensor]:
    circuit, n_inputs = _every_gate_circuit()
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(5, n_inputs, generator=generator, dtype=torch.float64) * math.pi
    weights = torch.rand(circuit.n_params - n_inputs, generator=generator, dtype=torch.float64) * 2 * math.pi
    want = expval(make_backend("torch"), circuit, torch.cat([x, weights.expand(5, -1)], dim=1))
    return circuit, n_inputs, x, weights, want


def test_the_pennylane_peer_runs_exactly_the_hqf_circuit():
    pytest.importorskip("pennylane")
    circuit, n_inputs, x, weights, want = _every_gate_inputs()
    layer = pennylane_layer(circuit, n_inputs, weights, "default.qubit", "backprop")
    with torch.no_grad():
        torch.testing.assert_close(layer(x), want, rtol=0, atol=1e-10)


def test_the_qiskit_peer_runs_exactly_the_hqf_circuit():
    pytest.importorskip("qiskit_machine_learning")
    from qiskit.quantum_info import Statevector

    circuit, n_inputs, x, weights, want = _every_gate_inputs()
    layer = qiskit_connector(circuit, n_inputs, weights)
    qnn = layer.neural_network
    exact = []
    for row in x.tolist():
        bound = qnn.circuit.assign_parameters(
            dict(zip([*qnn.input_params, *qnn.weight_params], [*row, *weights.tolist()]))
        )
        state = Statevector(bound)
        exact.append([state.expectation_value(obs).real for obs in qnn.observables])
    torch.testing.assert_close(torch.tensor(exact, dtype=torch.float64), want, rtol=0, atol=1e-10)
    with torch.no_grad():  # the connector feeds inputs and weights to those parameters; its values are estimates
        sampled = torch.as_tensor(layer(x), dtype=torch.float64)  # at EstimatorQNN's default precision, 1/64
    assert float((sampled - want).abs().max()) < 0.1
