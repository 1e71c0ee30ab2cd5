"""The boundary band's skill with its interval (workbench.boundary_band): which points it
holds (checked against distances computed here), its skill on forecasts whose errors are
known, and the interval against workbench.intervals and a replicate loop written here."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from workbench import boundary_band, catalog, intervals, skill

pytestmark = pytest.mark.timeout(120)

TRAIN = ("2020-01-01", "2020-01-10T18:00")
INITS = np.arange(np.datetime64("2020-01-12T00"), np.datetime64("2020-01-20T00"),
                  np.timedelta64(6, "h"))
LEADS = np.array([6, 24], dtype="timedelta64[h]")


@pytest.fixture(scope="module")
def stretched() -> xr.Dataset:
    """Three weeks of the stretched (cutout) domain's truth: CONUS inside the global grid."""
    ds = catalog.open_dataset("stretched")[["t2m", "z_500"]]
    return ds.sel(time=slice("2020-01-01", "2020-01-21")).load()


@pytest.fixture(scope="module")
def europe() -> xr.Dataset:
    ds = catalog.open_dataset("europe")[["t2m", "z_500"]]
    return ds.sel(time=slice("2020-01-01", "2020-01-21")).load()


def blend(truth: xr.Dataset, towards_truth: dict[str, float], far_error: float = 0.0,
          band: np.ndarray | None = None) -> xr.Dataset:
    """A forecast: persistence moved ``towards_truth[var]`` of the way to the verifying truth
    (its squared error is (1 - a)^2 persistence's at every point), plus ``far_error`` added at
    every point outside ``band``."""
    persistence = skill.persistence_forecast(truth, INITS, LEADS)
    valid = (persistence["init_time"] + persistence["lead_time"]).transpose("init_time",
                                                                           "lead_time")
    verifying = truth.sel(time=xr.DataArray(valid.values.ravel(), dims="v"))
    out = {}
    for name, a in towards_truth.items():
        target = verifying[name].values.reshape(len(INITS), len(LEADS), -1)
        values = persistence[name].transpose("init_time", "lead_time", "grid").values
        values = values + a * (target - values)
        if band is not None:
            outside = np.ones(values.shape[-1], bool)
            outside[band] = False
            values[..., outside] += far_error
        out[name] = (("init_time", "lead_time", "grid"), values)
    return xr.Dataset(out, coords={"init_time": INITS, "lead_time": LEADS.astype(
        "timedelta64[ns]")}, attrs={"dataset": truth.attrs.get("dataset")})


def test_the_cutout_band_is_150_km_outside_and_3_cells_inside(stretched):
    inside = stretched["cutout_mask"].values.astype(bool)
    lat, lon = np.radians(stretched["latitude"].values), np.radians(stretched["longitude"].values)
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    lam = xyz[inside]
    km = np.array([6371.0 * np.arccos(np.clip(xyz[g] @ lam.T, -1, 1)).min()
                   for g in np.flatnonzero(~inside)])
    near = np.flatnonzero(~inside)[km < 150]
    first_cells = np.flatnonzero(inside & (stretched["lam_edge_cells"].values < 3))
    band = boundary_band.band_points(blend(stretched, {"t2m": 0.0}), stretched)
    assert near.size > 0 and first_cells.size > 0
    assert np.array_equal(np.sort(band), np.sort(np.concatenate([near, first_cells])))


def test_a_plain_lam_band_starts_after_the_forced_ring(europe):
    ny, nx = europe.attrs["grid_shape"]
    i, j = np.divmod(np.arange(ny * nx), nx)
    cells = np.minimum.reduce([i, j, ny - 1 - i, nx - 1 - j])  # rows/columns to the edge
    forecast = blend(europe, {"t2m": 0.0}).assign_coords(forced=("grid", cells < 2))
    forecast.attrs["boundary_cells"] = 2
    band = boundary_band.band_points(forecast, europe)
    assert np.array_equal(np.sort(band), np.flatnonzero((cells >= 2) & (cells < 5)))
    # nothing forced: the band is the first 3 cells from the edge
    band = boundary_band.band_points(blend(europe, {"t2m": 0.0}), europe)
    assert np.array_equal(np.sort(band), np.flatnonzero(cells < 3))


def test_band_skill_is_known_where_the_errors_are_and_ignores_points_outside(stretched):
    band = boundary_band.band_points(blend(stretched, {"t2m": 0.0}), stretched)
    # t2m halfway to the truth: skill 1 - 0.25 = 0.75; z_500 the truth itself: skill 1;
    # huge errors outside the band change nothing
    forecast = blend(stretched, {"t2m": 0.5, "z_500": 1.0}, far_error=1e4, band=band)
    table = boundary_band.band_skill(forecast, stretched, TRAIN)
    assert list(table["lead_hours"]) == [6.0, 24.0]
    np.testing.assert_allclose(table["value"], 0.875, atol=1e-6)  # float32 data
    np.testing.assert_allclose(table[["ci_low", "ci_high"]].to_numpy(), 0.875, atol=1e-6)  # float32 data
    # persistence itself: 0 against persistence
    table = boundary_band.band_skill(blend(stretched, {"t2m": 0.0, "z_500": 0.0}), stretched,
                                     TRAIN)
    np.testing.assert_allclose(table["value"], 0.0, atol=1e-12)


def test_global_grid_has_no_band():
    truth = catalog.open_dataset("global")[["t2m"]].sel(time=slice("2020-01-01", "2020-01-21"))
    truth = truth.load()
    assert boundary_band.band_points(blend(truth, {"t2m": 0.0}), truth) is None
    assert boundary_band.band_skill(blend(truth, {"t2m": 0.5}), truth, TRAIN).empty


def test_mean_skill_interval_is_skill_interval_for_one_variable_and_a_loop_for_two():
    rng = np.random.default_rng(3)
    n, leads = 40, 3
    model = rng.gamma(2.0, 1.0, (n, leads, 2))
    reference = model * rng.uniform(1.0, 2.0, (n, leads, 2))
    counted = np.ones(model.shape, bool)
    counted[5, 1, :] = False  # an initial time without a score at one lead
    block = 4
    one = boundary_band.mean_skill_interval(model[..., :1], reference[..., :1],
                                            counted[..., :1], block)
    expected = intervals.skill_interval(model[..., 0], reference[..., 0], counted[..., 0], block)
    for got, want in zip(one, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    value, low, high = boundary_band.mean_skill_interval(model, reference, counted, block)
    replicates = []
    for rows in intervals.block_indices(n, block):
        skills = []
        for v in range(2):
            m, r, c = model[rows, :, v], reference[rows, :, v], counted[rows, :, v]
            skills.append(1 - (m * c).sum(0) / c.sum(0) / ((r * c).sum(0) / c.sum(0)))
        replicates.append(np.mean(skills, axis=0))
    np.testing.assert_allclose(low, np.percentile(replicates, 2.5, axis=0), rtol=1e-12)
    np.testing.assert_allclose(high, np.percentile(replicates, 97.5, axis=0), rtol=1e-12)
    point = np.mean([1 - (model[..., v] * counted[..., v]).sum(0)
                     / (reference[..., v] * counted[..., v]).sum(0) for v in range(2)], axis=0)
    np.testing.assert_allclose(value, point, rtol=1e-12)
    assert np.all(low < value) and np.all(value < high)
