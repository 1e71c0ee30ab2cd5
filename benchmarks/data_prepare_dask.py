"""Statistics and a tiling index on a dask.distributed LocalCluster over a store several times
larger than the workers' memory, against a plain dask ``ds.mean()`` / ``ds.std()`` over the
same store on the same cluster, at 1 and 2 workers (issue 16, goal 6).

The store (two float32 variables, random values, time chunks of 16 steps) is written once
into ``$WORKBENCH_CACHE/benchmarks/`` and reused; free disk is checked first and the size
scaled down (said in the notes) where it would leave less than 5 GB. Every case runs on a
fresh cluster, so each worker's peak resident memory (VmHWM) is that case's.

    .venv/bin/python benchmarks/data_prepare_dask.py [--gb 6] [--worker-memory 1GB]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import markdown_table, report

GRID = (512, 1024)  # (ny, nx): 2 MiB per variable and time step in float32
VARIABLES = ("tp", "t2m")
CHUNK_STEPS = 16


def store_path(gb: float) -> Path:
    from workbench.catalog import cache_dir

    return cache_dir() / "benchmarks" / f"dask-prepare-{gb:g}gb.zarr"


def write_store(path: Path, gb: float) -> None:
    """``gb`` GB of float32 values (tp: non-negative with zeros; t2m: normal), written chunk by
    chunk by dask's threads to a temporary path, then renamed."""
    import dask.array as da
    import numpy as np
    import pandas as pd
    import xarray as xr

    per_step = len(VARIABLES) * GRID[0] * GRID[1] * 4
    steps = max(CHUNK_STEPS, int(gb * 1e9 / per_step) // CHUNK_STEPS * CHUNK_STEPS)
    shape, chunks = (steps, GRID[0] * GRID[1]), (CHUNK_STEPS, GRID[0] * GRID[1])
    rng = da.random.default_rng(0)
    noise = rng.standard_normal(shape, chunks=chunks, dtype=np.float32)
    ds = xr.Dataset({"tp": (("time", "grid"), da.maximum(noise - 0.5, 0) ** 2),
                     "t2m": (("time", "grid"), 280 + 5 * rng.standard_normal(
                         shape, chunks=chunks, dtype=np.float32))},
                    coords={"time": pd.date_range("2000-01-01", periods=steps, freq="h")},
                    attrs={"grid_shape": list(GRID)})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.to_zarr(tmp, consolidated=True)
    tmp.rename(path)


def run_case(ds, workers: int, memory: str, task: str, index_dir: Path) -> dict:
    """One task on a fresh LocalCluster: wall time, each worker's peak RSS and spilled bytes."""
    import dask

    from workbench import statistics, tiling
    from workbench.dask_cluster import DaskSpec, dask_cluster, worker_peaks

    with dask_cluster(DaskSpec("local", workers, memory)) as client:
        before = set(client.scheduler_info()["workers"])
        start = time.perf_counter()
        if task == "plain mean/std":
            dask.compute(ds.mean(), ds.std())
        elif task == "statistics":
            statistics.compute_statistics(ds)
        else:
            config = tiling.TilingConfig(tile_size=(64, 64), n_time_window=4)
            shutil.rmtree(index_dir, ignore_errors=True)
            tiling.tile_index(ds, config, "bench", index_dir)
        seconds = time.perf_counter() - start
        peaks = worker_peaks(client)
        spilled = client.run(lambda dask_worker: dask_worker.data.cumulative_metrics.get(
            ("disk-write", "bytes"), 0.0))
        after = set(client.scheduler_info()["workers"])
    return {"task": task, "workers": workers, "seconds": seconds,
            "peak_mb_max": max(peaks.values()) / 2**20,
            "limit_mb": client_limit_mb(memory), "spilled_mb": sum(spilled.values()) / 2**20,
            "workers_lost": len(before - after)}


def client_limit_mb(memory: str) -> float:
    from dask.utils import parse_bytes

    return parse_bytes(memory) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=6.0, help="store size (uncompressed)")
    parser.add_argument("--worker-memory", default="1GB")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--no-record", action="store_true", help="print, leave RESULTS.md")
    args = parser.parse_args()
    import xarray as xr

    load_start = os.getloadavg()[0]
    notes = []
    gb = args.gb
    path = store_path(gb)
    if not path.exists():
        free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free / 1e9
        if free - 1.2 * gb < 5:
            gb = max(0.5, round((free - 5) / 1.2, 1))
            notes.append(f"Scaled down to {gb} GB: {free:.1f} GB free disk.")
            path = store_path(gb)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        write_store(path, gb)
        notes.append(f"Store written once in {time.perf_counter() - start:.0f} s.")
    ds = xr.open_zarr(path)
    size_gb = sum(ds[v].nbytes for v in ds.data_vars) / 1e9
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (int(w) for w in args.workers.split(",")):
            for task in ("plain mean/std", "statistics", "tiling 64x64x4"):
                row = run_case(ds, workers, args.worker_memory, task, Path(tmp) / "index")
                print(row, flush=True)
                rows.append(row)
    plain = {r["workers"]: r["seconds"] for r in rows if r["task"] == "plain mean/std"}
    for row in rows:
        row["vs_plain"] = row["seconds"] / plain[row["workers"]]
    command = "`.venv/bin/python benchmarks/data_prepare_dask.py " + " ".join(sys.argv[1:]) + "`"
    memory_mb = client_limit_mb(args.worker_memory)
    notes.append(
        f"Store: {path.name}, {size_gb:.2f} GB of float32 in memory ({ds.sizes['time']} steps x "
        f"{GRID[0]}x{GRID[1]} points x {len(VARIABLES)} variables, time chunks of "
        f"{CHUNK_STEPS}, {CHUNK_STEPS * GRID[0] * GRID[1] * 4 / 2**20:.0f} MiB each), "
        f"{size_gb * 1e9 / 2**20 / memory_mb:.1f} x one worker's memory limit "
        f"({args.worker_memory}). LocalCluster workers of one thread each, a fresh cluster per "
        "case. `plain mean/std`: `dask.compute(ds.mean(), ds.std())` over both variables; "
        "`statistics`: `statistics.compute_statistics` (mean, std, min, max and the std of "
        "one-step differences per variable; on the cluster one task per block of time "
        "steps, float64 moments merged in the client: workbench.moments); "
        "`tiling 64x64x4`: "
        "`tiling.tile_index` (64x64 tiles, 4-step windows; one task per block of time steps, "
        "each reading its block one variable at a time). `peak_mb_max`: the largest worker "
        "VmHWM of the case; `spilled_mb`: bytes the workers spilled to disk; `workers_lost`: "
        "workers that left during the case (killed for memory). `vs_plain`: seconds / the "
        "plain mean/std at the same worker count.")
    notes.append(f"Command: {command}. Load average at start {load_start:.2f}, at end "
                 f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} cores, shared with other work).")
    if args.no_record:
        print(markdown_table(rows), "\n\n".join(notes), sep="\n\n")
        return
    report("Data preparation on a dask LocalCluster, store several times the workers' memory",
           rows, "\n\n".join(notes))


if __name__ == "__main__":
    main()
