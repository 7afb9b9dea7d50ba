"""Seed statistics against scipy on constructed values; pairing is by seed, not by position."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sps

from hqf.studies.stats import paired, relative_change, summarize


def test_summary_matches_scipy_t_interval():
    values = [0.81, 0.84, 0.79, 0.88, 0.83]
    s = summarize(values)
    low, high = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert s.n == 5
    assert s.mean == pytest.approx(np.mean(values), abs=1e-15)
    assert s.std == pytest.approx(np.std(values, ddof=1), abs=1e-15)
    assert (s.ci_low, s.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert s.format() == "0.83 ± 0.0339"


def test_summary_drops_missing_values_and_handles_small_n():
    assert summarize([1.0, None, math.nan, 3.0]).mean == 2.0
    one = summarize([4.0])
    assert one.n == 1 and one.mean == 4.0 and math.isnan(one.ci_low)
    assert summarize([]).format() == "n/a"


def test_paired_tests_match_scipy():
    rng = np.random.default_rng(3)
    base = rng.normal(0.8, 0.05, size=7)
    cand = base + rng.normal(0.02, 0.01, size=7)
    seeds = list(range(10, 17))
    result = paired(dict(zip(seeds, cand)), dict(zip(seeds, base)))
    t = sps.ttest_rel(cand, base)
    w = sps.wilcoxon(cand, base)
    assert result.n == 7 and result.seeds == tuple(seeds)
    assert result.mean_difference == pytest.approx(np.mean(cand - base), abs=1e-15)
    assert result.t_statistic == pytest.approx(t.statistic, rel=1e-12)
    assert result.t_pvalue == pytest.approx(t.pvalue, rel=1e-12)
    assert result.wilcoxon_statistic == pytest.approx(w.statistic)
    assert result.wilcoxon_pvalue == pytest.approx(w.pvalue, rel=1e-12)


def test_pairing_is_by_seed_not_by_order():
    """Shuffling the insertion order of one side changes nothing; a wrong pairing would."""
    seeds = [3, 1, 4, 5, 9, 2]
    base = {s: 0.5 + 0.1 * s for s in seeds}  # strongly seed-dependent
    cand = {s: base[s] + 0.01 * (i % 3 + 1) for i, s in enumerate(seeds)}
    reference = paired(cand, base)
    shuffled = list(cand.items())
    random.Random(0).shuffle(shuffled)
    assert paired(dict(shuffled), base) == reference
    # the correct pairing: differences are all small and positive
    diffs = np.array([cand[s] - base[s] for s in sorted(seeds)])
    assert reference.t_pvalue == pytest.approx(sps.ttest_rel(diffs, np.zeros_like(diffs)).pvalue)
    # pairing by position after the shuffle would give a different (and wrong) answer
    by_position = sps.ttest_rel([v for _, v in shuffled], [base[s] for s in seeds])
    assert not math.isclose(by_position.pvalue, reference.t_pvalue)


def test_pairing_uses_only_common_seeds():
    result = paired({1: 1.0, 2: 2.0, 3: 3.5, 7: 9.0}, {1: 0.5, 2: 1.0, 3: 2.0, 8: 0.0})
    assert result.seeds == (1, 2, 3) and result.n == 3
    assert result.t_pvalue == pytest.approx(sps.ttest_rel([1.0, 2.0, 3.5], [0.5, 1.0, 2.0]).pvalue)


def test_identical_results_give_undefined_tests():
    result = paired({1: 0.3, 2: 0.4}, {1: 0.3, 2: 0.4})
    assert result.mean_difference == 0 and math.isnan(result.t_pvalue) and math.isnan(result.wilcoxon_pvalue)


def test_relative_change():
    assert relative_change(5530, 8470) == pytest.approx(-0.3471, abs=1e-4)
    assert math.isnan(relative_change(1.0, 0.0))
