"""``hqf bench`` and hqf.studies.bench: the workload, the ratios, the command's output (no timing assertions)."""

import json
import math

import pytest
import torch
from click.testing import CliRunner

from hqf.studies.bench import TARGETS, Row, Workload, median_seconds, ratios, time_backend
from hqf.cli import main


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
    ]
    measured = {r.target.name: r for r in ratios(rows)}
    assert len(measured) == 3
    new = measured["torch forward, new weights every call, vs PennyLane backprop forward"]
    assert new.value == pytest.approx(10.0) and new.met is False  # its own column against the peer's forward
    fwd = measured["torch forward vs PennyLane backprop forward"]
    assert fwd.value == pytest.approx(20.0) and fwd.met is True
    fb = measured["torch fwd+bwd vs PennyLane backprop fwd+bwd"]
    assert fb.value == pytest.approx(15.0) and fb.met is False
    assert {t.numerator for t in TARGETS} >= {"torch/backprop", "torch/parameter-shift", "torch/adjoint", "qiskit-aer/parameter-shift"}


def test_median_seconds_counts_warmup_and_budget():
    calls = []
    median_seconds(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7
    calls.clear()
    median_seconds(lambda: calls.append(1), repeats=5, warmup=0, budget_s=0.0)
    assert len(calls) == 1  # the budget stops after one timed call


def test_time_backend_reports_throughput_and_the_resolved_gradient():
    row = time_backend("torch", Workload("hea2x1", batch=4), "auto", repeats=1, warmup=0)
    assert row.key == "torch/backprop" and row.gradient == "backprop"
    assert row.forward > 0 and row.forward_backward > 0 and row.forward_new_weights > 0 and row.batch == 4


def test_bench_command_prints_a_table_and_json():
    runner = CliRunner()
    result = runner.invoke(main, ["bench", "--ansatz", "hea2x1", "--batch", "4", "--repeats", "1", "--warmup", "0", "--gradient", "auto", "--gradient", "adjoint"])
    assert result.exit_code == 0, result.output
    assert "hqf torch" in result.output and "adjoint" in result.output and "fwd+bwd samples/s" in result.output
    result = runner.invoke(main, ["bench", "--ansatz", "hea2x1", "--batch", "4", "--repeats", "1", "--warmup", "0", "--json"])
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
    args = ["bench", "--ansatz", "hea2x1", "--batch", "4", "--repeats", "1", "--warmup", "0", "--epoch", "3", "--curvature-every", "2", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    epoch = json.loads(result.output)["epoch"]
    assert epoch["curvature_every"] == 2 and epoch["iterations"] == 2 and epoch["epoch_seconds"] > 0


def test_bench_times_qiskit_aer_last_and_the_latency_and_epoch_before_it(monkeypatch):
    # once Qiskit Aer's own OpenMP runtime has run in a process, torch's two-thread steps slow down:
    # everything else (the torch-based peers, the latency, the epoch) is timed before it
    import hqf.studies.bench
    import hqf.studies.peers

    order = []

    def fake_backend(name, workload, gradient="auto", repeats=7, warmup=2, **_):
        order.append(f"{name}/{gradient}")
        return Row(f"{name}/{gradient}", f"hqf {name}", gradient, 1.0, 1.0, workload.batch, forward_new_weights=1.0)

    def fake_peer(name):
        def run(workload, **_):
            order.append(name)
            return Row(f"peer/{name}", name, "backprop", 1.0, 1.0, workload.batch)

        return run

    monkeypatch.setattr(hqf.studies.bench, "time_backend", fake_backend)
    monkeypatch.setattr(hqf.studies.bench, "inference_latency", lambda: order.append("latency") or hqf.studies.bench.Latency(1e-4, 1e-4))
    monkeypatch.setattr(hqf.studies.bench, "epoch_estimate", lambda n, **kw: order.append("epoch") or None)
    for name in ("pennylane-backprop", "qiskit-ml"):
        monkeypatch.setitem(hqf.studies.peers.PEERS, name, (hqf.studies.peers.PEERS[name][0], fake_peer(name)))
    monkeypatch.setattr(hqf.studies.peers, "available_peers", lambda: {"pennylane-backprop", "qiskit-ml"})
    args = ["bench", "--ansatz", "hea2x1", "--batch", "2", "--backend", "qiskit-aer", "--backend", "torch", "--gradient", "auto",
            "--peer", "qiskit-ml", "--peer", "pennylane-backprop", "--latency", "--epoch", "3", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert order == ["torch/auto", "pennylane-backprop", "latency", "epoch", "qiskit-aer/auto", "qiskit-ml"]
    keys = [r["key"] for r in json.loads(result.output)["rows"]]
    assert keys == ["qiskit-aer/auto", "torch/auto", "peer/qiskit-ml", "peer/pennylane-backprop"]  # as asked
