"""Small GRIB2 files in the layouts NCEP publishes, written with ecCodes' own samples.

GFS-like: a global regular lat-lon grid (north to south, longitude 0..360), one file per
cycle and lead, ``gh``/``t`` on isobaricInhPa, ``2t``, ``10u``/``10v`` and, in forecast files,
``tp`` accumulated from the cycle in kg m-2. HRRR-like: a Lambert conformal grid with HRRR's
projection (lat_1 = lat_2 = lat_0 = 38.5, LoV 262.5, sphere of 6371229 m) and winds relative
to the grid, as HRRR stores them. Every value comes from :func:`field`, so a test can compute
what the reader must return.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HRRR_LAT_0, HRRR_LON_0 = 38.5, -97.5
HRRR_RADIUS_M = 6371229.0


def field(name: str, lat, lon, hours) -> np.ndarray:
    """The analytic value of a GRIB field (shortName@level as stored, GRIB units) at points
    (degrees) and a valid time (hours since 2020-01-01): smooth, distinct for every field."""
    phi, lam = np.deg2rad(np.asarray(lat, float)), np.deg2rad(np.asarray(lon, float))
    wave = np.cos(lam - 2 * np.pi * hours / 48) * np.cos(phi)
    if name.startswith("gh@"):
        level = float(name[3:])
        return 8000 * np.log(1000 / level) + 80 * wave + 150 * np.cos(phi) ** 2
    if name.startswith("t@"):
        level = float(name[2:])
        return 200 + level / 20 + 30 * np.cos(phi) + 4 * wave
    if name == "2t":
        return 255 + 40 * np.cos(phi) + 5 * np.sin(lam + 2 * np.pi * hours / 24)
    if name == "10u":
        return 10 * np.cos(phi) * np.sin(2 * phi) + 3 * wave
    if name == "10v":
        return 6 * np.sin(lam - 2 * np.pi * hours / 48) + 2 * np.sin(phi)
    if name == "tp":
        return np.maximum(0.0, 8 * wave - 2)
    raise KeyError(name)


def _message(sample: str, grid: dict, cycle: np.datetime64, lead_h: int, name: str,
             values: np.ndarray, grid_relative: bool = False, missing=None, start_h: int = 0):
    import eccodes

    handle = eccodes.codes_grib_new_from_samples(sample)
    eccodes.codes_set(handle, "centre", "kwbc")
    for key, value in grid.items():
        eccodes.codes_set(handle, key, value)
    stamp = str(np.datetime64(cycle, "m"))
    eccodes.codes_set(handle, "dataDate", int(stamp[:10].replace("-", "")))
    eccodes.codes_set(handle, "dataTime", int(stamp[11:16].replace(":", "")))
    short, _, level = name.partition("@")
    if short == "tp":  # APCP: accumulated from the cycle (product template 4.8)
        eccodes.codes_set(handle, "productDefinitionTemplateNumber", 8)
        eccodes.codes_set(handle, "discipline", 0)
        eccodes.codes_set(handle, "parameterCategory", 1)
        eccodes.codes_set(handle, "parameterNumber", 8)
        eccodes.codes_set(handle, "typeOfStatisticalProcessing", 1)
        eccodes.codes_set(handle, "stepRange", f"{start_h}-{lead_h}")
    else:
        eccodes.codes_set(handle, "shortName", short)
        if level:
            eccodes.codes_set(handle, "level", int(level))
        eccodes.codes_set(handle, "step", lead_h)
    if grid_relative:
        eccodes.codes_set(handle, "uvRelativeToGrid", 1)
    eccodes.codes_set(handle, "packingType", "grid_ieee")  # float32: exact values
    if missing is not None:
        eccodes.codes_set(handle, "bitmapPresent", 1)
        eccodes.codes_set(handle, "missingValue", 9999)
        values = np.where(missing, 9999.0, values)
    eccodes.codes_set_values(handle, np.asarray(values, dtype=np.float64))
    return handle


def _write(path: Path, handles) -> Path:
    import eccodes

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for handle in handles:
            eccodes.codes_write(handle, f)
            eccodes.codes_release(handle)
    return path


def hours_since_2020(time: np.datetime64) -> float:
    return float((np.datetime64(time, "m") - np.datetime64("2020-01-01T00:00", "m"))
                 / np.timedelta64(1, "h"))


# --------------------------------------------------------------------------- GFS-like


def gfs_axes(resolution: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Latitude (90 .. -90) and longitude (0 .. 360 - resolution) of the GFS-like grid."""
    return (np.linspace(90, -90, int(round(180 / resolution)) + 1),
            np.arange(0, 360, resolution))


def gfs_grid(resolution: float = 10.0) -> dict:
    lat, lon = gfs_axes(resolution)
    return {"Ni": lon.size, "Nj": lat.size, "latitudeOfFirstGridPointInDegrees": 90.0,
            "longitudeOfFirstGridPointInDegrees": 0.0,
            "latitudeOfLastGridPointInDegrees": -90.0,
            "longitudeOfLastGridPointInDegrees": float(lon[-1]),
            "iDirectionIncrementInDegrees": resolution, "jDirectionIncrementInDegrees": resolution,
            "jScansPositively": 0}


