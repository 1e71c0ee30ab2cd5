"""Seed 004's study plan end to end at a tiny size: a copy of configs/batch/seed004.yaml with
one graph inspected, two graphs x two seeds trained for 2 steps and scored on the stretched
grid, run by ``workbench batch`` (real papermill runs); the index's across-seeds table of the
boundary band's skill is checked by hand against the runs' summary.json files."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench.batch import PLAN_DIR

CONFIGS = ["seed004-mmgt", "seed004-fix"]
SEEDS = [0, 1]


def tiny_plan(folder: Path) -> Path:
    """The seed004 plan with its graph step on demo-fix alone (k 1-4), training on two graphs
    and two seeds for 2 steps, scoring on the stretched grid at 2 lead steps."""
    raw = yaml.safe_load((PLAN_DIR / "seed004.yaml").read_text())
    steps = {s["name"]: s for s in raw["steps"]}
    assert set(steps) == {"graph", "train", "skill"}
    assert steps["train"]["grid"]["seed"] == [0, 1, 2] and "seed004-fix" in steps[
        "train"]["grid"]["config"]
    steps["graph"]["grid"] = {"config": ["demo-fix"]}
    steps["graph"]["params"] = {"k_range": "1:4", "trims": [0]}
    steps["train"]["grid"] = {"config": CONFIGS, "seed": SEEDS}
    steps["train"]["params"] = {"max_steps": 2}
    steps["skill"]["params"] = {**steps["skill"]["params"], "domains": ["stretched"],
                                "lead_steps": 2}
    raw["name"] = "seed004-tiny"
    path = folder / "seed004-tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cell_text(cell: str) -> str:
    return re.sub(r"<[^>]+>", "", cell).replace("&#x27;", "'").strip()


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_tiny_seed004_plan_runs_and_the_index_agrees_with_the_summaries(tmp_path):
    plan = tiny_plan(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "batch", str(plan),
                           "--runs-dir", str(tmp_path / "runs"), "--reports-dir",
                           str(tmp_path / "reports"), "--no-progress"],
                          capture_output=True, text=True, timeout=2300, env=env, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    runs = tmp_path / "runs" / "seed004-tiny"
    summaries, seeds_used = {}, {}
    for config in CONFIGS:
        for seed in SEEDS:
            train = runs / f"train-config={config}-seed={seed}" / "train"
            seeds_used[config, seed] = yaml.safe_load((train / "config.yaml").read_text())["seed"]
            skill = runs / f"skill-config={config}-seed={seed}" / "summary.json"
            summaries[config, seed] = json.loads(skill.read_text())
    assert all(seeds_used[key] == key[1] for key in seeds_used)  # the grid's seed reached training
    first = summaries[CONFIGS[0], 0]
    band = [k for k in first["key_figures"] if k.startswith("boundary_skill_vs_persistence_"
                                                           "stretched_") and "_ci_" not in k]
    assert band == ["boundary_skill_vs_persistence_stretched_6h",
                    "boundary_skill_vs_persistence_stretched_12h"]
    assert first["boundary_band"]["stretched"]["points"] > 0
    page = (tmp_path / "reports" / "index.html").read_text()
    table = page.split("class='intervals'")[1].split("</table>")[0]
    rows = [[cell_text(c) for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    by_key = {(r[0], r[1]): r for r in rows if r}
    for figure in band:
        means = {}
        for config in CONFIGS:
            values = [summaries[config, s]["key_figures"][figure] for s in SEEDS]
            lows = [summaries[config, s]["key_figures"][f"{figure}_ci_low"] for s in SEEDS]
            highs = [summaries[config, s]["key_figures"][f"{figure}_ci_high"] for s in SEEDS]
            assert all(lo <= v <= hi for v, lo, hi in zip(values, lows, highs, strict=True))
            means[config] = statistics.mean(values)
            row = by_key[figure, f"config={config}"]
            assert row[2] == str(len(SEEDS))
            assert row[3] == f"{means[config]:.4g} ± {statistics.stdev(values):.4g}"
            for seed, v, lo, hi in zip(SEEDS, values, lows, highs, strict=True):
                assert f"seed={seed}: {v:.4g} [{lo:.4g}, {hi:.4g}]" in row[6]
        best = max(means, key=means.get)
        for config in CONFIGS:
            assert by_key[figure, f"config={config}"][4] == f"{means[config] - means[best]:.4g}"
    # two seeds train two different models: their scores differ
    assert summaries[CONFIGS[0], 0]["key_figures"][band[-1]] != summaries[CONFIGS[0], 1][
        "key_figures"][band[-1]]


@pytest.mark.timeout(60)
def test_the_seed_override_is_the_configs_seed_checked_there():
    from workbench.errors import WorkbenchError
    from workbench.training_config import apply_overrides, load_training_config

    config = load_training_config("seed004-fix")
    assert config.seed == 0 and config.sampling["domains"][0]["graph"] == "demo-fix"
    assert apply_overrides(config, seed=2).seed == 2
    assert apply_overrides(config, seed=None).seed == 0  # None: the config's
    assert apply_overrides(config, 5, seed=0).max_steps == 5
    with pytest.raises(WorkbenchError, match="seed: should be greater than or equal to 0, got -1"):
        apply_overrides(config, seed=-1)


@pytest.mark.timeout(120)
def test_the_plan_trains_four_graphs_with_three_seeds_and_scores_each():
    from workbench.batch import load_plan

    plan = load_plan("seed004")
    entries = {step: [e for e in plan.entries if e.step == step]
               for step in ("graph", "train", "skill")}
    assert [e.params["config"] for e in entries["graph"]] == [
        "demo-mmgt", "demo-nbd", "demo-tnbd", "demo-fix"]
    assert len(entries["train"]) == 12 and len(entries["skill"]) == 12
    assert {(e.params["config"], e.params["seed"]) for e in entries["train"]} == {
        (f"seed004-{g}", s) for g in ("mmgt", "nbd", "tnbd", "fix") for s in (0, 1, 2)}
    assert all(e.params["domains"] == ["stretched", "europe"] for e in entries["skill"])
    assert [e.labels for e in entries["skill"]] == [e.labels for e in entries["train"]]
