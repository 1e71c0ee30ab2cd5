"""Rolling a trained run out on its own and on an unseen domain, and scoring it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import helpers
import numpy as np
import pytest
import xarray as xr

from workbench import (
    catalog,
    cli,
    evaluation,
    evaluation_inputs,
    forecast_files,
    grids,
)
from workbench.errors import WorkbenchError
from workbench.sampling import MultiDomainDataset
from workbench.statistics import VariableStats
from workbench.training_config import sampling_config

TRAIN = ("2020-01-01", "2020-02-29T18:00")
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory) -> Path:
    """A run whose weights never moved (lr 0): its model is still persistence."""
    return helpers.frozen_run(tmp_path_factory.mktemp("frozen") / "run", val_rollout=2,
                              val_batches=2)


def test_untrained_forecast_is_persistence_with_lam_boundary_from_the_truth(frozen_run):
    fc = evaluation.forecast(frozen_run, "conus", "test", steps=3, progress=False)
    assert fc.sizes["lead_time"] == 3 and fc.attrs["trained_on"] == "global, conus"
    truth = catalog.open_dataset("conus")
    ring = grids.boundary_distance_cells(grids.grid_from_dataset(truth)) < 2
    # the forced points the forecast reports are the ring the rollout overwrote
    np.testing.assert_array_equal(fc["forced"].values, ring)
    assert fc.attrs["boundary_cells"] == 2 and int(ring.sum()) == 2 * (2 * 70 + 2 * 119) - 16
    assert "as in training" in fc.attrs["normalisation_note"]
    for i in (0, len(fc["init_time"]) - 1):
        init = fc["init_time"].values[i]
        at_init = truth["z_500"].sel(time=init).values
        for k in range(3):
            valid = init + fc["lead_time"].values[k]
            got = fc["z_500"].values[i, k]
            np.testing.assert_allclose(got[~ring], at_init[~ring], rtol=1e-5)
            np.testing.assert_allclose(got[ring], truth["z_500"].sel(time=valid).values[ring],
                                       rtol=1e-5)
    # the test split: every window inside 16-31 March
    assert str(fc["init_time"].values[0])[:10] == "2020-03-16"
    last_valid = fc["init_time"].values[-1] + fc["lead_time"].values[-1]
    assert str(last_valid)[:16] == "2020-03-31T18:00"


def skill_noise_bound(fc: xr.Dataset, truth: xr.Dataset, name: str) -> np.ndarray:
    """How far from 0 an exact persistence model's skill may be, per lead, from float32 alone.

    The untrained model's output layer is zero, so its forecast is the initial state
    normalised and denormalised in float32: off by ``d`` with ``|d| <= 4 eps32 max|x|`` (a few
    roundings of values up to ``max|x|``). Then ``MSE(model) = MSE(p) + mean(2 d e + d^2)``
    with ``e`` the persistence error, so ``|skill| <= 2 D / RMSE(p) + (D / RMSE(p))^2`` with
    ``D = 4 eps32 max|x|``: 1e-5 to 3e-4 for europe's variables, while the forced ring
    added 0.07 to 0.15 to the skill over all points (the measured skill is 0 to 3e-9)."""
    x = np.abs(truth[name].values).max()
    d = 4 * EPS32 * x
    inner = ~fc["forced"].values
    init = fc["init_time"].values
    start = truth[name].sel(time=init).values[:, inner]
    bounds = []
    for lead in fc["lead_time"].values:
        error = truth[name].sel(time=init + lead).values[:, inner] - start
        r = np.sqrt(np.mean(error.astype(np.float64) ** 2))
        bounds.append(2 * d / r + (d / r) ** 2)
    return np.array(bounds)


def test_unseen_domain_scores_against_persistence_and_climatology(frozen_run):
    path = evaluation.evaluate(frozen_run, "europe", "test", steps=2, progress=False)
    assert path == frozen_run / "forecasts" / "europe-test.zarr"
    fc = forecast_files.read_forecast(path)  # a CF file on (y, x), back on grid
    assert fc.attrs["domain"] == "europe" and "europe" not in fc.attrs["trained_on"]
    assert fc.attrs["normalisation"] == "training"
    assert "global, conus" in fc.attrs["normalisation_note"]
    truth = evaluation.truth_for(fc)
    table = evaluation.scores(fc, truth, TRAIN)
    assert set(table.region) == {"interior", "forced_ring"}
    assert set(table.forecast) == {"model", "persistence", "climatology"}
    inner = evaluation.interior(table)
    # an untrained (zero-output) model is persistence on every point it predicts: with the
    # forced ring out, its skill is 0 within float32 noise (skill_noise_bound, ~1e-5)
    skill = inner[inner.metric == "skill_vs_persistence"]
    for name, rows in skill.groupby("variable"):
        bound = skill_noise_bound(fc, truth, name)
        values = rows.sort_values("lead_hours")["value"].to_numpy()
        assert (np.abs(values) <= bound).all() and bound.max() < 1e-3, (name, values, bound)
    rmse = inner[inner.metric == "rmse"].pivot_table(index=["variable", "lead_hours"],
                                                     columns="forecast", values="value")
    np.testing.assert_allclose(rmse["model"], rmse["persistence"], rtol=1e-4)
    # the ring, scored apart: the truth itself
    ring = table[(table.region == "forced_ring") & (table.forecast == "model")]
    np.testing.assert_allclose(ring[ring.metric == "skill_vs_persistence"]["value"], 1.0,
                               atol=1e-6)
    note = evaluation.scoring_note(fc)
    assert note["forced_points"] == int(fc["forced"].sum()) > 0
    assert note["points"] + note["forced_points"] == fc.sizes["grid"]
    assert f"{note['points']} of {fc.sizes['grid']} points scored" in note["note"]


def test_pooled_statistics_by_hand():
    a = {"z": VariableStats(mean=1.0, std=2.0, min=-3.0, max=5.0, diff_std=1.0),
         "t": VariableStats(mean=10.0, std=1.0, min=8.0, max=12.0, diff_std=None)}
    b = {"z": VariableStats(mean=4.0, std=1.0, min=2.0, max=9.0, diff_std=3.0)}
    pooled = evaluation_inputs.pool_statistics([(a, 1), (b, 2)])
    # z: mean (1 + 2*4)/3 = 3; var (1*(4 + 4) + 2*(1 + 1))/3 = 4; diff (1 + 2*9)/3
    assert pooled["z"].mean == pytest.approx(3.0) and pooled["z"].std == pytest.approx(2.0)
    assert (pooled["z"].min, pooled["z"].max) == (-3.0, 9.0)
    assert pooled["z"].diff_std == pytest.approx(np.sqrt(19 / 3))
    assert pooled["t"] == a["t"]  # only a has it
    # the same numbers as over the values side by side
    rng = np.random.default_rng(0)
    x, y = rng.normal(1, 2, 300), rng.normal(4, 1, 500)
    stats = [({"v": VariableStats(v.mean(), v.std(), v.min(), v.max(), None)}, v.size)
             for v in (x, y)]
    both = np.concatenate([x, y])
    got = evaluation_inputs.pool_statistics(stats)["v"]
    assert got.mean == pytest.approx(both.mean()) and got.std == pytest.approx(both.std())
    with pytest.raises(WorkbenchError, match="at least one training domain"):
        evaluation_inputs.pool_statistics([])


def test_unseen_domain_inputs_use_the_training_domains_statistics(frozen_run):
    """europe's model inputs: (x - mean) / std with the mean and std of global's and conus's
    training-period values taken together, or europe's own with normalise="own"."""
    config = evaluation.run_config(frozen_run)
    training_sampling = sampling_config(config)
    europe = evaluation.domain_config(config, "europe")
    period = slice(*TRAIN)
    both = np.concatenate([catalog.open_dataset(d)["t2m"].sel(time=period).values.ravel()
                           for d in ("global", "conus")]).astype(np.float64)
    own = catalog.open_dataset("europe")["t2m"].sel(time=period).values.astype(np.float64)
    orog = np.concatenate([catalog.open_dataset(d)["orog"].values.ravel()
                           for d in ("global", "conus")]).astype(np.float64)
    raw = catalog.open_dataset("europe")
    for normalise, mean, std in (("training", both.mean(), both.std()),
                                 ("own", own.mean(), own.std())):
        data, note = evaluation_inputs.evaluation_data(training_sampling, training_sampling,
                                                       europe, normalise)
        assert note["normalisation"] == normalise
        t0 = int(data.samples("test")[0])
        x = MultiDomainDataset([data])[(0, t0)]["x"]  # [input_steps, variable, grid]
        v = data.variables.index("t2m")
        expected = (raw["t2m"].isel(time=t0).values - mean) / std
        np.testing.assert_allclose(x[0, v].numpy(), expected, rtol=1e-4, atol=1e-4)
        if normalise == "training":  # statics too: orog over both grids' points
            s = data.statics.index("orog")
            got = data.statics_tensor[s].numpy()
            np.testing.assert_allclose(got, (raw["orog"].values - orog.mean()) / orog.std(),
                                       rtol=1e-4, atol=1e-4)
    with pytest.raises(WorkbenchError, match="normalise must be one of training, own") as err:
        evaluation.forecast(frozen_run, "europe", normalise="pooled", progress=False)
    assert "\n" not in str(err.value)


