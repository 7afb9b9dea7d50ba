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


def evaluations(sweep: pathlib.Path, variants: list[str], rows: int) -> list[tuple[pathlib.Path, str, float]]:
    """The (run, backend, p) evaluations still to do, in run order."""
    manifest = json.loads((sweep / "sweep.json").read_text())
    todo = []
    for entry in manifest["runs"]:
        run = sweep / entry["dir"]
        if entry["variant"] not in variants or not (run / "metrics.json").is_file():
            continue
        for backend, p in LEVELS:
            todo.append((run, backend, p))
    return [(run, b, p) for run, b, p in todo if not target(run, b, p, rows).exists()]


def target(run: pathlib.Path, backend: str, p: float, rows: int) -> pathlib.Path:
    return run / "evaluations" / f"{backend}_p{p:g}_n{rows}.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=pathlib.Path)
    parser.add_argument("--variants", nargs="+", default=["full"])
    parser.add_argument("--rows", type=int, default=1024)
    args = parser.parse_args()
    for run, backend, p in evaluations(args.sweep, args.variants, args.rows):
        out = target(run, backend, p, args.rows)
        out.parent.mkdir(exist_ok=True)
        command = ["hqf", "evaluate", str(run), "--test-samples", str(args.rows), "--out", str(out)]
        if backend != "own":
            command += ["--backend", backend, "--depolarizing", str(p)]
        print(" ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
