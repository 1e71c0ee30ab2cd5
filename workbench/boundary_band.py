"""Skill in the boundary band, with its 95 % interval: notebook 04's key figures for seed 004.

Seed 004 asks whether trimming the LAM or fixing hanging nodes reduces boundary artefacts.
The boundary band of a domain (:func:`band_points`): on a cutout (stretched) grid the global
points within ``OUTSIDE_KM`` of the LAM and the LAM's first ``INSIDE_CELLS`` cells inside its
edge; on a plain LAM its first ``INSIDE_CELLS`` cells inside the ring forced from the truth
(the forced points are never scored); a global grid has none. Per lead time the model's skill
against persistence in the band, the mean over variables of ``1 - MSE(model) / MSE(persistence)``
(area-weighted per initial time, then averaged over initial times, as
:func:`workbench.evaluation.scores`), with a 95 % interval from the block bootstrap of
:mod:`workbench.intervals`: the same resampled initial times for every variable, the model
and persistence, so the interval is that of the mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from . import intervals, skill
from .errors import WorkbenchError
from .evaluation_inputs import forced_points, scored_points

OUTSIDE_KM = 150.0
INSIDE_CELLS = 3
BAND_COLUMNS = ["lead_hours", "value", "ci_low", "ci_high"]


def _ring_cells(forecast_ds: xr.Dataset) -> int:
    """The width in cells of the ring forced from the truth (0 where nothing is forced)."""
    forced = forced_points(forecast_ds).any()
    return int(forecast_ds.attrs.get("boundary_cells", 0)) if forced else 0


def band_points(forecast_ds: xr.Dataset, truth: xr.Dataset) -> np.ndarray | None:
    """Grid indices of the boundary band (None: the grid has no boundary)."""
    from .evaluation import band_of_points

    start = _ring_cells(forecast_ds)
    found = band_of_points(truth, (start, start + INSIDE_CELLS), (0, OUTSIDE_KM))
    if found is None:
        return None
    return np.flatnonzero((found[0] >= 0) & ~forced_points(forecast_ds))


def describe(forecast_ds: xr.Dataset, truth: xr.Dataset) -> str:
    """The band in words, for the summary."""
    if "cutout_mask" in truth.coords:
        return (f"global points within {OUTSIDE_KM:g} km of the LAM and the LAM's first "
                f"{INSIDE_CELLS} cells inside its edge")
    return (f"the first {INSIDE_CELLS} cells inside the edge after the "
            f"{_ring_cells(forecast_ds)} forced from the truth")


@dataclass(frozen=True)
class BandErrors:
    """Area-weighted MSEs per initial time in a forecast's boundary band: the model's and the
    reference's [init, lead, variable], where they count, the bootstrap's block length."""

    model: np.ndarray
    reference: np.ndarray
    counted: np.ndarray
    block: int
    lead_hours: np.ndarray
    init_times: np.ndarray


def band_errors(forecast_ds: xr.Dataset, truth: xr.Dataset, train_period: tuple[str, str],
                reference: str = "persistence") -> BandErrors | None:
    """The errors :func:`band_skill` scores (None: the grid has no boundary band)."""
    from .evaluation import area_weights, baselines

    index = band_points(forecast_ds, truth)
    if index is None or index.size == 0:
        return None
    names = list(forecast_ds.data_vars)
    fc, y = forecast_ds.isel(grid=index), truth[names].isel(grid=index)
    weights = area_weights(truth).isel(grid=index)
    forecasts = baselines(fc, y, skill.climatology(y, *train_period))
    valid = scored_points(forecasts, y)
    model, counted = intervals.per_init_mse(forecasts["model"], y, weights, valid)
    ref, _ = intervals.per_init_mse(forecasts[reference], y, weights, valid)
    stack = [np.stack([ds[n].transpose(skill.INIT, "lead_time").values for n in names], -1)
             for ds in (model, ref)]  # [init, lead, variable]
    where = (np.ones(stack[0].shape, bool) if counted is None else
             np.stack([counted[n].transpose(skill.INIT, "lead_time").values for n in names], -1))
    return BandErrors(*stack, where, intervals.block_length(
        fc["init_time"].values, fc["lead_time"].values),
        fc["lead_time"].values / np.timedelta64(1, "h"), fc["init_time"].values)


def band_skill(forecast_ds: xr.Dataset, truth: xr.Dataset, train_period: tuple[str, str],
               reference: str = "persistence") -> pd.DataFrame:
    """The band's skill against ``reference`` per lead time (:data:`BAND_COLUMNS`), the mean
    over the forecast's variables with its 95 % interval; empty without a boundary band."""
    errors = band_errors(forecast_ds, truth, train_period, reference)
    if errors is None:
        return pd.DataFrame(columns=BAND_COLUMNS)
    value, low, high = mean_skill_interval(errors.model, errors.reference, errors.counted,
                                           errors.block)
    return pd.DataFrame({"lead_hours": errors.lead_hours.astype(float), "value": value,
                         "ci_low": low, "ci_high": high}, columns=BAND_COLUMNS)


