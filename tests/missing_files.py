"""Test data with missing values, written on the fly: an SST-like field that is NaN over land
(a static mask) and a radar-like rain rate that is NaN outside the radar's range (a mask
that changes with time), on a lat-lon extract and on a projected (Lambert) grid; and a tiny
zarr store written as plain text files (for the CLI's bad-input table)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS

from workbench import grids

TIMES = pd.date_range("2021-06-01", "2021-06-12T18:00", freq="6h").values  # 48 steps
RADAR = (47.0, 8.0)  # the radar's position (lat, lon)
SST_FREEZING = 271.35  # K, the constant the tests impute over land


def land(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A hand-made coast: land north of a line rising to the east, plus an island."""
    coast = lat > 48.5 + 0.25 * (lon - 8.0)
    island = (lat - 44.0) ** 2 + ((lon - 4.0) * 0.7) ** 2 < 1.5
    return coast | island


def radar_range_km(step: np.ndarray) -> np.ndarray:
    """The radar's range at each time step: 450 km, down to 250 km every third step."""
    return np.where(np.asarray(step) % 3 == 2, 250.0, 450.0)


def fields(lat: np.ndarray, lon: np.ndarray, n_steps: int = len(TIMES)) -> dict[str, np.ndarray]:
    """sst (K, NaN over land), rr (mm/h, NaN beyond the radar's range) [time, point] and the
    static depth (m, NaN over land): smooth waves moving east half a degree a step, so
    persistence is beatable."""
    t = np.arange(n_steps)[:, None]
    phase = 2 * np.pi * (lon[None, :] - 0.5 * t) / 10.0  # a 10-degree wave moving east
    sst = 285.0 + 0.4 * (45.0 - lat[None, :]) + 1.5 * np.sin(phase) + 0.5 * np.cos(
        np.deg2rad(lat[None, :]) * 20)
    rr = 2.0 + np.sin(phase + 1.0) * np.cos(np.deg2rad(lat[None, :] - 45.0) * 18)
    is_land = land(lat, lon)
    sst = np.where(is_land[None, :], np.nan, sst)
    km = grids.EARTH_RADIUS_KM * np.arccos(np.clip(
        np.sin(np.deg2rad(lat)) * np.sin(np.deg2rad(RADAR[0])) + np.cos(np.deg2rad(lat))
        * np.cos(np.deg2rad(RADAR[0])) * np.cos(np.deg2rad(lon - RADAR[1])), -1, 1))
    rr = np.where(km[None, :] > radar_range_km(t), np.nan, rr)
    depth = np.where(is_land, np.nan, 50.0 + 20.0 * (lat.max() - lat))
    return {"sst": sst.astype(np.float32), "rr": rr.astype(np.float32),
            "depth": depth.astype(np.float32)}


def _entry(folder: Path, name: str, path: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(f"""\
name: {name}
domain: {name}
source: {{kind: netcdf, path: {path}}}
variables: [sst, rr, depth]
time_step: 6h
grid: {{kind: as-written, resolution: test}}
""")


def write_latlon(folder: Path, name: str = "shelf") -> Path:
    """``shelf``: a 0.75-degree lat-lon extract (18 x 22 points, rows north to south), its
    entry in ``folder/cat``; returns the netCDF."""
    lat, lon = np.linspace(52.75, 40.0, 18), np.linspace(-1.0, 14.75, 22)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    data = fields(lat2.ravel(), lon2.ravel())
    shape = (len(TIMES), lat.size, lon.size)
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), data["sst"].reshape(shape), {"units": "K"}),
         "rr": (("time", "lat", "lon"), data["rr"].reshape(shape), {"units": "mm h-1"}),
         "depth": (("lat", "lon"), data["depth"].reshape(shape[1:]), {"units": "m"})},
        coords={"time": TIMES, "lat": lat, "lon": lon})
    path = folder / f"{name}.nc"
    ds.to_netcdf(path)
    _entry(folder / "cat", name, path)
    return path


