"""What a user waits for in ``hqf run``: its time under background load, per thread setting, and the
time to its first training step.

``threads``: the same ``hqf run`` (the default run, or ``--iterations N`` of it) on a quiet machine and
under a bounded background load that this script starts and stops itself:

- ``busy``: one process spinning on one core (a plain Python loop);
- ``openmp``: another program's OpenMP threads, one per core (numpy matrix products under
  ``OMP_NUM_THREADS = cores``);

each with ``--threads auto`` (hqf's default) and with ``--threads N`` for N = the usable cores
(torch's own default). A row gives the run's wall time, the median plain and curvature iteration
(from its ``curves.csv``) and the ratio to the quiet run of the same setting. The goal: under
``busy``, ``auto`` takes at most 1.2× its quiet time, and ``auto`` is never slower than one thread.

``startup``: seconds from the command's start to the end of its first training iteration (when the
progress bar first prints), median of ``--repeats`` runs, for the default run and ``--quick``; the
goal is at most 5 s on a quiet machine. Numba's compiled kernels are cached after the first run.

Usage::

    python benchmarks/runtime_bench.py threads [--iterations 400] [--loads busy,openmp] [--settings auto,2,1]
    python benchmarks/runtime_bench.py startup [--repeats 3]

Prints a table and writes ``--json`` when given. Load processes are killed when a measurement ends
(and die by themselves after ``--load-limit`` seconds).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

HQF = [sys.executable, "-c", "from hqf.cli import main; main()"]
#: the goals of issue 21 this script checks
MAX_LOADED_OVER_QUIET = 1.2  # threads=auto under the busy load, against its quiet time
MAX_AUTO_OVER_ONE_THREAD = 1.05  # threads=auto against threads=1 under each load (5%: run-to-run noise)
MAX_CURVATURE_OVER_PLAIN = 4.0  # a curvature iteration against a plain one, threads=auto, quiet
MAX_FIRST_STEP_S = 5.0  # seconds to the first training step of the default run, quiet
LOADS = {
    "busy": "import time\nend = time.time() + {limit}\nwhile time.time() < end: pass",
    "openmp": "import time, numpy as np\na = np.random.rand(600, 600)\nend = time.time() + {limit}\n"
    "while time.time() < end: a @ a",
}


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def start_load(kind: str, limit: float) -> subprocess.Popen | None:
    if kind == "quiet":
        return None
    env = {**os.environ, "OMP_NUM_THREADS": str(cores()), "OPENBLAS_NUM_THREADS": str(cores())}
    proc = subprocess.Popen([sys.executable, "-c", LOADS[kind].format(limit=limit)], env=env)
    time.sleep(1.0)  # let it reach full speed
    return proc


def stop_load(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        proc.kill()
        proc.wait()


def median_steps(curves: pathlib.Path) -> tuple[float, float]:
    """Median seconds of a plain and of a curvature iteration (``curv`` set)."""
    with curves.open() as f:
        rows = list(csv.DictReader(f))
    plain, curv, previous = [], [], 0.0
    for row in rows:
        now = float(row["wall_time_s"])
        (curv if row.get("curv") not in ("", "nan", None) else plain).append(now - previous)
        previous = now
    return (
        statistics.median(plain[1:]) if len(plain) > 1 else math.nan,
        statistics.median(curv[1:]) if len(curv) > 1 else math.nan,
    )


def timed_run(args: list[str], env: dict | None = None) -> tuple[float, tuple[float, float]]:
    """Wall seconds of ``hqf run ARGS`` and its median plain and curvature iterations."""
    with tempfile.TemporaryDirectory(prefix="hqf-bench-") as folder:
        out = pathlib.Path(folder) / "run"
        started = time.perf_counter()
        subprocess.run(
            [*HQF, "run", "--quiet", "--out", str(out), *args], check=True, env=env, stdout=subprocess.DEVNULL
        )
        return time.perf_counter() - started, median_steps(out / "curves.csv")


def threads_table(iterations: int | None, loads: list[str], settings: list[str], limit: float) -> list[dict]:
    base = ["--set", f"max_iterations={iterations}"] if iterations else []
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    rows = []
    for load in ["quiet", *loads]:
        for setting in settings:
            proc = start_load(load, limit)
            try:
                wall, (plain, curv) = timed_run([*base, "--threads", setting], env)
            finally:
                stop_load(proc)
            rows.append(
                {"load": load, "threads": setting, "wall_s": wall, "plain_ms": plain * 1e3, "curvature_ms": curv * 1e3}
            )
            print(
                f"{load:7} threads={setting:4} wall {wall:7.1f} s  plain {plain * 1e3:6.1f} ms  "
                f"curvature {curv * 1e3:6.1f} ms",
                flush=True,
            )
    quiet = {r["threads"]: r["wall_s"] for r in rows if r["load"] == "quiet"}
    for r in rows:
        r["vs_quiet"] = r["wall_s"] / quiet[r["threads"]]
    return rows


def threads_goals(rows: list[dict]) -> list[tuple[str, float, float]]:
    """(goal, value, limit) for every goal the rows measure."""
    by = {(r["load"], r["threads"]): r for r in rows}
    goals = []
    if ("busy", "auto") in by:
        goals.append(
            ("busy load: auto wall time / its quiet time", by["busy", "auto"]["vs_quiet"], MAX_LOADED_OVER_QUIET)
        )
    for load in sorted({r["load"] for r in rows}):
        if (load, "auto") in by and (load, "1") in by:
            goals.append(
                (
                    f"{load}: auto wall time / threads=1",
                    by[load, "auto"]["wall_s"] / by[load, "1"]["wall_s"],
                    MAX_AUTO_OVER_ONE_THREAD,
                )
            )
    if ("quiet", "auto") in by:
        quiet = by["quiet", "auto"]
        goals.append(
            (
                "quiet: curvature iteration / plain iteration",
                quiet["curvature_ms"] / quiet["plain_ms"],
                MAX_CURVATURE_OVER_PLAIN,
            )
        )
    return goals


def print_goals(goals: list[tuple[str, float, float]]) -> None:
    for name, value, limit in goals:
        print(f"goal  {name}: {value:.2f} (at most {limit:g}) {'met' if value <= limit else 'MISSED'}")


def first_step_seconds(args: list[str]) -> float:
    """Seconds from launching ``hqf run ARGS`` to its progress bar's first line."""
    with tempfile.TemporaryDirectory(prefix="hqf-bench-") as folder:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*HQF, "run", "--out", str(pathlib.Path(folder) / "run"), *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        seen, text = None, b""
        while chunk := proc.stderr.read1(4096):
            text += chunk
            if b"training:" in text:
                seen = time.perf_counter() - started
                proc.kill()
                break
        proc.wait()
    if seen is None:
        raise RuntimeError(
            f"no progress bar seen from hqf run {' '.join(args)}:\n{text.decode(errors='replace')[-2000:]}"
        )
    return seen


