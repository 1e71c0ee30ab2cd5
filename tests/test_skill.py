"""Verification metrics against hand values, numpy loops, xskillscore and scoringrules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scoringrules as sr
import xarray as xr
import xskillscore as xs

from workbench import skill
from workbench.errors import WorkbenchError
from workbench.grids import area_weights, regular_latlon

H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2020-01-01")


# --------------------------------------------------------------------------- builders


def make_truth(values: dict[str, np.ndarray], lat=None, lon=None, freq_h: int = 6) -> xr.Dataset:
    """Truth with dims (time, grid), 6-hourly from T0."""
    values = {k: np.asarray(v, float) for k, v in values.items()}
    n_time, n_grid = next(iter(values.values())).shape
    lat = np.linspace(-60, 60, n_grid) if lat is None else np.asarray(lat, float)
    lon = np.linspace(0, 300, n_grid) if lon is None else np.asarray(lon, float)
    times = pd.date_range(T0, periods=n_time, freq=f"{freq_h}h")
    return xr.Dataset(
        {k: (("time", "grid"), np.asarray(v, float)) for k, v in values.items()},
        coords={"time": times, "latitude": ("grid", lat), "longitude": ("grid", lon)},
    )


def make_forecast(
    values: dict[str, np.ndarray], inits, leads_h, truth: xr.Dataset, member: bool = False
) -> xr.Dataset:
    """Forecast with dims (init_time, lead_time, [member], grid) on the truth's grid."""
    dims = (
        ("init_time", "lead_time", "member", "grid")
        if member
        else ("init_time", "lead_time", "grid")
    )
    return xr.Dataset(
        {k: (dims, np.asarray(v, float)) for k, v in values.items()},
        coords={
            "init_time": pd.DatetimeIndex(inits),
            "lead_time": pd.to_timedelta(leads_h, unit="h"),
            "latitude": truth["latitude"],
            "longitude": truth["longitude"],
        },
    )


def uniform(n: int) -> xr.DataArray:
    return xr.DataArray(np.ones(n), dims="grid")


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and ": " in message  # problem, then the fix
    return message


@pytest.fixture
def tiny():
    """2 inits (00, 06), lead 6 h, 2 points: errors [[1, -2], [0, 3]] at valid times 06, 12."""
    truth = make_truth({"z": [[9, 9], [1, 2], [3, 4]], "t": [[0, 0], [10, 20], [30, 40]]})
    fc = make_forecast(
        {"z": [[[2, 0]], [[3, 7]]], "t": [[[10, 20]], [[30, 40]]]},
        [T0, T0 + 6 * H],
        [6],
        truth,
    )
    return fc, truth


# --------------------------------------------------------------------------- align


def test_align_picks_the_truth_at_each_valid_time():
    n_time, n_grid = 12, 3
    code = 100.0 * np.arange(n_time)[:, None] + np.arange(n_grid)[None, :]  # 100 t + g
    truth = make_truth({"z": code})
    inits = [T0 + 12 * H, T0 + 30 * H]  # time index 2 and 5
    fc = make_forecast({"z": np.zeros((2, 3, n_grid))}, inits, [0, 6, 18], truth)
    out = skill.align(fc, truth)
    assert out["z"].dims == ("init_time", "lead_time", "grid")
    for i, start in enumerate((2, 5)):
        for j, lead_steps in enumerate((0, 1, 3)):
            expected = 100.0 * (start + lead_steps) + np.arange(n_grid)
            np.testing.assert_array_equal(out["z"].values[i, j], expected)
            assert out["valid_time"].values[i, j] == truth["time"].values[start + lead_steps]


def test_align_accepts_longitude_wrap_and_tiny_coordinate_noise(tiny):
    fc, truth = tiny
    lon = truth["longitude"].values.copy()
    lon[0] += 360.0
    shifted = fc.assign_coords(
        latitude=("grid", truth["latitude"].values + 5e-5), longitude=("grid", lon)
    )
    np.testing.assert_array_equal(skill.align(shifted, truth)["z"], skill.align(fc, truth)["z"])


