"""Multi-domain sampling: labeled datasets of different regions and resolutions in one training.

Every batch comes from one domain (so it shares one grid and one graph); the domain of each
batch is drawn by weight or by dataset size, reproducibly from a seed. Splits are by date,
per domain, in the calendar of the domain's data (:mod:`workbench.times`). Every domain is
sampled at the config's common step (:func:`workbench.sampling_config.common_step`): a domain
whose own step is finer keeps every k-th field (hourly data at 6 h: the fields at 00, 06, 12
and 18 UTC). A batch carries ``x`` [batch, input_steps, variable, grid], ``y`` [batch, rollout,
variable, grid], ``forcings`` [batch, input_steps + rollout, forcing, grid], ``statics``
[static, grid], the domain label, the times (int64 ns since 1970 in the data's calendar,
:func:`workbench.times.to_ns`), the graph id and the domain's loss weight. Missing values
(NaN) never reach the model: ``x``, ``y``, forcings and statics hold imputed values and
``x_mask``/``y_mask`` (bool, shaped as ``x``/``y``) say which were valid; the imputer's
was-missing channels are appended to the forcings and statics (:mod:`workbench.imputation`).

The batch sampler runs in the main process and hands whole batches to DataLoader workers,
so every sample is read once per epoch however many workers there are; under DDP each rank
takes every world_size-th batch of the same seeded sequence.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from . import catalog
from .errors import WorkbenchError
from .forcings import COMPUTED_FORCINGS, computed_forcing
from .imputation import GroupImputer, check_valid
from .readers import missing_steps
from .sampling_config import (  # noqa: F401 - notebooks and tests read them as sampling.*
    SPLITS,
    DomainConfig,
    SamplingConfig,
    common_step,
    load_sampling_config,
    sampling_config_from_dict,
)
from .statistics import FixedScaling, Normaliser, VariableStats, load_or_compute
from .times import iso, parse_date, time_parts, to_ns

# --------------------------------------------------------------------------- one domain


class DomainData:
    """One domain's dataset: sample windows per split, normaliser and chunk-aware reads."""

    def __init__(self, config: SamplingConfig, domain: DomainConfig, graph_id: str | None = None,
                 cache: str | Path | None = None,
                 stats: Mapping[str, VariableStats] | None = None):
        """``stats``: statistics to normalise with instead of the domain's own over its train
        split (evaluation passes the training domains' for an unseen domain)."""
        self.name = domain.name
        self.domain = domain
        self.graph_id = graph_id
        entry = catalog.get_entry(domain.dataset)
        ds = catalog.open_dataset(entry, cache=cache)
        # a dataset variable wins over the computed forcing of the same name
        self.computed = [f for f in config.forcings if f not in ds]
        unknown = [f for f in self.computed if f not in COMPUTED_FORCINGS]
        if unknown:
            stored_names = ", ".join(sorted(map(str, ds.data_vars)))
            raise WorkbenchError(
                f"domain {domain.name!r}: forcings {unknown} are neither variables of dataset "
                f"{domain.dataset!r} ({stored_names}) nor computed forcings "
                f"({', '.join(COMPUTED_FORCINGS)}); fix `forcings` in the sampling config")
        stored = [f for f in config.forcings if f not in self.computed]
        needed = [*config.variables, *stored, *config.statics]
        absent = [v for v in needed if v not in ds]
        if absent:
            raise WorkbenchError(f"domain {domain.name!r}: dataset {domain.dataset!r} lacks {absent}")
        self.variables, self.forcings, self.statics = (
            list(config.variables), list(config.forcings), list(config.statics))
        self.window = config.input_steps + config.rollout
        self.input_steps = config.input_steps
        self.step = common_step(config)
        self.native_times = ds["time"].values
        self.offset, self.stride = _subsampling(self.native_times, self.step)
        self.times = self.native_times[self.offset::self.stride]  # at the common step
        self.missing = self._sampled(missing_steps(ds))  # no window holds one (anemoi's)
        self.n_grid = int(ds.sizes["grid"])
        self.latitude, self.longitude = ds["latitude"].values, ds["longitude"].values
        self.ds = ds[needed]
        self.zarr_path = str(catalog.cache_path(entry, cache)) if (
            entry.source.kind == "generator") else None
        self._zarr = None
        self.source_names = [domain.dataset, *domain.sources]
        self.splits = {s: self._split_range(s, (domain.splits or config.splits).get(s))
                       for s in SPLITS if (domain.splits or config.splits).get(s)}
        train = self.splits.get("train")
        start, end = (iso(self.times[train[0]]), iso(self.times[train[1]])) if train else (None, None)
        measured = [v for v in needed if v not in config.fixed_scaling]
        stats_given = stats
        if stats is None:
            try:  # (all-NaN slices warn on their way to the error below)
                with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
                    stats = load_or_compute(ds, domain.dataset, measured, start, end,
                                            cache) if measured else {}
            except WorkbenchError:  # say which variable has nothing valid, and where
                lo, hi = train or (0, self.times.size - 1)
                check_valid(self.ds, measured, f"domain {self.name!r}: dataset "
                            f"{domain.dataset!r}", self._native(lo, hi - lo + 1),
                            f"{iso(self.times[lo])} .. {iso(self.times[hi])}")
                raise
        self.stats = dict(stats)  # what the normalisers were built from
        fixed = config.fixed_scaling
        self.normalisers = {
            "variables": Normaliser(self.variables, stats, fixed),
            # computed forcings are in [-1, 1] already: identity unless fixed_scaling says else
            "forcings": Normaliser(self.forcings, stats,
                                   {**{f: FixedScaling() for f in self.computed}, **fixed}),
            "statics": Normaliser(self.statics, stats, fixed),
        }
        # Aurora (seed 003): each further source with its own normaliser, over its train split
        # (or the statistics given); a variable it lacks reads as missing (no loss for it)
        self.extra_sources = [_SourceReader(name, self, config, cache, (start, end), stats_given)
                              for name in domain.sources]
        self.index_t = self._sampled(_read_index(domain.index)) if domain.index else None
        raw_statics = np.stack([ds[v].values for v in self.statics]).astype(np.float32) if (
            self.statics) else np.zeros((0, self.n_grid), np.float32)
        self.imputers = {group: GroupImputer(n.variables, config.imputer, n)
                         for group, n in self.normalisers.items()}
        statics = self.normalisers["statics"].normalise(torch.from_numpy(raw_statics))
        self.statics_tensor = self.imputers["statics"].with_channels(statics[None])[0]

    def _sampled(self, native: np.ndarray) -> np.ndarray:
        """Indices of the native time axis as indices of :attr:`times` (the ones it keeps)."""
        kept = (native >= self.offset) & ((native - self.offset) % self.stride == 0)
        return (native[kept] - self.offset) // self.stride

    def _native(self, t0: int, n: int) -> slice:
        """The native time steps of ``n`` steps of :attr:`times` from ``t0``."""
        start = self.offset + t0 * self.stride
        return slice(start, start + (n - 1) * self.stride + 1, self.stride)

    def _split_range(self, split: str, dates: Sequence[str] | None) -> tuple[int, int]:
        where = f"domain {self.name!r}: split {split}"
        lo, hi = (parse_date(d, self.times, where) for d in dates[:2])
        inside = np.flatnonzero((self.times >= lo) & (self.times <= hi))
        if inside.size < self.window:
            raise WorkbenchError(
                f"domain {self.name!r}: split {split} ({dates[0]} .. {dates[1]}) holds "
                f"{inside.size} time steps, fewer than one sample window ({self.window}); "
                "widen the split or shorten input_steps/rollout")
        return int(inside[0]), int(inside[-1])

    def samples(self, split: str) -> np.ndarray:
        """First time index of every sample window inside ``split`` that holds no missing
        date (:func:`workbench.readers.missing_steps`)."""
        if split not in self.splits:
            raise WorkbenchError(f"domain {self.name!r} has no {split!r} split")
        lo, hi = self.splits[split]
        t = np.arange(lo, hi - self.window + 2)
        if split == "train" and self.index_t is not None:
            t = self.index_t[(self.index_t >= lo) & (self.index_t <= hi - self.window + 1)]
            if t.size == 0:
                raise WorkbenchError(f"domain {self.name!r}: index {self.domain.index} has no "
                                     "row inside the train split")
        later = np.append(self.missing, np.iinfo(np.int64).max)  # first missing step >= t:
        t = t[later[np.searchsorted(self.missing, t)] >= t + self.window]  # past the window
        if t.size == 0:
            raise WorkbenchError(f"domain {self.name!r}: every window of split {split} holds a "
                                 "missing date (the store's missing_dates); widen the split")
        return t

    def read_forcings(self, t0: int, n: int) -> np.ndarray:
        """float32 (n, forcing, grid) in config order: stored forcings read, computed ones
        evaluated at the window's times (:func:`workbench.forcings.computed_forcing`)."""
        stored = [f for f in self.forcings if f not in self.computed]
        raw = self.read(stored, t0, n)
        if not self.computed:
            return raw
        parts = time_parts(self.times[t0:t0 + n])  # in the data's calendar
        return np.stack([
            computed_forcing(f, parts, self.latitude, self.longitude) if f in self.computed
            else raw[:, stored.index(f)] for f in self.forcings], axis=1)

    def read_source(self, source: int, names: Sequence[str], t0: int, n: int) -> np.ndarray:
        """:meth:`read` from source ``source`` (0: the domain's dataset, then its ``sources``)."""
        return self.read(names, t0, n) if source == 0 else self.extra_sources[source - 1].read(
            names, t0, n)

    def source_normaliser(self, source: int) -> Normaliser:
        """The variables' normaliser of source ``source`` (0: the domain's own)."""
        return self.normalisers["variables"] if source == 0 else (
            self.extra_sources[source - 1].normaliser)

    def read(self, names: Sequence[str], t0: int, n: int) -> np.ndarray:
        """float32 array (n, variable, grid) read chunk-aware (zarr directly when possible).

        zarr array handles are opened once per process and kept: opening one reads its
        metadata, about half the cost of a read (benchmarks/dataloader.py)."""
        if not names:
            return np.zeros((n, 0, self.n_grid), np.float32)
        if self.zarr_path is not None:
            if self._zarr is None:
                self._zarr = _ZarrArrays(self.zarr_path)
            arrays = self._zarr
            return np.stack([arrays[v][self._native(t0, n)] for v in names], axis=1).astype(
                np.float32, copy=False)
        block = self.ds[list(names)].isel(time=self._native(t0, n))
        return np.stack([block[v].values for v in names], axis=1).astype(np.float32, copy=False)

    def __getstate__(self):  # zarr handles are reopened in each worker
        state = dict(self.__dict__)
        state["_zarr"] = None
        return state


