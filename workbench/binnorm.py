"""Bin-norm sampling indexes: LDCast's re-balancing of tiles (seed 002).

``bin_norm_sample`` bins the tiles :func:`workbench.tiling.tile_index` made by their
aggregate and re-balances them, either to an equal number of samples per bin or by
importance sampling, into ``{sampling_id}.samples.csv`` (written atomically with a
``.meta.json`` sidecar, reused when the same inputs ask again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import check_choice
from .errors import WorkbenchError
from .index_files import index_paths, inputs_fingerprint, read_csv, reusable, write_index

METHODS = ("equalize", "importance")
BIN_EDGES = ("quantile", "log", "linear")


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
        check_choice(self.method, METHODS, "method")
        check_choice(self.bin_edges, BIN_EDGES, "bin_edges")
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
    check_choice(kind, BIN_EDGES, "bin_edges")
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
    csv_path, meta_path = index_paths(index_dir, name)
    fingerprint = inputs_fingerprint({
        "config": dataclasses.asdict(config), "tiling_id": source,
        "tiles": hashlib.sha1(pd.util.hash_pandas_object(tiles, index=False).values).hexdigest(),
    })
    meta = reusable(csv_path, meta_path, fingerprint)
    if meta is not None:
        table = read_csv(csv_path)
    else:
        table, meta = _sample(tiles, values, config)
        meta.update({"sampling_id": name, "tiling_id": source, "fingerprint": fingerprint,
                     "n_time_sample": n_time_sample, "config": dataclasses.asdict(config)})
        write_index(table, meta, csv_path, meta_path)
    table.attrs = {key: meta[key] for key in ("bin_edges", "counts_before", "counts_after",
                                               "sampling_id")}
    table.attrs["path"] = str(csv_path)
    return table


def rebalance(tiles: pd.DataFrame, config: BinNormConfig) -> pd.DataFrame:
    """The table :func:`bin_norm_sample` writes for ``tiles`` and ``config``, made in memory
    (nothing read or written: for settings tried live); ``attrs`` hold ``bin_edges``,
    ``counts_before`` and ``counts_after``."""
    values = _check_tiles(tiles, int(config.n_time_sample or 1))
    table, meta = _sample(tiles, values, config)
    table.attrs = {key: meta[key] for key in ("bin_edges", "counts_before", "counts_after")}
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
