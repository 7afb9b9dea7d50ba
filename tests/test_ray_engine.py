"""``hqf sweep --engine ray``: a real two-node Ray cluster on this machine (loopback only, no dashboard)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

# read when Ray is imported: every address Ray picks for this machine is then 127.0.0.1
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")

from click.testing import CliRunner  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from hqf.cli import main  # noqa: E402
from hqf.errors import ConfigError  # noqa: E402
from hqf.learn.experiment import TIMING_KEYS  # noqa: E402
from hqf.studies.grid import expand  # noqa: E402
from hqf.studies.ray_engine import connect, ray_dispatch, task_resources  # noqa: E402
from hqf.studies.sweep import default_runner, run_sweep  # noqa: E402

# the runner below travels to the Ray workers by value (they cannot import this test module)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LOOPBACK = "127.0.0.1"
TINY = {
    "samples": 300,
    "epochs": 2,
    "batch_size": 32,
    "ansatz": "hea2x1",
    "hidden": 8,
    "latent": 4,
    "vai_samples": 16,
    "latency_repeats": 1,
    "checkpoint_every": 1,
}
GRID = {"sweep": {"seeds": [0]}, "base": TINY, "variants": {"a": {}, "b": {"lr": 0.003}}}
#: where the logging runner appends its events (set per test, read in the Ray workers)
EVENTS = "HQF_TEST_RAY_EVENTS"


def logging_runner(config: dict, directory: pathlib.Path, resume: bool = False):
    """:func:`default_runner`, logging when each run starts and ends (one short append per line)."""
    log = os.environ[EVENTS]

    def note(event: str) -> None:
        with open(log, "a") as handle:
            handle.write(
                json.dumps(
                    {"event": event, "dir": str(directory), "resume": resume, "pid": os.getpid(), "time": time.time()}
                )
                + "\n"
            )

    note("start")
    result = default_runner(config, directory, resume=resume)
    note("end")
    return result


def local_sweep(out: pathlib.Path) -> None:
    """``hqf sweep GRID --jobs 1`` (the local engine) with the threads of a Ray task of one CPU (Ray starts
    its workers with OMP_NUM_THREADS=1, which torch's kernels read at start)."""
    grid = out.parent / "grid.toml"
    grid.write_text(
        "[sweep]\nseeds = [0]\n[base]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items())
        + "[variants]\na = {}\nb = { lr = 0.003 }\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "hqf", "sweep", str(grid), "--out", str(out), "--jobs", "1"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "ran 2, skipped 0 finished, 0 failed" in done.stdout, done.stdout + done.stderr


def _events(log: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _metrics(out: pathlib.Path) -> dict[str, dict]:
    found = {}
    for path in sorted(out.glob("*/seed*/metrics.json")):
        metrics = json.loads(path.read_text())
        found[str(path.parent.relative_to(out))] = {k: v for k, v in metrics.items() if k not in TIMING_KEYS}
    return found


@pytest.fixture
def loopback_cluster(tmp_path, monkeypatch):
    """A head node and a second node, one CPU each, every address 127.0.0.1; the runs' event log."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv(EVENTS, str(tmp_path / "events.log"))
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, "node_ip_address": LOOPBACK}
    )
    second = cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    try:
        yield cluster, second, tmp_path / "events.log"
    finally:
        cluster.shutdown()


def _assert_each_ran_once(events: list[dict], runs) -> None:
    for spec in runs:
        mine = [e["event"] for e in sorted(events, key=lambda e: e["time"]) if e["dir"] == str(spec.directory)]
        assert mine == ["start", "end"], mine


def test_a_grid_on_a_two_node_cluster_runs_each_configuration_once_and_matches_the_local_engine(
    tmp_path, loopback_cluster
):
    cluster, _, log = loopback_cluster
    runs = expand(GRID, tmp_path / "ray")
    with connect(cluster.address, cpus=2):
        result = run_sweep(runs, tmp_path / "ray", runner=logging_runner, dispatch=ray_dispatch())
        assert len(result.ran) == 2 and not result.failed and not result.skipped
        _assert_each_ran_once(_events(log), runs)
        assert len({e["pid"] for e in _events(log)}) == 2  # one run on each node's worker
        again = run_sweep(runs, tmp_path / "ray", runner=logging_runner, dispatch=ray_dispatch())
    assert len(again.skipped) == 2 and not again.ran  # finished runs are skipped

    local_sweep(tmp_path / "local")
    assert _metrics(tmp_path / "ray") == _metrics(tmp_path / "local") and len(_metrics(tmp_path / "local")) == 2


@pytest.mark.slow
def test_without_a_shared_file_system_the_driver_writes_the_runs(tmp_path, loopback_cluster):
    cluster, _, log = loopback_cluster
    grid = GRID
    runs = expand(grid, tmp_path / "driver")
    with connect(cluster.address, cpus=2):
        result = run_sweep(runs, tmp_path / "driver", runner=logging_runner, dispatch=ray_dispatch(shared_fs=False))
    assert len(result.ran) == 2 and not result.failed
    assert all(not e["dir"].startswith(str(tmp_path)) for e in _events(log))  # the tasks ran in copies
    for spec in runs:
        assert sorted(p.name for p in spec.directory.iterdir()) == [
            "config.toml", "convergence.png", "curves.csv", "epochs.csv", "meta.json", "metrics.json",
            "model.safetensors",
        ]  # fmt: skip
    local_sweep(tmp_path / "local")
    assert _metrics(tmp_path / "driver") == _metrics(tmp_path / "local")


@pytest.mark.slow
def test_killing_a_worker_node_mid_sweep_still_completes_every_configuration(tmp_path, loopback_cluster):
    cluster, _, log = loopback_cluster
    cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)  # somewhere for the lost node's runs to go
    grid = {**GRID, "sweep": {"seeds": [0, 1]}, "base": {**TINY, "epochs": 6}}
    runs = expand(grid, tmp_path / "out")
    killed = []

    def kill_a_node_once_a_run_checkpointed() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for node in list(cluster.worker_nodes):
                pids = {p.process.pid for p in node.all_processes.get("raylet", [])}
                started = [e for e in _events(log) if e["event"] == "start"]
                if started and list((tmp_path / "out").glob("*/seed*/checkpoint.pt")):
                    cluster.remove_node(node, allow_graceful=False)
                    killed.append(pids)
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_a_node_once_a_run_checkpointed, daemon=True)
    killer.start()
    with connect(cluster.address, cpus=3):
        result = run_sweep(runs, tmp_path / "out", runner=logging_runner, dispatch=ray_dispatch())
    killer.join(timeout=5)
    assert killed, "no node was killed"
    assert not result.failed and all((spec.directory / "metrics.json").exists() for spec in runs)
    events = _events(log)
    for spec in runs:  # completed once; a run lost with its node started again (resumed where it had a checkpoint)
        mine = [e for e in events if e["dir"] == str(spec.directory)]
        assert [e["event"] for e in mine].count("end") == 1 and mine[-1]["event"] == "end", mine
        steps = [int(line.split(",")[0]) for line in (spec.directory / "curves.csv").read_text().splitlines()[1:]]
        total = json.loads((spec.directory / "metrics.json").read_text())["steps"]
        assert steps == list(range(1, total + 1))  # every iteration once
    assert any([e["event"] for e in events if e["dir"] == str(spec.directory)].count("start") == 2 for spec in runs)


@pytest.mark.slow
def test_the_cli_runs_a_grid_on_a_local_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    grid = tmp_path / "grid.toml"
    grid.write_text(
        "[sweep]\nseeds = [0]\n[base]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items())
        + "[variants]\na = {}\nb = { lr = 0.003 }\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(out), "--engine", "ray", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert (
        "on Ray, a local cluster of 2 CPUs" in result.output and "ran 2, skipped 0 finished, 0 failed" in result.output
    )
    assert len(_metrics(out)) == 2


def test_ray_options_are_checked(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text("[base]\nepochs = 1\n")
    wrong = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(tmp_path / "o"), "--address", "127.0.0.1:1"])
    assert wrong.exit_code == 2 and "go with --engine ray" in wrong.output
    assert task_resources({"device": "cuda:1"}, 2) == {"num_cpus": 2, "num_gpus": 1}
    assert task_resources({}) == {"num_cpus": 1, "num_gpus": 0}
    with pytest.raises(ConfigError, match="'cpus_per_run' must be an integer >= 1"):
        ray_dispatch(cpus_per_run=0)


@pytest.mark.slow
def test_ctrl_c_cancels_the_tasks_and_each_run_keeps_its_checkpoint(tmp_path):
    grid = tmp_path / "grid.toml"
    values = {**TINY, "epochs": 40}
    grid.write_text(
        "[sweep]\nseeds = [0]\n[base]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        + "[variants]\na = {}\nb = { lr = 0.003 }\n"
    )
    out = tmp_path / "out"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "hqf", "sweep", str(grid), "--out", str(out), "--engine", "ray", "--jobs", "2"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("*/seed0/checkpoint.pt"))) < 2 and sweep.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        sweep.send_signal(signal.SIGINT)
        output = sweep.communicate(timeout=120)[0]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130 and "Interrupted." in output, output
    for run in ("a", "b"):
        status = json.loads((out / run / "seed0" / "status.json").read_text())
        assert status["status"] == "interrupted" and (out / run / "seed0" / "checkpoint.pt").exists(), status


def _grid_of_one(tmp_path: pathlib.Path) -> pathlib.Path:
    grid = tmp_path / "grid.toml"
    values = {**TINY, "epochs": 1}
    grid.write_text("[sweep]\nseeds = [0]\n[base]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return grid


def _sweep_cli(*args: str) -> subprocess.CompletedProcess:
    """``hqf sweep`` in a fresh process with no Ray setting of its own in the environment (as a user runs it)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(
        [sys.executable, "-m", "hqf", "sweep", *args],
        env={**environment, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_address_with_nothing_listening_fails_at_once_in_one_line(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on (bound, then closed)
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    done = _sweep_cli(
        str(_grid_of_one(tmp_path)), "--out", str(out), "--engine", "ray", "--address", f"127.0.0.1:{port}"
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: cannot join the Ray cluster at 127.0.0.1:{port}: nothing accepts connections there "
        "(Connection refused); start its head first (ray start --head) or check the address"
    ]
    assert done.stdout.splitlines() == [f"1 runs in {out} (0 finished), on Ray at 127.0.0.1:{port}"]
    assert not out.exists()


@pytest.mark.slow
def test_the_cli_joins_a_loopback_head_with_no_ray_setting_in_its_environment(tmp_path, loopback_cluster):
    cluster, _, _ = loopback_cluster
    assert cluster.address.startswith(f"{LOOPBACK}:")
    out = tmp_path / "out"
    done = _sweep_cli(str(_grid_of_one(tmp_path)), "--out", str(out), "--engine", "ray", "--address", cluster.address)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ran 1, skipped 0 finished, 0 failed" in done.stdout and len(_metrics(out)) == 1
