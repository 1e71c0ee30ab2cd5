"""WeatherBench2-style verification metrics on xarray Datasets.

Layout: a forecast is a Dataset with one variable per field and dims
``(init_time, lead_time, [member], grid)``; the truth has dims ``(time, grid)`` and coords
``latitude(grid)``, ``longitude(grid)`` in degrees; area weights are a DataArray ``weights(grid)``
(any positive scale: only their ratios matter). Every function takes and returns Datasets (all
variables at once).

Definitions follow ``weatherbench2/metrics.py`` (google-research/weatherbench2):

* WB2 evaluates a metric per init time (``compute_chunk``: an area-weighted mean over space,
  ``dataset.weighted(weights).mean(["latitude", "longitude"])``) and then averages over init
  times (``Metric.compute``: ``compute_chunk(...).mean("init_time")``), NaNs propagating.
  Here the flat ``grid`` dim plays the role of (latitude, longitude).
* RMSE: WB2's ``MSE`` docstring says most users should use MSE "and then take a square root in
  user code", i.e. ``sqrt(mean_t(mean_grid_w(e^2)))``; the square root comes last. (WB2's
  ``RMSESqrtBeforeTimeAvg`` is the other order, not used here.)
* ACC: WB2's ``ACC.compute_chunk``: with anomalies ``fa = forecast - clim``, ``ta = truth - clim``,
  ``mean_w(fa*ta) / sqrt(mean_w(fa^2) * mean_w(ta^2))`` per init time (uncentred), then the mean
  over init times.
* CRPS: WB2's ``CRPS = CRPSSkill - 0.5 * CRPSSpread`` with skill ``mean_m |X_m - Y|`` and the fair
  (Zamo & Naveau 2018) spread ``sum_ij |X_i - X_j| / (M (M - 1))``, computed from sorted members
  as WB2's ``_pointwise_crps_spread`` does; spread 0 for one member, as in WB2.
* Ensemble spread: WB2's ``EnsembleVariance`` (``var(member, ddof=1)``, area-weighted mean);
  skill: WB2's ``EnsembleMeanMSE`` (``(mean_m X - Y)^2``, area-weighted). The spread-skill ratio
  is ``sqrt(mean_t spread^2) / sqrt(mean_t skill^2)``. WB2's code applies no finite-ensemble
  correction; ``spread_skill_ratio(..., correct=True)`` multiplies by ``sqrt((M + 1) / M)``
  (Fortin et al. 2014), under which a perfectly reliable ensemble scores 1 instead of
  ``sqrt(M / (M + 1))``.

Missing values: a NaN in the truth is a masked point (land for sea-surface temperature, outside
radar range). Every metric scores only where the aligned truth is valid, and where an optional
``valid`` mask (bool, dims (init_time, lead_time, grid)) is True, e.g. the points where the
baselines are defined too (:func:`scored_points`): area means renormalise the weights over the
valid points of each init time, the mean over init times takes those with a valid point, a
per-point map the init times where the point is valid (NaN where it never is: drawn as
missing). A NaN in the forecast at a valid point propagates (it is not a mask).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .errors import WorkbenchError
from .times import add, is_cftime, parse_date

INIT, LEAD, MEMBER, GRID, TIME = "init_time", "lead_time", "member", "grid", "time"
_ORDER = (INIT, LEAD, MEMBER, "band", "hour", "dayofyear", GRID)
_COORD_TOL_DEG = 1e-4


# --------------------------------------------------------------------------- weights


def normalise_weights(weights: xr.DataArray) -> xr.DataArray:
    """The weights divided by their mean (mean 1, so they sum to the number of points)."""
    w = xr.DataArray(weights) if not isinstance(weights, xr.DataArray) else weights
    values = np.asarray(w.values, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise WorkbenchError("weights must be finite and >= 0: compute them from cell areas")
    if values.sum() <= 0:
        raise WorkbenchError("weights sum to 0: give at least one point a positive weight")
    return w / values.mean()


def latitude_weights(latitude: xr.DataArray | np.ndarray | Sequence[float]) -> xr.DataArray:
    """cos(latitude) normalised to mean 1, as a DataArray over the latitude's dim (``grid``).

    On a regular lat-lon grid the exact cell area of an interior row is
    ``2 cos(lat) sin(dlat / 2)`` per longitude step, so these weights are exact there; only rows
    at the poles differ (cos 90 = 0 against a small polar cap). ``grids.area_weights`` gives the
    exact areas; WB2's ``get_lat_weights`` uses the same cell-bound areas.
    """
    lat = (
        latitude
        if isinstance(latitude, xr.DataArray)
        else xr.DataArray(np.asarray(latitude, dtype=np.float64), dims=GRID)
    )
    weights = np.cos(np.deg2rad(lat.astype(np.float64))).clip(min=0.0)
    return normalise_weights(weights).rename("weights")


def _grid_weights(weights: xr.DataArray, n_grid: int) -> xr.DataArray:
    """Validated weights as a bare DataArray over ``grid`` (no coords to join on)."""
    if not isinstance(weights, xr.DataArray) or weights.dims != (GRID,):
        raise WorkbenchError("weights must be a DataArray with the single dim 'grid'")
    if weights.size != n_grid:
        raise WorkbenchError(
            f"weights have {weights.size} points but the data has {n_grid}: "
            "compute the weights on the same grid"
        )
    return xr.DataArray(normalise_weights(weights).values, dims=GRID)


def _mean_over(ds: xr.Dataset, dim: str, valid: xr.Dataset | None,
               weights: xr.DataArray | None = None) -> xr.Dataset:
    """(Weighted) mean over ``dim`` of the values where ``valid`` (all when None): sum w x /
    sum w over the valid ones, NaN where none is; a NaN at a valid value propagates."""
    if valid is None:
        return (ds.mean(dim, skipna=False) if weights is None
                else ds.weighted(weights).mean(dim, skipna=False))
    w = valid.astype(np.float64) if weights is None else valid * weights
    total = w.sum(dim)
    return (ds.where(valid, 0.0) * w).sum(dim) / total.where(total > 0)


def _area_mean(ds: xr.Dataset, weights: xr.DataArray,
               valid: xr.Dataset | None = None) -> xr.Dataset:
    """Area-weighted mean over ``grid``: sum_g w_g x_g / sum_g w_g, NaNs propagating; with
    ``valid``, over the valid points (weights renormalised), NaN where there is none."""
    return _mean_over(ds, GRID, valid, _grid_weights(weights, ds.sizes[GRID]))


# --------------------------------------------------------------------------- alignment


def _check_dims(ds: xr.Dataset, dims: Sequence[str], what: str) -> None:
    if not isinstance(ds, xr.Dataset):
        raise WorkbenchError(f"{what} must be an xarray Dataset (one variable per field)")
    missing = [d for d in dims if d not in ds.dims]
    if missing:
        raise WorkbenchError(
            f"{what} lacks dims {missing} (has {list(ds.dims)}): use dims {list(dims)}"
        )


def _check_coords(forecast: xr.Dataset, truth: xr.Dataset) -> None:
    for name in ("latitude", "longitude"):
        if name not in forecast.coords or name not in truth.coords:
            continue
        diff = np.asarray(forecast[name].values, float) - np.asarray(truth[name].values, float)
        if name == "longitude":
            diff = (diff + 180.0) % 360.0 - 180.0
        worst = float(np.nanmax(np.abs(diff))) if diff.size else 0.0
        if not worst <= _COORD_TOL_DEG:
            raise WorkbenchError(
                f"forecast and truth {name} differ by up to {worst:.3g} deg: "
                "regrid the forecast onto the truth's grid (same point order)"
            )


def _valid_times(forecast: xr.Dataset) -> xr.DataArray:
    init, lead = forecast[INIT], forecast[LEAD]
    if not (np.issubdtype(init.dtype, np.datetime64) or is_cftime(init.values)):
        raise WorkbenchError("init_time must be datetime64 (or cftime datetimes of a CF "
                             "calendar): use pd.to_datetime on it")
    if not np.issubdtype(lead.dtype, np.timedelta64):
        raise WorkbenchError(
            "lead_time must be timedelta64: use pd.to_timedelta(hours, unit='h') on it"
        )
    return _init_plus_lead(init, lead)


def _init_plus_lead(init: xr.DataArray, lead: xr.DataArray) -> xr.DataArray:
    """valid_time(init_time, lead_time) = init + lead, in the init times' calendar."""
    return xr.DataArray(add(init.values, lead.values), dims=(INIT, LEAD),
                        coords={INIT: init.values, LEAD: lead.values}, name="valid_time")


