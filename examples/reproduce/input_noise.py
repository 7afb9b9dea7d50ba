"""Table III's "accuracy under 2% noise" for every optimizer, read as Gaussian input noise (docs/reproducing.md).

    python examples/reproduce/input_noise.py docs/reproducing/full [--variants adam full ...] [--sigma 0.02]

Table III of seed 000 gives accuracy under 2% and 5% noise for Adam, RMSProp and BO too, models without a
circuit, so its noise is on the inputs. Every run already measured σ = 0.05 (its metrics.json); this adds
σ (default 0.02) on the whole test split with `hqf evaluate --input-noise`, one file per run,
RUN/evaluations/input_noise<σ>.json; an existing file is kept, so the script resumes where it stopped.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from gate_noise import evaluate_each, finished_runs  # the same folder

VARIANTS = ["adam", "full", "rmsprop", "bo", "classical-surrogate"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=pathlib.Path)
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    parser.add_argument("--sigma", type=float, default=0.02)
    args = parser.parse_args()
    runs = finished_runs(args.sweep, args.variants)
    name = f"input_noise{args.sigma:g}.json"
    return evaluate_each([(run, run / "evaluations" / name, ["--input-noise", str(args.sigma)]) for run in runs])


if __name__ == "__main__":
    sys.exit(main())