def test_align_rejects_a_grid_size_mismatch(tiny):
    fc, truth = tiny
    with pytest.raises(WorkbenchError, match="2 grid points, truth 3") as err:
        skill.align(fc, make_truth({"z": np.zeros((3, 3)), "t": np.zeros((3, 3))}))
    assert "regrid" in one_line(err)


def test_align_rejects_a_lead_beyond_the_truth(tiny):
    fc, truth = tiny
    late = fc.assign_coords(lead_time=pd.to_timedelta([12], unit="h"))  # 06 + 12 h: not in truth
    with pytest.raises(WorkbenchError, match="valid times are not in the truth") as err:
        skill.align(late, truth)
    assert "extend the truth" in one_line(err)


@pytest.mark.parametrize("coord, shift", [("latitude", 1e-3), ("longitude", 0.5)])
def test_align_rejects_mismatched_coordinates(tiny, coord, shift):
    fc, truth = tiny
    moved = fc.assign_coords({coord: ("grid", fc[coord].values + shift)})
    with pytest.raises(WorkbenchError, match=f"{coord} differ") as err:
        skill.align(moved, truth)
    assert "regrid" in one_line(err)


def test_align_rejects_missing_variables_and_dims(tiny):
    fc, truth = tiny
    with pytest.raises(WorkbenchError, match=r"truth lacks variables \['t'\]") as err:
        skill.align(fc, truth[["z"]])
    one_line(err)
    with pytest.raises(WorkbenchError, match="lacks dims") as err:
        skill.align(fc.isel(lead_time=0), truth)
    one_line(err)


def test_align_rejects_integer_lead_times(tiny):
    fc, truth = tiny
    with pytest.raises(WorkbenchError, match="timedelta64") as err:
        skill.align(fc.assign_coords(lead_time=[6]), truth)
    one_line(err)


# --------------------------------------------------------------------------- deterministic


def test_spatial_metrics_hand_values(tiny):
    fc, truth = tiny  # errors z: init 0 -> [1, -2], init 1 -> [0, 3]; t: 0
    np.testing.assert_allclose(skill.spatial_mse(fc, truth)["z"].values, [[0.5, 6.5]])
    np.testing.assert_allclose(
        skill.spatial_rmse(fc, truth)["z"].values, [[np.sqrt(0.5), np.sqrt(6.5)]]
    )
    np.testing.assert_allclose(skill.spatial_mae(fc, truth)["z"].values, [[0.5, 2.5]])
    np.testing.assert_allclose(skill.spatial_bias(fc, truth)["z"].values, [[0.5, 0.5]])
    out = skill.spatial_mse(fc, truth)
    assert out["z"].dims == ("lead_time", "grid") and "latitude" in out.coords
    np.testing.assert_array_equal(out["t"].values, 0.0)


def test_aggregated_metrics_hand_values(tiny):
    fc, truth = tiny
    w = xr.DataArray([1.0, 3.0], dims="grid")
    # per init: mse 13/4, 27/4 -> 5; mae 7/4, 9/4 -> 2; bias -5/4, 9/4 -> 1/2
    assert skill.mse(fc, truth, w)["z"].item() == pytest.approx(5.0)
    assert skill.rmse(fc, truth, w)["z"].item() == pytest.approx(np.sqrt(5.0))
    assert skill.mae(fc, truth, w)["z"].item() == pytest.approx(2.0)
    assert skill.bias(fc, truth, w)["z"].item() == pytest.approx(0.5)
    assert skill.rmse(fc, truth, w)["t"].item() == 0.0
    assert skill.rmse(fc, truth, w)["z"].dims == ("lead_time",)


def test_rmse_takes_the_root_after_both_means():
    truth = make_truth({"z": np.zeros((3, 2))})
    # init 0: errors [0, 2] (spatial RMS sqrt(2), mean |e| 1); init 1: errors [3, 3]
    fc = make_forecast({"z": [[[0, 2]], [[3, 3]]]}, [T0, T0 + 6 * H], [6], truth)
    got = skill.rmse(fc, truth, uniform(2))["z"].item()
    assert got == pytest.approx(np.sqrt((2.0 + 9.0) / 2))  # sqrt(mean_t mean_g e^2) = 2.345
    assert got != pytest.approx((np.sqrt(2.0) + 3.0) / 2)  # mean_t of per-init RMSE = 2.207
    assert got != pytest.approx((1.0 + 3.0) / 2)


