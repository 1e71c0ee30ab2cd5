"""Inference and scores: roll a trained run out on any domain, score it against baselines.

``forecast(run_dir, domain)`` rolls the run's last checkpoint out from every initial time of a
split (the domain may be one the model never trained on: its graph comes from
``configs/graphs/demo-<domain>.yaml`` or ``graph=``) and returns physical-unit forecasts as
``xr.Dataset`` (init_time, lead_time, [member], grid); ``evaluate`` writes them to
``<run_dir>/forecasts/<domain>-<split>.zarr`` atomically, a CF file on the grid's own dims
(:mod:`workbench.forecast_files`, which also reads forecasts made elsewhere). ``scores``
compares them with the truth, persistence and a climatology of the training period
(``skill``'s WB2 metrics).

Honest scores: the points training forces from the truth (a LAM's outer ``boundary_cells``
ring, the forecast's ``forced`` coord, taken from the very mask the rollout forces) are left
out of every aggregate and map by default and reported apart (``region`` ``forced_ring``); an
unseen domain is normalised with the training domains' statistics unless asked otherwise
(:mod:`workbench.evaluation_inputs`). :func:`scoring_note` says what was scored and how.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from . import catalog, intervals, skill
from .boundary_band import summary_part
from .errors import WorkbenchError
from .evaluation_inputs import (
    REGIONS,
    check_scored,
    forced_points,
    interior,
    scored_points,
    scored_regions,
    scoring_note,
)
from .restore import domain_config, forecast_inputs, run_config  # noqa: F401 - evaluation.*
from .sampling import MultiDomainDataset
from .times import step_text


@torch.no_grad()
def forecast(run_dir: str | Path, domain: str, split: str = "test", steps: int | None = None,
             members: int = 1, graph: str | None = None, batch_size: int = 4,
             cache: str | Path | None = None, progress: bool = True,
             normalise: str = "training", start: str | None = None) -> xr.Dataset:
    """Forecasts from every initial time of ``split``: physical units, dims (init_time,
    lead_time, [member], grid). LAM boundary nodes come from the truth at every step: the
    ``forced`` coord (bool, grid) marks them, from the mask the rollout forces.

    ``normalise`` (an unseen domain only; a training domain is normalised as in training):
    ``training``, the training domains' pooled statistics, or ``own``, the domain's own
    (:func:`workbench.evaluation_inputs.evaluation_data`). Attrs ``normalisation`` and
    ``normalisation_note`` say which; ``boundary_cells`` gives the forced ring's width.

    ``run_dir``: a run dir or a checkpoint file; a self-describing checkpoint needs nothing
    else, its normalisers and graphs included (:func:`workbench.restore.forecast_inputs`).
    ``start``: one forecast, from the window whose last input step is that time, instead of
    every window of ``split``."""
    for name, value in (("steps", steps), ("members", members), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise WorkbenchError(f"evaluate: {name} must be a whole number >= 1, got {value!r}")
    inputs = forecast_inputs(run_dir, domain, split, steps, members, graph, normalise, cache,
                             start)
    config, data, module, steps = inputs.restored.config, inputs.data, inputs.module, inputs.steps
    boundary = module.graphs[0].boundary  # what rollout_forecast overwrites from the truth
    forced = np.zeros(data.n_grid, bool) if boundary is None else boundary.numpy().astype(bool)
    dataset = MultiDomainDataset([data])
    starts = inputs.starts  # one-line error when the split is shorter than the window
    n_in = data.input_steps
    outputs = []
    chunks = range(0, len(starts), batch_size)
    for i in tqdm(chunks, desc=f"forecast {domain}", disable=not progress):
        batch = dataset.collate([dataset[(0, int(t))] for t in starts[i:i + batch_size]])
        pred = module.rollout_forecast(batch, steps, members)  # [B, (M,) steps, V, G]
        outputs.append(data.normalisers["variables"].denormalise(pred).numpy())
    values = np.concatenate(outputs)
    init = data.times[np.asarray(starts) + n_in - 1]  # in the data's calendar
    dims = ["init_time", "member", "lead_time", "grid"] if members > 1 else [
        "init_time", "lead_time", "grid"]
    coords = {"init_time": init, "lead_time": pd.to_timedelta(np.arange(1, steps + 1) * data.step),
              "latitude": ("grid", data.ds["latitude"].values),
              "longitude": ("grid", data.ds["longitude"].values), "forced": ("grid", forced)}
    variables = {}
    for v, name in enumerate(data.variables):
        field = values[..., v, :]
        variables[name] = (dims, field.astype(np.float32))
    ds = xr.Dataset(variables, coords=coords)
    if members > 1:
        ds = ds.transpose("init_time", "lead_time", "member", "grid")
    ds.attrs.update({"domain": domain, "dataset": inputs.domain.dataset,
                     "split": split if start is None else "none",
                     "run": inputs.restored.name, "graph_id": module.graphs[0].graph_id,
                     "trained_on": ", ".join(d["name"] for d in config.sampling["domains"]),
                     "boundary_cells": int(config.boundary_cells),
                     "time_step": step_text(data.step), **inputs.normalisation})
    for key in ("grid_shape", "crs", "grid_kind", "lam_spacing_km", "grid_x", "grid_y"):
        if key in data.ds.attrs:
            ds.attrs[key] = data.ds.attrs[key]
    return ds


def forecast_path(run_dir: str | Path, domain: str, split: str,
                  normalise: str = "training", fmt: str = "zarr") -> Path:
    """``<run_dir>/forecasts/<domain>-<split>.zarr`` (``...-own.zarr`` normalised ``own``,
    ``.nc`` for ``fmt`` netcdf); for a checkpoint file
    ``<its folder>/forecasts/<its stem>-<domain>-<split>.zarr``."""
    suffix = ".nc" if fmt == "netcdf" else ".zarr"
    name = f"{domain}-{split}{'-own' if normalise == 'own' else ''}{suffix}"
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir.parent / "forecasts" / f"{run_dir.stem}-{name}"
    return run_dir / "forecasts" / name


def evaluate(run_dir: str | Path, domain: str, split: str = "test", steps: int | None = None,
             members: int = 1, graph: str | None = None, cache: str | Path | None = None,
             progress: bool = True, normalise: str = "training", fmt: str = "zarr") -> Path:
    """:func:`forecast` written to :func:`forecast_path` atomically as a CF file (zarr or
    netCDF: :func:`workbench.forecast_files.write_forecast`, units from the truth);
    :func:`workbench.forecast_files.read_forecast` reads it back."""
    from .forecast_files import file_format, write_forecast

    target = forecast_path(run_dir, domain, split, normalise, file_format("", fmt))
    ds = forecast(run_dir, domain, split, steps, members, graph, cache=cache, progress=progress,
                  normalise=normalise)
    truth = catalog.open_dataset(ds.attrs["dataset"], cache=cache)
    return write_forecast(ds, target, fmt, {n: dict(truth[n].attrs) for n in ds.data_vars})


# --------------------------------------------------------------------------- scores


def truth_for(forecast_ds: xr.Dataset, cache: str | Path | None = None) -> xr.Dataset:
    """The forecast's dataset (canonical layout), only its variables, loaded into memory
    (the metrics index it many times; lazily they run about 20x slower)."""
    ds = catalog.open_dataset(forecast_ds.attrs["dataset"], cache=cache)
    return ds[list(forecast_ds.data_vars)].load()


def area_weights(ds: xr.Dataset) -> xr.DataArray:
    """Grid-cell areas of a canonical dataset's grid (latitude weights on regular grids); a
    cutout dataset's own ``area_weight`` coord (each part's cells, as its graph's nodes)."""
    from . import grids

    if "area_weight" in ds.coords:
        return xr.DataArray(np.asarray(ds["area_weight"].values, dtype=np.float64), dims="grid")
    return xr.DataArray(grids.area_weights(grids.grid_from_dataset(ds)), dims="grid")


