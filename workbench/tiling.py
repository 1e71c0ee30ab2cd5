"""Tiling and bin-norm sampling indexes: LDCast's data preparation (seed 002).

``tile_index`` cuts a canonical dataset into space-time tiles (``tile_size`` cells by
``n_time_window`` steps), drops tiles with too much missing data and records, per tile,
an aggregate of one quantity (e.g. precipitation summed over the tile and window).
``bin_norm_sample`` bins the tiles by that aggregate and re-balances them, either to an
equal number of samples per bin or by importance sampling. Both write a CSV index,
``{tiling_id}.samples.csv`` and ``{sampling_id}.samples.csv``, atomically, with a small
``.meta.json`` sidecar, and reuse them when the same inputs ask again.

Tile statistics come from integral images (cumulative sums over y, x and time) computed
chunk-wise over time, so the cost does not grow with the number of (overlapping) tiles.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .errors import WorkbenchError
from .times import iso_list

AGGREGATES = ("sum", "mean")
METHODS = ("equalize", "importance")
BIN_EDGES = ("quantile", "log", "linear")
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


def _choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise WorkbenchError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")


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
        _choice(self.aggregate, AGGREGATES, "aggregate")


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


def _per_step_sums(
    ds: xr.Dataset, layout: _Layout, variables: list[str], aggregate_variable: str | None,
    progress: bool,
) -> dict[str, np.ndarray]:
    """Per time step and tile: NaN count over ``variables``; sum, valid and non-zero counts
    of the aggregate variable. Each array has shape (n_steps, n_j, n_i)."""
    from tqdm.auto import tqdm

    names = list(dict.fromkeys(variables + ([aggregate_variable] if aggregate_variable else [])))
    parts: dict[str, list[np.ndarray]] = {"missing": [], "sum": [], "valid": [], "nonzero": []}
    slices = _chunks(int(ds.sizes["time"]), int(ds.sizes["grid"]))
    for chunk in tqdm(slices, desc="tiling", unit="chunk", disable=not progress):
        block = ds[names].isel(time=chunk).compute()
        n_time = chunk.stop - chunk.start
        missing = np.zeros((n_time,) + layout.shape, np.int32)
        for name in variables:
            missing += np.isnan(_read(block, name, n_time, layout.shape))
        parts["missing"].append(_box_sums(missing, layout))
        if aggregate_variable:
            values = _read(block, aggregate_variable, n_time, layout.shape)
            valid = ~np.isnan(values)
            parts["sum"].append(_box_sums(np.where(valid, values, 0).astype(np.float64), layout))
            parts["valid"].append(_box_sums(valid, layout))
            parts["nonzero"].append(_box_sums(valid & (values != 0), layout))
    return {key: np.concatenate(arrays) for key, arrays in parts.items() if arrays}


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


# --------------------------------------------------------------------------- index files


def _fingerprint(payload) -> str:
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _index_paths(index_dir: str | Path, name: str) -> tuple[Path, Path]:
    folder = Path(index_dir)
    return folder / f"{name}.samples.csv", folder / f"{name}.meta.json"


def _reusable(csv_path: Path, meta_path: Path, fingerprint: str) -> dict | None:
    """The sidecar of an index written from the same inputs, or None."""
    if not (csv_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("fingerprint") == fingerprint else None


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"dataset": str, "time": str}, float_precision="round_trip")


def _write_index(table: pd.DataFrame, meta: dict, csv_path: Path, meta_path: Path) -> None:
    """Write the CSV and its sidecar through temp files + os.replace; no partial files."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp-{os.getpid()}"
    csv_tmp = csv_path.with_name(f".{csv_path.name}{suffix}")
    meta_tmp = meta_path.with_name(f".{meta_path.name}{suffix}")
    try:
        table.to_csv(csv_tmp, index=False)
        meta_tmp.write_text(json.dumps(meta, indent=1))
        os.replace(meta_tmp, meta_path)  # the CSV last: a CSV is never there without its meta
        os.replace(csv_tmp, csv_path)
    finally:
        csv_tmp.unlink(missing_ok=True)
        meta_tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- tile_index


