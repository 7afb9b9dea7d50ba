"""Durable runs: checkpoints, resume after SIGKILL bit for bit, Ctrl-C, failed runs, the kept model."""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hqf.cli import main
from hqf.errors import ConfigError, RunDirInUseError, RunFailedError
from hqf.learn.config import RunConfig
from hqf.learn.experiment import TIMING_KEYS, run
from hqf.learn.rundir import checkpoint as ckpt
from hqf.learn.rundir import lock
from hqf.learn.rundir.lifecycle import StopSignals
from hqf.quantum.interfaces import Backend

REPO = pathlib.Path(__file__).resolve().parents[1]
#: a run of 3 epochs x 7 iterations in seconds, both regularizers (the curvature probes draw from a
#: torch.Generator the checkpoint must carry), a checkpoint every 2 iterations
TINY = {
    "samples": 300, "epochs": 3, "batch_size": 32, "ansatz": "hea2x1", "hidden": 8, "latent": 4,
    "vai_samples": 16, "latency_repeats": 1, "checkpoint_every": 2,
}  # fmt: skip
TINY_ITERATIONS = 21
#: in a fresh interpreter set up like `hqf run`: the run of the TOML file argv[1] into argv[2], whole,
#: then into argv[3], SIGKILLed at iteration argv[4]
KILLER = """
import os, signal, sys
from hqf.learn.process.runtime import tune_process
from hqf.learn.config import RunConfig
from hqf.learn.experiment import run
tune_process()  # what `hqf run` does: the same kernels as the resumed run
config, kill_at = RunConfig.from_toml(sys.argv[1]), int(sys.argv[4])
run(config, sys.argv[2])
def progress(step, total, row):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
run(config, sys.argv[3], progress=progress)
"""


def _toml(path: pathlib.Path, values: dict) -> pathlib.Path:
    path.write_text(RunConfig.from_dict(values).to_toml())
    return path


#: one torch thread in the test's processes: the same result (each comparison is within one setting),
#: and no spinning threads fighting for a loaded machine's cores
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=ONE_THREAD)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _non_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def _curves(path: pathlib.Path) -> list[dict]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(handle)]


