"""Seed 004's study plan end to end at a tiny size: a copy of configs/batch/seed004.yaml with
one graph inspected, two graphs x two seeds trained for 2 steps (copies of the seed004
training configs validating one batch one lead step ahead) and scored on the stretched grid,
run by ``workbench batch`` (real papermill runs); the index's across-seeds table of the
boundary band's skill is checked by hand against the runs' summary.json files."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from workbench.batch import PLAN_DIR, load_plan

CONFIGS = ["seed004-mmgt", "seed004-fix"]
SEEDS = [0, 1]


TEST_SPLIT = ["2020-03-16", "2020-03-19T18:00"]  # 4 of the preset's 16 days: 15 forecasts


def tiny_configs(folder: Path) -> list[str]:
    """Copies of the CONFIGS training presets in ``folder`` whose validation (run at the last
    step, and the forecast maps' rollout) is one batch one lead step ahead instead of 6 x 4,
    and whose test split (the skill step's initial times) is TEST_SPLIT: the test checks the
    skill step's scores and intervals, not training's validation. Their paths, which are the
    plan's grid labels: ``folder`` must be short (an entry's label is cut at 40 characters)."""
    splits = yaml.safe_load((PLAN_DIR.parent / "sampling" / "seed004.yaml").read_text())["splits"]
    paths = []
    for name in CONFIGS:
        raw = yaml.safe_load((PLAN_DIR.parent / "training" / f"{name}.yaml").read_text())
        raw.update(val_batches=1, val_rollout=1)
        raw["sampling"]["splits"] = {**splits, "test": TEST_SPLIT}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        paths.append(str(path))
    return paths


def tiny_plan(folder: Path, configs: list[str] = CONFIGS) -> Path:
    """The seed004 plan with its graph step on demo-fix alone (k 1-4), training on two graphs
    (``configs``: the CONFIGS presets or copies of them) and two seeds for 2 steps, scoring on
    the stretched grid at 2 lead steps."""
    raw = yaml.safe_load((PLAN_DIR / "seed004.yaml").read_text())
    steps = {s["name"]: s for s in raw["steps"]}
    assert set(steps) == {"graph", "train", "skill", "study"}
    raw["steps"] = [s for s in raw["steps"] if s["name"] != "study"]  # tests/test_study.py
    assert steps["train"]["grid"]["seed"] == [0, 1, 2] and "seed004-fix" in steps[
        "train"]["grid"]["config"]
    steps["graph"]["grid"] = {"config": ["demo-fix"]}
    steps["graph"]["params"] = {"k_range": "1:4", "trims": [0]}
    steps["train"]["grid"] = {"config": configs, "seed": SEEDS}
    steps["train"]["params"] = {"max_steps": 2}
    steps["skill"]["params"] = {**steps["skill"]["params"], "domains": ["stretched"],
                                "lead_steps": 2}
    raw["name"] = "seed004-tiny"
    path = folder / "seed004-tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cell_text(cell: str) -> str:
    return re.sub(r"<[^>]+>", "", cell).replace("&#x27;", "'").strip()


@pytest.fixture
def short_folder():
    """A fresh folder with a short path under the temp dir (removed afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix="s4-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(60)
def test_tiny_configs_are_the_presets_validating_less(short_folder):
    from workbench.training_config import config_dict, load_training_config

    for name, path in zip(CONFIGS, tiny_configs(short_folder), strict=True):
        preset, copy = (config_dict(load_training_config(c)) for c in (name, path))
        assert (copy.pop("val_batches"), copy.pop("val_rollout")) == (1, 1)
        del preset["val_batches"], preset["val_rollout"]
        assert copy["sampling"]["splits"].pop("test") == TEST_SPLIT
        assert preset["sampling"]["splits"].pop("test") == ["2020-03-16", "2020-03-31T18:00"]
        assert copy == preset, name
    ids = [e.id for e in load_plan(tiny_plan(short_folder, tiny_configs(short_folder))).entries]
    assert len(set(ids)) == len(ids) == 1 + 2 * len(CONFIGS) * len(SEEDS)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_tiny_seed004_plan_runs_and_the_index_agrees_with_the_summaries(tmp_path,
                                                                             short_folder):
    configs = tiny_configs(short_folder)
    plan = tiny_plan(tmp_path, configs)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "batch", str(plan),
                           "--runs-dir", str(tmp_path / "runs"), "--reports-dir",
                           str(tmp_path / "reports"), "--no-progress"],
                          capture_output=True, text=True, timeout=2300, env=env, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    runs = tmp_path / "runs" / "seed004-tiny"
    entries = {(e.step, e.labels["config"], e.labels["seed"]): e.id
               for e in load_plan(plan).entries if e.step != "graph"}
    summaries, seeds_used = {}, {}
    for config in configs:
        for seed in SEEDS:
            train = runs / entries["train", config, seed] / "train"
            trained = yaml.safe_load((train / "config.yaml").read_text())
            seeds_used[config, seed] = trained["seed"]
            assert trained["val_batches"] == 1 and Path(config).stem in CONFIGS
            skill = runs / entries["skill", config, seed] / "summary.json"
            summaries[config, seed] = json.loads(skill.read_text())
    assert all(seeds_used[key] == key[1] for key in seeds_used)  # the grid's seed reached training
    first = summaries[configs[0], 0]
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
        for config in configs:
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
        for config in configs:
            assert by_key[figure, f"config={config}"][4] == f"{means[config] - means[best]:.4g}"
    # two seeds train two different models: their scores differ
    assert summaries[configs[0], 0]["key_figures"][band[-1]] != summaries[configs[0], 1][
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
    (entry,) = [e for e in plan.entries if e.step == "study"]
    assert entry.params["region"] == "boundary_band" and entry.params["runs"] == ".."
    assert set(entry.needs) == {e.id for e in entries["train"]}
    from workbench import study
    from workbench.config import parse

    checked = [parse(study.Comparison, c, "comparison") for c in entry.params["comparisons"]]
    assert {(c.a, c.b) for c in checked} == {("seed004-tnbd", "seed004-nbd"),
                                             ("seed004-fix", "seed004-mmgt"),
                                             ("seed004-fix", "seed004-nbd"),
                                             ("seed004-nbd", "seed004-mmgt")}
    assert {c.domain for c in checked} == {"stretched", "europe"} and len(checked) == 8
