"""Sweeps that survive anything: kill -9 mid-way, locks, names that would leave --out, failed runs."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

import hqf.studies.sweep
from hqf.cli import main
from hqf.errors import ConfigError
from hqf.learn.rundir.lock import Holder
from hqf.studies.grid import expand
from hqf.studies.sweep import run_sweep

TINY_BASE = """
[base]
samples = 300
epochs = 2
batch_size = 32
ansatz = "hea2x1"
hidden = 8
latent = 4
vai_samples = 16
latency_repeats = 1
checkpoint_every = 1
"""
#: a sweep of three tiny runs (2 epochs of 7 iterations), two at a time, whose runner logs when each run starts and ends
SWEEP = """
import json, os, sys
from hqf.studies.grid import expand, read_grid
from hqf.studies.sweep import default_runner, run_sweep

def log(**event):
    with open(sys.argv[3], "a") as handle:  # one short append per line: safe across processes
        handle.write(json.dumps({**event, "pid": os.getpid()}) + "\\n")

def runner(config, directory, resume=False):
    log(event="start", dir=str(directory), resume=resume)
    default_runner(config, directory, resume=resume)
    log(event="end", dir=str(directory))

out = sys.argv[2]
run_sweep(expand(read_grid(sys.argv[1]), out), out, jobs=2, runner=runner)
"""


def _events(log: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _alive(pid: int) -> bool:
    """Running (not gone, not an exited zombie nobody reaped yet)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _gone(pids, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def test_a_sweep_killed_mid_way_leaves_no_workers_and_its_rerun_completes_each_run_once(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        "[sweep]\nseeds = [0]\n" + TINY_BASE + "\n[variants]\na = {}\nb = { lr = 0.002 }\nc = { lr = 0.003 }\n"
    )
    script, log, out = tmp_path / "sweep.py", tmp_path / "events.log", tmp_path / "out"
    script.write_text(SWEEP)
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # no spinning threads fighting for a loaded machine
    sweep = subprocess.Popen([sys.executable, str(script), str(grid), str(out), str(log)], env=one_thread)
    deadline = time.monotonic() + 300
    while not list(out.glob("*/seed0/checkpoint.pt")) and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    sweep.kill()  # SIGKILL: the sweep gets no chance to clean up
    sweep.wait()
    workers = {e["pid"] for e in _events(log)}
    assert workers and sweep.pid not in workers
    assert _gone(workers, timeout=60), "workers outlived their sweep"
    first = _events(log)
    assert not any(e["event"] == "end" for e in first)  # killed mid-way: nothing finished yet

    rerun = subprocess.run(
        [sys.executable, str(script), str(grid), str(out), str(log)],
        capture_output=True,
        text=True,
        timeout=600,
        env=one_thread,
    )
    assert rerun.returncode == 0, rerun.stderr
    events = _events(log)
    runs = sorted(str(p) for p in out.glob("*/seed0"))
    assert len(runs) == 3
    for run in runs:
        mine = [e for e in events if e["dir"] == run]
        assert [e["event"] for e in mine].count("end") == 1, mine  # completed exactly once
        starts = [e for e in mine if e["event"] == "start"]
        assert len(starts) <= 2 and all(e["resume"] for e in starts[1:])  # a second start only continues
        steps = [int(line.split(",")[0]) for line in (pathlib.Path(run) / "curves.csv").read_text().splitlines()[1:]]
        assert steps == list(range(1, 15))  # every iteration once: nothing ran twice
        assert sorted(p.name for p in pathlib.Path(run).iterdir()) == [
            "config.toml", "convergence.png", "curves.csv", "epochs.csv", "meta.json", "metrics.json",
            "model.safetensors",
        ]  # fmt: skip
    assert any(
        e["event"] == "start" and e["resume"] for e in events
    )  # an interrupted run continued from its checkpoint
    again = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(out)])
    assert again.exit_code == 0 and "ran 0, skipped 3 finished" in again.output


