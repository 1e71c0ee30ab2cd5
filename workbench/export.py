"""Datasets out: a catalog dataset in anemoi-datasets' layout, or as CF netCDF / zarr.

``--format anemoi`` writes what ``anemoi-datasets create`` (0.5.x) writes, zarr format 2:
``data[time, variable, ensemble, grid]`` float32 (one chunk a date, NaN at missing dates),
``dates`` (datetime64[s]), ``latitudes``, ``longitudes`` (the grid's points in the dataset's
own order: a cutout's limited-area points first), the statistics arrays over a statistics
period with NaN left out (``mean``, ``stdev``, ``minimum``, ``maximum``; the one-step
tendencies' ``statistics_tendencies_<step>_*``, by which anemoi-datasets finds the constant
fields; the older ``sums``, ``squares``, ``count``, ``has_nans``) and its attrs (variables,
frequency, start/end dates, missing_dates, field_shape, variables_metadata, ...). Statics are
constant in time there: repeated at every date and listed in ``constant_fields``. A dataset's
missing dates (``missing_dates`` attr: :func:`workbench.readers.missing_steps`) are NaN and
listed, as anemoi-datasets lists the dates it could not load.

``--format netcdf|zarr`` writes CF-1.8 (:func:`cf_dataset`): the grid reshaped to (latitude,
longitude) on a regular lat-lon grid, to (y, x) with 2-D latitude/longitude and a grid_mapping
variable on a projected one, a ``values`` dim for point sets; units, long_name and a
standard_name where one exists (:func:`cf_attributes`); a CF time axis in the data's own
calendar (360_day data stays 360_day).

Everything is written to a temporary path beside ``--out`` and renamed into place when
complete; an existing ``--out`` is replaced only with ``force``.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__, catalog, grids
from .errors import WorkbenchError
from .readers import missing_steps
from .times import calendar_name, check_axis, is_cftime, iso, iso_list, parse_date, parse_step

FORMATS = ("anemoi", "netcdf", "zarr")
ANEMOI_LAYOUT_VERSION = "0.22"  # the `version` attr anemoi-datasets 0.5.x create writes
BLOCK_BYTES = 64 * 2**20  # float32 values read and written at once

# CF standard names of the workbench's (and ERA5's short) names, with the units they need
STANDARD_NAMES = {
    "z": ("geopotential", "m2 s-2"),
    "t": ("air_temperature", "K"),
    "t2m": ("air_temperature", "K"),
    "2t": ("air_temperature", "K"),
    "u": ("eastward_wind", "m s-1"),
    "v": ("northward_wind", "m s-1"),
    "u10": ("eastward_wind", "m s-1"),
    "v10": ("northward_wind", "m s-1"),
    "10u": ("eastward_wind", "m s-1"),
    "10v": ("northward_wind", "m s-1"),
    "q": ("specific_humidity", "kg kg-1"),
    "tp": ("lwe_thickness_of_precipitation_amount", "m"),
    "msl": ("air_pressure_at_mean_sea_level", "Pa"),
    "sp": ("surface_air_pressure", "Pa"),
    "sst": ("sea_surface_temperature", "K"),
    "orog": ("surface_altitude", "m"),
    "lsm": ("land_area_fraction", "1"),
    "insolation": ("toa_incoming_shortwave_flux", "W m-2"),
}
_LEVEL = re.compile(r"^(?P<param>.+)_(?P<level>\d+)$")  # z_500: z at 500 hPa


# --------------------------------------------------------------------------- CF attributes


def _units_key(units: str) -> str:
    return str(units).replace("**", "").replace("^", "").replace(" ", "")


def cf_attributes(name: str, attrs: Mapping) -> dict:
    """A variable's attrs with units, long_name (the name when absent) and the CF
    standard_name its name has (``z_500`` -> geopotential) where its units are that name's."""
    out = {k: v for k, v in attrs.items() if k not in ("grid_mapping", "coordinates")}
    out.setdefault("long_name", name)
    match = _LEVEL.match(name)
    standard = STANDARD_NAMES.get(name) or (STANDARD_NAMES.get(match["param"]) if match else None)
    if (standard and "standard_name" not in out and "units" in out
            and _units_key(out["units"]) == _units_key(standard[1])):
        out["standard_name"] = standard[0]
    return out


