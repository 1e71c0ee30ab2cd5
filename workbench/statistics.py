"""Normalisation statistics and the normaliser built from them.

Statistics per dataset and variable over a period: mean, std, min, max, and the std of
one-step differences (tendencies), computed with dask in parallel (on a dask.distributed
cluster inside :func:`workbench.dask_cluster.dask_cluster`, one task per block of time steps:
:mod:`workbench.moments`) and stored as JSON in
``<cache>/statistics/`` under the dataset id and period, reused when present (computed once
under a lock when several processes ask; an unreadable file is computed again). A variable can
use a fixed scaling instead (``log1p`` for precipitation, or a fixed offset and scale).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import xarray as xr
from pydantic import Field

from .cachelock import create_once
from .config import typed
from .errors import WorkbenchError
from .times import iso, iso_list, parse_date


@dataclass(frozen=True)
class VariableStats:
    mean: float
    std: float
    min: float
    max: float
    diff_std: float | None  # std of one-step differences (None for statics)


@typed
@dataclass(frozen=True)
class FixedScaling:
    """y = (transform(x) - offset) / scale, transform "none" or "log1p" (of x / unit)."""

    transform: str = "none"
    offset: float = 0.0
    scale: Annotated[float, Field(gt=0)] = 1.0
    unit: Annotated[float, Field(gt=0)] = 1.0  # log1p acts on x / unit (0.001 m: mm of rain)

    def __post_init__(self):
        if self.transform not in ("none", "log1p"):
            raise WorkbenchError(f"fixed scaling transform {self.transform!r}: use none or log1p")
        if self.scale <= 0 or self.unit <= 0:
            raise WorkbenchError("fixed scaling needs scale > 0 and unit > 0")


def _period(ds: xr.Dataset, start: str | None, end: str | None) -> tuple[str, str]:
    """``start``..``end`` (default: the data's first and last time) as ISO text to the second,
    the dates read in the calendar of the data (2000-02-30 is a 360_day date)."""
    times = ds["time"].values
    lo = parse_date(start, times, f"statistics period --start {start}") if start else times[0]
    hi = parse_date(end, times, f"statistics period --end {end}") if end else times[-1]
    return iso(lo), iso(hi)


def compute_statistics(
    ds: xr.Dataset, variables: Sequence[str] | None = None,
    start: str | None = None, end: str | None = None,
) -> dict[str, VariableStats]:
    """Statistics of ``variables`` over ``start..end`` (NaN ignored), one dask pass. The
    dates the dataset's ``missing_dates`` attr lists (anemoi stores) count as NaN, so they
    are left out, and so is every one-step difference that touches one."""
    import dask

    from .dask_cluster import active_client
    from .moments import moments_on_cluster

    variables = list(variables or ds.data_vars)
    missing = [v for v in variables if v not in ds]
    if missing:
        raise WorkbenchError(f"statistics: variables {missing} are not in the dataset")
    lo, hi = _period(ds, start, end)
    window = ds[variables].sel(time=slice(lo, hi)) if "time" in ds.dims else ds[variables]
    if "time" in window.dims and window.sizes["time"] == 0:
        raise WorkbenchError(f"statistics: no time step between {lo} and {hi}; check the split dates")
    listed = ds.attrs.get("missing_dates") or []
    kept = None if not listed or "time" not in window.dims else xr.DataArray(
        ~np.isin(iso_list(window["time"].values), list(listed)), dims="time")
    client = active_client()
    on_cluster = [n for n in variables if client is not None and "time" in window[n].dims]
    lazy = {}
    for name in variables:
        var = window[name]
        if kept is not None and "time" in var.dims:
            var = var.where(kept)
        if name in on_cluster:
            continue
        lazy[name] = [var.mean(), var.std(), var.min(), var.max()]
        if "time" in var.dims and var.sizes["time"] > 1:
            lazy[name].append(var.diff("time").std())
    values = dask.compute(lazy)[0]
    if on_cluster:
        values.update(moments_on_cluster(client, window[on_cluster], kept))
    values = {name: values[name] for name in variables}
    stats = {}
    for name, numbers in values.items():
        numbers = [float(np.asarray(v)) for v in numbers]
        if not np.isfinite(numbers[0]):
            raise WorkbenchError(f"statistics: {name} is all NaN between {lo} and {hi}")
        stats[name] = VariableStats(*numbers[:4], numbers[4] if len(numbers) > 4 else None)
    return stats


def stats_path(dataset_id: str, start: str, end: str, variables: Sequence[str],
               cache: str | Path | None = None) -> Path:
    from .catalog import cache_dir

    digest = hashlib.sha1(",".join(sorted(variables)).encode()).hexdigest()[:8]
    safe = f"{dataset_id}__{start}__{end}__{digest}".replace(":", "")
    return cache_dir(cache) / "statistics" / f"{safe}.json"


def load_or_compute(
    ds: xr.Dataset, dataset_id: str, variables: Sequence[str] | None = None,
    start: str | None = None, end: str | None = None, cache: str | Path | None = None,
) -> dict[str, VariableStats]:
    """Statistics from the cache when present and readable, else computed and stored
    (once, under a lock, however many processes ask: :func:`workbench.cachelock.create_once`)."""
    variables = list(variables or ds.data_vars)
    lo, hi = _period(ds, start, end)
    source = ds.attrs.get("source_id")  # catalog datasets: what the values come from
    path = stats_path(f"{dataset_id}-{source}" if source else dataset_id, lo, hi, variables,
                      cache)

    def build(tmp: Path) -> None:
        stats = compute_statistics(ds, variables, lo, hi)
        record = {"dataset": dataset_id, "start": lo, "end": hi,
                  "variables": {k: asdict(v) for k, v in stats.items()}}
        tmp.write_text(json.dumps(record, indent=2))

    def damage(stored: Path) -> str | None:
        try:
            _read_stats(stored, variables)
        except (OSError, ValueError, TypeError, KeyError) as err:
            return f"unreadable: {type(err).__name__}"
        return None

    create_once(path, build, f"statistics of {dataset_id!r}", damage)
    return _read_stats(path, variables)


def _read_stats(path: Path, variables: Sequence[str]) -> dict[str, VariableStats]:
    """The stored statistics of ``variables`` (KeyError/ValueError where the file is bad)."""
    stored = json.loads(path.read_text())["variables"]
    return {name: VariableStats(**stored[name]) for name in variables}


# --------------------------------------------------------------------------- normaliser


class Normaliser:
    """Per-variable affine (or log1p) scaling of tensors shaped [..., variable, grid]."""

    def __init__(self, variables: Sequence[str], stats: Mapping[str, VariableStats],
                 fixed: Mapping[str, FixedScaling] | None = None):
        fixed = dict(fixed or {})
        self.variables = list(variables)
        self.log1p = torch.tensor([fixed.get(v, FixedScaling()).transform == "log1p"
                                   for v in self.variables])
        units, offsets, scales = [], [], []
        for name in self.variables:
            if name in fixed:
                f = fixed[name]
                units.append(f.unit)
                offsets.append(f.offset)
                scales.append(f.scale)
                continue
            if name not in stats:
                raise WorkbenchError(f"normaliser: no statistics for {name!r} and no fixed scaling")
            s = stats[name]
            if not s.std > 0:
                warnings.warn(f"{name} has zero variance: normalised as x - mean (std set to 1)",
                              stacklevel=2)
            units.append(1.0)
            offsets.append(s.mean)
            scales.append(s.std if s.std > 0 else 1.0)
        self.unit = torch.tensor(units, dtype=torch.float64)
        self.offset = torch.tensor(offsets, dtype=torch.float64)
        self.scale = torch.tensor(scales, dtype=torch.float64)
        self.tendency_scale = torch.tensor(
            [_tendency_scale(stats.get(name), name in fixed, scale)
             for name, scale in zip(self.variables, scales, strict=True)], dtype=torch.float64)

    def _shape(self, t: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return values.to(t.device, t.dtype).view(-1, 1)  # broadcast over [..., variable, grid]

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if bool(self.log1p.any()):  # else skip it: a 200 MB sample's clamp, log1p and where
            y = torch.where(self._shape(x, self.log1p.double()).bool(),
                            torch.log1p(torch.clamp(x / self._shape(x, self.unit), min=0)), x)
        return (y - self._shape(x, self.offset)).div_(self._shape(x, self.scale))  # one copy

    def denormalise(self, y: torch.Tensor) -> torch.Tensor:
        x = y * self._shape(y, self.scale) + self._shape(y, self.offset)
        return torch.where(self._shape(y, self.log1p.double()).bool(),
                           torch.expm1(x) * self._shape(y, self.unit), x)

    def next_state(self, last: torch.Tensor, tendency: torch.Tensor) -> torch.Tensor:
        """The normalised next state from the normalised ``last`` state and a normalised
        tendency (both [..., variable, grid]): in physical units ``last + tendency *
        diff_std``, computed as ``last + tendency * tendency_scale`` (exact persistence at a
        zero tendency)."""
        return last + tendency * self._shape(tendency, self.tendency_scale)

    def tendency(self, last: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The normalised tendency from the normalised ``last`` state to ``state``, the
        inverse of :meth:`next_state`: in physical units ``(state - last) / diff_std``."""
        return (state - last) / self._shape(state, self.tendency_scale)

    def state(self) -> dict:
        """Plain values (for run configs and checkpoints)."""
        return {"variables": self.variables, "offset": self.offset.tolist(),
                "scale": self.scale.tolist(), "unit": self.unit.tolist(),
                "log1p": self.log1p.tolist(), "tendency_scale": self.tendency_scale.tolist()}


def _tendency_scale(stats: VariableStats | None, fixed: bool, scale: float) -> float:
    """One normalised state unit per normalised tendency unit: ``diff_std / std`` (so that a
    tendency of 1 is one ``diff_std`` in physical units). A variable with a fixed scaling
    (log1p precipitation), or without a positive ``diff_std``, keeps 1: its tendency is its
    change in its normalised units, as in ``state`` output."""
    if fixed or stats is None or not (stats.diff_std or 0) > 0:
        return 1.0
    return stats.diff_std / scale