def align(forecast: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """The truth at the forecast's valid times ``init_time + lead_time``.

    Returns the forecast's variables with dims (init_time, lead_time, grid) and a
    ``valid_time(init_time, lead_time)`` coord. Raises WorkbenchError when the grids differ in
    size or in latitude/longitude (beyond 1e-4 deg), a variable is missing from the truth, or a
    valid time is not in the truth.
    """
    _check_dims(forecast, (INIT, LEAD, GRID), "forecast")
    _check_dims(truth, (TIME, GRID), "truth")
    if forecast.sizes[GRID] != truth.sizes[GRID]:
        raise WorkbenchError(
            f"forecast has {forecast.sizes[GRID]} grid points, truth {truth.sizes[GRID]}: "
            "regrid the forecast onto the truth's grid"
        )
    _check_coords(forecast, truth)
    missing = [v for v in forecast.data_vars if v not in truth.data_vars]
    if missing:
        raise WorkbenchError(f"truth lacks variables {missing}: load them or drop them first")
    valid = _valid_times(forecast)
    absent = np.setdiff1d(np.unique(valid.values), truth[TIME].values)
    if absent.size:
        raise WorkbenchError(
            f"{absent.size} valid times are not in the truth (first {absent[0]}, truth ends "
            f"{truth[TIME].values.max()}): extend the truth or drop those init/lead times"
        )
    out = truth[list(forecast.data_vars)].sel({TIME: valid})
    out = out.drop_vars(TIME).assign_coords(valid_time=valid)
    if GRID in forecast.coords:
        out = out.assign_coords({GRID: forecast[GRID].values})
    return out.transpose(INIT, LEAD, GRID, ...)


def _pair(forecast: xr.Dataset, truth: xr.Dataset, valid=None
          ) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset | None]:
    """Forecast variables, the aligned truth (lat/lon kept from the forecast when it has
    them) and where to score (:func:`scored_points`)."""
    target = align(forecast, truth)
    shared = [c for c in ("latitude", "longitude") if c in forecast.coords]
    target = target.drop_vars(shared)
    return forecast[list(target.data_vars)], target, scored_points(target, valid)