def test_a_run_killed_at_a_random_iteration_resumes_to_the_same_result_bit_for_bit(tmp_path):
    config = _toml(tmp_path / "tiny.toml", TINY)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    kill_at = random.Random(1796).randrange(3, TINY_ITERATIONS)  # drawn, but the same on every CI run
    whole, killed = tmp_path / "whole", tmp_path / "runs" / "killed"
    died = _python(str(script), str(config), str(whole), str(killed), str(kill_at))
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert (whole / "metrics.json").exists()
    assert (killed / "checkpoint.pt").exists() and not (killed / "metrics.json").exists()
    status = json.loads((killed / "status.json").read_text())
    saved = max(s for s in range(1, kill_at) if s % 2 == 0 or s % 7 == 0)  # every 2 iterations, each epoch's end
    assert status["status"] == "running" and status["step"] == saved

    resumed = _python("-c", "from hqf.cli import main; main()", "run", "--resume", str(killed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    expected = json.loads((whole / "metrics.json").read_text())
    got = json.loads((killed / "metrics.json").read_text())
    assert _non_timing(got) == _non_timing(expected) and expected["steps"] == TINY_ITERATIONS
    assert _curves(killed / "curves.csv") == _curves(whole / "curves.csv")
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in whole.iterdir())
    assert [p.name for p in killed.parent.iterdir()] == ["killed"]  # nothing hidden beside --out


def _tiny_run_setup(eval_every=None):
    """A tiny model, data, terms and settings, built as a run builds them."""
    from hqf.learn.run_data import load_data
    from hqf.learn.training.model import build_model
    from hqf.learn.training.settings import TrainSettings
    from hqf.learn.training.terms import build_terms

    config = RunConfig.from_dict({**TINY, "eval_every": eval_every, "epochs": 2, "curvature_every": 3})
    data = load_data(config)
    model = build_model(config, data.n_features, data.n_classes)
    terms = build_terms(config, model)
    tensors = (
        torch.as_tensor(data.train.x),
        torch.as_tensor(data.train.y),
        torch.as_tensor(data.val.x),
        torch.as_tensor(data.val.y),
    )
    return model, tensors, terms, TrainSettings.from_config(config)


@pytest.mark.parametrize("eval_every", [None, 3])
def test_training_continues_bit_for_bit_from_every_saved_state(eval_every, one_thread):
    from hqf.learn.training.checkpointing import Checkpointing
    from hqf.learn.training.loop import train

    states = []

    def save(state):  # what a checkpoint file holds: through torch.save and torch.load(weights_only=True)
        buffer = __import__("io").BytesIO()
        torch.save({**state, "rng": ckpt.rng_state(ckpt.generators_of(t.regularizer for t in terms))}, buffer)
        buffer.seek(0)
        states.append(torch.load(buffer, weights_only=True))

    model, tensors, terms, settings = _tiny_run_setup(eval_every)
    whole = train(model, *tensors, terms, settings, checkpointing=Checkpointing(save, every=1))
    assert len(states) > whole.steps  # every iteration, and the ends of the epochs
    boundary = next(s for s in states if s["order"] is None and s["epoch"] == 2)  # between the epochs
    for state in (states[3], boundary, states[-1]):
        model, tensors, terms, settings = _tiny_run_setup(eval_every)
        ckpt.restore_rng(state["rng"], ckpt.generators_of(t.regularizer for t in terms))
        again = train(model, *tensors, terms, settings, checkpointing=Checkpointing(lambda s: None, resume=state))
        assert again.curves.keys() == whole.curves.keys()
        for column in whole.curves:
            if column != "wall_time_s":
                assert np.array_equal(again.curves[column], whole.curves[column], equal_nan=True), (
                    state["step"],
                    column,
                )
        strip = lambda rows: [{k: v for k, v in r.items() if "time" not in k} for r in rows]  # noqa: E731
        assert strip(again.evals) == strip(whole.evals)
        assert (again.stop_reason, again.steps, again.epochs_completed) == (
            whole.stop_reason,
            whole.steps,
            whole.epochs_completed,
        )


def test_checkpoint_files_are_written_atomically_and_read_without_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    ckpt.save(path, {"step": 1, "weights": torch.ones(3)})
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))

    def broken(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(path, {"step": 2})
    monkeypatch.undo()
    assert ckpt.load(path)["step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    ckpt.save(path, {"step": 3})
    assert ckpt.load(path)["step"] == 3

    class Payload:  # what a malicious checkpoint would carry: an object whose unpickling runs code
        def __reduce__(self):
            return (os.system, ("echo owned",))

    torch.save({"format": ckpt.FORMAT, "payload": Payload()}, path)
    with pytest.raises(ConfigError, match="not a readable hqf checkpoint"):
        ckpt.load(path)


def test_every_torch_load_in_hqf_reads_weights_only():
    calls = []
    for folder in ("core", "backends", "plugins"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "attr", None) == "load"
                    and getattr(node.func.value, "id", None) == "torch"
                ):
                    weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                    calls.append(
                        (
                            path.name,
                            node.lineno,
                            bool(weights_only) and getattr(weights_only[0].value, "value", None) is True,
                        )
                    )
    assert calls and all(ok for *_, ok in calls), calls


def test_ctrl_c_exits_130_keeps_a_checkpoint_and_says_where(tmp_path):
    config = _toml(tmp_path / "long.toml", {**TINY, "epochs": 400, "checkpoint_every": 1})
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hqf.cli import main; main()",
            "run",
            "--config",
            str(config),
            "--out",
            str(out),
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD,
    )
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Interrupted: interrupted by SIGINT at iteration" in lines[0]
    assert f"hqf run --resume {out}" in lines[0] and "Traceback" not in stderr
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == "SIGINT" and status["step"] >= 1
    assert ckpt.load(out / "checkpoint.pt")["step"] == status["step"] and not (out / "lock").exists()


def test_stop_signals_set_a_flag_and_a_second_ctrl_c_stops_at_once():
    previous = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is previous