def baselines(forecast_ds: xr.Dataset, truth: xr.Dataset,
              clim: xr.Dataset) -> dict[str, xr.Dataset]:
    """The model (ensemble mean), persistence and climatology forecasts on the truth's grid."""
    model = forecast_ds.mean("member") if "member" in forecast_ds.dims else forecast_ds
    init, lead = model["init_time"].values, model["lead_time"].values
    out = {"model": model,
           "persistence": skill.persistence_forecast(truth, init, lead),
           "climatology": skill.climatology_forecast(clim, init, lead)}
    return {name: fc.assign_coords(latitude=truth["latitude"], longitude=truth["longitude"])
            for name, fc in out.items()}


SCORE_COLUMNS = ["region", "forecast", "metric", "variable", "lead_hours", "value", "ci_low",
                 "ci_high", "significant"]


def scores(forecast_ds: xr.Dataset, truth: xr.Dataset, train_period: tuple[str, str],
           weights: xr.DataArray | None = None) -> pd.DataFrame:
    """RMSE, MAE, bias and ACC of the model, persistence and climatology per variable and
    lead time, with skill scores (1 - MSE / MSE of the reference): a tidy DataFrame
    (:data:`SCORE_COLUMNS`). Skill rows carry their 95 % interval ``ci_low``, ``ci_high``
    (:mod:`workbench.intervals`: a block bootstrap over initial times) and ``significant``
    (the interval excludes 0); the other rows have NaN and False.

    ``region`` ``interior``: the points the model predicted, i.e. every point but those
    forced from the truth (:func:`forced_points`; all points of a global or cutout domain) -
    the default scores. ``forced_ring``: the forced points alone (skill 1 by construction),
    only for a forecast that has them. Each region is area-weighted over its own points.

    Missing values: only the points where the truth is valid and both baselines are defined
    are scored (:func:`scored_points`), the same for every forecast; a variable with none
    in the interior is a one-line error."""
    weights = area_weights(truth) if weights is None else weights
    clim = skill.climatology(truth, *train_period)
    rows = []
    for region, index in scored_regions(forecast_ds, truth):
        if index is None:
            part = (forecast_ds, truth, clim, weights)
        else:
            part = tuple(x.isel(grid=index) for x in (forecast_ds, truth, clim, weights))
        rows += [(region, *row) for row in _region_scores(*part, check=region == REGIONS[0])]
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS[:-1])
    table["significant"] = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    return table


