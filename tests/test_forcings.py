"""Computed forcings (workbench/forcings.py): anemoi's definitions checked against
earthkit-meteo (the code anemoi-datasets runs), pvlib's solar position, hand computations, the
embedded world's insolation field, sampled batches and a short training run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench import catalog, forcings, sampling
from workbench.errors import WorkbenchError

pytestmark = pytest.mark.timeout(300)

RNG = np.random.default_rng(12)
LAT = RNG.uniform(-90, 90, 300)
LON = RNG.uniform(-180, 360, 300)  # both conventions at once
# two years every 7 h 13 min: every hour of the day, both seasons, a leap year's end
TIMES = (np.datetime64("2019-12-30T00:00") + np.arange(2400) * np.timedelta64(433, "m"))


def _at(time: str, lat: float, lon: float, name: str) -> float:
    return float(forcings.computed_forcing(name, np.array([time], "datetime64[ns]"),
                                           [lat], [lon])[0, 0])


# --------------------------------------------------------------------------- definitions


def test_every_name_gives_float32_time_by_grid():
    for name in forcings.NAMES:
        values = forcings.computed_forcing(name, TIMES[:5], LAT, LON)
        assert values.shape == (5, LAT.size) and values.dtype == np.float32, name
        assert np.all(np.abs(values) <= 1.0), name
    assert set(forcings.NAMES) == {
        "cos_latitude", "sin_latitude", "cos_longitude", "sin_longitude", "cos_julian_day",
        "sin_julian_day", "cos_local_time", "sin_local_time", "cos_solar_zenith_angle",
        "insolation"}


def test_cos_solar_zenith_angle_equals_earthkit_meteo():
    """earthkit-meteo's solar module is what anemoi-datasets' forcings source calls."""
    from earthkit.meteo.solar import array as ekm

    ours = forcings.cos_solar_zenith_angle(TIMES, LAT, LON)
    for i in range(0, TIMES.size, 37):
        date = TIMES[i].astype("datetime64[us]").astype(object)
        ref = ekm.cos_solar_zenith_angle(date, LAT, LON)
        np.testing.assert_allclose(ours[i], ref, atol=2e-7)
    np.testing.assert_allclose(forcings.time_parts(TIMES).day_of_year, ekm.julian_day(TIMES),
                               atol=1e-9)
    assert np.array_equal(forcings.computed_forcing("insolation", TIMES, LAT, LON), ours)


def test_cos_solar_zenith_angle_against_pvlib():
    """An independent ephemeris (NREL SPA): within 0.005 everywhere, night 0 in both."""
    import pvlib

    ours = forcings.cos_solar_zenith_angle(TIMES[:400], LAT, LON)
    index = pd.DatetimeIndex(TIMES[:400], tz="UTC")
    worst = 0.0
    for j in range(0, LAT.size, 15):
        zenith = pvlib.solarposition.get_solarposition(index, LAT[j], LON[j])["zenith"].to_numpy()
        ref = np.clip(np.cos(np.deg2rad(zenith)), 0.0, None)
        worst = max(worst, float(np.abs(ours[:, j] - ref).max()))
        assert 0.2 < (ref == 0).mean() < 0.8 or abs(LAT[j]) > 60  # nights clipped in both
    assert worst < 5e-3, worst


def test_hand_computed_places_and_times():
    # equinox noon at the equator: the sun overhead (the equation of time moves it ~2 deg)
    assert _at("2020-03-20T12:00", 0.0, 0.0, "cos_solar_zenith_angle") > 0.999
    assert _at("2020-03-20T00:00", 0.0, 0.0, "cos_solar_zenith_angle") == 0.0  # night: clipped
    # June solstice noon on the tropic of Cancer; the pole in polar night in December
    assert _at("2021-06-21T12:00", 23.44, 0.0, "cos_solar_zenith_angle") > 0.999
    assert _at("2021-12-21T12:00", 90.0, 0.0, "cos_solar_zenith_angle") == 0.0
    # local time: 90E at 00 UTC is 06:00 (angle pi/2), 90W (= 270E) is 18:00, 180E at 12 UTC is 0h
    assert _at("2020-05-01T00:00", 0, 90.0, "sin_local_time") == pytest.approx(1.0, abs=1e-6)
    assert _at("2020-05-01T00:00", 0, 90.0, "cos_local_time") == pytest.approx(0.0, abs=1e-6)
    for lon in (-90.0, 270.0):
        assert _at("2020-05-01T00:00", 0, lon, "sin_local_time") == pytest.approx(-1.0, abs=1e-6)
    assert _at("2020-05-01T12:00", 0, 180.0, "cos_local_time") == pytest.approx(1.0, abs=1e-6)
    assert _at("2020-05-01T15:00", 0, 0.0, "cos_local_time") == pytest.approx(
        math.cos(2 * math.pi * 15 / 24), abs=1e-6)
    # day of the year: 1 January 00 UTC is 0; 2 July 12 UTC of 2021 is day 182.5
    assert _at("2021-01-01T00:00", 10, 20, "cos_julian_day") == 1.0
    assert _at("2021-01-01T00:00", 10, 20, "sin_julian_day") == 0.0
    assert _at("2021-07-02T12:00", 10, 20, "cos_julian_day") == pytest.approx(
        math.cos(2 * math.pi * 182.5 / 365.25), abs=1e-6)
    assert forcings.time_parts(np.array(["2020-12-31T18:00"], "datetime64[s]")).day_of_year[0] \
        == 365.75  # a leap year's last day
    # position
    assert _at("2020-01-01", 60.0, 0, "cos_latitude") == pytest.approx(0.5, abs=1e-6)
    assert _at("2020-01-01", -30.0, 0, "sin_latitude") == pytest.approx(-0.5, abs=1e-6)
    assert _at("2020-01-01", 0, 270.0, "sin_longitude") == pytest.approx(-1.0, abs=1e-6)
    assert _at("2020-01-01", 0, 180.0, "cos_longitude") == pytest.approx(-1.0, abs=1e-6)


def test_longitude_conventions_agree():
    east = np.where(LON < 0, LON + 360, LON)
    west = np.where(LON > 180, LON - 360, LON)
    for name in forcings.NAMES:
        np.testing.assert_allclose(forcings.computed_forcing(name, TIMES[:50], LAT, east),
                                   forcings.computed_forcing(name, TIMES[:50], LAT, west),
                                   atol=2e-6, err_msg=name)


def test_time_parts_from_a_calendar_aware_caller():
    """A caller with another calendar passes the day of the year and seconds of the day."""
    times = np.array(["2020-02-10T06:00", "2020-08-01T18:30"], "datetime64[m]")
    parts = forcings.TimeParts(day_of_year=np.array([40.25, 213 + 18.5 / 24]),
                               seconds_of_day=np.array([6 * 3600.0, 18.5 * 3600]))
    for name in forcings.NAMES:
        np.testing.assert_allclose(forcings.computed_forcing(name, parts, LAT, LON),
                                   forcings.computed_forcing(name, times, LAT, LON),
                                   atol=1e-6, err_msg=name)
    # a 360-day year turns the day-of-year angle once in 360 days
    half = forcings.TimeParts(np.array([180.0]), np.array([0.0]), days_per_year=360.0)
    assert forcings.cos_julian_day(half, [0.0], [0.0])[0, 0] == pytest.approx(-1.0)


def test_bad_names_and_inputs_are_one_line():
    with pytest.raises(WorkbenchError, match="unknown computed forcing 'moonlight'; known: "
                                             "cos_latitude, sin_latitude"):
        forcings.computed_forcing("moonlight", TIMES[:2], LAT, LON)
    with pytest.raises(WorkbenchError, match="need datetime64 times, got float64"):
        forcings.cos_local_time(np.array([1.0, 2.0]), LAT, LON)
    with pytest.raises(WorkbenchError, match=r"got shapes \(300,\) and \(2,\)"):
        forcings.cos_latitude(TIMES[:2], LAT, LON[:2])


# --------------------------------------------------------------------------- embedded world


def test_embedded_insolation_follows_the_computed_zenith_angle():
    """The world's field is 1361 W m-2 * max(cos sza, 0) from a simpler sun (no equation of
    time): correlation 0.998 with the computed cos_solar_zenith_angle on the global grid."""
    ds = catalog.open_dataset("global")
    field = ds["insolation"].isel(time=slice(0, None, 7))
    computed = forcings.cos_solar_zenith_angle(field["time"].values, ds["latitude"].values,
                                               ds["longitude"].values)
    stored = field.values / 1361.0
    r = np.corrcoef(stored.ravel(), computed.ravel())[0, 1]
    assert r > 0.995, r
    assert np.abs(stored - computed).mean() < 0.02
    night = computed == 0
    assert 0.3 < night.mean() < 0.7 and np.abs(stored[night]).max() < 0.1


# --------------------------------------------------------------------------- sampling

COMPUTED = ["cos_solar_zenith_angle", "insolation", "cos_local_time", "sin_julian_day",
            "cos_latitude"]


def _config(forcing_names, datasets=("tiny-global", "global")) -> sampling.SamplingConfig:
    return sampling.sampling_config_from_dict({
        "name": "computed",
        "domains": [{"name": d, "dataset": d} for d in datasets],
        "variables": ["t2m"], "forcings": list(forcing_names),
        "splits": {"train": ["2020-01-01", "2020-01-02T18:00"]},
        "input_steps": 1, "rollout": 2, "batch_size": 2})


def test_batches_carry_the_computed_forcings_at_their_times(small_catalog, monkeypatch):
    """tiny-global has no insolation: all five are computed, at the batch's own times and not
    normalised; the embedded global stores insolation, and its own field wins there."""
    monkeypatch.setenv("WORKBENCH_CATALOG", str(small_catalog))
    dm = sampling.MultiDomainDataModule(_config(COMPUTED))
    dm.setup()
    tiny, world = dm.domains
    assert tiny.computed == COMPUTED
    assert world.computed == [f for f in COMPUTED if f != "insolation"]
    ds = catalog.open_dataset("global")
    train = ds["insolation"].sel(time=slice("2020-01-01", "2020-01-02T18:00")).values
    seen = set()
    for batch in dm.train_dataloader():
        domain = dm.domains[batch["domain_index"]]
        seen.add(domain.name)
        got = batch["forcings"].numpy()
        assert got.shape == (2, 3, len(COMPUTED), domain.n_grid)
        for i, ns in enumerate(batch["times"].numpy()):
            times = ns.astype("datetime64[ns]")
            for c, name in enumerate(COMPUTED):
                if name in domain.computed:
                    expected = forcings.computed_forcing(name, times, domain.latitude,
                                                         domain.longitude)
                    np.testing.assert_array_equal(got[i, :, c], expected, err_msg=name)
                else:  # the stored field, normalised by its train-period statistics
                    raw = ds["insolation"].sel(time=times).values
                    expected = (raw - train.mean()) / train.std()
                    np.testing.assert_allclose(got[i, :, c], expected, rtol=1e-4, atol=1e-4)
                    assert not np.allclose(got[i, :, c], forcings.cos_solar_zenith_angle(
                        times, domain.latitude, domain.longitude), atol=0.1)
        sza = got[:, :, 0]
        assert (sza == 0).any() and (sza > 0.5).any()  # day and night on a global grid
    assert seen == {"tiny-global", "global"}


def test_unknown_forcing_names_the_dataset_variables_and_the_computed_ones(small_catalog,
                                                                          monkeypatch):
    monkeypatch.setenv("WORKBENCH_CATALOG", str(small_catalog))
    dm = sampling.MultiDomainDataModule(_config(["cos_local_time", "moonlight"],
                                                datasets=("tiny-global",)))
    with pytest.raises(WorkbenchError) as err:
        dm.setup()
    message = str(err.value)
    assert "\n" not in message
    assert ("domain 'tiny-global': forcings ['moonlight'] are neither variables of dataset "
            "'tiny-global' (orog, t2m, tp) nor computed forcings (cos_latitude, sin_latitude, "
            ) in message
    assert "insolation); fix `forcings` in the sampling config" in message


# --------------------------------------------------------------------------- training


@pytest.mark.slow
def test_training_with_computed_forcings_only(tmp_path):
    """A few steps of the demo (global + CONUS) with six computed forcings and no stored one."""
    from test_training import tiny, train_losses

    from workbench import checkpoints, training, training_config

    names = ["cos_solar_zenith_angle", "cos_local_time", "sin_local_time", "cos_julian_day",
             "sin_julian_day", "sin_latitude"]
    run = training.fit(tiny(tmp_path, max_steps=6, sampling={"forcings": names}), progress=False)
    config = checkpoints.read_run_config(run)
    assert list(config.sampling["forcings"]) == names
    model = training_config.model_config(config, training_config.sampling_config(config))
    assert model.n_forcings == 6
    losses = train_losses(run)
    assert len(losses) >= 1 and np.all(np.isfinite(losses.to_numpy()))
