"""Tiling indexes: LDCast's data preparation (seed 002); bin-norm sampling of the tiles is
:mod:`workbench.binnorm`.

``tile_index`` cuts a canonical dataset into space-time tiles (``tile_size`` cells by
``n_time_window`` steps), drops tiles with too much missing data and records, per tile,
an aggregate of one quantity (e.g. precipitation summed over the tile and window).
``bin_norm_sample`` bins the tiles by that aggregate and re-balances them, either to an
equal number of samples per bin or by importance sampling. Both write a CSV index,
``{tiling_id}.samples.csv`` and ``{sampling_id}.samples.csv``, atomically, with a small
``.meta.json`` sidecar, and reuse them when the same inputs ask again.

Tile statistics come from integral images (cumulative sums over y, x and time) computed
chunk-wise over time, so the cost does not grow with the number of (overlapping) tiles; on a
dask.distributed cluster (:mod:`workbench.dask_cluster`) one task per block of time steps.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .config import check_choice
from .errors import WorkbenchError
from .index_files import index_paths, inputs_fingerprint, read_csv, reusable, write_index
from .times import iso_list

AGGREGATES = ("sum", "mean")
TILE_COLUMNS = ("tile_id", "dataset", "t_index", "time", "j0", "i0", "ny", "nx", "n_time",
                "missing_fraction", "aggregate")
CHUNK_STEPS = 64  # time steps read at once ...
CHUNK_ELEMENTS = 2**24  # ... unless that many grid values per variable would be exceeded


def _pair(value, name: str) -> tuple[int, int] | None:
    """A (ny, nx) pair of positive ints from a tuple/list, or None."""
    if value is None:
        return None
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise WorkbenchError(f"{name}={value!r} must be two positive cell counts (ny, nx)")
    return pair


# --------------------------------------------------------------------------- tiling config


@dataclass(frozen=True)
class TilingConfig:
    """How to cut a dataset into space-time tiles (see the module docstring)."""

    tile_size: tuple[int, int] | None = None  # (ny, nx) cells; None = the whole domain
    n_time_window: int = 1  # consecutive time steps per tile
    stride: tuple[int, int] | None = None  # spatial stride; default = tile_size (no overlap)
    time_stride: int = 1
    max_missing_fraction: float = 0.1  # over window x tile x variables; more is dropped
    variables: tuple[str, ...] | None = None  # checked for NaN; default every time-varying one
    aggregate_variable: str | None = "tp"  # the quantity the sampler bins
    aggregate: str = "sum"  # "sum" | "mean" over tile and window, NaN ignored

    def __post_init__(self):
        set_ = object.__setattr__  # normalise YAML lists into tuples on a frozen dataclass
        set_(self, "tile_size", _pair(self.tile_size, "tile_size"))
        set_(self, "stride", _pair(self.stride, "stride"))
        if self.variables is not None:
            set_(self, "variables", tuple(self.variables))
            if not self.variables:
                raise WorkbenchError("variables=() checks nothing; give None for every "
                                     "time-varying variable or name at least one")
        if self.stride is not None and self.tile_size is None:
            raise WorkbenchError("stride needs a tile_size; whole-domain tiling (tile_size "
                                 "None) has one tile per time window")
        if int(self.n_time_window) < 1 or int(self.time_stride) < 1:
            raise WorkbenchError(f"n_time_window={self.n_time_window} and time_stride="
                                 f"{self.time_stride} must be at least 1")
        if not 0.0 <= float(self.max_missing_fraction) <= 1.0:
            raise WorkbenchError(f"max_missing_fraction={self.max_missing_fraction} must lie "
                                 "in [0, 1]")
        check_choice(self.aggregate, AGGREGATES, "aggregate")


def tiling_id(dataset_id: str, config: TilingConfig) -> str:
    """``{dataset_id}.{ny}x{nx}.{n_time_window}`` (``full`` for the whole domain), plus
    ``.s{sy}x{sx}`` / ``.t{time_stride}`` when the strides differ from the defaults."""
    if not dataset_id or os.sep in dataset_id:
        raise WorkbenchError(f"dataset_id {dataset_id!r} must be a non-empty name without "
                             f"{os.sep!r}; use the catalog name")
    size = "full" if config.tile_size is None else "{}x{}".format(*config.tile_size)
    parts = [dataset_id, size, str(config.n_time_window)]
    if config.stride is not None and config.stride != config.tile_size:
        parts.append("s{}x{}".format(*config.stride))
    if config.time_stride != 1:
        parts.append(f"t{config.time_stride}")
    return ".".join(parts)


# --------------------------------------------------------------------------- tiling layout


@dataclass(frozen=True)
class _Layout:
    """Where the tiles sit: domain shape, tile shape, tile corners and window starts."""

    shape: tuple[int, int]
    tile: tuple[int, int]
    j0: np.ndarray
    i0: np.ndarray
    starts: np.ndarray
    n_time: int


def _domain_shape(ds: xr.Dataset, config: TilingConfig, dataset_id: str) -> tuple[int, int]:
    shape = ds.attrs.get("grid_shape")
    n_grid = int(ds.sizes["grid"])
    if shape is None:
        if config.tile_size is not None:
            raise WorkbenchError(f"dataset {dataset_id!r} has no grid_shape attribute (not a "
                                 "structured grid); tile it with tile_size=None")
        return (1, n_grid)
    ny, nx = (int(s) for s in shape)
    if ny * nx != n_grid:
        raise WorkbenchError(f"dataset {dataset_id!r}: grid_shape {ny}x{nx} does not match its "
                             f"{n_grid} grid points; fix the grid_shape attribute")
    return (ny, nx)


def _layout(ds: xr.Dataset, config: TilingConfig, dataset_id: str) -> _Layout:
    if "time" not in ds.dims or "grid" not in ds.dims:
        raise WorkbenchError(f"dataset {dataset_id!r} needs dims time and grid (canonical "
                             "layout); open it with catalog.open_dataset")
    ny, nx = _domain_shape(ds, config, dataset_id)
    ty, tx = config.tile_size or (ny, nx)
    if ty > ny or tx > nx:
        raise WorkbenchError(f"tile_size {ty}x{tx} is larger than the {dataset_id!r} domain "
                             f"{ny}x{nx}; pick a tile_size of at most {ny}x{nx}")
    n_steps, window = int(ds.sizes["time"]), int(config.n_time_window)
    if window > n_steps:
        raise WorkbenchError(f"n_time_window={window} is longer than the {n_steps} time steps "
                             f"of {dataset_id!r}; use at most {n_steps} or a longer period")
    sy, sx = config.stride or (ty, tx)
    return _Layout(
        shape=(ny, nx),
        tile=(ty, tx),
        j0=np.arange(0, ny - ty + 1, sy),
        i0=np.arange(0, nx - tx + 1, sx),
        starts=np.arange(0, n_steps - window + 1, int(config.time_stride)),
        n_time=window,
    )


def _checked_variables(ds: xr.Dataset, config: TilingConfig, dataset_id: str) -> list[str]:
    """The variables whose NaN count toward missing_fraction; the aggregate variable checked."""
    names = list(config.variables or [v for v in ds.data_vars if "time" in ds[v].dims])
    wanted = names + ([config.aggregate_variable] if config.aggregate_variable else [])
    for name in wanted:
        if name not in ds.data_vars:
            raise WorkbenchError(f"variable {name!r} is not in dataset {dataset_id!r} (has "
                                 f"{', '.join(map(str, ds.data_vars))}); fix variables / "
                                 "aggregate_variable")
        if not set(ds[name].dims) <= {"time", "grid"}:
            raise WorkbenchError(f"variable {name!r} of {dataset_id!r} has dims "
                                 f"{ds[name].dims}; select one member first, e.g. "
                                 "ds.isel(ensemble=0)")
    if config.aggregate_variable and "time" not in ds[config.aggregate_variable].dims:
        raise WorkbenchError(f"aggregate_variable {config.aggregate_variable!r} has no time "
                             "dimension; pick a time-varying variable")
    if not names:
        raise WorkbenchError(f"dataset {dataset_id!r} has no time-varying variable to tile")
    return names


# --------------------------------------------------------------------------- integral images


def _integral(values: np.ndarray) -> np.ndarray:
    """2-D integral images of (T, ny, nx) values, shape (T, ny + 1, nx + 1), zero-padded."""
    dtype = np.float64 if values.dtype.kind == "f" else np.int64
    out = np.zeros((values.shape[0], values.shape[1] + 1, values.shape[2] + 1), dtype)
    np.cumsum(values, axis=1, dtype=dtype, out=out[:, 1:, 1:])
    np.cumsum(out[:, 1:, 1:], axis=2, out=out[:, 1:, 1:])
    return out


def _box_sums(values: np.ndarray, layout: _Layout) -> np.ndarray:
    """Sums of (T, ny, nx) values over every tile, shape (T, n_j, n_i)."""
    table = _integral(values)
    ty, tx = layout.tile
    j0, i0 = layout.j0[:, None], layout.i0[None, :]
    j1, i1 = j0 + ty, i0 + tx
    return table[:, j1, i1] - table[:, j0, i1] - table[:, j1, i0] + table[:, j0, i0]


def _window_sums(per_step: np.ndarray, layout: _Layout) -> np.ndarray:
    """Sums over each time window of per-step tile sums: (n_steps, ...) -> (n_windows, ...)."""
    cumulative = np.zeros((per_step.shape[0] + 1,) + per_step.shape[1:], per_step.dtype)
    np.cumsum(per_step, axis=0, out=cumulative[1:])
    return cumulative[layout.starts + layout.n_time] - cumulative[layout.starts]


def _chunks(n_steps: int, n_grid: int) -> list[slice]:
    step = max(1, min(CHUNK_STEPS, CHUNK_ELEMENTS // max(n_grid, 1)))
    return [slice(a, min(a + step, n_steps)) for a in range(0, n_steps, step)]


def _read(block: xr.Dataset, name: str, n_time: int, shape: tuple[int, int]) -> np.ndarray:
    """One variable of a loaded time block as (T, ny, nx); statics repeated over time."""
    values = np.asarray(block[name].transpose(..., "grid").values)
    if "time" not in block[name].dims:
        values = np.broadcast_to(values, (n_time, values.size))
    return values.reshape((n_time,) + shape)


def _block_sums(
    block: xr.Dataset, layout: _Layout, variables: list[str], aggregate_variable: str | None,
) -> dict[str, np.ndarray]:
    """Per time step of one block of time steps, and per tile: NaN count over ``variables``;
    sum, valid and non-zero counts of the aggregate variable (each (T, n_j, n_i)). A lazy
    block is read one variable at a time."""
    n_time = int(block.sizes["time"])
    missing = np.zeros((n_time,) + layout.shape, np.int32)
    for name in variables:
        missing += np.isnan(_read(block, name, n_time, layout.shape))
    sums = {"missing": _box_sums(missing, layout)}
    if aggregate_variable:
        values = _read(block, aggregate_variable, n_time, layout.shape)
        valid = ~np.isnan(values)
        sums["sum"] = _box_sums(np.where(valid, values, 0).astype(np.float64), layout)
        sums["valid"] = _box_sums(valid, layout)
        sums["nonzero"] = _box_sums(valid & (values != 0), layout)
    return sums


def _per_step_sums(
    ds: xr.Dataset, layout: _Layout, variables: list[str], aggregate_variable: str | None,
    progress: bool,
) -> dict[str, np.ndarray]:
    """:func:`_block_sums` over every time step (n_steps, n_j, n_i), a block of time steps at
    a time: here, or on the dask.distributed cluster in use, one task per block."""
    from functools import partial

    from tqdm.auto import tqdm

    from .dask_cluster import active_client, compute_blocks, time_blocks

    names = list(dict.fromkeys(variables + ([aggregate_variable] if aggregate_variable else [])))
    n_steps, n_grid = int(ds.sizes["time"]), int(ds.sizes["grid"])
    one_block = partial(_block_sums, layout=layout, variables=variables,
                        aggregate_variable=aggregate_variable)
    client = active_client()
    if client is not None:
        steps = time_blocks(ds, client, names, _chunks(n_steps, n_grid)[0].stop)
        blocks = [slice(a, min(a + steps, n_steps)) for a in range(0, n_steps, steps)]
        parts = compute_blocks(client, ds[names], blocks, one_block)
    else:
        parts = [one_block(ds[names].isel(time=chunk).compute())
                 for chunk in tqdm(_chunks(n_steps, n_grid), desc="tiling", unit="chunk",
                                   disable=not progress)]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _aggregates(sums: dict[str, np.ndarray], layout: _Layout, how: str) -> np.ndarray:
    """The aggregate per (window, j, i); exact zeros where no value in the tile is non-zero."""
    if "sum" not in sums:
        return np.full((layout.starts.size, layout.j0.size, layout.i0.size), np.nan)
    total = _window_sums(sums["sum"], layout)
    total[_window_sums(sums["nonzero"], layout) == 0] = 0.0  # no round-off from the tables
    valid = _window_sums(sums["valid"], layout)
    if how == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total / valid
    total[valid == 0] = np.nan
    return total


def _iso_times(ds: xr.Dataset, positions: np.ndarray) -> list[str]:
    """The times at ``positions`` as ISO text in the data's calendar (2000-02-30T00:00:00)."""
    return iso_list(ds["time"].values[positions])