def test_deterministic_metrics_match_xskillscore():
    rng = np.random.default_rng(1)
    n_time, n_grid, inits, leads = 12, 30, [T0, T0 + 6 * H, T0 + 12 * H], [0, 6, 24]
    truth = make_truth(
        {"z": rng.normal(size=(n_time, n_grid)), "t": rng.normal(size=(n_time, n_grid))}
    )
    fc = make_forecast(
        {"z": rng.normal(size=(3, 3, n_grid)), "t": rng.normal(size=(3, 3, n_grid))},
        inits,
        leads,
        truth,
    )
    w = xr.DataArray(rng.uniform(0.2, 3.0, n_grid), dims="grid")
    target = skill.align(fc, truth)
    dims = ["init_time", "grid"]
    for name in ("z", "t"):
        for ours, theirs in ((skill.rmse, xs.rmse), (skill.mse, xs.mse), (skill.mae, xs.mae)):
            got = ours(fc, truth, w)[name]
            for j in range(len(leads)):
                a = fc[name].isel(lead_time=j).drop_vars(["latitude", "longitude", "lead_time"])
                b = (
                    target[name]
                    .isel(lead_time=j)
                    .drop_vars(["latitude", "longitude", "lead_time", "valid_time"])
                )
                expected = theirs(a, b, dim=dims, weights=w.broadcast_like(a))
                assert got.values[j] == pytest.approx(float(expected), rel=1e-12)


def test_area_fraction_of_the_tropics_on_global_grids():
    def fraction(lat, lon, weights, band_deg):
        n = lat.size
        truth = make_truth({"z": np.zeros((2, n))}, lat=lat, lon=lon)
        err = (np.abs(lat) <= band_deg).astype(float)[None, None, :]
        fc = make_forecast({"z": err}, [T0], [0], truth)
        return skill.mse(fc, truth, weights)["z"].item()

    # 2-deg cell centres -89..89 (no poles): rows |lat| <= 19 cover exactly [-20, 20]
    lat1 = np.arange(-89.0, 90.0, 2.0)
    lat2, lon2 = (m.ravel() for m in np.meshgrid(lat1, np.arange(0.0, 360.0, 2.0), indexing="ij"))
    zone = (np.sin(np.deg2rad(20.0)) - np.sin(np.deg2rad(-20.0))) / 2
    got = fraction(lat2, lon2, skill.latitude_weights(lat2), 19.0)
    assert got == pytest.approx(zone, abs=1e-12)

    # the project's GFS-like grid, poles included: rows |lat| <= 20 cover [-21, 21]
    grid = regular_latlon(2.0)
    exact = xr.DataArray(area_weights(grid), dims="grid")
    covered = np.sin(np.deg2rad(21.0))
    assert fraction(grid.latitude, grid.longitude, exact, 20.0) == pytest.approx(covered, abs=1e-12)
    cos_lat = fraction(grid.latitude, grid.longitude, skill.latitude_weights(grid.latitude), 20.0)
    assert cos_lat == pytest.approx(covered, abs=2e-4)  # cos(90) = 0 instead of a polar cap
    assert abs(cos_lat - zone) < np.sin(np.deg2rad(21.0)) - np.sin(np.deg2rad(19.0))


def test_latitude_weights_are_cos_lat_with_mean_one():
    lat = np.array([-60.0, 0.0, 60.0, 90.0])
    w = skill.latitude_weights(lat)
    np.testing.assert_allclose(w.values, np.array([0.5, 1.0, 0.5, 0.0]) / 0.5, atol=1e-15)
    assert w.dims == ("grid",) and float(w.sum()) == pytest.approx(lat.size)
    raw = xr.DataArray([2.0, 6.0], dims="grid")
    np.testing.assert_allclose(skill.normalise_weights(raw).values, [0.5, 1.5])
    with pytest.raises(WorkbenchError, match="sum to 0"):
        skill.normalise_weights(xr.DataArray([0.0, 0.0], dims="grid"))


