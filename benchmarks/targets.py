"""Check a saved ``hqf bench --json`` against the performance goals in benchmarks/targets.toml.

    hqf bench --peers --threads 1 --repeats 5 --latency --epoch 161 --curvature-every 40 --json > bench.json
    hqf bench --peers --ansatz hea20x6 --threads 1 --json > bench20.json      # large circuits (batch 16)
    hqf bench --noise depolarizing=0.02 --peers --ansatz hea8x6 --threads 1 --json > noise8.json
    python benchmarks/targets.py bench.json bench20.json      # or one file; --targets FILE for others

Prints one line per goal the run measured (its value, the goal, met or MISSED); goals whose rows or
workload the run does not have are listed as not measured. Exit status 1 when a measured goal is missed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import attrs

from hqf.studies.bench import Comparison, Row, ratios

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

TARGETS = pathlib.Path(__file__).resolve().parent / "targets.toml"


@attrs.frozen
class Verdict:
    name: str
    value: float | None  # None: not measured in this run
    goal: str  # e.g. "≥ 20×", "≤ 0.0001"
    met: bool | None

    def __str__(self) -> str:
        if self.met is None:
            return f"{self.name}: not measured"
        shown = f"{self.value:.1f}×" if self.goal.endswith("×") else f"{self.value:.4g}"
        return f"{self.name}: {shown} (goal {self.goal}) {'met' if self.met else 'MISSED'}"


def _workload_matches(goal: dict, run: dict) -> bool:
    return all(run.get("workload", {}).get(key) == value for key, value in goal.get("workload", {}).items())


def _lookup(run: dict, path: str) -> float | None:
    value = run
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def check(run: dict, goals: dict) -> list[Verdict]:
    """Each goal of ``goals`` (targets.toml, parsed) evaluated on ``run`` (``hqf bench --json``, parsed)."""
    rows = [Row(**row) for row in run.get("rows", [])]
    out = []
    for goal in goals.get("ratio", []):
        comparison = Comparison(
            goal["numerator"], goal["denominator"], goal["column"], goal.get("denominator_column", goal["column"])
        )
        measured = ratios(rows, [comparison]) if _workload_matches(goal, run) else []
        value = measured[0].value if measured else None
        met = None if value is None else value >= goal["at_least"]
        out.append(Verdict(goal["name"], value, f"≥ {goal['at_least']:g}×", met))
    for goal in goals.get("limit", []):
        value = _lookup(run, goal["value"]) if _workload_matches(goal, run) else None
        met = None if value is None else value <= goal["at_most"]
        out.append(Verdict(goal["name"], value, f"≤ {goal['at_most']:g}", met))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path, help="files written by hqf bench --json")
    parser.add_argument("--targets", type=pathlib.Path, default=TARGETS, help="goals file (default: %(default)s)")
    args = parser.parse_args(argv)
    goals = tomllib.loads(args.targets.read_text())
    missed = False
    for path in args.runs:
        run = json.loads(path.read_text())
        workload = run.get("workload", {})
        noise = f", noise {workload['noise']}" if "noise" in workload else ""
        threads = run.get("machine", {}).get("threads")
        print(f"{path}: {workload.get('ansatz')}{noise}, batch {workload.get('batch')}, {threads} thread(s)")
        verdicts = check(run, goals)
        for v in verdicts:
            if v.met is not None:
                print(f"  {v}")
        unmeasured = [v.name for v in verdicts if v.met is None]
        if unmeasured:
            print(f"  not measured: {'; '.join(unmeasured)}")
        missed = missed or any(v.met is False for v in verdicts)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
