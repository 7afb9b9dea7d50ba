"""Seed statistics: mean ± std, t-interval confidence intervals, paired tests matched by seed.

The seed paper's own "Statistical Significance" section asks for ≥ 5 seeds, mean ± standard deviation,
confidence intervals and a paired t-test or Wilcoxon signed-rank test against the Adam baseline. These
functions compute exactly that, with scipy:

- ``std`` is the sample standard deviation (``ddof=1``);
- the 95% interval is ``mean ± t_{0.975, n-1} · std / √n`` (Student's t);
- paired tests compare two variants on the seeds both have, matched by seed value (never by position):
  ``scipy.stats.ttest_rel`` and ``scipy.stats.wilcoxon`` (two-sided) on ``candidate − baseline``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import attrs
import numpy as np
from scipy import stats as sps


@attrs.frozen
class Summary:
    """Mean, sample standard deviation and a t-interval of one metric over seeds."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def format(self, digits: int = 3) -> str:
        """``mean ± std`` (``n/a`` when there are no values)."""
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return f"{self.mean:.{digits}g}"
        return f"{self.mean:.{digits}g} ± {self.std:.{digits}g}"


def summarize(values, confidence: float = 0.95) -> Summary:
    """:class:`Summary` of the finite values; the interval is NaN with fewer than two of them."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@attrs.frozen
class PairedTest:
    """Paired comparison of a candidate with a baseline over the seeds both have."""

    n: int
    seeds: tuple[int, ...]
    mean_difference: float  # mean of candidate − baseline
    t_statistic: float
    t_pvalue: float
    wilcoxon_statistic: float
    wilcoxon_pvalue: float


def paired(candidate: Mapping[int, float], baseline: Mapping[int, float]) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of ``candidate`` against ``baseline``, by seed.

    Both map seed → metric value; only seeds present (and finite) in both take part, matched by seed.
    p-values are NaN when a test is undefined (fewer than two pairs, or all differences zero).
    """
    seeds = tuple(
        sorted(
            s
            for s in set(candidate) & set(baseline)
            if candidate[s] is not None
            and baseline[s] is not None
            and math.isfinite(candidate[s])
            and math.isfinite(baseline[s])
        )
    )
    a = np.asarray([candidate[s] for s in seeds], dtype=float)
    b = np.asarray([baseline[s] for s in seeds], dtype=float)
    n = len(seeds)
    nan = math.nan
    if n < 2:
        return PairedTest(n, seeds, float((a - b).mean()) if n else nan, nan, nan, nan, nan)
    diff = a - b
    t_stat, t_p = nan, nan
    if np.any(diff != 0):
        with warnings.catch_warnings():  # scipy warns on (nearly) constant differences
            warnings.simplefilter("ignore", RuntimeWarning)
            t = sps.ttest_rel(a, b)
        t_stat, t_p = float(t.statistic), float(t.pvalue)
    w_stat, w_p = nan, nan
    if np.any(diff != 0):
        w = sps.wilcoxon(a, b)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    return PairedTest(n, seeds, float(diff.mean()), t_stat, t_p, w_stat, w_p)


def relative_change(candidate: float, baseline: float) -> float:
    """``(candidate − baseline) / |baseline|`` (NaN when the baseline is 0 or not finite)."""
    if not (math.isfinite(candidate) and math.isfinite(baseline)) or baseline == 0:
        return math.nan
    return (candidate - baseline) / abs(baseline)


def holm(pvalues) -> list[float]:
    """Holm–Bonferroni adjusted p-values of one family of tests, in the given order.

    The i-th smallest of m p-values is multiplied by ``m − i + 1`` (i from 1), made monotone by a running
    maximum and capped at 1; NaN p-values are left out of the family and stay NaN. Rejecting where the
    adjusted p is below α controls the family-wise error rate at α (Holm 1979).
    """
    p = np.asarray([math.nan if v is None else float(v) for v in pvalues], dtype=float)
    defined = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(p.shape, math.nan)
    running = 0.0
    for rank, index in enumerate(defined[np.argsort(p[defined], kind="stable")]):
        running = max(running, min(1.0, (defined.size - rank) * p[index]))
        adjusted[index] = running
    return [float(x) for x in adjusted]