def _region_scores(forecast_ds: xr.Dataset, truth: xr.Dataset, clim: xr.Dataset,
                   weights: xr.DataArray, check: bool = True) -> list[tuple]:
    rows = []
    mses = {}
    forecasts = baselines(forecast_ds, truth, clim)
    valid = scored_points(forecasts, truth)
    if check:
        check_scored(valid, forecast_ds)
    errors = {}  # per initial time, for the intervals (counted: one valid, the same for all)
    for name, fc in forecasts.items():
        errors[name], counted = intervals.per_init_mse(fc, truth, weights, valid)
        mses[name] = intervals.mean_over_inits(errors[name], counted)  # = skill.mse
        metric = {"rmse": np.sqrt(mses[name]), "mae": skill.mae(fc, truth, weights, valid),
                  "bias": skill.bias(fc, truth, weights, valid)}
        if name != "climatology":
            metric["acc"] = skill.acc(fc, truth, clim, weights, valid)
        for key, ds in metric.items():
            rows += tidy_rows(ds, name, key)
    block = intervals.block_length(forecast_ds["init_time"].values,
                                   forecast_ds["lead_time"].values)
    for ref in ("persistence", "climatology"):
        rows += tidy_rows(skill.skill_score(mses["model"], mses[ref]), "model", f"skill_vs_{ref}",
                      intervals.skill_intervals(errors["model"], errors[ref], counted, block))
    if "member" in forecast_ds.dims:
        fc = forecast_ds.assign_coords(latitude=truth["latitude"], longitude=truth["longitude"])
        rows += tidy_rows(skill.crps(fc, truth, weights, valid), "model", "crps")
        rows += tidy_rows(skill.spread_skill_ratio(fc, truth, weights, valid=valid), "model",
                      "spread_skill")
    return rows


