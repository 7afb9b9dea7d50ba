"""Copy the finished runs of a sweep into a folder small enough to commit, for `hqf report`.

    python examples/reproduce/collect.py runs/seed000-full docs/reproducing/full

For every finished run (a metrics.json) it copies metrics.json, config.toml, meta.json, epochs.csv
(the validation rows), model.safetensors (the trained weights: `hqf evaluate` and `hqf predict` read
it), search.json (BO and ES rows) and evaluations/*.json (gate-noise evaluations), and curves.csv
down-sampled to every 10th iteration (plus the first and the last). The sweep's sweep.json is
copied as it is: `hqf report` skips the runs it lists that have not finished. Running it again
updates what changed; nothing outside the destination is written.
"""

from __future__ import annotations

import csv
import pathlib
import shutil
import sys

KEPT = ("metrics.json", "config.toml", "meta.json", "epochs.csv", "model.safetensors", "search.json")
EVERY = 10


def downsample_curves(source: pathlib.Path, target: pathlib.Path, every: int = EVERY) -> int:
    """Write the header, the first row, every ``every``-th step and the last row; return the rows kept."""
    with open(source, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    step = header.index("step")
    kept = [r for i, r in enumerate(body) if i == 0 or i == len(body) - 1 or int(r[step]) % every == 0]
    with open(target, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *kept])
    return len(kept)


def collect(sweep: pathlib.Path, destination: pathlib.Path) -> list[pathlib.Path]:
    """Copy every finished run under ``sweep`` into ``destination``; return the runs copied."""
    if not (sweep / "sweep.json").is_file():
        raise SystemExit(f"error: {sweep} has no sweep.json (give the folder `hqf sweep --out` wrote)")
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy2(sweep / "sweep.json", destination / "sweep.json")
    copied = []
    for metrics in sorted(sweep.rglob("metrics.json")):
        run = metrics.parent
        if "trials" in run.relative_to(sweep).parts:  # a search's trials: the selected one is the run itself
            continue
        target = destination / run.relative_to(sweep)
        target.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            if (run / name).is_file():
                shutil.copy2(run / name, target / name)
        if (run / "curves.csv").is_file():
            downsample_curves(run / "curves.csv", target / "curves.csv")
        for evaluation in sorted((run / "evaluations").glob("*.json")):
            (target / "evaluations").mkdir(exist_ok=True)
            shutil.copy2(evaluation, target / "evaluations" / evaluation.name)
        copied.append(target)
    return copied


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python examples/reproduce/collect.py SWEEP_FOLDER DESTINATION")
    runs = collect(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
    print(f"{len(runs)} finished runs copied into {sys.argv[2]}")