def _axis_attrs(kind: str) -> dict:
    return {
        "latitude": {"units": "degrees_north", "standard_name": "latitude",
                     "long_name": "latitude"},
        "longitude": {"units": "degrees_east", "standard_name": "longitude",
                      "long_name": "longitude"},
        "x": {"units": "m", "standard_name": "projection_x_coordinate", "axis": "X",
              "long_name": "x coordinate of projection"},
        "y": {"units": "m", "standard_name": "projection_y_coordinate", "axis": "Y",
              "long_name": "y coordinate of projection"},
    }[kind]


# --------------------------------------------------------------------------- CF layout


def cf_dataset(ds: xr.Dataset) -> xr.Dataset:
    """A canonical dataset (a flat ``grid`` dim last) in CF-1.8: each variable's grid
    reshaped to (latitude, longitude) on a regular lat-lon grid, to (y, x) on a projected
    grid (2-D latitude/longitude, 1-D x/y in m where the grid has them, a ``crs`` grid_mapping
    variable where it has a CRS), a ``values`` dim otherwise; other dims (time, ensemble,
    lead times) kept; CF attrs on every variable and coordinate."""
    grid = grids.grid_from_dataset(ds)
    coords: dict = {}
    mapping = None
    if grid.kind == "regular_latlon" and grid.shape is not None:
        spatial = ("latitude", "longitude")
        lon_axis, lat_axis = grids.latlon_axes(grid)
        coords["latitude"] = ("latitude", lat_axis, _axis_attrs("latitude"))
        coords["longitude"] = ("longitude", lon_axis, _axis_attrs("longitude"))
    elif grid.shape is not None:
        spatial = ("y", "x")
        if grid.x is not None and grid.y is not None:
            coords["y"] = ("y", np.asarray(grid.y, np.float64), _axis_attrs("y"))
            coords["x"] = ("x", np.asarray(grid.x, np.float64), _axis_attrs("x"))
        for name in ("latitude", "longitude"):
            coords[name] = (spatial, getattr(grid, name).reshape(grid.shape), _axis_attrs(name))
        mapping = _grid_mapping(grid.crs) if grid.crs else None
    else:
        spatial = ("values",)
        for name in ("latitude", "longitude"):
            coords[name] = (spatial, getattr(grid, name), _axis_attrs(name))
    shape = tuple(grid.shape) if len(spatial) == 2 else (grid.size,)

    def reshaped(var: xr.DataArray, attrs: Mapping) -> xr.Variable:
        var = var.transpose(..., "grid")
        data = var.data
        if hasattr(data, "rechunk"):  # dask: the grid whole before it is folded
            data = data.rechunk({data.ndim - 1: -1})
        return xr.Variable(var.dims[:-1] + spatial, data.reshape(var.shape[:-1] + shape), attrs)

    for name, coord in ds.coords.items():  # a cutout's masks and areas, on the grid
        if coord.dims == ("grid",) and name not in ("latitude", "longitude"):
            coords[name] = reshaped(coord, coord.attrs)
    if "time" in ds.dims:
        coords["time"] = ("time", ds["time"].values, {"standard_name": "time",
                                                      "long_name": "time", "axis": "T"})
    for dim in ds.dims:
        if dim not in ("grid", "time") and dim in ds.coords:
            coords[dim] = (dim, ds[dim].values, dict(ds[dim].attrs))
    out = xr.Dataset(coords=coords)
    for name, var in ds.data_vars.items():
        if "grid" not in var.dims:
            raise WorkbenchError(f"CF export: variable {name!r} has no grid dim {var.dims}")
        attrs = cf_attributes(name, var.attrs)
        if mapping is not None:
            attrs["grid_mapping"] = "crs"
        out[name] = reshaped(var, attrs)
    if mapping is not None:
        out["crs"] = xr.Variable((), np.int32(0), mapping)
    return out


def _grid_mapping(crs: str) -> dict:
    """The CF grid_mapping attrs of a CRS (pyproj's), with its proj string as ``proj4``."""
    from pyproj import CRS

    try:
        attrs = CRS(crs).to_cf()
    except Exception:  # noqa: BLE001 - a CRS pyproj cannot read keeps its text only
        attrs = {}
    attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.items()
             if v is not None}
    attrs["proj4"] = crs
    return attrs


def _time_encoding(times: np.ndarray) -> dict:
    """CF units (whole hours, minutes or seconds since the first time) and the calendar."""
    step = check_axis(times, "export") if len(times) > 1 else pd.Timedelta(hours=1)
    seconds = int(step / pd.Timedelta(seconds=1))
    unit = next(u for u, size in (("hours", 3600), ("minutes", 60), ("seconds", 1))
                if seconds % size == 0)
    return {"units": f"{unit} since {iso(times[0]).replace('T', ' ')}",
            "calendar": calendar_name(times), "dtype": "int64"}


