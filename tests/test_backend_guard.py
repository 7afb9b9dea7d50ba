"""A broken backend never ends in exit 0: its outputs are checked on every call (hqf.quantum.outputs), its
exceptions and ``sys.exit`` become one line naming it, and the run is marked failed. What is computed after
training never loses the trained model; SIGTERM during the final evaluation leaves a resumable run."""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from hqf.backends.torch import TorchBackend
from hqf.cli import main
from hqf.errors import BackendContractError, RunFailedError
from hqf.learn.config import RunConfig
from hqf.learn.experiment import run
from hqf.learn.training import metrics as M
from hqf.quantum.circuit import Circuit, Hamiltonian, Operation, PauliWord, Probs
from hqf.quantum.gradients import expval
from hqf.quantum.interfaces import Backend, Capabilities
from hqf.quantum.outputs import check_outputs

REPO = pathlib.Path(__file__).resolve().parents[1]
#: 2 epochs x 5 iterations of a 2-qubit model, no regularizers: a run of about a second
TINY = {
    "samples": 300, "epochs": 2, "batch_size": 32, "ansatz": "hea2x1", "hidden": 8, "latent": 4,
    "regularizers": [], "vai_samples": 16, "latency_repeats": 1, "checkpoint_every": 2, "threads": 1,
}  # fmt: skip


class _Faulty(Backend):
    """The torch backend's values passed through :meth:`fault` (a broken simulator, in one way per subclass).

    ``calls`` counts the calls made with gradients enabled (training; the checks before it run without)."""

    capabilities = Capabilities(gradients={"backprop"})

    def __init__(self, **options):
        super().__init__(**options)
        self.inner, self.calls = TorchBackend(**options), 0

    def expval(self, circuit, angles):
        self.calls += torch.is_grad_enabled()
        return self.fault(self.inner.expval(circuit, angles))

    def fault(self, values: torch.Tensor) -> torch.Tensor:
        return values


class _NaNWithoutGrad(_Faulty):
    name = "nan-eval"

    def fault(self, values):
        return values if torch.is_grad_enabled() else torch.full_like(values, math.nan)


class _Huge(_Faulty):
    name = "huge"

    def fault(self, values):
        return values * 1e6


class _Exits(_Faulty):
    name = "exits"

    def fault(self, values):
        if self.calls >= 3:
            sys.exit(0)
        return values


class _Raises(_Faulty):
    name = "raises"

    def fault(self, values):
        if self.calls >= 3:
            raise RuntimeError("simulator lost its device")
        return values


class _ExitsAtOnce(_Faulty):
    name = "exits-at-once"

    def fault(self, values):
        sys.exit(0)


def _config_file(tmp_path: pathlib.Path, **values) -> pathlib.Path:
    path = tmp_path / "c.toml"
    path.write_text(RunConfig.from_dict({**TINY, **values}).to_toml())
    return path


def _hqf_run(tmp_path, out, **values):
    return CliRunner().invoke(
        main, ["run", "--quiet", "--config", str(_config_file(tmp_path, **values)), "--out", str(out)]
    )


def _failed(out: pathlib.Path) -> dict:
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "failed"
    assert not (out / "metrics.json").exists() and not (out / "lock").exists()
    return status


@pytest.mark.parametrize(
    ("backend", "problem"),
    [
        pytest.param(
            _NaNWithoutGrad, r"expval_broadcast returned NaN or infinity in output 0 \(<Z0>\)", id="nan-under-no-grad"
        ),
        pytest.param(_Huge, r"expval_broadcast returned <Z[01]> = -?[0-9.]+e\+05, outside \[-1, 1\]", id="huge"),
    ],
)
def test_a_backend_returning_impossible_values_fails_the_run(tmp_path, fake_plugins, backend, problem):
    fake_plugins(backend)
    out = tmp_path / "run"
    result = _hqf_run(tmp_path, out, backend=backend.name)
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    reason = f"backend {backend.name!r} broke its contract: {problem}"
    assert re.fullmatch(f"Error: run failed: {reason} \\(recorded in {re.escape(str(out))}/status.json\\)", line), line
    assert re.fullmatch(reason, _failed(out)["reason"])


