"""Forecast files out and in: CF files on the grid's own dims, read back to the same scores;
forecasts made elsewhere (anemoi-inference's netCDF output) scored by ``evaluate --forecast``."""

from __future__ import annotations

import json
from pathlib import Path

import helpers
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from workbench import catalog, cli, evaluation
from workbench import forecast_files as ff

TRAIN = ("2020-01-01", "2020-02-29T18:00")


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory) -> Path:
    """A tiny run whose weights never moved (lr 0)."""
    return helpers.frozen_run(tmp_path_factory.mktemp("frozen") / "run", val_rollout=1,
                              val_batches=1)


def _units(ds: xr.Dataset) -> dict:
    truth = catalog.open_dataset(ds.attrs["dataset"])
    return {name: dict(truth[name].attrs) for name in ds.data_vars}


@pytest.mark.timeout(300)
def test_run_forecast_as_cf_on_a_projected_grid_scores_as_in_memory(frozen_run, tmp_path):
    """conus (Lambert conformal, a forced ring): zarr and netCDF on (y, x) with 2-D
    latitude/longitude and the projection, CF times; read back, every score, map and band is
    the in-memory forecast's exactly."""
    fc = evaluation.forecast(frozen_run, "conus", "test", steps=1, progress=False)
    fc = fc.isel(init_time=slice(0, 12))
    truth = evaluation.truth_for(fc)
    want = evaluation.scores(fc, truth, TRAIN)
    want_maps = evaluation.skill_maps(fc[["t2m"]], truth, TRAIN)
    want_bands = evaluation.boundary_skill(fc[["t2m"]], truth, TRAIN)
    for suffix in ("zarr", "nc"):
        path = ff.write_forecast(fc, tmp_path / f"conus.{suffix}", None, _units(fc))
        raw = xr.open_dataset(path, engine="zarr" if suffix == "zarr" else "netcdf4")
        assert raw["t2m"].dims == ("forecast_reference_time", "lead_time", "y", "x")
        assert raw.sizes["y"] == 70 and raw.sizes["x"] == 119
        assert raw["x"].attrs["standard_name"] == "projection_x_coordinate"
        np.testing.assert_allclose(np.diff(raw["y"].values), 45e3)  # conus: 45 km cells
        assert raw["latitude"].dims == ("y", "x") and raw["latitude"].attrs["units"] == (
            "degrees_north")
        np.testing.assert_array_equal(raw["latitude"].values.ravel(), fc["latitude"].values)
        assert raw["t2m"].attrs["units"] == "K"
        assert raw["t2m"].attrs["standard_name"] == "air_temperature"
        assert raw["z_500"].attrs["standard_name"] == "geopotential"
        assert raw["u10"].attrs["standard_name"] == "eastward_wind"
        assert raw["t2m"].attrs["grid_mapping"] == "crs"
        assert raw["crs"].attrs["grid_mapping_name"] == "lambert_conformal_conic"
        np.testing.assert_allclose(raw["crs"].attrs["standard_parallel"], 38.5)
        assert raw["forecast_reference_time"].attrs["standard_name"] == "forecast_reference_time"
        assert raw["lead_time"].attrs["standard_name"] == "forecast_period"
        assert raw["lead_time"].encoding["units"] == "hours"
        assert raw["lead_time"].values[0] == np.timedelta64(6, "h")
        np.testing.assert_array_equal(raw["time"].values, fc["init_time"].values[:, None]
                                      + fc["lead_time"].values[None, :])
        assert int(raw["forced"].sum()) == int(fc["forced"].sum()) == 740
        assert raw.attrs["Conventions"] == "CF-1.8"
        back = ff.read_forecast(path)
        assert list(back.data_vars) == list(fc.data_vars)
        np.testing.assert_array_equal(back["t2m"].values, fc["t2m"].values)
        pd.testing.assert_frame_equal(evaluation.scores(back, truth, TRAIN), want)
        xr.testing.assert_identical(evaluation.skill_maps(back[["t2m"]], truth, TRAIN),
                                    want_maps)
        pd.testing.assert_frame_equal(evaluation.boundary_skill(back[["t2m"]], truth, TRAIN),
                                      want_bands)


@pytest.mark.timeout(300)
def test_run_forecast_on_a_global_latlon_grid(frozen_run, tmp_path):
    """global (regular lat-lon, no ring), one forecast of the run (``start``): netCDF on
    (latitude, longitude) axes; read back, its scores are the in-memory forecast's."""
    fc = evaluation.forecast(frozen_run, "global", steps=2, progress=False,
                             start="2020-03-20T00:00")
    truth = evaluation.truth_for(fc)
    path = ff.write_forecast(fc, tmp_path / "global.nc", None, _units(fc))
    raw = xr.open_dataset(path)
    assert raw["z_500"].dims == ("forecast_reference_time", "lead_time", "latitude",
                                 "longitude")
    assert raw["latitude"].attrs["standard_name"] == "latitude" and raw.sizes["longitude"] == 144
    assert int(raw["forced"].sum()) == 0 and "crs" not in raw.variables
    assert str(raw["forecast_reference_time"].values[0])[:16] == "2020-03-20T00:00"
    back = ff.read_forecast(path)
    pd.testing.assert_frame_equal(evaluation.scores(back, truth, TRAIN),
                                  evaluation.scores(fc, truth, TRAIN))