def scored_points(target: xr.Dataset, valid=None) -> xr.Dataset | None:
    """bool per variable, dims of ``target`` (init_time, lead_time, grid): where the aligned
    truth is valid (not NaN: a masked point) and, given ``valid`` (bool, a Dataset per
    variable or one DataArray), where that is True too. None when every point counts."""
    names = list(target.data_vars)
    mask = target.notnull() if any(bool(target[v].isnull().any()) for v in names) else None
    if valid is not None:
        given = valid if isinstance(valid, xr.Dataset) else xr.Dataset({v: valid for v in names})
        given = given[names].astype(bool)
        mask = given if mask is None else mask & given
    return mask


def _order(ds: xr.Dataset) -> xr.Dataset:
    return ds.transpose(*[d for d in _ORDER if d in ds.dims], ...)


def _init_mean(ds: xr.Dataset, valid: xr.Dataset | None = None) -> xr.Dataset:
    """Mean over init_time (per point: over the init times where it is valid)."""
    return _order(_mean_over(ds, INIT, valid))


def _aggregate(ds: xr.Dataset, weights: xr.DataArray, valid: xr.Dataset | None) -> xr.Dataset:
    """The area-weighted mean over the valid points per init time, then the mean over the
    init times that have one."""
    counted = None if valid is None else valid.any(GRID)
    return _init_mean(_area_mean(ds, weights, valid), counted)


# --------------------------------------------------------------------------- maps


def spatial_mse(forecast: xr.Dataset, truth: xr.Dataset, valid=None) -> xr.Dataset:
    """Per grid point: mean over init_time of (forecast - truth)^2. Dims (lead_time, grid)."""
    f, y, valid = _pair(forecast, truth, valid)
    return _init_mean((f - y) ** 2, valid)


