"""What an evaluation gives the model from the truth, and which points it scores because of it.

Normalisation. A domain the run trained on is normalised as in training: with its own
statistics over the training period. A domain the run never trained on (an *unseen* domain)
is normalised by default with the training domains' statistics (``normalise="training"``):
the model never saw the unseen domain's statistics, and computing them needs the unseen
domain's truth over the training period. ``normalise="own"`` uses the unseen domain's own
statistics instead; the forecast's attrs say which was used.

Scored points. On a LAM, training overwrites the outer ``boundary_cells`` ring from the truth
at every step (:func:`workbench.domain_graphs.domain_graph`'s ``boundary`` mask, which the
forecast carries as its ``forced`` coord): those points have skill 1 by construction. Scores
leave them out by default (region ``interior``) and report them apart (``forced_ring``).
Where the truth is missing (NaN: a masked point), or a baseline is undefined, no forecast is
scored (:func:`scored_points`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .errors import WorkbenchError
from .sampling import DomainData
from .sampling_config import DomainConfig, SamplingConfig
from .skill import align
from .statistics import VariableStats

NORMALISE = ("training", "own")


def pool_statistics(parts: Sequence[tuple[Mapping[str, VariableStats], float]]
                    ) -> dict[str, VariableStats]:
    """The statistics of several domains' values taken together: ``parts`` holds, per domain,
    its statistics and the number of values they were computed over (``n_d``).

    Why pooled and weighted by the number of values: the result is exactly the mean and
    (population) std that :func:`workbench.statistics.compute_statistics` would give over all
    the training domains' training-period values laid side by side, every value of every
    training domain counted once. No training domain is preferred (picking "the most similar"
    one would be a judgement about the unseen domain), and the numbers can be checked against
    a direct computation. With ``W = sum n_d``::

        mean = sum n_d mean_d / W
        std  = sqrt(sum n_d (std_d^2 + (mean_d - mean)^2) / W)
        min, max = the min of the mins, the max of the maxes
        diff_std = sqrt(sum n_d diff_std_d^2 / W)   (None when a domain has none)

    A variable missing from some parts is pooled over the parts that have it.
    """
    if not parts:
        raise WorkbenchError("pooling statistics needs at least one training domain")
    names = list(dict.fromkeys(name for stats, _ in parts for name in stats))
    pooled = {}
    for name in names:
        have = [(stats[name], float(n)) for stats, n in parts if name in stats]
        n = np.array([w for _, w in have])
        mean_d = np.array([s.mean for s, _ in have])
        std_d = np.array([s.std for s, _ in have])
        total = n.sum()
        mean = float((n * mean_d).sum() / total)
        var = float((n * (std_d ** 2 + (mean_d - mean) ** 2)).sum() / total)
        diffs = [s.diff_std for s, _ in have]
        diff_std = None if any(d is None for d in diffs) else float(
            np.sqrt((n * np.square(diffs)).sum() / total))
        pooled[name] = VariableStats(mean=mean, std=float(np.sqrt(max(var, 0.0))),
                                     min=min(s.min for s, _ in have),
                                     max=max(s.max for s, _ in have), diff_std=diff_std)
    return pooled


def training_statistics(sampling: SamplingConfig, cache=None) -> dict[str, VariableStats]:
    """:func:`pool_statistics` of the run's training domains, each weighted by its grid points
    times the time steps of its train split (the values its statistics cover), each domain's
    statistics the ones training normalised it with (:class:`DomainData`'s, from the cache)."""
    parts = []
    for domain in sampling.domains:
        data = DomainData(sampling, domain, None, cache)
        if "train" not in data.splits:
            raise WorkbenchError(f"training domain {domain.name!r} has no train split: its "
                                 "statistics cannot normalise an unseen domain")
        lo, hi = data.splits["train"]
        parts.append((data.stats, data.n_grid * (hi - lo + 1)))
    return pool_statistics(parts)


def check_normalise(normalise: str) -> None:
    """A one-line error unless ``normalise`` is one of :data:`NORMALISE`."""
    if normalise not in NORMALISE:
        raise WorkbenchError(f"evaluate: normalise must be one of {', '.join(NORMALISE)}, got "
                             f"{normalise!r}")


def evaluation_data(sampling: SamplingConfig, training: SamplingConfig, domain: DomainConfig,
                    normalise: str = "training", cache=None) -> tuple[DomainData, dict]:
    """The :class:`DomainData` to roll a run out on ``domain`` and how it is normalised.

    ``sampling`` is the run's sampling config with the evaluation's rollout, ``training`` the
    run's own (its domains are the training domains). Returns the data and a description:
    ``{"normalisation": "training" | "own", "normalisation_note": "..."}``.
    """
    check_normalise(normalise)
    trained = [d.name for d in training.domains]
    sampling = dataclasses.replace(sampling, domains=(domain,))
    if domain.name in trained:
        note = (f"{domain.name}'s own statistics over its train split, as in training (a "
                "training domain)")
        return DomainData(sampling, domain, None, cache), {
            "normalisation": normalise, "normalisation_note": note}
    if normalise == "own":
        note = (f"{domain.name}'s own statistics over the train split (an unseen domain: the "
                "model never saw them, and they come from this domain's truth)")
        return DomainData(sampling, domain, None, cache), {
            "normalisation": "own", "normalisation_note": note}
    stats = training_statistics(training, cache)
    note = (f"the training domains' statistics ({', '.join(trained)}) pooled, each weighted by "
            f"its grid points x train time steps (an unseen domain: not {domain.name}'s own)")
    return DomainData(sampling, domain, None, cache, stats=stats), {
        "normalisation": "training", "normalisation_note": note}


# --------------------------------------------------------------------------- scored points


REGIONS = ("interior", "forced_ring")


def forced_points(forecast_ds: xr.Dataset) -> np.ndarray:
    """bool per grid point: forced from the truth at every step (the forecast's ``forced``
    coord, written by :func:`workbench.evaluation.forecast`); none when it has no such coord."""
    if "forced" in forecast_ds.coords:
        return np.asarray(forecast_ds["forced"].values, dtype=bool)
    return np.zeros(forecast_ds.sizes["grid"], dtype=bool)


def scoring_note(forecast_ds: xr.Dataset) -> dict:
    """Which points the default scores cover and how the inputs were normalised: points
    (scored), forced_points, total_points, boundary_cells, a one-sentence ``note`` and the
    forecast's ``normalisation``/``normalisation_note`` (None when it does not say)."""
    forced = forced_points(forecast_ds)
    total, ring = int(forced.size), int(forced.sum())
    cells = forecast_ds.attrs.get("boundary_cells")
    if ring:
        width = f"{cells}-cell " if cells is not None else ""
        note = (f"{total - ring} of {total} points scored (interior): the {ring} points of the "
                f"{width}boundary ring forced from the truth at every step are left out and "
                "reported apart (region forced_ring)")
    else:
        note = f"all {total} points scored (none is forced from the truth)"
    return {"scored": "interior", "points": total - ring, "forced_points": ring,
            "total_points": total, "boundary_cells": cells, "note": note,
            "normalisation": forecast_ds.attrs.get("normalisation"),
            "normalisation_note": forecast_ds.attrs.get("normalisation_note")}


def scored_regions(forecast_ds: xr.Dataset, truth: xr.Dataset
                   ) -> list[tuple[str, np.ndarray | None]]:
    """(region, grid indices) to score: the interior (None: every point when none is forced),
    then the forced ring when there is one."""
    forced = forced_points(forecast_ds)
    if forced.size != truth.sizes["grid"]:
        raise WorkbenchError(f"forecast has {forced.size} grid points, truth "
                             f"{truth.sizes['grid']}: regrid the forecast onto the truth's grid")
    if not forced.any():
        return [(REGIONS[0], None)]
    if forced.all():
        raise WorkbenchError(f"every point of domain {forecast_ds.attrs.get('domain', '?')!r} "
                             "is forced from the truth: nothing to score; lower the run's "
                             "boundary_cells or evaluate a larger domain")
    return [(REGIONS[0], np.flatnonzero(~forced)), (REGIONS[1], np.flatnonzero(forced))]


def interior(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`workbench.evaluation.scores`' table that the default scores report (region
    ``interior``); a table without a ``region`` column as it is."""
    return table[table["region"] == REGIONS[0]] if "region" in table else table


def scored_points(forecasts: dict[str, xr.Dataset], truth: xr.Dataset) -> xr.Dataset | None:
    """Where :func:`workbench.evaluation.baselines`' forecasts are scored: bool per variable, dims (init_time,
    lead_time, grid), True where the truth is valid at the valid time and both baselines are
    defined (persistence: the truth valid at the init time; climatology: a valid value at that
    hour in the training period), the same points for the model and its references. None
    when every point is (the truth has no missing value)."""
    names = list(forecasts["model"].data_vars)
    parts = [align(forecasts["model"], truth),
             forecasts["persistence"][names], forecasts["climatology"][names]]
    valid = None
    for part in parts:
        ok = part.reset_coords(drop=True).notnull()
        valid = ok if valid is None else valid & ok
    return None if all(bool(valid[v].all()) for v in names) else valid


def check_scored(valid: xr.Dataset | None, forecast_ds: xr.Dataset) -> None:
    """One line when a variable has no point to score (its mask covers the domain)."""
    empty = [] if valid is None else [v for v in valid.data_vars if not bool(valid[v].any())]
    if empty:
        raise WorkbenchError(
            f"domain {forecast_ds.attrs.get('domain', '?')!r}: {', '.join(empty)} has no valid "
            f"point to score in the {forecast_ds.attrs.get('split', '')} split (missing in the "
            "truth, or without persistence or climatology, at every point, init and lead "
            "time); evaluate a domain or split where it has data")