def test_weight_scale_does_not_matter_and_constants_average_to_themselves(tiny):
    fc, truth = tiny
    w = xr.DataArray([1.0, 3.0], dims="grid")
    assert skill.mse(fc, truth, 7 * w)["z"].item() == pytest.approx(5.0)
    constant = fc.copy(data={"z": fc["z"].values * 0 + 1.0, "t": fc["t"].values})
    flat = truth.copy(data={"z": truth["z"].values * 0, "t": truth["t"].values})
    assert skill.bias(constant, flat, w)["z"].item() == pytest.approx(1.0)
    with pytest.raises(WorkbenchError, match="3 points but the data has 2"):
        skill.mse(fc, truth, uniform(3))


# --------------------------------------------------------------------------- ACC


def test_acc_hand_value():
    truth = make_truth({"z": [[0, 0], [2, 1], [1, 1]]})
    clim = xr.Dataset({"z": ("grid", [0.0, 0.0])})
    # init 0: fa [1, 2], ta [2, 1], w [1, 3] -> 2 / sqrt(13/4 * 7/4) = 8 / sqrt(91)
    # init 1: fa [1, 1], ta [1, 1] -> 1
    fc = make_forecast({"z": [[[1, 2]], [[1, 1]]]}, [T0, T0 + 6 * H], [6], truth)
    got = skill.acc(fc, truth, clim, xr.DataArray([1.0, 3.0], dims="grid"))["z"].item()
    assert got == pytest.approx((8 / np.sqrt(91) + 1.0) / 2)


def test_acc_matches_a_numpy_loop_with_an_hourly_climatology():
    rng = np.random.default_rng(2)
    n_time, n_grid = 16, 20
    truth = make_truth({"z": rng.normal(size=(n_time, n_grid))})
    clim = skill.climatology(truth, T0, T0 + (n_time - 1) * 6 * H)
    inits, leads = [T0, T0 + 18 * H, T0 + 24 * H], [0, 6, 30]
    fc = make_forecast({"z": rng.normal(size=(3, 3, n_grid))}, inits, leads, truth)
    w = rng.uniform(0.3, 2.0, n_grid)
    got = skill.acc(fc, truth, clim, xr.DataArray(w, dims="grid"))["z"].values

    times = list(truth["time"].values)
    expected = np.zeros(3)
    for j, lead in enumerate(leads):
        per_init = []
        for i, init in enumerate(inits):
            valid = init + lead * H
            c = clim["z"].sel(hour=valid.hour).values
            fa = fc["z"].values[i, j] - c
            ta = truth["z"].values[times.index(np.datetime64(valid))] - c
            num = np.sum(w * fa * ta) / np.sum(w)
            den = np.sqrt(np.sum(w * fa**2) / np.sum(w) * np.sum(w * ta**2) / np.sum(w))
            per_init.append(num / den)
        expected[j] = np.mean(per_init)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_acc_perfect_forecast_is_one_and_climatology_forecast_is_nan():
    rng = np.random.default_rng(3)
    truth = make_truth({"z": rng.normal(size=(12, 15)), "t": rng.normal(size=(12, 15))})
    clim = skill.climatology(truth, T0, T0 + 66 * H)
    inits, leads = pd.date_range(T0, periods=4, freq="6h"), pd.to_timedelta([0, 6, 12], unit="h")
    w = skill.latitude_weights(truth["latitude"])
    perfect = skill.persistence_forecast(truth, inits, [pd.Timedelta(0)])
    result = skill.acc(perfect, truth, clim, w)
    assert all(float(result[v].squeeze()) == 1.0 for v in ("z", "t"))  # exactly
    climate = skill.climatology_forecast(clim, inits, leads)
    assert np.isnan(skill.acc(climate, truth, clim, w)["z"].values).all()  # 0 / 0


def test_acc_rejects_a_climatology_without_the_valid_hour():
    truth = make_truth({"z": np.ones((8, 2))})
    fc = make_forecast({"z": np.ones((1, 1, 2))}, [T0], [6], truth)
    clim = skill.climatology(truth, T0, T0).sel(hour=[0])  # hour 0 only
    with pytest.raises(WorkbenchError, match="climatology lacks a hour") as err:
        skill.acc(fc, truth, clim, uniform(2))
    one_line(err)


