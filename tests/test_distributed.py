"""Statistics and tiling on a real dask.distributed cluster (workbench.dask_cluster): a
LocalCluster, a scheduler started as its own process, and dask-jobqueue on the suite's real
SLURM; the results against the in-memory path on a small store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from workbench import cli, tiling
from workbench.binnorm import BinNormConfig, bin_norm_sample
from workbench.dask_cluster import DaskSpec, dask_cluster, parse_spec, worker_peaks
from workbench.errors import WorkbenchError
from workbench.statistics import compute_statistics

pytestmark = pytest.mark.timeout(300)
NY, NX, NT = 12, 15, 40
# The in-memory path (numpy over the loaded float32 arrays) accumulates in float32; the cluster
# accumulates each block in float64 and merges the blocks (Chan's update). They differ by the
# float32 path's rounding: about sqrt(n) * eps32 ~ 1e-5 relative at worst for n ~ 10^4 values
# (~1e-7 typical), while a block counted twice or dropped moves the mean by ~1e-2 relative.
# Against a float64 count by numpy the cluster agrees to float64 rounding (HAND_RTOL).
RTOL = 1e-5
HAND_RTOL = 1e-9


def small_store(path: Path, seed: int = 0) -> xr.Dataset:
    """A small canonical zarr store (time chunks of 4) with NaN patches, opened lazily."""
    rng = np.random.default_rng(seed)
    tp = (rng.gamma(0.3, 2.0, (NT, NY, NX)) * (rng.random((NT, NY, NX)) < 0.4)).astype(np.float32)
    t2m = rng.normal(280.0, 5.0, (NT, NY, NX)).astype(np.float32)
    t2m[3:7, 2:9, 4:12] = np.nan
    tp[15:18, 8:, 10:] = np.nan
    ds = xr.Dataset(
        {"tp": (("time", "grid"), tp.reshape(NT, -1)),
         "t2m": (("time", "grid"), t2m.reshape(NT, -1)),
         "orog": (("grid",), rng.random(NY * NX).astype(np.float32))},
        coords={"time": pd.date_range("2021-01-01", periods=NT, freq="6h")},
        attrs={"grid_shape": [NY, NX]})
    ds.chunk({"time": 4}).to_zarr(path, consolidated=False)
    return xr.open_zarr(path, consolidated=False)


@pytest.fixture
def store(tmp_path: Path) -> xr.Dataset:
    return small_store(tmp_path / "small.zarr")


def test_spec_forms_and_one_line_errors():
    """Every --dask form parses into its DaskSpec; a bad one is one line with the fix."""
    assert parse_spec("local") == DaskSpec("local", 2, None, None)
    assert parse_spec("local:3:1GB") == DaskSpec("local", 3, "1GB", None)
    assert parse_spec("slurm:4") == DaskSpec("slurm", 4, None, None)
    assert parse_spec("tcp://node7:8786") == DaskSpec("scheduler", 1, None, "tcp://node7:8786")
    for text, words in [("local:0", "should be greater than or equal to 1, got 0"),
                        ("local:two", "workers should be a whole number"),
                        ("local:2:lots", "memory: should be a memory size"),
                        ("local:2:10B", "at least 1MB"),
                        ("cloud", "use local[:WORKERS[:MEMORY]], tcp://HOST:PORT"),
                        ("slurm:2:1GB", "use local"), ("tcp://host", "use local")]:
        with pytest.raises(WorkbenchError) as err:
            parse_spec(text)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(WorkbenchError, match="applies to --dask slurm only"):
        with dask_cluster("local:1", plan="demo"):
            pass


def test_local_cluster_equals_in_memory_path(store: xr.Dataset, tmp_path: Path, monkeypatch):
    """Statistics, tiling and bin-norm on a 2-worker LocalCluster, in several blocks (one task
    each, so block edges are crossed): statistics within RTOL of the in-memory path and within
    HAND_RTOL of a float64 count by numpy (statics, computed by dask as before: RTOL), a missing date left out as there; the tiling and
    bin-norm indexes equal to the in-memory ones row for row."""
    from workbench import dask_cluster as cluster_module

    monkeypatch.setattr(tiling, "CHUNK_STEPS", 8)  # 40 steps -> 5 tiling blocks
    sent: list[list[slice]] = []
    real = cluster_module.blocks_as_completed
    monkeypatch.setattr(cluster_module, "blocks_as_completed",
                        lambda client, ds, blocks, func: sent.append(blocks) or real(
                            client, ds, blocks, func))
    config = tiling.TilingConfig(tile_size=(4, 5), n_time_window=3, stride=(2, 5))
    store.attrs["missing_dates"] = ["2021-01-03T12:00:00"]  # step 10
    loaded = store.load()
    in_memory = compute_statistics(loaded)
    tiles_memory = tiling.tile_index(loaded, config, "small", tmp_path / "memory")
    with dask_cluster("local:2:400MB") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        with monkeypatch.context() as patch:  # 40 steps -> statistics in blocks of 4 steps
            patch.setattr(cluster_module, "BYTES_PER_ELEMENT", 400_000_000 // 2 // 4 // (NY * NX))
            cluster = compute_statistics(store)
        tiles_cluster = tiling.tile_index(store, config, "small", tmp_path / "cluster")
        peaks = worker_peaks(client)
    assert [(b.start, b.stop) for b in sent[0]] == [(a, a + 4) for a in range(0, NT, 4)]
    assert [(b.start, b.stop) for b in sent[1]] == [(a, a + 8) for a in range(0, NT, 8)]
    for name, stats in cluster.items():
        values = loaded[name].values.astype(np.float64)
        if name != "orog":
            values[10] = np.nan  # the missing date
        hand = [np.nanmean(values), np.nanstd(values), np.nanmin(values), np.nanmax(values)]
        if name != "orog":
            hand.append(np.nanstd(np.diff(values, axis=0)))
        got = [v for v in asdict(stats).values() if v is not None]
        memory = [v for v in asdict(in_memory[name]).values() if v is not None]
        tight = HAND_RTOL if name != "orog" else RTOL  # a static: dask's float32 path
        assert got == pytest.approx(hand, rel=tight, abs=tight * hand[1]), name
        assert got == pytest.approx(memory, rel=RTOL, abs=RTOL * hand[1]), name
    assert cluster["orog"].diff_std is None and cluster["tp"].min == 0.0
    for table in (tiles_memory, tiles_cluster):
        table.attrs = {}
    pd.testing.assert_frame_equal(tiles_cluster, tiles_memory, check_exact=True)
    assert len(tiles_memory) > 100 and tiles_memory["t_index"].max() == NT - 3
    samples = [bin_norm_sample(t, BinNormConfig(n_bins=4), tmp_path / d, tiling_id="small.4x5.3")
               for t, d in ((tiles_memory, "memory"), (tiles_cluster, "cluster"))]
    for table in samples:
        table.attrs = {}
    pd.testing.assert_frame_equal(samples[0], samples[1], check_exact=True)
    assert all(0 < peak < 400 * 2**20 for peak in peaks.values()), peaks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_existing_scheduler_address(store: xr.Dataset, tmp_path: Path):
    """``tcp://HOST:PORT``: a scheduler and a worker started as their own processes (`dask
    scheduler`, `dask worker`) compute the tiling index; closing the client leaves them
    running; a port nobody listens on is one line."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                  "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", ":0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                               "--nthreads", "1", "--memory-limit", "400MB", "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        config = tiling.TilingConfig(tile_size=(6, 5), n_time_window=2)
        expected = tiling.tile_index(store.load(), config, "small", tmp_path / "memory")
        with dask_cluster(address) as client:
            client.wait_for_workers(1, timeout=60)
            got = tiling.tile_index(store, config, "small", tmp_path / "cluster")
        for table in (expected, got):
            table.attrs = {}
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert scheduler.poll() is None and worker.poll() is None
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
            proc.wait(timeout=30)
    with pytest.raises(WorkbenchError, match=r"no scheduler answers .*use --dask local"):
        with dask_cluster(f"tcp://127.0.0.1:{free_port()}"):
            pass


CATALOG = """\
name: tiny
domain: test
source: {{kind: zarr, path: {path}}}
variables: [t2m]
time_step: 6h
grid: {{kind: test, resolution: test}}
"""


def test_cli_stats_on_local_cluster(tmp_path: Path, capsys):
    """`workbench data stats NAME --dask local:1:400MB --json` on a user's zarr store prints
    the numbers the same command prints without a cluster (each into its own cache, within
    RTOL) and a float64 count by numpy (within HAND_RTOL)."""
    rng = np.random.default_rng(1)
    values = rng.normal(280.0, 5.0, (16, 5, 8)).astype(np.float32)
    values[2:4, 1:3] = np.nan
    times = np.datetime64("2021-03-01") + np.arange(16) * np.timedelta64(6, "h")
    xr.Dataset({"t2m": (("time", "lat", "lon"), values)},
               coords={"time": times, "lat": np.linspace(-60, 60, 5),
                       "lon": np.arange(0, 360, 45.0)}
               ).chunk({"time": 4}).to_zarr(tmp_path / "tiny.zarr", consolidated=False)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "tiny.yaml").write_text(CATALOG.format(path=tmp_path / "tiny.zarr"))
    argv = ["data", "stats", "tiny", "--json", "--catalog", str(tmp_path / "cat")]
    assert cli.main(argv + ["--dask", "local:1:400MB", "--cache", str(tmp_path / "a")]) == 0
    on_cluster = json.loads(capsys.readouterr().out)["variables"]["t2m"]
    assert cli.main(argv + ["--cache", str(tmp_path / "b")]) == 0
    here = json.loads(capsys.readouterr().out)["variables"]["t2m"]
    assert on_cluster == pytest.approx(here, rel=RTOL)
    as64 = values.astype(np.float64)
    hand = {"mean": np.nanmean(as64), "std": np.nanstd(as64), "min": np.nanmin(as64),
            "max": np.nanmax(as64), "diff_std": np.nanstd(np.diff(as64, axis=0))}
    assert on_cluster == pytest.approx(hand, rel=HAND_RTOL)


@pytest.mark.slow
def test_slurm_cluster_tiles(slurm_cluster, store: xr.Dataset, tmp_path: Path, monkeypatch):
    """``--dask slurm:1``: dask-jobqueue submits a worker job to the suite's real SLURM with
    a plan's slurm settings; the tiling index equals the in-memory one."""
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: p\nslurm: {cpus_per_task: 1, mem: 600M, time: '00:10:00'}\n"
                    "steps:\n  - {name: a, notebook: 00_catalog_tour}\n")
    config = tiling.TilingConfig(tile_size=(6, 5), n_time_window=2)
    expected = tiling.tile_index(store.load(), config, "small", tmp_path / "memory")
    start = time.monotonic()
    with dask_cluster("slurm:1", plan=str(plan)) as client:
        info = client.scheduler_info()["workers"]
        got = tiling.tile_index(store, config, "small", tmp_path / "cluster")
        jobs = slurm_cluster.run("squeue", "-h", "-o", "%j %C %t").stdout.split()
    for table in (expected, got):
        table.attrs = {}
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert len(info) == 1 and jobs[:3] == ["dask-worker", "1", "R"], jobs
    assert time.monotonic() - start < 120
    assert os.environ["SLURM_CONF"]