def _tile_table(
    ds: xr.Dataset, layout: _Layout, missing_fraction: np.ndarray, aggregate: np.ndarray,
    dataset_id: str,
) -> pd.DataFrame:
    """Every candidate tile (window-major, then j, then i) as one row."""
    shape = missing_fraction.shape
    w, j, i = (a.ravel() for a in np.indices(shape))
    t_index = layout.starts[w]
    times = np.asarray(_iso_times(ds, layout.starts), dtype=object)[w]
    ty, tx = layout.tile
    n = w.size
    return pd.DataFrame({
        "tile_id": np.arange(n, dtype=np.int64),
        "dataset": [dataset_id] * n,
        "t_index": t_index.astype(np.int64),
        "time": list(times),
        "j0": layout.j0[j].astype(np.int64),
        "i0": layout.i0[i].astype(np.int64),
        "ny": np.full(n, ty, np.int64),
        "nx": np.full(n, tx, np.int64),
        "n_time": np.full(n, layout.n_time, np.int64),
        "missing_fraction": missing_fraction.ravel().astype(np.float64),
        "aggregate": aggregate.ravel().astype(np.float64),
    })


def _compute_tiles(
    ds: xr.Dataset, config: TilingConfig, dataset_id: str, layout: _Layout,
    variables: list[str], progress: bool,
) -> pd.DataFrame:
    """Every candidate tile with its missing fraction and aggregate (nothing dropped yet)."""
    sums = _per_step_sums(ds, layout, variables, config.aggregate_variable, progress)
    ty, tx = layout.tile
    cells = layout.n_time * ty * tx * len(variables)
    missing_fraction = _window_sums(sums["missing"], layout) / cells
    aggregate = _aggregates(sums, layout, config.aggregate)
    return _tile_table(ds, layout, missing_fraction, aggregate, dataset_id)


