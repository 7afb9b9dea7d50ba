"""Data-parallel training (``hqf.learn.process.distributed``): two gloo ranks on 127.0.0.1 against one process."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import pytest
import torch

from hqf.learn.process.distributed import free_port, shard_bounds

#: a float64 model (every layer), its data and K = 6 iterations: batches of 9 rows (shards of 5 and 4),
#: the last batch of 4; curvature every 2nd iteration on the first 6 rows, stability on every batch
SETUP = """
import torch
from hqf.learn.config import RunConfig
from hqf.learn.training.model import build_model
from hqf.learn.training.terms import build_terms
from hqf.learn.training.settings import TrainSettings

# curvature by double backward: its finite-difference method magnifies the rounding of sums in another
# order, so that the ranks' weights would agree to about 1e-6 only (docs/method.md)
CONFIG = RunConfig(ansatz="hea2x1", hidden=8, latent=4, batch_size=9, max_iterations=6, curvature_every=2,
                   curvature_batch=6, seed=3, curvature_method="autograd")
SETTINGS = TrainSettings(batch_size=9, epochs=2, max_iterations=6, seed=3, eps=0.0, delta=0.0)


def setup():
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=generator)
    torch.manual_seed(5)
    model = build_model(CONFIG, 6, 3).double()
    return model, build_terms(CONFIG, model), x, y
"""
RANK = (
    SETUP
    + """
import sys
from hqf.learn.process.distributed import DataParallel, Ranks, adapt_terms, process_group
from hqf.learn.training.loop import train

model, terms, x, y = setup()
initial = {name: value.clone() for name, value in model.state_dict().items()}
if sys.argv[1] == "single":  # the reference: one process, the same global batches
    curves = train(model, x, y, x[:8], y[:8], terms, SETTINGS).curves
    torch.save({"state": model.state_dict(), "curves": curves, "initial": initial}, sys.argv[2])
else:
    ranks = Ranks(int(sys.argv[1]), 2)
    with process_group(ranks, "cpu", timeout_s=60):
        curves = train(DataParallel(model, ranks), x, y, x[:8], y[:8], adapt_terms(terms, ranks), SETTINGS).curves
    if ranks.writes:
        torch.save({"state": model.state_dict(), "curves": curves, "initial": initial}, sys.argv[2])
