"""Seed 000's study (notebook 05, workbench.study): run against run across seeds on a folder
laid out as the seed000 plan's, with real 2-step trainings of the seed000 configs (global,
and fine-tuned from it on CONUS through ``init_from``, 2 seeds each, a 2-day test split).
The per-seed difference is checked against ``comparison.compare_runs`` and against a numpy
block bootstrap on hand-computed per-initial-time errors; the notebook's summary against
the library's."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml

from workbench import boundary_band, cli, comparison, evaluation, intervals, study, training
from workbench.checkpoints import load_checkpoint, model_state
from workbench.errors import WorkbenchError
from workbench.forecast_files import read_forecast
from workbench.runs import NOTEBOOK_DIR
from workbench.training_config import (
    apply_overrides,
    config_dict,
    load_training_config,
    training_config_from_dict,
)

SEEDS = (0, 1)
STEPS = 2
FORGETTING = {"question": "forgetting", "domain": "global", "a": "seed000-finetune",
              "b": "seed000-global"}
TRANSFER = {"question": "transfer", "domain": "conus", "a": "seed000-finetune",
            "b": "seed000-global"}


class FirstWeights(pl.Callback):
    """The model's weights when training starts (step 0)."""

    def on_train_start(self, trainer, module) -> None:
        self.state = {k: v.detach().clone() for k, v in module.model.state_dict().items()}


def tiny(config: str, seed: int):
    """A seed000 config at test size: 8 channels, one layer, 2 steps, a 2-day test split."""
    raw = config_dict(load_training_config(config))
    raw["model"].update(hidden_dim=8, processor_layers=1, heads=2)
    raw["sampling"]["splits"]["test"] = ["2020-03-16", "2020-03-17T18:00"]
    raw.update(max_steps=2, seed=seed, val_rollout=STEPS, val_batches=1, val_every=2,
               checkpoint_every=2)
    return training_config_from_dict(raw)


def plan_entry(folder: Path, step: str, labels: dict, params: dict, status: str = "ok") -> Path:
    """An entry as ``workbench batch`` leaves it: batch.json, params.yaml, run.json and the
    executed notebook 03 (here the project's copy); its training run goes to ``train/``."""
    entry = folder / ("-".join([step, *(f"{k}={v}" for k, v in labels.items())]))
    entry.mkdir(parents=True)
    (entry / "batch.json").write_text(json.dumps({"plan": "seed000", "step": step,
                                                  "entry": entry.name, "labels": labels}))
    (entry / "params.yaml").write_text(yaml.safe_dump(params))
    (entry / "run.json").write_text(json.dumps({"notebook": "03_training", "status": status,
                                                "params": params}))
    shutil.copyfile(NOTEBOOK_DIR / "03_training.ipynb", entry / "03_training.ipynb")
    return entry


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """runs/seed000 in small: global (a) and finetune (c, ``init_from`` a's run, same seed)
    for 2 seeds, a study entry and an entry whose training did not finish; the fine-tuning's
    weights at step 0 and the global run's at step 0 are kept for the init_from test."""
    folder = tmp_path_factory.mktemp("study") / "seed000"
    first = {}
    for seed in SEEDS:
        labels = {"config": "seed000-global", "seed": seed}
        entry = plan_entry(folder, "global", labels, {"config": "seed000-global", "seed": seed})
        first["global", seed] = FirstWeights()
        training.fit(tiny("seed000-global", seed), run_dir=entry / "train", progress=False,
                     callbacks=(first["global", seed],))
        params = {"config": "seed000-finetune", "init_from": str(entry / "train"), "seed": seed}
        tuned = plan_entry(folder, "finetune", labels, params)  # a foreach entry: parent labels
        first["finetune", seed] = FirstWeights()
        config = apply_overrides(tiny("seed000-finetune", seed), seed=seed,
                                 init_from=params["init_from"])  # as notebook 03 does
        training.fit(config, run_dir=tuned / "train", progress=False,
                     callbacks=(first["finetune", seed],))
    broken = plan_entry(folder, "train", {"config": "seed000-conus", "seed": 0},
                        {"config": "seed000-conus", "seed": 0}, status="failed")
    (broken / "train").mkdir()
    (broken / "train" / "run.json").write_text(json.dumps({"kind": "training",
                                                           "status": "failed"}))
    (folder / "study").mkdir()
    (folder / "study" / "params.yaml").write_text("runs: ..\n")
    return folder, first