# --------------------------------------------------------------------------- ensembles


def test_fair_crps_hand_value():
    # members [0, 1, 3], truth 2: mean|X - y| = 4/3, sum_ij |Xi - Xj| / (3 * 2) = 12 / 6 = 2
    truth = make_truth({"z": [[0.0], [2.0]]})
    fc = make_forecast({"z": [[[[0.0], [1.0], [3.0]]]]}, [T0], [6], truth, member=True)
    assert skill.crps(fc, truth, uniform(1))["z"].item() == pytest.approx(1 / 3)
    assert float(skill.spatial_crps(fc, truth)["z"].squeeze()) == pytest.approx(1 / 3)


def test_crps_matches_scoringrules_fair_estimator():
    rng = np.random.default_rng(4)
    n_time, n_grid, n_member = 10, 25, 5
    truth = make_truth({"z": rng.normal(size=(n_time, n_grid))})
    values = rng.normal(size=(2, 3, n_member, n_grid))
    values[0, 0, 1] = values[0, 0, 0]  # ties
    fc = make_forecast({"z": values}, [T0, T0 + 6 * H], [0, 6, 12], truth, member=True)
    w = rng.uniform(0.5, 2.0, n_grid)
    obs = skill.align(fc, truth)["z"].values  # (init, lead, grid)
    point = {
        e: sr.crps_ensemble(obs, values, m_axis=2, estimator=e, backend="numpy")
        for e in ("fair", "pwm", "nrg")
    }
    # scoringrules 0.10: "fair" and "pwm" are the fair estimator, "nrg" the standard one
    np.testing.assert_allclose(point["fair"], point["pwm"], rtol=1e-10, atol=1e-12)
    assert not np.allclose(point["fair"], point["nrg"])
    expected = (np.sum(point["fair"] * w, axis=-1) / w.sum()).mean(axis=0)
    got = skill.crps(fc, truth, xr.DataArray(w, dims="grid"))["z"].values
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(
        skill.spatial_crps(fc, truth)["z"].values, point["fair"].mean(axis=0), rtol=1e-12
    )


def test_spread_and_ensemble_mean_hand_values():
    truth = make_truth({"z": [[0.0, 0.0], [0.0, 3.0], [0.0, -1.0]]})
    # (init, lead, member, grid): init 0 has members (0, 2) at point 0 and (1, 3) at point 1,
    # init 1 has members (1, 1) and (2, 2)
    fc = make_forecast(
        {"z": [[[[0.0, 1.0], [2.0, 3.0]]], [[[1.0, 2.0], [1.0, 2.0]]]]},
        [T0, T0 + 6 * H],
        [6],
        truth,
        member=True,
    )
    # var (ddof=1): init 0 -> [2, 2], init 1 -> [0, 0]
    # ensemble mean [1, 2] both inits; errors init 0 (truth [0, 3]) [1, -1], init 1 [1, 3]
    np.testing.assert_allclose(skill.spatial_spread(fc, truth)["z"].values, [[1.0, 1.0]])
    w = xr.DataArray([1.0, 3.0], dims="grid")
    assert skill.ensemble_variance(fc, truth, w)["z"].item() == pytest.approx(1.0)
    # mse per init: (1 + 3) / 4 = 1, (1 + 27) / 4 = 7 -> 4
    assert skill.ensemble_mean_rmse(fc, truth, w)["z"].item() == pytest.approx(2.0)
    assert skill.spread_skill_ratio(fc, truth, w)["z"].item() == pytest.approx(0.5)
    corrected = skill.spread_skill_ratio(fc, truth, w, correct=True)["z"].item()
    assert corrected == pytest.approx(0.5 * np.sqrt(3 / 2))


