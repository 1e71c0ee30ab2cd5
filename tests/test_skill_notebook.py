"""Notebook 04 (skill maps): per-point skill, skill by distance to the LAM boundary, the
scorecard, finding the run, the summary and the plots; the notebook itself through the CLI,
its report rendered offline."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_forecast_files import anemoi_inference_netcdf
from test_runs import assert_renders_offline, run_via_cli

from workbench import catalog, evaluation, grids, plotting_skill, training
from workbench.errors import WorkbenchError

TRAIN = ("2020-01-01", "2020-01-03T18:00")  # the synthetic truth's "training period"
T0 = pd.Timestamp("2020-01-01")
H6 = pd.Timedelta(hours=6)


# --------------------------------------------------------------------------- synthetic data


def synthetic_truth(grid: grids.Grid, n_time: int = 24, seed: int = 0) -> xr.Dataset:
    """Two random fields, 6-hourly from T0, on ``grid`` (canonical layout and attrs)."""
    rng = np.random.default_rng(seed)
    values = {"z_500": 5.0e4 + 100 * rng.standard_normal((n_time, grid.size)),
              "t2m": 280 + 5 * rng.standard_normal((n_time, grid.size))}
    return xr.Dataset(
        {k: (("time", "grid"), v, {"units": "K" if k == "t2m" else "m2 s-2"})
         for k, v in values.items()},
        coords={"time": pd.date_range(T0, periods=n_time, freq="6h"),
                "latitude": ("grid", grid.latitude), "longitude": ("grid", grid.longitude)},
        attrs={**grids.grid_attrs(grid), "dataset": grid.name})


def frozen_forecast(truth: xr.Dataset, inits, leads: int, ring: np.ndarray | None = None):
    """Persistence, except on ``ring`` where the forecast is the truth and which it marks as
    forced (``forced`` coord, as :func:`evaluation.forecast` does): a frozen LAM model."""
    init = pd.DatetimeIndex(inits)
    lead = pd.to_timedelta(np.arange(1, leads + 1) * 6, unit="h")
    data = {}
    for name in truth.data_vars:
        x = truth[name]
        start = x.sel(time=init).values  # (init, grid)
        values = np.repeat(start[:, None, :], leads, axis=1)
        if ring is not None:
            for k in range(leads):
                valid = x.sel(time=init + lead[k]).values
                values[:, k, ring] = valid[:, ring]
        data[name] = (("init_time", "lead_time", "grid"), values)
    coords = {"init_time": init, "lead_time": lead, "latitude": truth["latitude"],
              "longitude": truth["longitude"]}
    attrs = {"domain": truth.attrs["domain"], "trained_on": "global"}
    if ring is not None:
        coords["forced"] = ("grid", ring)
        attrs["boundary_cells"] = 2
    return xr.Dataset(data, coords=coords, attrs=attrs)


@pytest.fixture(scope="module")
def lam():
    grid = grids.lambert_conformal("lam", lat_0=45.0, lon_0=-100.0, nx=13, ny=11, dx_m=60e3)
    truth = synthetic_truth(grid)
    ring = grids.boundary_distance_cells(grid) < 2
    inits = truth["time"].values[12:20]  # after the training period
    return grid, truth, ring, frozen_forecast(truth, inits, 3, ring)


def test_skill_maps_against_hand_computed_errors(lam):
    grid, truth, ring, fc = lam
    maps = evaluation.skill_maps(fc, truth, TRAIN)
    assert dict(maps["z_500"].sizes) == {"forecast": 3, "metric": 4, "lead_time": 3,
                                         "grid": grid.size}
    assert list(maps["forecast"].values) == ["model", "persistence", "climatology"]
    assert list(maps["metric"].values) == ["mse", "rmse", "skill_vs_persistence",
                                           "skill_vs_climatology"]
    assert maps.attrs["grid_shape"] == [11, 13] and maps.attrs["crs"] == grid.crs
    # the forced ring is out: NaN in every map, weight 0; the weights average 1 over the rest
    assert maps.attrs["forced_points"] == "excluded" and (maps["forced"].values == ring).all()
    assert maps.attrs["scored_points"].startswith(f"{int((~ring).sum())} of {grid.size} points")
    assert np.isnan(maps["z_500"].values[..., ring]).all()
    assert (maps["area_weight"].values[ring] == 0).all()
    np.testing.assert_allclose(maps["area_weight"].values[~ring].mean(), 1.0)
    every = evaluation.skill_maps(fc, truth, TRAIN, include_forced=True)
    assert every.attrs["forced_points"] == "included"
    np.testing.assert_allclose(every["area_weight"].values.mean(), 1.0)
    x = truth["t2m"]
    clim = x.sel(time=slice(*TRAIN)).groupby("time.hour").mean("time")
    for k in range(3):
        errors_p, errors_c = [], []
        for init in fc["init_time"].values:
            valid = init + fc["lead_time"].values[k]
            errors_p.append((x.sel(time=init).values - x.sel(time=valid).values) ** 2)
            hour = pd.Timestamp(valid).hour
            errors_c.append((clim.sel(hour=hour).values - x.sel(time=valid).values) ** 2)
        persistence, climatology = np.mean(errors_p, axis=0), np.mean(errors_c, axis=0)
        model = np.where(ring, 0.0, persistence)
        at = every["t2m"].isel(lead_time=k)
        np.testing.assert_array_equal(maps["t2m"].isel(lead_time=k).values[..., ~ring],
                                      at.values[..., ~ring])
        np.testing.assert_allclose(at.sel(forecast="persistence", metric="mse"), persistence)
        np.testing.assert_allclose(at.sel(forecast="climatology", metric="mse"), climatology)
        np.testing.assert_allclose(at.sel(forecast="model", metric="mse"), model, atol=1e-12)
        np.testing.assert_allclose(at.sel(forecast="model", metric="rmse"), np.sqrt(model),
                                   atol=1e-12)
        skill = at.sel(forecast="model", metric="skill_vs_persistence").values
        np.testing.assert_allclose(skill[ring], 1.0)  # the forced ring: perfect
        np.testing.assert_allclose(skill[~ring], 0.0, atol=1e-12)  # persistence itself
        np.testing.assert_allclose(at.sel(forecast="model", metric="skill_vs_climatology"),
                                   1 - model / climatology)
        # skill is only defined for the model
        assert np.isnan(at.sel(forecast="persistence", metric="skill_vs_climatology")).all()


def test_area_weighted_mse_maps_equal_the_aggregated_scores(lam):
    _, truth, _, fc = lam
    maps = evaluation.skill_maps(fc, truth, TRAIN)
    table = evaluation.interior(evaluation.scores(fc, truth, TRAIN))
    w = maps["area_weight"].values
    scored = w > 0
    for name in ("z_500", "t2m"):
        for forecast in ("model", "persistence", "climatology"):
            rows = table[(table.metric == "rmse") & (table.forecast == forecast)
                         & (table.variable == name)].sort_values("lead_hours")
            mse = maps[name].sel(forecast=forecast, metric="mse").values[..., scored]
            np.testing.assert_allclose(np.sqrt(np.average(mse, axis=-1, weights=w[scored])),
                                       rows["value"], rtol=1e-10)


def test_boundary_skill_bands_on_a_lam(lam):
    grid, truth, ring, fc = lam
    bands = evaluation.boundary_skill(fc, truth, TRAIN, band_cells=(0, 2, 4, 100))
    assert list(bands.columns) == evaluation.BOUNDARY_COLUMNS
    distance = grids.boundary_distance_cells(grid)  # 11 x 13: distances 0..5
    counts = [int(((distance >= lo) & (distance < hi)).sum()) for lo, hi in
              ((0, 2), (2, 4), (4, 100))]
    assert counts[0] == int(ring.sum())
    by = bands.set_index(["variable", "band", "lead_hours"])
    assert len(by) == 2 * 3 * 3
    assert set(bands["band_label"]) == {"[0, 2) forced", "[2, 4)", "[4, 100)"}
    w = evaluation.area_weights(truth).values
    maps = evaluation.skill_maps(fc, truth, TRAIN, include_forced=True)
    for b, (lo, hi) in enumerate(((0, 2), (2, 4), (4, 100))):
        pick = (distance >= lo) & (distance < hi)
        for k, h in enumerate((6.0, 12.0, 18.0)):
            row = by.loc[("z_500", b, h)]
            assert row["points"] == counts[b]
            assert row["forced_points"] == (counts[b] if b == 0 else 0)
            persistence = maps["z_500"].sel(forecast="persistence", metric="mse").values[k]
            assert row["persistence_mse"] == pytest.approx(
                np.average(persistence[pick], weights=w[pick]), rel=1e-10)
            assert row["skill_vs_persistence"] == pytest.approx(1.0 if b == 0 else 0.0,
                                                                abs=1e-12)
    # the same answer from precomputed maps, the forced points in them or not
    for given in (maps, evaluation.skill_maps(fc, truth, TRAIN)):
        again = evaluation.boundary_skill(fc, truth, TRAIN, (0, 2, 4, 100), maps=given)
        pd.testing.assert_frame_equal(again, bands)
    # an empty band (no point is 1000 cells in) is left out
    assert set(evaluation.boundary_skill(fc, truth, TRAIN, (0, 2, 1000, 2000))["band"]) == {0, 1}
    # a band holding some forced points says so
    split = evaluation.boundary_skill(fc, truth, TRAIN, (0, 1, 4, 100), maps=maps)
    first = split.drop_duplicates("band").set_index("band")
    assert list(first["band_label"]) == ["[0, 1) forced", "[1, 4) partly forced", "[4, 100)"]
    assert first.loc[1, "forced_points"] == int(((distance == 1)).sum())


def test_boundary_skill_is_empty_on_a_global_grid():
    grid = grids.regular_latlon(30.0)
    truth = synthetic_truth(grid)
    fc = frozen_forecast(truth, truth["time"].values[12:16], 2)
    bands = evaluation.boundary_skill(fc, truth, TRAIN)
    assert bands.empty and list(bands.columns) == evaluation.BOUNDARY_COLUMNS


def test_scorecard_pivots_the_scores(lam):
    _, truth, _, fc = lam
    table = evaluation.scores(fc, truth, TRAIN)
    card = evaluation.scorecard(table)
    assert list(card.index) == ["z_500", "t2m"] and list(card.columns) == [6.0, 12.0, 18.0]
    for name in card.index:
        for h in card.columns:
            row = table[(table.forecast == "model") & (table.metric == "skill_vs_persistence")
                        & (table.variable == name) & (table.lead_hours == h)
                        & (table.region == "interior")]
            assert card.loc[name, h] == row["value"].item()
    # persistence everywhere but the ring, which is out of the default scores: skill 0
    np.testing.assert_allclose(card.to_numpy(), 0.0, atol=1e-12)
    acc = evaluation.scorecard(table, "acc")
    assert acc.shape == card.shape
    with pytest.raises(WorkbenchError, match="no model rows for metric 'crps'") as err:
        evaluation.scorecard(table, "crps")
    assert "\n" not in str(err.value)
    with pytest.raises(WorkbenchError, match="region must be one of interior, forced_ring"):
        evaluation.scorecard(table, region="ring")


def test_perfect_ring_and_persistence_interior_score_zero_and_the_ring_one(lam):
    """A hand-made LAM forecast: the truth on the forced ring, persistence inside. The default
    aggregate skill is that of the interior, 0; the ring, reported apart, scores 1; counted
    together (the old scores) they would have given a skill between the two."""
    grid, truth, ring, fc = lam
    table = evaluation.scores(fc, truth, TRAIN)
    assert list(table.columns) == evaluation.SCORE_COLUMNS
    assert set(table.region) == {"interior", "forced_ring"}
    np.testing.assert_allclose(evaluation.scorecard(table).to_numpy(), 0.0, atol=1e-12)
    for ref in ("persistence", "climatology"):
        ring_card = evaluation.scorecard(table, f"skill_vs_{ref}", region="forced_ring")
        np.testing.assert_allclose(ring_card.to_numpy(), 1.0, atol=1e-12)
    # the interior's persistence RMSE by hand, over the interior points only
    w = evaluation.area_weights(truth).values[~ring]
    init, lead = fc["init_time"].values, fc["lead_time"].values
    x = truth["z_500"]
    for k in range(3):
        errors = [np.average(((x.sel(time=t).values - x.sel(time=t + lead[k]).values) ** 2)
                             [~ring], weights=w) for t in init]
        row = table[(table.region == "interior") & (table.forecast == "model")
                    & (table.metric == "rmse") & (table.variable == "z_500")
                    & (table.lead_hours == 6.0 * (k + 1))]
        assert row["value"].item() == pytest.approx(np.sqrt(np.mean(errors)), rel=1e-12)
    ring_rmse = table[(table.region == "forced_ring") & (table.forecast == "model")
                      & (table.metric == "rmse")]["value"]
    np.testing.assert_allclose(ring_rmse, 0.0, atol=1e-12)
    # every point counted together: between 0 and 1, the flattering number of before
    mixed = evaluation.scorecard(evaluation.scores(fc.drop_vars("forced"), truth, TRAIN))
    assert ((mixed > 0.05) & (mixed < 1)).all().all()
    note = evaluation.scoring_note(fc)
    assert (note["points"], note["forced_points"]) == (int((~ring).sum()), int(ring.sum()))
    assert "2-cell boundary ring forced from the truth" in note["note"]


def test_a_forecast_forced_everywhere_has_nothing_to_score(lam):
    _, truth, _, fc = lam
    every = fc.assign_coords(forced=("grid", np.ones(fc.sizes["grid"], bool)))
    for call in (lambda: evaluation.scores(every, truth, TRAIN),
                 lambda: evaluation.skill_maps(every, truth, TRAIN)):
        with pytest.raises(WorkbenchError, match="every point of domain 'lam' is forced") as err:
            call()
        assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- find_run


def fake_run(folder: Path, kind="training", status="finished", checkpoint=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"kind": kind, "status": status}))
    if checkpoint:
        (folder / "checkpoints").mkdir(exist_ok=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    return folder


def test_find_run_picks_the_latest_finished_training_run(tmp_path):
    runs = tmp_path / "runs"
    old = fake_run(runs / "03_training-a" / "train")
    new = fake_run(runs / "03_training-b" / "train")
    fake_run(runs / "03_training-c" / "train", status="failed")
    fake_run(runs / "03_training-d" / "train", checkpoint=False)
    fake_run(runs / "00_catalog_tour-e", kind=None, status="ok")  # a notebook run
    fake_run(runs / "a" / "b" / "c" / "too-deep")  # 4 levels below runs/
    (runs / "broken").mkdir()
    (runs / "broken" / "run.json").write_text("{not json")
    now = time.time()
    os.utime(old / "run.json", (now, now))
    os.utime(new / "run.json", (now - 100, now - 100))
    assert evaluation.find_run("", runs) == old.resolve()
    os.utime(new / "run.json", (now + 100, now + 100))
    assert evaluation.find_run("", runs) == new.resolve()
    assert evaluation.find_run(search=runs / "03_training-a") == old.resolve()  # depth 1
    nothing = tmp_path / "empty"
    nothing.mkdir()
    with pytest.raises(WorkbenchError, match="no finished training run under") as err:
        evaluation.find_run("", nothing)
    assert "\n" not in str(err.value) and "03_training" in str(err.value)
    assert "workbench train demo" in str(err.value)


def test_find_run_checks_a_given_run_dir(tmp_path, frozen_run):
    assert evaluation.find_run(str(frozen_run)) == frozen_run.resolve()
    with pytest.raises(WorkbenchError, match="no config.yaml"):
        evaluation.find_run(tmp_path)


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory) -> Path:
    """A run whose weights never moved (lr 0): its model is exactly persistence (plus the
    LAM boundary ring forced from the truth)."""
    tmp = tmp_path_factory.mktemp("frozen04")
    raw = training.config_dict(training.load_training_config("demo"))
    raw["model"].update(hidden_dim=8, processor_layers=1)
    raw.update(max_steps=1, val_rollout=2, val_batches=2, optimizer={"lr": 0.0},
               runs_dir=str(tmp / "runs"))
    raw["sampling"]["splits"]["test"] = ["2020-03-16", "2020-03-19T18:00"]  # 4 days: 14 windows
    return training.fit(training.training_config_from_dict(raw), run_dir=tmp / "run",
                        progress=False)


@pytest.fixture(scope="module")
def frozen(frozen_run):
    """Forecasts (2 leads, the test split), truths and scores of the frozen run."""
    config = evaluation.run_config(frozen_run)
    period = tuple(config.sampling["splits"]["train"])
    out = {}
    for domain in ("global", "conus", "europe"):
        fc = evaluation.forecast(frozen_run, domain, "test", steps=2, progress=False)
        truth = evaluation.truth_for(fc).load()
        out[domain] = (fc, truth, evaluation.scores(fc, truth, period))
    return period, out


def test_persistence_model_has_zero_skill_everywhere_on_global(frozen):
    period, out = frozen
    fc, truth, table = out["global"]
    maps = evaluation.skill_maps(fc[["z_500", "t2m"]], truth, period)
    for name in ("z_500", "t2m"):
        skill = maps[name].sel(forecast="model", metric="skill_vs_persistence").values
        assert np.isfinite(skill).all()
        np.testing.assert_allclose(skill, 0.0, atol=1e-6)
        model = maps[name].sel(forecast="model", metric="rmse").values
        persistence = maps[name].sel(forecast="persistence", metric="rmse").values
        np.testing.assert_allclose(model, persistence, rtol=1e-6)
    np.testing.assert_allclose(evaluation.scorecard(table).to_numpy(), 0.0, atol=1e-5)
    assert evaluation.boundary_skill(fc, truth, period).empty


@pytest.mark.parametrize("domain", ["conus", "europe"])
def test_forced_boundary_band_has_the_best_skill_on_a_lam(frozen, domain):
    period, out = frozen
    fc, truth, _ = out[domain]
    bands = evaluation.boundary_skill(fc[["z_500", "t2m"]], truth, period)
    assert list(bands["band_label"].unique()) == ["[0, 2) forced", "[2, 5)", "[5, 10)",
                                                  "[10, 20)", "[20, 1000)"]
    first = bands.drop_duplicates("band").set_index("band")
    assert first.loc[0, "forced_points"] == first.loc[0, "points"] == int(fc["forced"].sum())
    assert (first.loc[1:, "forced_points"] == 0).all()
    grid = grids.grid_from_dataset(catalog.open_dataset(domain))
    assert bands.drop_duplicates("band")["points"].sum() == grid.size
    for (_, _), rows in bands.groupby(["variable", "lead_hours"]):
        rows = rows.set_index("band")
        assert rows.loc[0, "model_mse"] == pytest.approx(0.0, abs=1e-6 * rows.loc[0, "persistence_mse"])
        assert rows.loc[0, "skill_vs_persistence"] == pytest.approx(1.0, abs=1e-6)
        assert rows["skill_vs_persistence"].idxmax() == 0
        inner = rows.loc[1:, "skill_vs_persistence"]
        np.testing.assert_allclose(inner, 0.0, atol=1e-6)  # persistence inside the ring


def test_notebook_summary_key_figures_and_scores(frozen, frozen_run):
    _, out = frozen
    tables = {d: table for d, (_, _, table) in out.items()}
    forecasts = {d: fc for d, (fc, _, _) in out.items()}
    summary = evaluation.notebook_summary(tables, frozen_run, forecasts=forecasts)
    assert list(summary)[0] == "key_figures"
    figures = summary["key_figures"]
    assert figures["unseen_domains"] == "europe"
    assert summary["unseen_domains"] == ["europe"]
    assert {d: v["unseen"] for d, v in summary["domains"].items()} == {
        "global": False, "conus": False, "europe": True}
    assert summary["run"]["trained_on"] == ["global", "conus"]
    for domain, table in tables.items():
        for ref in ("persistence", "climatology"):
            for lead in (6, 12):
                rows = table[(table.forecast == "model") & (table.metric == f"skill_vs_{ref}")
                             & (table.lead_hours == lead) & (table.region == "interior")]
                assert figures[f"skill_vs_{ref}_{domain}_{lead}h"] == pytest.approx(
                    rows["value"].mean())
        # a persistence model has no skill over persistence once the forced ring is out
        assert abs(figures[f"skill_vs_persistence_{domain}_6h"]) < 1e-3
    assert figures["beats_persistence_global_z_500"] is False
    # what was scored and how, per domain
    assert "forced_ring" in summary["scored_points"]
    scoring = {d: v["scoring"] for d, v in summary["domains"].items()}
    assert scoring["global"]["forced_points"] == 0 and scoring["conus"]["forced_points"] == 740
    assert scoring["europe"]["points"] + scoring["europe"]["forced_points"] == 7440
    assert scoring["europe"]["normalisation"] == "training"
    assert "global, conus" in scoring["europe"]["normalisation_note"]
    # every aggregated score, with its domain and region
    records = pd.DataFrame(summary["scores"])
    assert len(records) == sum(len(t) for t in tables.values())
    rmse = records[records.metric == "rmse"]
    assert set(rmse.domain) == set(tables) and set(rmse.forecast) == {
        "model", "persistence", "climatology"}
    # interior: domains x forecasts x variables x leads; the ring of the two LAMs apart
    assert (rmse.region == "interior").sum() == 3 * 3 * 8 * 2
    assert set(rmse[rmse.region == "forced_ring"].domain) == {"conus", "europe"}
    assert (rmse.region == "forced_ring").sum() == 2 * 3 * 8 * 2
    json.dumps(summary, allow_nan=False)  # strict JSON: NaN written as null


def test_notebook_summary_of_hand_made_tables(frozen_run):
    rows = []
    for domain, skills in (("global", (0.5, -0.25)), ("europe", (0.25, 0.75))):
        for name, sign in (("z_500", 1), ("t2m", -1)):
            for lead, value in zip((6.0, 12.0), skills, strict=True):
                rows.append((domain, "model", "skill_vs_persistence", name, lead, sign * value))
                rows.append((domain, "model", "skill_vs_climatology", name, lead, value / 2))
                rows.append((domain, "persistence", "rmse", name, lead, np.nan))
    frame = pd.DataFrame(rows, columns=["domain", "forecast", "metric", "variable",
                                        "lead_hours", "value"])
    tables = {d: t.drop(columns="domain") for d, t in frame.groupby("domain", sort=False)}
    summary = evaluation.notebook_summary(tables, frozen_run)
    figures = summary["key_figures"]
    assert figures["skill_vs_persistence_global_6h"] == 0.0  # (0.5 - 0.5) / 2
    assert figures["skill_vs_climatology_europe_12h"] == 0.375
    assert figures["beats_persistence_global_z_500"] is False  # -0.25 at 12 h
    assert figures["beats_persistence_europe_z_500"] is True
    assert figures["beats_persistence_europe_t2m"] is False
    assert figures["unseen_domains"] == "europe"
    assert [r["value"] for r in summary["scores"] if r["metric"] == "rmse"] == [None] * 8


# --------------------------------------------------------------------------- plots


def test_plots_draw_from_the_evaluation_outputs(lam):
    _, truth, _, fc = lam
    maps = evaluation.skill_maps(fc, truth, TRAIN)
    table = evaluation.scores(fc, truth, TRAIN)
    ax = plotting_skill.skill_map(maps, "t2m", 12.0)
    low, high = ax.collections[0].get_clim()
    assert (low, high) == (-1.0, 1.0)  # centred on 0
    plt.close("all")
    fig = plotting_skill.skill_maps_figure(maps, ["z_500", "t2m"])
    assert len([a for a in fig.axes if hasattr(a, "coastlines")]) == 2 * 2 * 2
    assert "domain mean" in fig.axes[0].get_title()
    assert "points forced from the truth left out" in fig._suptitle.get_text()
    plt.close("all")
    axes = plotting_skill.lead_time_curves(table, ["z_500", "t2m"])
    assert len(axes) == 2 and len(axes[0].get_lines()) == 3
    model = axes[0].get_lines()[0].get_ydata()
    expected = table[(table.metric == "rmse") & (table.forecast == "model")
                     & (table.variable == "z_500")
                     & (table.region == "interior")].sort_values("lead_hours")["value"]
    np.testing.assert_allclose(model, expected)
    plt.close("all")
    card = evaluation.scorecard(table)
    ax = plotting_skill.scorecard_plot(card)
    assert len(ax.texts) == card.size
    plt.close("all")
    bands = evaluation.boundary_skill(fc, truth, TRAIN, (0, 2, 4, 100))
    axes = plotting_skill.boundary_curves(bands)
    assert len(axes) == 2 and len(axes[0].get_lines()) == 3 + 1  # 3 leads and the 0 line
    plt.close("all")
    hv_map = plotting_skill.interactive_skill_map(maps, "z_500")
    assert hv_map is not None


# --------------------------------------------------------------------------- the notebook


@pytest.mark.slow
def test_skill_maps_notebook_run_and_report(tmp_path):
    """Notebook 04 through the CLI on a small trained run: scores for global, conus and the
    unseen europe, numbers checked against an independent persistence computation and a
    forecast made here, and the report renders offline."""
    raw = training.config_dict(training.load_training_config("demo"))
    raw["model"].update(hidden_dim=16)
    raw.update(max_steps=10, val_every=1000, val_batches=1, checkpoint_every=1000)
    # notebook 04 forecasts every window of the run's test split: 6 of its 16 days (the
    # anemoi file's 2020-03-20 to 03-21 inside)
    assert raw["sampling"]["splits"]["test"] == ["2020-03-16", "2020-03-31T18:00"]
    raw["sampling"]["splits"]["test"] = ["2020-03-16", "2020-03-21T18:00"]
    run = training.fit(training.training_config_from_dict(raw), run_dir=tmp_path / "train",
                       progress=False)
    # a forecast made elsewhere, as anemoi-inference writes it: t2m = truth + 0.1 K (anemoi's
    # 2t), z_500 = the initial state at every lead (persistence)
    global_truth = catalog.open_dataset("global")
    init = np.datetime64("2020-03-20T00:00")
    hours = [0, 6, 12, 18, 24]
    valid = [init + np.timedelta64(h, "h") for h in hours]
    anemoi_inference_netcdf(
        tmp_path / "anemoi.nc", init, hours,
        {"2t": global_truth["t2m"].sel(time=valid).values + np.float32(0.1),
         "z_500": np.repeat(global_truth["z_500"].sel(time=init).values[None], 5, axis=0)},
        global_truth["latitude"].values, global_truth["longitude"].values)
    run_dir, summary = run_via_cli(tmp_path, "04_skill_maps", "run_dir", str(run),
                                   "forecast_files", json.dumps([str(tmp_path / "anemoi.nc")]),
                                   "forecast_truth", "global")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
    assert list(summary)[0] == "key_figures"
    assert {d: v["unseen"] for d, v in summary["domains"].items()} == {
        "global": False, "conus": False, "europe": True, "external-global": False}
    assert summary["domains"]["external-global"]["forecast_files"] == str(tmp_path / "anemoi.nc")
    external = pd.DataFrame(summary["scores"]).query("domain == 'external-global'")
    model = external[external.forecast == "model"]
    assert sorted(model.lead_hours.unique()) == [6.0, 12.0, 18.0, 24.0]
    np.testing.assert_allclose(model.query("metric == 'rmse' and variable == 't2m'").value, 0.1,
                               atol=2e-5)
    assert (model.query("metric == 'skill_vs_persistence' and variable == 'z_500'").value
            == 0).all()
    assert set(external.region) == {"interior"}  # no forced ring in a file made elsewhere
    figures = summary["key_figures"]
    assert figures["unseen_domains"] == "europe"
    for domain in ("global", "conus", "europe"):
        for ref in ("persistence", "climatology"):
            for lead in (6, 24):
                assert np.isfinite(figures[f"skill_vs_{ref}_{domain}_{lead}h"])
        assert isinstance(figures[f"beats_persistence_{domain}_z_500"], bool)
    scores = pd.DataFrame(summary["scores"]).query("domain != 'external-global'")
    assert set(scores[scores.region == "forced_ring"].domain) == {"conus", "europe"}
    scores = scores[scores.region == "interior"]
    rmse = scores[scores.metric == "rmse"].set_index(["domain", "forecast", "variable",
                                                      "lead_hours"])["value"]
    assert len(rmse) == 3 * 3 * 8 * 4
    assert {r["domain"] for r in summary["boundary"]} == {"conus", "europe"}
    assert {r["band_label"] for r in summary["boundary"] if r["band"] == 0} == {"[0, 2) forced"}
    # the scored-points note: what each domain's scores cover and how it was normalised
    assert "interior" in summary["scored_points"] and "forced_ring" in summary["scored_points"]
    scoring = {d: v["scoring"] for d, v in summary["domains"].items()}
    assert scoring["global"]["note"] == "all 10512 points scored (none is forced from the truth)"
    assert scoring["conus"]["note"].startswith("7590 of 8330 points scored (interior): the 740 ")
    assert scoring["europe"]["forced_points"] > 0 and scoring["europe"]["boundary_cells"] == 2
    assert scoring["europe"]["normalisation"] == "training"
    assert "training domains' statistics" in scoring["europe"]["normalisation_note"]
    assert "as in training" in scoring["conus"]["normalisation_note"]

    # persistence RMSE of global z_500 from the data itself: 20 test windows from 16 March
    truth = catalog.open_dataset("global")["z_500"].load()
    weights = grids.area_weights(grids.grid_from_dataset(catalog.open_dataset("global")))
    inits = pd.date_range("2020-03-16", "2020-03-20T18:00", freq="6h")
    for k in (1, 4):
        errors = [np.average((truth.sel(time=t).values - truth.sel(time=t + k * H6).values) ** 2,
                             weights=weights) for t in inits]
        assert rmse[("global", "persistence", "z_500", 6.0 * k)] == pytest.approx(
            np.sqrt(np.mean(errors)), rel=1e-6)
    # the model's scores against a forecast of the same run made here
    fc = evaluation.forecast(run, "europe", "test", steps=4, progress=False)
    table = evaluation.scores(fc, evaluation.truth_for(fc).load(),
                              tuple(evaluation.run_config(run).sampling["splits"]["train"]))
    mine = table[(table.metric == "rmse") & (table.forecast == "model")
                 & (table.region == "interior")]
    for row in mine.itertuples():
        assert rmse[("europe", "model", row.variable, row.lead_hours)] == pytest.approx(
            row.value, rel=1e-5)
    # lead curves 4, scorecards 2, skill maps 4, boundary curves 2; the interactive map
    html = run_dir / "report.html"
    assert html.stat().st_size < 15e6
    assert_renders_offline(html, bokeh_plots=1, images=12)
