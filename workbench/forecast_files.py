"""Forecast files out and in: CF files the workbench writes, and forecasts made elsewhere.

Out (:func:`write_forecast`): a forecast in the canonical layout (dims init_time, lead_time,
[member], grid) becomes a CF file, zarr or netCDF (by ``fmt`` or the suffix): the grid on its
own dims (:func:`workbench.export.cf_dataset`), variables with units, long_name and a
standard_name where one exists; ``forecast_reference_time`` (the initial times, a dim),
``lead_time`` (standard name ``forecast_period``, a dim), ``time`` (the valid times, an
auxiliary coordinate on both), ``member`` (``realization``) for an ensemble; the ``forced``
points (taken from the truth at every step) as a 0/1 coordinate. Written to a temporary
path, then renamed.

In (:func:`read_forecast`): any of these files back in the canonical layout, and other
layouts of the same content: the canonical one itself; CF files with an initial-time and a
lead-time dim (a ``forecast_reference_time``/``init_time`` coordinate, or WeatherBench 2's
``time`` with ``prediction_timedelta``); one forecast per file with a dim of valid times, as
anemoi-inference's netCDF output writes it (a ``values`` dim, ``latitude``/``longitude``,
``time`` in seconds since the initial time; or since 1970, then the initial time is a scalar
``forecast_reference_time`` where the file has one, else its first time, the initial state
anemoi-inference writes first); its initial state (lead 0) is dropped.
:func:`external_forecast` then names its variables as the truth's (a mapping, the truth's
catalog entry, anemoi's short names ``2t``/``10u``/``10v``: :data:`ANEMOI_NAMES`), puts its
points in the truth's order and checks its times, so the workbench's scores, maps and
boundary bands take it as they take a run's forecast. An external forecast has no forced
ring unless the file carries a ``forced`` coordinate.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__, catalog, export, grids
from .errors import WorkbenchError
from .readers import LAT_NAMES, LON_NAMES, parse_variable_spec
from .times import add, is_cftime, iso

FORMATS = ("zarr", "netcdf")
INIT, LEAD, MEMBER = "init_time", "lead_time", "member"
INIT_NAMES = ("init_time", "forecast_reference_time")
LEAD_NAMES = ("lead_time", "forecast_period", "step", "prediction_timedelta")
VALID_NAMES = ("time", "valid_time")
MEMBER_NAMES = ("member", "ensemble", "realization", "number")
POINT_TOL_KM = 0.1  # a forecast point this close to a truth point is that point
# anemoi's (ECMWF's) short names of single-level fields -> the workbench's; pressure levels
# are z_500, t_850 in both
ANEMOI_NAMES = {"2t": "t2m", "10u": "u10", "10v": "v10", "2d": "d2m", "100u": "u100",
                "100v": "v100", "skt": "skt", "msl": "msl", "sp": "sp", "tp": "tp"}


def file_format(path: str | Path, fmt: str | None = None) -> str:
    """``zarr`` or ``netcdf``: ``fmt`` when given, else by the suffix (``.nc``: netcdf)."""
    if fmt is None:
        fmt = "netcdf" if Path(path).suffix in (".nc", ".nc4", ".netcdf") else "zarr"
    if fmt not in FORMATS:
        raise WorkbenchError(f"forecast format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


# --------------------------------------------------------------------------- out


def _lead_units(lead: np.ndarray) -> str:
    """The largest unit every lead time is a whole number of."""
    ns = pd.to_timedelta(lead).to_numpy().astype("timedelta64[ns]").astype(np.int64)
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if np.all(ns % (size * 10**9) == 0):
            return unit
    return "seconds"


def to_cf(forecast: xr.Dataset, attrs: Mapping[str, Mapping] | None = None) -> xr.Dataset:
    """The CF form of a canonical forecast (see the module docstring): the grid reshaped and
    variables described as :func:`workbench.export.cf_dataset` does for datasets, plus the
    forecast's time coordinates. ``attrs`` maps a variable to attrs (units, long_name) it
    lacks, e.g. its dataset's."""
    ds = forecast.copy()
    for name in ds.data_vars:
        ds[name].attrs = {**(attrs or {}).get(name, {}), **ds[name].attrs}
    init, lead = ds[INIT].values, ds[LEAD].values
    if MEMBER in ds.dims:
        ds = ds.assign_coords({MEMBER: (MEMBER, np.arange(ds.sizes[MEMBER]), {
            "standard_name": "realization", "long_name": "ensemble member"})})
    if "forced" in ds.coords:
        ds = ds.assign_coords(forced=("grid", ds["forced"].values.astype(np.int8), {
            "long_name": "taken from the truth at every step", "flag_values": [0, 1],
            "flag_meanings": "predicted forced"}))
    out = export.cf_dataset(ds).rename({INIT: "forecast_reference_time"})
    out = out.assign_coords(time=(("forecast_reference_time", LEAD), add(init, lead), {
        "standard_name": "time", "long_name": "valid time"}))
    out["forecast_reference_time"].attrs = {"standard_name": "forecast_reference_time",
                                            "long_name": "initial time"}
    out[LEAD].attrs = {"standard_name": "forecast_period", "long_name": "lead time"}
    out[LEAD].encoding["units"] = _lead_units(lead)
    kept = {k: v for k, v in forecast.attrs.items() if v is not None and not isinstance(v, bool)
            and k not in ("grid_x", "grid_y")}  # the x/y (or lon/lat) axes hold them
    what = kept.get("dataset", kept.get("domain", "a dataset"))
    out.attrs = {"Conventions": "CF-1.8", "title": f"workbench forecast of {what}",
                 "source": f"workbench {__version__}", **kept,
                 "variables": [str(n) for n in forecast.data_vars]}  # zarr lists them sorted
    for name in out.coords:  # CF: no fill value on coordinates
        out[name].encoding["_FillValue"] = None
    return out


