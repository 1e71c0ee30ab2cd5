"""The test corpus: tiny stores in the layouts real sources use, each written the way its
source writes it, with its catalog entry in ``folder/cat``.

Writers shared by several test modules live here (the SST/radar files are in
``missing_files``, the GRIB2 files in ``grib_files``); :data:`LAYOUTS` takes each layout
through the bring-your-own-data path (``tests/test_byod.py``):

- ``wb2``: WeatherBench 2 ERA5 zarr, dims (time, level, latitude, longitude), latitude
  90..-90 with pole rows, longitude 0..350, WB2 names, CF attrs;
- ``sst``: a lat-lon netCDF extract whose sea-surface temperature is NaN over land;
- ``radar``: a radar-like rain rate on a Lambert conformal grid, NaN beyond a range that
  changes with time;
- ``clim360``: a CMOR-style climate-model netCDF in a ``360_day`` calendar;
- ``anemoi``: an anemoi-datasets zarr (``data[time, variable, ensemble, grid]`` on an
  octahedral-like point list, statistics arrays) with ``missing_dates`` holding garbage;
- ``gfs`` / ``hrrr``: GRIB2 files per cycle on a GFS-like global grid (6-hourly) and on
  HRRR's Lambert grid (hourly analyses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import xarray as xr
from helpers import write_entry

TIMES = pd.date_range("2021-03-01", periods=8, freq="6h").values  # the layout tests' times


def field(lat, lon, t):
    """The test field: a smooth function of the point (periodic in longitude) and the time."""
    lat, lon = np.deg2rad(lat), np.deg2rad(lon)
    return (280 + 20 * np.cos(lat) + 5 * np.sin(lon) + 3 * np.sin(2 * lat) * np.cos(lon)
            + 0.5 * np.asarray(t)[..., None, None]).astype(np.float32)


def catalog_entry(folder, name, kind, path, variables, domain, step: str = "6h"):
    """A catalog entry ``name`` for the store at ``path`` in ``folder``."""
    write_entry(folder, name, f"""\
