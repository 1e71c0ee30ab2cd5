"""Tests of the analytic world: grid independence, determinism, physics and layout."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import grids, world, world_waves
from workbench.errors import WorkbenchError

G = 9.80665
A = 6.37122e6
SIX_HOURS = np.timedelta64(6, "h")


def _times(start: str, n: int, step: np.timedelta64 = SIX_HOURS) -> np.ndarray:
    return np.datetime64(start, "s") + np.arange(n) * step


def _area_weights(lat: np.ndarray) -> np.ndarray:
    w = np.cos(np.deg2rad(lat))
    return w / w.sum()


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


@pytest.fixture(scope="module")
def global_few_days() -> tuple[grids.Grid, dict[str, np.ndarray]]:
    """Global 2.5 degree world, 4 days in January and 4 in July, 6-hourly."""
    grid = grids.regular_latlon(2.5)
    times = np.concatenate([_times("2020-01-10T00", 16), _times("2020-07-10T00", 16)])
    return grid, world.evaluate(world.DEFAULT_VARIABLES, grid.latitude, grid.longitude, times)


# --------------------------------------------------------------------------- grid independence


def test_hrrr_points_identical_alone_and_inside_the_grid():
    grid = grids.hrrr(15)
    times = _times("2020-07-01T00", 6)
    full = world.evaluate(world.DEFAULT_VARIABLES, grid.latitude, grid.longitude, times, seed=3)
    pick = np.array([0, 17, 4000, grid.size - 1])
    subset = world.evaluate(
        world.DEFAULT_VARIABLES, grid.latitude[pick], grid.longitude[pick], times[[1, 4]], seed=3
    )
    for name, values in full.items():
        expected = values[pick] if values.ndim == 1 else values[[1, 4]][:, pick]
        np.testing.assert_array_equal(subset[name], expected, err_msg=name)
    for i in pick:  # each point alone, one time alone
        alone = world.evaluate(
            world.DEFAULT_VARIABLES,
            grid.latitude[i : i + 1],
            grid.longitude[i : i + 1],
            times[2:3],
            seed=3,
        )
        for name, values in full.items():
            expected = values[i : i + 1] if values.ndim == 1 else values[2:3, i : i + 1]
            np.testing.assert_array_equal(alone[name], expected, err_msg=f"{name} at {i}")


def test_global_and_lam_grids_sample_one_atmosphere():
    """A global grid point and the same (lat, lon) evaluated with HRRR points agree."""
    glob = grids.regular_latlon(2.5)
    conus = grids.hrrr(15)
    inside = (
        (glob.latitude > 30)
        & (glob.latitude < 45)
        & (glob.longitude > -110)
        & (glob.longitude < -85)
    )
    assert inside.sum() > 20
    lat = np.concatenate([conus.latitude, glob.latitude[inside]])
    lon = np.concatenate([conus.longitude, glob.longitude[inside]])
    times = _times("2020-03-05T06", 3)
    mixed = world.evaluate(world.DEFAULT_VARIABLES, lat, lon, times, seed=1)
    alone = world.evaluate(world.DEFAULT_VARIABLES, glob.latitude, glob.longitude, times, seed=1)
    for name in world.DEFAULT_VARIABLES:
        np.testing.assert_array_equal(
            mixed[name][..., conus.size :], alone[name][..., inside], err_msg=name
        )


def test_generate_equals_evaluate_whatever_the_time_chunks():
    grid = grids.europe(30)
    times = _times("2021-02-01T00", 10)
    ds = world.generate(grid, times, seed=5, chunk_times=3)
    direct = world.evaluate(world.DEFAULT_VARIABLES, grid.latitude, grid.longitude, times, seed=5)
    for name in world.DEFAULT_VARIABLES:
        np.testing.assert_array_equal(ds[name].values, direct[name], err_msg=name)


# --------------------------------------------------------------------------- seeds


def test_determinism_and_seed_changes_only_the_small_noise(global_few_days):
    grid, first = global_few_days
    times = np.concatenate([_times("2020-01-10T00", 16), _times("2020-07-10T00", 16)])
    again = world.evaluate(world.DEFAULT_VARIABLES, grid.latitude, grid.longitude, times)
    other = world.evaluate(world.DEFAULT_VARIABLES, grid.latitude, grid.longitude, times, seed=7)
    for name in world.DEFAULT_VARIABLES:
        np.testing.assert_array_equal(again[name], first[name], err_msg=name)
    for name in ("insolation", "orog", "lsm"):  # no noise: identical for every seed
        np.testing.assert_array_equal(other[name], first[name], err_msg=name)
    for name in ("z_500", "z_850", "t_500", "t_850", "t2m", "u10", "v10"):
        diff = other[name].astype(np.float64) - first[name]
        assert np.abs(diff).max() > 0, name
        assert diff.std() < 0.05 * first[name].std(), name
    tp0, tp7 = first["tp"].astype(np.float64), other["tp"].astype(np.float64)
    np.testing.assert_array_equal(tp0 == 0, tp7 == 0)  # multiplicative: zeros stay zeros
    wet = tp0 > 0
    ratio = tp7[wet] / tp0[wet]
    assert 0.95 < np.median(ratio) < 1.05 and np.percentile(np.abs(np.log(ratio)), 99) < 0.8


def test_noise_is_spatially_correlated_and_decorrelates_between_hours():
    lon = np.arange(0.0, 30.0, 0.1)  # 11 km apart along the equator
    transect = world._Points(np.zeros_like(lon), lon, seed=2)
    glob = grids.regular_latlon(2.5)
    spread = world._Points(glob.latitude, glob.longitude, seed=2)
    hours = np.array([10, 11]) + 2**31
    line = world._noise(transect.noise_basis(0), hours, 2, 0)
    assert np.corrcoef(line[0, :-1], line[0, 1:])[0, 1] > 0.95  # smooth on ~100 km
    noise = world._noise(spread.noise_basis(0), hours, 2, 0)
    assert 0.7 < noise.std() < 1.3
    assert abs(np.corrcoef(noise[0], noise[1])[0, 1]) < 0.3  # next hour: fresh phases
    np.testing.assert_array_equal(noise, world._noise(spread.noise_basis(0), hours, 2, 0))


# --------------------------------------------------------------------------- dynamics


def test_phase_speeds_are_those_of_test_case_6():
    # nu_4 = (4*7*K - 2*Omega) / 30, about 12.2 degrees per day eastward
    assert np.rad2deg(world_waves.phase_speed(4)) * 86400 == pytest.approx(12.195, abs=0.01)
    for r in (4, 5, 6):
        expected = (r * (3 + r) * 7.848e-6 - 2 * 7.292e-5) / ((1 + r) * (2 + r))
        assert world_waves.phase_speed(r) == pytest.approx(expected, rel=1e-12)


def test_single_wave_moves_at_its_phase_speed():
    lon = np.arange(0.0, 360.0, 2.0)
    lat = np.full_like(lon, 40.0)
    seconds = np.array([0.0, 86400.0])
    for r in (4, 5, 6):
        wave = world_waves.rossby_haurwitz(r, lat, lon, seconds)["phi"]
        shift = np.rad2deg(world_waves.phase_speed(r) * 86400.0)  # degrees east in a day
        shifted = world_waves.rossby_haurwitz(r, lat, lon - shift, seconds[:1])["phi"][0]
        np.testing.assert_allclose(wave[1], shifted, rtol=0, atol=1e-9 * np.abs(wave).max())


def test_z500_wavenumbers_drift_east_at_nu_r():
    """Fourier phase of wavenumber R along latitude circles of the full (noisy) field."""
    lon = np.arange(0.0, 360.0, 1.0)
    lats = (30.0, 40.0, -35.0)
    lat = np.repeat(lats, lon.size)
    lon_all = np.tile(lon, len(lats))
    t0 = np.datetime64("2020-02-01T00", "s")
    times = np.array([t0, t0 + np.timedelta64(24, "h")])
    z = world.evaluate(["z_500"], lat, lon_all, times)["z_500"].astype(np.float64)
    z = z.reshape(2, len(lats), lon.size)
    coef = np.fft.rfft(z, axis=-1)
    for r in (4, 5, 6):
        turned = np.angle(coef[1, :, r] / coef[0, :, r])  # phase of exp(-i R nu t)
        speed = -np.median(turned) / r / 86400.0
        assert speed == pytest.approx(world_waves.phase_speed(r), rel=0.03), r


def test_wave_wind_is_non_divergent():
    step = 0.25
    lat = np.arange(15.0, 65.0 + step / 2, step)
    lon = np.arange(-140.0, -50.0 + step / 2, step)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    times = np.array(["2020-03-01T06"], dtype="datetime64[s]")
    u, v = world._wave_wind(lat2.ravel(), lon2.ravel(), times, level=850)
    u, v = u.reshape(lat2.shape), v.reshape(lat2.shape)
    cos = np.cos(np.deg2rad(lat2))
    dl = np.deg2rad(step)
    div = (np.gradient(u, dl, axis=1) + np.gradient(v * cos, dl, axis=0)) / (A * cos)
    vort = (np.gradient(v, dl, axis=1) - np.gradient(u * cos, dl, axis=0)) / (A * cos)
    inner = (slice(1, -1), slice(1, -1))
    assert np.sqrt(np.mean(div[inner] ** 2)) < 1e-3 * np.sqrt(np.mean(vort[inner] ** 2))


def test_surface_wind_crosses_isobars_toward_low_pressure():
    """Pre-friction wind runs along the z_850 contours; the 10 m wind turns toward low z."""
    step = 0.5
    times = np.array(["2020-03-01T06"], dtype="datetime64[s]")
    for centre in (40.0, -40.0):
        lat = np.arange(centre - 10, centre + 10 + step / 2, step)
        lon = np.arange(-180.0, 180.0, step)
        lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
        out = world.evaluate(["z_850", "u10", "v10"], lat2.ravel(), lon2.ravel(), times)
        z = out["z_850"].reshape(lat2.shape).astype(np.float64)
        dz_dx = np.gradient(z, np.deg2rad(step), axis=1) / (A * np.cos(np.deg2rad(lat2)))
        dz_dy = np.gradient(z, np.deg2rad(step), axis=0) / A
        u0, v0 = world._wave_wind(lat2.ravel(), lon2.ravel(), times, level=850)
        winds = {
            "850": (u0.reshape(lat2.shape), v0.reshape(lat2.shape)),
            "10m": (out["u10"].reshape(lat2.shape), out["v10"].reshape(lat2.shape)),
        }
        downhill = {}
        for name, (u, v) in winds.items():
            cos_angle = -(u * dz_dx + v * dz_dy) / (np.hypot(u, v) * np.hypot(dz_dx, dz_dy))
            downhill[name] = cos_angle[1:-1].mean()
        assert abs(downhill["850"]) < 0.05, downhill
        assert 0.15 < downhill["10m"] < 0.6, downhill  # sin(15..30 degrees) on average


# --------------------------------------------------------------------------- ranges and physics


def test_physical_ranges(global_few_days):
    _, out = global_few_days
    assert 200.0 < out["t2m"].min() and out["t2m"].max() < 330.0
    assert 215.0 < out["t_500"].min() and out["t_500"].max() < 285.0
    assert 225.0 < out["t_850"].min() and out["t_850"].max() < 310.0
    assert np.abs(out["u10"]).max() < 40.0 and np.abs(out["v10"]).max() < 40.0
    speed = np.hypot(out["u10"], out["v10"])
    assert np.percentile(speed, 99) < 20.0 and np.percentile(speed, 50) > 1.0
    height = out["z_500"] / G
    assert 4500.0 < height.min() and height.max() < 6200.0
    assert 900.0 < (out["z_850"] / G).min() and (out["z_850"] / G).max() < 1900.0
    assert out["orog"].min() >= 0.0 and 0.0 <= out["lsm"].min() and out["lsm"].max() <= 1.0
    assert out["insolation"].min() == 0.0 and out["insolation"].max() <= 1361.0
    for name, values in out.items():
        assert values.dtype == np.float32 and np.isfinite(values).all(), name


def test_precipitation_is_intermittent_and_heavy_tailed(global_few_days):
    grid, out = global_few_days
    tp = out["tp"].astype(np.float64)
    assert tp.min() >= 0.0
    zero = tp == 0.0
    assert zero.mean() >= 0.6  # of all grid values
    assert (zero.mean(axis=0) @ _area_weights(grid.latitude)) >= 0.6  # of the globe's area
    wet = tp[~zero]
    # Heavy tail: for an exponential distribution the 99th percentile is 4.6 x the mean;
    # rain here has a longer tail, and a few 6-hour totals reach several centimetres.
    assert np.percentile(wet, 99) > 5.0 * wet.mean()
    assert wet.max() > 0.03 and wet.max() < 0.2
    global_mean_mm_day = (tp.mean(axis=0) @ _area_weights(grid.latitude)) * 4e3
    assert 1.0 < global_mean_mm_day < 4.0


def test_convective_cells_are_small_and_sparse():
    """The cell pattern decorrelates within ~100 km; its peaks cover a few percent."""
    lon = np.arange(-60.0, -30.0, 0.027)  # ~3 km apart along the equator
    points = world._Points(np.zeros_like(lon), lon)
    cells = world._Frame(points, _times("2020-01-15T18", 4)).cells
    lag = int(round(100 / 3))
    corr = np.mean([np.corrcoef(c[:-lag], c[lag:])[0, 1] for c in cells])
    assert abs(corr) < 0.4
    assert 0.85 < cells.std() < 1.15
    peaks = cells > 2.0
    assert 0.005 < peaks.mean() < 0.06
    # chords through the cells along the transect: tens of kilometres, not hundreds
    chords_km = np.concatenate([_run_lengths(row) for row in peaks]) * 3.0
    assert 15.0 < np.median(chords_km) < 100.0 and chords_km.max() < 250.0


def test_insolation_follows_the_sun():
    noon = np.array(["2020-06-21T12:00"], dtype="datetime64[s]")
    lat = np.arange(-40.0, 40.0, 0.1)
    sun = world.evaluate(["insolation"], lat, np.zeros_like(lat), noon)["insolation"][0]
    assert sun.max() == pytest.approx(1361.0, abs=0.5)
    assert lat[sun.argmax()] == pytest.approx(23.44, abs=0.2)  # the subsolar latitude
    night = world.evaluate(["insolation"], np.array([0.0, 30.0]), np.array([180.0, 180.0]), noon)
    np.testing.assert_array_equal(night["insolation"], 0.0)
    # Paris: daylight around 12 UTC, dark at 00 UTC in December, more sun in June
    days = np.array(["2020-12-21T00", "2020-12-21T12", "2020-06-21T12"], dtype="datetime64[s]")
    paris = world.evaluate(["insolation"], np.array([48.8]), np.array([2.3]), days)["insolation"]
    assert paris[0, 0] == 0.0 and 200.0 < paris[1, 0] < paris[2, 0]


def test_temperature_cycles_land_sea_and_lapse_rate():
    # 0 Sahara, 1 tropical Atlantic, 2 Siberia, 3 Tibet, 4 Ganges plain, 5 Southern Ocean
    lat = np.array([23.0, 10.0, 62.0, 33.0, 26.0, -55.0])
    lon = np.array([10.0, -30.0, 110.0, 88.0, 83.0, 0.0])
    jan = np.datetime64("2020-01-15T00", "s") + np.arange(4) * SIX_HOURS
    jul = jan + np.timedelta64(182, "D")
    t2m = world.evaluate(["t2m"], lat, lon, np.concatenate([jan, jul]))["t2m"].astype(float)
    winter, summer = t2m[:4], t2m[4:]
    assert summer[:, 2].mean() - winter[:, 2].mean() > 20.0  # continental seasonal cycle
    assert winter[:, 5].mean() - summer[:, 5].mean() > 1.0  # southern hemisphere reversed
    desert_range = summer[:, 0].max() - summer[:, 0].min()
    ocean_range = summer[:, 1].max() - summer[:, 1].min()  # mostly the passing waves
    assert desert_range > 5.0 and desert_range > 2.5 * ocean_range  # diurnal cycle on land
    assert t2m[:, 3].mean() < t2m[:, 4].mean() - 20.0  # Tibet at 4.8 km vs Ganges plain


# --------------------------------------------------------------------------- geography


def test_geography_resembles_earth():
    places = {
        "central US": (40.0, -100.0),
        "Pacific": (30.0, -140.0),
        "Atlantic": (40.0, -30.0),
        "Rockies": (40.0, -106.0),
        "Tibet": (33.0, 88.0),
        "Mediterranean": (35.0, 18.0),
        "North Sea": (56.0, 3.0),
        "Baltic": (58.0, 19.0),
        "Paris": (48.8, 2.3),
        "Sahara": (23.0, 10.0),
        "Amazon": (-5.0, -60.0),
        "South Pole": (-90.0, 0.0),
    }
    lat = np.array([p[0] for p in places.values()])
    lon = np.array([p[1] for p in places.values()])
    out = world.evaluate(["lsm", "orog"], lat, lon, _times("2020-01-01", 1))
    lsm = dict(zip(places, out["lsm"], strict=True))
    orog = dict(zip(places, out["orog"], strict=True))
    for land in ("central US", "Rockies", "Tibet", "Paris", "Sahara", "Amazon", "South Pole"):
        assert lsm[land] > 0.95, land
    for sea in ("Pacific", "Atlantic", "Mediterranean", "North Sea", "Baltic"):
        assert lsm[sea] == 0.0 and orog[sea] == 0.0, sea
    assert orog["Rockies"] > 1500.0 and orog["Tibet"] > 3500.0 and orog["South Pole"] > 2000.0
    assert orog["Paris"] < 300.0


def test_lam_domains_are_mostly_land_with_seas():
    glob = grids.regular_latlon(1.0)
    out = world.evaluate(["lsm"], glob.latitude, glob.longitude, _times("2020-01-01", 1))
    land = out["lsm"] @ _area_weights(glob.latitude)
    assert 0.25 < land < 0.33  # Earth: 0.29
    for grid, low, high in ((grids.hrrr(20), 0.55, 0.8), (grids.europe(20), 0.4, 0.7)):
        lsm = world.evaluate(["lsm"], grid.latitude, grid.longitude, _times("2020-01-01", 1))["lsm"]
        assert low < (lsm > 0.5).mean() < high, grid.name


# --------------------------------------------------------------------------- layout and errors


def test_generate_canonical_layout():
    grid = grids.hrrr(40)
    times = _times("2020-01-01T00", 5)
    ds = world.generate(grid, times, seed=2, chunk_times=2)
    assert dict(ds.sizes) == {"time": 5, "grid": grid.size}
    assert list(ds.data_vars) == list(world.DEFAULT_VARIABLES)
    for name in world.DEFAULT_VARIABLES:
        expected_dims = ("grid",) if world.VARIABLES[name]["static"] else ("time", "grid")
        assert ds[name].dims == expected_dims, name
        assert ds[name].dtype == np.float32, name
        assert ds[name].attrs["units"] == world.VARIABLES[name]["units"]
        assert ds[name].attrs["long_name"] == world.VARIABLES[name]["long_name"]
    np.testing.assert_array_equal(ds["time"].values, times.astype("datetime64[ns]"))
    np.testing.assert_array_equal(ds["latitude"].values, grid.latitude)
    np.testing.assert_array_equal(ds["longitude"].values, grid.longitude)
    assert ds["latitude"].dims == ("grid",) and ds["longitude"].dims == ("grid",)
    for key, value in grids.grid_attrs(grid).items():
        assert ds.attrs[key] == value, key
    assert ds.attrs["source"] == "workbench analytic world" and ds.attrs["seed"] == 2
    rebuilt = grids.grid_from_dataset(ds)
    assert rebuilt.shape == grid.shape and rebuilt.crs == grid.crs


def test_generate_subset_of_variables_and_progress():
    grid = grids.europe(60)
    ds = world.generate(grid, _times("2020-05-01", 3), variables=["lsm", "tp"], progress=True)
    assert list(ds.data_vars) == ["lsm", "tp"]
    assert ds["tp"].dims == ("time", "grid") and ds["lsm"].dims == ("grid",)


def test_variable_table():
    assert set(world.DEFAULT_VARIABLES) == set(world.VARIABLES)
    for meta in world.VARIABLES.values():
        assert set(meta) == {"units", "long_name", "static", "kind"}
        assert meta["kind"] in {"state", "forcing", "static"}
        assert meta["static"] == (meta["kind"] == "static")


def test_unknown_variable_is_named():
    with pytest.raises(WorkbenchError, match="'msl'") as err:
        world.evaluate(["t2m", "msl"], [0.0], [0.0], _times("2020-01-01", 1))
    assert "z_500" in str(err.value)
    with pytest.raises(WorkbenchError, match="msl"):
        world.generate(grids.europe(60), _times("2020-01-01", 1), variables=["msl"])


def test_bad_points_and_seed():
    times = _times("2020-01-01", 1)
    with pytest.raises(WorkbenchError, match="equal length"):
        world.evaluate(["t2m"], [0.0, 1.0], [0.0], times)
    with pytest.raises(WorkbenchError, match="latitude"):
        world.evaluate(["t2m"], [95.0], [0.0], times)
    with pytest.raises(WorkbenchError, match="seed"):
        world.evaluate(["t2m"], [0.0], [0.0], times, seed=-1)