@pytest.fixture(scope="module")
def compared(plan):
    folder, _ = plan
    lines = []
    table = study.compare_across_seeds(folder, [FORGETTING, TRANSFER], steps=STEPS,
                                       progress=lines.append)
    return table, lines


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_trained_runs_keys_the_plan_entries_by_config_and_seed(plan):
    folder, _ = plan
    found = study.trained_runs(folder)
    assert sorted(found) == [("seed000-finetune", 0), ("seed000-finetune", 1),
                             ("seed000-global", 0), ("seed000-global", 1)]
    for (config, seed), path in found.items():
        step = "finetune" if config == "seed000-finetune" else "global"
        assert path == (folder / f"{step}-config=seed000-global-seed={seed}" / "train").resolve()
        assert yaml.safe_load((path / "config.yaml").read_text())["seed"] == seed


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_init_from_starts_the_fine_tuning_from_the_global_runs_weights(plan):
    """Notebook 03's ``init_from`` (apply_overrides, then fit): the fine-tuning's weights at
    step 0 are the global run's last checkpoint, which training had moved from its own start."""
    folder, first = plan
    for seed in SEEDS:
        ckpt = folder / f"global-config=seed000-global-seed={seed}" / "train" / "checkpoints"
        last = model_state(load_checkpoint(ckpt / "last.ckpt")["state_dict"])
        start = first["finetune", seed].state
        assert sorted(start) == sorted(last)
        assert all(torch.equal(start[k], last[k]) for k in last)
        moved = first["global", seed].state
        assert not all(torch.equal(moved[k], last[k]) for k in last)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_each_seeds_difference_is_compare_runs_mean_over_variables(plan, compared):
    folder, _ = plan
    table, lines = compared
    found = study.trained_runs(folder)
    assert len(lines) == 8 and lines[0].startswith("forecast 1/8: seed000-finetune seed 0 on global")
    assert len(table) == 2 * len(SEEDS) * STEPS and list(table.columns) == study.STUDY_COLUMNS
    # the transfer pair on conus (a forced ring, left out of both) by compare_runs
    rows = table[(table.question == "transfer") & (table.seed == 0)].set_index("lead_hours")
    per_variable = comparison.compare_runs(found["seed000-finetune", 0],
                                           found["seed000-global", 0], "conus", steps=STEPS)
    means = per_variable.groupby("lead_hours")[["skill_a", "skill_b", "difference"]].mean()
    for column in ("skill_a", "skill_b", "difference"):
        np.testing.assert_allclose(rows[column], means[column], rtol=0, atol=1e-12)
    # skill A is the mean over variables of what evaluate reports (interior skill)
    fc = read_forecast(evaluation.forecast_path(found["seed000-finetune", 0], "conus", "test"))
    scores = evaluation.scores(fc, evaluation.truth_for(fc), tuple(
        evaluation.run_config(found["seed000-finetune", 0]).sampling["splits"]["train"]))
    own = evaluation.interior(scores).query("forecast == 'model' and metric == "
                                            "'skill_vs_persistence'")
    np.testing.assert_allclose(rows["skill_a"], own.groupby("lead_hours")["value"].mean(),
                               rtol=0, atol=1e-12)
    assert (table.difference != 0).all()  # two trained models differ everywhere