"""
)


def _loopback_env(port: int, **extra) -> dict:
    return {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def test_shards_are_disjoint_and_cover_the_batch():
    for rows in range(0, 12):
        for world in (1, 2, 3):
            bounds = shard_bounds(rows, world)
            assert bounds[0] == 0 and bounds[-1] == rows and len(bounds) == world + 1
            sizes = [b - a for a, b in zip(bounds, bounds[1:])]
            assert max(sizes) - min(sizes) <= 1 and all(s >= 0 for s in sizes)


def test_two_gloo_ranks_train_the_weights_one_process_trains_on_the_same_global_batches(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    env = _loopback_env(free_port(), WORLD_SIZE="2")
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), mode, str(tmp_path / f"{mode}.pt")],
            env={**env, "RANK": mode},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for mode in ("0", "1", "single")
    ]  # the reference in a process of its own, with the ranks' settings
    outputs = [process.communicate(timeout=240)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert not (tmp_path / "1.pt").exists()  # rank 0 alone writes
    distributed, single = (torch.load(tmp_path / f"{mode}.pt", weights_only=False) for mode in ("0", "single"))
    assert len(single["curves"]["loss"]) == 6 and len(distributed["curves"]["loss"]) == 6
    for name, value in single["state"].items():
        assert value.dtype == torch.float64
        assert torch.allclose(distributed["state"][name], value, rtol=0, atol=1e-10), name
        assert torch.equal(distributed["initial"][name], single["initial"][name]), name
    moved = max(float((value - single["initial"][name]).abs().max()) for name, value in single["state"].items())
    assert moved > 1e-3  # training moved the weights: the comparison is not of two untouched models
    for column in ("loss", "stab", "curv", "grad_norm"):
        ours, theirs = torch.tensor(distributed["curves"][column]), torch.tensor(single["curves"][column])
        assert torch.allclose(ours, theirs, rtol=1e-10, atol=1e-12, equal_nan=True), column
    assert sum(v == v for v in single["curves"]["curv"]) == 3  # the curvature term was part of it (iterations 1, 3, 5)


def _config(path: pathlib.Path, **extra) -> pathlib.Path:
    values = {
        "samples": 400,
        "epochs": 1,
        "batch_size": 16,
        "ansatz": "hea2x1",
        "hidden": 8,
        "latent": 4,
        "vai_samples": 16,
        "latency_repeats": 1,
        "curvature_batch": 8,
        **extra,
    }
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return path


def test_hqf_run_ddp_trains_with_two_ranks_and_rank_zero_alone_writes(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hqf",
            "run",
            "--config",
            str(_config(tmp_path / "c.toml", max_iterations=4)),
            "--out",
            str(out),
            "--ddp",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=_loopback_env(0),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("run directory") == 1  # one results table: rank 0's
    assert sorted(p.name for p in out.iterdir()) == [
        "config.toml", "convergence.png", "curves.csv", "epochs.csv", "meta.json", "metrics.json", "model.safetensors",
    ]  # fmt: skip
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "run"]  # nothing else written beside it


def _rank_pids(marker: str, rank: int | None = None) -> list[int]:
    """The processes whose environment holds ``HQF_TEST_MARK=marker``: rank ``rank``, or all (the launcher too)."""
    found = []
    for environ in pathlib.Path("/proc").glob("[0-9]*/environ"):
        try:
            entries = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if f"HQF_TEST_MARK={marker}".encode() in entries and (rank is None or f"RANK={rank}".encode() in entries):
            found.append(int(environ.parent.name))
    return found


def _listening_addresses(pids: list[int]) -> set[str]:
    """The local addresses of the TCP sockets ``pids`` listen on (Linux ``/proc``)."""
    inodes = set()
    for pid in pids:
        for fd in pathlib.Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in pathlib.Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address = fields[1].split(":")[0]
                if width == 8:
                    address = ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
                addresses.add(address)
    return addresses


def _ddp_run(*args: str, marker: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "hqf", "run", *args, "--ddp", "2", "--quiet"]
    return subprocess.Popen(
        command, env=_loopback_env(0, HQF_TEST_MARK=marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_checkpoint(out: pathlib.Path, run: subprocess.Popen, step: int) -> None:
    deadline = time.monotonic() + 300
    while run.poll() is None and time.monotonic() < deadline:
        try:
            if json.loads((out / "status.json").read_text()).get("step", 0) >= step:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of iteration {step} in {out}: {run.communicate()}")


def _results(out: pathlib.Path) -> tuple[dict, str]:
    from hqf.learn.experiment import TIMING_KEYS

    metrics = json.loads((out / "metrics.json").read_text())
    curves = [line.split(",")[:-1] for line in (out / "curves.csv").read_text().splitlines()]  # wall time last
    header = (out / "curves.csv").read_text().splitlines()[0].split(",")
    assert header[-1] == "wall_time_s", header
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}, curves


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/net/tcp").exists(), reason="finds the ranks and their sockets in /proc")
def test_killing_rank_1_keeps_the_checkpoint_and_the_run_resumes_bit_for_bit_on_loopback(tmp_path):
    config = str(_config(tmp_path / "c.toml", epochs=2, checkpoint_every=1))  # 2 x 18 iterations
    whole, killed, marker = tmp_path / "whole", tmp_path / "killed", uuid.uuid4().hex
    reference = _ddp_run("--config", config, "--out", str(whole), marker=uuid.uuid4().hex)
    run = _ddp_run("--config", config, "--out", str(killed), marker=marker)
    try:
        _wait_for_checkpoint(killed, run, 3)
        assert len(_rank_pids(marker, 0) + _rank_pids(marker, 1)) == 2
        assert _listening_addresses(_rank_pids(marker)) <= {"127.0.0.1"}  # the launcher's and ranks': loopback only
        for pid in _rank_pids(marker, 1):
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=200)
        assert reference.wait(timeout=300) == 0, reference.communicate()
    finally:
        for process in (run, reference):
            if process.poll() is None:
                process.kill()
    status = json.loads((killed / "status.json").read_text())
    assert run.returncode == 1 and stdout == "", stderr
    assert stderr.splitlines() == [
        f"Interrupted: rank 1 of 2 ended by SIGKILL; the run so far is kept in {killed} (checkpoint.pt of "
        f"iteration {status['step']}); continue it with: hqf run --resume {killed} --ddp 2"
    ]
    assert status["status"] == "interrupted" and status["step"] >= 3 and (killed / "checkpoint.pt").exists()
    assert not _rank_pids(marker)  # no rank outlived the run
    resumed = _ddp_run("--resume", str(killed), marker=marker)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert _results(killed) == _results(whole)
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in whole.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_a_killed_launcher_takes_its_ranks_with_it_and_the_run_stays_resumable(tmp_path):
    out, marker = tmp_path / "run", uuid.uuid4().hex
    run = _ddp_run(
        "--config", str(_config(tmp_path / "c.toml", epochs=50, checkpoint_every=1)), "--out", str(out), marker=marker
    )
    try:
        _wait_for_checkpoint(out, run, 2)
        run.kill()  # SIGKILL: the launcher cannot pass anything on
        run.wait(timeout=30)
        deadline = time.monotonic() + 120
        while _rank_pids(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _rank_pids(marker)
    finally:
        if run.poll() is None:
            run.kill()
    from hqf.learn.rundir.state import state_of

    assert state_of(out) == "resumable" and (out / "checkpoint.pt").exists()


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_killing_rank_0_keeps_the_checkpoint_and_marks_the_run_interrupted(tmp_path):
    out, marker = tmp_path / "run", uuid.uuid4().hex
    config = str(_config(tmp_path / "c.toml", epochs=50, checkpoint_every=1))
    run = _ddp_run("--config", config, "--out", str(out), marker=marker)
    try:
        _wait_for_checkpoint(out, run, 2)
        for pid in _rank_pids(marker, 0):
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=200)
    finally:
        if run.poll() is None:
            run.kill()
    status = json.loads((out / "status.json").read_text())
    assert run.returncode == 1 and stdout == "", stderr
    assert stderr.splitlines() == [
        f"Interrupted: rank 0 of 2 ended by SIGKILL; the run so far is kept in {out} (checkpoint.pt of "
        f"iteration {status['step']}); continue it with: hqf run --resume {out} --ddp 2"
    ]
    assert status["status"] == "interrupted" and status["reason"] == "rank 0 of 2 ended by SIGKILL"
    assert ckpt_step(out) == status["step"] >= 2 and not _rank_pids(marker)


def ckpt_step(out: pathlib.Path) -> int:
    from hqf.learn.rundir import checkpoint as ckpt

    return ckpt.load(out / "checkpoint.pt")["step"]
