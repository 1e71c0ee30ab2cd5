"""Rolling a trained run out on its own and on an unseen domain, and scoring it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from workbench import catalog, evaluation, grids, training
from workbench.errors import WorkbenchError

TRAIN = ("2020-01-01", "2020-02-29T18:00")


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory) -> Path:
    """A run whose weights never moved (lr 0): its model is still persistence."""
    tmp = tmp_path_factory.mktemp("frozen")
    raw = training.config_dict(training.load_training_config("demo"))
    raw["model"].update(hidden_dim=8, processor_layers=1)
    raw.update(max_steps=1, val_rollout=2, val_batches=2, optimizer={"lr": 0.0})
    return training.fit(training.training_config_from_dict(raw), run_dir=tmp / "run",
                        progress=False)


def test_untrained_forecast_is_persistence_with_lam_boundary_from_the_truth(frozen_run):
    fc = evaluation.forecast(frozen_run, "conus", "test", steps=3, progress=False)
    assert fc.sizes["lead_time"] == 3 and fc.attrs["trained_on"] == "global, conus"
    truth = catalog.open_dataset("conus")
    ring = grids.boundary_distance_cells(grids.grid_from_dataset(truth)) < 2
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


def test_unseen_domain_scores_against_persistence_and_climatology(frozen_run):
    path = evaluation.evaluate(frozen_run, "europe", "test", steps=2, progress=False)
    assert path == frozen_run / "forecasts" / "europe-test.zarr"
    fc = xr.open_zarr(path)
    assert fc.attrs["domain"] == "europe" and "europe" not in fc.attrs["trained_on"]
    table = evaluation.scores(fc, evaluation.truth_for(fc), TRAIN)
    rmse = table[table.metric == "rmse"].pivot_table(index=["variable", "lead_hours"],
                                                     columns="forecast", values="value")
    # a persistence model on a LAM: equal to persistence except the forced boundary ring
    assert (rmse["model"] <= rmse["persistence"] * (1 + 1e-6)).all()
    assert (rmse["model"] >= 0.8 * rmse["persistence"]).all()
    skill = table[table.metric == "skill_vs_persistence"]["value"]
    assert (skill > -1e-6).all() and (skill < 0.3).all()
    assert set(table.forecast) == {"model", "persistence", "climatology"}


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


def test_cli_evaluate_json(frozen_run):
    exe = Path(sys.executable).with_name("workbench")
    done = subprocess.run([str(exe), "evaluate", str(frozen_run), "--domain", "global",
                           "--split", "val", "--steps", "1", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    rows = [r for r in out["scores"] if r["metric"] == "rmse" and r["variable"] == "z_500"]
    assert {r["forecast"] for r in rows} == {"model", "persistence", "climatology"}
