"""Data preparation on a dask.distributed cluster (seed 002: tile statistics "in parallel
across the whole dataset" with dask).

``--dask SPEC`` names the cluster that statistics and tiling run on:

- ``local[:WORKERS[:MEMORY]]``: a LocalCluster started here, WORKERS processes of one thread,
  each limited to MEMORY (``1GB``, ``500MB``; default: this machine's memory shared out);
- ``tcp://HOST:PORT``: an existing scheduler (started with ``dask scheduler``);
- ``slurm[:JOBS]``: dask-jobqueue's SLURMCluster, one worker per SLURM job, each job asking
  for a batch plan's ``slurm:`` settings (cpus_per_task, mem, time, partition, account,
  extra); the plan's defaults (``batch.Resources``) when no plan is named.

Inside :func:`dask_cluster` the cluster's client is dask's default scheduler, so every
``dask.compute`` (statistics) runs there; tiling asks :func:`active_client` and sends one
task per block of time steps (:func:`compute_blocks`). Every computation streams chunks:
nothing loads the whole store, so a store several times larger than the workers' memory
completes.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import xarray as xr
from pydantic import AfterValidator

from .config import Positive, parse, typed
from .errors import WorkbenchError

SPEC_FORMS = "local[:WORKERS[:MEMORY]], tcp://HOST:PORT or slurm[:JOBS]"
START_TIMEOUT_S = 300  # how long to wait for a SLURM job's worker to join
BYTES_PER_ELEMENT = 32  # what one grid value of one time step costs a tiling task, at most


def _memory(value: str) -> str:
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        size = 0
    if not re.fullmatch(r"[0-9.]+ ?[A-Za-z]*", value) or size < 2**20:
        raise ValueError("a memory size of at least 1MB such as 1GB or 500MB")
    return value


Memory = Annotated[str, AfterValidator(_memory)]


@typed
@dataclass(frozen=True)
class DaskSpec:
    """Which cluster (see the module docstring); ``workers`` is jobs for ``slurm``."""

    kind: Literal["local", "scheduler", "slurm"]
    workers: Positive = 2
    memory: Memory | None = None  # per local worker; None: dask's share of this machine
    address: str | None = None  # kind "scheduler"


def parse_spec(text: str) -> DaskSpec:
    """``--dask``'s value as a :class:`DaskSpec`; a malformed one is one line."""
    where = f"--dask {text!r}"
    if re.fullmatch(r"(tcp|tls|ucx)://[^\s:/]+:[0-9]{1,5}", text):
        return parse(DaskSpec, {"kind": "scheduler", "workers": 1, "address": text}, where)
    kind, *rest = text.split(":")
    if kind not in ("local", "slurm") or len(rest) > (2 if kind == "local" else 1):
        raise WorkbenchError(f"{where}: use {SPEC_FORMS}")
    raw: dict = {"kind": kind}
    if rest:
        if not rest[0].isdigit():
            raise WorkbenchError(f"{where}: workers should be a whole number >= 1, got "
                                 f"{rest[0]!r} (use {SPEC_FORMS})")
        raw["workers"] = int(rest[0])
    if len(rest) > 1:
        raw["memory"] = rest[1]
    return parse(DaskSpec, raw, where)


def _local(spec: DaskSpec):
    from distributed import LocalCluster

    return LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                        memory_limit=spec.memory or "auto", dashboard_address=None)


def _slurm(spec: DaskSpec, plan: str | None):
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise WorkbenchError("--dask slurm needs dask-jobqueue: pip install 'workbench[cluster]'"
                             ) from None
    from .catalog import cache_dir

    resources = _plan_resources(plan)
    logs = cache_dir() / "dask-slurm-logs"  # the worker jobs' output, not slurm-N.out in cwd
    logs.mkdir(parents=True, exist_ok=True)
    cluster = SLURMCluster(
        cores=resources.cpus_per_task, processes=1, memory=resources.mem or "2G",
        walltime=resources.time, queue=resources.partition, account=resources.account,
        job_extra_directives=list(resources.extra), python=sys.executable,
        log_directory=str(logs), scheduler_options={"dashboard_address": None})
    cluster.scale(jobs=spec.workers)
    return cluster