def test_spread_skill_ratio_of_a_reliable_ensemble():
    # truth and members iid N(0, 1): var -> 1, ensemble-mean MSE -> 1 + 1/M
    rng = np.random.default_rng(5)
    n_member, n_grid = 2, 50_000
    truth = make_truth({"z": rng.normal(size=(2, n_grid))})
    fc = make_forecast(
        {"z": rng.normal(size=(1, 1, n_member, n_grid))}, [T0], [6], truth, member=True
    )
    w = uniform(n_grid)
    raw = skill.spread_skill_ratio(fc, truth, w)["z"].item()
    assert raw == pytest.approx(np.sqrt(n_member / (n_member + 1)), abs=0.02)
    assert skill.spread_skill_ratio(fc, truth, w, correct=True)["z"].item() == pytest.approx(
        1.0, abs=0.02
    )


def test_single_member_has_zero_spread_and_crps_equal_to_mae(tiny):
    fc, truth = tiny
    ens = fc.expand_dims(member=1, axis=2)
    w = xr.DataArray([1.0, 3.0], dims="grid")
    assert skill.crps(ens, truth, w)["z"].item() == pytest.approx(2.0)  # the MAE
    np.testing.assert_array_equal(skill.spatial_spread(ens, truth)["z"].values, 0.0)


def test_ensemble_metrics_need_a_member_dim(tiny):
    fc, truth = tiny
    with pytest.raises(WorkbenchError, match="needs a 'member' dim") as err:
        skill.crps(fc, truth, uniform(2))
    one_line(err)


# --------------------------------------------------------------------------- baselines


def test_climatology_per_hour_over_an_inclusive_period():
    n_time = 12  # 3 days, 6-hourly
    values = np.arange(n_time, dtype=float)[:, None] * np.array([[1.0, 10.0]])
    truth = make_truth({"z": values})
    clim = skill.climatology(truth, T0, T0 + 30 * H)  # times 0..5 (the end included)
    assert clim["z"].dims == ("hour", "grid") and list(clim["hour"].values) == [0, 6, 12, 18]
    np.testing.assert_allclose(clim["z"].sel(hour=0).values, [2.0, 20.0])  # times 0, 4
    np.testing.assert_allclose(clim["z"].sel(hour=6).values, [3.0, 30.0])  # times 1, 5
    np.testing.assert_allclose(clim["z"].sel(hour=12).values, [2.0, 20.0])  # time 2
    flat = skill.climatology(truth, T0, T0 + 30 * H, by_hour=False)
    np.testing.assert_allclose(flat["z"].values, [2.5, 25.0])
    with pytest.raises(WorkbenchError, match="no times in") as err:
        skill.climatology(truth, "2021-01-01", "2021-02-01")
    one_line(err)


def test_climatology_forecast_follows_the_valid_hour():
    truth = make_truth({"z": np.arange(8, dtype=float)[:, None] * np.ones((1, 2))})
    clim = skill.climatology(truth, T0, T0 + 42 * H)  # hour h -> mean of times h/6 and h/6 + 4
    fc = skill.climatology_forecast(clim, [T0 + 18 * H], pd.to_timedelta([0, 12], unit="h"))
    assert fc["z"].dims == ("init_time", "lead_time", "grid")
    np.testing.assert_allclose(fc["z"].values[0, 0], [5.0, 5.0])  # hour 18: times 3, 7
    np.testing.assert_allclose(fc["z"].values[0, 1], [3.0, 3.0])  # hour 6: times 1, 5
    assert "latitude" in fc.coords


def test_persistence_is_exact_at_lead_zero_and_repeats_the_init_state():
    rng = np.random.default_rng(6)
    truth = make_truth({"z": rng.normal(size=(10, 4)), "t": rng.normal(size=(10, 4))})
    inits = [T0 + 6 * H, T0 + 24 * H]
    fc = skill.persistence_forecast(truth, inits, pd.to_timedelta([0, 6, 12], unit="h"))
    assert fc["z"].dims == ("init_time", "lead_time", "grid")
    np.testing.assert_array_equal(fc["z"].values[1, 2], truth["z"].values[4])
    result = skill.rmse(fc, truth, skill.latitude_weights(truth["latitude"]))
    assert all(float(result[v].isel(lead_time=0)) == 0.0 for v in ("z", "t"))
    assert all(float(result[v].isel(lead_time=1)) > 0.0 for v in ("z", "t"))
    with pytest.raises(WorkbenchError, match="not in the truth"):
        skill.persistence_forecast(truth, [T0 + 3 * H], pd.to_timedelta([0], unit="h"))
    with pytest.raises(WorkbenchError, match="must be timedeltas"):
        skill.persistence_forecast(truth, inits, [0, 6])


