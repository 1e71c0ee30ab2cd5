"""Calendars and time steps from the data (issue 12, parts 4 and 6).

The corpus, written by the tests as the sources write it:

- ``clim``: a climate model's 3-hourly output in a 360_day calendar, as CMOR writes it with
  netCDF4: ``time`` in float64 ``days since 1850-01-01`` with ``calendar: 360_day``, 1-D
  ``lat``/``lon`` axes, ``tas(time, lat, lon)`` in K; 2000-02-21 .. 2000-03-10 (2000-02-30 is
  one of its days);
- ``nl``: the same in a noleap calendar across 2001-02-28 / 2001-03-01 (no 29 February);
- ``hourly`` and ``six``: the embedded world on a 10 degree grid every hour and every 6 hours
  (HRRR-like and GFS-like steps), trained together at 6 h; ``four``: every 4 hours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from corpus import DAY0_360, LAT, LON, climate_netcdf
from helpers import write_entry

from workbench import catalog, cli, forcings, forecast_files, sampling, times
from workbench.errors import WorkbenchError
from workbench.statistics import compute_statistics

pytestmark = pytest.mark.timeout(600)

def entry(folder: Path, name: str, path: Path, step: str, variables: str = "{t2m: tas}") -> None:
    write_entry(folder, name, f"""\
name: {name}
domain: global
source: {{kind: netcdf, path: {path}}}
variables: {variables}
time_step: {step}
grid: {{kind: regular_latlon, resolution: 20 x 22.5 deg}}
""")


CLIM_DAYS = DAY0_360 + 50 + np.arange(20 * 8) / 8  # 2000-02-21 00:00 .. 2000-03-10 21:00, 3 h
NOLEAP_DAYS = 151 * 365 + 55 + np.arange(6 * 4) / 4  # 2001-02-25 .. 2001-03-02, 6 h


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The climate files and their catalog folder; the values written, by dataset."""
    folder = tmp_path_factory.mktemp("calendars")
    values = {"clim": climate_netcdf(folder / "clim.nc", "360_day", CLIM_DAYS),
              "nl": climate_netcdf(folder / "nl.nc", "noleap", NOLEAP_DAYS)}
    entry(folder / "cat", "clim", folder / "clim.nc", "3h")
    entry(folder / "cat", "nl", folder / "nl.nc", "6h")
    return folder / "cat", values


