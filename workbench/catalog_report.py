"""Notebook 00 (catalog tour): the datasets as one table, a dataset's variables as another,
and the tour's summary.json."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from .catalog import describe
from .times import iso


def summary_table(datasets: Mapping[str, xr.Dataset]):
    """One row per dataset: domain, grid, points, period, steps, variables (a DataFrame)."""
    rows = []
    for name, ds in datasets.items():
        times = ds["time"].values if "time" in ds.dims else None
        shape = ds.attrs.get("grid_shape")
        rows.append({
            "dataset": name,
            "domain": ds.attrs.get("domain"),
            "grid": ds.attrs.get("grid_kind"),
            "shape": "x".join(str(s) for s in shape) if shape else "-",
            "points": int(ds.sizes["grid"]),
            "start": iso(times[0]) if times is not None else None,
            "end": iso(times[-1]) if times is not None else None,
            "steps": len(times) if times is not None else 0,
            "variables": ", ".join(ds.data_vars),
        })
    return pd.DataFrame(rows).set_index("dataset")


def describe_table(ds: xr.Dataset):
    """One row per variable: units, dims, missing fraction, min, mean, max (a DataFrame)."""
    import dask

    stats = dask.compute(ds.isnull().mean(), ds.min(), ds.mean(), ds.max())
    missing, low, mean, high = (s.compute() if hasattr(s, "compute") else s for s in stats)
    rows = [
        {
            "variable": name,
            "units": var.attrs.get("units", ""),
            "dims": " x ".join(var.dims),
            "missing": float(missing[name]),
            "min": float(low[name]),
            "mean": float(mean[name]),
            "max": float(high[name]),
        }
        for name, var in ds.data_vars.items()
    ]
    return pd.DataFrame(rows).set_index("variable")


def tour_summary(datasets: Mapping[str, xr.Dataset], variable: str, time_index: int = 0) -> dict:
    """Key figures of the catalog tour: per dataset its description and the mapped field's stats."""
    per_dataset = {}
    for name, ds in datasets.items():
        info = describe(ds)
        field = ds[variable].isel(time=time_index) if "time" in ds[variable].dims else ds[variable]
        values = field.values
        info["mapped"] = {
            "variable": variable,
            "time_index": time_index,
            "min": float(np.nanmin(values)),
            "mean": float(np.nanmean(values)),
            "max": float(np.nanmax(values)),
        }
        per_dataset[name] = info
    return {
        "datasets": per_dataset,
        "key_figures": {
            "datasets": len(datasets),
            "grid_points": sum(d["grid_points"] for d in per_dataset.values()),
            **{f"{name}_{variable}_mean": d["mapped"]["mean"] for name, d in per_dataset.items()},
        },
    }