def write_forecast(forecast: xr.Dataset, path: str | Path, fmt: str | None = None,
                   units: Mapping[str, Mapping] | None = None) -> Path:
    """:func:`to_cf` of ``forecast`` written to ``path`` (zarr or netCDF: ``fmt`` or the
    suffix), through a temporary path renamed into place; returns ``path``."""
    target = Path(path)
    fmt = file_format(target, fmt)
    ds = to_cf(forecast, units)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    _remove(tmp)
    if fmt == "zarr":
        ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
    else:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    _remove(target)
    os.replace(tmp, target)
    return target


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# --------------------------------------------------------------------------- in


def open_file(path: str | Path) -> xr.Dataset:
    """A forecast file as xarray decodes it (times, lead times), zarr or netCDF; one line
    when it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise WorkbenchError(f"forecast file {path} does not exist; check the path")
    try:
        if path.is_dir() or path.suffix == ".zarr":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated")
                return xr.open_zarr(path, chunks=None, decode_timedelta=True)
        return xr.open_dataset(path, decode_timedelta=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is one line
        first = str(err).splitlines()[0] if str(err) else ""
        raise WorkbenchError(f"cannot read forecast file {path} ({type(err).__name__}: "
                             f"{first}); give a netCDF file or a zarr store") from None


def same_units(got, want) -> bool:
    """Whether two units texts are the same units (spaces, ``**`` and ``^`` aside); a file
    that gives none (anemoi-inference writes no units) is taken to be in the truth's."""
    return got is None or want is None or export._units_key(got) == export._units_key(want)


def from_grid_dims(ds: xr.Dataset, where: str) -> xr.Dataset:
    """``ds`` with its grid on one ``grid`` dim: (latitude, longitude) axes or 2-D
    latitude/longitude on (y, x) flattened row by row (the order :func:`export.cf_dataset`
    folds them in), a point list's dim renamed; ``latitude``/``longitude`` (and ``forced``)
    on grid; variables without the grid's dims left out."""
    lat = _find(ds, "latitude", LAT_NAMES)
    lon = _find(ds, "longitude", LON_NAMES)
    if lat is None or lon is None:
        raise WorkbenchError(f"{where}: no latitude/longitude (looked for {', '.join(LAT_NAMES)}"
                             f" and {', '.join(LON_NAMES)}); write the grid's coordinates")
    la, lo = ds[lat], ds[lon]
    if la.ndim == 1 and lo.ndim == 1 and la.dims != lo.dims:
        spatial = (la.dims[0], lo.dims[0])
        lat2, lon2 = np.meshgrid(la.values, lo.values, indexing="ij")
    elif la.dims == lo.dims and la.ndim in (1, 2):
        spatial, lat2, lon2 = la.dims, la.values, lo.values
    else:
        raise WorkbenchError(f"{where}: latitude dims {la.dims} and longitude dims {lo.dims} do "
                             "not describe one grid; give 1-D axes or both on the same dims")
    n = len(spatial)

    def flat(var: xr.DataArray) -> xr.Variable:
        var = var.transpose(..., *spatial)
        data = np.asarray(var.values)
        return xr.Variable(var.dims[:-n] + ("grid",), data.reshape(data.shape[:-n] + (-1,)),
                           dict(var.attrs))

    skip = {lat, lon, "forced"}
    out = xr.Dataset({name: flat(var) for name, var in ds.data_vars.items()
                      if name not in skip and set(spatial) <= set(var.dims)})
    coords = {d: ds[d] for d in ds.dims if d in ds.coords and d not in spatial}
    coords.update(latitude=("grid", np.asarray(lat2, np.float64).ravel()),
                  longitude=("grid", np.asarray(lon2, np.float64).ravel()))
    if "forced" in ds.variables and set(ds["forced"].dims) == set(spatial):
        coords["forced"] = flat(ds["forced"])
    return out.assign_coords(coords)