@pytest.fixture
def using(corpus, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CATALOG", str(corpus[0]))
    return corpus[1]


def _run(argv, capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- opening


def test_360_day_file_opens_shows_and_keeps_its_calendar(corpus, capsys):
    folder, values = corpus
    ds = catalog.open_dataset("clim", catalog=[folder])
    t = ds["time"].values
    assert isinstance(t[0], cftime.Datetime360Day) and t.size == 160
    assert times.iso(t[0]) == "2000-02-21T00:00:00" and times.iso(t[-1]) == "2000-03-10T21:00:00"
    assert "2000-02-30T12:00:00" in times.iso_list(t)  # a day the standard calendar lacks
    np.testing.assert_array_equal(ds["t2m"].values, values["clim"].reshape(160, -1))
    code, out, err = _run(["data", "show", "clim", "--catalog", str(folder)], capsys)
    assert code == 0, err
    assert "period: 2000-02-21T00:00:00 .. 2000-03-10T21:00:00 (160 steps of 0 days 03:00:00)" \
        in out
    info = catalog.describe(ds)
    assert info["period"]["calendar"] == "360_day" and info["period"]["time_step"] == \
        "0 days 03:00:00"


def test_noleap_file_has_no_29_february(corpus):
    folder, values = corpus
    ds = catalog.open_dataset("nl", catalog=[folder])
    stamps = times.iso_list(ds["time"].values)
    i = stamps.index("2001-02-28T18:00:00")
    assert stamps[i + 1] == "2001-03-01T00:00:00"  # 6 h later: 28 February is the last day
    assert catalog.describe(ds)["period"]["calendar"] == "noleap"
    with pytest.raises(WorkbenchError, match="'2000-02-29' is not a date of the noleap calendar"):
        times.parse_date("2000-02-29", ds["time"].values, "split train")
    stats = compute_statistics(ds, ["t2m"], "2001-02-28", "2001-03-01")
    assert stats["t2m"].mean == pytest.approx(values["nl"][i - 3:i + 2].astype(np.float64).mean())


def test_statistics_over_a_360_day_period(corpus, tmp_path, capsys):
    """``data stats --start 2000-02-29 --end 2000-02-30T21:00``: the mean and std of the 16
    fields of those two 360_day days (indices 64..79), against numpy on the values written."""
    folder, values = corpus
    code, out, err = _run(["data", "stats", "clim", "--catalog", str(folder), "--json",
                           "--cache", str(tmp_path), "--start", "2000-02-29",
                           "--end", "2000-02-30T21:00"], capsys)
    assert code == 0, err
    stats = json.loads(out)
    block = values["clim"][8 * 8:10 * 8].astype(np.float64)
    row = stats["variables"]["t2m"]
    assert row["mean"] == pytest.approx(block.mean(), rel=1e-6)
    assert row["std"] == pytest.approx(block.std(), rel=1e-5)
    code, _, err = _run(["data", "stats", "clim", "--catalog", str(folder), "--cache",
                         str(tmp_path), "--start", "2000-02-31"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "'2000-02-31' is not a date of the 360_day calendar" in err


def test_tiling_index_carries_360_day_times(using, tmp_path):
    from workbench.tiling import TilingConfig, tile_index

    ds = catalog.open_dataset("clim")
    table = tile_index(ds, TilingConfig(tile_size=None, n_time_window=2,
                                        aggregate_variable="t2m"), "clim", tmp_path)
    assert len(table) == 159
    assert table["time"].iloc[72] == "2000-02-30T00:00:00"  # window 72 starts on 30 February
    assert (table["t_index"].to_numpy() == np.arange(159)).all()


def test_graph_on_the_360_day_grid(corpus, tmp_path, capsys):
    folder, _ = corpus
    config = tmp_path / "g.yaml"
    config.write_text("name: g-clim\ndata: {datasets: [clim]}\nhidden: {kind: icosahedral, "
                      "level: 1}\nencoder: {kind: knn, k: 3}\ndecoder: {kind: knn, k: 3}\n")
    code, _, err = _run(["graph", "build", str(config), "--out", str(tmp_path / "g.pt"),
                         "--catalog", str(folder)], capsys)
    assert code == 0, err
    from workbench.graphs import load_graph

    assert load_graph(tmp_path / "g.pt")["data"].x.shape[0] == LAT.size * LON.size


# --------------------------------------------------------------------------- time axes


@pytest.mark.parametrize(("days", "words"), [
    (np.array([0, 0.25, 0.5, 1.0, 1.25]), ["not evenly spaced", "1850-01-02T00:00:00 (index 3)",
                                           "12h after 1850-01-01T12:00:00", "are 6h"]),
    (np.array([0, 0.25, 0.25, 0.5]), ["time 1850-01-01T06:00:00 appears twice", "index 1 and 2",
                                      "drop_duplicates"]),
    (np.array([0, 0.5, 0.25, 0.75]), ["not strictly increasing at index 2",
                                      "1850-01-01T12:00:00 then 1850-01-01T06:00:00"]),
], ids=["gap", "duplicate", "decreasing"])
def test_unusable_time_axes_are_one_line(tmp_path, days, words):
    climate_netcdf(tmp_path / "bad.nc", "360_day", days)
    entry(tmp_path / "cat", "bad", tmp_path / "bad.nc", "6h")
    with pytest.raises(WorkbenchError) as err:
        catalog.open_dataset("bad", catalog=[tmp_path / "cat"])
    message = str(err.value)
    assert message.startswith("dataset 'bad': ") and "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_catalog_time_step_is_checked_against_the_data(tmp_path):
    climate_netcdf(tmp_path / "c.nc", "360_day", np.arange(8) / 8)
    entry(tmp_path / "cat", "c", tmp_path / "c.nc", "6h")
    with pytest.raises(WorkbenchError, match=r"dataset 'c': its times are 3h apart but .*c\.yaml "
                                             r"says time_step: 6h"):
        catalog.open_dataset("c", catalog=[tmp_path / "cat"])


def test_a_calendar_xarray_cannot_decode_is_one_line(tmp_path):
    climate_netcdf(tmp_path / "m.nc", "mars_sol", np.arange(4) / 4)
    entry(tmp_path / "cat", "m", tmp_path / "m.nc", "6h")
    with pytest.raises(WorkbenchError, match="dataset 'm': times in 'days since 1850-01-01' of "
                                             "calendar 'mars_sol' cannot be converted"):
        catalog.open_dataset("m", catalog=[tmp_path / "cat"])


def test_time_helpers_in_each_calendar():
    for calendar, kind, days in (("360_day", cftime.Datetime360Day, 360.0),
                                 ("noleap", cftime.DatetimeNoLeap, 365.0),
                                 ("all_leap", cftime.DatetimeAllLeap, 366.0),
                                 ("julian", cftime.DatetimeJulian, 365.25)):
        axis = cftime.num2date(np.arange(4) / 4, "days since 2000-12-30", calendar)
        assert isinstance(axis[0], kind)
        assert times.check_axis(axis, "x") == pd.Timedelta("6h")
        back = times.from_ns(times.to_ns(axis), axis)
        assert list(back) == list(axis)
        assert times.time_parts(axis).days_per_year == days
        valid = times.add(axis[:2], pd.to_timedelta([6, 12], unit="h").values)
        assert valid[1, 1] == axis[1] + pd.Timedelta("12h").to_pytimedelta()
    numpy_axis = pd.date_range("2020-02-28", periods=3, freq="1D").values
    assert times.to_ns(numpy_axis).tolist() == [1582848000 * 10**9 + k * 86400 * 10**9
                                                for k in range(3)]  # 2020-02-28 in ns
    with pytest.raises(WorkbenchError, match="'2020-02-30' is not a date of the standard"):
        times.parse_date("2020-02-30", numpy_axis, "split train")


# --------------------------------------------------------------------------- forcings


def test_forcings_at_360_day_times_by_hand():
    """On 30 February 06 UTC of a 360_day year: day of the year 59.25 of 360, so the julian
    day angle is 2 pi 59.25 / 360; local time at 90 E is 12 h; the solar zenith angle from
    earthkit's series at that angle, computed here term by term."""
    t = np.array([cftime.Datetime360Day(2000, 2, 30, 6), cftime.Datetime360Day(2000, 12, 30, 18)])
    parts = times.time_parts(t)
    np.testing.assert_allclose(parts.day_of_year, [59.25, 359.75])
    np.testing.assert_allclose(parts.seconds_of_day, [21600, 64800])
    lat, lon = np.array([0.0, 45.0]), np.array([90.0, -30.0])
    angle = 2 * np.pi * np.array([59.25, 359.75]) / 360
    got = forcings.computed_forcing("cos_julian_day", parts, lat, lon)
    np.testing.assert_allclose(got[:, 0], np.cos(angle), rtol=1e-6)
    local = forcings.computed_forcing("cos_local_time", parts, lat, lon)
    assert local[0, 0] == pytest.approx(-1.0)  # 06 UTC + 90 E / 15 = 12 h: local noon
    a = angle[0]
    declination = np.deg2rad(0.396372 - 22.91327 * np.cos(a) + 4.025430 * np.sin(a)
                             - 0.387205 * np.cos(2 * a) + 0.051967 * np.sin(2 * a)
                             - 0.154527 * np.cos(3 * a) + 0.084798 * np.sin(3 * a))
    correction = (0.004297 + 0.107029 * np.cos(a) - 1.837877 * np.sin(a)
                  - 0.837378 * np.cos(2 * a) - 2.340475 * np.sin(2 * a))
    hour_angle = np.deg2rad((6 - 12) * 15 + lon + correction)
    phi = np.deg2rad(lat)
    expected = np.sin(declination) * np.sin(phi) + np.cos(declination) * np.cos(phi) * np.cos(
        hour_angle)
    got = forcings.computed_forcing("cos_solar_zenith_angle", parts, lat, lon)
    np.testing.assert_allclose(got[0], np.clip(expected, 0, None), rtol=1e-5, atol=1e-6)
    assert got[0, 0] > 0.9  # the sun near the zenith at the equator at local noon in March


# --------------------------------------------------------------------------- sampling


CLIM_SAMPLING = {
    "name": "clim", "domains": [{"name": "clim", "dataset": "clim"}], "variables": ["t2m"],
    "forcings": ["cos_julian_day", "cos_local_time"], "input_steps": 1, "rollout": 2,
    "batch_size": 4,
    "splits": {"train": ["2000-02-21", "2000-02-30T21:00"], "val": ["2000-03-01",
                                                                     "2000-03-05T21:00"],
               "test": ["2000-03-06", "2000-03-10T21:00"]}}


def test_splits_and_batches_on_360_day_dates(using, tmp_path):
    config = sampling.sampling_config_from_dict(CLIM_SAMPLING)
    module = sampling.MultiDomainDataModule(config, cache=tmp_path)
    module.setup()
    data = module.domains[0]
    assert data.splits == {"train": (0, 79), "val": (80, 119), "test": (120, 159)}
    assert data.samples("train")[-1] == 77  # the last window ends on 30 February 21:00
    batch = next(iter(module.dataloader("val")))
    got = times.from_ns(batch["times"].numpy(), data.times)
    assert times.iso(got[0, 0]) == "2000-03-01T00:00:00"
    assert times.iso(got[0, 2]) == "2000-03-01T06:00:00"
    # forcings at the batch's own 360_day times: cos of the julian day angle of 1 March
    angle = 2 * np.pi * (60 + np.arange(3) / 8) / 360  # 1 March is day 61 of 360
    np.testing.assert_allclose(batch["forcings"][0, :, 0, 0].numpy(), np.cos(angle), rtol=1e-6)
    # statistics over the train split's 360_day period (2000-02-21 .. 2000-02-30T21:00)
    block = using["clim"][:80].astype(np.float64)
    assert data.stats["t2m"].mean == pytest.approx(block.mean(), rel=1e-6)


def test_split_dates_checked_in_the_data_calendar(using, tmp_path):
    bad = {**CLIM_SAMPLING, "splits": {**CLIM_SAMPLING["splits"],
                                       "test": ["2000-03-06", "2000-03-31"]}}
    with pytest.raises(WorkbenchError, match="domain 'clim': split test: '2000-03-31' is not a "
                                             "date of the 360_day calendar"):
        sampling.MultiDomainDataModule(sampling.sampling_config_from_dict(bad),
                                       cache=tmp_path).setup()
    overlap = {**CLIM_SAMPLING, "splits": {"train": ["2000-02-21", "2000-02-30T21:00"],
                                           "val": ["2000-02-30T12:00", "2000-03-05"]}}
    with pytest.raises(WorkbenchError, match="splits train .* and val .* overlap"):
        sampling.sampling_config_from_dict(overlap)


MIXED = """\
name: {name}
domain: global
source: {{kind: generator, grid: regular_latlon, resolution_deg: 10, start: "{start}",
          end: "2020-01-04T18:00", seed: 0}}
variables: [t2m, orog]
time_step: {step}
grid: {{kind: regular_latlon, resolution: 10 deg}}
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """An hourly, a 6-hourly and a 4-hourly world on a 10 degree grid (the hourly one starting
    at 01:00), generated into their own cache."""
    folder = tmp_path_factory.mktemp("mixed")
    for name, step, start in (("hourly", "1h", "2020-01-01T01:00"),
                              ("six", "6h", "2020-01-01"), ("four", "4h", "2020-01-01")):
        write_entry(folder / "cat", name, MIXED.format(name=name, step=step, start=start))
    return folder / "cat", folder / "cache"


def _mixed_config(domains, time_step=None) -> dict:
    config = {"name": "mixed", "domains": [{"name": d, "dataset": d} for d in domains],
              "variables": ["t2m"], "statics": ["orog"], "input_steps": 1, "rollout": 2,
              "batch_size": 2, "domain_weighting": "size",  # every batch once an epoch
              "splits": {"train": ["2020-01-01", "2020-01-02T18:00"],
                         "val": ["2020-01-03", "2020-01-04T18:00"]}}
    return {**config, "time_step": time_step} if time_step else config


def test_hourly_and_six_hourly_domains_sample_at_six_hours(mixed, monkeypatch):
    """At ``time_step: 6h`` the hourly domain keeps its 00, 06, 12 and 18 UTC fields (its first
    time, 01:00, is skipped): every batch's times are 6 h apart on those hours, its values the
    dataset's at them."""
    folder, cache = mixed
    monkeypatch.setenv("WORKBENCH_CATALOG", str(folder))
    config = sampling.sampling_config_from_dict(_mixed_config(["hourly", "six"], "6h"))
    module = sampling.MultiDomainDataModule(config, cache=cache)
    module.setup()
    hourly, six = module.domains
    assert (hourly.offset, hourly.stride) == (5, 6) and (six.offset, six.stride) == (0, 1)
    np.testing.assert_array_equal(hourly.times, six.times[1:])  # 06:00 on, every 6 h
    ds = catalog.open_dataset("hourly", cache=cache)
    seen = 0
    for batch in module.dataloader("train"):
        stamps = batch["times"].numpy().astype("datetime64[ns]")
        assert (np.diff(stamps, axis=1) == np.timedelta64(6, "h")).all()
        assert set(pd.DatetimeIndex(stamps.ravel()).hour) <= {0, 6, 12, 18}
        if batch["domain"] != "hourly":
            continue
        seen += 1
        norm = hourly.normalisers["variables"]
        x = norm.denormalise(batch["x"]).numpy()[:, 0, 0]
        expected = ds["t2m"].sel(time=stamps[:, 0]).values
        np.testing.assert_allclose(x, expected, rtol=1e-5)
        y = norm.denormalise(batch["y"]).numpy()[:, 1, 0]
        np.testing.assert_allclose(y, ds["t2m"].sel(time=stamps[:, 2]).values, rtol=1e-5)
    assert seen == -(-len(hourly.samples("train")) // 2) == 3  # 5 windows in 2020-01-01..02


def test_steps_that_do_not_fit_are_one_line(mixed, monkeypatch):
    folder, cache = mixed
    monkeypatch.setenv("WORKBENCH_CATALOG", str(folder))
    config = sampling.sampling_config_from_dict(_mixed_config(["four", "six"], "6h"))
    with pytest.raises(WorkbenchError, match="domain 'four': its time step 4h does not divide "
                                             "the sampling config's time_step 6h"):
        sampling.common_step(config)
    config = sampling.sampling_config_from_dict(_mixed_config(["hourly", "six"]))
    with pytest.raises(WorkbenchError, match=r"different time steps \(hourly 1h, six 6h\): set "
                                             "`time_step`"):
        sampling.common_step(config)
    assert sampling.common_step(sampling.sampling_config_from_dict(
        _mixed_config(["six"]))) == pd.Timedelta("6h")
    with pytest.raises(WorkbenchError, match="time_step: should be a time step such as 6h"):
        sampling.sampling_config_from_dict(_mixed_config(["six"], "often"))


# --------------------------------------------------------------------------- training


TRAIN = """\
name: {name}
sampling: {sampling}
model: {{processor: transformer, hidden_dim: 16, processor_layers: 1, heads: 2}}
optimizer: {{lr: 1.0e-3, warmup_steps: 0}}
max_steps: 3
val_rollout: 3
val_every: 1000
val_batches: 2
checkpoint_every: 1000
boundary_cells: 2
runs_dir: {runs}
"""


def _workbench(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("workbench")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)


def _graph(folder: Path, dataset: str) -> Path:
    path = folder / f"{dataset}-graph.yaml"
    path.write_text(f"name: {dataset}\ndata: {{datasets: [{dataset}]}}\n"
                    "hidden: {kind: icosahedral, level: 1}\n"
                    "encoder: {kind: knn, k: 3}\ndecoder: {kind: knn, k: 3}\n")
    return path


@pytest.mark.slow
def test_360_day_dataset_trains_and_evaluates(corpus, tmp_path, monkeypatch):
    """``workbench train`` / ``evaluate`` on the 3-hourly 360_day file: finite losses; the
    validation's and the scores' lead hours are 3, 6, 9; the forecast zarr's init times are
    360_day dates of the test split, its valid times the truth's."""
    folder, _ = corpus
    sampling_config = {**CLIM_SAMPLING, "forcings": ["cos_solar_zenith_angle"],
                       "domains": [{"name": "clim", "dataset": "clim",
                                    "graph": str(_graph(tmp_path, "clim"))}]}
    config = tmp_path / "t.yaml"
    config.write_text(TRAIN.format(name="clim", sampling=json.dumps(sampling_config),
                                   runs=tmp_path / "runs"))
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path / "cache")}
    done = _workbench("train", str(config), "--catalog", str(folder), "--run-dir", "r",
                      "--no-progress", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = pd.read_csv(tmp_path / "r" / "metrics.csv")["train/loss"].dropna()
    assert len(losses) == 3 and np.isfinite(losses).all()
    from workbench import training_report

    monkeypatch.setenv("WORKBENCH_CATALOG", str(folder))  # the run's datasets, for its step
    table = training_report.validation_table(tmp_path / "r")
    assert table["lead_hours"].tolist() == [3.0, 6.0, 9.0]
    assert training_report.notebook_summary(tmp_path / "r")["lead_step_hours"] == 3.0
    scored = _workbench("evaluate", "r", "--domain", "clim", "--catalog", str(folder), "--json",
                        cwd=tmp_path, env=env)
    assert scored.returncode == 0, scored.stderr[-3000:]
    scores = pd.DataFrame(json.loads(scored.stdout)["scores"])
    model = scores[(scores.forecast == "model") & (scores.metric == "rmse")]
    assert model["lead_hours"].tolist() == [3.0, 6.0, 9.0] and np.isfinite(model.value).all()
    forecast = forecast_files.read_forecast(tmp_path / "r" / "forecasts" / "clim-test.zarr")
    init = forecast["init_time"].values
    assert isinstance(init[0], cftime.Datetime360Day) and forecast.attrs["time_step"] == "3h"
    assert times.iso(init[0]) == "2000-03-06T00:00:00" and init.size == 40 - 3
    truth = catalog.open_dataset("clim", catalog=[folder])
    valid = times.add(init, forecast["lead_time"].values)
    assert np.isin(valid.ravel(), truth["time"].values).all()


@pytest.mark.slow
def test_hourly_and_six_hourly_domains_train_together(mixed, tmp_path):
    """One training on the hourly and the 6-hourly world at ``time_step: 6h``, then the hourly
    domain evaluated: leads of 6, 12, 18 h from init times at 00/06/12/18 UTC."""
    folder, cache = mixed
    config = _mixed_config(["hourly", "six"], "6h")
    for d in config["domains"]:
        d["graph"] = str(_graph(tmp_path, d["dataset"]))
    path = tmp_path / "t.yaml"
    path.write_text(TRAIN.format(name="mixed", sampling=json.dumps(config),
                                 runs=tmp_path / "runs"))
    env = {**os.environ, "WORKBENCH_CACHE": str(cache)}
    done = _workbench("train", str(path), "--catalog", str(folder), "--run-dir", "r",
                      "--no-progress", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    assert {"val/mse_hourly_step3", "val/mse_six_step3"} <= set(metrics.columns)
    scored = _workbench("evaluate", "r", "--domain", "hourly", "--split", "val", "--catalog",
                        str(folder), "--json", cwd=tmp_path, env=env)
    assert scored.returncode == 0, scored.stderr[-3000:]
    scores = pd.DataFrame(json.loads(scored.stdout)["scores"])
    model = scores[(scores.forecast == "model") & (scores.metric == "rmse")]
    assert model["lead_hours"].tolist() == [6.0, 12.0, 18.0] and np.isfinite(model.value).all()
    forecast = forecast_files.read_forecast(tmp_path / "r" / "forecasts" / "hourly-val.zarr")
    init = pd.DatetimeIndex(forecast["init_time"].values)
    assert set(init.hour) == {0, 6, 12, 18} and init.size == 8 - 3


def test_readme_time_step_example(mixed, monkeypatch):
    """The README's sampling fragment, its datasets pointed at the hourly and 6-hourly worlds:
    the hourly domain is sampled every 6th field, at 6 h."""
    from workbench.config import parse_yaml

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("#### Calendars and time steps", 1)[1].split("####", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```")[0]
    raw = parse_yaml(block.replace("hrrr-analysis", "hourly").replace("gfs-analysis", "six"),
                     "README")
    folder, cache = mixed
    monkeypatch.setenv("WORKBENCH_CATALOG", str(folder))
    config = sampling.sampling_config_from_dict({**_mixed_config(["six"]), **raw})
    assert sampling.common_step(config) == pd.Timedelta("6h")
    module = sampling.MultiDomainDataModule(config, cache=cache)
    module.setup()
    assert [(d.name, d.stride) for d in module.domains] == [("hrrr", 6), ("gfs", 1)]


def test_climatology_and_baselines_in_a_360_day_calendar():
    """skill's climatology of a 360_day truth per hour of day, its forecast at valid times
    init + lead (30 February 12 UTC + 6 h, + 12 h: 18 UTC, then 00 UTC on 1 March), a
    (dayofyear, hour) climatology picked at day 60 (30 February) and persistence."""
    from workbench import skill

    axis = cftime.num2date(DAY0_360 + 58 + np.arange(12) / 4, "days since 1850-01-01", "360_day")
    values = np.arange(12, dtype=np.float64)[:, None] * np.ones((1, 3))
    truth = xr.Dataset({"t2m": (("time", "grid"), values)}, coords={"time": axis})
    clim = skill.climatology(truth, "2000-02-29", "2000-02-30T18:00")
    np.testing.assert_allclose(clim["t2m"].values[:, 0], [2, 3, 4, 5])  # (0 + 4) / 2, ...
    init = np.array([cftime.Datetime360Day(2000, 2, 30, 12)])
    lead = pd.to_timedelta([6, 12], unit="h").values
    fc = skill.climatology_forecast(clim, init, lead)
    np.testing.assert_allclose(fc["t2m"].values[0, :, 0], [5, 2])  # 18 UTC, then 00 UTC
    by_day = xr.Dataset({"t2m": (("dayofyear", "hour", "grid"), np.arange(2 * 4 * 3.0).reshape(
        2, 4, 3))}, coords={"dayofyear": [60, 61], "hour": [0, 6, 12, 18]})
    fc = skill.climatology_forecast(by_day, init, lead)
    np.testing.assert_allclose(fc["t2m"].values[0, :, 0], [9, 12])  # day 60 18 UTC, day 61 00
    persistence = skill.persistence_forecast(truth, init, lead)
    np.testing.assert_allclose(persistence["t2m"].values[0, :, 0], [6, 6])
    score = skill.mse(persistence, truth, xr.DataArray(np.ones(3), dims="grid"))
    np.testing.assert_allclose(score["t2m"].values, [1, 4])  # truth 7 and 8 at the valid times