def write_gfs(path: Path, cycle: str, lead_h: int = 0, levels=(500, 850),
              resolution: float = 10.0, single=("2t", "10u", "10v"), tp_from=(0,)) -> Path:
    """One GFS-like file: the fields of one cycle at one lead; when lead > 0 also ``tp``
    accumulated from each hour of ``tp_from`` (the field times the period's share of the
    lead, so each accumulation has its own values)."""
    lat, lon = gfs_axes(resolution)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    cycle = np.datetime64(cycle)
    hours = hours_since_2020(cycle) + lead_h
    handles = []
    for level in levels:
        for short in ("gh", "t"):
            name = f"{short}@{level}"
            handles.append(_message("regular_ll_pl_grib2", gfs_grid(resolution), cycle, lead_h,
                                    name, field(name, lat2, lon2, hours).ravel()))
    for name in single:
        handles.append(_message("regular_ll_sfc_grib2", gfs_grid(resolution), cycle, lead_h,
                                name, field(name, lat2, lon2, hours).ravel()))
    for start in tp_from if lead_h else ():
        share = (lead_h - start) / lead_h
        handles.append(_message("regular_ll_sfc_grib2", gfs_grid(resolution), cycle, lead_h,
                                "tp", share * field("tp", lat2, lon2, hours).ravel(),
                                start_h=start))
    return _write(path, handles)


# --------------------------------------------------------------------------- HRRR-like


def hrrr_design(nx: int = 15, ny: int = 12, dx_m: float = 90000.0):
    """The HRRR-like grid as the workbench builds it (pyproj): x/y axes, lat/lon, crs."""
    from workbench.grids import lambert_conformal

    return lambert_conformal("hrrr-grib", lat_0=HRRR_LAT_0, lon_0=HRRR_LON_0, nx=nx, ny=ny,
                             dx_m=dx_m, radius_m=HRRR_RADIUS_M)


def hrrr_grid(nx: int = 15, ny: int = 12, dx_m: float = 90000.0) -> dict:
    design = hrrr_design(nx, ny, dx_m)
    return {"gridDefinitionTemplateNumber": 30, "shapeOfTheEarth": 6, "Nx": nx, "Ny": ny,
            "latitudeOfFirstGridPointInDegrees": float(design.latitude[0]),
            "longitudeOfFirstGridPointInDegrees": float(design.longitude[0]) % 360,
            "LaDInDegrees": HRRR_LAT_0, "LoVInDegrees": HRRR_LON_0 % 360,
            "Latin1InDegrees": HRRR_LAT_0, "Latin2InDegrees": HRRR_LAT_0,
            "DxInMetres": dx_m, "DyInMetres": dx_m, "iScansNegatively": 0,
            "jScansPositively": 1}


def grid_relative(u: np.ndarray, v: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """East/north winds turned to the HRRR grid's x/y, by the closed form NCEP documents for a
    tangent Lambert cone: angle = sin(lat_0) * (lon - LoV)."""
    angle = np.sin(np.deg2rad(HRRR_LAT_0)) * np.deg2rad(((lon - HRRR_LON_0 + 180) % 360) - 180)
    return (np.cos(angle) * u - np.sin(angle) * v, np.sin(angle) * u + np.cos(angle) * v)


def write_hrrr(path: Path, cycle: str, lead_h: int = 0, levels=(500, 850), missing=None,
               nx: int = 15, ny: int = 12, dx_m: float = 90000.0) -> Path:
    """One HRRR-like file (Lambert conformal, grid-relative winds); ``missing`` a boolean
    mask of ``2t`` values stored as missing (bitmap)."""
    design = hrrr_design(nx, ny, dx_m)
    grid = hrrr_grid(nx, ny, dx_m)
    lat, lon = design.latitude, design.longitude
    cycle = np.datetime64(cycle)
    hours = hours_since_2020(cycle) + lead_h
    handles = [_message("regular_ll_pl_grib2", grid, cycle, lead_h, f"{s}@{level}",
                        field(f"{s}@{level}", lat, lon, hours))
               for level in levels for s in ("gh", "t")]
    handles.append(_message("regular_ll_sfc_grib2", grid, cycle, lead_h, "2t",
                            field("2t", lat, lon, hours), missing=missing))
    u, v = grid_relative(field("10u", lat, lon, hours), field("10v", lat, lon, hours), lon)
    handles += [_message("regular_ll_sfc_grib2", grid, cycle, lead_h, "10u", u, True),
                _message("regular_ll_sfc_grib2", grid, cycle, lead_h, "10v", v, True)]
    if lead_h:
        handles.append(_message("regular_ll_sfc_grib2", grid, cycle, lead_h, "tp",
                                field("tp", lat, lon, hours)))
    return _write(path, handles)