def tidy_rows(ds: xr.Dataset, forecast_name: str, metric: str,
          interval: tuple[xr.Dataset, xr.Dataset] | None = None) -> list[tuple]:
    """Rows (forecast, metric, variable, lead hours, value, ci_low, ci_high); NaN bounds
    without ``interval``."""
    hours = ds["lead_time"].values / np.timedelta64(1, "h")
    low, high = interval or (ds * np.nan, ds * np.nan)
    return [(forecast_name, metric, name, float(h), float(v), float(lo), float(hi))
            for name in ds.data_vars
            for h, v, lo, hi in zip(hours, *(np.atleast_1d(x[name].values)
                                             for x in (ds, low, high)), strict=True)]


# ---- notebook 04
# Skill maps: per-grid-point scores, skill against the baselines, skill by distance to the LAM
# boundary, the scorecard and notebook 04's summary.

FORECASTS = ("model", "persistence", "climatology")
MAP_METRICS = ("mse", "rmse", "skill_vs_persistence", "skill_vs_climatology")
BOUNDARY_COLUMNS = ["variable", "lead_hours", "band", "band_lower", "band_upper", "band_label",
                    "points", "forced_points", "model_mse", "persistence_mse", "climatology_mse",
                    "skill_vs_persistence", "skill_vs_climatology"]
_GRID_ATTRS = ("domain", "grid_kind", "grid_shape", "crs", "grid_x", "grid_y", "grid_spacing_km")


