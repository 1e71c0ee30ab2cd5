"""95 % intervals of skill scores: a circular block bootstrap over initial times.

A skill score ``1 - mean(model MSE) / mean(reference MSE)`` averages per-initial-time errors
that are serially correlated (forecasts from consecutive initial times share valid times
whenever the lead time exceeds the spacing of the initial times). The interval resamples whole
blocks of consecutive initial times (circular blocks: a block running off the end wraps to the
start), the same indices for the model and the reference so the pairing is kept, and takes the
2.5 and 97.5 percentiles of the ``resamples`` replicate scores. Block length
(:func:`block_length`): the longest lead in initial-time steps, at least ``ceil(n^(1/3))``,
at most ``n``. The generator is seeded (``SEED``): the same inputs give the same interval.
:func:`difference_interval` compares two runs scored on the same initial times the same way.
:func:`mean_difference_interval` averages that difference over the variables, one bootstrap
for all of them.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from . import skill
from .errors import WorkbenchError
from .times import to_ns

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
_CHUNK = 4_000_000  # values per resampled block of replicates


def block_length(init_times, lead_times) -> int:
    """Initial times per bootstrap block: ``ceil(longest lead / median initial-time step)``
    (errors of forecasts that overlap in valid time are correlated), at least
    ``ceil(n^(1/3))`` (the usual rate for a block bootstrap of a mean), at most ``n``."""
    n = len(init_times)
    if n <= 1:
        return 1
    step = float(np.median(np.diff(np.sort(to_ns(init_times)))))
    lead = float(np.max(np.asarray(lead_times).astype("timedelta64[ns]").astype(np.int64)))
    overlap = math.ceil(lead / step) if step > 0 else 1
    return int(min(n, max(overlap, math.ceil(n ** (1 / 3)), 1)))


def block_indices(n: int, block: int, resamples: int = RESAMPLES,
                  seed: int = SEED) -> np.ndarray:
    """[resamples, n] initial-time indices: ``ceil(n / block)`` circular blocks of
    ``block`` consecutive indices from uniformly drawn starts, joined and cut to ``n``."""
    rng = np.random.default_rng(seed)
    count = math.ceil(n / block)
    starts = rng.integers(0, n, size=(resamples, count))
    idx = (starts[:, :, None] + np.arange(block)) % n
    return idx.reshape(resamples, count * block)[:, :n]


def _mean(x: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Mean over axis -2 (initial times) of the counted values; NaN where none is counted, a
    NaN among the counted values propagates (as :func:`skill.mse`)."""
    total = counted.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted, x, 0.0).sum(axis=-2) / np.where(total > 0, total, np.nan)


def _skill(model: np.ndarray, reference: np.ndarray, counted: np.ndarray) -> np.ndarray:
    return 1 - _mean(model, counted) / _mean(reference, counted)


def _difference(a: np.ndarray, b: np.ndarray, reference: np.ndarray,
                counted: np.ndarray) -> np.ndarray:
    return _skill(a, reference, counted) - _skill(b, reference, counted)