def test_resume_continues_only_what_it_can(tmp_path):
    config = RunConfig.from_dict({**TINY, "epochs": 1})
    done = tmp_path / "done"
    run(config, done)
    invoke = lambda *a: CliRunner().invoke(main, ["run", "--quiet", *a])  # noqa: E731
    result = invoke("--resume", str(done))
    assert result.exit_code == 2 and "holds a finished run" in result.output
    result = invoke("--resume", str(done), "--epochs", "2", "--set", "lr=0.1")
    assert result.exit_code == 2 and "cannot be combined with --set, --epochs" in result.output
    # an interrupted run: a fresh run never writes into it, and points to --resume
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.toml").write_text(config.to_toml())
    ckpt.save(half / "checkpoint.pt", {"step": 1})
    result = invoke("--config", str(half / "config.toml"), "--out", str(half))
    assert result.exit_code == 2 and f"hqf run --resume {half}" in result.output
    # held by a live process (pid 1 always exists) on this host: refused, never run twice at once
    (half / "lock").write_text(json.dumps({"pid": 1, "host": lock.Holder.me().host, "start": None}))
    result = invoke("--resume", str(half))
    assert result.exit_code == 2 and "is in use by pid 1" in result.output
    # a failed run is not resumed
    (half / "lock").unlink()
    (half / "status.json").write_text(json.dumps({"status": "failed", "reason": "the loss became NaN"}))
    result = invoke("--resume", str(half))
    assert result.exit_code == 2 and "holds a failed run (the loss became NaN)" in result.output