def write_projected(folder: Path, name: str = "coast") -> Path:
    """``coast``: a Lambert conformal grid of 50 km (20 x 24 points) around the radar, x/y
    axes with a CF grid mapping, its entry in ``folder/cat``; returns the netCDF."""
    g = grids.lambert_conformal("p", lat_0=46.0, lon_0=7.0, nx=24, ny=20, dx_m=50_000.0)
    ny, nx = g.shape
    data = fields(g.latitude, g.longitude)
    ds = xr.Dataset(
        {"sst": (("time", "y", "x"), data["sst"].reshape(-1, ny, nx),
                 {"units": "K", "grid_mapping": "lambert"}),
         "rr": (("time", "y", "x"), data["rr"].reshape(-1, ny, nx),
                {"units": "mm h-1", "grid_mapping": "lambert"}),
         "depth": (("y", "x"), data["depth"].reshape(ny, nx), {"units": "m"}),
         "lambert": ((), 0, {"grid_mapping_name": "lambert_conformal_conic",
                             "crs_wkt": CRS(g.crs).to_wkt()})},
        coords={"time": TIMES, "y": g.y, "x": g.x,
                "latitude": (("y", "x"), g.latitude.reshape(ny, nx)),
                "longitude": (("y", "x"), g.longitude.reshape(ny, nx))})
    path = folder / f"{name}.nc"
    ds.to_netcdf(path)
    _entry(folder / "cat", name, path)
    return path


# ---------------------------------------------------------------- a zarr store as text files

_HOURS = "06<BHNTZ`flrx~"  # bytes 48, 54, ..., 126: every 6 h from 48 h after the epoch


def text_zarr(folder: str, sst: str | None) -> dict[str, str]:
    """A zarr v2 store of 14 six-hourly times (2020-01-03T00 .. 2020-01-06T06) on a 3 x 4
    lat-lon grid with one variable ``sst``, every file plain ASCII text: uint8 values decoded
    by CF attributes (``K = 270 + byte / 10``), byte 32 (a space) the fill value, i.e. NaN.
    ``sst``: the 168 bytes of the [time, lat, lon] array, or None for no chunk at all (every
    value NaN). Returns {path under the case folder: text}."""
    def array(name, shape, dims, attrs, data):
        meta = {"zarr_format": 2, "shape": shape, "chunks": shape, "dtype": "|u1",
                "compressor": None, "filters": None, "order": "C", "fill_value": 32,
                "dimension_separator": "."}
        files = {f"{folder}/{name}/.zarray": json.dumps(meta),
                 f"{folder}/{name}/.zattrs": json.dumps({"_ARRAY_DIMENSIONS": dims, **attrs})}
        if data is not None:
            assert len(data) == int(np.prod(shape)) and data.isascii()
            files[f"{folder}/{name}/" + ".".join("0" * len(shape))] = data
        return files

    degrees = {"scale_factor": 10.0, "add_offset": -650.0}
    return {f"{folder}/.zgroup": json.dumps({"zarr_format": 2}),
            f"{folder}/.zattrs": "{}",
            **array("time", [14], ["time"], {"units": "hours since 2020-01-01",
                                             "calendar": "proleptic_gregorian"}, _HOURS),
            **array("latitude", [3], ["latitude"], {**degrees, "units": "degrees_north"},
                    "BCD"),  # 10, 20, 30
            **array("longitude", [4], ["longitude"], {**degrees, "units": "degrees_east"},
                    "ABCD"),  # 0, 10, 20, 30
            **array("sst", [14, 3, 4], ["time", "latitude", "longitude"],
                    {"scale_factor": 0.1, "add_offset": 270.0, "units": "K"}, sst)}


def text_zarr_case(sst: str | None) -> dict[str, str]:
    """The files of a bad-input case: the text zarr ``sst.zarr``, its catalog entry
    ``cat/sea.yaml``, a graph ``g.yaml`` for its grid and a training config ``t.yaml``
    (train 2020-01-03 .. 01-04T18, val 01-05 .. 01-06T06)."""
    return {
        **text_zarr("sst.zarr", sst),
        "cat/sea.yaml": ("name: sea\ndomain: test\nsource: {kind: zarr, path: ../sst.zarr}\n"
                         "variables: [sst]\ntime_step: 6h\ngrid: {kind: test, resolution: x}\n"),
        "g.yaml": ("name: g\ndata: {datasets: [sea]}\nhidden: {kind: icosahedral, level: 1}\n"
                   "encoder: {kind: knn, k: 1}\ndecoder: {kind: knn, k: 1}\n"),
        "t.yaml": ("name: t\nsampling: {name: s, domains: [{name: sea, dataset: sea, graph: "
                   "g.yaml}], variables: [sst], splits: {train: ['2020-01-03', "
                   "'2020-01-04T18:00'], val: ['2020-01-05', '2020-01-06T06:00']}}\n"
                   "val_rollout: 1\nmax_steps: 1\nmodel: {hidden_dim: 8, processor_layers: 1}\n"
                   "runs_dir: runs\n"),
    }


#: sst NaN at every point of the first 8 steps (the train split), valid afterwards
SST_NAN_IN_TRAIN = " " * 96 + "ABCDEFGHIJKL" * 6
