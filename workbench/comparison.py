"""Run against run: does run A beat run B, and is the difference larger than chance?

Both runs forecast the same initial times of one domain's split (``evaluation.evaluate``,
cached forecast files); each is scored against the same reference forecast (persistence or
climatology) on the points both runs predicted (neither forced from the truth, truth and
both baselines valid). The difference of the two skill scores carries a 95 % interval from
one block bootstrap over initial times shared by A, B and the reference
(:func:`workbench.intervals.difference_interval`), so serial correlation and the common
weather of the two runs are both accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import evaluation, intervals, skill
from .errors import WorkbenchError
from .evaluation_inputs import check_scored, forced_points, scored_points

__all__ = ["COMPARISON_COLUMNS", "REFERENCES", "PairedErrors", "compare_forecasts",
           "compare_runs", "paired_errors"]

REFERENCES = ("persistence", "climatology")
COMPARISON_COLUMNS = ["variable", "lead_hours", "skill_a", "skill_b", "difference", "ci_low",
                      "ci_high", "significant"]


def compare_runs(run_a: str | Path, run_b: str | Path, domain: str, split: str = "test",
                 steps: int | None = None, reference: str = "persistence",
                 cache: str | Path | None = None, progress: bool = False) -> pd.DataFrame:
    """Forecast ``domain``'s ``split`` with both runs (``steps`` lead steps, default run A's
    ``val_rollout``) and compare them (:func:`compare_forecasts`); the climatology comes from
    run A's training period."""
    from .forecast_files import read_forecast

    fa = read_forecast(evaluation.evaluate(run_a, domain, split, steps, cache=cache,
                                           progress=progress))
    steps = fa.sizes["lead_time"]  # run B forecasts as far as run A (its own default may differ)
    fb = read_forecast(evaluation.evaluate(run_b, domain, split, steps, cache=cache,
                                           progress=progress))
    truth = evaluation.truth_for(fa, cache).load()
    train = tuple(evaluation.run_config(run_a).sampling["splits"]["train"])
    return compare_forecasts(fa, fb, truth, train, reference)


def compare_forecasts(forecast_a: xr.Dataset, forecast_b: xr.Dataset, truth: xr.Dataset,
                      train_period: tuple[str, str], reference: str = "persistence"
                      ) -> pd.DataFrame:
    """Skill of A and of B against ``reference``, their difference (A - B) with its 95 %
    interval, and ``significant`` (the interval excludes 0): one row per variable and lead
    time (:data:`COMPARISON_COLUMNS`). The forecasts must share initial times, lead times,
    grid and variables."""
    pair = paired_errors(forecast_a, forecast_b, truth, train_period, reference)
    skills = {k: pair.skill(k) for k in ("a", "b")}  # as evaluation.scores computes each run's
    rows = []
    for name in pair.a.data_vars:
        diff, low, high = intervals.difference_interval(*pair.arrays(name), pair.block)
        skill_a, skill_b = (np.atleast_1d(skills[k][name].values) for k in ("a", "b"))
        rows += [(name, float(h), float(sa), float(sb), float(d), float(lo), float(hi))
                 for h, sa, sb, d, lo, hi in zip(pair.lead_hours, skill_a, skill_b, diff, low,
                                                 high, strict=True)]
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:-1])
    table["significant"] = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    return table


@dataclass(frozen=True)
class PairedErrors:
    """Area-weighted MSEs per initial time (dims init_time, lead_time) of run A, run B and the
    reference on the points both runs predict, where an initial time counts (None: all), and
    the bootstrap's block length (:func:`workbench.intervals.block_length`)."""

    a: xr.Dataset
    b: xr.Dataset
    reference: xr.Dataset
    counted: xr.Dataset | None
    block: int
    lead_hours: np.ndarray

    def skill(self, run: str) -> xr.Dataset:
        """Run ``a``'s or ``b``'s skill per variable and lead time against the reference."""
        return skill.skill_score(intervals.mean_over_inits(getattr(self, run), self.counted),
                                 intervals.mean_over_inits(self.reference, self.counted))

    def arrays(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Variable ``name``'s errors of a, b and the reference and where they count: numpy
        [init, lead] (None: all), the arguments of the intervals functions."""
        errors = [ds[name].transpose(skill.INIT, ...).values
                  for ds in (self.a, self.b, self.reference)]
        where = None if self.counted is None else self.counted[name].transpose(
            skill.INIT, ...).values
        return (*errors, where)


def paired_errors(forecast_a: xr.Dataset, forecast_b: xr.Dataset, truth: xr.Dataset,
                  train_period: tuple[str, str], reference: str = "persistence") -> PairedErrors:
    """The per-initial-time errors :func:`compare_forecasts` compares: A, B and ``reference``
    on the points neither run forces from the truth, where the truth, both baselines and both
    runs are valid."""
    if reference not in REFERENCES:
        raise WorkbenchError(f"reference {reference!r} is not one of {', '.join(REFERENCES)}")
    _check_same_forecasts(forecast_a, forecast_b)
    keep = np.flatnonzero(~(forced_points(forecast_a) | forced_points(forecast_b)))
    if keep.size == 0:
        raise WorkbenchError("every point is forced from the truth in run A or run B: nothing "
                             "to compare; compare on a domain they predict")
    fa, fb, y = (ds.isel(grid=keep) for ds in (forecast_a, forecast_b, truth))
    weights = evaluation.area_weights(truth).isel(grid=keep)
    clim = skill.climatology(y, *train_period)
    first = evaluation.baselines(fa, y, clim)
    second = evaluation.baselines(fb, y, clim)["model"]
    valid = _both_valid(scored_points(first, y), scored_points({**first, "model": second}, y))
    check_scored(valid, forecast_a)
    errors = {}
    for name, fc in (("a", first["model"]), ("b", second), ("ref", first[reference])):
        errors[name], counted = intervals.per_init_mse(fc, y, weights, valid)
    block = intervals.block_length(fa["init_time"].values, fa["lead_time"].values)
    hours = fa["lead_time"].values / np.timedelta64(1, "h")
    return PairedErrors(errors["a"], errors["b"], errors["ref"], counted, block, hours)


def _both_valid(a: xr.Dataset | None, b: xr.Dataset | None) -> xr.Dataset | None:
    if a is None or b is None:
        return b if a is None else a
    return a & b


def _check_same_forecasts(a: xr.Dataset, b: xr.Dataset) -> None:
    """One line naming what differs where the two forecasts cannot be compared point by point."""
    for what, left, right in (
        ("initial times", a["init_time"].values, b["init_time"].values),
        ("lead times", a["lead_time"].values, b["lead_time"].values),
        ("grid points", a.sizes["grid"], b.sizes["grid"]),
        ("variables", sorted(a.data_vars), sorted(b.data_vars)),
    ):
        if not np.array_equal(np.asarray(left), np.asarray(right)):
            raise WorkbenchError(f"run A and run B differ in their {what}: compare runs on the "
                                 "same domain, split and --steps, trained on the same variables")
