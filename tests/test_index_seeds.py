"""The index's spread across seeds: runs of a plan step whose grid varies ``seed``, grouped by
everything but the seed, each numeric key figure's mean ± std [min, max]."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workbench.index import collect_runs, seed_table, write_index

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