def test_out_under_a_file_is_refused_before_any_work(tmp_path, monkeypatch):
    import hqf.learn.run_data

    monkeypatch.setattr(hqf.learn.run_data, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    (tmp_path / "a").write_text("a file")
    result = CliRunner().invoke(main, ["run", "--quiet", "--out", str(tmp_path / "a" / "b")])
    assert result.exit_code == 2 and f"{tmp_path / 'a'} exists and is not a directory" in result.output
    with pytest.raises(ConfigError, match="is not a directory"):
        run(RunConfig(), tmp_path / "a" / "b")


def test_a_run_lock_is_exclusive_reentrant_and_taken_over_when_stale(tmp_path):
    first = lock.claim(tmp_path)
    assert first.created and lock.holder(tmp_path).is_me()
    again = lock.claim(tmp_path)  # the same process: no second claim, and its release keeps the first
    again.release()
    assert (tmp_path / "lock").exists()
    first.release()
    assert not (tmp_path / "lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = lock.Holder.me().host
    (tmp_path / "lock").write_text(json.dumps({"pid": int(dead.stdout), "host": host, "start": None}))
    assert lock.holder(tmp_path) is None  # its process is gone: stale
    with lock.claim(tmp_path) as taken:
        assert taken.created and lock.holder(tmp_path).is_me()
    (tmp_path / "lock").write_text(json.dumps({"pid": 1, "host": host, "start": None}))
    with pytest.raises(RunDirInUseError, match="in use by pid 1"):
        lock.claim(tmp_path)
    (tmp_path / "lock").write_text(json.dumps({"pid": 1, "host": "another-host", "start": None}))
    with pytest.raises(RunDirInUseError, match="pid 1 on another-host"):
        lock.claim(tmp_path)  # another host's claim cannot be checked: left alone


class _NaNBackend(Backend):
    """Returns NaN of the right shape (a broken simulator)."""

    name = "nan-sim"

    def expval(self, circuit, angles):
        return torch.full((angles.shape[0], circuit.n_outputs), math.nan, dtype=self.real_dtype)


class _WrongShapeBackend(Backend):
    name = "wrong-shape"

    def expval(self, circuit, angles):
        return torch.zeros(angles.shape[0], circuit.n_outputs + 1, dtype=self.real_dtype)


def test_a_non_finite_loss_fails_the_run(tmp_path, fake_plugins):
    fake_plugins(_NaNBackend)
    out = tmp_path / "nan"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--quiet",
            "--config",
            str(_toml(tmp_path / "c.toml", TINY)),
            "--backend",
            "nan-sim",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "Error: run failed: backend 'nan-sim' broke its contract: expval returned NaN or infinity in output 0 (<Z0>) "
        f"(recorded in {out}/status.json)"
    ]  # the backend's values are checked before they reach the loss (hqf.quantum.outputs)
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "failed" and "NaN" in status["reason"]
    assert not (out / "metrics.json").exists() and not (out / "checkpoint.pt").exists() and not (out / "lock").exists()
    with pytest.raises(RunFailedError):
        run(RunConfig.from_dict({**TINY, "backend": "nan-sim"}), tmp_path / "api")


def test_a_backend_of_the_wrong_shape_is_named_before_training(tmp_path, fake_plugins):
    fake_plugins(_WrongShapeBackend)
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--quiet",
            "--config",
            str(_toml(tmp_path / "c.toml", TINY)),
            "--backend",
            "wrong-shape",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 1  # a broken backend, not a user's mistake
    assert result.output.strip().splitlines() == [
        "Error: backend 'wrong-shape' broke its contract: expval returned shape [2, 3] for 2 rows of 2 observables; "
        "expected [2, 2]"
    ]
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "run"
    metrics = run(RunConfig.from_dict({**TINY, "epochs": 1, "checkpoint_every": 0}), out)
    return out, metrics


def test_the_trained_model_is_kept_and_predicts_as_the_run_did(finished_run):
    import safetensors

    from hqf.learn.data.load import load_dataset
    from hqf.learn.rundir.saved import MODEL, load

    out, metrics = finished_run
    assert sorted(p.name for p in out.iterdir()) == [
        "config.toml", "convergence.png", "curves.csv", "epochs.csv", "meta.json", "metrics.json", MODEL,
    ]  # fmt: skip
    with safetensors.safe_open(str(out / MODEL), framework="pt") as handle:  # the format holds no code
        assert handle.metadata()["format"] == "hqf-model-1" and "scaler.mean" in handle.keys()
    state = torch.get_rng_state()
    trained = load(out)
    assert torch.equal(torch.get_rng_state(), state)  # loading leaves the caller's random state alone
    config = trained.config
    data = load_dataset(config.dataset, samples=config.samples, seed=config.seed)
    raw = load_dataset(config.dataset, samples=config.samples, seed=config.seed, standardize_features=False)
    probs = trained.predict_proba(raw.test.x)  # raw features, z-scored like the training split
    assert np.array_equal(probs, trained.predict_proba(data.test.x, scaled=True))
    assert float(np.mean(probs.argmax(axis=1) == data.test.y)) == metrics["accuracy"]
    other = load(out, backend="torch-dm")  # the same weights on another simulator
    assert other.model.quantum.backend.name == "torch-dm"
    np.testing.assert_allclose(other.predict_proba(raw.test.x), probs, rtol=0, atol=1e-10)


def test_hqf_predict_writes_predictions_and_probabilities(finished_run, tmp_path):
    from hqf.learn.data.load import load_dataset
    from hqf.learn.rundir.saved import load

    out, _ = finished_run
    trained = load(out)
    raw = load_dataset("dataset-a", samples=trained.config.samples, seed=0, standardize_features=False)
    table = tmp_path / "new.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows(raw.test.x[:5].tolist())
    target = tmp_path / "predictions.csv"
    result = CliRunner().invoke(main, ["predict", str(out), "--dataset", str(table), "--out", str(target)])
    assert result.exit_code == 0, result.output
    with open(target, newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = trained.predict_proba(raw.test.x[:5].astype(np.float64))
    assert [r["prediction"] for r in rows] == trained.predict(raw.test.x[:5])
    assert np.array_equal(np.array([[float(r[f"p_{c}"]) for c in trained.class_names] for r in rows]), expected)
    again = CliRunner().invoke(main, ["predict", str(out), "--dataset", str(table), "--out", str(target)])
    assert again.exit_code == 2 and "exists" in again.output  # never overwritten
    own = CliRunner().invoke(main, ["predict", str(out)])  # the run's own test split, with its labels
    assert own.exit_code == 0 and own.output.splitlines()[0].startswith("row,label,prediction,p_0")
    wrong = tmp_path / "narrow.csv"
    wrong.write_text("1,2,3\n4,5,6\n")
    bad = CliRunner().invoke(main, ["predict", str(out), "--dataset", str(wrong)])
    assert bad.exit_code == 2 and "the model takes 128 features; the file has 3 columns" in bad.output


def test_a_run_resumes_only_on_the_data_it_started_on(tmp_path):
    rng = np.random.default_rng(3)
    table = tmp_path / "data.csv"
    rows = [[*rng.normal(size=4).round(3), i % 2] for i in range(60)]
    table.write_text("\n".join(",".join(map(str, row)) for row in rows) + "\n")
    config = RunConfig.from_dict({**TINY, "dataset": str(table), "batch_size": 8, "checkpoint_every": 1})

    def stop_at_3(step, total, row):
        if step == 3:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(config, out, progress=stop_at_3)
    assert json.loads((out / "status.json").read_text())["status"] == "interrupted"
    table.write_text("\n".join(",".join(map(str, row)) for row in rows[::-1]) + "\n")  # other data, same file
    with pytest.raises(ConfigError, match="the data differ from the data the run was started on"):
        run(config, out, resume=True)
    assert ckpt.load(out / "checkpoint.pt")["step"] == 2 and not (out / "lock").exists()
    assert json.loads((out / "status.json").read_text())["status"] == "running"  # still resumable
