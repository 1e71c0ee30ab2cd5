"""Samples/s of the multi-domain training loader against the raw zarr reads of the same
windows, measured in the same run.

    .venv/bin/python benchmarks/dataloader.py [--repeats 3] [--large [--large-steps 21]
        [--large-samples N]] [--prefetch-factor N[,N...]] [--quick]

Loader: ``MultiDomainDataModule`` with ``domain_weighting: size`` (every training sample read
once per epoch), train loader at num_workers 0, 1 and 2 (persistent workers). Raw: the same
(domain, t0) windows in the same order, ``zarr.open_group(path)[var][t0:t0 + window]`` for the
same variables and forcings, no normalisation, no collation, one process; ``raw`` keeps the
group and array handles open (the floor the ratios are taken against), ``raw, open per read``
reopens the array (its metadata) for every read as the expression reads literally. Each
setting runs one untimed warm-up epoch first (page cache; worker start-up), then ``repeats``
timed epochs, interleaved across settings; the median is reported.

Data: by default the demo sampling config (configs/sampling/demo.yaml, small samples).
``--large``: a realistic sample size: a store of a 0.25 degree global grid (721 x 1440 points
on one ``grid`` axis, the canonical layout) with 24 float32 variables, written once into
``$WORKBENCH_CACHE/bench-large.zarr`` and read through a catalog entry (kind zarr) in a
temporary catalog folder, with a sampling config made here (one domain, batch 1, input 1 +
rollout 1 steps, no forcings or statics): one sample is ~200 MB.

``--prefetch-factor``: DataModule's loader does not expose prefetch_factor (nor pin_memory),
so these rows use a DataLoader built here exactly as ``MultiDomainDataModule.dataloader``
builds it (same dataset, batch sampler, collate, worker init, persistent workers) with that
prefetch_factor, at 1 and 2 workers. With CUDA, a pin_memory row at 2 workers too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import zarr  # noqa: E402
from common import publish  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from workbench import catalog, sampling  # noqa: E402

WORKERS = (0, 1, 2)
LARGE_NAME = "bench-large"
LARGE_SHAPE = (721, 1440)  # 0.25 degree, poles included
# name: (mean, amplitude of the large-scale pattern): magnitudes of the real fields
LARGE_VARIABLES = {
    **{f"z_{p}": (9.81 * h, 9.81 * h / 50) for p, h in ((250, 10400), (500, 5600),
                                                       (700, 3000), (850, 1450))},
    **{f"t_{p}": (t, 15.0) for p, t in ((250, 222), (500, 252), (700, 267), (850, 275))},
    **{f"{c}_{p}": (0.0, 15.0) for c in ("u", "v") for p in (250, 500, 700, 850)},
    **{f"q_{p}": (q, q / 2) for p, q in ((250, 5e-5), (500, 1e-3), (700, 3e-3), (850, 6e-3))},
    "t2m": (288.0, 20.0), "u10": (0.0, 6.0), "v10": (0.0, 6.0), "msl": (101325.0, 1500.0),
}


# --------------------------------------------------------------------------- the large store


def large_fields(step: int, rng: np.random.Generator, lat: np.ndarray, lon: np.ndarray):
    """One time step of every variable: float32 (grid,) waves drifting east plus 1 % noise
    (so that the chunks compress about as real fields do, not to nothing)."""
    for k, (name, (mean, amp)) in enumerate(LARGE_VARIABLES.items()):
        wave = np.cos((k % 5 + 2) * lon - 0.3 * step - k) * np.cos(lat) ** 2
        trend = np.sin(lat) * (0.5 if k % 2 else -0.5)
        field = mean + amp * (wave + trend + 0.01 * rng.standard_normal(lat.size))
        yield name, field.astype(np.float32)


def write_large(path: Path, steps: int) -> None:
    """The store at ``path``: variables (time, grid) in chunks of one field (4.2 MB), the
    grid's latitude/longitude, 6-hourly times; written one time step at a time."""
    import pandas as pd
    import xarray as xr

    ny, nx = LARGE_SHAPE
    lat2, lon2 = np.meshgrid(np.linspace(90, -90, ny), np.arange(nx) * 360 / nx, indexing="ij")
    lat, lon = lat2.ravel(), lon2.ravel()
    lat_r, lon_r = np.deg2rad(lat), np.deg2rad(lon)
    times = pd.date_range("2020-01-01", periods=steps, freq="6h")
    rng = np.random.default_rng(0)
    for step in range(steps):
        ds = xr.Dataset({name: (("time", "grid"), field[None])
                         for name, field in large_fields(step, rng, lat_r, lon_r)},
                        coords={"time": times[step:step + 1]})
        if step == 0:
            ds = ds.assign_coords(latitude=("grid", lat), longitude=("grid", lon))
            encoding = {v: {"chunks": (1, lat.size)} for v in LARGE_VARIABLES}
            # not since 2020-01-01: a first value of 0 is the fill value, a chunk not written
            encoding["time"] = {"units": "hours since 1970-01-01", "dtype": "int64"}
            ds.to_zarr(path, mode="w", encoding=encoding, consolidated=False)
        else:
            ds.to_zarr(path, append_dim="time", consolidated=False)
        print(f"  bench-large: wrote step {step + 1}/{steps}", flush=True)


