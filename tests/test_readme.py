"""README.md is current: its generated tables are what the committed reports give now.

Fails, naming the table, when a report changed (a new committed run, new benchmark or experiment
results) and ``python -m benchmarks.readme`` was not run; the same for reports/experiments.md,
generated from reports/experiments.json.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import readme, results
from benchmarks.common import REPO
from ser import paths

README = REPO / "README.md"
FIX = "run `python -m benchmarks.readme` and commit README.md"


def _block(text: str, begin: str, end: str) -> str:
    """The lines between the ``begin`` and ``end`` lines of ``text``."""
    lines = text.splitlines(keepends=True)
    first, last = readme.marker_lines(lines, README, begin, end)
    return "".join(lines[first + 1 : last])


@pytest.mark.parametrize("name", results.TABLES)
def test_results_table_is_current(name):
    tables, _ = results.current(REPO)
    assert _block(README.read_text(), *results.markers(name)) == tables[name], (
        f"README.md's results table {name!r} is not what {paths.METRICS} and {paths.EXPERIMENTS} give: {FIX}")


def test_experiments_table_is_current():
    _, experiments = results.current(REPO)
    assert (REPO / paths.EXPERIMENTS_TABLE).read_text() == experiments, (
        f"{paths.EXPERIMENTS_TABLE} is not what {paths.EXPERIMENTS} gives: {FIX}")


def test_benchmark_table_is_current():
    table = readme.markdown(readme.rows(REPO / paths.BENCHMARK_DIR))
    assert _block(README.read_text(), readme.BEGIN, readme.END) == table, (
        f"README.md's benchmark table is not what {paths.BENCHMARK_DIR}/*.json give: {FIX}")


def test_the_default_rows_come_from_the_committed_metrics():
    """A committed run redone (reports/metrics.json changed) changes the default's rows, and nothing else."""
    metrics = json.loads((REPO / paths.METRICS).read_text())
    experiments = results.Experiments(json.loads((REPO / paths.EXPERIMENTS).read_text()))
    folds = results.read_rows(REPO / paths.TRAIN_FOLDS)
    before = results.tables(metrics, experiments, folds)
    metrics["accuracy"], metrics["by_corpus"]["tess"]["recall"]["happy"] = 0.12345, 0.5
    after = results.tables(metrics, experiments, folds)
    assert "12.3%" in after["speaker"] and "12.3%" not in before["speaker"]
    assert after["per-corpus"] != before["per-corpus"]
    assert after["corpus"] == before["corpus"] and after["known-voices"] == before["known-voices"]
    assert after["folds"] == before["folds"]


def test_rounding_is_half_up_on_the_reported_decimals():
    assert results.pct(0.5335) == "53.4%" and results.pct(0.3615) == "36.2%" and results.pct(1.0) == "100.0%"
    assert results.dec(0.08) == "0.080" and results.dec(0.2017, 2) == "0.20" and results.pct(None) == ""


def test_an_experiment_the_readme_shows_but_the_report_lacks_fails_naming_it():
    data = json.loads((REPO / paths.EXPERIMENTS).read_text())
    data["experiments"] = [entry for entry in data["experiments"] if entry["name"] != "bigru-text@3corpora"]
    with pytest.raises(SystemExit, match="bigru-text@3corpora"):
        results.tables(json.loads((REPO / paths.METRICS).read_text()), results.Experiments(data),
                       results.read_rows(REPO / paths.TRAIN_FOLDS))


def test_regenerating_rewrites_only_the_tables(tmp_path):
    """``python -m benchmarks.readme`` on a README with stale tables gives back the committed README."""
    copy = tmp_path / "README.md"
    text = README.read_text()
    stale = text
    for name in results.TABLES:
        stale = readme.replace_block(stale, "| stale |\n", *results.markers(name))
    stale = readme.replace_block(stale, "| stale |\n")
    copy.write_text(stale)
    root = tmp_path / "project"
    for path in (paths.METRICS, paths.EXPERIMENTS, paths.TRAIN_FOLDS):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text((REPO / path).read_text())
    copy.write_text(readme.replace_block(copy.read_text(), readme.markdown(readme.rows(REPO / paths.BENCHMARK_DIR))))
    results.write(copy, root)
    assert copy.read_text() == text
    assert (root / paths.EXPERIMENTS_TABLE).read_text() == (REPO / paths.EXPERIMENTS_TABLE).read_text()