def _plan_resources(plan: str | None):
    """A batch plan's ``slurm:`` defaults (the plan checked whole), or batch.Resources()."""
    from .batch import Resources, load_plan

    return Resources() if plan is None else load_plan(plan).resources


@contextlib.contextmanager
def dask_cluster(spec: DaskSpec | str | None, plan: str | None = None) -> Iterator:
    """The cluster's client, set as dask's scheduler while the block runs (None: nothing,
    dask's threads as before). Clusters started here are closed on the way out."""
    if spec is None:
        if plan is not None:
            raise WorkbenchError(f"--slurm-plan {plan} applies to --dask slurm only; add it")
        yield None
        return
    from distributed import Client

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if plan is not None and spec.kind != "slurm":
        raise WorkbenchError(f"--slurm-plan {plan} applies to --dask slurm only (not {spec.kind})")
    if spec.kind == "scheduler":
        try:
            client = Client(spec.address, timeout="5s")
        except OSError as err:
            raise WorkbenchError(f"--dask {spec.address}: no scheduler answers ({err}); start "
                                 "one with `dask scheduler` or use --dask local") from None
        with client:
            yield client
        return
    with (_local(spec) if spec.kind == "local" else _slurm(spec, plan)) as cluster, \
            Client(cluster) as client:
        if spec.kind == "slurm":
            try:
                client.wait_for_workers(1, timeout=START_TIMEOUT_S)
            except TimeoutError:
                raise WorkbenchError(f"--dask slurm: no worker joined within {START_TIMEOUT_S} s;"
                                     " check squeue and the plan's slurm settings") from None
        yield client


def active_client():
    """The dask.distributed client in use (inside :func:`dask_cluster`), else None."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def task_memory(client) -> int | None:
    """The memory one task may use: the smallest worker's limit per thread (None: no limit)."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    limits = [w["memory_limit"] / max(w["nthreads"], 1) for w in workers if w.get("memory_limit")]
    return int(min(limits)) if limits else None


def time_blocks(ds: xr.Dataset, client, names: Sequence[str], default: int) -> int:
    """Time steps per task: ``default``, fewer where a worker's memory asks for it (half a
    thread's share), a whole number of the store's time chunks where possible."""
    steps = default
    budget = task_memory(client)
    if budget:
        per_step = int(ds.sizes["grid"]) * BYTES_PER_ELEMENT
        steps = max(1, min(steps, budget // 2 // per_step))
    chunks = ds[names[0]].chunks if ds[names[0]].chunks else None
    if chunks and "time" in ds[names[0]].dims:
        store = int(chunks[ds[names[0]].dims.index("time")][0])
        steps = max(store, steps // store * store) if steps >= store else steps
    return steps


class _Unread:
    """A lazy dataset handed to a task as it is (dask would otherwise read it first)."""

    def __init__(self, ds: xr.Dataset):
        self.ds = ds


def _run_block(func: Callable[[xr.Dataset], object], block: _Unread):
    """``func`` of a lazy block inside a worker's task: what it reads is read there, one
    variable at a time as ``func`` asks, by this thread alone."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        return func(block.ds)


def blocks_as_completed(client, ds: xr.Dataset, blocks: Sequence[slice],
                        func: Callable[[xr.Dataset], object]) -> Iterator[tuple[int, object]]:
    """``(position, func(block))`` for each time block of the lazy ``ds`` as its task ends:
    one task per block on the cluster's workers, each reading its own block there."""
    from distributed import as_completed

    futures = [client.submit(_run_block, func, _Unread(ds.isel(time=block)), pure=False)
               for block in blocks]
    position = {future.key: index for index, future in enumerate(futures)}
    try:
        for future in as_completed(futures):
            yield position[future.key], future.result()
            future.release()
    finally:
        client.cancel(futures)


def compute_blocks(client, ds: xr.Dataset, blocks: Sequence[slice],
                   func: Callable[[xr.Dataset], object]) -> list:
    """:func:`blocks_as_completed`'s results in the order of ``blocks``."""
    done = dict(blocks_as_completed(client, ds, blocks, func))
    return [done[index] for index in range(len(blocks))]


def worker_peaks(client) -> dict[str, int]:
    """Each worker process's peak resident memory so far (bytes, Linux VmHWM)."""
    return client.run(_peak_rss)


def _peak_rss() -> int:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0
