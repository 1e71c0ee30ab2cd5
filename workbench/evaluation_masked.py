"""Masked-step scores of ``bert`` and ``interpolation`` runs (AtmoRep's other tasks).

A masked run reconstructs steps hidden inside a window of ``input_steps + rollout`` steps.
:func:`reconstruct` gives every window of a split to the run's model with some steps masked,
as training masks them, and keeps what the model puts there, in physical units: dims
(init_time = the window's first step, lead_time = the step's offset inside the window, grid),
NaN where the step was given to the model. ``interpolation``: the middle ``rollout - 1`` steps
(:func:`workbench.tasks.interpolation_mask`). ``bert``: tokens (time step, patch, variable) drawn
by :func:`workbench.tasks.bert_mask` at the run's ``total_rate`` (not randomised), every one
masked (no noising or multi-res), from a generator seeded by the window's index: the same
windows get the same masks on every call.

:func:`scores` compares the reconstruction with two baselines built from the truth at the
steps the model was given: ``interpolation``, linear in time between the nearest given states
before and after the masked step, and ``persistence``, the nearest given state before it.
RMSE, MAE and bias per variable and offset, skill ``1 - MSE / MSE(baseline)`` against both
with the 95 % block-bootstrap intervals of forecasts (:mod:`workbench.intervals`), the same
table as :func:`workbench.evaluation.scores` (``forecast``: model, interpolation,
persistence; ``lead_hours``: the offset in hours). Scored are the masked points where the
truth is valid and both baselines are defined (a first or last step has one side only: never
scored), area-weighted; on a LAM the ``boundary_cells`` ring that forecasts take from the
truth is left out (``interior``) and scored apart (``forced_ring``) as for forecasts, although
masked tasks do not force it (their ring rows are the model's own reconstruction).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from . import intervals, skill
from .errors import WorkbenchError
from .evaluation import SCORE_COLUMNS, area_weights, tidy_rows, truth_for
from .evaluation_inputs import REGIONS, forced_points, scored_regions
from .restore import forecast_inputs, run_config
from .sampling import MultiDomainDataset
from .tasks import apply_mask, bert_mask, interpolation_mask
from .times import step_text

MASKED_TASKS = ("bert", "interpolation")
FORECASTS = ("model", "interpolation", "persistence")
REFERENCES = FORECASTS[1:]


def is_masked_run(run_dir: str | Path) -> bool:
    """Whether the run trained a masked task (bert, interpolation), not forecasts."""
    return run_config(run_dir).task in MASKED_TASKS


def _window_mask(task: str, window: torch.Tensor, module, starts) -> torch.Tensor:
    """bool [B, T, V, G]: the masked values of each window (see the module docstring)."""
    if task == "interpolation":
        return interpolation_mask(tuple(window.shape), n_middle=module.rollout - 1)
    config = dataclasses.replace(module.config.masking, rate_masking=1.0, rate_noising=0.0,
                                 rate_multires=0.0, randomise_total=False)
    patches = module.graphs[0].patch_id
    masks = []
    for k, start in enumerate(starts):
        generator = torch.Generator().manual_seed(int(start))
        masks.append(bert_mask(window[k:k + 1], config, generator, patches)[1])
    return torch.cat(masks)


@torch.no_grad()
def reconstruct(run_dir: str | Path, domain: str, split: str = "test", graph: str | None = None,
                batch_size: int = 4, cache: str | Path | None = None, progress: bool = True,
                normalise: str = "training") -> xr.Dataset:
    """The masked steps of every window of ``split`` as the run's model fills them (physical
    units, NaN where the step was given), dims (init_time, lead_time, grid): init_time is the
    window's first step, lead_time the step's offset. Coord ``forced``: the LAM ring that
    forecasts take from the truth (:func:`scores` leaves it out of ``interior``)."""
    config = run_config(run_dir)
    if config.task not in MASKED_TASKS:
        raise WorkbenchError(f"run {run_dir} trained the {config.task!r} task: score it with "
                             "workbench.evaluation.scores (masked-step scores are for bert "
                             "and interpolation runs)")
    rollout = int(config.sampling.get("rollout", 1))
    inputs = forecast_inputs(run_dir, domain, split, rollout, 1, graph, normalise, cache,
                             tasks=MASKED_TASKS)
    data, module = inputs.data, inputs.module
    boundary = module.graphs[0].boundary
    forced = np.zeros(data.n_grid, bool) if boundary is None else boundary.numpy().astype(bool)
    dataset = MultiDomainDataset([data])
    starts = np.asarray(inputs.starts)
    outputs = []
    for i in tqdm(range(0, len(starts), batch_size), desc=f"reconstruct {domain}",
                  disable=not progress):
        chunk = starts[i:i + batch_size]
        batch = dataset.collate([dataset[(0, int(t))] for t in chunk])
        window = torch.cat([batch["x"], batch["y"][:, :rollout]], 1)
        mask = _window_mask(config.task, window, module, chunk)
        pred = module.domain_forward(apply_mask(window, mask),
                                     batch["forcings"][:, :window.shape[1]], batch["statics"],
                                     0, None, module.window_valid(batch))
        if not bool(torch.isfinite(pred[mask]).all()):
            raise WorkbenchError(f"run {inputs.restored.name} predicts non-finite values at "
                                 f"masked steps on {domain!r}: check its checkpoint")
        physical = data.normalisers["variables"].denormalise(pred)
        outputs.append(torch.where(mask, physical, torch.nan).numpy())
    values = np.concatenate(outputs)  # [N, T, V, G]
    offsets = pd.to_timedelta(np.arange(values.shape[1]) * data.step)
    coords = {"init_time": data.times[starts], "lead_time": offsets,
              "latitude": ("grid", data.ds["latitude"].values),
              "longitude": ("grid", data.ds["longitude"].values), "forced": ("grid", forced)}
    ds = xr.Dataset({name: (("init_time", "lead_time", "grid"),
                            values[:, :, v].astype(np.float32))
                     for v, name in enumerate(data.variables)}, coords=coords)
    ds.attrs.update({"domain": domain, "dataset": inputs.domain.dataset, "split": split,
                     "run": inputs.restored.name, "task": config.task,
                     "graph_id": module.graphs[0].graph_id,
                     "trained_on": ", ".join(d["name"] for d in config.sampling["domains"]),
                     "boundary_cells": int(config.boundary_cells),
                     "time_step": step_text(data.step), **inputs.normalisation})
    return ds


def baselines(recon: xr.Dataset, truth: xr.Dataset) -> dict[str, xr.Dataset]:
    """The model's reconstruction and the two baselines at its masked values (NaN elsewhere
    and where a baseline has no given state on its side): linear interpolation in time
    between the nearest given states before and after, and persistence of the one before."""
    target = skill.align(recon, truth)
    interpolated, persisted = {}, {}
    for name in recon.data_vars:
        y = np.asarray(target[name].values, np.float64)  # [N, T, G]
        masked = np.asarray(recon[name].notnull().values)
        steps = np.arange(y.shape[1])[None, :, None]
        before = np.maximum.accumulate(np.where(masked, -1, steps), axis=1)
        after = np.flip(np.minimum.accumulate(
            np.flip(np.where(masked, y.shape[1], steps), 1), axis=1), 1)
        has_before, has_after = before >= 0, after < y.shape[1]
        y_before = np.take_along_axis(y, np.where(has_before, before, 0), 1)
        y_after = np.take_along_axis(y, np.where(has_after, after, 0), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (steps - before) / (after - before)
        line = y_before + (y_after - y_before) * share
        dims = target[name].dims
        persisted[name] = (dims, np.where(masked & has_before, y_before, np.nan))
        interpolated[name] = (dims, np.where(masked & has_before & has_after, line, np.nan))
    coords = {c: recon[c] for c in ("init_time", "lead_time", "latitude", "longitude")
              if c in recon.coords}
    return {"model": recon, "interpolation": xr.Dataset(interpolated, coords=coords),
            "persistence": xr.Dataset(persisted, coords=coords)}


def scored_points(forecasts: dict[str, xr.Dataset], truth: xr.Dataset) -> xr.Dataset:
    """bool per variable (init_time, lead_time, grid): masked, the truth valid and both
    baselines defined, the same points for the model and its baselines."""
    valid = skill.align(forecasts["model"], truth).reset_coords(drop=True).notnull()
    for fc in forecasts.values():
        valid = valid & fc.reset_coords(drop=True).notnull()
    return valid


def scores(recon: xr.Dataset, truth: xr.Dataset,
           weights: xr.DataArray | None = None) -> pd.DataFrame:
    """RMSE, MAE and bias of the model, interpolation and persistence per region, variable
    and offset (``lead_hours``), and the model's ``skill_vs_interpolation`` and
    ``skill_vs_persistence`` with their 95 % intervals: the columns of
    :func:`workbench.evaluation.scores`. Offsets without a scored point are left out."""
    weights = area_weights(truth) if weights is None else weights
    forecasts = baselines(recon, truth)
    valid = scored_points(forecasts, truth)
    scored = valid.to_array().any(("variable", "init_time", "grid")).values
    empty = [v for v in valid.data_vars if not bool(valid[v].any())]
    if empty:
        raise WorkbenchError(f"domain {recon.attrs.get('domain', '?')!r}: {', '.join(empty)} "
                             "has no masked point with a valid truth and given states on both "
                             "sides to score; evaluate a split or domain where it has data")
    block = intervals.block_length(recon["init_time"].values, recon["lead_time"].values)
    keep = {"lead_time": np.flatnonzero(scored)}
    forecasts = {k: fc.isel(keep) for k, fc in forecasts.items()}
    valid = valid.isel(keep)
    rows = []
    for region, index in scored_regions(recon, truth):
        points = {"grid": slice(None) if index is None else index}
        part = {k: fc.isel(points) for k, fc in forecasts.items()}
        rows += [(region, *row) for row in _region_rows(
            part, truth.isel(points), weights.isel(points), valid.isel(points), block)]
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS[:-1])
    table["significant"] = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    return table


def _region_rows(forecasts: dict[str, xr.Dataset], truth: xr.Dataset, weights: xr.DataArray,
                 valid: xr.Dataset, block: int) -> list[tuple]:
    rows, errors = [], {}
    for name, fc in forecasts.items():
        errors[name], counted = intervals.per_init_mse(fc, truth, weights, valid)
        metric = {"rmse": np.sqrt(intervals.mean_over_inits(errors[name], counted)),
                  "mae": skill.mae(fc, truth, weights, valid),
                  "bias": skill.bias(fc, truth, weights, valid)}
        for key, ds in metric.items():
            rows += tidy_rows(ds, name, key)
    model_mse = intervals.mean_over_inits(errors["model"], counted)
    for ref in REFERENCES:
        ref_mse = intervals.mean_over_inits(errors[ref], counted)
        rows += tidy_rows(skill.skill_score(model_mse, ref_mse), "model", f"skill_vs_{ref}",
                      intervals.skill_intervals(errors["model"], errors[ref], counted, block))
    return rows


def scoring_note(recon: xr.Dataset) -> dict:
    """What :func:`scores` covers (the keys of :func:`workbench.evaluation.scoring_note`)."""
    ring = forced_points(recon)
    total, n_ring = int(ring.size), int(ring.sum())
    masked = ("the middle steps of every window" if recon.attrs.get("task") == "interpolation"
              else "tokens masked as in training (the run's total_rate, every one masked)")
    where = (f"{total - n_ring} of {total} points (interior; the {n_ring} points of the "
             f"{recon.attrs.get('boundary_cells')}-cell boundary ring, which forecasts take "
             "from the truth, are reported apart as region forced_ring)"
             if n_ring else f"all {total} points")
    return {"scored": "interior", "points": total - n_ring, "forced_points": n_ring,
            "total_points": total, "boundary_cells": recon.attrs.get("boundary_cells"),
            "note": f"{recon.attrs.get('task')} run: {masked} scored on {where}, against "
                    "linear interpolation and persistence of the given steps",
            "normalisation": recon.attrs.get("normalisation"),
            "normalisation_note": recon.attrs.get("normalisation_note")}


# ---- notebook 04 and the CLI


def notebook_scores(run_dir: str | Path, domains: list[str], split: str = "test",
                    normalise: str = "training") -> dict[str, pd.DataFrame]:
    """Notebook 04's masked-step tables per domain; empty (with a line saying so) for a
    forecast run, which the rest of the notebook scores."""
    if not is_masked_run(run_dir):
        print("a forecast run: masked-step scores apply to bert and interpolation runs")
        return {}
    tables = {}
    for domain in domains:
        recon = reconstruct(run_dir, domain, split, progress=False, normalise=normalise)
        tables[domain] = scores(recon, truth_for(recon).load())
        print(f"{domain}: {recon.sizes['init_time']} windows; {scoring_note(recon)['note']}")
    return tables


def skill_table(tables: dict[str, pd.DataFrame], region: str = REGIONS[0]) -> pd.DataFrame:
    """The model's skill against both baselines with its interval, per domain, variable and
    offset (``lead_hours``): ``value [ci_low, ci_high]`` and ``*`` where it excludes 0."""
    parts = {}
    for domain, table in tables.items():
        rows = table[(table.region == region) & table.metric.str.startswith("skill_vs_")]
        cells = [f"{v:.3g} [{lo:.3g}, {hi:.3g}]{'*' if sig else ''}" for v, lo, hi, sig in
                 zip(rows.value, rows.ci_low, rows.ci_high, rows.significant, strict=True)]
        parts[domain] = rows.assign(cell=cells).pivot(
            index=["variable", "lead_hours"], columns="metric", values="cell")
    return pd.concat(parts, names=["domain"])


def skill_vs_offset(tables: dict[str, pd.DataFrame], variables: list[str],
                    region: str = REGIONS[0]):
    """One row of panels per baseline, one line per domain and variable: the model's skill
    against the baseline by offset inside the window, its 95 % interval shaded."""
    fig, axes = plt.subplots(1, len(REFERENCES), figsize=(5.2 * len(REFERENCES), 3.6), dpi=80,
                             squeeze=False)
    for ax, ref in zip(axes[0], REFERENCES, strict=True):
        for domain, table in tables.items():
            rows = table[(table.region == region) & (table.metric == f"skill_vs_{ref}")]
            for name in variables:
                line = rows[rows.variable == name].sort_values("lead_hours")
                if line.empty:
                    continue
                ax.plot(line.lead_hours, line.value, marker="o", label=f"{domain} {name}")
                ax.fill_between(line.lead_hours, line.ci_low, line.ci_high, alpha=0.2)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set(xlabel="offset inside the window (h)", ylabel=f"skill vs {ref}",
               title=f"masked steps: skill vs {ref}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def with_masked(summary: dict, tables: dict[str, pd.DataFrame]) -> dict:
    """Notebook 04's summary with the masked-step scores of a masked run (``masked_scores``:
    every row with its domain; key figures ``masked_skill_vs_<baseline>_<domain>``, the mean
    interior skill over variables and offsets)."""
    if not tables:
        return summary
    from .evaluation import plain_value

    for domain, table in tables.items():
        for ref in REFERENCES:
            rows = table[(table.region == REGIONS[0]) & (table.metric == f"skill_vs_{ref}")]
            summary["key_figures"][f"masked_skill_vs_{ref}_{domain}"] = plain_value(
                float(rows.value.mean()))
    summary["masked_scores"] = [{"domain": d, **{k: plain_value(v) for k, v in row.items()}}
                                for d, t in tables.items() for row in t.to_dict("records")]
    return summary


def cli_report(args) -> dict | str:
    """``workbench evaluate RUN --domain D`` of a masked run: the ``--json`` mapping, or the
    text to print. Options of forecast runs only (--steps, --members, --format,
    --train-period) are a one-line error."""
    from .evaluation import plain_value

    given = [option for option, value in (
        ("--steps", args.steps), ("--members", args.members), ("--format", args.format),
        ("--train-period", args.train_period)) if value is not None]
    if given:
        raise WorkbenchError(f"evaluate: {args.run_dir} trained the "
                             f"{run_config(args.run_dir).task!r} task and is scored on its "
                             f"masked steps: {', '.join(given)} "
                             f"{'applies' if len(given) == 1 else 'apply'} to forecast runs; "
                             f"leave {'it' if len(given) == 1 else 'them'} out")
    split = args.split or "test"
    recon = reconstruct(args.run_dir, args.domain, split, args.graph, cache=args.cache,
                        progress=not args.json, normalise=args.normalise or "training")
    table = scores(recon, truth_for(recon, args.cache))
    note = scoring_note(recon)
    if args.json:  # as evaluate's: the interval columns on the skill rows only
        records = [{k: plain_value(v) for k, v in row.items()
                    if k not in ("ci_low", "ci_high", "significant")
                    or row["metric"].startswith("skill_vs_")} for row in table.to_dict("records")]
        return {"run": str(args.run_dir), "task": recon.attrs["task"], "domain": args.domain,
                "split": split, "scoring": note, "scores": records}
    rows = table[table.region == REGIONS[0]]
    rmse = rows[rows.metric == "rmse"].pivot_table(index=["variable", "lead_hours"],
                                                   columns="forecast", values="value")
    return (f"scored: {note['note']}\nnormalised with {note['normalisation_note']}\n"
            "RMSE of the masked steps (lead_hours: the offset inside the window)\n"
            f"{rmse.to_string(float_format=lambda v: f'{v:.4g}')}\n\nskill with its 95 % "
            "interval (block bootstrap over windows; * excludes 0)\n"
            f"{skill_table({args.domain: table}).droplevel('domain').to_string()}")
