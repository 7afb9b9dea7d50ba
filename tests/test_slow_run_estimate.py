"""The slow-run estimate (hqf.learn.process.pace.probe) on backends of known cost per call and per row."""

from __future__ import annotations

import pytest
import torch

from hqf.learn.process import pace


def _probe(monkeypatch, seconds, batch=256):
    """``probe`` where a pass over ``rows`` rows takes ``seconds(rows)`` (no circuit runs, no clock is read)."""
    timed: list[int] = []

    def fake_pass(backend, circuit, angles, weights, gradient):
        timed.append(len(angles))
        return seconds(len(angles))

    monkeypatch.setattr(pace, "_pass", fake_pass)
    estimate, rows = pace.probe(None, None, torch.zeros(3, 2), torch.zeros(4), "backprop", batch)
    return estimate, rows, timed


def test_a_batched_backend_is_not_charged_its_call_cost_once_per_row(monkeypatch):
    # torch-mps, hea50x2, one thread: 0.39 s for one row, 10.5 s for 256 (docs/mps.md); most of a pass is
    # paid once per call. One row takes 40% of PROBE_BUDGET_S, but the probe goes on to 16 rows.
    estimate, rows, timed = _probe(monkeypatch, lambda rows: 0.4 + 0.04 * rows)
    assert timed == [1, 1, 2, 4, 8, 16] and rows == 16  # the warm-up, then 1 … 16 rows
    assert estimate == pytest.approx(0.4 + 0.04 * 256)  # 10.6 s, not 256 × 0.44 s = 1.9 min


def test_a_slow_backend_linear_in_the_rows_is_extrapolated_along_its_line(monkeypatch):
    estimate, rows, timed = _probe(monkeypatch, lambda rows: 0.7 * rows)
    assert timed == [1, 1, 2, 4] and rows == 4 and estimate == pytest.approx(0.7 * 256)  # 4.9 s of the 5.6 s budget
    estimate, rows, timed = _probe(monkeypatch, lambda rows: 0.001 * rows)  # fast: timed up to the batch
    assert timed[-1] == 256 and rows == 256 and estimate == pytest.approx(0.256)


def test_the_probe_never_spends_more_than_its_cap(monkeypatch):
    # one row takes 4 s: eight such passes would be 32 s, over PROBE_CAP_S; the second (8 s more) does not fit
    estimate, rows, timed = _probe(monkeypatch, lambda rows: 4.0 * rows)
    assert timed == [1, 1] and rows == 1 and estimate == pytest.approx(4.0 * 256)
