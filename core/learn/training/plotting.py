"""What every hqf figure shares: a headless pyplot, readable text, and value axes whose ticks read well.

A log axis is used only where the plotted values span at least a decade; over a narrower range a log
axis labels ticks like ``2.42×10⁰``, so such an axis stays linear.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterable

#: font sizes (points) at the saved DPI: legends and ticks legible at a normal reading size
LEGEND_SIZE, TICK_SIZE, LABEL_SIZE = 9, 9, 10
DPI = 110


def pyplot():
    """matplotlib's pyplot on the Agg backend (imported at use: matplotlib takes ~0.5 s to import)."""
    import matplotlib  # noqa: PLC0415 — import cost (see above)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 — after choosing the Agg backend

    return plt


def decades(values: Iterable[float]) -> float:
    """How many decades the positive finite ``values`` span (0 when fewer than two)."""
    positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if len(positive) < 2:
        return 0.0
    return math.log10(max(positive) / min(positive))


def value_axis(ax, values: Iterable[float], label: str) -> None:
    """Label ``ax``'s y axis; log scale with 1-2-5 ticks when ``values`` span a decade or more."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: PLC0415 — matplotlib's import cost

    ax.set_ylabel(label, fontsize=LABEL_SIZE)
    if decades(values) < 1:
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def finish(ax) -> None:
    """Grid, tick and legend sizes shared by every panel."""
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=TICK_SIZE)
    ax.xaxis.label.set_size(LABEL_SIZE)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=LEGEND_SIZE)


def save(fig, path: pathlib.Path) -> None:
    """Lay out, write the PNG, close the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