def _tiling_fingerprint(
    ds: xr.Dataset, config: TilingConfig, dataset_id: str, layout: _Layout, variables: list[str],
) -> str:
    """What the index depends on: config, dataset name, variables, shape and period."""
    times = ds["time"].values
    return _fingerprint({
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
    csv_path, meta_path = _index_paths(index_dir, name)
    fingerprint = _tiling_fingerprint(ds, config, dataset_id, layout, variables)
    meta = _reusable(csv_path, meta_path, fingerprint)
    if meta is not None:
        table = _read_csv(csv_path)
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
        _write_index(table, meta, csv_path, meta_path)
    table.attrs = {"tiles_total": int(meta["tiles_total"]),
                   "dropped_missing": int(meta["dropped_missing"]),
                   "tiling_id": name, "path": str(csv_path)}
    return table


# --------------------------------------------------------------------------- bin-norm config


@dataclass(frozen=True)
class BinNormConfig:
    """How to re-balance tiles by their aggregate (see the module docstring)."""

    n_bins: int = 10
    method: str = "equalize"  # "equalize" | "importance"
    bin_edges: str = "quantile"  # "quantile" | "log" | "linear"; zeros get their own bin
    n_samples: int | None = None  # equalize: samples drawn (default: number of tiles)
    q_min: float = 0.1  # importance: smallest keep probability
    mean_weight: float = 1.0  # importance: q = aggregate / (mean_weight * mean aggregate)
    n_time_sample: int | None = None  # for the id (default: the tiling's n_time_window)
    seed: int = 0

    def __post_init__(self):
        _choice(self.method, METHODS, "method")
        _choice(self.bin_edges, BIN_EDGES, "bin_edges")
        if int(self.n_bins) < 1:
            raise WorkbenchError(f"n_bins={self.n_bins} must be at least 1")
        if not 0.0 < float(self.q_min) <= 1.0:
            raise WorkbenchError(f"q_min={self.q_min} must lie in (0, 1]")
        if float(self.mean_weight) <= 0:
            raise WorkbenchError(f"mean_weight={self.mean_weight} must be positive")
        if self.n_samples is not None and int(self.n_samples) < 1:
            raise WorkbenchError(f"n_samples={self.n_samples} must be at least 1 (or None)")
        if self.n_samples is not None and self.method != "equalize":
            raise WorkbenchError("n_samples applies to method='equalize' only; importance "
                                 "sampling keeps each tile with probability q (tune q_min)")
        if self.n_time_sample is not None and int(self.n_time_sample) < 1:
            raise WorkbenchError(f"n_time_sample={self.n_time_sample} must be at least 1")


def _window_from_id(tiling_id: str) -> int:
    """n_time_window read back from a tiling id (the part before the stride suffixes)."""
    parts = tiling_id.split(".")
    while parts and re.fullmatch(r"s\d+x\d+|t\d+", parts[-1]):
        parts.pop()
    if len(parts) < 3 or not parts[-1].isdigit():
        raise WorkbenchError(f"{tiling_id!r} is not a tiling id ({{dataset}}.{{tile}}."
                             "{n_time_window}); make it with tiling.tiling_id")
    return int(parts[-1])


def _token(value: float) -> str:
    return f"{value:g}".replace(".", "p")


def sampling_id(tiling_id: str, config: BinNormConfig) -> str:
    """``{tiling_id}.{n_time_sample}.{method}-{bin_edges}{n_bins}[-...]-seed{seed}``."""
    n_time = config.n_time_sample or _window_from_id(tiling_id)
    tag = f"{config.method}-{config.bin_edges}{config.n_bins}"
    if config.method == "equalize" and config.n_samples is not None:
        tag += f"-n{config.n_samples}"
    if config.method == "importance":
        tag += f"-q{_token(config.q_min)}-w{_token(config.mean_weight)}"
    return f"{tiling_id}.{n_time}.{tag}-seed{config.seed}"


# --------------------------------------------------------------------------- bins


def make_bin_edges(values: np.ndarray, n_bins: int, kind: str = "quantile") -> np.ndarray:
    """Bin edges over ``values``; with non-negative values and zeros present (and n_bins > 1),
    the first bin [0, smallest positive) holds exactly the zeros."""
    _choice(kind, BIN_EDGES, "bin_edges")
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise WorkbenchError("bin edges need finite aggregates; tile with an "
                             "aggregate_variable and drop tiles whose aggregate is NaN")
    zero_bin = n_bins > 1 and values.min() == 0.0
    rest = values[values > 0] if zero_bin else values
    n_rest = n_bins - 1 if zero_bin else n_bins
    if rest.size == 0:  # only zeros
        return np.array([0.0, 0.0])
    low, high = rest.min(), rest.max()
    if kind == "quantile":
        edges = np.quantile(rest, np.linspace(0, 1, n_rest + 1))
    elif kind == "log":
        if low <= 0:
            raise WorkbenchError("bin_edges='log' needs non-negative aggregates; use "
                                 "'quantile' or 'linear'")
        edges = np.geomspace(low, high, n_rest + 1)
    else:
        edges = np.linspace(low, high, n_rest + 1)
    edges[0], edges[-1] = low, high
    edges = np.unique(edges) if high > low else np.array([low, high])
    return np.concatenate([[0.0], edges]) if zero_bin else edges


def assign_bins(values, edges) -> np.ndarray:
    """Bin index of each value: bins are [e_k, e_k+1), the last one closed; -1 outside/NaN."""
    values, edges = np.asarray(values, dtype=np.float64), np.asarray(edges, dtype=np.float64)
    bins = np.searchsorted(edges, values, side="right") - 1
    bins = np.minimum(bins, edges.size - 2)
    inside = (values >= edges[0]) & (values <= edges[-1])
    return np.where(inside, bins, -1)


def bin_counts(values, edges) -> np.ndarray:
    """How many ``values`` fall in each bin of ``edges`` (as ``assign_bins``)."""
    bins = assign_bins(values, edges)
    return np.bincount(bins[bins >= 0], minlength=np.asarray(edges).size - 1)


# --------------------------------------------------------------------------- sampling


def _equalize(bins: np.ndarray, n_bins: int, n_samples: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Rows drawn so every non-empty bin gets n_samples // k (or one more) samples; each
    weighted by (bin share before) / (bin share after), so weights average to 1."""
    counts = np.bincount(bins, minlength=n_bins)
    non_empty = np.flatnonzero(counts)
    share = np.zeros(n_bins, np.int64)
    share[non_empty] = n_samples // non_empty.size
    share[rng.choice(non_empty, n_samples % non_empty.size, replace=False)] += 1
    rows, weights = [], []
    for b in non_empty[share[non_empty] > 0]:
        members = np.flatnonzero(bins == b)
        if members.size >= share[b]:
            picked = rng.choice(members, share[b], replace=False)
        else:  # every member once, the rest drawn with replacement
            extra = rng.choice(members, share[b] - members.size, replace=True)
            picked = np.concatenate([members, extra])
        rows.append(picked)
        weights.append(np.full(picked.size, (counts[b] / bins.size) / (share[b] / n_samples)))
    order = np.argsort(np.concatenate(rows), kind="stable")
    return np.concatenate(rows)[order], np.concatenate(weights)[order]


def importance_q(values: np.ndarray, q_min: float, mean_weight: float) -> np.ndarray:
    """Keep probabilities q_i = clip(a_i / (mean_weight * mean(a)), q_min, 1)."""
    mean = float(np.mean(values))
    if mean == 0.0:
        return np.full(values.shape, float(q_min))
    return np.clip(values / (mean_weight * mean), q_min, 1.0)


def _importance(values: np.ndarray, config: BinNormConfig, rng) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept with probability q, weighted 1/q."""
    if values.min() < 0:
        raise WorkbenchError("method='importance' needs non-negative aggregates; use "
                             "method='equalize'")
    q = importance_q(values, config.q_min, config.mean_weight)
    rows = np.flatnonzero(rng.random(values.size) < q)
    if rows.size == 0:
        raise WorkbenchError(f"importance sampling kept none of {values.size} tiles; raise "
                             f"q_min (now {config.q_min})")
    return rows, 1.0 / q[rows]


def _tiles_name(tiles: pd.DataFrame, override: str | None) -> str:
    name = override or tiles.attrs.get("tiling_id")
    if not name:
        raise WorkbenchError("tiles carry no tiling_id; pass the DataFrame returned by "
                             "tile_index or give tiling_id=...")
    return name


def _check_tiles(tiles: pd.DataFrame, n_time_sample: int) -> np.ndarray:
    if "aggregate" not in tiles or len(tiles) == 0:
        raise WorkbenchError("bin_norm_sample needs a non-empty tiles table with an 'aggregate' "
                             "column; make it with tile_index")
    values = tiles["aggregate"].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise WorkbenchError(f"{int((~np.isfinite(values)).sum())} tiles have no aggregate "
                             "(NaN); tile with an aggregate_variable or drop those rows")
    if "n_time" in tiles and n_time_sample > int(tiles["n_time"].min()):
        raise WorkbenchError(f"n_time_sample={n_time_sample} is longer than the tiles' "
                             f"n_time_window={int(tiles['n_time'].min())}; use at most that")
    return values


def bin_norm_sample(
    tiles: pd.DataFrame,
    config: BinNormConfig,
    index_dir: str | Path,
    *,
    tiling_id: str | None = None,
) -> pd.DataFrame:
    """Tiles re-balanced over bins of their aggregate, with columns ``bin`` and ``weight``.

    Writes ``{index_dir}/{sampling_id}.samples.csv`` (and ``.meta.json``), reused when written
    from the same tiles and config. ``df.attrs`` holds ``bin_edges``, ``counts_before``,
    ``counts_after``, ``sampling_id`` and ``path``.
    """
    source = _tiles_name(tiles, tiling_id)
    name = sampling_id(source, config)
    n_time_sample = int(config.n_time_sample or _window_from_id(source))
    values = _check_tiles(tiles, n_time_sample)
    csv_path, meta_path = _index_paths(index_dir, name)
    fingerprint = _fingerprint({
        "config": dataclasses.asdict(config), "tiling_id": source,
        "tiles": hashlib.sha1(pd.util.hash_pandas_object(tiles, index=False).values).hexdigest(),
    })
    meta = _reusable(csv_path, meta_path, fingerprint)
    if meta is not None:
        table = _read_csv(csv_path)
    else:
        table, meta = _sample(tiles, values, config)
        meta.update({"sampling_id": name, "tiling_id": source, "fingerprint": fingerprint,
                     "n_time_sample": n_time_sample, "config": dataclasses.asdict(config)})
        _write_index(table, meta, csv_path, meta_path)
    table.attrs = {key: meta[key] for key in ("bin_edges", "counts_before", "counts_after",
                                               "sampling_id")}
    table.attrs["path"] = str(csv_path)
    return table


def _sample(
    tiles: pd.DataFrame, values: np.ndarray, config: BinNormConfig,
) -> tuple[pd.DataFrame, dict]:
    """The sampled table and the bin statistics for its sidecar."""
    edges = make_bin_edges(values, int(config.n_bins), config.bin_edges)
    bins = assign_bins(values, edges)
    rng = np.random.default_rng(config.seed)
    if config.method == "equalize":
        n_samples = int(config.n_samples or len(tiles))
        rows, weights = _equalize(bins, edges.size - 1, n_samples, rng)
    else:
        rows, weights = _importance(values, config, rng)
    table = tiles.iloc[rows].reset_index(drop=True)
    table.attrs = {}
    table["bin"] = bins[rows].astype(np.int64)
    table["weight"] = weights.astype(np.float64)
    meta = {
        "bin_edges": [float(e) for e in edges],
        "counts_before": [int(c) for c in np.bincount(bins, minlength=edges.size - 1)],
        "counts_after": [int(c) for c in np.bincount(bins[rows], minlength=edges.size - 1)],
    }
    return table, meta
