"""Readers: each file layout written by the test opens into the canonical layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from helpers import write_entry

from workbench import catalog, grids
from workbench.errors import WorkbenchError

TIMES = pd.date_range("2021-03-01", periods=5, freq="6h").values


def _entry(folder, name, kind, path, variables, extra=""):
    write_entry(folder, name, f"""\
name: {name}
domain: test
source:
  kind: {kind}
  path: {path}
{extra}variables: {variables}
time_step: 6h
grid: {{kind: test, resolution: test}}
""")
    return catalog.get_entry(name, [folder])


def test_anemoi_layout_zarr(tmp_path):
    """data[time, variable, ensemble, grid] + dates/latitudes/longitudes + attrs."""
    rng = np.random.default_rng(0)
    n_grid, names = 40, ["t2m", "msl", "lsm"]
    data = rng.normal(size=(len(TIMES), len(names), 1, n_grid)).astype(np.float32)
    data[:, 2] = data[0, 2]  # a constant field
    lat, lon = rng.uniform(-80, 80, n_grid), rng.uniform(0, 360, n_grid)
    root = zarr.open_group(tmp_path / "an.zarr", mode="w")
    root.create_array("data", data=data)
    root.create_array("dates", data=TIMES.astype("datetime64[s]"))
    root.create_array("latitudes", data=lat)
    root.create_array("longitudes", data=lon)
    root.attrs.update({"variables": names, "name_to_index": {n: i for i, n in enumerate(names)},
                       "frequency": "6h", "constant_fields": ["lsm"]})
    entry = _entry(tmp_path / "cat", "an", "anemoi", tmp_path / "an.zarr",
                   "{t2m: t2m, mslp: msl, lsm: lsm}")
    ds = catalog.open_dataset(entry)
    assert ds["t2m"].dims == ("time", "grid") and ds["lsm"].dims == ("grid",)
    np.testing.assert_array_equal(ds["mslp"].values, data[:, 1, 0])
    np.testing.assert_array_equal(ds["lsm"].values, data[0, 2, 0])
    np.testing.assert_array_equal(ds["time"].values, TIMES)
    np.testing.assert_allclose(ds["longitude"].values, grids.wrap_longitude(lon))
    assert ds.attrs["domain"] == "test"


def test_anemoi_coordinate_size_mismatch(tmp_path):
    root = zarr.open_group(tmp_path / "bad.zarr", mode="w")
    root.create_array("data", data=np.zeros((2, 1, 1, 10), np.float32))
    root.create_array("dates", data=TIMES[:2].astype("datetime64[s]"))
    root.create_array("latitudes", data=np.zeros(9))
    root.create_array("longitudes", data=np.zeros(9))
    root.attrs["variables"] = ["t2m"]
    entry = _entry(tmp_path / "cat", "bad", "anemoi", tmp_path / "bad.zarr", "[t2m]")
    with pytest.raises(WorkbenchError, match="9 latitudes .* 10 grid points"):
        catalog.open_dataset(entry)


def _ocean_only_sst(path):
    """An SST field NaN over land on a 1-D regular lat/lon grid, written as CF netCDF."""
    lat = np.linspace(-60, 60, 13)
    lon = np.arange(0, 360, 15.0)
    land = (np.abs(lat[:, None] - 20) < 25) & (lon[None, :] > 200) & (lon[None, :] < 280)
    sst = 300 - 0.5 * np.abs(lat)[None, :, None] + np.zeros((len(TIMES), 1, lon.size))
    sst = np.where(land[None], np.nan, sst)
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), sst)},
                    coords={"time": TIMES, "lat": lat, "lon": lon})
    ds.to_netcdf(path)
    return land


def test_nan_masked_netcdf_opens_and_reports_missing(tmp_path):
    land = _ocean_only_sst(tmp_path / "sst.nc")
    entry = _entry(tmp_path / "cat", "sst", "netcdf", tmp_path / "sst.nc", "[sst]")
    ds = catalog.open_dataset(entry)
    assert ds["sst"].dims == ("time", "grid") and ds.sizes["grid"] == land.size
    assert ds.attrs["grid_shape"] == list(land.shape)
    info = catalog.describe(ds)
    assert info["variables"]["sst"]["missing_fraction"] == pytest.approx(land.mean())
    assert info["missing_fraction"] == pytest.approx(land.mean())
    # row-major flattening: grid point i*nx + j is (lat[i], lon[j])
    assert ds["latitude"].values[2 * 24 + 5] == pytest.approx(-40)
    assert ds["longitude"].values[2 * 24 + 5] == pytest.approx(75)


def test_projected_2d_latlon_zarr_with_levels(tmp_path):
    g = grids.hrrr(60)
    ny, nx = g.shape
    levels = [500, 850]
    z = np.arange(len(TIMES) * 2 * ny * nx, dtype=np.float32).reshape(len(TIMES), 2, ny, nx)
    ds = xr.Dataset(
        {"geopotential": (("time", "level", "y", "x"), z)},
        coords={"time": TIMES, "level": levels,
                "latitude": (("y", "x"), g.latitude.reshape(ny, nx)),
                "longitude": (("y", "x"), g.longitude.reshape(ny, nx))},
        attrs={"crs": g.crs},
    )
    ds.to_zarr(tmp_path / "lam.zarr")
    entry = _entry(tmp_path / "cat", "lam", "zarr", tmp_path / "lam.zarr",
                   "{z_500: geopotential@500, z_850: geopotential@850}")
    out = catalog.open_dataset(entry)
    np.testing.assert_array_equal(out["z_850"].values, z[:, 1].reshape(len(TIMES), -1))
    np.testing.assert_allclose(out["latitude"].values, g.latitude)
    assert out.attrs["grid_shape"] == [ny, nx] and out.attrs["crs"] == g.crs


def test_latlon_sizes_not_matching_data(tmp_path):
    ds = xr.Dataset(
        {"t2m": (("time", "y", "x"), np.zeros((2, 4, 5))),
         "latitude": (("j", "i"), np.zeros((4, 6))), "longitude": (("j", "i"), np.zeros((4, 6)))},
        coords={"time": TIMES[:2]},
    )
    ds.to_netcdf(tmp_path / "bad.nc")
    entry = _entry(tmp_path / "cat", "bad", "netcdf", tmp_path / "bad.nc", "[t2m]")
    with pytest.raises(WorkbenchError, match="latitude/longitude are .* sizes match"):
        catalog.open_dataset(entry)


def test_non_increasing_times(tmp_path):
    times = TIMES[[0, 2, 1, 3]]
    ds = xr.Dataset({"t2m": (("time", "lat", "lon"), np.zeros((4, 3, 4)))},
                    coords={"time": times, "lat": [-10.0, 0, 10], "lon": [0.0, 90, 180, 270]})
    ds.to_netcdf(tmp_path / "t.nc")
    entry = _entry(tmp_path / "cat", "t", "netcdf", tmp_path / "t.nc", "[t2m]")
    with pytest.raises(WorkbenchError, match="not strictly increasing at index 2.*sortby"):
        catalog.open_dataset(entry)


def test_absent_variable(tmp_path):
    _ocean_only_sst(tmp_path / "sst.nc")
    entry = _entry(tmp_path / "cat", "sst", "netcdf", tmp_path / "sst.nc", "[sst, t2m]")
    with pytest.raises(WorkbenchError, match=r"variables \['t2m'\] are absent"):
        catalog.open_dataset(entry)


def test_missing_file(tmp_path):
    entry = _entry(tmp_path / "cat", "gone", "zarr", tmp_path / "nowhere.zarr", "[t2m]")
    with pytest.raises(WorkbenchError, match="nowhere.zarr does not exist.*source.path"):
        catalog.open_dataset(entry)


def test_remote_source_offline_names_network():
    with pytest.raises(WorkbenchError, match="needs network access") as err:
        catalog.open_dataset("era5-wb2")
    assert "\n" not in str(err.value)


def test_2d_coordinates_of_a_latlon_grid_are_regular_latlon(tmp_path):
    """Model output with 2-D ``nav_lat``/``nav_lon`` on a plain lat-lon grid (descending rows,
    0..360): read as regular lat-lon with 1-D axes, so areas are exact spherical cells."""
    lat, lon = np.linspace(60, 20, 5), np.arange(300, 360, 10.0)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    ds = xr.Dataset({"t2m": (("time", "y", "x"), np.zeros((len(TIMES), 5, 6)))},
                    coords={"time": TIMES, "nav_lat": (("y", "x"), lat2),
                            "nav_lon": (("y", "x"), lon2)})
    ds.to_netcdf(tmp_path / "nemo.nc")
    out = catalog.open_dataset(_entry(tmp_path / "cat", "nemo", "netcdf", tmp_path / "nemo.nc",
                                      "[t2m]"))
    assert out.attrs["grid_kind"] == "regular_latlon" and out.attrs["grid_shape"] == [5, 6]
    assert out.attrs["grid_y"] == list(lat) and out.attrs["grid_x"] == list(lon)
    np.testing.assert_allclose(out["longitude"].values, (lon2 - 360).ravel())
    grid = grids.grid_from_dataset(out)
    assert not grids.covers_globe(grid)
    assert grids.area_weights(grid).sum() == pytest.approx(
        grids.EARTH_RADIUS_KM**2 * np.deg2rad(60) * (np.sin(np.deg2rad(65))
                                                     - np.sin(np.deg2rad(15))), rel=1e-12)


def test_crs_from_the_cf_grid_mapping_variable(tmp_path):
    """A projected grid's CRS in the variable named by ``grid_mapping`` (``proj4text``): the
    grid gets its x/y axes and spacing from it."""
    g = grids.hrrr(90)
    ny, nx = g.shape
    ds = xr.Dataset(
        {"t2m": (("time", "y", "x"), np.zeros((len(TIMES), ny, nx), np.float32),
                 {"grid_mapping": "crs"}),
         "crs": ((), 0, {"grid_mapping_name": "lambert_conformal_conic", "proj4text": g.crs})},
        coords={"time": TIMES, "latitude": (("y", "x"), g.latitude.reshape(ny, nx)),
                "longitude": (("y", "x"), g.longitude.reshape(ny, nx))})
    ds.to_netcdf(tmp_path / "lcc.nc")
    out = catalog.open_dataset(_entry(tmp_path / "cat", "lcc", "netcdf", tmp_path / "lcc.nc",
                                      "[t2m]"))
    assert out.attrs["crs"] == g.crs and out.attrs["grid_spacing_km"] == pytest.approx(270.0)
    np.testing.assert_allclose(out.attrs["grid_x"], g.x, atol=1e-3)
    np.testing.assert_allclose(out.attrs["grid_y"], g.y, atol=1e-3)