def test_a_backend_raising_or_exiting_mid_training_fails_the_run_in_one_line(tmp_path, fake_plugins):
    fake_plugins(_Raises, _Exits)
    for backend, what in (("raises", "RuntimeError: simulator lost its device"), ("exits", "SystemExit: 0")):
        out = tmp_path / backend
        result = _hqf_run(tmp_path, out, backend=backend)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            f"Error: run failed: backend {backend!r} broke its contract: expval_broadcast raised {what} "
            f"(recorded in {out}/status.json)"
        ]
        assert _failed(out)["reason"] == f"backend {backend!r} broke its contract: expval_broadcast raised {what}"


class _RaisesLater(_Faulty):
    name = "raises-later"

    def fault(self, values):
        if self.calls >= 12:  # iteration 9 or so: after checkpoints
            raise RuntimeError("simulator lost its device")
        return values


def test_a_run_failed_mid_training_keeps_the_curves_of_its_last_checkpoint(tmp_path, fake_plugins):
    fake_plugins(_RaisesLater)
    out = tmp_path / "run"
    result = _hqf_run(tmp_path, out, backend="raises-later")
    assert result.exit_code == 1, result.output
    assert "raises-later" in _failed(out)["reason"] and not (out / "checkpoint.pt").exists()
    with open(out / "curves.csv") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps and steps == list(range(1, len(steps) + 1)) and steps[-1] % 2 == 0  # checkpoint_every = 2
    assert (out / "epochs.csv").exists()


def test_a_non_finite_loss_of_a_sound_backend_still_fails_the_run(tmp_path):
    """The loss's own check stays (a backend's NaN is now caught before it, see test_durable_runs)."""
    out = tmp_path / "run"
    result = _hqf_run(tmp_path, out, fusion="classical-only", lr=1e30)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: run failed: the loss became NaN or infinite at iteration 2 (recorded in {out}/status.json)"
    ]
    assert (out / "curves.csv").exists() and _failed(out)["reason"].startswith("the loss became NaN")


def test_a_backend_exiting_before_training_is_named(tmp_path, fake_plugins):
    fake_plugins(_ExitsAtOnce)
    result = _hqf_run(tmp_path, tmp_path / "run", backend="exits-at-once")
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "Error: backend 'exits-at-once' broke its contract: expval failed on a valid circuit: SystemExit: 0"
    ]
    assert not (tmp_path / "run").exists()


