"""Batch-1 inference latency of the default hybrid model: eager, and as a TorchScript trace (an experiment).

    python benchmarks/latency_traced.py              # one torch thread, 2000 timed calls per figure
    python benchmarks/latency_traced.py --threads 2

``hqf bench --latency`` reports the eager model (what ``hqf run`` measures). Eager PyTorch spends most
of a batch-1 call on per-operator dispatch (~1–2 µs per op, ~100 ops), not arithmetic; a trace runs the
same operators from C++ without the Python around them. With frozen weights the torch backend's
quantum layer is one real matrix product per row, so the trace of the model is a short chain of real
operators. The trace is taken after two eager calls (the backend builds its frozen-weight matrix on the
second) and checked against the eager model on a fresh input before it is timed.

TorchScript (``torch.jit.trace``/``freeze``) is deprecated upstream in favour of ``torch.compile``;
``torch.compile`` of this model failed in torch 2.13 (a Dynamo guard error), so hqf itself does not
ship an export built on either. This script only measures what the trace would give.
"""

from __future__ import annotations

import argparse
import warnings

import torch

from hqf.learn.config import RunConfig
from hqf.learn.process.runtime import tune_process
from hqf.learn.training.model import build_model
from hqf.studies.bench import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_process()
    model = build_model(RunConfig(), 128, 12).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 128, generator=torch.Generator().manual_seed(0))
    fresh = torch.randn(1, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation and tracer warnings
        model(x), model(x)
        traced = torch.jit.freeze(torch.jit.trace(model, x, check_trace=False))
        traced(x), traced(x)
        error = (traced(fresh) - model(fresh)).abs().max().item()
    if error > 1e-5:
        raise SystemExit(f"the trace disagrees with the eager model by {error:.2e}")
    with torch.inference_mode():
        eager = median_seconds(lambda: model(x), args.repeats, 100)
        layer = median_seconds(lambda: model.quantum(model.backbone(x)), args.repeats, 100)
        trace = median_seconds(lambda: traced(x), args.repeats, 100)
    print(
        f"threads {args.threads}: eager model {eager * 1e6:.1f} µs (backbone + quantum layer {layer * 1e6:.1f} µs); "
        f"traced model {trace * 1e6:.1f} µs; trace vs eager max |Δ| {error:.1e}"
    )


if __name__ == "__main__":
    main()
