"""Table III's gate-noise evaluations of the full-scale reproduction (docs/reproducing.md).

    python examples/reproduce/gate_noise.py runs/seed000-full [--variants full] [--rows 1024]

For every finished run of the given variants it runs `hqf evaluate` on the first ROWS test rows:
once on the run's own backend without gate noise, and on the exact density-matrix backend `torch-dm`
under depolarizing noise p = 0.02 and p = 0.05 after every gate. Each result is written to
RUN/evaluations/<backend>_p<p>_n<ROWS>.json, which `hqf report` reads into Table III; an existing
file is kept, so the script resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

LEVELS = (("own", 0.0), ("torch-dm", 0.02), ("torch-dm", 0.05))


def finished_runs(sweep: pathlib.Path, variants: list[str]) -> list[pathlib.Path]:
    """The finished runs of ``variants`` in the sweep's manifest, in run order."""
    manifest = json.loads((sweep / "sweep.json").read_text())
    runs = [(sweep / entry["dir"], entry["variant"]) for entry in manifest["runs"]]
    return [run for run, variant in runs if variant in variants and (run / "metrics.json").is_file()]


def evaluate_each(jobs: list[tuple[pathlib.Path, pathlib.Path, list[str]]]) -> int:
    """``hqf evaluate RUN ARGS --out OUT`` for each (run, out, args) whose OUT does not exist yet; 1 at the
    first failure."""
    for run, out, args in jobs:
        if out.exists():
            continue
        out.parent.mkdir(exist_ok=True)
        command = ["hqf", "evaluate", str(run), *args, "--out", str(out)]
        print(" ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            return 1
    return 0


def evaluations(sweep: pathlib.Path, variants: list[str], rows: int) -> list[tuple[pathlib.Path, str, float]]:
    """The (run, backend, p) evaluations still to do, in run order."""
    todo = [(run, backend, p) for run in finished_runs(sweep, variants) for backend, p in LEVELS]
    return [(run, b, p) for run, b, p in todo if not target(run, b, p, rows).exists()]


def target(run: pathlib.Path, backend: str, p: float, rows: int) -> pathlib.Path:
    return run / "evaluations" / f"{backend}_p{p:g}_n{rows}.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=pathlib.Path)
    parser.add_argument("--variants", nargs="+", default=["full"])
    parser.add_argument("--rows", type=int, default=1024)
    args = parser.parse_args()
    jobs = []
    for run, backend, p in evaluations(args.sweep, args.variants, args.rows):
        extra = [] if backend == "own" else ["--backend", backend, "--depolarizing", str(p)]
        jobs.append((run, target(run, backend, p, args.rows), ["--test-samples", str(args.rows), *extra]))
    return evaluate_each(jobs)


if __name__ == "__main__":
    sys.exit(main())
