"""Streaming statistics on a dask.distributed cluster: per block of time steps, the count,
mean, sum of squared deviations, min and max of each variable and of its one-step
differences, in float64, merged in any order (Chan et al.'s pairwise update), so a worker
holds one block of one variable at a time however long the store. Kept apart from
:mod:`workbench.statistics` so that workers import numpy and xarray only (not torch)."""

from __future__ import annotations

import numpy as np
import xarray as xr

EMPTY = (0, 0.0, 0.0, np.inf, -np.inf)  # (count, mean, M2, min, max) of no value


def moments(values: np.ndarray) -> tuple[int, float, float, float, float]:
    """(count, mean, sum of squared deviations from it, min, max) of the non-NaN values."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return EMPTY
    mean = float(finite.mean())
    return (finite.size, mean, float(((finite - mean) ** 2).sum()), float(finite.min()),
            float(finite.max()))


def merge(a: tuple, b: tuple) -> tuple:
    """Two (count, mean, M2, min, max) as one."""
    n = a[0] + b[0]
    if n == 0:
        return EMPTY
    delta = b[1] - a[1]
    return (n, a[1] + delta * b[0] / n, a[2] + b[2] + delta * delta * a[0] * b[0] / n,
            min(a[3], b[3]), max(a[4], b[4]))


def block_moments(block: xr.Dataset) -> dict:
    """Per variable of one block (read one variable at a time): the moments of its values
    and of its one-step differences, and its first and last step (for the differences
    across block edges)."""
    out = {}
    for name in block.data_vars:
        values = np.asarray(block[name].transpose("time", ...).values, dtype=np.float64)
        out[name] = (moments(values), moments(np.diff(values, axis=0)), values[0].copy(),
                     values[-1].copy())
    return out


def moments_on_cluster(client, window: xr.Dataset, kept: xr.DataArray | None) -> dict:
    """[mean, std, min, max(, diff std)] of each time-varying variable of ``window``, one task
    per block of time steps; the difference across each block edge is made here from the
    blocks' edge steps, kept only until the neighbour's arrive."""
    from .dask_cluster import blocks_as_completed, time_blocks

    n_steps, names = int(window.sizes["time"]), list(window.data_vars)
    steps = time_blocks(window, client, names, 64)
    masked = window if kept is None else window.where(kept)  # lazily: NaN on missing dates
    blocks = [slice(a, min(a + steps, n_steps)) for a in range(0, n_steps, steps)]
    total = {name: EMPTY for name in names}
    diff = dict(total)
    heads: dict[int, dict] = {}
    tails: dict[int, dict] = {}
    for index, result in blocks_as_completed(client, masked, blocks, block_moments):
        heads[index] = {n: r[2] for n, r in result.items()}
        tails[index] = {n: r[3] for n, r in result.items()}
        for name, (values, diffs, _, _) in result.items():
            total[name], diff[name] = merge(total[name], values), merge(diff[name], diffs)
        for left in (index - 1, index):  # an edge whose two sides are both here
            if left in tails and left + 1 in heads:
                for name in names:
                    edge = heads[left + 1][name] - tails[left][name]
                    diff[name] = merge(diff[name], moments(edge))
                del tails[left], heads[left + 1]
    values = {}
    for name in names:
        n, mean, m2, low, high = total[name]
        values[name] = [mean, np.sqrt(m2 / n), low, high] if n else [np.nan] * 4
        if n_steps > 1:
            values[name].append(np.sqrt(diff[name][2] / diff[name][0]) if diff[name][0]
                                else np.nan)
    return values
