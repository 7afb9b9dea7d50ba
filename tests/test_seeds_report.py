"""The committed runs of seeds 001–004 (docs/reproducing/seeds/): `hqf report` on each folder
regenerates its committed tables byte for byte, and docs/seeds.md quotes Table I's cells as they are."""

from __future__ import annotations

import json
import pathlib

import pytest

from hqf.studies.report import make_report

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEEDS = ROOT / "docs" / "reproducing" / "seeds"
STUDIES = ["seed001", "seed002", "seed003", "seed004"]
QUOTED = ("Model", "Accuracy (%)", "Macro-F1", "ECE")


def _rows(table: str) -> list[dict[str, str]]:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_hqf_report_regenerates_the_committed_tables_byte_for_byte(tmp_path, study):
    committed = SEEDS / study / "report"
    make_report([SEEDS / study], tmp_path / "report")
    names = sorted(p.name for p in committed.iterdir() if p.suffix in (".md", ".csv"))
    assert "table1.md" in names and "report.md" in names
    for name in names:
        assert (tmp_path / "report" / name).read_bytes() == (committed / name).read_bytes(), name


@pytest.mark.parametrize("study", STUDIES)
def test_docs_seeds_md_quotes_each_table1_row(study):
    doc = (ROOT / "docs" / "seeds.md").read_text()
    for row in _rows((SEEDS / study / "report" / "table1.md").read_text()):
        line = "| " + " | ".join(row[k] for k in QUOTED) + " |"
        assert line in doc, line


@pytest.mark.parametrize("study", STUDIES)
def test_every_committed_run_trained_with_one_thread(study):
    metas = sorted((SEEDS / study).rglob("meta.json"))
    assert len(metas) >= 10
    for meta in metas:
        assert '"torch_threads": 1,' in meta.read_text(), meta


def test_docs_seeds_md_thread_table_matches_the_committed_runs():
    doc = (ROOT / "docs" / "seeds.md").read_text()
    two = SEEDS / "threads2"
    found = sorted(two.rglob("metrics.json"))
    assert len(found) >= 13
    for metrics in found:
        run = metrics.parent.relative_to(two)
        assert '"torch_threads": 2,' in (metrics.parent / "meta.json").read_text(), run
        r1 = json.loads((SEEDS / run / "metrics.json").read_text())
        r2 = json.loads(metrics.read_text())
        a1, a2 = 100 * r1["accuracy"], 100 * r2["accuracy"]
        study, model = run.parts[0], "/".join(run.parts[1:-1])
        line = f"| {study[4:]} | {model} | {a1:.2f} | {a2:.2f} | {a2 - a1:+.2f} | {r1['ece']:.6f} | {r2['ece']:.6f} |"
        assert line in doc, line