def _find(ds: xr.Dataset, standard_name: str, names: Sequence[str]) -> str | None:
    for name in ds.variables:
        if ds[name].attrs.get("standard_name") == standard_name:
            return str(name)
    return next((n for n in names if n in ds.variables), None)


def _reference_time(var: xr.DataArray):
    """The initial time of a valid-time axis given in ``<unit> since <initial time>``
    (anemoi-inference <= 0.11): the time its number 0 stands for."""
    units = var.encoding.get("units") or var.attrs.get("units")
    if not isinstance(units, str) or " since " not in units:
        return None
    calendar = var.encoding.get("calendar") or var.attrs.get("calendar") or "standard"
    return xr.coding.times.decode_cf_datetime(np.array([0]), units, calendar)[0]


def _as_lead(values) -> np.ndarray:
    return pd.to_timedelta(np.asarray(values).ravel()).to_numpy().astype("timedelta64[ns]")


def _time_axes(raw: xr.Dataset, where: str) -> xr.Dataset:
    """``raw`` with dims init_time and lead_time (timedelta64), initial states (lead <= 0)
    dropped, member dims named ``member``."""
    init = _find(raw, "forecast_reference_time", INIT_NAMES)
    lead = _find(raw, "forecast_period", LEAD_NAMES)
    valid = next((n for n in (_find(raw, "time", VALID_NAMES),) if n not in (init, lead)),
                 None)
    if init is None and lead is not None and lead in raw.dims and valid in raw.dims:
        init, valid = valid, None  # WeatherBench 2: time is the initial time
    ds = raw
    if init is not None and init in raw.dims and lead is not None and lead in raw.dims:
        ds = raw.rename({init: INIT, lead: LEAD})
        ds = ds.drop_vars([valid] if valid in ds.variables else [])
        ds = ds.assign_coords({LEAD: _as_lead(ds[LEAD].values)})
    elif valid is not None and valid in raw.dims and raw[valid].ndim == 1:
        t0 = raw[init].values if init is not None else _reference_time(raw[valid])
        if init is None and t0 is not None and iso(t0).startswith("1970-01-01T00:00:00"):
            t0 = raw[valid].values[0]  # an absolute time axis: it starts at the initial state
        if t0 is None or np.ndim(t0) > 0 and np.size(t0) != 1:
            raise WorkbenchError(f"{where}: no initial time for its valid times {valid!r}: give "
                                 "a scalar forecast_reference_time or time units 'seconds since "
                                 "<initial time>'")
        t0 = np.asarray(t0).ravel()[0]
        if lead is not None and raw[lead].dims == (valid,):
            leads = _as_lead(raw[lead].values)
        else:
            leads = _as_lead([v - t0 for v in raw[valid].values])
        drop = [v for v in (init, lead, valid) if v is not None and v in raw.variables]
        ds = raw.drop_vars(drop).rename({valid: LEAD}).assign_coords({LEAD: leads})
        ds = ds.set_coords([n for n in ds.data_vars if LEAD not in ds[n].dims])  # the grid's
        ds = ds.expand_dims({INIT: [t0]})
    else:
        raise WorkbenchError(f"{where}: cannot tell its initial and lead times: give dims "
                             "init_time and lead_time (CF: forecast_reference_time and "
                             "forecast_period), or a time dim of valid times with a scalar "
                             "forecast_reference_time")
    ds = ds.isel({LEAD: ds[LEAD].values > np.timedelta64(0, "ns")})
    if ds.sizes[LEAD] == 0:
        raise WorkbenchError(f"{where}: holds no lead time after its initial state; write "
                             "the forecast steps too")
    member = next((n for n in MEMBER_NAMES if n in ds.dims), None)
    if member is not None and member != MEMBER:
        ds = ds.rename({member: MEMBER})
    return ds