def _interval(statistic, errors: list, counted: np.ndarray | None, block: int, resamples: int,
              seed: int, level: float, reduce=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``statistic(*errors, counted)`` over all initial times and its ``level`` percentile
    interval over block-bootstrap replicates that resample the same initial times in every
    array; NaN bounds where fewer than two initial times are counted. ``reduce``: applied to
    the statistic of every replicate before the percentiles (e.g. the mean over axis 1), its
    results then of the shape after axis 1 (NaN bounds where any reduced value has too few)."""
    arrays = [np.asarray(e, np.float64) for e in errors]
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise WorkbenchError(f"per-initial-time errors of shapes {[a.shape for a in arrays]} "
                             "differ: score the same initial times, variables and leads")
    n = shape[0]
    counted = (np.ones(shape, bool) if counted is None
               else np.broadcast_to(np.asarray(counted, bool), shape))
    flat = [a.reshape(n, -1) for a in (*arrays, counted)]
    with np.errstate(invalid="ignore", divide="ignore"):
        point = statistic(*flat)
        idx = block_indices(n, block, resamples, seed)
        chunk = max(1, _CHUNK // max(flat[0].size, 1))  # bounded memory: [chunk, n, k]
        replicates = np.concatenate([statistic(*(a[i] for a in flat)) for i in
                                     (idx[s:s + chunk] for s in range(0, resamples, chunk))])
    few = flat[-1].sum(axis=0) < 2  # one initial time says nothing about the spread: NaN
    out = shape[1:]
    if reduce is not None:
        point, replicates, few = reduce(point), reduce(replicates), reduce(few) > 0
        out = shape[2:]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    low, high = np.where(few, np.nan, low), np.where(few, np.nan, high)
    return point.reshape(out), low.reshape(out), high.reshape(out)


def skill_interval(model: np.ndarray, reference: np.ndarray, counted: np.ndarray | None = None,
                   block: int = 1, resamples: int = RESAMPLES, seed: int = SEED,
                   level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point value, low and high of the skill score ``1 - mean(model) / mean(reference)``.

    ``model`` and ``reference``: per-initial-time MSEs, initial time on axis 0 (any trailing
    shape, e.g. lead times); ``counted``: where an initial time has a score (all when None).
    Returns three arrays of the trailing shape: the point value over all initial times and the
    ``level`` percentile interval over ``resamples`` block-bootstrap replicates
    (:func:`block_indices`, the same resampled initial times for model and reference); NaN
    bounds where fewer than two initial times are counted."""
    return _interval(_skill, [model, reference], counted, block, resamples, seed, level)


def difference_interval(model_a: np.ndarray, model_b: np.ndarray, reference: np.ndarray,
                        counted: np.ndarray | None = None, block: int = 1,
                        resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run against run: skill(a) - skill(b) against the same reference, with its interval
    from the same resampled initial times for a, b and the reference (both runs scored on
    the same initial times); arguments and results as :func:`skill_interval`."""
    return _interval(_difference, [model_a, model_b, reference], counted, block, resamples,
                     seed, level)


def mean_difference_interval(model_a: np.ndarray, model_b: np.ndarray, reference: np.ndarray,
                             counted: np.ndarray | None = None, block: int = 1,
                             resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run against run over several variables at once: the mean over axis 1 (variables) of
    skill(a) - skill(b), with its interval from ONE block bootstrap that resamples the same
    initial times for every variable, both runs and the reference. Arrays [init, variable,
    ...] as :func:`difference_interval`'s; results of the shape after axis 1 (lead times)."""
    variables = np.shape(model_a)[1]

    def over_variables(x: np.ndarray) -> np.ndarray:  # [..., variable * rest] -> [..., rest]
        return x.reshape(*x.shape[:-1], variables, -1).mean(axis=-2)

    return _interval(_difference, [model_a, model_b, reference], counted, block, resamples,
                     seed, level, reduce=over_variables)


def per_init_mse(forecast: xr.Dataset, truth: xr.Dataset, weights: xr.DataArray,
                 valid=None) -> tuple[xr.Dataset, xr.Dataset | None]:
    """The area-weighted MSE per initial time (dims init_time, lead_time) and where an
    initial time has scored points (None: everywhere); :func:`skill.mse` is its mean over the
    counted initial times (:func:`mean_over_inits`)."""
    f, y, valid = skill._pair(forecast, truth, valid)
    counted = None if valid is None else valid.any(skill.GRID)
    return skill._area_mean((f - y) ** 2, weights, valid), counted


def mean_over_inits(per_init: xr.Dataset, counted: xr.Dataset | None) -> xr.Dataset:
    """:func:`skill.mse` from :func:`per_init_mse`'s output: the same operations, the same
    numbers."""
    return skill._init_mean(per_init, counted)


def skill_intervals(model: xr.Dataset, reference: xr.Dataset, counted: xr.Dataset | None,
                    block: int, resamples: int = RESAMPLES,
                    seed: int = SEED) -> tuple[xr.Dataset, xr.Dataset]:
    """Low and high of :func:`skill_interval` per variable and lead time from
    :func:`per_init_mse` outputs (dims init_time, lead_time)."""
    lows, highs = {}, {}
    for name in model.data_vars:
        m = model[name].transpose(skill.INIT, ...)
        r = reference[name].transpose(*m.dims)
        c = None if counted is None else counted[name].transpose(*m.dims).values
        _, low, high = skill_interval(m.values, r.values, c, block, resamples, seed)
        dims, coords = m.dims[1:], {d: m[d].values for d in m.dims[1:]}
        lows[name] = xr.DataArray(low, dims=dims, coords=coords)
        highs[name] = xr.DataArray(high, dims=dims, coords=coords)
    return xr.Dataset(lows), xr.Dataset(highs)