# --------------------------------------------------------------------------- periods


def select_period(ds: xr.Dataset, start: str | None, end: str | None, dataset: str,
                  what: str = "export") -> xr.Dataset:
    """``ds`` on its times from ``start`` to ``end`` (dates of its calendar; default its
    first and last); a period that reaches outside the data or holds no time is one line."""
    if "time" not in ds.dims:
        raise WorkbenchError(f"dataset {dataset!r} has no time axis to {what}")
    times = ds["time"].values
    opt = "--statistics-" if what == "statistics" else "--"
    lo = parse_date(start, times, f"{what} period {opt}start") if start else times[0]
    hi = parse_date(end, times, f"{what} period {opt}end") if end else times[-1]
    span = f"{iso(times[0])} .. {iso(times[-1])}"
    data = "the exported period" if what == "statistics" else "the data"
    if not (times[0] <= lo <= times[-1] and times[0] <= hi <= times[-1]):
        raise WorkbenchError(f"{what} period {iso(lo)} .. {iso(hi)} is outside {data} of "
                             f"{dataset!r} ({span}); give {opt}start/{opt}end within it")
    if lo > hi:
        raise WorkbenchError(f"{what} period: {opt}start {iso(lo)} is after {opt}end {iso(hi)}; "
                             "swap them")
    keep = np.flatnonzero((times >= lo) & (times <= hi))
    if keep.size == 0:
        raise WorkbenchError(f"{what} period {iso(lo)} .. {iso(hi)} holds no time of "
                             f"{dataset!r} ({span}); widen it")
    return ds.isel(time=keep)


# --------------------------------------------------------------------------- statistics


@dataclass
class Moments:
    """NaN-aware per-variable count, mean, M2, sums, squares, min and max, merged block by
    block (Chan et al.'s parallel variance, as anemoi-datasets' collector)."""

    size: int
    count: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)
    sums: np.ndarray = field(init=False)
    squares: np.ndarray = field(init=False)
    minimum: np.ndarray = field(init=False)
    maximum: np.ndarray = field(init=False)
    nans: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        zeros = np.zeros(self.size)
        self.count = np.zeros(self.size, dtype=np.int64)
        self.mean, self.m2, self.sums, self.squares = (zeros.copy() for _ in range(4))
        self.minimum, self.maximum = np.full(self.size, np.inf), np.full(self.size, -np.inf)
        self.nans = np.zeros(self.size, dtype=bool)

    def add(self, block: np.ndarray) -> None:
        """Values [row, variable, ...] (NaN left out)."""
        if block.shape[0] == 0:
            return
        x = np.moveaxis(block, 1, 0).reshape(self.size, -1).astype(np.float64)
        valid = ~np.isnan(x)
        n = valid.sum(axis=1)
        self.nans |= (~valid).any(axis=1)
        filled = np.where(valid, x, 0.0)
        sums = filled.sum(axis=1)
        mean = np.divide(sums, n, out=np.zeros(self.size), where=n > 0)
        m2 = (np.where(valid, x - mean[:, None], 0.0) ** 2).sum(axis=1)
        total = self.count + n
        delta = mean - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean = np.where(total > 0, self.mean + delta * n / np.maximum(total, 1), 0.0)
            self.m2 = self.m2 + m2 + delta**2 * self.count * n / np.maximum(total, 1)
        self.count = total
        self.sums += sums
        self.squares += (filled**2).sum(axis=1)
        self.minimum = np.minimum(self.minimum, np.where(valid, x, np.inf).min(axis=1))
        self.maximum = np.maximum(self.maximum, np.where(valid, x, -np.inf).max(axis=1))

    def arrays(self) -> dict[str, np.ndarray]:
        """mean, stdev (population, as anemoi-datasets), minimum, maximum (NaN where no value)."""
        empty = self.count == 0
        stdev = np.sqrt(np.maximum(self.m2, 0.0) / np.maximum(self.count, 1))
        return {key: np.where(empty, np.nan, value) for key, value in (
            ("mean", self.mean), ("stdev", stdev), ("minimum", self.minimum),
            ("maximum", self.maximum))}


# --------------------------------------------------------------------------- anemoi layout