def _finished_training(path: Path) -> bool:
    import json

    try:
        info = json.loads((path / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(info, dict) and info.get("kind") == "training"
            and info.get("status") == "finished"
            and (path / "checkpoints" / "last.ckpt").is_file())


def find_run(run_dir: str | Path = "", search: str | Path = "..") -> Path:
    """The training run to evaluate: ``run_dir`` when given (checked: config.yaml and
    checkpoints/last.ckpt), else the most recently finished training run under ``search``
    (``search`` itself and up to 3 folder levels below it): a folder whose ``run.json`` says
    ``"kind": "training"``, ``"status": "finished"`` and that holds ``checkpoints/last.ckpt``.

    Notebooks run with their own run dir ``runs/<id>/`` as working directory, so the default
    ``..`` finds notebook 03's ``runs/<id>/train/``. Raises a one-line WorkbenchError when
    there is none.
    """
    if str(run_dir or ""):
        path = Path(run_dir).expanduser()
        run_config(path)  # one-line errors: no config.yaml, no checkpoint yet
        return path.resolve()
    root = Path(search).expanduser()
    found = [p.parent for depth in range(4)
             for p in root.glob("/".join(["*"] * depth + ["run.json"]))]
    finished = [p for p in found if _finished_training(p)]
    if not finished:
        raise WorkbenchError(f"no finished training run under {root.resolve()}: run notebook 03 "
                             "(`workbench run 03_training`) or `workbench train demo`, or pass "
                             "run_dir")
    latest = max(finished, key=lambda p: (p / "run.json").stat().st_mtime)
    return latest.resolve()


def skill_maps(forecast_ds: xr.Dataset, truth: xr.Dataset, train_period: tuple[str, str],
               weights: xr.DataArray | None = None, *,
               include_forced: bool = False) -> xr.Dataset:
    """Scores per grid point and lead time of the model, persistence and climatology.

    One data variable per forecast variable, dims ``(forecast, metric, lead_time, grid)``:

    - ``forecast``: ``model`` (the ensemble mean for an ensemble), ``persistence``,
      ``climatology`` (the truth's mean over ``train_period`` per hour of day);
    - ``metric``: ``mse`` and ``rmse`` (mean over init times of the squared error, and its
      root) for every forecast; ``skill_vs_persistence`` and ``skill_vs_climatology``
      (``1 - MSE(model) / MSE(reference)`` at each point: 1 perfect, 0 no better than the
      reference, negative worse) only for ``model``, NaN for the baselines. Where the
      reference's MSE is 0 the skill is NaN (0/0) or -inf.

    Points forced from the truth (:func:`forced_points`: a LAM's boundary ring) are NaN in
    every map (drawn as missing) and weigh 0, unless ``include_forced`` (then they show skill
    1 by construction).

    Coords: ``latitude``/``longitude`` (grid), ``forced`` (grid, bool), ``area_weight`` (grid:
    the cell areas, ``weights`` when given, normalised to mean 1 over the scored points, 0 on
    the excluded ones), so the area-weighted mean of an ``mse`` map over the points of weight
    > 0 is the aggregated MSE of :func:`scores` (region ``interior``). Attrs: the forecast's
    (domain, run, trained_on, split, normalisation), ``forced_points`` (``excluded`` or
    ``included``), ``scored_points`` (:func:`scoring_note`'s note) and the truth's grid
    description (grid_shape, crs, grid_x/grid_y), so :mod:`workbench.plotting` draws the maps
    in the grid's own projection.
    """
    truth = truth[list(forecast_ds.data_vars)]
    forecasts = baselines(forecast_ds, truth, skill.climatology(truth, *train_period))
    weights = area_weights(truth) if weights is None else weights
    scored_regions(forecast_ds, truth)  # one-line errors: other grid sizes, nothing left to score
    forced = forced_points(forecast_ds)
    excluded = forced & (not include_forced)
    w = np.asarray(skill._grid_weights(weights, truth.sizes["grid"]).values, dtype=np.float64)
    w = np.where(excluded, 0.0, w)
    w = w / w[~excluded].mean()
    valid = scored_points(forecasts, truth)  # NaN in every map where never valid
    mses = {name: skill.spatial_mse(fc, truth, valid) for name, fc in forecasts.items()}
    names = list(forecasts["model"].data_vars)
    lead = forecasts["model"]["lead_time"].values
    n_grid = truth.sizes["grid"]
    data = {}
    for name in names:
        values = np.full((len(FORECASTS), len(MAP_METRICS), len(lead), n_grid), np.nan)
        for f, fc in enumerate(FORECASTS):
            mse_map = np.asarray(mses[fc][name].transpose("lead_time", "grid").values, float)
            values[f, 0], values[f, 1] = mse_map, np.sqrt(mse_map)
        model = values[0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            values[0, 2] = 1 - model / values[1, 0]
            values[0, 3] = 1 - model / values[2, 0]
        values[..., excluded] = np.nan
        attrs = {k: v for k, v in truth[name].attrs.items() if k in ("units", "long_name")}
        data[name] = (("forecast", "metric", "lead_time", "grid"), values, attrs)
    attrs = {k: v for k, v in forecast_ds.attrs.items()
             if k in ("domain", "dataset", "split", "run", "trained_on", "graph_id",
                      "boundary_cells", "normalisation", "normalisation_note")}
    attrs.update({k: truth.attrs[k] for k in _GRID_ATTRS if k in truth.attrs})
    note = scoring_note(forecast_ds)["note"]
    attrs.update({"forced_points": "included" if include_forced else "excluded",
                  "scored_points": (f"all {forced.size} points (the {int(forced.sum())} "
                                    "forced from the truth included: skill 1 there)")
                  if include_forced and forced.any() else note})
    attrs.update({"train_period": list(train_period),
                  "init_times": int(forecasts["model"].sizes["init_time"])})
    if "domain" in forecast_ds.attrs:
        attrs["domain"] = forecast_ds.attrs["domain"]
    return xr.Dataset(data, coords={
        "forecast": list(FORECASTS), "metric": list(MAP_METRICS), "lead_time": lead,
        "latitude": ("grid", np.asarray(truth["latitude"].values)),
        "longitude": ("grid", np.asarray(truth["longitude"].values)),
        "forced": ("grid", forced), "area_weight": ("grid", w)}, attrs=attrs)


def boundary_skill(forecast_ds: xr.Dataset, truth: xr.Dataset, train_period: tuple[str, str],
                   band_cells: tuple[float, ...] | list[float] = (0, 2, 5, 10, 20, 1000), *,
                   maps: xr.Dataset | None = None,
                   outside_km: tuple[float, ...] | list[float] = (0, 500, 1000, 2000, 4000, np.inf),
                   ) -> pd.DataFrame:
    """Skill by distance to the edge of a limited-area (structured, non-global) grid.

    Points are put in bands ``band_cells[k] <= d < band_cells[k + 1]`` of their distance ``d``
    in grid cells to the nearest edge (:func:`grids.boundary_distance_cells`, 0 on the outer
    ring); per band, variable and lead time the area-weighted MSE of the model, persistence and
    climatology (the mean over init times of the area-weighted mean over the band's points) and
    the skill ``1 - MSE(model) / MSE(reference)``. With the default edges the first band
    ``[0, 2)`` is the ring training forces from the truth (``boundary_cells: 2``). Every band
    is shown, the forced points included: ``forced_points`` counts a band's points forced from
    the truth (:func:`forced_points`) and its label ends in `` forced`` when they all are
    (`` partly forced`` when some are). ``maps`` (:func:`skill_maps` of the same forecast with
    ``include_forced=True``, or of a forecast with no forced point) saves recomputing the
    per-point MSEs.

    Columns: variable, lead_hours, band, band_lower, band_upper, band_label, points,
    forced_points, model_mse, persistence_mse, climatology_mse, skill_vs_persistence,
    skill_vs_climatology.
    Global domains (:func:`catalog.is_limited_area` of the truth's dataset: its catalog label,
    else its coverage) and unstructured point sets have no boundary: the frame is empty
    (those columns, no rows). Empty bands are left out.

    A cutout (stretched) grid, whose truth carries the ``cutout_mask`` and ``lam_edge_cells``
    coords of :func:`catalog.open_dataset`, has the LAM boundary inside it: its global points
    go in bands of great-circle distance to the nearest LAM point (``outside_km``, labelled
    ``out [lo, hi) km``, far to near), then its LAM points in bands of ``band_cells`` cells to
    the LAM edge (labelled ``LAM [lo, hi) cells``); ``band`` numbers them in that order and
    ``band_lower``/``band_upper`` are in the label's unit. Training forces nothing on a
    cutout grid (:func:`workbench.domain_graphs.domain_graph` gives a point set no boundary
    mask), so the LAM's outer ring is scored as predicted.
    """
    found = band_of_points(truth, band_cells, outside_km)
    if found is None:
        return pd.DataFrame(columns=BOUNDARY_COLUMNS)
    labels, bands = found
    forced = forced_points(forecast_ds)
    if maps is None or (maps.attrs.get("forced_points") == "excluded" and forced.any()):
        maps = skill_maps(forecast_ds, truth, train_period, include_forced=True)
    points = np.bincount(labels[labels >= 0], minlength=len(bands))
    n_forced = np.bincount(labels[(labels >= 0) & forced], minlength=len(bands))
    mse = maps.sel(metric="mse").drop_vars("metric")
    band_labels = xr.DataArray(labels, dims="grid", attrs={"edges": list(range(len(bands) + 1))})
    banded = skill.by_band(mse, band_labels, xr.DataArray(maps["area_weight"].values, dims="grid"))
    hours = maps["lead_time"].values / np.timedelta64(1, "h")
    rows = []
    for name in maps.data_vars:
        values = np.asarray(banded[name].transpose("forecast", "band", "lead_time").values,
                            dtype=np.float64)  # forecasts in FORECASTS order
        model, persistence, climatology = values
        with np.errstate(divide="ignore", invalid="ignore"):
            vs_persistence, vs_climatology = 1 - model / persistence, 1 - model / climatology
        for b, (lo, hi, label) in enumerate(bands):
            if points[b] == 0:
                continue
            if n_forced[b]:
                label += " forced" if n_forced[b] == points[b] else " partly forced"
            for k, h in enumerate(hours):
                rows.append((name, float(h), b, lo, hi, label, int(points[b]), int(n_forced[b]),
                             model[b, k], persistence[b, k], climatology[b, k],
                             vs_persistence[b, k], vs_climatology[b, k]))
    return pd.DataFrame(rows, columns=BOUNDARY_COLUMNS)


def band_of_points(truth: xr.Dataset, band_cells=(0, 2, 5, 10, 20, 1000),
                   outside_km=(0, 500, 1000, 2000, 4000, np.inf)):
    """:func:`boundary_skill`'s bands: each point's band number (-1: in none) and each band's
    (lower, upper, label); None on a grid without a boundary (global, unstructured)."""
    from . import grids

    grid = grids.grid_from_dataset(truth)
    if "cutout_mask" in truth.coords and "lam_edge_cells" in truth.coords:
        return _cutout_bands(truth, band_cells, outside_km)
    if grid.shape is None or not catalog.is_limited_area(
            catalog.load_catalog().get(str(truth.attrs.get("dataset"))), grid):
        return None
    banded_cells = skill.distance_bands(grids.boundary_distance_cells(grid), band_cells)
    edges = banded_cells.attrs["edges"]
    return banded_cells.values, [(lo, hi, f"[{lo:g}, {hi:g})")
                                 for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def _cutout_bands(truth: xr.Dataset, band_cells, outside_km):
    """Band label per point of a cutout grid and (lower, upper, label) per band: global points
    by km to the nearest LAM point (far to near), then LAM points by cells to the LAM edge."""
    from . import grids

    inside = np.asarray(truth["cutout_mask"].values, dtype=bool)
    xyz = grids.unit_xyz(truth["latitude"].values, truth["longitude"].values)
    labels = np.full(inside.size, -1, dtype=np.int64)
    out_edges = skill.distance_bands([0.0], outside_km).attrs["edges"]
    n_out = len(out_edges) - 1
    if inside.any():
        km = grids.nearest_km(xyz[inside], xyz[~inside], 2 * np.pi * grids.EARTH_RADIUS_KM)[0]
        near = skill.distance_bands(km, outside_km).values
        labels[~inside] = np.where(near >= 0, n_out - 1 - near, -1)
    cells = np.asarray(truth["lam_edge_cells"].values)[inside]
    deep = skill.distance_bands(cells, band_cells)
    labels[inside] = np.where(deep.values >= 0, n_out + deep.values, -1)
    bands = [(lo, hi, f"out >= {lo:g} km" if np.isinf(hi) else f"out [{lo:g}, {hi:g}) km")
             for lo, hi in reversed(list(zip(out_edges[:-1], out_edges[1:], strict=True)))]
    edges = deep.attrs["edges"]
    bands += [(lo, hi, f"LAM [{lo:g}, {hi:g}) cells")
              for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return labels, bands


def scorecard(table: pd.DataFrame, metric: str = "skill_vs_persistence",
              region: str = "interior", column: str = "value") -> pd.DataFrame:
    """Variables (rows, in the table's order) x lead hours (columns) of the model's ``metric``
    from :func:`scores`' tidy table: skill against persistence by default
    (``skill_vs_climatology``, or any other metric of the model, e.g. ``acc``), over the
    ``region``'s points (``interior`` by default, or ``forced_ring``). ``column``: the
    ``value`` by default, or ``ci_low``, ``ci_high``, ``significant``. With the table's
    ``significant`` column, ``attrs["significant"]`` holds the card's cells whose 95 %
    interval excludes 0 (a list of rows of bools, as the plot marks them)."""
    if "region" in table:
        if region not in REGIONS:
            raise WorkbenchError(f"scorecard: region must be one of {', '.join(REGIONS)}, got "
                                 f"{region!r}")
        table = table[table["region"] == region]
    rows = table[(table["forecast"] == "model") & (table["metric"] == metric)]
    if rows.empty:
        raise WorkbenchError(f"the scores table has no model rows for metric {metric!r}: use "
                             f"one of {sorted(set(table['metric']))}")
    card = rows.pivot(index="variable", columns="lead_hours", values=column)
    card = card.reindex(list(dict.fromkeys(rows["variable"])))
    card.columns.name = "lead_hours"
    if "significant" in rows and column != "significant":
        marks = scorecard(table, metric, region, "significant")
        card.attrs["significant"] = marks.fillna(False).astype(bool).to_numpy().tolist()
    return card


def plain_value(value):
    """A table cell as JSON takes it: numpy scalars as Python ones, NaN and inf as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def notebook_summary(tables: dict[str, pd.DataFrame], run_dir: str | Path,
                     boundary: dict[str, pd.DataFrame] | None = None,
                     headline: tuple[str, ...] = ("z_500", "t2m"),
                     forecasts: dict[str, xr.Dataset] | None = None) -> dict:
    """summary.json of notebook 04 (``key_figures`` first).

    ``tables`` maps each evaluated domain to its :func:`scores` table. Key figures, per domain,
    over the interior points (the forced boundary ring left out): the skill against
    persistence and against climatology averaged over variables at the first and the last
    lead time (``skill_vs_persistence_<domain>_<h>h``), whether the model beats persistence
    (skill > 0) at every lead for each ``headline`` variable
    (``beats_persistence_<domain>_<variable>``) and, for tables with intervals, whether the
    whole 95 % interval does (``beats_persistence_significantly_<domain>_<variable>``); then
    the domains the run never trained on
    (``unseen_domains``, comma-separated; forecasts of files made elsewhere, attr ``split``
    ``external``, are not unseen: their ``domains`` entry names the ``forecast_files``).
    Also: ``run`` (path, trained_on), ``scored_points`` (what the scores cover), ``domains``
    (unseen flag, variables, lead hours and, with ``forecasts`` (each domain's
    :func:`forecast`), ``scoring``: :func:`scoring_note`, the
    points scored and the normalisation), ``scores`` (every row of every table, with its
    domain and region: model and each baseline, per variable and lead) and, when given,
    ``boundary`` (:func:`boundary_skill` rows per LAM domain; then also the boundary band's
    skill with its interval: :func:`workbench.boundary_band.summary_part`). Skill rows carry
    ``ci_low``, ``ci_high`` and ``significant`` (:func:`scores`). Non-finite numbers are written
    as null.
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    trained_on = [d["name"] for d in config.sampling["domains"]]
    key_figures: dict = {}
    for domain, table in tables.items():
        table = interior(table)
        leads = sorted(table["lead_hours"].unique())
        for ref in ("persistence", "climatology"):
            rows = table[(table["forecast"] == "model") & (table["metric"] == f"skill_vs_{ref}")]
            for lead in dict.fromkeys((leads[0], leads[-1])):
                key_figures[f"skill_vs_{ref}_{domain}_{lead:g}h"] = plain_value(
                    float(rows[rows["lead_hours"] == lead]["value"].mean()))
    for domain, table in tables.items():
        card = scorecard(table)
        for name in headline:
            if name in card.index:
                key_figures[f"beats_persistence_{domain}_{name}"] = bool(
                    (card.loc[name] > 0).all())
                if "ci_low" in table:  # the whole 95 % interval above 0 at every lead
                    low = scorecard(table, column="ci_low")
                    key_figures[f"beats_persistence_significantly_{domain}_{name}"] = bool(
                        (low.loc[name] > 0).all())
    external = {d: fc.attrs.get("forecast_files") for d, fc in (forecasts or {}).items()
                if fc.attrs.get("split") == "external"}  # files made elsewhere: not the run's
    unseen = [d for d in tables if d not in trained_on and d not in external]
    band_figures, bands = summary_part(forecasts or {}, boundary or {}, tuple(
        config.sampling["splits"]["train"]))  # the boundary band's skill with its interval
    key_figures |= band_figures
    key_figures["unseen_domains"] = ", ".join(unseen)
    records = []
    for domain, table in tables.items():
        for row in table.to_dict("records"):
            records.append({"domain": domain, **{k: plain_value(v) for k, v in row.items()}})
    summary = {
        "key_figures": key_figures,
        "run": {"run_dir": str(run_dir), "name": config.name, "trained_on": trained_on},
        "scored_points": ("key figures and scores of region interior: every point but those "
                          "forced from the truth (a LAM's boundary ring, skill 1 by "
                          "construction), which are scored apart as region forced_ring"),
        "domains": {d: {"unseen": d in unseen, **({"forecast_files": external[d]}
                                                  if d in external else {}),
                        "variables": list(dict.fromkeys(t["variable"])),
                        "lead_hours": [float(h) for h in sorted(t["lead_hours"].unique())]}
                    for d, t in tables.items()},
        "unseen_domains": unseen,
        "scores": records,
        "boundary_band": bands,  # :mod:`workbench.boundary_band` per domain with a boundary
    }
    for domain, fc in (forecasts or {}).items():
        if domain in summary["domains"]:
            summary["domains"][domain]["scoring"] = scoring_note(fc)
    if boundary is not None:
        summary["boundary"] = [
            {"domain": d, **{k: plain_value(v) for k, v in row.items()}}
            for d, table in boundary.items() for row in table.to_dict("records")]
    return summary