def spatial_rmse(forecast: xr.Dataset, truth: xr.Dataset, valid=None) -> xr.Dataset:
    """Per grid point: sqrt of the mean over init_time of (forecast - truth)^2."""
    return np.sqrt(spatial_mse(forecast, truth, valid))


def spatial_mae(forecast: xr.Dataset, truth: xr.Dataset, valid=None) -> xr.Dataset:
    """Per grid point: mean over init_time of |forecast - truth|."""
    f, y, valid = _pair(forecast, truth, valid)
    return _init_mean(abs(f - y), valid)


def spatial_bias(forecast: xr.Dataset, truth: xr.Dataset, valid=None) -> xr.Dataset:
    """Per grid point: mean over init_time of (forecast - truth)."""
    f, y, valid = _pair(forecast, truth, valid)
    return _init_mean(f - y, valid)


def _ensemble(forecast: xr.Dataset) -> int:
    if MEMBER not in forecast.dims:
        raise WorkbenchError(
            f"ensemble metric needs a '{MEMBER}' dim (forecast has {list(forecast.dims)}): "
            "pass the ensemble forecast, or use the deterministic metric"
        )
    return forecast.sizes[MEMBER]


def _fair_spread_np(x: np.ndarray) -> np.ndarray:
    """sum_ij |x_i - x_j| / (M (M - 1)) over the last axis, as 2 sum_k (2k - M - 1) x_(k) / ..."""
    m = x.shape[-1]
    if m < 2:
        return np.zeros(x.shape[:-1])
    coef = 2.0 * np.arange(1, m + 1) - m - 1
    return 2.0 * (np.sort(x, axis=-1) * coef).sum(axis=-1) / (m * (m - 1))


