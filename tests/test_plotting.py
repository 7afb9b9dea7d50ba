"""The shared figure helpers: log axes only over a decade or more, and their ticks read as plain numbers."""

from __future__ import annotations

import pytest

from hqf.learn.training.plotting import decades, pyplot, value_axis


@pytest.mark.parametrize(
    ("values", "expected"),
    [([2.0, 2.0], 0.0), ([1.0, 10.0], 1.0), ([0.01, 0.1, 10.0], 3.0), ([5.0], 0.0), ([-1.0, 0.0, 3.0], 0.0)],
)
def test_decades(values, expected):
    assert decades(values) == pytest.approx(expected, abs=1e-3 if expected == 0 else 1e-12)


def test_a_narrow_range_keeps_a_linear_axis_and_a_wide_one_gets_readable_log_ticks():
    plt = pyplot()
    fig, (narrow, wide) = plt.subplots(1, 2)
    narrow.plot([1, 2, 3], [2.42, 2.5, 2.45])
    value_axis(narrow, [2.42, 2.5, 2.45], "loss")
    wide.plot([1, 2, 3], [1.0, 30.0, 200.0])
    value_axis(wide, [1.0, 30.0, 200.0], "count")
    fig.canvas.draw()
    assert narrow.get_yscale() == "linear" and narrow.get_ylabel() == "loss"
    assert wide.get_yscale() == "log"
    labels = [t.get_text() for t in wide.get_yticklabels() if t.get_text()]
    assert {"1", "2", "5", "10", "20", "50", "100", "200"} <= set(labels), labels
    plt.close(fig)