def test_the_output_check_knows_each_observable_s_range():
    circuit = Circuit(
        2,
        [Operation("RX", 0, 0)],
        [PauliWord.z(0), Hamiltonian([(0.5, "Z0"), (-2.0, "X1")]), Probs([0, 1])],
    )
    good = torch.tensor([[1.0, -2.5, 0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    check_outputs("b", circuit, good)
    for column, value, problem in [
        (0, 1.01, "<Z0> = 1.01, outside [-1, 1]"),
        (1, 2.6, "<0.5·Z0 + -2·X1> = 2.6, outside [-2.5, 2.5]"),
        (2, -0.1, "probs(q0,q1)[0] = -0.1, outside [0, 1]"),
        (3, 0.6, "probs(q0,q1) that sum to 1.1, not 1"),
        (4, math.inf, "NaN or infinity in output 4 (probs(q0,q1)[2])"),
    ]:
        bad = good.clone()
        bad[0, column] = value
        with pytest.raises(BackendContractError, match=r"^backend 'b' broke its contract: expval returned "):
            check_outputs("b", circuit, bad)
        with pytest.raises(BackendContractError) as caught:
            check_outputs("b", circuit, bad)
        assert str(caught.value).endswith(problem)
    check_outputs("b", circuit, good + 1e-9)  # within the stated tolerance
    with pytest.raises(BackendContractError, match=r"shape \[1, 5\]; expected \[1, 6\]"):
        check_outputs("b", circuit, good[:, :5])


class _HugeShifts(_Faulty):
    """Right values, but its shifted values (the parameter-shift rule's) are wild."""

    name = "huge-shifts"
    capabilities = Capabilities()

    def expval_shifted(self, circuit, angles, chunk=None):
        return super().expval_shifted(circuit, angles, chunk) * 1e6


class _RaisingVjp(_Faulty):
    name = "raising-vjp"
    capabilities = Capabilities(gradients={"adjoint"})

    def vjp(self, circuit, angles, grad_output):
        raise ValueError("no adjoint today")


def test_every_gradient_path_checks_the_backend():
    circuit = Circuit(1, [Operation("RX", 0, 0)], [PauliWord.z(0)])
    angles = torch.tensor([[0.3]], dtype=torch.float64, requires_grad=True)
    with pytest.raises(BackendContractError, match=r"'huge-shifts' broke its contract: expval_shifted returned <Z0>"):
        expval(_HugeShifts(), circuit, angles).sum().backward()
    with pytest.raises(BackendContractError, match=r"'raising-vjp' .*: vjp raised ValueError: no adjoint today$"):
        expval(_RaisingVjp(), circuit, angles).sum().backward()


def _constant_csv(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "constant.csv"
    path.write_text("a,b,label\n" + "".join(f"1.5,-2,{i % 2}\n" for i in range(120)))
    return path


def test_constant_features_give_a_null_vai_with_a_reason(tmp_path):
    metrics = run(
        RunConfig.from_dict({**TINY, "dataset": str(_constant_csv(tmp_path)), "samples": None}), tmp_path / "r"
    )
    assert metrics["variance_amplification_index"] is None
    assert metrics["vai_reason"] == "the test inputs do not vary (tr Cov_x x = 0)"
    assert (tmp_path / "r" / "model.safetensors").exists()
    vai = M.variance_amplification(lambda x: x, torch.zeros(4, 3))
    assert vai["vai"] is None and vai["reason"] == "the test inputs do not vary (tr Cov_x x = 0)"


def test_a_failure_after_training_keeps_the_trained_model(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(M, "variance_amplification", broken)
    out = tmp_path / "run"
    result = _hqf_run(tmp_path, out)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: run failed: after training: ZeroDivisionError: float division by zero; the trained model is kept "
        f"in {out}/model.safetensors (recorded in {out}/status.json)"
    ]
    status = _failed(out)
    assert status["model"] == "model.safetensors" and (out / "model.safetensors").exists()
    assert (out / "checkpoint.pt").exists()  # the trained state: `hqf run --resume` evaluates it again
    monkeypatch.undo()
    resumed = CliRunner().invoke(main, ["run", "--quiet", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "metrics.json").read_text())["steps"] == 14


#: `hqf run` in a fresh interpreter whose first latency measurement (in the final evaluation) sends it SIGTERM
SIGTERM_IN_EVALUATION = """
import os, signal, sys
from hqf.learn.training import metrics
measure = metrics.latency_per_instance
def interrupted(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return measure(*args, **kwargs)
metrics.latency_per_instance = interrupted
from hqf.cli import main
sys.argv = ["hqf", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_sigterm_during_the_final_evaluation_leaves_a_resumable_run(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["run", "--quiet", "--config", str(_config_file(tmp_path)), "--out", str(out)]
    killed = subprocess.run(
        [sys.executable, "-c", SIGTERM_IN_EVALUATION, *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert killed.returncode == 143, killed.stdout + killed.stderr
    assert killed.stderr.strip().splitlines()[-1] == (
        f"Interrupted: interrupted by SIGTERM during the final evaluation (training had finished at iteration 14); "
        f"the trained state is kept in {out} (checkpoint.pt); finish it with: hqf run --resume {out}"
    )
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == "SIGTERM"
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "hqf", "run", "--quiet", "--resume", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads((out / "metrics.json").read_text())["steps"] == 14


def test_run_failed_error_is_what_the_api_raises(tmp_path, fake_plugins):
    fake_plugins(_Huge)
    with pytest.raises(RunFailedError, match="backend 'huge' broke its contract"):
        run(RunConfig.from_dict({**TINY, "backend": "huge"}), tmp_path / "api")


#: the one line a command prints for the backend returning ⟨Z⟩ ≈ 1e6
HUGE_LINE = (
    r"Error: backend 'huge' broke its contract: expval_broadcast returned <Z[01]> = -?[0-9.]+e\+05, outside \[-1, 1\]"
)


def test_hqf_bench_names_a_backend_returning_impossible_values(fake_plugins):
    fake_plugins(_Huge)
    args = ["bench", "--ansatz", "hea2x1", "--backend", "huge", "--batch", "4", "--repeats", "1", "--warmup", "0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert re.fullmatch(HUGE_LINE, line), line


def test_hqf_predict_and_evaluate_name_a_backend_returning_impossible_values(tmp_path, fake_plugins):
    fake_plugins(_Huge)
    out = tmp_path / "run"
    assert _hqf_run(tmp_path, out).exit_code == 0  # trained on torch
    for command in ("predict", "evaluate"):
        result = CliRunner().invoke(main, [command, str(out), "--backend", "huge"])
        assert result.exit_code == 1, result.output  # a broken backend: exit 1, as a failed run
        (line,) = result.output.strip().splitlines()
        assert re.fullmatch(HUGE_LINE, line), line
