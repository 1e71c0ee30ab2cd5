"""The index's spread across seeds: runs of a plan step whose grid varies ``seed``, grouped by
everything but the seed, each numeric key figure's mean ± std [min, max]."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from workbench.index import collect_runs, interval_table, seed_table, write_index

pytestmark = pytest.mark.timeout(60)


def plan_entry(runs: Path, labels: dict, figures: dict) -> None:
    """A finished plan entry on disk: batch.json, run.json and summary.json."""
    entry = "train-" + "-".join(f"{k}={v}" for k, v in labels.items())
    folder = runs / "study" / entry
    folder.mkdir(parents=True)
    (folder / "batch.json").write_text(json.dumps({
        "plan": "study", "step": "train", "entry": entry, "labels": labels,
        "submitted": f"2026-01-01T00:00:0{len(list(runs.rglob('batch.json')))}"}))
    (folder / "run.json").write_text(json.dumps({
        "notebook": "03_training", "status": "ok", "duration_s": 1.0,
        "started": "2026-01-01T00:00:00"}))
    (folder / "summary.json").write_text(json.dumps({"key_figures": figures}))


@pytest.fixture
def seeded_runs(tmp_path) -> Path:
    runs = tmp_path / "runs"
    for seed, skill in zip((0, 1, 2), (0.5, 0.6, 0.7), strict=True):
        plan_entry(runs, {"config": "a", "seed": seed},
                   {"skill": skill, "beats_persistence": True, "note": "x"})
    for seed, skill in zip((0, 1, 2), (1.0, 2.0, None), strict=True):
        plan_entry(runs, {"config": "b", "seed": seed},
                   {"skill": skill, "beats_persistence": False})
    return runs


def test_seed_table_gives_mean_std_min_max_per_configuration(seeded_runs):
    header, body = seed_table(collect_runs(seeded_runs))
    assert header == ["configuration", "seeds", "skill"]  # numbers only: no bool, no text
    rows = {row[0]: row[1:] for row in body}
    # a: mean 0.6, sample std sqrt((0.01 + 0 + 0.01) / 2) = 0.1
    assert rows["config=a"] == ["3", "0.6 ± 0.1 [0.5, 0.7]"]
    # b: one run has no value: mean 1.5, std sqrt(0.5) = 0.7071, over n = 2 of 3
    assert rows["config=b"] == ["3", "1.5 ± 0.7071 [1, 2] (n=2)"]


def test_the_index_shows_the_seed_spread_and_only_for_a_seed_grid(seeded_runs, tmp_path):
    runs = collect_runs(seeded_runs)
    for run in runs:
        run["batch"]["labels"].pop("seed")
    assert seed_table(runs) == ([], [])
    page = write_index(seeded_runs, tmp_path / "reports").read_text()
    assert "across seeds" in page
    table = page.split("across seeds")[1]
    assert re.search(r"<td>config=a</td><td>3</td><td>0\.6 ± 0\.1 \[0\.5, 0\.7\]</td>", table)


# --------------------------------------------------------------------------- with intervals

BAND = "boundary_skill_vs_persistence_stretched_24h"


def band_figures(value, low, high) -> dict:
    return {BAND: value, f"{BAND}_ci_low": low, f"{BAND}_ci_high": high, "other": 1.0}


@pytest.fixture
def band_runs(tmp_path) -> Path:
    """Three graphs x three seeds; nbd's seed 2 has no value (a failed scoring)."""
    runs = tmp_path / "runs"
    values = {"mmgt": [0.30, 0.34, 0.32], "fix": [0.50, 0.56, 0.47], "nbd": [0.33, 0.29, None]}
    for config, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            figures = band_figures(value, value - 0.05, value + 0.04) if value is not None else {}
            plan_entry(runs, {"config": config, "seed": seed}, figures)
    return runs


def test_interval_table_gives_mean_std_difference_and_each_runs_interval(band_runs):
    header, body = interval_table(collect_runs(band_runs))
    assert header[:4] == ["key figure", "configuration", "seeds", "mean ± std across seeds"]
    rows = {row[1]: row for row in body}
    assert set(rows) == {"config=mmgt", "config=fix", "config=nbd"}  # "other" has no interval
    assert all(row[0] == BAND for row in body)
    expected = {"config=mmgt": [0.30, 0.34, 0.32], "config=fix": [0.50, 0.56, 0.47],
                "config=nbd": [0.33, 0.29]}
    best = statistics.mean(expected["config=fix"])
    for label, values in expected.items():
        mean, std = statistics.mean(values), statistics.stdev(values)
        row = rows[label]
        assert row[2] == str(len(values))
        assert row[3] == f"{mean:.4g} ± {std:.4g}"
        assert row[4] == f"{mean - best:.4g}"
        for seed, value in enumerate(values):
            assert f"seed={seed}: {value:.4g} [{value - 0.05:.4g}, {value + 0.04:.4g}]" in row[6]
    # fix is best (0.51 ± 0.0458); mmgt: |0.32 - 0.51| = 0.19 > 0.02 + 0.0458: yes; nbd too
    assert [rows[k][5] for k in ("config=fix", "config=mmgt", "config=nbd")] == ["best", "yes",
                                                                                 "yes"]
    assert "seed=2" not in rows["config=nbd"][6]
    # paired by seed against fix: mmgt -0.20, -0.22, -0.15; nbd -0.17, -0.27 (no seed 2)
    assert rows["config=fix"][7] == "best"
    for label, diffs in (("config=mmgt", [-0.20, -0.22, -0.15]), ("config=nbd", [-0.17, -0.27])):
        assert rows[label][7] == (f"{statistics.mean(diffs):.4g} ± {statistics.stdev(diffs):.4g} "
                                  f"(n={len(diffs)}), same sign on every seed")


def test_interval_table_says_no_where_the_spread_covers_the_difference(tmp_path):
    runs = tmp_path / "runs"
    for config, values in {"a": [0.1, 0.5], "b": [0.2, 0.3]}.items():
        for seed, value in enumerate(values):
            plan_entry(runs, {"config": config, "seed": seed}, band_figures(value, 0, 1))
    body = {row[1]: row for row in interval_table(collect_runs(runs))[1]}
    # a: 0.3 ± 0.2828, b: 0.25 ± 0.0707; a is best, |Δ| = 0.05 < 0.3536
    assert body["config=a"][5] == "best" and body["config=b"][5] == "no"
    assert body["config=b"][4] == "-0.05"
    # paired: b - a = +0.1 (seed 0), -0.2 (seed 1): no common sign
    assert body["config=b"][7] == f"-0.05 ± {statistics.stdev([0.1, -0.2]):.4g} (n=2)"


def test_the_index_shows_the_interval_table_only_for_a_seed_grid(band_runs, tmp_path):
    page = write_index(band_runs, tmp_path / "reports").read_text()
    assert "class='intervals'" in page
    table = page.split("class='intervals'")[1].split("</table>")[0]
    assert re.search(r"<td>config=fix</td><td>3</td><td>0\.51 ± 0\.04583</td>", table), table
    runs = collect_runs(band_runs)
    for run in runs:
        run["batch"]["labels"].pop("seed")
    assert interval_table(runs) == ([], [])