def _hand_errors(path: Path, points: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-initial-time area-weighted MSE [init, variable, lead] of a forecast file and of
    persistence on ``points`` (None: all; a file forcing none), in numpy from the truth."""
    fc = read_forecast(path)
    truth = evaluation.truth_for(fc)
    weights = evaluation.area_weights(truth).values
    if points is not None:
        fc, truth, weights = fc.isel(grid=points), truth.isel(grid=points), weights[points]
    init, lead = fc["init_time"].values, fc["lead_time"].values
    model, persistence = [], []
    for name in fc.data_vars:
        y = truth[name].values
        at = {t: i for i, t in enumerate(truth["time"].values)}
        valid = np.array([[y[at[t0 + dt]] for dt in lead] for t0 in init])  # [I, L, G]
        start = np.array([y[at[t0]] for t0 in init])[:, None]
        for errors, values in ((model, fc[name].values), (persistence, start)):
            errors.append(((values.astype(np.float64) - valid) ** 2 * weights).sum(-1)
                          / weights.sum())
    return np.stack(model, 1), np.stack(persistence, 1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_interval_is_one_block_bootstrap_over_all_variables(plan, compared):
    """Against a numpy bootstrap of the hand-computed errors with intervals.block_indices."""
    folder, _ = plan
    table, _ = compared
    found = study.trained_runs(folder)
    seed = 1
    a, ref = _hand_errors(evaluation.forecast_path(found["seed000-finetune", seed], "global",
                                                   "test"))
    b, _ = _hand_errors(evaluation.forecast_path(found["seed000-global", seed], "global", "test"))
    fc = read_forecast(evaluation.forecast_path(found["seed000-global", seed], "global", "test"))
    block = intervals.block_length(fc["init_time"].values, fc["lead_time"].values)
    assert a.shape == (fc.sizes["init_time"], 8, STEPS) and block == 2

    def statistic(i):
        skill = [1 - e[i].mean(0) / ref[i].mean(0) for e in (a, b)]  # [variable, lead]
        return (skill[0] - skill[1]).mean(0)

    replicates = np.array([statistic(i) for i in intervals.block_indices(len(a), block)])
    low, high = np.percentile(replicates, [2.5, 97.5], axis=0)
    rows = table[(table.question == "forgetting") & (table.seed == seed)]
    np.testing.assert_allclose(rows["difference"], statistic(np.arange(len(a))), atol=1e-6)
    np.testing.assert_allclose(rows["ci_low"], low, atol=1e-6)
    np.testing.assert_allclose(rows["ci_high"], high, atol=1e-6)
    assert (rows["ci_low"] < rows["ci_high"]).all()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_boundary_band_region_scores_each_runs_band_with_one_joint_bootstrap(plan):
    """``region='boundary_band'`` (seed 004): on CONUS each run's skill in its band (the
    first cells inside the forced ring), the difference and its interval against a numpy
    bootstrap of hand-computed band errors; a global domain has no band: one error line."""
    folder, _ = plan
    found = study.trained_runs(folder)
    table = study.compare_across_seeds(folder, [TRANSFER], steps=STEPS, progress=None,
                                       region="boundary_band")
    seed = 1
    paths = [evaluation.forecast_path(found[c, seed], "conus", "test")
             for c in ("seed000-finetune", "seed000-global")]
    fc = read_forecast(paths[0])
    band = boundary_band.band_points(fc, evaluation.truth_for(fc))
    assert 0 < band.size < fc.sizes["grid"] / 4
    (a, ref), (b, _) = (_hand_errors(p, band) for p in paths)
    block = intervals.block_length(fc["init_time"].values, fc["lead_time"].values)

    def skills(i):  # [run, lead]: mean over variables of 1 - MSE / MSE(persistence)
        return np.stack([(1 - e[i].mean(0) / ref[i].mean(0)).mean(0) for e in (a, b)])

    everything = skills(np.arange(len(a)))
    replicates = np.array([np.subtract(*skills(i)) for i in intervals.block_indices(len(a),
                                                                                   block)])
    low, high = np.percentile(replicates, [2.5, 97.5], axis=0)
    rows = table[table.seed == seed]
    np.testing.assert_allclose(rows["skill_a"], everything[0], atol=1e-6)
    np.testing.assert_allclose(rows["skill_b"], everything[1], atol=1e-6)
    np.testing.assert_allclose(rows["difference"], everything[0] - everything[1], atol=1e-6)
    np.testing.assert_allclose(rows["ci_low"], low, atol=1e-6)
    np.testing.assert_allclose(rows["ci_high"], high, atol=1e-6)
    interior = study.compare_across_seeds(found, [TRANSFER], steps=STEPS, progress=None)
    assert not np.allclose(interior["skill_a"], table["skill_a"])  # the band is not the domain
    with pytest.raises(WorkbenchError, match="'global' has no boundary band"):
        study.compare_across_seeds(found, [FORGETTING], steps=STEPS, progress=None,
                                   region="boundary_band")
    with pytest.raises(WorkbenchError, match="region 'ring' is not one of all, boundary_band"):
        study.compare_across_seeds(found, [TRANSFER], region="ring")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_seed_summary_and_key_figures_by_hand(plan, compared):
    folder, _ = plan
    table, _ = compared
    across = study.seed_summary(table)
    assert list(across.columns) == study.SUMMARY_COLUMNS and len(across) == 2 * STEPS
    for row in across.itertuples():
        part = table[(table.question == row.question) & (table.lead_hours == row.lead_hours)]
        values = list(part["difference"])
        assert row.seeds == len(SEEDS) == len(values)
        assert row.mean == pytest.approx(statistics.mean(values), abs=1e-12)
        assert row.std == pytest.approx(statistics.stdev(values), abs=1e-12)
        side = (all(part.ci_low > 0) or all(part.ci_high < 0))
        assert row.consistent == side
        assert row.exceeds_spread == (abs(row.mean) > row.std)
    summary = study.notebook_summary(table, across, study.trained_runs(folder))
    figures = summary["key_figures"]
    first = across[across.question == "forgetting"].iloc[0]
    assert figures["forgetting_global_6h"] == pytest.approx(first["mean"], abs=1e-12)
    assert figures["forgetting_global_6h_std"] == pytest.approx(first["std"], abs=1e-12)
    assert figures["forgetting_global_6h_seeds"] == 2
    assert figures["transfer_conus_12h_consistent"] == bool(across.iloc[-1]["consistent"])
    assert list(figures)[:4] == ["forgetting_global_6h", "forgetting_global_12h",
                                 "transfer_conus_6h", "transfer_conus_12h"]
    assert len(summary["per_seed"]) == len(table) and len(summary["runs"]) == 4


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_notebook_05_through_papermill_gives_the_librarys_figures(plan, compared, tmp_path):
    """``workbench run 05_study -p runs DIR`` on one comparison: its key figures are the
    library's (the same forecasts, the same bootstrap)."""
    folder, _ = plan
    table, _ = compared
    code = cli.main(["run", "05_study", "-p", "runs", str(folder), "-p", "comparisons",
                     json.dumps([TRANSFER]), "-p", "lead_steps", str(STEPS), "--runs-dir",
                     str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "reports")])
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    figures = json.loads((run_dir / "summary.json").read_text())["key_figures"]
    part = table[table.question == "transfer"]
    expected = study.notebook_summary(part, study.seed_summary(part),
                                      study.trained_runs(folder))["key_figures"]
    assert list(figures) == list(expected) and "transfer_conus_12h" in figures
    for key, value in expected.items():
        assert figures[key] == (pytest.approx(value, abs=1e-9) if isinstance(value, float)
                                else value)
    assert (run_dir / "report.html").stat().st_size > 0