def _pointwise_crps(forecast: xr.Dataset, target: xr.Dataset) -> xr.Dataset:
    """Fair CRPS per point and init time: mean_m |X_m - Y| - 0.5 sum_ij |X_i - X_j| / (M(M-1))."""
    skill = abs(forecast - target).mean(MEMBER, skipna=False)
    spread = xr.apply_ufunc(
        _fair_spread_np,
        forecast,
        input_core_dims=[[MEMBER]],
        keep_attrs=False,
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    return skill - 0.5 * spread


def _ensemble_variance(forecast: xr.Dataset) -> xr.Dataset:
    """var(member, ddof=1) per point and init time; 0 for a single member (as WB2)."""
    if forecast.sizes[MEMBER] < 2:
        return xr.zeros_like(forecast.isel({MEMBER: 0}, drop=True))
    return forecast.var(MEMBER, ddof=1, skipna=False)


def spatial_crps(forecast: xr.Dataset, truth: xr.Dataset, valid=None) -> xr.Dataset:
    """Per grid point: mean over init_time of the fair ensemble CRPS."""
    _ensemble(forecast)
    f, y, valid = _pair(forecast, truth, valid)
    return _init_mean(_pointwise_crps(f, y), valid)


def spatial_spread(forecast: xr.Dataset, truth: xr.Dataset, valid=None) -> xr.Dataset:
    """Per grid point: sqrt of the mean over init_time of the ensemble variance (ddof=1).

    ``truth`` is used to check the forecast's grid and valid times, and for where it is valid.
    """
    _ensemble(forecast)
    f, _, valid = _pair(forecast, truth, valid)
    return np.sqrt(_init_mean(_ensemble_variance(f), valid))


# --------------------------------------------------------------------------- aggregated


def mse(forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray,
        valid=None) -> xr.Dataset:
    """Area-weighted mean over grid of (forecast - truth)^2 per init time, then mean over init_time.

    Keeps lead_time (and member, for an ensemble forecast: one score per member).
    """
    f, y, valid = _pair(forecast, truth, valid)
    return _aggregate((f - y) ** 2, weights, valid)


def rmse(forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray,
         valid=None) -> xr.Dataset:
    """sqrt(mse): the area-weighted mean over grid, the mean over init_time, THEN the root."""
    return np.sqrt(mse(forecast, truth, weights, valid))


def mae(forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray,
        valid=None) -> xr.Dataset:
    """Area-weighted mean over grid of |forecast - truth| per init time, then mean over init_time."""
    f, y, valid = _pair(forecast, truth, valid)
    return _aggregate(abs(f - y), weights, valid)


def bias(forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray,
         valid=None) -> xr.Dataset:
    """Area-weighted mean over grid of (forecast - truth) per init time, then mean over init_time."""
    f, y, valid = _pair(forecast, truth, valid)
    return _aggregate(f - y, weights, valid)


def _climatology_at(clim: xr.Dataset, valid: xr.DataArray, names: Sequence[str]) -> xr.Dataset:
    """The climatology at each valid time: selects ``hour`` / ``dayofyear`` where clim has them."""
    if not isinstance(clim, xr.Dataset) or GRID not in clim.dims:
        raise WorkbenchError("climatology must be a Dataset with a 'grid' dim: use climatology()")
    extra = [d for d in clim.dims if d not in (GRID, "hour", "dayofyear")]
    if extra:
        raise WorkbenchError(
            f"climatology has dims {extra}: use (grid), (hour, grid) or (dayofyear, hour, grid)"
        )
    missing = [v for v in names if v not in clim.data_vars]
    if missing:
        raise WorkbenchError(f"climatology lacks variables {missing}: compute it from the truth")
    selection = {d: getattr(valid.dt, d) for d in ("dayofyear", "hour") if d in clim.dims}
    try:
        out = clim[list(names)].sel(selection)
    except KeyError as err:
        raise WorkbenchError(
            f"climatology lacks a {'/'.join(selection)} of the valid times ({err}): compute it "
            "from truth covering every hour of day the forecast verifies at"
        ) from None
    return out.drop_vars([*selection, "latitude", "longitude"], errors="ignore")


def acc(
    forecast: xr.Dataset, truth: xr.Dataset, climatology: xr.Dataset, weights: xr.DataArray,
    valid=None,
) -> xr.Dataset:
    """Anomaly correlation coefficient (uncentred, as WB2's ACC).

    Per init time: ``mean_w(fa*ta) / sqrt(mean_w(fa^2) * mean_w(ta^2))`` with ``fa = forecast -
    clim``, ``ta = truth - clim`` and ``mean_w`` the area-weighted mean over grid; then the mean
    over init_time. ``climatology`` has dims (grid) or (hour, grid) (or (dayofyear, hour, grid)),
    selected at each valid time's hour (and day of year). A forecast equal to the climatology has
    ``fa = 0`` and gives 0/0 = NaN; a perfect forecast gives exactly 1.
    """
    f, y, valid = _pair(forecast, truth, valid)
    clim = _climatology_at(climatology, y["valid_time"], list(f.data_vars))
    if any(bool(clim[v].isnull().any()) for v in clim.data_vars):  # no climatology: not scored
        valid = scored_points(y, clim.notnull() if valid is None else valid & clim.notnull())
    fa, ta = f - clim, y - clim
    per_init = _area_mean(fa * ta, weights, valid) / np.sqrt(
        _area_mean(fa**2, weights, valid) * _area_mean(ta**2, weights, valid)
    )
    counted = None if valid is None else valid.any(GRID)
    return _init_mean(per_init.drop_vars("valid_time", errors="ignore"), counted)


def crps(forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray,
         valid=None) -> xr.Dataset:
    """Fair ensemble CRPS: area-weighted mean over grid per init time, then mean over init_time."""
    _ensemble(forecast)
    f, y, valid = _pair(forecast, truth, valid)
    return _aggregate(_pointwise_crps(f, y), weights, valid)


def ensemble_mean_mse(forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray,
                      valid=None) -> xr.Dataset:
    """MSE of the ensemble mean (WB2 ``EnsembleMeanMSE``, biased by var / M)."""
    _ensemble(forecast)
    f, y, valid = _pair(forecast, truth, valid)
    return _aggregate((f.mean(MEMBER, skipna=False) - y) ** 2, weights, valid)


def ensemble_mean_rmse(
    forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray, valid=None
) -> xr.Dataset:
    """sqrt of: area-weighted mean over grid of (mean_m X - Y)^2, mean over init_time."""
    return np.sqrt(ensemble_mean_mse(forecast, truth, weights, valid))


def ensemble_variance(forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray,
                      valid=None) -> xr.Dataset:
    """Area-weighted mean over grid of var(member, ddof=1), mean over init_time (WB2)."""
    _ensemble(forecast)
    f, _, valid = _pair(forecast, truth, valid)
    return _aggregate(_ensemble_variance(f), weights, valid)


def spread_skill_ratio(
    forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray, correct: bool = False,
    valid=None,
) -> xr.Dataset:
    """sqrt(ensemble_variance) / ensemble_mean_rmse, both area-weighted and init-time means.

    ``correct=True`` multiplies by ``sqrt((M + 1) / M)`` (Fortin et al. 2014; WB2 applies none):
    for a reliable M-member ensemble the uncorrected ratio tends to ``sqrt(M / (M + 1))``.
    """
    n_members = _ensemble(forecast)
    ratio = np.sqrt(ensemble_variance(forecast, truth, weights, valid)
                    / ensemble_mean_mse(forecast, truth, weights, valid))
    return ratio * np.sqrt((n_members + 1) / n_members) if correct else ratio


# --------------------------------------------------------------------------- baselines


def climatology(
    truth: xr.Dataset, start: str | pd.Timestamp, end: str | pd.Timestamp, by_hour: bool = True
) -> xr.Dataset:
    """Mean of the truth over ``start..end`` (inclusive, dates of the truth's calendar): per
    hour of day, dims (hour, grid), when ``by_hour``; otherwise dims (grid)."""
    _check_dims(truth, (TIME, GRID), "truth")
    times = truth[TIME].values
    lo, hi = (parse_date(str(d), times, "climatology period") for d in (start, end))
    period = truth.sel({TIME: slice(lo, hi)})
    if period.sizes[TIME] == 0:
        raise WorkbenchError(
            f"truth has no times in {start}..{end}: pick a period inside "
            f"{truth[TIME].values.min()}..{truth[TIME].values.max()}"
        )
    out = period.groupby(f"{TIME}.hour").mean(TIME) if by_hour else period.mean(TIME)
    return _order(out).assign_attrs(period_start=str(start), period_end=str(end))


def _time_axes(init_times, lead_times) -> tuple[xr.DataArray, xr.DataArray]:
    leads = np.asarray(lead_times)
    if leads.dtype.kind in "iuf":
        raise WorkbenchError("lead_times must be timedeltas: pass pd.to_timedelta(h, unit='h')")
    init = np.atleast_1d(np.asarray(init_times))
    init = init if is_cftime(init) else pd.DatetimeIndex(init).values
    lead = pd.to_timedelta(np.atleast_1d(leads)).values
    return xr.DataArray(init, dims=INIT, coords={INIT: init}), xr.DataArray(
        lead, dims=LEAD, coords={LEAD: lead}
    )


def persistence_forecast(truth: xr.Dataset, init_times, lead_times) -> xr.Dataset:
    """The truth at each init time, repeated for every lead. Dims (init_time, lead_time, grid)."""
    _check_dims(truth, (TIME, GRID), "truth")
    init, lead = _time_axes(init_times, lead_times)
    absent = np.setdiff1d(init.values, truth[TIME].values)
    if absent.size:
        raise WorkbenchError(
            f"init time {absent[0]} is not in the truth: pick init times from truth.time"
        )
    start = truth.sel({TIME: init.values}).rename({TIME: INIT}).assign_coords({INIT: init})
    return _order(start.expand_dims({LEAD: lead.values})).copy(deep=True)


def climatology_forecast(clim: xr.Dataset, init_times, lead_times) -> xr.Dataset:
    """The climatology at each valid time init + lead. Dims (init_time, lead_time, grid)."""
    valid = _init_plus_lead(*_time_axes(init_times, lead_times))
    out = _climatology_at(clim, valid, list(clim.data_vars))
    keep = {c: clim[c] for c in ("latitude", "longitude") if c in clim.coords}
    return _order(out.broadcast_like(valid).assign_coords(keep))


# --------------------------------------------------------------------------- skill scores


_SKILL_KINDS = ("mse", "rmse")


def skill_score(model: xr.Dataset, reference: xr.Dataset, kind: str = "mse") -> xr.Dataset:
    """Skill score against a reference (e.g. persistence or climatology); 1 is perfect, 0 no skill.

    ``kind="mse"``: inputs are MSEs, ``1 - model / reference`` (the same formula serves MAE and
    CRPS, any score whose perfect value is 0). ``kind="rmse"``: inputs are RMSEs and the score is
    the MSE skill score ``1 - (model / reference)^2``. A reference score of 0 gives -inf or NaN.
    """
    if kind not in _SKILL_KINDS:
        raise WorkbenchError(f"unknown skill score kind {kind!r}: use one of {list(_SKILL_KINDS)}")
    if set(model.data_vars) != set(reference.data_vars):
        raise WorkbenchError(
            f"model has variables {sorted(model.data_vars)}, reference "
            f"{sorted(reference.data_vars)}: score the same variables"
        )
    ratio = model / reference
    return 1 - (ratio**2 if kind == "rmse" else ratio)


# --------------------------------------------------------------------------- distance bands


def distance_bands(
    distance: xr.DataArray | np.ndarray | Sequence[float], edges: Sequence[float]
) -> xr.DataArray:
    """Band index per grid point: ``k`` where ``edges[k] <= distance < edges[k + 1]``, else -1.

    ``edges`` increase strictly (``np.inf`` last to close the top band); the result carries them
    in ``attrs["edges"]``. Distances are whatever the caller measures (grid cells, km).
    """
    bounds = np.asarray(edges, dtype=np.float64)
    if bounds.ndim != 1 or bounds.size < 2 or not np.all(np.diff(bounds) > 0):
        raise WorkbenchError(f"band edges {list(edges)} must be >= 2 strictly increasing numbers")
    if isinstance(distance, xr.DataArray):
        dist = distance
    else:
        dist = xr.DataArray(np.asarray(distance, dtype=np.float64), dims=GRID)
    values = np.asarray(dist.values, dtype=np.float64)
    band = np.searchsorted(bounds, values, side="right") - 1
    band[(band < 0) | (band >= bounds.size - 1)] = -1  # NaN sorts last: -1 too
    return dist.copy(data=band.astype(np.int64)).rename("band").assign_attrs(edges=bounds.tolist())


def by_band(
    spatial_metric: xr.Dataset, band_labels: xr.DataArray, weights: xr.DataArray
) -> xr.Dataset:
    """Area-weighted mean of a per-grid-point metric over the points of each band.

    Result dims (lead_time, band) for a ``spatial_*`` map: ``sum_{g in band} w_g m_g / sum_{g in band} w_g``; points labelled -1
    are left out, an empty band is NaN; so are points where the map is NaN (never valid: a
    masked point), the band's weights renormalised over the others. To get an RMSE per band
    pass ``spatial_mse`` and take the square root afterwards (a mean of roots otherwise).
    """
    if GRID not in spatial_metric.dims:
        raise WorkbenchError("by_band needs a per-grid-point metric (a 'grid' dim): use spatial_*")
    n_grid = spatial_metric.sizes[GRID]
    labels = np.asarray(band_labels.values)
    if labels.shape != (n_grid,):
        raise WorkbenchError(
            f"band labels have shape {labels.shape}, the metric {n_grid} points: "
            "label every grid point with distance_bands"
        )
    w = _grid_weights(weights, n_grid)
    data = spatial_metric.drop_vars(["latitude", "longitude"], errors="ignore")
    if GRID in data.coords:
        data = data.drop_vars(GRID)
    edges = band_labels.attrs.get("edges")
    bands = np.arange(len(edges) - 1) if edges else np.unique(labels[labels >= 0])
    parts = [
        data.weighted(w * xr.DataArray(labels == b, dims=GRID)).mean(GRID, skipna=True)
        for b in bands
    ]
    out = xr.concat(parts, dim=xr.DataArray(bands, dims="band", name="band"))
    if edges:
        out = out.assign_coords(band_lower=("band", edges[:-1]), band_upper=("band", edges[1:]))
    return _order(out)