def mean_skill(m: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """[..., init, lead, variable] -> [..., lead]: the mean over variables of ``1 -
    mean(model) / mean(reference)`` over the initial times where they count."""
    shape = m.shape
    flat = [a.reshape(*shape[:-2], -1) for a in (m, r, c)]
    skills = 1 - intervals._mean(flat[0], flat[2]) / intervals._mean(flat[1], flat[2])
    return skills.reshape(*shape[:-3], *shape[-2:]).mean(axis=-1)


def mean_skill_interval(model: np.ndarray, reference: np.ndarray, counted: np.ndarray,
                        block: int, resamples: int = intervals.RESAMPLES,
                        seed: int = intervals.SEED, level: float = intervals.LEVEL
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean over the last axis (variables) of ``1 - mean(model) / mean(reference)`` over
    axis 0 (initial times), per middle index (lead time), with its ``level`` interval from
    :func:`intervals.block_indices` replicates; NaN bounds with fewer than two initial times."""
    with np.errstate(invalid="ignore", divide="ignore"):
        point = mean_skill(model, reference, counted)
        idx = intervals.block_indices(model.shape[0], block, resamples, seed)
        replicates = mean_skill(model[idx], reference[idx], counted[idx])
    return _bounds(point, replicates, counted.all(axis=-1).sum(axis=0) < 2, level)


def difference_interval(a: BandErrors, b: BandErrors, resamples: int = intervals.RESAMPLES,
                        seed: int = intervals.SEED, level: float = intervals.LEVEL
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band skill of A minus band skill of B per lead, each on its own band (two runs may
    forecast different grids, e.g. a trimmed one), with its ``level`` interval from ONE block
    bootstrap over their shared initial times: the same resampled times for both."""
    if not (np.array_equal(a.init_times, b.init_times)
            and np.array_equal(a.lead_hours, b.lead_hours)):
        raise WorkbenchError("the two forecasts' initial or lead times differ: forecast the "
                             "same split and lead steps with both runs")
    with np.errstate(invalid="ignore", divide="ignore"):
        point = (mean_skill(a.model, a.reference, a.counted)
                 - mean_skill(b.model, b.reference, b.counted))
        idx = intervals.block_indices(a.model.shape[0], a.block, resamples, seed)  # same times
        replicates = (mean_skill(a.model[idx], a.reference[idx], a.counted[idx])
                      - mean_skill(b.model[idx], b.reference[idx], b.counted[idx]))
    few = (a.counted.all(axis=-1) & b.counted.all(axis=-1)).sum(axis=0) < 2
    return _bounds(point, replicates, few, level)


def _bounds(point: np.ndarray, replicates: np.ndarray, few: np.ndarray, level: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``point`` and the ``level`` percentile interval of ``replicates`` (NaN where ``few``)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    return point, np.where(few, np.nan, low), np.where(few, np.nan, high)


def summary_part(forecasts: Mapping[str, xr.Dataset], boundary: Mapping[str, pd.DataFrame],
                 train_period: tuple[str, str]) -> tuple[dict, dict]:
    """Notebook 04's key figures and ``boundary_band`` section for the domains of
    ``boundary`` (those with a boundary) that the run forecast (not files made elsewhere):
    ``boundary_skill_vs_persistence_<domain>_<h>h`` at the first and the last lead, each with
    ``_ci_low`` and ``_ci_high``, over the variables of the domain's boundary analysis."""
    from .evaluation import plain_value, truth_for

    figures, section = {}, {}
    for domain, table in boundary.items():
        fc = forecasts.get(domain)
        if fc is None or fc.attrs.get("split") == "external" or table.empty:
            continue
        names = [n for n in dict.fromkeys(table["variable"]) if n in fc.data_vars]
        truth = truth_for(fc).load()
        rows = band_skill(fc[names], truth, train_period)
        if rows.empty:
            continue
        section[domain] = {"band": describe(fc, truth), "variables": names,
                           "points": int(band_points(fc, truth).size),
                           "rows": [{k: plain_value(v) for k, v in r.items()}
                                    for r in rows.to_dict("records")]}
        for lead in dict.fromkeys((rows["lead_hours"].iloc[0], rows["lead_hours"].iloc[-1])):
            row = rows[rows["lead_hours"] == lead].iloc[0]
            name = f"boundary_skill_vs_persistence_{domain}_{lead:g}h"
            figures[name] = plain_value(float(row["value"]))
            figures[f"{name}_ci_low"] = plain_value(float(row["ci_low"]))
            figures[f"{name}_ci_high"] = plain_value(float(row["ci_high"]))
    return figures, section