def anemoi_frequency(step: pd.Timedelta) -> str:
    """A time step as anemoi-utils writes it: ``6h``, ``1d``, ``90m``, ``30s``."""
    seconds = int(step / pd.Timedelta(seconds=1))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _variable_metadata(name: str, var: xr.DataArray) -> dict:
    """anemoi-datasets' ``variables_metadata`` entry: MARS-like level keys, units, whether
    the field is constant in time (statics)."""
    match = _LEVEL.match(name)
    mars = ({"param": match["param"], "levtype": "pl", "levelist": int(match["level"])}
            if match else {"param": name, "levtype": "sfc"})
    entry = {"mars": mars, "constant_in_time": "time" not in var.dims}
    entry.update({k: str(var.attrs[k]) for k in ("units", "long_name", "standard_name")
                  if k in var.attrs})
    return entry


def _block(ds: xr.Dataset, variables: Sequence[str], rows: slice, members: int,
           statics: Mapping[str, np.ndarray]) -> np.ndarray:
    """Values [time, variable, ensemble, grid] float32 of ``rows`` (statics repeated)."""
    import dask

    timed = {n: ds[n].isel(time=rows).transpose("time", ..., "grid") for n in variables
             if n not in statics}
    loaded = dict(zip(timed, dask.compute(*(v.data for v in timed.values())), strict=True))
    count = len(range(*rows.indices(ds.sizes["time"])))
    out = np.empty((count, len(variables), members, ds.sizes["grid"]), dtype=np.float32)
    for k, name in enumerate(variables):
        if name in statics:
            out[:, k] = statics[name]
            continue
        values = np.asarray(loaded[name], dtype=np.float32)
        out[:, k] = values if values.ndim == 3 else values[:, None, :]
    return out