def large_damage(path: Path, steps: int) -> str | None:
    """Why the store at ``path`` is not a complete store of ``steps`` steps (None: it is)."""
    from workbench import integrity

    reason = integrity.zarr_damage(path, [*LARGE_VARIABLES, "time", "latitude", "longitude"])
    if reason is None:
        shape = zarr.open_group(str(path), mode="r")[next(iter(LARGE_VARIABLES))].shape
        if shape != (steps, LARGE_SHAPE[0] * LARGE_SHAPE[1]):
            reason = f"its shape is {shape}, not {steps} steps"
    return reason


def large_store(steps: int) -> tuple[Path, int]:
    """The store in the cache (written unless complete) and its steps, fewer than asked when
    the disk holds less than 3 x the store's uncompressed size."""
    from workbench import cachelock

    path = catalog.cache_dir() / f"{LARGE_NAME}.zarr"
    step_bytes = len(LARGE_VARIABLES) * LARGE_SHAPE[0] * LARGE_SHAPE[1] * 4
    if path.exists() and large_damage(path, steps) is None:
        return path, steps
    if path.exists():  # another size or incomplete: our own store, replaced whole
        shutil.rmtree(path)
    cachelock.ensure_folder(path.parent)
    free = shutil.disk_usage(path.parent).free
    if free < 3 * steps * step_bytes:
        steps = int(free // (3 * step_bytes))
        if steps < 3:
            sys.exit(f"{free / 1e9:.1f} GB free under {path.parent}: too little for --large")
        print(f"  only {free / 1e9:.1f} GB free: the store gets {steps} steps", flush=True)
    print(f"writing {path} ({steps} steps, {steps * step_bytes / 1e9:.1f} GB of float32)",
          flush=True)
    start = time.perf_counter()
    cachelock.create_once(path, lambda tmp: write_large(tmp, steps), f"store {LARGE_NAME!r}",
                          lambda p: large_damage(p, steps))
    print(f"  written in {time.perf_counter() - start:.0f} s", flush=True)
    return path, steps


def large_config(path: Path, steps: int, folder: Path,
                 samples: int | None = None) -> sampling.SamplingConfig:
    """A catalog entry for the store in ``folder`` (searched from now on, workers too) and a
    sampling config over its first ``samples`` windows (None: all): fixed scaling (each variable's mean and amplitude)
    spares a statistics pass over the store; normalising costs the same either way."""
    (folder / f"{LARGE_NAME}.yaml").write_text(
        f"name: {LARGE_NAME}\ndomain: global\n"
        "description: Synthetic 0.25 degree global fields for benchmarks/dataloader.py.\n"
        f"source: {{kind: zarr, path: {path}}}\n"
        f"variables: [{', '.join(LARGE_VARIABLES)}]\n"
        "time_step: 6h\ngrid: {kind: points, resolution: 0.25 deg}\n")
    catalog.use_catalog([folder])
    last = steps - 1 if samples is None else min(steps - 1, samples)  # windows of 2 steps
    end = np.datetime64("2020-01-01T00:00") + np.timedelta64(6 * last, "h")
    return sampling.sampling_config_from_dict({
        "name": "bench-large", "domains": [{"name": "global-0p25", "dataset": LARGE_NAME}],
        "variables": list(LARGE_VARIABLES), "splits": {"train": ["2020-01-01", str(end)]},
        "input_steps": 1, "rollout": 1, "batch_size": 1,
        "fixed_scaling": {v: {"offset": m, "scale": a} for v, (m, a) in LARGE_VARIABLES.items()},
    }, "bench-large sampling config")


# --------------------------------------------------------------------------- readers


def make_module(config: sampling.SamplingConfig, workers: int) -> sampling.MultiDomainDataModule:
    config = dataclasses.replace(config, domain_weighting="size", num_workers=workers)
    module = sampling.MultiDomainDataModule(config)
    module.setup()
    return module


def store_path(domain: sampling.DomainData) -> str:
    """The zarr store a domain reads: its generated cache store or its catalog path."""
    return domain.zarr_path or catalog.get_entry(domain.domain.dataset).source.path


def raw_reader(module: sampling.MultiDomainDataModule, pairs: list[tuple[int, int]],
               keep_handles: bool):
    """A function reading every (domain, t0) window straight from zarr; returns the count."""
    domains = module.domains

    def run() -> int:
        groups = [zarr.open_group(store_path(d), mode="r") for d in domains]
        names = [[*d.variables, *d.forcings] for d in domains]
        if keep_handles:
            handles = [{v: g[v] for v in n} for g, n in zip(groups, names, strict=True)]
            for d, t0 in pairs:
                for v in names[d]:
                    handles[d][v][t0:t0 + domains[d].window]
        else:
            for d, t0 in pairs:
                for v in names[d]:
                    groups[d][v][t0:t0 + domains[d].window]
        return len(pairs)

    return run


def built_loader(module: sampling.MultiDomainDataModule, workers: int, prefetch: int,
                 pin: bool = False) -> DataLoader:
    """``module.dataloader("train")`` as it builds it, with ``prefetch_factor``/pin_memory."""
    return DataLoader(module.dataset, batch_sampler=module.batch_sampler("train"),
                      collate_fn=module.dataset.collate, num_workers=workers,
                      worker_init_fn=sampling._worker_init, persistent_workers=True,
                      prefetch_factor=prefetch, pin_memory=pin)


def loader_reader(loader):
    def run() -> int:
        return sum(int(batch["x"].shape[0]) for batch in loader)

    return run


def stage_times(module: sampling.MultiDomainDataModule, d_index: int,
                t0s: list[int]) -> dict[str, float]:
    """Median seconds per sample of the loader's stages, in this process, as
    ``MultiDomainDataset.__getitem__`` runs them (one source), then the collation."""
    domain, dataset = module.domains[d_index], module.dataset
    stages: dict[str, list[float]] = {}

    def clock(name: str, start: float) -> float:
        now = time.perf_counter()
        stages.setdefault(name, []).append(now - start)
        return now

    for t0 in t0s:
        start = time.perf_counter()
        raw = domain.read(domain.variables, t0, domain.window)
        start = clock("read", start)
        state = domain.normalisers["variables"].normalise(torch.from_numpy(raw))
        start = clock("normalise", start)
        domain.imputers["variables"](state, inputs=domain.input_steps)
        start = clock("impute", start)
        forcing = torch.from_numpy(domain.read_forcings(t0, domain.window))
        domain.imputers["forcings"].with_channels(domain.normalisers["forcings"].normalise(
            forcing))
        clock("forcings", start)
        sample = dataset[(d_index, t0)]  # again, untimed: the sample to collate
        start = time.perf_counter()
        dataset.collate([sample])
        clock("collate", start)
    return {name: statistics.median(values) for name, values in stages.items()}


def timed(run) -> tuple[int, float]:
    start = time.perf_counter()
    n = run()
    return n, time.perf_counter() - start


# --------------------------------------------------------------------------- main


def data_notes(base: sampling.MultiDomainDataModule, large: bool, sample_mb: float) -> str:
    """What was read: the demo train split or the large store."""
    cfg, d0 = base.config, base.domains[0]
    if large:
        return (f"Store {LARGE_NAME}.zarr in $WORKBENCH_CACHE: {d0.n_grid:,} points (0.25 deg "
                f"global, 721 x 1440 on one grid axis), {len(cfg.variables)} float32 variables, "
                f"{d0.times.size} 6-hourly steps, zarr chunks of one field (1 step x all points, "
                "4.2 MB, zstd), read through a catalog entry of kind zarr, so the loader reads "
                "through xarray (as for any catalog zarr store; only generated cache stores are "
                f"read with zarr directly). Sampling config made in code: one domain, batch "
                f"{cfg.batch_size}, input 1 + rollout 1 steps, no forcings or statics, fixed "
                f"scaling. One sample (input + target window) = {sample_mb:.0f} MB of float32; "
                f"{len(d0.samples('train'))} samples per epoch (windows of the train split).")
    domains = ", ".join(f"{d.name} {len(d.samples('train'))} x {d.n_grid} points"
                        for d in base.domains)
    return (f"Train split of configs/sampling/demo.yaml, domain_weighting size ({domains}); "
            f"batch {cfg.batch_size}; {len(cfg.variables)} variables + {len(cfg.forcings)} "
            f"forcing, windows of {d0.window} steps from zarr chunks of 8 steps (one sample "
            f"{sample_mb:.2f} MB on the larger domain). Loader = read + normalise + collate "
            "([batch, time, variable, grid] tensors, times, labels).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", action="store_true",
                        help="a 0.25 deg global store of 24 variables (~200 MB samples)")
    parser.add_argument("--large-steps", type=int, default=21,
                        help="time steps of the large store (21: 20 sample windows)")
    parser.add_argument("--large-samples", type=int,
                        help="only the first N windows of the store per epoch (quick checks)")
    parser.add_argument("--prefetch-factor", default="",
                        help="comma list: extra loader rows at 1 and 2 workers with it")
    parser.add_argument("--quick", action="store_true",
                        help="print the table without appending it to RESULTS.md")
    args = parser.parse_args()
    prefetch = [int(p) for p in args.prefetch_factor.split(",") if p]
    load_start, wall = os.getloadavg()[0], time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as folder:
        if args.large:
            config = large_config(*large_store(args.large_steps), Path(folder),
                                  args.large_samples)
        else:
            config = sampling.load_sampling_config("demo")
        base = make_module(config, 0)
        pairs = [pair for batch in base.batch_sampler("train") for pair in batch]
        readers = {("raw", 0): raw_reader(base, pairs, keep_handles=True),
                   ("raw, open per read", 0): raw_reader(base, pairs, keep_handles=False)}
        for workers in WORKERS:
            module = make_module(config, workers)  # fresh: workers fork with nothing opened
            readers[("loader", workers)] = loader_reader(module.train_dataloader())
        for factor in prefetch:
            for workers in (1, 2):
                module = make_module(config, workers)
                readers[(f"loader, prefetch {factor}", workers)] = loader_reader(
                    built_loader(module, workers, factor))
        if torch.cuda.is_available():
            readers[("loader, pin_memory", 2)] = loader_reader(
                built_loader(make_module(config, 2), 2, 2, pin=True))

        warm = {}
        for key, run in readers.items():  # warm-up: page cache, worker start-up, first opens
            print(f"warm-up: {key[0]}, {key[1]} workers", flush=True)
            n, seconds = timed(run)
            assert n == len(pairs), (key, n)
            warm[key] = seconds
        times: dict[tuple[str, int], list[float]] = {key: [] for key in readers}
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1}/{args.repeats}", flush=True)
            for key, run in readers.items():
                times[key].append(timed(run)[1])
        del readers  # ends the persistent workers while the catalog folder is there
        d_index = max(range(len(base.domains)), key=lambda i: base.domains[i].n_grid)
        t0s = [t for d, t in pairs if d == d_index][:3]
        stages = stage_times(base, d_index, t0s)

    d0 = base.domains[d_index]
    sample_mb = d0.window * (len(d0.variables) + len(d0.forcings)) * d0.n_grid * 4 / 1e6
    raw_s = statistics.median(times[("raw", 0)])
    rows = []
    for (reader, workers), values in times.items():
        seconds = statistics.median(values)
        rows.append({"reader": reader, "workers": workers, "samples": len(pairs),
                     "seconds": seconds, "samples_per_s": len(pairs) / seconds,
                     "MB_per_s": len(pairs) * sample_mb / seconds,
                     "ratio_to_raw": raw_s / seconds})
    loaders = [r for r in rows if r["reader"] == "loader"]
    met = "MET" if all(r["ratio_to_raw"] >= 0.8 for r in loaders) else "MISSED"
    ratios = ", ".join(f"workers {r['workers']}: {r['ratio_to_raw']:.2f} x raw" for r in loaders)
    warmups = ", ".join(f"{r} w{w} {s:.2f} s" for (r, w), s in warm.items())
    split = ", ".join(f"{name} {seconds:.3g} s" for name, seconds in stages.items())
    extra = ("`loader, prefetch N`: the DataModule's DataLoader rebuilt here with "
             "prefetch_factor N (the DataModule's loader has torch's default, 2, and exposes "
             "neither prefetch_factor nor pin_memory). " if prefetch else "")
    extra += ("pin_memory: the `loader, pin_memory` row (2 workers). " if torch.cuda.is_available()
              else "pin_memory not tried: it only matters for copies to a CUDA device, and "
              "this torch has no CUDA. ")
    notes = (
        f"Goal: the loader reaches at least 80 % of the raw read rate at every worker count: "
        f"{met} ({ratios}). Raw reads in one process; workers read in parallel processes, so "
        f"their ratio can pass 1 ({os.cpu_count()} cores).\n\n"
        f"{data_notes(base, args.large, sample_mb)} `MB_per_s`: samples x the sample's size "
        f"/ seconds. {extra}One sample of {d0.name} through the loader's stages in the main "
        f"process (median of {len(t0s)}): {split}. Median of {args.repeats} epochs after one warm-up epoch per "
        f"setting (warm-up, worker start-up included: {warmups}). zarr {zarr.__version__}.\n\n"
        f"Command: `.venv/bin/python benchmarks/dataloader.py {' '.join(sys.argv[1:])}`; "
        f"whole script {time.perf_counter() - wall:.0f} s. Load average at start "
        f"{load_start:.2f}, at end {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores."
    )
    what = "0.25 deg global store, 24 variables" if args.large else "demo train split"
    title = f"Multi-domain data loader vs raw zarr reads ({what})"
    publish(title, rows, notes, args.quick)


if __name__ == "__main__":
    main()