def test_global_latlon_forecast_on_latitude_longitude(tmp_path):
    """A regular lat-lon forecast (here the truth + 0.1 K) on (latitude, longitude) axes, an
    ensemble's member dim as CF's realization; read back in the canonical layout."""
    truth = catalog.open_dataset("global")
    init = truth["time"].values[[240, 250]]
    lead = pd.to_timedelta(["6h", "12h"]).to_numpy()
    valid = init[:, None] + lead[None, :]
    t2m = truth["t2m"].sel(time=valid.ravel()).values.reshape(2, 2, -1) + np.float32(0.1)
    members = np.stack([t2m, t2m + 1], axis=2).astype(np.float32)  # [init, lead, member, grid]
    fc = xr.Dataset({"t2m": (("init_time", "lead_time", "member", "grid"), members)},
                    coords={"init_time": init, "lead_time": lead,
                            "latitude": truth["latitude"], "longitude": truth["longitude"]},
                    attrs={"dataset": "global", "domain": "global",
                           **{k: truth.attrs[k] for k in ("grid_kind", "grid_shape", "crs")}})
    path = ff.write_forecast(fc, tmp_path / "g.nc", None, _units(fc))
    raw = xr.open_dataset(path)
    assert raw["t2m"].dims == ("forecast_reference_time", "lead_time", "member", "latitude",
                               "longitude")
    assert raw.sizes["latitude"] == 73 and raw.sizes["longitude"] == 144
    assert raw["latitude"].values[0] == 90 and raw["longitude"].values[1] == 2.5
    assert raw["member"].attrs["standard_name"] == "realization"
    assert "grid_mapping" not in raw["t2m"].attrs and "forced" not in raw.variables
    back = ff.read_forecast(path)
    assert back["t2m"].dims == ("init_time", "lead_time", "member", "grid")
    np.testing.assert_array_equal(back["t2m"].values, members)
    np.testing.assert_array_equal(back["lead_time"].values, lead)
    # a point set (no grid_shape): a values dim, the points in their order
    points = fc.isel(grid=slice(0, 500))
    points.attrs = {"dataset": "global", "grid_kind": "points"}
    raw = xr.open_dataset(ff.write_forecast(points, tmp_path / "p.nc", None, _units(fc)))
    assert raw["t2m"].dims == ("forecast_reference_time", "lead_time", "member", "values")
    back = ff.read_forecast(tmp_path / "p.nc")
    np.testing.assert_array_equal(back["t2m"].values, members[..., :500])
    np.testing.assert_array_equal(back["longitude"].values, truth["longitude"].values[:500])


def anemoi_inference_netcdf(path: Path, init, hours: list[int], fields: dict[str, np.ndarray],
                            latitude: np.ndarray, longitude: np.ndarray,
                            epoch: bool = False) -> None:
    """A file as anemoi-inference's ``NetCDFOutput`` writes one (netCDF4, not the
    workbench's writer): dims ``time`` and ``values``; ``time`` int seconds since the initial
    time (gregorian); float32 ``latitude``/``longitude`` on values; one (time, values)
    float32 variable a field, named as in the checkpoint; the initial state (lead 0) written
    first. ``epoch``: as later versions, ``time`` float seconds since 1970 (unlimited),
    float64 coordinates, NaN as fill and missing value."""
    nc = netCDF4.Dataset(path, "w", format="NETCDF4")
    nc.createDimension("values", latitude.size)
    nc.createDimension("time", None if epoch else len(hours))
    time = nc.createVariable("time", "f8" if epoch else "i4", ("time",))
    start = pd.Timestamp("1970-01-01") if epoch else pd.Timestamp(init)
    time.units = f"seconds since {start}"
    if not epoch:
        time.long_name, time.calendar = "time", "gregorian"
    for name, values, units in (("latitude", latitude, "degrees_north"),
                                ("longitude", longitude, "degrees_east")):
        var = nc.createVariable(name, "f8" if epoch else "f4", ("values",))
        var.units, var.long_name = units, name
        var[:] = values
    for name, values in fields.items():
        var = nc.createVariable(name, "f4", ("time", "values"), chunksizes=(1, latitude.size),
                                fill_value=np.nan if epoch else None)
        if epoch:
            var.missing_value = np.float32(np.nan)
        var[:] = values
    offset = (pd.Timestamp(init) - start).total_seconds()
    time[:] = [offset + h * 3600 for h in hours]
    nc.close()