class _SourceReader:
    """Another dataset of a domain (same grid and times), read like the domain's own, with
    its own normaliser. It may lack some of the variables: those read as NaN, so they are
    imputed in an input and masked out of the loss in a target."""

    def __init__(self, name: str, domain: DomainData, config: SamplingConfig,
                 cache: str | Path | None, train: tuple[str | None, str | None],
                 stats: Mapping[str, VariableStats] | None):
        entry = catalog.get_entry(name)
        ds = catalog.open_dataset(entry, cache=cache)
        native = domain.native_times
        if ds.sizes["grid"] != domain.n_grid or not np.array_equal(ds["time"].values, native):
            raise WorkbenchError(
                f"domain {domain.name!r}: source {name!r} has {ds.sizes['grid']} points and "
                f"{ds.sizes['time']} times, {domain.domain.dataset!r} {domain.n_grid} and "
                f"{native.size}; sources of one domain must share grid and times")
        self.present = [v for v in domain.variables if v in ds]
        if not self.present:
            raise WorkbenchError(
                f"domain {domain.name!r}: source {name!r} holds none of the variables "
                f"{domain.variables}; give it at least one or drop it from `sources`")
        self.ds = ds[self.present]
        if stats is None:
            measured = [v for v in self.present if v not in config.fixed_scaling]
            with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
                stats = load_or_compute(ds, name, measured, *train, cache) if measured else {}
            stats = {**domain.stats, **stats}  # an absent variable keeps the domain's (unused)
        self.normaliser = Normaliser(domain.variables, stats, config.fixed_scaling)
        self.offset, self.stride = domain.offset, domain.stride
        self.n_grid = domain.n_grid
        self.zarr_path = str(catalog.cache_path(entry, cache)) if (
            entry.source.kind == "generator") else None
        self._zarr = None

    def read(self, names: Sequence[str], t0: int, n: int) -> np.ndarray:
        """float32 (n, variable, grid); NaN for a variable this source lacks."""
        have = [v for v in names if v in self.present]
        part = DomainData.read(self, have, t0, n)
        if len(have) == len(names):
            return part
        out = np.full((n, len(names), self.n_grid), np.nan, np.float32)
        out[:, [names.index(v) for v in have]] = part
        return out

    _native = DomainData._native
    __getstate__ = DomainData.__getstate__