def write_anemoi(ds: xr.Dataset, path: Path, variables: Sequence[str], step: pd.Timedelta,
                 stats_times: tuple, attrs: Mapping) -> dict:
    """``ds`` (a canonical dataset of numpy times ``step`` apart) into an anemoi-datasets
    store at ``path``, statistics over its times ``stats_times`` (first, last) and ``attrs``
    among its attrs. Returns the store's attrs."""
    import zarr

    times = ds["time"].values.astype("datetime64[s]")
    members = int(ds.sizes.get("ensemble", 1))
    size = ds.sizes["grid"]
    for name in variables:
        extra = set(ds[name].dims) - {"time", "ensemble", "grid"}
        if extra or "grid" not in ds[name].dims:
            raise WorkbenchError(f"anemoi export: variable {name!r} has dims {ds[name].dims}; "
                                 "the anemoi layout takes (time, ensemble, grid)")
    statics = {}
    for name in variables:
        if "time" not in ds[name].dims:
            values = np.asarray(ds[name].transpose(..., "grid").values, dtype=np.float32)
            statics[name] = values if values.ndim == 2 else values[None, :]
    missing = np.zeros(len(times), bool)
    missing[missing_steps(ds)] = True
    in_stats = (times >= np.datetime64(stats_times[0], "s")) & (
        times <= np.datetime64(stats_times[1], "s"))

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data = root.create_array("data", shape=(len(times), len(variables), members, size),
                             chunks=(1, len(variables), 1, size), dtype="float32",
                             fill_value=np.nan)
    data.attrs["_ARRAY_DIMENSIONS"] = ["time", "variable", "ensemble", "cell"]
    for name, values, dims in (("dates", times, ["time"]),
                               ("latitudes", ds["latitude"].values.astype(np.float64), ["cell"]),
                               ("longitudes", ds["longitude"].values.astype(np.float64), ["cell"])):
        root.create_array(name, data=values).attrs["_ARRAY_DIMENSIONS"] = dims

    whole, tendency = Moments(len(variables)), Moments(len(variables))
    seen_nans = np.zeros(len(variables), bool)
    rows = max(1, BLOCK_BYTES // (4 * len(variables) * members * size))
    previous = None  # the last row written and whether it is in the statistics period
    for first in range(0, len(times), rows):
        span = slice(first, min(first + rows, len(times)))
        block = _block(ds, variables, span, members, statics)
        block[missing[span]] = np.nan
        data[span] = block
        seen_nans |= np.isnan(block[~missing[span]]).any(axis=(0, 2, 3))
        whole.add(block[in_stats[span]])
        both = in_stats[span]
        joined, pairs = block, both[1:] & both[:-1]
        if previous is not None:
            joined = np.concatenate([previous[0][None], block])
            pairs = np.concatenate([[previous[1] and both[0]], pairs])
        tendency.add((joined[1:] - joined[:-1])[pairs])
        previous = (block[-1], bool(both[-1]))

    empty = [v for v, n in zip(variables, whole.count, strict=True) if n == 0]
    if empty:
        raise WorkbenchError(
            f"anemoi export: {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} NaN at "
            f"every point between {iso(stats_times[0])} and {iso(stats_times[1])}; choose "
            "another --statistics-start/--statistics-end")
    frequency = anemoi_frequency(step)
    arrays = {**whole.arrays(), "sums": whole.sums, "squares": whole.squares,
              "count": whole.count, "has_nans": whole.nans}
    arrays |= {f"statistics_tendencies_{frequency}_{k}": v for k, v in tendency.arrays().items()}
    for name, values in arrays.items():
        root.create_array(name, data=np.asarray(values)).attrs["_ARRAY_DIMENSIONS"] = ["variable"]

    store_attrs = {
        **attrs,
        "variables": list(variables),
        "name_to_index": {n: i for i, n in enumerate(variables)},
        "variables_metadata": {n: _variable_metadata(n, ds[n]) for n in variables},
        "constant_fields": sorted(statics),
        "frequency": frequency,
        "start_date": iso(times[0]),
        "end_date": iso(times[-1]),
        "missing_dates": iso_list(times[missing]),
        "statistics_start_date": iso(stats_times[0]),
        "statistics_end_date": iso(stats_times[1]),
        "allow_nans": bool(seen_nans.any()),
        "variables_with_nans": [v for v, n in zip(variables, seen_nans, strict=True) if n],
        "dimensions": ["dates", "variables", "ensembles", "values"],
        "ensemble_dimension": 2,
        "flatten_grid": True,
        "dtype": "float32",
        "layout": "gridded",
        "version": ANEMOI_LAYOUT_VERSION,
        "uuid": str(uuid.uuid4()),
        "latest_write_timestamp": datetime.datetime.now(datetime.UTC).replace(
            tzinfo=None).isoformat(),
    }
    root.attrs.update(store_attrs)
    zarr.consolidate_metadata(str(path))
    return store_attrs


def _grid_attrs(ds: xr.Dataset, entry: catalog.CatalogEntry, variables: Sequence[str]) -> dict:
    """resolution, field_shape, proj_string and data_request of an anemoi store."""
    grid = grids.grid_from_dataset(ds)
    if grid.kind == "regular_latlon" and grid.y is not None and len(grid.y) > 1:
        resolution = f"{abs(float(grid.y[1]) - float(grid.y[0])):g}"
    else:
        resolution = str(entry.grid.get("resolution") or (
            f"{grid.spacing_km:g}km" if grid.spacing_km else "unknown"))
    levels = [_LEVEL.match(v) for v in variables]
    attrs = {
        "resolution": resolution,
        "field_shape": list(grid.shape) if grid.shape else [grid.size],
        "data_request": {
            "grid": resolution,
            "area": [float(grid.latitude.max()), float(grid.longitude.min()),
                     float(grid.latitude.min()), float(grid.longitude.max())],
            "param_level": {
                "sfc": [v for v, m in zip(variables, levels, strict=True) if m is None],
                "pl": [[m["param"], int(m["level"])] for m in levels if m is not None]}},
    }
    if grid.crs and grid.kind != "regular_latlon":
        attrs["proj_string"] = grid.crs
    return attrs


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Export:
    """What an export wrote."""

    path: Path
    format: str
    dataset: str
    times: int
    variables: list[str]
    grid_points: int
    start: str
    end: str
    missing_dates: list[str]
    statistics: tuple[str, str] | None  # anemoi: the statistics period


def export_dataset(name: str, fmt: str, out: str | Path, *, start: str | None = None,
                   end: str | None = None, statistics_start: str | None = None,
                   statistics_end: str | None = None, force: bool = False,
                   catalog_dirs: Sequence[str | Path] | None = None,
                   cache: str | Path | None = None) -> Export:
    """Write catalog dataset ``name`` (its times ``start``..``end``) to ``out`` as ``fmt``
    (anemoi, netcdf or zarr); anemoi statistics over ``statistics_start``..``statistics_end``
    (default: the exported period)."""
    if fmt not in FORMATS:
        raise WorkbenchError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if fmt == "anemoi" and out.suffix != ".zarr":
        raise WorkbenchError(f"--out {out}: anemoi-datasets opens stores whose name ends in "
                             f".zarr; name it e.g. {out.with_suffix('.zarr').name}")
    if out.exists() and not force:
        raise WorkbenchError(f"--out {out} exists; add --force to replace it or choose another "
                             "path")
    entry = catalog.get_entry(name, catalog_dirs)
    ds = select_period(catalog.open_dataset(entry, catalog=catalog_dirs, cache=cache),
                       start, end, entry.name)
    variables = [v for v in entry.variables if v in ds.data_vars]
    ds = ds[variables]
    times = ds["time"].values
    missing = iso_list(times[missing_steps(ds)])
    stats = None
    if fmt == "anemoi":
        if is_cftime(times):
            raise WorkbenchError(
                f"dataset {entry.name!r} has times of the {calendar_name(times)} calendar, which "
                "anemoi-datasets' dates (numpy datetime64, the standard calendar) cannot hold; "
                "export it with --format netcdf or --format zarr")
        window = select_period(ds, statistics_start, statistics_end, entry.name, "statistics")
        first, last = window["time"].values[[0, -1]]
        stats = (iso(first), iso(last))
        attrs = {"description": entry.description or entry.name, "licence": entry.licence or
                 "unknown", "attribution": entry.provenance or "unknown",
                 **_grid_attrs(ds, entry, variables), "workbench": _provenance(ds, entry)}
        _write_then_rename(out, force, lambda tmp: write_anemoi(
            ds, tmp, variables, parse_step(entry.time_step), (first, last), attrs))
    else:
        cf = cf_dataset(ds)
        cf.attrs = _cf_global_attrs(ds, entry, missing, fmt)
        _write_then_rename(out, force, lambda tmp: _write_cf(cf, tmp, fmt))
    return Export(out, fmt, entry.name, len(times), variables, int(ds.sizes["grid"]),
                  iso(times[0]), iso(times[-1]), missing, stats)


def _provenance(ds: xr.Dataset, entry: catalog.CatalogEntry) -> dict:
    return {"dataset": entry.name, "domain": entry.domain, "source_id": ds.attrs.get("source_id"),
            "grid_kind": ds.attrs.get("grid_kind"), "workbench_version": __version__}


def _cf_global_attrs(ds: xr.Dataset, entry: catalog.CatalogEntry, missing: list[str],
                     fmt: str) -> dict:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs = {"Conventions": "CF-1.8", "title": entry.description or entry.name,
             "source": f"workbench catalog dataset {entry.name!r} ("
                       + (f"{entry.source.location})" if entry.source.kind != "generator"
                          else "the embedded analytic world)"),
             "history": f"{now} workbench data export {entry.name} --format {fmt}",
             "dataset": entry.name, "domain": entry.domain,
             "licence": entry.licence, "provenance": entry.provenance,
             "workbench_version": __version__}
    if missing:
        attrs["missing_dates"] = missing
    return {k: v for k, v in attrs.items() if v not in ("", None)}


def _write_cf(cf: xr.Dataset, path: Path, fmt: str) -> None:
    encoding: dict = {name: {"_FillValue": None} for name in cf.coords if name != "time"}
    if "time" in cf.coords:
        encoding["time"] = _time_encoding(cf["time"].values)
    for name in cf.data_vars:
        if cf[name].dtype.kind == "f":
            encoding[name] = {"_FillValue": np.float32(np.nan) if cf[name].dtype == np.float32
                              else np.nan}
            if fmt == "netcdf":
                encoding[name] |= {"zlib": True, "complevel": 1}
    if fmt == "netcdf":
        cf.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=encoding)
        return
    chunks = {d: -1 for d in cf.dims}
    if "time" in cf.dims:
        chunks["time"] = min(8, cf.sizes["time"])
    cf.chunk(chunks).to_zarr(path, mode="w", zarr_format=2, consolidated=True,
                             encoding=encoding)


def _write_then_rename(out: Path, force: bool, write: Callable[[Path], object]) -> None:
    """``write`` a temporary path beside ``out``, then rename it to ``out`` (replacing an
    existing one only with ``force``); nothing is left half-written when it fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    _remove(tmp)
    try:
        write(tmp)
        if out.exists() or out.is_symlink():
            if not force:
                raise WorkbenchError(f"--out {out} appeared while writing; add --force to "
                                     "replace it")
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        _remove(tmp)
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