@pytest.mark.parametrize(
    "name, message",
    [
        ("..", "not a folder name inside --out"),
        (".", "not a folder name inside --out"),
        ("", "not a folder name inside --out"),
        ("   ", "not a folder name inside --out"),
        ("a/b", "not a folder name inside --out"),
        ("/etc", "not a folder name inside --out"),
        ("..\\\\x", "not a folder name inside --out"),
        ("c:x", "not a folder name inside --out"),
    ],
)
def test_variant_names_never_leave_out(tmp_path, name, message):
    grid = tmp_path / "grid.toml"
    grid.write_text(f'[variants]\n"{name}" = {{ epochs = 1 }}\n')
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(victim / "out")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert [p.name for p in victim.iterdir()] == ["keep.txt"] and (tmp_path / "grid.toml").exists()


def test_case_only_duplicates_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="case-insensitive file system: Adam/seed0 and adam/seed0"):
        expand({"variants": {"Adam": {}, "adam": {}}}, tmp_path)
    with pytest.raises(ConfigError, match="share a directory"):
        expand({"variants": {"a b": {}, "a_b": {}}}, tmp_path)  # the same folder after slugging


def _write_fake(config: dict, directory: pathlib.Path) -> None:
    with open(config["log"], "a") as handle:
        handle.write(f"{directory} {os.getpid()}\n")
    (directory / "metrics.json").write_text("{}")


def test_a_run_held_by_a_live_process_is_waited_for_never_run_twice(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    runs = expand({"sweep": {"seeds": [0, 1]}, "base": {"log": str(log)}}, tmp_path / "out")
    held = runs[0].directory
    held.mkdir(parents=True)
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (held / "lock").write_text(json.dumps({"pid": owner.pid, "host": Holder.me().host, "start": None}))
    monkeypatch.setattr(hqf.studies.sweep, "WAIT_S", 0.1)
    said = []
    threading.Timer(1.0, lambda: (owner.kill(), owner.wait())).start()  # it ends, leaving its lock: stale
    result = run_sweep(runs, tmp_path / "out", runner=_write_fake, notify=said.append)
    owner.wait()
    assert said == [f"waiting for {held}: in use by pid {owner.pid} on {Holder.me().host}"]
    assert sorted(line.split()[0] for line in log.read_text().splitlines()) == sorted(str(r.directory) for r in runs)
    assert len(result.ran) == 2 and not (held / "lock").exists()


def test_a_run_held_from_another_host_is_left_alone(tmp_path):
    log = tmp_path / "calls.log"
    runs = expand({"sweep": {"seeds": [0]}, "base": {"log": str(log)}}, tmp_path / "out")
    runs[0].directory.mkdir(parents=True)
    (runs[0].directory / "lock").write_text(json.dumps({"pid": 4242, "host": "elsewhere", "start": None}))
    result = run_sweep(runs, tmp_path / "out", runner=_write_fake)
    assert result.ran == () and result.busy == ((runs[0].directory, "claimed by pid 4242 on elsewhere"),)
    assert not log.exists()


def test_the_worker_pool_stops_its_workers_when_the_sweep_stops(monkeypatch):
    from hqf.studies import workers

    monkeypatch.setattr(workers, "GRACE_S", 5.0)

    def done(task, result):
        raise KeyboardInterrupt  # Ctrl-C in the sweep while its workers run

    def slow(seconds):
        time.sleep(seconds)
        return seconds

    before = set(_children())
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        workers.run_pool([(0.1,), (60,), (60,)], 3, slow, done)
    assert set(_children()) <= before and time.monotonic() - began < 30  # none left running, none waited for


def _children() -> list[int]:
    path = pathlib.Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_a_variant_name_too_long_for_a_folder_is_refused_before_anything_is_written(tmp_path):
    name = "v" * 300
    grid = tmp_path / "grid.toml"
    grid.write_text(f"[variants]\n{name} = {{ epochs = 1 }}\n")
    result = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output == (
        f"Error: variant '{'v' * 37}...': folder name '{'v' * 37}...' is 300 bytes, over the 255 a file system allows; "
        "shorten the variant name or axis value\n"
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match=r"folder name 'x=__aaaa.*' is 406 bytes"):
        expand({"axes": {"x": [["a" * 400]]}}, tmp_path / "out")  # an axis value's folder likewise
    with pytest.raises(ConfigError, match=r"run directory path is \d+ characters, over 4000"):
        expand({"axes": {f"k{i}": ["v" * 200] for i in range(25)}}, tmp_path / "out")
