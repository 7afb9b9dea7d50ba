"""`hqf scale --bond` on a matrix-product-state backend: the table, exactness at the exact bond, refusals."""

from __future__ import annotations

import csv
import math

import pytest
from click.testing import CliRunner

from hqf.cli import main
from hqf.studies.scale import mps_bytes

TINY = ["--qubits", "4,6", "--layers", "2", "--samples", "8", "--batch-size", "4", "--inits", "6", "--seed", "3"]


def _scale(tmp_path, name, *args):
    out = tmp_path / name
    result = CliRunner().invoke(main, ["scale", *TINY, *args, "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return [list(csv.DictReader(open(out / f))) for f in ("cost.csv", "variance.csv")], out


def test_bond_table_columns_exist_and_are_finite(tmp_path):
    (costs, variances), out = _scale(tmp_path, "mps", "--backend", "torch-mps", "--bond", "2,4")
    assert [(int(r["n_qubits"]), int(r["bond"])) for r in costs] == [(4, 2), (4, 4), (6, 2), (6, 4)]
    for row in costs:
        for key in (
            "forward_ms_per_row",
            "forward_backward_ms_per_row",
            "epoch_seconds",
            "state_bytes",
            "peak_rss_mb",
            "discarded_weight",
            "max_bond",
        ):
            assert math.isfinite(float(row[key])), (key, row)
        assert float(row["forward_ms_per_row"]) > 0 and float(row["peak_rss_mb"]) > 0
        assert 1 <= int(row["max_bond"]) <= int(row["bond"])
    assert len(variances) == 8 and {r["cost"] for r in variances} == {"local", "global"}
    for row in variances:
        assert math.isfinite(float(row["variance"])) and math.isfinite(float(row["discarded_weight"]))
    weight = {(r["n_qubits"], r["bond"]): float(r["discarded_weight"]) for r in costs}
    assert weight["4", "4"] == 0 and weight["6", "2"] > 1e-3  # exact at 2^(n/2), truncated below it
    markdown = (out / "scale.md").read_text()
    assert "| χ |" in markdown and "discarded weight" in markdown and markdown.count("\n| 6 | 2 |") == 2
    assert (out / "scale.png").stat().st_size > 10_000


def test_gradient_variance_at_exact_bond_equals_the_state_vector(tmp_path):
    (_, exact), _ = _scale(tmp_path, "mps", "--backend", "torch-mps", "--bond", "8")  # 2^(6/2): exact at 4 and 6
    (_, reference), _ = _scale(tmp_path, "sv", "--backend", "torch")
    assert len(exact) == len(reference) == 4
    for mps, sv in zip(exact, reference):
        assert (mps["n_qubits"], mps["cost"]) == (sv["n_qubits"], sv["cost"])
        assert float(mps["discarded_weight"]) == 0 and sv["bond"] == ""
        assert float(mps["variance"]) == pytest.approx(float(sv["variance"]), rel=1e-9, abs=1e-14)
        assert float(mps["mean_abs"]) == pytest.approx(float(sv["mean_abs"]), rel=1e-9, abs=1e-14)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bond", "4"], "--bond needs a backend with a bond dimension"),
        (["--backend", "torch-mps", "--bond", "4", "--variance-backend", "torch"], "--variance-backend 'torch'"),
        (["--qubits", "50"], "runs at most 26 qubits"),
        (["--backend", "torch-mps", "--bond", "0"], "positive integers"),
        (["--backend", "torch-mps", "--bond", "4,x"], "comma-separated integers"),
    ],
)
def test_scale_refuses_bad_combinations_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["scale", *args, "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1 and message in result.output, result.output
    assert not (tmp_path / "cost.csv").exists()


def test_mps_bytes_counts_site_tensors_up_to_the_bond():
    # 4 sites, bond 4: bonds 1, 2, 4, 2, 1 -> 2·(1·2 + 2·4 + 4·2 + 2·1) = 40 amplitudes per row
    assert mps_bytes(4, 3, 4, 16) == 3 * 16 * 40
    # bond 2 caps the middle bond: 2·(2 + 4 + 4 + 2) = 24
    assert mps_bytes(4, 1, 2, 16) == 16 * 24
