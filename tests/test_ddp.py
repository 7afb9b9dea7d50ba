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


def _rank_pids(marker: str, rank: int) -> list[int]:
    found = []
    for environ in pathlib.Path("/proc").glob("[0-9]*/environ"):
        try:
            entries = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if f"HQF_TEST_MARK={marker}".encode() in entries and f"RANK={rank}".encode() in entries:
            found.append(int(environ.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_rank_that_dies_fails_the_run_without_hanging(tmp_path):
    marker, out = uuid.uuid4().hex, tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "hqf",
        "run",
        "--config",
        str(_config(tmp_path / "c.toml", epochs=50, checkpoint_every=1)),
        "--out",
        str(out),
        "--ddp",
        "2",
        "--quiet",
    ]
    started = time.monotonic()
    run = subprocess.Popen(
        command, env=_loopback_env(0, HQF_TEST_MARK=marker), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        while not (out / "checkpoint.pt").exists() and run.poll() is None and time.monotonic() - started < 180:
            time.sleep(0.2)
        victims = _rank_pids(marker, 1)
        assert victims, "rank 1 was not found"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        output = run.communicate(timeout=150)[0]
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, output
    assert "the data-parallel run failed" in output
    assert not (out / "metrics.json").exists()
    assert not _rank_pids(marker, 0)  # rank 0 did not outlive the run