def read_forecast(path: str | Path) -> xr.Dataset:
    """A forecast file (any layout of the module docstring) in the canonical layout: dims
    (init_time, lead_time, [member], grid), ``latitude``/``longitude`` on grid (the file's
    point order), its ``forced`` points as a bool coord where it has them, the file's attrs
    plus ``forecast_files`` (its path); the values in memory."""
    where = f"forecast file {path}"
    raw = open_file(path)
    ds = from_grid_dims(_time_axes(raw, where), where)
    order = [str(n) for n in np.ravel(raw.attrs.get("variables", []))]
    names = sorted((n for n in ds.data_vars if {INIT, LEAD, "grid"} <= set(ds[n].dims)),
                   key=lambda n: order.index(n) if n in order else len(order))
    if not names:
        raise WorkbenchError(f"{where}: no variable on its initial times, lead times and grid "
                             f"(has {', '.join(map(str, ds.data_vars)) or 'none'})")
    ds = ds[names]
    for name in names:
        ds[name].attrs.pop("grid_mapping", None)
    order = [d for d in (INIT, LEAD, MEMBER, "grid") if d in ds.dims]
    ds = ds.transpose(*order)
    keep = {"latitude", "longitude", "forced", INIT, LEAD, MEMBER}
    ds = ds.drop_vars([c for c in ds.coords if c not in keep])
    if "forced" in ds.coords:
        ds = ds.assign_coords(forced=("grid", np.asarray(ds["forced"].values).astype(bool)))
    ds.attrs = {k: v for k, v in raw.attrs.items()
                if k not in ("Conventions", "title", "source", "variables")}
    ds.attrs["forecast_files"] = str(path)
    return ds.load()


# --------------------------------------------------------------------------- against a truth