name: {name}
domain: {domain}
source: {{kind: {kind}, path: {path}}}
variables: {variables}
time_step: {step}
grid: {{kind: as-written, resolution: test}}
""")


def write_wb2(folder, name="wb2", domain="era5", times=TIMES):
    """A WeatherBench 2 ERA5-like zarr (19 x 36 points, 10 deg) and its entry (t2m, z_500);
    returns (shape, "global")."""
    lat, lon = np.linspace(90, -90, 19), np.arange(0, 360, 10.0)
    t2m = field(lat[:, None], lon[None, :], np.arange(len(times)))
    z = np.stack([t2m * 10, t2m * 20], axis=1)  # (time, level, lat, lon)
    ds = xr.Dataset(
        {"2m_temperature": (("time", "latitude", "longitude"), t2m,
                            {"units": "K", "long_name": "2 metre temperature"}),
         "geopotential": (("time", "level", "latitude", "longitude"), z,
                          {"units": "m**2 s**-2", "standard_name": "geopotential"}),
         "temperature": (("time", "level", "latitude", "longitude"), z / 50, {"units": "K"}),
         **{name: (("time", "latitude", "longitude"), t2m / 100, {"units": "m s**-1"})
            for name in ("10m_u_component_of_wind", "10m_v_component_of_wind")},
         "total_precipitation_6hr": (("time", "latitude", "longitude"), t2m * 0, {"units": "m"})},
        coords={"time": times, "level": ("level", np.array([500, 850]), {"units": "hPa"}),
                "latitude": ("latitude", lat, {"units": "degrees_north",
                                               "standard_name": "latitude"}),
                "longitude": ("longitude", lon, {"units": "degrees_east",
                                                 "standard_name": "longitude"})},
        attrs={"Conventions": "CF-1.7"})
    ds.chunk({"time": 4}).to_zarr(folder / f"{name}.zarr", consolidated=True)
    catalog_entry(folder / "cat", name, "zarr", folder / f"{name}.zarr",
                  "{t2m: 2m_temperature, z_500: geopotential@500}", domain)
    return (19, 36), "global"


# ------------------------------------------------------------------- climate model (360_day)

DAY0_360 = 150 * 360.0  # 2000-01-01 00:00 in days since 1850-01-01 of a 360_day calendar
LAT, LON = np.arange(-80.0, 81.0, 20.0), np.arange(0.0, 360.0, 22.5)


def climate_netcdf(path: Path, calendar: str, days: np.ndarray, name: str = "tas") -> np.ndarray:
    """``tas`` at ``days`` (days since 1850-01-01 in ``calendar``) on a 9 x 16 global grid,
    written with netCDF4 as CMOR does; returns the values written [time, lat, lon]."""
    t = days[:, None, None]
    lat, lon = np.deg2rad(LAT)[None, :, None], np.deg2rad(LON)[None, None, :]
    values = (280 + 20 * np.cos(lat) + 3 * np.sin(lon - 2 * np.pi * t / 10)  # a moving wave
              + 2 * np.cos(2 * np.pi * t) * np.cos(lat)).astype(np.float32)  # a daily cycle
    with netCDF4.Dataset(path, "w") as nc:
        nc.Conventions = "CF-1.7 CMIP-6.2"
        nc.createDimension("time", None)
        nc.createDimension("lat", LAT.size)
        nc.createDimension("lon", LON.size)
        time = nc.createVariable("time", "f8", ("time",))
        time.units, time.calendar = "days since 1850-01-01", calendar
        time.standard_name, time.axis = "time", "T"
        time[:] = days
        for axis, data, units in (("lat", LAT, "degrees_north"), ("lon", LON, "degrees_east")):
            var = nc.createVariable(axis, "f8", (axis,))
            var.units, var.standard_name = units, {"lat": "latitude", "lon": "longitude"}[axis]
            var[:] = data
        var = nc.createVariable(name, "f4", ("time", "lat", "lon"))
        var.units, var.standard_name = "K", "air_temperature"
        var[:] = values
    return values


# ------------------------------------------------------------------- anemoi-datasets

GARBAGE = 9.0e9  # what the anemoi store holds at its missing dates


def octahedral_points(rows: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """An octahedral reduced grid's points (ECMWF's O-grids): ``rows`` latitude rows per
    hemisphere, row i from the pole holding 4 i + 16 points, north to south."""
    lats, lons = [], []
    north = 90 - (np.arange(rows) + 0.5) * 90 / rows  # equally spaced stand-ins for Gaussian
    for lat, count in [*zip(north, 4 * np.arange(1, rows + 1) + 16, strict=True),
                       *zip(-north[::-1], 4 * np.arange(rows, 0, -1) + 16, strict=True)]:
        lats.append(np.full(count, lat))
        lons.append(np.arange(count) * 360.0 / count)
    return np.concatenate(lats), np.concatenate(lons)


def write_anemoi(folder: Path, name: str, times: np.ndarray, missing: list[int]) -> dict:
    """An anemoi-datasets store as ``anemoi-datasets create`` writes it: zarr v2,
    ``data[time, variable, ensemble, grid]`` (float32, one chunk per date), ``dates``,
    ``latitudes``, ``longitudes``, the statistics arrays (mean, stdev, minimum, maximum,
    sums, squares, count, has_nans over the valid dates) and attrs (variables, frequency,
    start/end dates, missing_dates, ...), on an octahedral point list. The fields of the
    ``missing`` time indices hold :data:`GARBAGE`. Its entry ``name`` maps t2m: 2t and
    z_500: z_500. Returns the valid values {variable: [time, grid]} (NaN where missing)."""
    import zarr

    lat, lon = octahedral_points()
    phase = np.deg2rad(lon)[None, :] - 2 * np.pi * np.arange(len(times))[:, None] / 12
    valid = {"2t": 280 + 20 * np.cos(np.deg2rad(lat))[None, :] + 3 * np.sin(phase),
             "z_500": 55000 + 2000 * np.cos(np.deg2rad(lat))[None, :] + 300 * np.cos(phase)}
    names = list(valid)
    data = np.stack([valid[n] for n in names], axis=1)[:, :, None, :].astype(np.float32)
    data[missing] = GARBAGE
    kept = np.ones(len(times), bool)
    kept[missing] = False
    good = data[kept][:, :, 0, :].astype(np.float64)  # [time, variable, grid]
    root = zarr.open_group(folder / f"{name}.zarr", mode="w", zarr_format=2)
    root.create_array("data", data=data, chunks=(1, len(names), 1, lat.size))
    root.create_array("dates", data=times.astype("datetime64[s]"))
    root.create_array("latitudes", data=lat)
    root.create_array("longitudes", data=lon)
    for key, values in (("mean", good.mean((0, 2))), ("stdev", good.std((0, 2))),
                        ("minimum", good.min((0, 2))), ("maximum", good.max((0, 2))),
                        ("sums", good.sum((0, 2))), ("squares", (good**2).sum((0, 2))),
                        ("count", np.full(len(names), good[:, 0].size)),
                        ("has_nans", np.zeros(len(names), bool))):
        root.create_array(key, data=values)
    root.attrs.update({
        "variables": names, "name_to_index": {n: i for i, n in enumerate(names)},
        "frequency": "6h", "resolution": "o8", "ensemble_dimension": 1, "flatten_grid": True,
        "start_date": str(times[0].astype("datetime64[s]")),
        "end_date": str(times[-1].astype("datetime64[s]")),
        "missing_dates": [str(times[i].astype("datetime64[s]")) for i in missing],
        "data_request": {"grid": "O8", "param_level": {"sfc": ["2t"], "pl": [["z", 500]]}},
        "version": "0.30"})
    catalog_entry(folder / "cat", name, "anemoi", folder / f"{name}.zarr",
                  "{t2m: 2t, z_500: z_500}", "era5-o8")
    return {canonical: np.where(kept[:, None], valid[source], np.nan)
            for canonical, source in (("t2m", "2t"), ("z_500", "z_500"))}


# ------------------------------------------------------------------- the byod corpus

BYOD_STEPS = 28  # time steps of the 6-hourly corpus datasets (7 days; HRRR: 48 hours)
BYOD_TIMES = pd.date_range("2021-03-01", periods=BYOD_STEPS, freq="6h").values
ANEMOI_MISSING = [5, 6, 13]  # time indices the anemoi store lists in missing_dates


@dataclass(frozen=True)
class Layout:
    dataset: str  # its catalog name
    variables: tuple[str, ...]  # what the byod path trains and scores
    kind: str  # "global" or "lam"


def _wb2(folder: Path) -> Layout:
    write_wb2(folder, "wb2", "era5", BYOD_TIMES)
    return Layout("wb2", ("t2m", "z_500"), "global")


def _sst(folder: Path) -> Layout:
    from missing_files import write_latlon

    write_latlon(folder, "shelf")
    return Layout("shelf", ("sst",), "lam")


def _radar(folder: Path) -> Layout:
    from missing_files import write_projected

    write_projected(folder, "coast")
    return Layout("coast", ("rr",), "lam")


def _clim360(folder: Path) -> Layout:
    climate_netcdf(folder / "clim.nc", "360_day", DAY0_360 + 57 + np.arange(BYOD_STEPS) / 4)
    catalog_entry(folder / "cat", "clim", "netcdf", folder / "clim.nc", "{t2m: tas}", "global")
    return Layout("clim", ("t2m",), "global")  # 2000-02-28 .. 2000-03-04 in 360_day


def _anemoi(folder: Path) -> Layout:
    write_anemoi(folder, "an", BYOD_TIMES, ANEMOI_MISSING)
    return Layout("an", ("t2m", "z_500"), "global")


def _gfs(folder: Path) -> Layout:
    from grib_files import write_gfs

    (folder / "gfs").mkdir(exist_ok=True)
    for time in BYOD_TIMES:
        stamp = str(time.astype("datetime64[h]")).replace(":", "")
        write_gfs(folder / "gfs" / f"gfs.{stamp}.grib2", str(time.astype("datetime64[h]")))
    catalog_entry(folder / "cat", "gfs", "grib", f"{folder}/gfs/gfs.*.grib2", "[z_500, t_850]",
                  "global")
    return Layout("gfs", ("z_500", "t_850"), "global")


def _hrrr(folder: Path) -> Layout:
    from grib_files import write_hrrr

    (folder / "hrrr").mkdir(exist_ok=True)
    for time in pd.date_range("2021-03-01", periods=48, freq="1h").values:  # every hour of day
        stamp = str(time.astype("datetime64[h]")).replace(":", "")
        write_hrrr(folder / "hrrr" / f"hrrr.{stamp}.grib2", str(time.astype("datetime64[h]")))
    catalog_entry(folder / "cat", "hrrr", "grib", f"{folder}/hrrr/hrrr.*.grib2",
                  "[z_500, t_850]", "hrrr", step="1h")
    return Layout("hrrr", ("z_500", "t_850"), "lam")


LAYOUTS = {"wb2": _wb2, "sst": _sst, "radar": _radar, "clim360": _clim360, "anemoi": _anemoi,
           "gfs": _gfs, "hrrr": _hrrr}


def write_corpus(folder: Path) -> dict[str, Layout]:
    """Every layout of :data:`LAYOUTS` into ``folder`` (entries in ``folder/cat``)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: write(folder) for name, write in LAYOUTS.items()}
