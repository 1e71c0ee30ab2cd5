"""Readers: files and stores in their own layouts -> xr.Dataset in the canonical layout.

Canonical layout (DESIGN.md): dims ``time`` and ``grid`` (optional ``ensemble``); coords
``latitude(grid)``, ``longitude(grid)`` in degrees; one data variable per field; statics
without ``time``; attrs ``domain``, ``grid_kind`` and, where the grid is structured,
``grid_shape``, ``crs``, ``grid_x``/``grid_y`` (1-D axes) and ``grid_spacing_km``
(:func:`workbench.grids.grid_from_points` reads the layout from the points).

Layouts read: regular lat-lon on 1-D axes (latitude ascending or descending, longitude
0..360 or -180..180, pole rows included, rows kept in the source's order); 2-D latitude/
longitude of a projected grid (with its CRS from the attrs or the CF ``grid_mapping``
variable); point lists (latitude/longitude on one ``values``-like dim, as reduced Gaussian
GRIB); anemoi-datasets stores (a point list, structured with ``field_shape``).

Times are decoded as xarray does: numpy datetime64 for the standard calendars, cftime
datetimes for the others (360_day, noleap, all_leap, julian); a calendar xarray cannot decode
is one line (:mod:`workbench.times` handles both kinds downstream).
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import xarray as xr

from .errors import WorkbenchError
from .grids import grid_attrs, grid_from_points
from .integrity import ReadGuard, dask_kwargs, guard_dataset
from .times import CALENDARS, check_axis, iso_list, parse_step, step_text

LAT_NAMES = ("latitude", "lat", "latitudes", "nav_lat")
LON_NAMES = ("longitude", "lon", "longitudes", "nav_lon")
TIME_NAMES = ("time", "valid_time", "dates")
NON_SPATIAL_DIMS = ("time", "ensemble", "member", "number", "level", "valid_time")
REMOTE_SCHEMES = ("http", "https", "gs", "gcs", "s3", "az", "abfs")


def is_remote(location: str) -> bool:
    """True for URLs (http, gs, s3, ...), False for local paths."""
    return urlparse(str(location)).scheme in REMOTE_SCHEMES


def parse_variable_spec(spec: str) -> tuple[str, float | None]:
    """``"geopotential@500"`` -> ("geopotential", 500.0); ``"t2m"`` -> ("t2m", None)."""
    name, _, level = str(spec).partition("@")
    return name, (float(level) if level else None)


# --------------------------------------------------------------------------- opening


def open_store(location: str, kind: str, dataset: str) -> xr.Dataset:
    """Open a zarr store or netCDF file lazily, with one-line errors for the usual failures
    (a local store's damaged chunk too, when it is read: :func:`integrity.guard_dataset`)."""
    if is_remote(location):
        return _open_remote(location, kind, dataset)
    path = Path(location)
    if not path.exists():
        raise WorkbenchError(
            f"dataset {dataset!r}: {kind} source {path} does not exist; "
            "fix `source.path` in its catalog YAML or create the file"
        )
    try:
        if kind == "zarr":
            with warnings.catch_warnings():  # a local store without consolidated metadata
                warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated")
                ds = xr.open_zarr(path, chunks=None, decode_timedelta=False)
        else:
            ds = xr.open_dataset(path, chunks=None, decode_timedelta=False)
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one line
        if str(err).startswith("unable to decode time"):
            raise _calendar_error(path, kind, dataset) from None
        raise WorkbenchError(
            f"dataset {dataset!r}: cannot read {path} as {kind} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); check `source.kind` in its YAML, "
            "or restore the store if it is damaged"
        ) from None
    return guard_dataset(ds, ReadGuard(dataset, str(path)))


def _calendar_error(path: Path, kind: str, dataset: str) -> WorkbenchError:
    """The one line for a time axis xarray cannot decode: its units and calendar named."""
    with warnings.catch_warnings():  # a local store without consolidated metadata
        warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated")
        raw = (xr.open_zarr(path, chunks=None, decode_times=False) if kind == "zarr"
               else xr.open_dataset(path, chunks=None, decode_times=False))
    name = _find(raw, TIME_NAMES)
    attrs = raw[name].attrs if name else {}
    units, calendar = attrs.get("units", "?"), attrs.get("calendar", "standard")
    return WorkbenchError(
        f"dataset {dataset!r}: times in {units!r} of calendar {calendar!r} cannot be converted "
        f"(the workbench reads the calendars {', '.join(CALENDARS)}); fix the time variable's "
        "`calendar` attribute or convert the source's times (e.g. cdo setcalendar)")


def _open_remote(url: str, kind: str, dataset: str) -> xr.Dataset:
    host = urlparse(url).netloc
    if urlparse(url).scheme in ("gs", "gcs"):
        host = "storage.googleapis.com"
    elif urlparse(url).scheme == "s3":
        host = "s3.amazonaws.com"
    needs = f"network access to {host}"
    try:
        socket.setdefaulttimeout(5)
        socket.getaddrinfo(host, 443)
    except OSError:
        raise WorkbenchError(
            f"dataset {dataset!r} is read from {url} and needs {needs}, which this machine "
            "lacks; use an embedded dataset (global, conus, europe) or point `source.path` "
            "at a local copy"
        ) from None
    finally:
        socket.setdefaulttimeout(None)
    try:
        if kind == "zarr":
            return xr.open_zarr(url, chunks={}, storage_options={"token": "anon"}
                                if urlparse(url).scheme in ("gs", "gcs") else None)
        return xr.open_dataset(url, chunks={})
    except ImportError as err:
        raise WorkbenchError(
            f"dataset {dataset!r} at {url} needs the package {err.name or 'fsspec backend'}: "
            f"pip install {'gcsfs' if 'gs' in url[:3] else err.name or 'fsspec'}"
        ) from None
    except Exception as err:  # noqa: BLE001
        raise WorkbenchError(
            f"dataset {dataset!r}: opening {url} failed ({type(err).__name__}); it needs {needs}"
        ) from None


# --------------------------------------------------------------------------- canonical layout


def _find(ds: xr.Dataset, names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in ds.variables:
            return name
    return None


def canonicalize_gridded(
    ds: xr.Dataset, variables: Mapping[str, str], dataset: str, level_dim: str = "level"
) -> xr.Dataset:
    """CF-like data on 1-D regular lat/lon or 2-D (projected) lat/lon -> canonical layout.

    ``variables`` maps canonical names to source specs (``name`` or ``name@level``).
    """
    lat_name, lon_name = _find(ds, LAT_NAMES), _find(ds, LON_NAMES)
    if lat_name is None or lon_name is None:
        raise WorkbenchError(
            f"dataset {dataset!r}: no latitude/longitude coordinates (looked for "
            f"{LAT_NAMES[:2]} and {LON_NAMES[:2]}); rename them in the source"
        )
    time_name = _find(ds, TIME_NAMES[:2])
    lat, lon = ds[lat_name], ds[lon_name]
    if lat.ndim == 1 and lon.ndim == 1 and lat.dims != lon.dims:
        spatial = (lat.dims[0], lon.dims[0])
        lat2, lon2 = np.meshgrid(lat.values, lon.values, indexing="ij")
    elif lat.dims == lon.dims and lat.ndim in (1, 2):
        spatial = lat.dims  # 2-D: a projected grid; 1-D: a point list (a ``values`` dim)
        lat2, lon2 = lat.values, lon.values
    else:
        raise WorkbenchError(
            f"dataset {dataset!r}: latitude dims {lat.dims} and longitude dims {lon.dims} "
            "do not describe one grid; give both as 1-D axes or both on the same 2-D dims"
        )
    spatial_shape = tuple(ds.sizes[d] for d in spatial)

    out = {}
    missing = []
    for canonical, spec in variables.items():
        source_name, level = parse_variable_spec(spec)
        if source_name not in ds.data_vars:
            missing.append(source_name)
            continue
        var = ds[source_name]
        if level is not None:
            if level_dim not in var.dims:
                raise WorkbenchError(
                    f"dataset {dataset!r}: {spec!r} asks for a level but {source_name!r} has "
                    f"no {level_dim!r} dim; set `source.level_dim` or drop the @level"
                )
            var = var.sel({level_dim: level})
        var_spatial = [d for d in var.dims if d not in NON_SPATIAL_DIMS and d != time_name]
        sizes = tuple(var.sizes[d] for d in var_spatial)
        if set(var_spatial) != set(spatial) or sizes != tuple(
            spatial_shape[spatial.index(d)] for d in var_spatial
        ):
            raise WorkbenchError(
                f"dataset {dataset!r}: variable {source_name!r} has spatial dims "
                f"{dict(zip(var_spatial, sizes, strict=True))} but latitude/longitude are "
                f"{dict(zip(spatial, spatial_shape, strict=True))}; fix the coordinates so "
                "their sizes match the data"
            )
        var = var.transpose(*[d for d in var.dims if d not in spatial], *spatial)
        if time_name and time_name in var.dims and time_name != "time":
            var = var.rename({time_name: "time"})
        var = var.drop_vars([c for c in var.coords if c not in var.dims or c in spatial])
        if len(spatial) == 2:
            var = var.stack(grid=spatial, create_index=False).drop_vars(
                list(spatial), errors="ignore"
            )
        else:
            var = var.rename({spatial[0]: "grid"})
        out[canonical] = var.astype(np.float32) if var.dtype != np.float32 else var
    if missing:
        raise WorkbenchError(
            f"dataset {dataset!r}: variables {missing} are absent (present: "
            f"{sorted(ds.data_vars)[:12]}); fix `variables` in its catalog YAML"
        )

    grid = grid_from_points(dataset, lat2, lon2, spatial_shape if len(spatial) == 2 else None,
                            _crs(ds, [parse_variable_spec(v)[0] for v in variables.values()]))
    result = _with_grid(xr.Dataset(out), grid)
    if "time" in result.dims:
        result = result.assign_coords(time=ds[time_name].values)
    return result


def _crs(ds: xr.Dataset, names: list[str]) -> str | None:
    """The source's CRS: a ``crs``/``proj4``/``spatial_ref`` text attribute of the dataset, or
    of the CF ``grid_mapping`` variable its data variables name."""
    holders = [ds.attrs]
    holders += [ds[m].attrs for m in {ds[n].attrs.get("grid_mapping") for n in names if n in ds}
                if isinstance(m, str) and m in ds.variables]
    for attrs in holders:
        for key in ("crs", "proj4", "proj4text", "proj4_params", "crs_wkt", "spatial_ref"):
            if isinstance(attrs.get(key), str) and attrs[key].strip():
                return attrs[key]
    return None


def _with_grid(ds: xr.Dataset, grid) -> xr.Dataset:
    """``ds`` with the grid's points as coords and its description as attrs (kind, shape, CRS,
    1-D axes, spacing: what :func:`workbench.grids.grid_from_dataset` reads back)."""
    ds = ds.assign_coords(latitude=("grid", grid.latitude), longitude=("grid", grid.longitude))
    ds.attrs.update({k: v for k, v in grid_attrs(grid).items() if k != "domain"})
    return ds


def read_anemoi(location: str, variables: Mapping[str, str], dataset: str) -> xr.Dataset:
    """anemoi-datasets zarr (``data[time, variable, ensemble, grid]``) -> canonical layout.

    The dates its ``missing_dates`` attribute lists (fields absent or garbage in ``data``)
    read as NaN and are listed in the ``missing_dates`` attr (ISO text): sampling draws no
    window that holds one and statistics leave them out, as anemoi-training does."""
    import zarr

    if not is_remote(location) and not Path(location).exists():
        raise WorkbenchError(
            f"dataset {dataset!r}: anemoi store {location} does not exist; fix `source.path`"
        )
    try:
        root = zarr.open_group(str(location), mode="r")
        data = root["data"]
        lat = np.asarray(root["latitudes"][:], dtype=np.float64)
        lon = np.asarray(root["longitudes"][:], dtype=np.float64)
        dates = np.asarray(root["dates"][:]).astype("datetime64[ns]")
    except KeyError as err:
        raise WorkbenchError(
            f"dataset {dataset!r}: {location} lacks {err} of the anemoi-datasets layout "
            "(data, dates, latitudes, longitudes); set `source.kind: zarr` if it is plain zarr"
        ) from None
    except Exception as err:  # noqa: BLE001 - a damaged store becomes one line
        raise WorkbenchError(
            f"dataset {dataset!r}: cannot read {location} as an anemoi store "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "restore the store if it is damaged"
        ) from None
    names = _anemoi_variable_names(root.attrs, data.shape[1], dataset)
    if data.ndim != 4:
        raise WorkbenchError(
            f"dataset {dataset!r}: anemoi 'data' has {data.ndim} dims, expected 4 "
            "(time, variable, ensemble, grid)"
        )
    if lat.size != data.shape[3] or lon.size != data.shape[3]:
        raise WorkbenchError(
            f"dataset {dataset!r}: {lat.size} latitudes and {lon.size} longitudes but data has "
            f"{data.shape[3]} grid points; rebuild the store with matching coordinates"
        )
    if dates.size != data.shape[0]:
        raise WorkbenchError(
            f"dataset {dataset!r}: {dates.size} dates but data has {data.shape[0]} times"
        )
    import dask.array as da

    array = da.from_array(data, chunks=data.chunks,
                          **dask_kwargs(ReadGuard(dataset, str(location)), "data", data.chunks))
    gone = _anemoi_missing(root.attrs, dates, dataset)
    if gone.any():  # whatever the store holds there is not data
        array = da.where(gone[:, None, None, None], np.float32(np.nan), array)
    constant = set(root.attrs.get("constant_fields", []))
    out = {}
    missing = []
    for canonical, spec in variables.items():
        source_name, _ = parse_variable_spec(spec)
        if source_name not in names:
            missing.append(source_name)
            continue
        block = array[:, names.index(source_name)]  # (time, ensemble, grid)
        if source_name in constant:  # from a date that is not missing
            out[canonical] = xr.DataArray(block[int(np.argmin(gone)), 0], dims=("grid",))
        elif block.shape[1] == 1:
            out[canonical] = xr.DataArray(block[:, 0], dims=("time", "grid"))
        else:
            out[canonical] = xr.DataArray(block, dims=("time", "ensemble", "grid"))
    if missing:
        raise WorkbenchError(
            f"dataset {dataset!r}: variables {missing} are absent (present: {names[:12]}); "
            "fix `variables` in its catalog YAML"
        )
    shape = root.attrs.get("field_shape")
    shape = shape if shape is not None and len(shape) == 2 and int(np.prod(shape)) == lat.size \
        else None
    result = xr.Dataset(out).astype(np.float32).assign_coords(time=dates)
    if gone.any():
        result.attrs["missing_dates"] = iso_list(dates[gone])
    return _with_grid(result, grid_from_points(dataset, lat, lon, shape))


def _anemoi_missing(attrs: Mapping, dates: np.ndarray, dataset: str) -> np.ndarray:
    """bool per date: listed in the store's ``missing_dates`` (dates it does not hold are
    ignored, as anemoi-datasets does)."""
    listed = attrs.get("missing_dates") or []
    try:
        listed = np.array([np.datetime64(str(d)) for d in listed], dtype="datetime64[ns]")
    except ValueError:
        raise WorkbenchError(f"dataset {dataset!r}: missing_dates {list(attrs['missing_dates'])[:3]}"
                             " are not ISO dates (2020-01-02T06:00:00); fix the store's "
                             "attribute") from None
    return np.isin(dates, listed)


def missing_steps(ds: xr.Dataset) -> np.ndarray:
    """Sorted indices of ``ds``'s times that its ``missing_dates`` attr lists (anemoi
    stores; :func:`read_anemoi`), empty for every other dataset."""
    listed = ds.attrs.get("missing_dates") or []
    if not listed or "time" not in ds.dims:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.isin(iso_list(ds["time"].values), list(listed)))


def _anemoi_variable_names(attrs: Mapping, count: int, dataset: str) -> list[str]:
    if "variables" in attrs:
        return list(attrs["variables"])
    if "name_to_index" in attrs:
        index = dict(attrs["name_to_index"])
        return sorted(index, key=index.get)
    raise WorkbenchError(
        f"dataset {dataset!r}: anemoi store has no 'variables' or 'name_to_index' attribute "
        f"naming its {count} variables"
    )


# --------------------------------------------------------------------------- checks


def check_canonical(ds: xr.Dataset, dataset: str, time_step: str | None = None,
                    where: str = "its catalog entry") -> xr.Dataset:
    """Validate a canonical dataset: coordinates match the grid, times strictly increase at
    one step (:func:`workbench.times.check_axis`), the step ``time_step`` (``6h``) when
    given (the catalog's, declared in ``where``)."""
    if "grid" not in ds.dims:
        raise WorkbenchError(f"dataset {dataset!r}: no 'grid' dimension after reading")
    for coord in ("latitude", "longitude"):
        if coord not in ds.coords or ds[coord].dims != ("grid",):
            raise WorkbenchError(f"dataset {dataset!r}: {coord}(grid) coordinate is missing")
    lat = ds["latitude"].values
    if np.nanmax(np.abs(lat)) > 90:
        raise WorkbenchError(
            f"dataset {dataset!r}: latitudes beyond +-90 (max {np.nanmax(np.abs(lat)):.1f}); "
            "are latitude and longitude swapped?"
        )
    step = check_axis(ds["time"].values, dataset) if "time" in ds.dims else None
    if step is not None and time_step is not None and step != parse_step(time_step):
        raise WorkbenchError(
            f"dataset {dataset!r}: its times are {step_text(step)} apart but {where} says "
            f"time_step: {time_step}; fix `time_step` there (or the source's times)")
    return ds
