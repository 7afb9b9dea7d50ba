"""The verdict rules of seed 000's full-scale protocol (examples/reproduce/verdict.py) and the tables that
docs/reproducing.md pastes from it."""

from __future__ import annotations

import importlib.util
import math
import pathlib

import numpy as np
import pytest

from hqf.studies.stats import holm

ROOT = pathlib.Path(__file__).resolve().parents[1]
FULL = ROOT / "docs" / "reproducing" / "full"


def _verdict_module():
    spec = importlib.util.spec_from_file_location("verdict", ROOT / "examples" / "reproduce" / "verdict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verdict = _verdict_module()


def _holm_by_definition(p):
    """Reject sequentially: the i-th smallest p is compared with α/(m − i + 1); the adjusted p is the
    smallest α at which the hypothesis is rejected."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = min(1.0, max((m - r) * p[order[r]] for r in range(rank + 1)))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_its_definition_on_random_families(seed):
    p = list(np.random.default_rng(seed).uniform(0, 0.2, size=7))
    assert holm(p) == pytest.approx(_holm_by_definition(p), abs=1e-15)


def test_holm_leaves_undefined_p_values_out_of_the_family():
    # the six defined Dataset A claims of the protocol: macro-F1's 0.027 becomes 3 x 0.027
    adjusted = holm([None, math.nan, 1.0, 1.8e-7, 0.027, 0.038, 3.3e-4, 2.6e-5])
    assert math.isnan(adjusted[0]) and math.isnan(adjusted[1])
    assert adjusted[4] == pytest.approx(3 * 0.027) and adjusted[5] == pytest.approx(3 * 0.027)
    assert adjusted[3] == pytest.approx(6 * 1.8e-7)


@pytest.mark.parametrize(
    ("direction", "effect", "adjusted", "raw", "inside", "expected"),
    [
        (+1, 0.1, 0.01, 0.002, True, "**holds**"),
        (+1, 0.1, 0.01, 0.002, False, "**direction holds, size contradicted**"),
        (-1, 0.1, 0.01, 0.002, False, "**contradicted**"),
        (+1, 0.1, 0.08, 0.027, False, "**not supported at this budget** (p < 0.05 before the Holm correction)"),
        (+1, 0.1, 0.3, 0.1, True, "**not supported at this budget**"),
    ],
)
def test_each_verdict_label(direction, effect, adjusted, raw, inside, expected):
    assert verdict.label(direction, effect, adjusted, raw, inside) == expected


def test_the_surrogate_column_says_yes_only_for_a_significant_gain_in_the_claimed_direction():
    hybrid = {s: 1.0 + 0.1 * s for s in range(5)}
    better = {s: v - 0.5 - 0.01 * s for s, v in hybrid.items()}
    assert verdict.surrogate_cell(hybrid, better, +1).startswith("yes")
    assert verdict.surrogate_cell(hybrid, better, -1).startswith("no")
    assert verdict.surrogate_cell(hybrid, None, +1) == "— (no surrogate row)"


def test_the_noise_claim_holds_only_inside_the_margin():
    clean = {s: 91.0 for s in range(5)}
    small = {s: 91.0 - 0.1 - 0.01 * s for s in range(5)}
    large = {s: 91.0 - 3.0 - 0.01 * s for s in range(5)}
    assert verdict.drop_row("c", clean, small, "x")[-1] == "**holds**"
    assert verdict.drop_row("c", clean, large, "x")[-1] == "**contradicted**"
    assert verdict.drop_row("c", clean, {}, "x")[-1].startswith("**not supported")


@pytest.mark.parametrize(
    ("hybrid", "baseline"), [("full", "adam"), ("full-b", "adam-b"), ("full-transformer", "adam-transformer")]
)
def test_docs_paste_the_verdict_tables_that_the_committed_runs_give(hybrid, baseline):
    table = verdict.verdicts(FULL, hybrid, baseline, noise_trained=FULL.with_name("full-noise"))
    assert table in (ROOT / "docs" / "reproducing.md").read_text()


def test_docs_paste_the_table_of_the_claims_outside_tables_one_to_three():
    import json

    summary = json.loads((ROOT / "docs" / "reproducing" / "claims" / "summary.json").read_text())
    assert verdict.other_claims(summary) in (ROOT / "docs" / "reproducing.md").read_text()


def test_hqf_report_regenerates_the_committed_full_scale_tables_byte_for_byte(tmp_path):
    from click.testing import CliRunner

    from hqf.cli import main

    result = CliRunner().invoke(main, ["report", str(FULL), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    for n in (1, 2, 3, 4):
        for suffix in ("md", "csv"):
            name = f"table{n}.{suffix}"
            assert (tmp_path / "report" / name).read_text() == (FULL / "report" / name).read_text(), name


def test_docs_paste_the_figures_table_that_the_committed_addendum_gives():
    table = verdict.figure_rows(FULL.with_name("full-figures"))
    assert "running" not in table
    assert table in (ROOT / "docs" / "reproducing.md").read_text()