def test_own_normalisation_is_written_apart_and_says_so(frozen_run):
    path = evaluation.evaluate(frozen_run, "europe", "test", steps=1, progress=False,
                               normalise="own")
    assert path == frozen_run / "forecasts" / "europe-test-own.zarr"
    fc = forecast_files.read_forecast(path)
    assert fc.attrs["normalisation"] == "own" and "europe's own" in fc.attrs["normalisation_note"]


def test_global_untrained_model_has_zero_skill_against_persistence(frozen_run):
    fc = evaluation.forecast(frozen_run, "global", "val", steps=2, progress=False)
    table = evaluation.scores(fc, evaluation.truth_for(fc), TRAIN)
    skill = table[table.metric == "skill_vs_persistence"]["value"].to_numpy()
    np.testing.assert_allclose(skill, 0.0, atol=1e-6)


def test_bad_inputs_are_one_line_errors(frozen_run, tmp_path):
    cases = [
        (lambda: evaluation.forecast(frozen_run, "atlantis", progress=False), "atlantis"),
        (lambda: evaluation.forecast(frozen_run, "conus", steps=500, progress=False),
         "fewer than one sample window"),
        (lambda: evaluation.forecast(tmp_path, "conus", progress=False), "no config.yaml"),
    ]
    for call, message in cases:
        with pytest.raises(WorkbenchError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    (tmp_path / "config.yaml").write_text((frozen_run / "config.yaml").read_text())
    with pytest.raises(WorkbenchError, match="no checkpoints/last.ckpt"):
        evaluation.forecast(tmp_path, "conus", progress=False)


def test_cli_evaluate_json(frozen_run, capsys):
    exe = Path(sys.executable).with_name("workbench")
    done = subprocess.run([str(exe), "evaluate", str(frozen_run), "--domain", "global",
                           "--split", "val", "--steps", "1", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    rows = [r for r in out["scores"] if r["metric"] == "rmse" and r["variable"] == "z_500"]
    assert {r["forecast"] for r in rows} == {"model", "persistence", "climatology"}
    assert {r["region"] for r in out["scores"]} == {"interior"}  # global: nothing forced
    assert out["scoring"]["note"] == "all 10512 points scored (none is forced from the truth)"
    assert out["scoring"]["normalisation"] == "training"
    # skill rows carry a finite 95 % interval around the value (block bootstrap, seeded): the
    # same numbers again when the forecast file is scored here, in another process
    skill = [r for r in out["scores"] if r["metric"].startswith("skill_vs_")]
    assert len(skill) == 2 * 8 and {r["metric"] for r in skill} == {
        "skill_vs_persistence", "skill_vs_climatology"}
    for r in skill:
        assert np.isfinite([r["ci_low"], r["ci_high"]]).all()
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
        assert r["significant"] == (r["ci_low"] > 0 or r["ci_high"] < 0)
    assert not any("ci_low" in r for r in out["scores"] if r["metric"] == "rmse")
    fc = forecast_files.read_forecast(out["forecasts"])
    again = evaluation.scores(fc, evaluation.truth_for(fc), tuple(out["train_period"]))
    again = again[again.metric.str.startswith("skill_vs_")]
    assert [(r["value"], r["ci_low"], r["ci_high"]) for r in skill] == list(
        zip(again.value, again.ci_low, again.ci_high, strict=True))
    # the table printed without --json shows the skill with its interval
    assert cli.main(["evaluate", "--forecast", out["forecasts"], "--truth", "global",
                     "--train-period", *out["train_period"]]) == 0
    text = capsys.readouterr().out
    assert "skill with its 95 % interval" in text
    z500 = [line for line in text.splitlines() if line.startswith("z_500")][-1]
    assert z500.split()[-3:] == ["0", "[0,", "0]"]  # persistence against itself: [0, 0]