def _evaluate_json(capsys, *argv: str) -> dict:
    code = cli.main(["evaluate", *argv, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


@pytest.mark.timeout(300)
def test_anemoi_inference_output_scored_against_the_truth(tmp_path, capsys):
    """anemoi-inference netCDF files (two initial times, one in each time layout, points
    shuffled, longitudes 0..360, anemoi's ``2t``): 2t = truth + 0.1 K has RMSE 0.1; z_500 = the initial state at
    every lead is persistence (skill 0, RMSE persistence's); every score equals scoring the
    same values in the canonical layout the normal way."""
    truth = catalog.open_dataset("global")
    perm = np.random.default_rng(0).permutation(truth.sizes["grid"])
    hours = [0, 6, 12]
    inits = truth["time"].values[[260, 270]]
    canonical = []
    for k, init in enumerate(inits):
        valid = [init + np.timedelta64(h, "h") for h in hours]
        t2m = truth["t2m"].sel(time=valid).values + np.float32(0.1)
        z500 = np.repeat(truth["z_500"].sel(time=init).values[None], 3, axis=0)
        anemoi_inference_netcdf(tmp_path / f"an{k}.nc", init, hours,
                                {"2t": t2m[:, perm], "z_500": z500[:, perm], "msl": z500[:, perm]},
                                truth["latitude"].values[perm], truth["longitude"].values[perm]
                                % 360, epoch=k == 1)
        canonical.append((t2m[1:], z500[1:]))
    got = _evaluate_json(capsys, "--forecast", str(tmp_path / "an1.nc"), str(tmp_path / "an0.nc"),
                         "--truth", "global")
    table = pd.DataFrame(got["scores"])
    assert got["train_period"] == ["2020-01-01T00:00:00", "2020-03-04T06:00:00"]  # first 70 %
    assert got["scoring"]["forced_points"] == 0 and set(table.region) == {"interior"}
    model = table[table.forecast == "model"].set_index(["metric", "variable", "lead_hours"])
    model = model.sort_index()
    np.testing.assert_allclose(model.loc[("rmse", "t2m"), "value"], 0.1, atol=2e-5)
    np.testing.assert_allclose(model.loc[("bias", "t2m"), "value"], 0.1, atol=2e-5)
    assert (model.loc[("skill_vs_persistence", "z_500"), "value"] == 0).all()
    assert set(table.variable) == {"t2m", "z_500"}  # msl: not a variable of the truth
    # the same values in the canonical layout, scored as a run's forecast is
    lead = pd.to_timedelta([6, 12], unit="h").to_numpy()
    fc = xr.Dataset({"t2m": (("init_time", "lead_time", "grid"),
                             np.stack([c[0] for c in canonical])),
                     "z_500": (("init_time", "lead_time", "grid"),
                               np.stack([c[1] for c in canonical]))},
                    coords={"init_time": inits, "lead_time": lead})
    want = evaluation.scores(fc, truth[["t2m", "z_500"]].load(), tuple(got["train_period"]))
    interval = ["ci_low", "ci_high", "significant"]  # in the JSON on skill rows only
    pd.testing.assert_frame_equal(table.drop(columns=interval), want.drop(columns=interval),
                                  check_exact=True)
    skill = want.metric.str.startswith("skill_vs_")
    pd.testing.assert_frame_equal(table.loc[skill, interval].astype({"significant": bool}),
                                  want.loc[skill, interval], check_exact=True)
    assert table.loc[~skill, interval].isna().all().all()
    # a --variables mapping and a --train-period of the caller's
    got = _evaluate_json(capsys, "--forecast", str(tmp_path / "an0.nc"), "--truth", "global",
                         "--variables", "2t=t2m", "--train-period", *TRAIN)
    assert got["train_period"] == list(TRAIN) and len(got["scores"]) > 0


def test_weatherbench2_layout_scored_against_the_truth(tmp_path):
    """WeatherBench 2's forecast layout (``time`` the initial times, ``prediction_timedelta``,
    latitudes ascending, its own variable name): truth + 0.1 K scores RMSE 0.1 through a
    --variables mapping."""
    truth = catalog.open_dataset("global")
    init = truth["time"].values[[250, 251]]
    lead = pd.to_timedelta([6, 12], unit="h").to_numpy()
    valid = (init[:, None] + lead[None]).ravel()
    t2m = truth["t2m"].sel(time=valid).values.reshape(2, 2, 73, 144) + np.float32(0.1)
    lat = truth["latitude"].values.reshape(73, 144)[:, 0]
    lon = truth["longitude"].values.reshape(73, 144)[0]
    xr.Dataset({"2m_temperature": (("time", "prediction_timedelta", "latitude", "longitude"),
                                   t2m[:, :, ::-1])},
               coords={"time": init, "prediction_timedelta": lead, "latitude": lat[::-1],
                       "longitude": lon}).to_zarr(tmp_path / "wb2.zarr", consolidated=False)
    fc, scored_truth = ff.external_forecast(tmp_path / "wb2.zarr", "global",
                                            ff.parse_variables(["2m_temperature=t2m"]))
    assert list(fc.data_vars) == ["t2m"] and fc.attrs["split"] == "external"
    table = evaluation.scores(fc, scored_truth, ff.climatology_period(scored_truth))
    rmse = table.query("forecast == 'model' and metric == 'rmse'")["value"]
    np.testing.assert_allclose(rmse, 0.1, atol=2e-5)
    assert len(rmse) == 2