# --------------------------------------------------------------------------- tile_index


def _tiling_fingerprint(
    ds: xr.Dataset, config: TilingConfig, dataset_id: str, layout: _Layout, variables: list[str],
) -> str:
    """What the index depends on: config, dataset name, variables, shape and period."""
    times = ds["time"].values
    return inputs_fingerprint({
        "config": dataclasses.asdict(config),
        "dataset": dataset_id,
        "variables": variables,
        "shape": layout.shape,
        "steps": int(times.size),
        "period": [str(times[0]), str(times[-1])],
    })


def tile_index(
    ds: xr.Dataset,
    config: TilingConfig,
    dataset_id: str,
    index_dir: str | Path,
    progress: bool = False,
) -> pd.DataFrame:
    """The tiles of ``ds`` kept for missing data, one row each (``TILE_COLUMNS``).

    A tile is dropped when its NaN fraction exceeds ``max_missing_fraction`` or when its
    aggregate variable has no value at all over the tile and window.

    Writes ``{index_dir}/{tiling_id}.samples.csv`` (and ``.meta.json``) and reuses them when
    they were written for the same config and dataset. ``df.attrs`` holds ``tiles_total``,
    ``dropped_missing``, ``tiling_id`` and ``path``.
    """
    name = tiling_id(dataset_id, config)
    layout = _layout(ds, config, dataset_id)
    variables = _checked_variables(ds, config, dataset_id)
    csv_path, meta_path = index_paths(index_dir, name)
    fingerprint = _tiling_fingerprint(ds, config, dataset_id, layout, variables)
    meta = reusable(csv_path, meta_path, fingerprint)
    if meta is not None:
        table = read_csv(csv_path)
    else:
        candidates = _compute_tiles(ds, config, dataset_id, layout, variables, progress)
        keep = candidates["missing_fraction"] <= config.max_missing_fraction
        if config.aggregate_variable:  # a tile without any value to aggregate is missing too
            keep &= candidates["aggregate"].notna()
        if not keep.any():
            worst = candidates["missing_fraction"].min()
            raise WorkbenchError(
                f"every tile of dataset {dataset_id!r} has more missing data than "
                f"max_missing_fraction={config.max_missing_fraction} (least: {worst:.3g}); "
                "raise max_missing_fraction, shrink the tiles or check the data")
        table = candidates[keep].reset_index(drop=True)
        meta = {"tiling_id": name, "fingerprint": fingerprint, "tiles_total": len(candidates),
                "dropped_missing": int((~keep).sum()), "config": dataclasses.asdict(config)}
        write_index(table, meta, csv_path, meta_path)
    table.attrs = {"tiles_total": int(meta["tiles_total"]),
                   "dropped_missing": int(meta["dropped_missing"]),
                   "tiling_id": name, "path": str(csv_path)}
    return table