def startup_table(repeats: int) -> list[dict]:
    rows = []
    for name, args in (("default", []), ("--quick", ["--quick"])):
        first_step_seconds(args)  # numba's cache and the OS file cache warm
        times = [first_step_seconds(args) for _ in range(repeats)]
        rows.append({"run": name, "first_step_s": statistics.median(times), "all_s": times})
        print(
            f"{name:8} time to the first training step: median {statistics.median(times):.2f} s "
            f"of {[round(t, 2) for t in times]}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("threads", "startup"))
    parser.add_argument(
        "--iterations", type=int, help="threads: max_iterations of each run (default: the whole default run)"
    )
    parser.add_argument("--loads", default="busy,openmp", help="threads: comma-separated loads among busy, openmp")
    parser.add_argument("--settings", default=f"auto,{cores()},1", help="threads: comma-separated --threads values")
    parser.add_argument(
        "--load-limit", type=float, default=900.0, help="seconds after which a load process stops by itself"
    )
    parser.add_argument("--repeats", type=int, default=3, help="startup: runs per row")
    parser.add_argument("--json", type=pathlib.Path, help="write the rows here")
    args = parser.parse_args()
    info = {"cores": cores(), "loadavg_before": os.getloadavg()}
    print(f"{info['cores']} usable cores, load average before: {' '.join(f'{x:.2f}' for x in info['loadavg_before'])}")
    if args.mode == "threads":
        rows = threads_table(
            args.iterations, [x for x in args.loads.split(",") if x], args.settings.split(","), args.load_limit
        )
        goals = threads_goals(rows)
    else:
        rows = startup_table(args.repeats)
        goals = [("default run: seconds to the first training step", rows[0]["first_step_s"], MAX_FIRST_STEP_S)]
    print_goals(goals)
    if args.json:
        args.json.write_text(json.dumps({"mode": args.mode, **info, "rows": rows, "goals": goals}, indent=2))


if __name__ == "__main__":
    main()