# --------------------------------------------------------------------------- scores, bands


def test_skill_score():
    model = xr.Dataset({"z": ("lead_time", [1.0, 2.0])})
    reference = xr.Dataset({"z": ("lead_time", [4.0, 2.0])})
    np.testing.assert_allclose(skill.skill_score(model, reference)["z"].values, [0.75, 0.0])
    np.testing.assert_allclose(
        skill.skill_score(model, reference, kind="rmse")["z"].values, [1 - 1 / 16, 0.0]
    )
    rmse_model, rmse_ref = np.sqrt(model), np.sqrt(reference)  # rmse kind = mse kind on squares
    np.testing.assert_allclose(
        skill.skill_score(rmse_model, rmse_ref, kind="rmse")["z"].values,
        skill.skill_score(model, reference)["z"].values,
    )
    with pytest.raises(WorkbenchError, match="unknown skill score kind"):
        skill.skill_score(model, reference, kind="acc")
    with pytest.raises(WorkbenchError, match="score the same variables"):
        skill.skill_score(model, reference.rename(z="t"))


def test_distance_bands_are_half_open():
    labels = skill.distance_bands([0, 1, 2, 3.5, 4, 9, np.nan, -1], [0, 2, 4, np.inf])
    np.testing.assert_array_equal(labels.values, [0, 0, 1, 1, 2, 2, -1, -1])
    assert labels.dims == ("grid",) and labels.attrs["edges"] == [0.0, 2.0, 4.0, np.inf]
    with pytest.raises(WorkbenchError, match="strictly increasing"):
        skill.distance_bands([1.0], [0, 0, 1])


def test_by_band_weighted_means(tiny):
    metric = xr.Dataset(
        {"z": (("lead_time", "grid"), [[1.0, 3.0, 5.0, 7.0, 100.0]])},
        coords={"latitude": ("grid", np.zeros(5))},
    )
    labels = skill.distance_bands([0, 1, 2, 2, 99], [0, 2, 4, 8])  # last point outside: -1
    w = xr.DataArray([1.0, 3.0, 1.0, 1.0, 1.0], dims="grid")
    out = skill.by_band(metric, labels, w)
    assert out["z"].dims == ("lead_time", "band")
    got = out["z"].values[0]
    np.testing.assert_allclose(got[:2], [(1 + 9) / 4, (5 + 7) / 2])
    assert np.isnan(got[2])  # no point in [4, 8)
    np.testing.assert_array_equal(out["band_lower"].values, [0, 2, 4])

    fc, truth = tiny  # band RMSE from spatial_mse: sqrt of the band mean of the mean square
    maps = skill.spatial_mse(fc, truth)
    one_band = skill.distance_bands([0, 0], [0, 1])
    w2 = xr.DataArray([1.0, 3.0], dims="grid")
    assert float(np.sqrt(skill.by_band(maps, one_band, w2))["z"].squeeze()) == pytest.approx(
        skill.rmse(fc, truth, w2)["z"].item()
    )


def test_dask_chunked_inputs_give_the_same_numbers():
    rng = np.random.default_rng(7)
    truth = make_truth({"z": rng.normal(size=(10, 12))})
    fc = make_forecast(
        {"z": rng.normal(size=(3, 2, 4, 12))},
        [T0, T0 + 6 * H, T0 + 12 * H],
        [0, 6],
        truth,
        member=True,
    )
    w = skill.latitude_weights(truth["latitude"])
    lazy_fc, lazy_truth = fc.chunk({"init_time": 1}), truth.chunk({"time": 5})
    for metric in (skill.crps, skill.spread_skill_ratio):
        lazy = metric(lazy_fc, lazy_truth, w)
        assert lazy["z"].chunks is not None  # stays lazy until computed
        np.testing.assert_allclose(
            lazy.compute()["z"].values, metric(fc, truth, w)["z"].values, rtol=1e-12
        )