def canonical_names(names: Sequence[str], truth: xr.Dataset, dataset: str,
                    variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """File variable -> the truth's name for it: ``variables`` (file name -> truth name)
    first, then the truth's catalog entry (its source names), then anemoi's short names
    (:data:`workbench.ANEMOI_NAMES`); names the truth has already stay. Names with no
    match are left out."""
    entry = catalog.load_catalog().get(dataset)
    from_entry = {}
    for name, spec in (entry.variables.items() if entry is not None else ()):
        source, level = parse_variable_spec(spec)
        if level is None:
            from_entry[source] = name
    out = {}
    for name in names:
        for table in (variables or {}, from_entry, ANEMOI_NAMES):
            if name not in truth.data_vars and name in table:
                out[name] = table[name]
                break
        else:
            if name in truth.data_vars:
                out[name] = name
    return {k: v for k, v in out.items() if v in truth.data_vars}


def match_points(forecast: xr.Dataset, truth: xr.Dataset, where: str) -> np.ndarray | None:
    """Index into the forecast's points of each truth point (None: already in the truth's
    order); a one-line error unless every truth point has a forecast point within
    :data:`POINT_TOL_KM` and the two grids have as many points."""
    n_fc, n_truth = forecast.sizes["grid"], truth.sizes["grid"]
    name = truth.attrs.get("dataset", "the truth")
    if n_fc != n_truth:
        raise WorkbenchError(f"{where}: {n_fc} grid points, truth {name!r} has {n_truth}: "
                             "regrid the forecast onto the truth's grid")
    lat_t, lon_t = (np.asarray(truth[c].values, np.float64) for c in ("latitude", "longitude"))
    lat_f, lon_f = (np.asarray(forecast[c].values, np.float64) for c in ("latitude", "longitude"))
    tol_deg = POINT_TOL_KM / 111.0
    if (np.allclose(lat_f, lat_t, rtol=0, atol=tol_deg)
            and np.allclose(grids.wrap_longitude(lon_f - lon_t), 0.0, rtol=0, atol=tol_deg)):
        return None
    from scipy.spatial import cKDTree

    chord, index = cKDTree(grids.unit_xyz(lat_f, lon_f)).query(grids.unit_xyz(lat_t, lon_t))
    km = grids.chord_to_km(chord)
    far = np.flatnonzero(km > POINT_TOL_KM)
    if far.size or np.unique(index).size != n_truth:
        i = int(far[0]) if far.size else int(np.argmax(km))
        raise WorkbenchError(
            f"{where}: its points are not truth {name!r}'s: {max(far.size, 1)} of {n_truth} "
            f"truth points have no forecast point within {POINT_TOL_KM:g} km (first at "
            f"{lat_t[i]:.3f}N {lon_t[i]:.3f}E, nearest {km[i]:.3g} km away): regrid the "
            "forecast onto the truth's grid")
    return index


def check_times(forecast: xr.Dataset, truth: xr.Dataset, where: str) -> None:
    """One line unless every initial and valid time is a time of the truth (persistence
    starts from the initial times; the scores need the truth at the valid times)."""
    have = truth["time"].values
    name = truth.attrs.get("dataset", "the truth")
    init = forecast[INIT].values
    if is_cftime(init) != is_cftime(have):
        raise WorkbenchError(f"{where}: its times are in another calendar than truth {name!r}'s "
                             "(cftime vs standard); write them in the truth's calendar")
    valid = add(init, forecast[LEAD].values)
    for what, values in (("initial", init), ("valid", valid.ravel())):
        absent = values[~np.isin(values, have)]
        if absent.size:
            raise WorkbenchError(
                f"{where}: {what} time {iso(absent[0])} is not a time of truth {name!r} "
                f"({iso(have[0])} to {iso(have[-1])}); score it against a dataset that covers "
                "the forecast, or drop those times")


def match_truth(forecast: xr.Dataset, truth: xr.Dataset,
                variables: Mapping[str, str] | None = None) -> xr.Dataset:
    """A canonical forecast (:func:`read_forecast`) as a forecast of ``truth`` (a canonical
    catalog dataset): its variables named and kept as the truth's (:func:`canonical_names`;
    the others listed in ``unscored_variables``), units checked, its points in the truth's
    order with the truth's coordinates (:func:`match_points`), its times checked
    (:func:`check_times`); attrs ``domain``, ``dataset``, ``split`` (``external``) and the
    truth's grid description. One line for each mismatch."""
    where = f"forecast {forecast.attrs.get('forecast_files', '')}".strip()
    dataset = str(truth.attrs.get("dataset", ""))
    names = canonical_names(list(forecast.data_vars), truth, dataset, variables)
    if not names:
        raise WorkbenchError(
            f"{where}: none of its variables ({', '.join(map(str, forecast.data_vars))}) is "
            f"one of truth {dataset!r}'s ({', '.join(map(str, truth.data_vars))}): name them "
            "with --variables FILE_NAME=NAME")
    fc = forecast[list(names)].rename({k: v for k, v in names.items() if k != v})
    for name in fc.data_vars:
        got, want = fc[name].attrs.get("units"), truth[name].attrs.get("units")
        if not same_units(got, want):
            raise WorkbenchError(f"{where}: {name} is in {got}, truth {dataset!r} in {want}: "
                                 "convert the forecast to the truth's units")
    index = match_points(fc, truth, where)
    if index is not None:
        fc = fc.isel(grid=index)
    fc = fc.assign_coords(latitude=("grid", truth["latitude"].values),
                          longitude=("grid", truth["longitude"].values))
    check_times(fc, truth, where)
    unscored = [str(n) for n in forecast.data_vars if n not in names]
    grid_keys = ("grid_kind", "grid_shape", "crs", "grid_x", "grid_y", "grid_spacing_km")
    fc.attrs = {"domain": truth.attrs.get("domain", dataset), "dataset": dataset,
                "split": "external", "run": Path(str(forecast.attrs.get("forecast_files",
                                                                        "external"))).name,
                "forecast_files": forecast.attrs.get("forecast_files", ""),
                "unscored_variables": ", ".join(unscored),
                **{k: forecast.attrs[k] for k in ("boundary_cells",) if k in forecast.attrs},
                **{k: truth.attrs[k] for k in grid_keys if k in truth.attrs}}
    return fc


def external_forecast(files: str | Path | Sequence[str | Path], truth: str,
                      variables: Mapping[str, str] | None = None,
                      cache: str | Path | None = None) -> tuple[xr.Dataset, xr.Dataset]:
    """Forecast files made elsewhere scored against the catalog dataset ``truth``: each file
    read (:func:`read_forecast`) and matched to the truth (:func:`match_truth`), the files
    joined along init_time (anemoi-inference writes one initial time a file). Returns the
    forecast and the truth's variables in memory, ready for
    :func:`workbench.evaluation.scores`, ``skill_maps`` and ``boundary_skill``."""
    files = [files] if isinstance(files, str | Path) else list(files)
    if not files:
        raise WorkbenchError("no forecast file given: pass --forecast FILE")
    ds = catalog.open_dataset(truth, cache=cache)
    parts = [match_truth(read_forecast(f), ds, variables) for f in files]
    names = [n for n in parts[0].data_vars if all(n in p.data_vars for p in parts)]
    fc = xr.concat([p[names] for p in parts], INIT, coords="minimal", compat="override",
                   join="exact") if len(parts) > 1 else parts[0]
    inits = fc[INIT].values
    if len(set(iso(t) for t in inits)) != inits.size:
        raise WorkbenchError(f"forecast files {', '.join(map(str, files))} repeat an initial "
                             "time; give each initial time once")
    fc = fc.sortby(INIT)
    fc.attrs = {**parts[0].attrs, "forecast_files": ", ".join(str(f) for f in files)}
    return fc, ds[names].load()


def climatology_period(truth: xr.Dataset, preferred: Sequence[str] | None = None,
                       strict: bool = False) -> tuple[str, str]:
    """The period of the climatology baseline for an external forecast: ``preferred`` (e.g.
    ``--train-period`` or a run's training split) where the truth covers it (``strict``: a
    one-line error where it does not), else the first 70 % of the truth's times, the train
    split a run trained on that dataset gets from :func:`workbench.byod.splits`."""
    from .byod import splits
    from .times import parse_date

    times = truth["time"].values
    name = str(truth.attrs.get("dataset", "truth"))
    if preferred:
        lo, hi = (parse_date(str(d), times, "climatology period") for d in preferred)
        if times[0] <= lo < hi <= times[-1]:
            return str(preferred[0]), str(preferred[1])
        if strict:
            raise WorkbenchError(f"--train-period {preferred[0]} {preferred[1]} is not a period "
                                 f"of truth {name!r} ({iso(times[0])} to {iso(times[-1])}); "
                                 "give one inside it, or leave it out (the first 70 %)")
    first, last = splits(times, name)["train"]
    return first, last


def parse_variables(items: Sequence[str] | None) -> dict[str, str]:
    """``--variables FILE_NAME=NAME ...`` as a mapping; one line for an item without ``=``."""
    out = {}
    for item in items or ():
        source, sep, name = str(item).partition("=")
        if not sep or not source.strip() or not name.strip():
            raise WorkbenchError(f"--variables {item!r}: write FILE_NAME=NAME (e.g. 2t=t2m)")
        out[source.strip()] = name.strip()
    return out


def notebook_forecast(files: Sequence[str | Path], truth: str,
                      train_period: Sequence[str] | None = None,
                      variables: Mapping[str, str] | None = None,
                      cache: str | Path | None = None, needs: Sequence[str] = ()
                      ) -> tuple[str, xr.Dataset, xr.Dataset, tuple[str, str]]:
    """Notebook 04's ``forecast_files``: ``(name, forecast, truth, climatology period)`` of
    :func:`external_forecast`, named ``external-<truth>``, its climatology over the run's
    ``train_period`` where the truth covers it (:func:`climatology_period`); one line unless
    it forecasts every variable of ``needs`` (the notebook's maps and bands)."""
    if not truth:
        raise WorkbenchError("forecast_files needs forecast_truth: the catalog dataset the "
                             "files forecast (e.g. global)")
    fc, truth_ds = external_forecast(files, truth, variables, cache)
    lacking = [name for name in needs if name not in fc.data_vars]
    if lacking:
        raise WorkbenchError(f"forecast_files {fc.attrs['forecast_files']} lack "
                             f"{', '.join(lacking)} of `variables`: give variables they have "
                             f"({', '.join(map(str, fc.data_vars))})")
    return f"external-{truth}", fc, truth_ds, climatology_period(truth_ds, train_period)