@pytest.mark.timeout(60)
def test_a_folder_without_finished_runs_is_one_error_line(tmp_path):
    (tmp_path / "study").mkdir()
    with pytest.raises(WorkbenchError, match=r"no finished training run in .*run the plan first"):
        study.trained_runs(tmp_path)
    with pytest.raises(WorkbenchError, match="runs folder .* does not exist"):
        study.trained_runs(tmp_path / "nowhere")


@pytest.mark.timeout(60)
def test_bad_comparisons_are_one_error_line(tmp_path):
    runs = {("seed000-global", 0): tmp_path, ("seed000-finetune", 1): tmp_path}
    cases = [
        ([{**FORGETTING, "a": "seed000-fintune"}], "no finished run of config 'seed000-fintune'; "
         "the runs folder has seed000-finetune, seed000-global"),
        ([FORGETTING], "seed000-finetune and seed000-global share no seed"),
        ([{**FORGETTING, "domian": "global"}], r"comparisons\[0\]"),
        ([{**FORGETTING, "question": "what now?"}], r"comparisons\[0\]: question"),
        ([], "comparisons must be a non-empty list"),
    ]
    for comparisons, message in cases:
        with pytest.raises(WorkbenchError, match=message) as err:
            study.check_comparisons(comparisons, runs)
        assert "\n" not in str(err.value)