class _ZarrArrays(dict):
    """The arrays of one zarr store by name, each opened on first use and then reused."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.group = None

    def __missing__(self, name: str):
        if self.group is None:
            import zarr

            self.group = zarr.open_group(self.path, mode="r")
        array = self[name] = catalog.guarded_array(self.path, self.group[name], name)
        return array


def _subsampling(times: np.ndarray, step) -> tuple[int, int]:
    """(offset, stride) that take ``times`` to ``step``: every stride-th time from the first
    one on the step's own grid since 1970-01-01 00:00 (00, 06, 12, 18 UTC for 6 h), else from
    the first time."""
    if times.size < 2:
        return 0, 1
    native = int(to_ns(times[1:2])[0] - to_ns(times[:1])[0])
    stride = int(step.value // native)
    aligned = np.flatnonzero(to_ns(times[:stride]) % step.value == 0)
    return (int(aligned[0]) if aligned.size else 0), stride


def _read_index(path: str) -> np.ndarray:
    table = pd.read_csv(path)
    if "t_index" not in table:
        raise WorkbenchError(f"index {path} has no t_index column; use a tiling index")
    if "ny" in table and table.get("j0", pd.Series([0])).max() > 0:
        raise WorkbenchError(f"index {path} holds spatial tiles; graph models train on whole "
                             "domains: tile with tile_size None")
    return table["t_index"].to_numpy(dtype=np.int64)


# --------------------------------------------------------------------------- dataset


class MultiDomainDataset(Dataset):
    """Map-style dataset over (domain index, first time index) pairs."""

    def __init__(self, domains: Sequence[DomainData], same_source: bool = True, seed: int = 0):
        self.domains = list(domains)
        self.same_source, self.seed = same_source, seed

    def __getitem__(self, key: tuple[int, int], sources: tuple[int, int] = (0, 0)) -> dict:
        d_index, t0 = key
        domain = self.domains[d_index]
        s_in, s_out = sources
        steps = domain.input_steps
        if s_in == s_out:  # one read of the whole window, in its source's normalised units
            raw = domain.read_source(s_in, domain.variables, t0, domain.window)
            state = domain.source_normaliser(s_in).normalise(torch.from_numpy(raw))
        else:  # input and target each in their own source's
            state = torch.cat([domain.source_normaliser(s).normalise(torch.from_numpy(
                domain.read_source(s, domain.variables, t, n))) for s, t, n in (
                    (s_in, t0, steps), (s_out, t0 + steps, domain.window - steps))])
        state, valid = domain.imputers["variables"](state, inputs=steps)
        forcing = torch.from_numpy(domain.read_forcings(t0, domain.window))
        forcing = domain.imputers["forcings"].with_channels(
            domain.normalisers["forcings"].normalise(forcing))
        return {"x": state[:steps], "y": state[steps:], "forcings": forcing,
                "x_mask": valid[:steps], "y_mask": valid[steps:],
                "domain_index": d_index, "t0": t0, "sources": (s_in, s_out)}

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list[dict]:
        """A whole batch (the DataLoader calls this): one source choice for all its samples."""
        d_index = keys[0][0]
        n = len(self.domains[d_index].source_names)
        sources = (0, 0)
        if n > 1:  # seeded by the batch itself, so any worker draws the same sources for it
            rng = np.random.default_rng([self.seed, d_index, *(int(t) for _, t in keys)])
            s_in = int(rng.integers(n))
            sources = (s_in, s_in if self.same_source else int(rng.integers(n)))
        return [self.__getitem__(key, sources) for key in keys]

    def collate(self, samples: list[dict]) -> dict:
        """Stack samples of one domain into a batch with its label, times and graph id.

        Tensors are stacked by ``default_collate``: in a DataLoader worker straight into shared
        memory, so a batch is not copied again on its way to the main process."""
        d_index = samples[0]["domain_index"]
        if any(s["domain_index"] != d_index for s in samples):
            raise RuntimeError("a batch mixes domains: use MultiDomainBatchSampler")
        domain = self.domains[d_index]
        t0 = torch.tensor([s["t0"] for s in samples])
        times = np.stack([domain.times[s["t0"]:s["t0"] + domain.window] for s in samples])
        return {
            "x": default_collate([s["x"] for s in samples]),
            "y": default_collate([s["y"] for s in samples]),
            "x_mask": default_collate([s["x_mask"] for s in samples]),
            "y_mask": default_collate([s["y_mask"] for s in samples]),
            "forcings": default_collate([s["forcings"] for s in samples]),
            "statics": domain.statics_tensor,
            "domain": domain.name,
            "domain_index": d_index,
            "graph_id": domain.graph_id,
            "source_input": domain.source_names[samples[0]["sources"][0]],
            "source_target": domain.source_names[samples[0]["sources"][1]],
            "loss_weight": float(domain.domain.loss_weight),
            "t0": t0,
            "times": torch.from_numpy(to_ns(times)),
        }


# --------------------------------------------------------------------------- batch sampler


class MultiDomainBatchSampler(Sampler):
    """Batches of (domain, t0) pairs; every batch from one domain.

    ``weights`` None: every batch of every domain once per epoch, in a seeded shuffled order
    (domain frequency follows dataset size). With weights: the domain of each batch is drawn
    by weight and samples are taken without replacement from a shuffled cycle per domain.
    ``shuffle=False`` gives each domain's batches in time order, the domains in turn (validation,
    test: a limited number of batches still covers every domain).
    """

    def __init__(self, samples: Sequence[np.ndarray], batch_size: int,
                 weights: Sequence[float] | None = None, batches_per_epoch: int | None = None,
                 seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        if any(len(s) == 0 for s in samples):
            raise WorkbenchError("a domain has no sample in this split")
        self.samples = [np.asarray(s) for s in samples]
        self.batch_size = batch_size
        self.weights = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size = rank, world_size
        total = sum(-(-len(s) // batch_size) for s in self.samples)
        self.batches_per_epoch = batches_per_epoch or total
        self.epoch = 0
        self.skip = 0  # batches of the current epoch already trained (a resumed run)

    @property
    def sampler(self) -> MultiDomainBatchSampler:
        """Lightning calls ``set_epoch`` on ``batch_sampler.sampler`` at every epoch start."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Continue a run mid-epoch: the next iteration starts after ``batches_done`` batches."""
        self.epoch, self.skip = epoch, batches_done

    def _all_batches(self) -> list[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if not self.shuffle:  # time order per domain, domains taken in turn
            per_domain = [[[(d, int(t)) for t in s[i:i + self.batch_size]]
                           for i in range(0, len(s), self.batch_size)]
                          for d, s in enumerate(self.samples)]
            return [b for turn in itertools.zip_longest(*per_domain) for b in turn if b]
        if self.weights is None:
            batches = []
            for d, s in enumerate(self.samples):
                order = rng.permutation(s)
                batches += [[(d, int(t)) for t in order[i:i + self.batch_size]]
                            for i in range(0, len(order), self.batch_size)]
            return [batches[i] for i in rng.permutation(len(batches))]
        domains = rng.choice(len(self.samples), size=self.batches_per_epoch, p=self.weights)
        cursors = [[rng.permutation(s), 0] for s in self.samples]
        batches = []
        for d in domains:
            batch = []
            while len(batch) < self.batch_size:
                order, pos = cursors[d]
                if pos >= len(order):
                    order, pos = rng.permutation(self.samples[d]), 0
                take = order[pos:pos + self.batch_size - len(batch)]
                batch += [(int(d), int(t)) for t in take]
                cursors[d] = [order, pos + len(take)]
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches = self._all_batches()[self.rank::self.world_size]
        skip, self.skip = self.skip, 0
        yield from batches[skip:]

    def __len__(self) -> int:
        return len(range(self.rank, len(self._all_batches()), self.world_size))


# --------------------------------------------------------------------------- data module


def _worker_init(_: int) -> None:
    """In a forked worker, dask's inherited thread pool can deadlock: compute synchronously."""
    import dask

    dask.config.set(scheduler="synchronous")
    torch.set_num_threads(1)


class MultiDomainDataModule(pl.LightningDataModule):
    """Lightning DataModule over the domains of a SamplingConfig."""

    def __init__(self, config: SamplingConfig | str | Path, graph_ids: Mapping[str, str] | None = None,
                 cache: str | Path | None = None,
                 stats: Mapping[str, VariableStats] | None = None):
        super().__init__()
        self.config = config if isinstance(config, SamplingConfig) else load_sampling_config(config)
        self.graph_ids = dict(graph_ids or {})
        self.cache = cache
        self.stats = stats  # statistics every domain is normalised with (None: each its own)
        self.domains: list[DomainData] = []
        self.resume: tuple[int, int] | None = None  # (epoch, batches done) of a resumed run

    def setup(self, stage: str | None = None) -> None:
        if not self.domains:
            self.domains = [DomainData(self.config, d, self.graph_ids.get(d.name), self.cache,
                                       self.stats) for d in self.config.domains]
            self.dataset = MultiDomainDataset(self.domains, self.config.same_source,
                                              self.config.seed)

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def batch_sampler(self, split: str, weights: Sequence[float] | None = None,
                      batches_per_epoch: int | None = None) -> MultiDomainBatchSampler:
        """The split's batch sampler; ``weights`` (one per domain) and ``batches_per_epoch``
        replace the config's for training when given."""
        self.setup()
        cfg = self.config
        train = split == "train"
        if weights is not None:
            names = [d.name for d in cfg.domains]
            if len(weights) != len(names) or not all(w > 0 for w in weights):
                raise WorkbenchError(f"weights {list(weights)}: give one > 0 per domain "
                                     f"({', '.join(names)})")
        elif train and cfg.domain_weighting == "weights":
            weights = [d.weight for d in cfg.domains]
        rank, world = self._rank()
        return MultiDomainBatchSampler(
            [d.samples(split) for d in self.domains], cfg.batch_size,
            weights if train else None,
            (batches_per_epoch or cfg.batches_per_epoch) if train else None, cfg.seed,
            shuffle=train, rank=rank, world_size=world)

    def dataloader(self, split: str) -> DataLoader:
        self.setup()
        workers = self.config.num_workers
        sampler = self.batch_sampler(split)
        if split == "train" and self.resume is not None:
            sampler.resume_at(*self.resume)
            self.resume = None
        return DataLoader(self.dataset, batch_sampler=sampler,
                          collate_fn=self.dataset.collate, num_workers=workers,
                          worker_init_fn=_worker_init if workers else None,
                          persistent_workers=workers > 0 and split == "train")

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")
