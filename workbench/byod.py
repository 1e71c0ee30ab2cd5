"""Bring your own data: the configs that take any catalog dataset through notebooks 01-04.

Given a catalog name (and the variables to forecast), each function makes one config from
the dataset itself and writes it once into ``<cache>/byod/`` as YAML named by its content
(:func:`workbench.cachelock.create_once`), so every notebook and process that asks gets the
same file: notebooks 01 and 03 the same graph config, and training caches that graph once.

- :func:`graph_config`: data nodes on the dataset's grid; hidden nodes refined to suit its
  spacing (a global grid: the icosahedral multi-mesh with at most a quarter as many nodes;
  a structured limited area: its 2 x 2 block centres); a ``reversed_knn`` encoder (every data
  node sends to its 3 nearest hidden nodes, so none hangs) and a ``knn`` decoder (every data
  node hears its 3 nearest).
- :func:`sampling_config`: train/val/test as 70/15/15 % of the dataset's own time steps, in
  its calendar and at its step (validation and test hold at least one window of an input and
  :data:`LEAD_STEPS` leads); computed forcings (local time, day of the year, solar zenith
  angle) so any dataset has a time-of-day signal; its static fields as statics.
- :func:`pipeline_config`: notebook 02's tiling and bin-norm over whole-domain windows.
- :func:`training_config`: a small model and a short run.

Each takes ``otherwise``: what to return unchanged when ``dataset`` is empty (a notebook's
preset), so a notebook cell is one call.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import catalog, grids, meshes
from .cachelock import create_once
from .config import dump_yaml
from .errors import WorkbenchError
from .times import iso

FORCINGS = ("cos_local_time", "sin_local_time", "cos_julian_day", "sin_julian_day",
            "cos_solar_zenith_angle")
FRACTIONS = (0.7, 0.15, 0.15)  # train, val, test: shares of the dataset's time steps
LEAD_STEPS = 4  # validation rollout and notebook 04's lead steps
MESH_RATIO = 4  # at most 1/4 as many hidden nodes as data points (twice their spacing)
MAX_LEVEL = 6  # the finest icosahedral level (40,962 nodes)
TP_SCALING = {"transform": "log1p", "unit": 0.001, "scale": 1.0}  # precipitation in m


def _written(kind: str, dataset: str, config: dict, cache: str | Path | None) -> Path:
    """``config`` as YAML in ``<cache>/byod/<kind>-<dataset>-<content hash>.yaml``, written
    once (atomically, under a lock); its path."""
    text = dump_yaml(config)
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
    target = catalog.cache_dir(cache) / "byod" / f"{kind}-{safe}-{digest}.yaml"
    return create_once(target, lambda tmp: tmp.write_text(text), f"{kind} config of {dataset!r}")


def _dataset(dataset: str):
    if not isinstance(dataset, str) or not dataset:
        raise WorkbenchError(f"bring your own data needs a catalog dataset name, got {dataset!r}; "
                             "e.g. -p dataset era5-1p5")
    return catalog.get_entry(dataset)


# --------------------------------------------------------------------------- graph


def spacing_km(grid: grids.Grid, limited_area: bool) -> float:
    """The grid's mean spacing: the square root of its area (the sphere, or a limited area's
    cells) per point."""
    area = (4 * np.pi * grids.EARTH_RADIUS_KM**2 if not limited_area
            else float(grids.area_weights(grid).sum()))
    return float(np.sqrt(area / grid.size))


def mesh_level(points: int) -> int:
    """The finest icosahedral level with at most ``points / MESH_RATIO`` nodes (1 to
    :data:`MAX_LEVEL`)."""
    level = 1
    while level < MAX_LEVEL and meshes.level_size(level + 1) * MESH_RATIO <= points:
        level += 1
    return level


def graph_dict(dataset: str) -> dict:
    """The graph config of ``dataset`` as plain values (see the module docstring)."""
    entry = _dataset(dataset)
    grid = catalog.entry_grid(entry)
    lam = catalog.is_limited_area(entry, grid)
    spacing = spacing_km(grid, lam)
    if not lam:
        hidden = {"kind": "icosahedral", "level": mesh_level(grid.size)}
        what = (f"icosahedral multi-mesh level {hidden['level']} "
                f"({meshes.level_size(hidden['level'])} nodes)")
    elif grid.shape is not None:
        hidden = {"kind": "coarsened", "factor": 2, "k": 6}
        what = "its 2 x 2 block centres"
    else:
        raise WorkbenchError(
            f"dataset {dataset!r} is a limited area of scattered points (no grid shape): "
            "bring-your-own-data graphs need a structured limited area or a global dataset; "
            "write a graph config (e.g. a stretched mesh over a global dataset)")
    return {
        "name": f"byod-{dataset}",
        "description": (f"made by workbench.byod for {dataset} ({grid.size} points about "
                        f"{spacing:.0f} km apart, {'limited area' if lam else 'global'}): "
                        f"hidden nodes {what}; no data node hangs"),
        "data": {"datasets": [dataset]},
        "hidden": hidden,
        "encoder": {"kind": "reversed_knn", "k": 3},  # each data node to its 3 nearest
        "processor": {"kind": "multiscale"},
        "decoder": {"kind": "knn", "k": 3},  # each data node from its 3 nearest
    }


def graph_config(dataset: str, otherwise: str | None = None,
                 cache: str | Path | None = None) -> str | Path | None:
    """The graph config YAML of ``dataset`` (written once into the cache), or ``otherwise``
    when ``dataset`` is empty."""
    if not dataset:
        return otherwise
    return _written("graph", dataset, graph_dict(dataset), cache)


# --------------------------------------------------------------------------- sampling


def _variables(ds, dataset: str, variables: Sequence[str] | None) -> list[str]:
    """The requested variables, checked against the dataset's time-varying ones (all of
    them when none are given)."""
    varying = [str(v) for v in ds.data_vars if "time" in ds[v].dims]
    chosen = list(variables or varying)
    wrong = [v for v in chosen if v not in varying]
    if wrong or not chosen:
        raise WorkbenchError(f"dataset {dataset!r} has no time-varying variable {wrong or ''} "
                             f"(it has {', '.join(varying) or 'none'}); fix -p variables")
    return chosen


def splits(times: np.ndarray, dataset: str, window: int = 1 + LEAD_STEPS) -> dict[str, list]:
    """Train, val and test as consecutive shares (:data:`FRACTIONS`) of ``times``, each
    [first, last] as ISO text in the data's calendar; val and test hold at least ``window``
    steps, train at least two windows."""
    n = len(times)
    held = max(window, int(round(FRACTIONS[1] * n)))
    if n - 2 * held < 2 * window:
        raise WorkbenchError(f"dataset {dataset!r} has {n} time steps; bring your own data needs "
                             f"at least {2 * held + 2 * window} (val and test {held} each, "
                             f"train two windows of an input and {window - 1} leads)")
    bounds = {"train": (0, n - 2 * held - 1), "val": (n - 2 * held, n - held - 1),
              "test": (n - held, n - 1)}
    return {name: [iso(times[a]), iso(times[b])] for name, (a, b) in bounds.items()}


def sampling_dict(dataset: str, variables: Sequence[str] | None = None,
                  cache: str | Path | None = None) -> dict:
    """The sampling config of ``dataset`` as plain values (see the module docstring)."""
    entry = _dataset(dataset)
    ds = catalog.open_dataset(entry, cache=cache)
    chosen = _variables(ds, dataset, variables)
    statics = [str(v) for v in ds.data_vars if "time" not in ds[v].dims]
    return {
        "name": f"byod-{dataset}",
        "domains": [{"name": dataset, "dataset": dataset,
                     "graph": str(graph_config(dataset, cache=cache))}],
        "splits": splits(ds["time"].values, dataset),
        "variables": chosen,
        "forcings": list(FORCINGS),
        "statics": statics,
        "input_steps": 1,
        "rollout": 1,
        "batch_size": 2,
        "seed": 0,
        "num_workers": 0,
        "fixed_scaling": {"tp": TP_SCALING} if "tp" in chosen else {},
    }


def sampling_config(dataset: str, variables: Sequence[str] | None = None,
                    otherwise: str | None = None, cache: str | Path | None = None):
    """The sampling config YAML of ``dataset`` (written once), or ``otherwise`` when
    ``dataset`` is empty."""
    if not dataset:
        return otherwise
    return _written("sampling", dataset, sampling_dict(dataset, variables, cache), cache)


def pipeline_config(dataset: str, variables: Sequence[str] | None = None,
                    otherwise: str | None = None, cache: str | Path | None = None):
    """Notebook 02's pipeline YAML for ``dataset``: every time step of the whole domain, kept
    while any value of the first variable is there, binned over 4 quantiles of its domain
    mean and re-balanced, normalised over the train split; or ``otherwise``."""
    if not dataset:
        return otherwise
    sampling = sampling_dict(dataset, variables, cache)
    chosen, train = sampling["variables"], sampling["splits"]["train"]
    config = {
        "description": f"made by workbench.byod for {dataset}: whole-domain windows, "
                       f"bin-norm over the domain mean of {chosen[0]}",
        "steps": [
            {"open": {"dataset": dataset}},
            {"tile": {"tile_size": None, "n_time_window": 1, "max_missing_fraction": 1.0,
                      "variables": chosen, "aggregate_variable": chosen[0],
                      "aggregate": "mean"}},
            {"bin_norm": {"n_bins": 4, "method": "equalize", "bin_edges": "quantile",
                          "seed": 0}},
            {"normalise": {"variables": chosen, "start": train[0], "end": train[1],
                           "fixed_scaling": sampling["fixed_scaling"]}},
            {"to_tensor": {"batch_size": 4, "variables": chosen}},
        ],
    }
    return _written("pipeline", dataset, config, cache)


# --------------------------------------------------------------------------- training


def training_dict(dataset: str, variables: Sequence[str] | None = None, max_steps: int = 200,
                  cache: str | Path | None = None) -> dict:
    """The training config of ``dataset`` as plain values: a small graph transformer, a short
    run validated every half of it over :data:`LEAD_STEPS` leads."""
    return {
        "name": f"byod-{dataset}",
        "sampling": sampling_dict(dataset, variables, cache),
        "model": {"processor": "transformer", "hidden_dim": 32, "processor_layers": 2,
                  "heads": 4, "mlp_ratio": 1.0},
        "task": "forecast",
        "loss": {"losses": ["mse"], "latitude_weighting": False},
        "optimizer": {"lr": 3.0e-3, "warmup_steps": min(20, max_steps // 10),
                      "schedule": "cosine"},
        "max_steps": int(max_steps),
        "val_rollout": LEAD_STEPS,
        "val_every": max(1, max_steps // 2),
        "val_batches": 8,
        "checkpoint_every": max(1, max_steps // 2),
        "boundary_cells": 2,
    }


def training_config(dataset: str, variables: Sequence[str] | None = None,
                    otherwise: str | None = None, max_steps: int | None = None,
                    cache: str | Path | None = None):
    """The training config YAML of ``dataset`` (written once; ``max_steps`` None or 0: 200),
    or ``otherwise`` when ``dataset`` is empty."""
    if not dataset:
        return otherwise
    return _written("training", dataset,
                    training_dict(dataset, variables, max_steps or 200, cache), cache)
