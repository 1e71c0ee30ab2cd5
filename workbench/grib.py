"""GRIB files (GFS, HRRR, ...) -> xr.Dataset in the canonical layout, through ecCodes.

A catalog entry ``source: {kind: grib, path: ..., step: 6h}`` names one file, a glob or a
list of both (a GFS archive is one file per cycle and lead). Each file's message headers are
read once; every variable of the entry picks its messages by shortName, level and lead time,
and their values are read lazily, one dask task per message. The time axis is the messages'
valid time; ``step`` picks one lead time (default 0 h: analyses); of several accumulations
valid at one time, the one from the cycle (``0-6``) is read.

Variables: a canonical name of :data:`SINGLE_LEVEL` or ``<p>_<hPa>`` with ``<p>`` in
:data:`PRESSURE_LEVEL` (``z_500``, ``t_850``, ``t2m``, ``u10``, ``v10``, ``tp``, ...) finds its
GRIB field by itself, in the units of the embedded world (geopotential height ``gh`` in gpm
times g; precipitation in kg m-2 as m); any other spec is ``shortName`` (a field on one
level), ``shortName@500`` (isobaricInhPa) or ``shortName@typeOfLevel:level``, read as stored.
Winds relative to a projected grid (HRRR's) are rotated to east/north components.

Grids: ``regular_ll``/``regular_gg`` -> ``regular_latlon``; ``lambert`` ->
``lambert_conformal`` with a proj crs derived from the GRIB's projection keys (checked against
ecCodes' own coordinates); any other grid ecCodes can locate -> ``points``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from .errors import WorkbenchError
from .grids import EARTH_RADIUS_KM, wrap_longitude

GRAVITY = 9.80665  # m s-2, WMO standard gravity (gpm -> m2 s-2)
#: canonical name -> (shortName, typeOfLevel, level); static ones have no time axis
SINGLE_LEVEL = {
    "t2m": ("2t", "heightAboveGround", 2.0),
    "u10": ("10u", "heightAboveGround", 10.0),
    "v10": ("10v", "heightAboveGround", 10.0),
    "tp": ("tp", "surface", 0.0),
    "orog": ("orog", "surface", 0.0),
    "lsm": ("lsm", "surface", 0.0),
}
STATICS = ("orog", "lsm")
#: ``<prefix>_<hPa>`` -> the shortNames that hold it on isobaricInhPa, the first one found wins
PRESSURE_LEVEL = {"z": ("z", "gh"), "t": ("t",), "u": ("u",), "v": ("v",), "q": ("q",),
                  "r": ("r",), "w": ("w",)}
#: GRIB units -> (factor, canonical units, long name), for canonical names found by themselves
CONVERSIONS = {"gpm": (GRAVITY, "m2 s-2", "Geopotential"),
               "kg m**-2": (0.001, "m", None)}
WIND_PAIRS = {"10u": "10v", "u": "v", "100u": "100v"}  # grid-relative pairs rotated together
GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Message:
    """The header of one GRIB message: what it holds, when, on which grid, where in the file."""

    path: str
    offset: int
    short_name: str
    level_type: str
    level: float
    valid: np.datetime64
    lead: np.timedelta64
    step_range: str
    grid: str  # the grid's geography keys (_grid_signature)
    grid_relative: bool  # u/v along the grid's x/y rather than east/north
    version: int  # the file's mtime (ns), so a rewritten file gets new dask keys


@dataclass(frozen=True)
class Request:
    """What one canonical variable reads: a shortName (first found of several), a level."""

    canonical: str
    short_names: tuple[str, ...]
    level_type: str | None  # None: the one level the field has in the files
    level: float | None
    convert: bool  # to the canonical units (CONVERSIONS)
    static: bool

    def describe(self, short_name: str | None = None) -> str:
        names = short_name or " or ".join(self.short_names)
        return f"{names} at {_level(self.level_type, self.level)}" if self.level_type else names


# --------------------------------------------------------------------------- files


def expand_paths(path: str | Sequence[str], dataset: str) -> list[str]:
    """The files of ``source.path``: one path, a glob or a list of both, sorted, each once."""
    files: list[str] = []
    for item in [path] if isinstance(path, str) else list(path):
        if GLOB_CHARS.search(item):
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not found:
                raise WorkbenchError(f"dataset {dataset!r}: no file matches {item}; fix "
                                     "`source.path` in its catalog YAML")
            files += found
        elif not os.path.isfile(item):
            raise WorkbenchError(f"dataset {dataset!r}: grib source {item} does not exist; "
                                 "fix `source.path` in its catalog YAML or create the file")
        else:
            files.append(item)
    if not files:
        raise WorkbenchError(f"dataset {dataset!r}: `source.path` lists no file; name a file, "
                             "a glob or a list of them")
    return list(dict.fromkeys(files))


def scan(path: str, dataset: str) -> list[Message]:
    """The headers of every message in one file (the data sections are skipped)."""
    import eccodes

    messages = []
    try:
        version = os.stat(path).st_mtime_ns
        with open(path, "rb") as f:
            while (handle := eccodes.codes_grib_new_from_file(f, headers_only=True)) is not None:
                try:
                    messages.append(_header(handle, path, version))
                finally:
                    eccodes.codes_release(handle)
    except (OSError, eccodes.GribInternalError) as err:
        raise WorkbenchError(f"dataset {dataset!r}: cannot read {path} as GRIB "
                             f"({_first_line(err)}); restore the file or drop it from "
                             "`source.path`") from None
    if not messages:
        raise WorkbenchError(f"dataset {dataset!r}: {path} is not a GRIB file (no GRIB message "
                             "in it); fix `source.path` or `source.kind` in its catalog YAML")
    return messages


def _header(handle, path: str, version: int) -> Message:
    import eccodes

    def get(key: str):
        return eccodes.codes_get(handle, key)

    valid = _datetime(get("validityDate"), get("validityTime"))
    reference = _datetime(get("dataDate"), get("dataTime"))
    return Message(
        path=path, offset=int(get("offset")), short_name=str(get("shortName")),
        level_type=str(get("typeOfLevel")), level=float(get("level")), valid=valid,
        lead=valid - reference, step_range=str(get("stepRange")),
        grid=sys.intern(_grid_signature(handle)),
        grid_relative=bool(eccodes.codes_is_defined(handle, "uvRelativeToGrid")
                           and get("uvRelativeToGrid")),
        version=version,
    )


def _grid_signature(handle) -> str:
    """The grid's geography keys (points, first point, increments, projection, earth): what
    two messages on one grid share (the grid section's hash differs for grid-relative winds)."""
    import eccodes

    parts = []
    iterator = eccodes.codes_keys_iterator_new(handle, "geography")
    try:
        while eccodes.codes_keys_iterator_next(iterator):
            key = eccodes.codes_keys_iterator_get_name(iterator)
            value = (eccodes.codes_get_array(handle, key) if eccodes.codes_get_size(handle, key) > 1
                     else eccodes.codes_get(handle, key))
            parts.append(f"{key}={np.asarray(value).tolist()}")
    finally:
        eccodes.codes_keys_iterator_delete(iterator)
    for key in ("numberOfPoints", "shapeOfTheEarth"):
        if eccodes.codes_is_defined(handle, key):
            parts.append(f"{key}={eccodes.codes_get(handle, key)}")
    return ";".join(parts)


@contextlib.contextmanager
def _open_message(message: Message, dataset: str) -> Iterator:
    """A full ecCodes handle of one message, released on exit; failures are one line."""
    import eccodes

    try:
        with open(message.path, "rb") as f:
            f.seek(message.offset)
            handle = eccodes.codes_grib_new_from_file(f)
            if handle is None:
                raise OSError("no message at that offset")
            try:
                yield handle
            finally:
                eccodes.codes_release(handle)
    except (OSError, eccodes.GribInternalError) as err:
        raise WorkbenchError(f"dataset {dataset!r}: reading the GRIB message at byte "
                             f"{message.offset} of {message.path} failed ({_first_line(err)}); "
                             "the file changed or is damaged: restore it") from None


def _units_and_name(message: Message, dataset: str) -> tuple[str, str]:
    """The units and name of a message's field (read once per variable: slow concept keys)."""
    import eccodes

    with _open_message(message, dataset) as handle:
        return str(eccodes.codes_get(handle, "units")), str(eccodes.codes_get(handle, "name"))


def _values(message: Message, size: int, dataset: str) -> np.ndarray:
    """The decoded values of one message, float32, NaN where its bitmap says missing."""
    import eccodes

    with _open_message(message, dataset) as handle:
        values = eccodes.codes_get_values(handle)
        if eccodes.codes_get(handle, "bitmapPresent"):
            missing = eccodes.codes_get_double(handle, "missingValue")
            values = np.where(values == missing, np.nan, values)
    if values.size != size:
        raise WorkbenchError(f"dataset {dataset!r}: the GRIB message at byte {message.offset} of "
                             f"{message.path} has {values.size} values, not {size}; the file "
                             "changed since it was opened: open the dataset again")
    return values.astype(np.float32)


# --------------------------------------------------------------------------- variables


def request(canonical: str, spec: str) -> Request:
    """What a catalog variable reads: a canonical name (as the spec) finds its field by
    itself; any other spec is read as written."""
    if spec in SINGLE_LEVEL:
        short, level_type, level = SINGLE_LEVEL[spec]
        return Request(canonical, (short,), level_type, level, True, spec in STATICS)
    prefix, _, hpa = spec.partition("_")
    if prefix in PRESSURE_LEVEL and hpa.isdigit():
        return Request(canonical, PRESSURE_LEVEL[prefix], "isobaricInhPa", float(hpa), True,
                       False)
    short, _, where = spec.partition("@")
    level_type, _, level = where.rpartition(":")
    try:
        value = float(level) if where else None
    except ValueError:
        raise WorkbenchError(f"variable {canonical}: {spec!r} is not shortName, shortName@hPa or "
                             "shortName@typeOfLevel:level (e.g. gh@500, t@heightAboveGround:2)"
                             ) from None
    return Request(canonical, (short,), (level_type or "isobaricInhPa") if where else None,
                   value, False, False)


def select(messages: Sequence[Message], want: Request, lead: np.timedelta64,
           dataset: str) -> list[Message]:
    """The messages of one request, one per valid time in time order (statics: the first)."""
    short = next((s for s in want.short_names if any(m.short_name == s for m in messages)), None)
    if short is None:
        present = sorted({m.short_name for m in messages})
        raise WorkbenchError(f"dataset {dataset!r}: {want.canonical} asks for "
                             f"{' or '.join(want.short_names)}; the files have "
                             f"{', '.join(present[:30])}; fix `variables` in its catalog YAML")
    found = [m for m in messages if m.short_name == short]
    levels = sorted({(m.level_type, m.level) for m in found})
    if want.level_type is None and len(levels) > 1:
        raise WorkbenchError(f"dataset {dataset!r}: {want.canonical} asks for {short} without a "
                             f"level; the files have it at {_levels(levels)}; write "
                             f"{short}@typeOfLevel:level")
    if want.level_type is not None:
        found = [m for m in found if (m.level_type, m.level) == (want.level_type, want.level)]
        if not found:
            raise WorkbenchError(f"dataset {dataset!r}: {want.canonical} asks for "
                                 f"{want.describe(short)}; the files have {short} at "
                                 f"{_levels(levels)}; fix `variables` in its catalog YAML")
    if want.static:
        return found[:1]
    leads = sorted({m.lead for m in found})
    found = [m for m in found if m.lead == lead]
    if not found:
        raise WorkbenchError(f"dataset {dataset!r}: {want.canonical} asks for lead time "
                             f"{_duration(lead)}; the files have {short} at "
                             f"{', '.join(map(_duration, leads))}; set `source.step` in its "
                             "catalog YAML")
    by_time: dict[np.datetime64, list[Message]] = {}
    for m in found:
        by_time.setdefault(m.valid, []).append(m)
    return [_one(by_time[t], want, dataset) for t in sorted(by_time)]


def _one(same_time: list[Message], want: Request, dataset: str) -> Message:
    """The message of one valid time; of several accumulations (HRRR's 0-6 h and 5-6 h), the
    one accumulated from the cycle."""
    if len(same_time) > 1:
        from_cycle = [m for m in same_time if m.step_range.startswith("0-")]
        if len(from_cycle) == 1:
            return from_cycle[0]
        first, other = same_time[:2]
        raise WorkbenchError(
            f"dataset {dataset!r}: {want.canonical} has two messages valid at "
            f"{_when(first.valid)} (step {first.step_range} in {first.path}, step "
            f"{other.step_range} in {other.path}); narrow `source.path` to one of them")
    return same_time[0]


# --------------------------------------------------------------------------- grids


def grid_of(message: Message, dataset: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Latitudes, longitudes (degrees, in storage order) and the grid attrs of a message."""
    import eccodes

    with _open_message(message, dataset) as handle:
        def get(key: str):
            return eccodes.codes_get(handle, key)

        grid_type = str(get("gridType"))
        try:
            lat = eccodes.codes_get_double_array(handle, "latitudes")
            lon = eccodes.codes_get_double_array(handle, "longitudes")
        except eccodes.GribInternalError:
            raise WorkbenchError(f"dataset {dataset!r}: ecCodes cannot locate the points of "
                                 f"{message.path}'s grid ({grid_type}); regrid it to lat-lon"
                                 ) from None
        if eccodes.codes_is_defined(handle, "radius"):
            earth = f"+R={float(get('radius')):.0f}"
        else:
            earth = f"+a={get('earthMajorAxisInMetres')} +b={get('earthMinorAxisInMetres')}"
        row_major = (eccodes.codes_is_defined(handle, "jPointsAreConsecutive")
                     and not get("jPointsAreConsecutive") and not get("alternativeRowScanning"))
        if grid_type in ("regular_ll", "regular_gg") and row_major:
            ni, nj = int(get("Ni")), int(get("Nj"))
            x, y = lon[:ni], lat[::ni]
            return lat, lon, {
                "grid_kind": "regular_latlon", "grid_shape": [nj, ni],
                "crs": f"+proj=longlat {earth} +no_defs",
                "grid_x": x.tolist(), "grid_y": y.tolist(),
                "grid_spacing_km": float(np.deg2rad(abs(x[1] - x[0])) * EARTH_RADIUS_KM),
            }
        if grid_type == "lambert" and row_major:
            crs = (f"+proj=lcc +lat_0={get('LaDInDegrees')} "
                   f"+lon_0={float(wrap_longitude(get('LoVInDegrees')))} "
                   f"+lat_1={get('Latin1InDegrees')} +lat_2={get('Latin2InDegrees')} "
                   f"{earth} +units=m +no_defs")
            nx, ny = int(get("Nx")), int(get("Ny"))
            dx = float(get("DxInMetres")) * (-1 if get("iScansNegatively") else 1)
            dy = float(get("DyInMetres")) * (1 if get("jScansPositively") else -1)
            return lat, lon, _projected(crs, lat, lon, nx, ny, dx, dy, message.path, dataset)
    return lat, lon, {"grid_kind": "points"}


def _projected(crs: str, lat: np.ndarray, lon: np.ndarray, nx: int, ny: int, dx: float,
               dy: float, path: str, dataset: str) -> dict:
    """Grid attrs of a projected grid; its axes from the first point, checked against the
    coordinates ecCodes computed (a crs derived wrongly would misplace every point)."""
    from pyproj import Proj

    proj = Proj(crs)
    x0, y0 = proj(lon[0], lat[0])
    x, y = x0 + np.arange(nx) * dx, y0 + np.arange(ny) * dy
    xx, yy = np.meshgrid(x, y)
    lon2, lat2 = proj(xx.ravel(), yy.ravel(), inverse=True)
    off = max(np.abs(lat2 - lat).max(), np.abs(wrap_longitude(lon2 - lon)).max())
    if off > 1e-3:
        raise WorkbenchError(f"dataset {dataset!r}: the projection derived from {path} ({crs}) "
                             f"puts its points up to {off:.3g} deg away from ecCodes' coordinates;"
                             " regrid the file to lat-lon")
    return {"grid_kind": "lambert_conformal", "grid_shape": [ny, nx], "crs": crs,
            "grid_x": x.tolist(), "grid_y": y.tolist(), "grid_spacing_km": abs(dx) / 1000.0}


def north_angle(crs: str, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Angle (radians) from a projected grid's y axis to true north, towards +x."""
    from pyproj import Proj

    proj = Proj(crs)
    step = np.where(lat > 89.0, -1e-4, 1e-4)
    x1, y1 = proj(lon, lat)
    x2, y2 = proj(lon, lat + step)
    return np.arctan2((x2 - x1) * np.sign(step), (y2 - y1) * np.sign(step))


# --------------------------------------------------------------------------- reading


def read_grib(path: str | Sequence[str], variables: Mapping[str, str], dataset: str,
              step: str | None = None) -> xr.Dataset:
    """GRIB files -> canonical layout: dims (time, grid), valid times, the grid's attrs."""
    files = expand_paths(path, dataset)
    messages = [m for f in files for m in scan(f, dataset)]
    lead = np.timedelta64(pd.Timedelta(step or "0h").to_timedelta64(), "ns")
    requests = [request(name, spec) for name, spec in variables.items()]
    chosen = {r.canonical: select(messages, r, lead, dataset) for r in requests}
    grids = {m.grid: m for picked in chosen.values() for m in picked}
    if len(grids) > 1:
        one, other = list(grids.values())[:2]
        raise WorkbenchError(f"dataset {dataset!r}: {one.short_name} in {one.path} and "
                             f"{other.short_name} in {other.path} lie on different grids; "
                             "give one dataset per grid")
    lat, lon, attrs = grid_of(next(iter(grids.values())), dataset)
    times = _common_times(chosen, requests, dataset)
    data = {}
    for want in requests:
        picked = chosen[want.canonical]
        values = _lazy(picked, lat.size, dataset)
        if picked[0].grid_relative and _is_wind(picked[0].short_name):
            values = _earth_relative(values, picked, want, messages, lead, (lat, lon, attrs),
                                     dataset)
        units, long_name = _units_and_name(picked[0], dataset)
        if want.convert and units in CONVERSIONS:
            factor, units, renamed = CONVERSIONS[units]
            values, long_name = values * np.float32(factor), renamed or long_name
        data[want.canonical] = xr.DataArray(
            values[0] if want.static else values,
            dims=("grid",) if want.static else ("time", "grid"),
            attrs={"units": units, "long_name": long_name,
                   "grib": f"{picked[0].short_name} at "
                           f"{_level(picked[0].level_type, picked[0].level)}"})
    coords = {"latitude": ("grid", lat), "longitude": ("grid", wrap_longitude(lon))}
    if times.size:
        coords["time"] = times
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _lazy(picked: Sequence[Message], size: int, dataset: str):
    """A dask array (message, grid) of the messages' values, one task per message."""
    import dask
    import dask.array as da

    return da.stack([da.from_delayed(dask.delayed(_values, pure=True)(m, size, dataset),
                                     (size,), dtype=np.float32) for m in picked])


def _is_wind(short_name: str) -> bool:
    return short_name in WIND_PAIRS or short_name in WIND_PAIRS.values()


def _earth_relative(values, picked: Sequence[Message], want: Request,
                    messages: Sequence[Message], lead: np.timedelta64,
                    grid: tuple[np.ndarray, np.ndarray, dict], dataset: str):
    """A wind component along a projected grid's x/y turned to east/north; the partner
    component is read for that, from the same files, level and valid times."""
    lat, lon, attrs = grid
    first = picked[0]
    if attrs["grid_kind"] == "regular_latlon":  # the grid's axes point east and north
        return values
    if attrs["grid_kind"] != "lambert_conformal":
        raise WorkbenchError(f"dataset {dataset!r}: {want.canonical} in {first.path} is "
                             "relative to a grid the workbench cannot rotate; regrid the "
                             "winds to east/north components")
    is_u = first.short_name in WIND_PAIRS
    partner = WIND_PAIRS[first.short_name] if is_u else next(
        u for u, v in WIND_PAIRS.items() if v == first.short_name)
    pair = {m.valid: m for m in select(messages, replace(
        want, short_names=(partner,), level_type=first.level_type, level=first.level),
        lead, dataset)}
    absent = [m.valid for m in picked if m.valid not in pair]
    if absent:
        raise WorkbenchError(f"dataset {dataset!r}: {want.canonical} is relative to the grid and "
                             f"needs {partner} to turn it east/north, which has no message valid"
                             f" at {_when(absent[0])}; add its file")
    other = _lazy([pair[m.valid] for m in picked], lat.size, dataset)
    angle = north_angle(attrs["crs"], lat, lon)
    cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    if is_u:  # east = u cos - v sin
        return values * cos - other * sin
    return other * sin + values * cos  # north = u sin + v cos


def _common_times(chosen: Mapping[str, list[Message]], requests: Sequence[Request],
                  dataset: str) -> np.ndarray:
    """The valid times every time-dependent variable has; one that lacks a time is an error."""
    timed = [r.canonical for r in requests if not r.static]
    if not timed:
        return np.array([], dtype="datetime64[ns]")
    have = {name: {m.valid for m in chosen[name]} for name in timed}
    times = sorted(set().union(*have.values()))
    for name in timed:
        missing = [t for t in times if t not in have[name]]
        if missing:
            other = next(n for n in timed if missing[0] in have[n])
            raise WorkbenchError(f"dataset {dataset!r}: {name} has no message valid at "
                                 f"{_when(missing[0])} ({other} has); add its file or narrow "
                                 "`source.path` to the times all variables have")
    return np.array(times, dtype="datetime64[ns]")


# --------------------------------------------------------------------------- text


def _datetime(date: int, hhmm: int) -> np.datetime64:
    date, hhmm = int(date), int(hhmm)
    return np.datetime64(f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}"
                         f"T{hhmm // 100:02d}:{hhmm % 100:02d}", "ns")


def _when(time: np.datetime64) -> str:
    return str(np.datetime64(time, "m"))


def _duration(delta: np.timedelta64) -> str:
    minutes = int(delta // np.timedelta64(1, "m"))
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}min"


def _level(level_type: str | None, level: float | None) -> str:
    return f"{level_type} {level:g}"


def _levels(levels: Sequence[tuple[str, float]]) -> str:
    """``[(isobaricInhPa, 850), (isobaricInhPa, 1000)]`` -> ``isobaricInhPa 850, 1000``."""
    groups: dict[str, list[str]] = {}
    for level_type, level in levels:
        groups.setdefault(level_type, []).append(f"{level:g}")
    return "; ".join(f"{t} {', '.join(v)}" for t, v in groups.items())


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__

