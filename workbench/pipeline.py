"""A composable data pipeline, as seed 002 sketches it: a list of optional steps.

    pipeline = Pipeline([
        Open("conus"),
        Tile(tile_size=(16, 16), n_time_window=4),
        BinNormSample(n_bins=10, bin_edges="linear"),
        Normalise(fixed_scaling={"tp": FixedScaling("log1p", unit=0.001)}),
        ToTensor(batch_size=8, variables=("tp",)),
    ])
    state = pipeline.run()          # tiles, samples, normaliser, index paths
    for batch in state.loader: ...  # [batch, n_time, variable, tile points]

Without ``Tile`` every time window of the whole domain is a sample; without
``BinNormSample`` every kept tile is. Tiling and sampling write their CSV indexes
(``{tiling_id}.samples.csv``, ``{sampling_id}.samples.csv``) and reuse them when present.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import Field
from torch.utils.data import DataLoader, Dataset

from . import binnorm, catalog, tiling
from .config import Flag, NonNegative, Positive, Rate, load_yaml, parse, resolve_config, typed
from .errors import WorkbenchError
from .statistics import FixedScaling, Normaliser, load_or_compute


@dataclass
class PipelineState:
    dataset_id: str | None = None
    ds: xr.Dataset | None = None
    index_dir: Path | None = None
    tiles: pd.DataFrame | None = None
    samples: pd.DataFrame | None = None
    normaliser: Normaliser | None = None
    variables: tuple[str, ...] = ()
    loader: DataLoader | None = None
    index_paths: dict[str, str] = field(default_factory=dict)


@typed
@dataclass(frozen=True)
class Open:
    """A catalog dataset (or a path to a canonical zarr) becomes the pipeline's dataset."""

    dataset: str
    index_dir: str | None = None  # default: <cache>/indexes

    def __call__(self, state: PipelineState) -> PipelineState:
        path = Path(self.dataset)
        if path.suffix == ".zarr" and path.exists():
            ds, dataset_id = xr.open_zarr(path), path.stem
        else:
            ds, dataset_id = catalog.open_dataset(self.dataset), self.dataset
        index_dir = Path(self.index_dir) if self.index_dir else catalog.cache_dir() / "indexes"
        return dataclasses.replace(state, ds=ds, dataset_id=dataset_id, index_dir=index_dir)


@typed
@dataclass(frozen=True)
class Tile:
    """Space-time tiles (tiling.TilingConfig's fields), kept when not too much is missing."""

    tile_size: tuple[Positive, Positive] | None = None
    n_time_window: Positive = 1
    stride: tuple[Positive, Positive] | None = None
    time_stride: Positive = 1
    max_missing_fraction: Rate = 0.1
    variables: tuple[str, ...] | None = None
    aggregate_variable: str | None = "tp"
    aggregate: str = "sum"

    def __call__(self, state: PipelineState) -> PipelineState:
        _need(state, "Tile")
        config = tiling.TilingConfig(**dataclasses.asdict(self))
        tiles = tiling.tile_index(state.ds, config, state.dataset_id, state.index_dir)
        paths = {**state.index_paths, "tiling": tiles.attrs["path"]}
        return dataclasses.replace(state, tiles=tiles, samples=tiles, index_paths=paths)


@typed
@dataclass(frozen=True)
class BinNormSample:
    """Re-balance the tiles over bins of their aggregate (binnorm.BinNormConfig's fields)."""

    n_bins: Positive = 10
    method: str = "equalize"
    bin_edges: str = "quantile"
    n_samples: Positive | None = None
    q_min: Rate = 0.1
    mean_weight: Annotated[float, Field(ge=0)] = 1.0
    n_time_sample: Positive | None = None
    seed: NonNegative = 0

    def __call__(self, state: PipelineState) -> PipelineState:
        if state.tiles is None:
            raise WorkbenchError("BinNormSample needs a Tile step before it")
        config = binnorm.BinNormConfig(**dataclasses.asdict(self))
        samples = binnorm.bin_norm_sample(state.tiles, config, state.index_dir)
        paths = {**state.index_paths, "sampling": samples.attrs["path"]}
        return dataclasses.replace(state, samples=samples, index_paths=paths)


@typed
@dataclass(frozen=True)
class Normalise:
    """Statistics over the dataset's period (or start..end), or fixed scalings per variable."""

    variables: tuple[str, ...] | None = None  # default: every time-varying variable
    start: str | None = None
    end: str | None = None
    fixed_scaling: Mapping[str, FixedScaling] = field(default_factory=dict)

    def __call__(self, state: PipelineState) -> PipelineState:
        _need(state, "Normalise")
        ds = state.ds
        variables = tuple(self.variables or [v for v in ds.data_vars if "time" in ds[v].dims])
        measured = [v for v in variables if v not in self.fixed_scaling]
        stats = load_or_compute(ds, state.dataset_id, measured, self.start, self.end) if (
            measured) else {}
        normaliser = Normaliser(variables, stats, self.fixed_scaling)
        return dataclasses.replace(state, normaliser=normaliser, variables=variables)


class TileDataset(Dataset):
    """Sample rows (t_index, j0, i0, ny, nx, n_time) -> float32 [n_time, variable, points]."""

    def __init__(self, ds: xr.Dataset, rows: pd.DataFrame, variables: Sequence[str],
                 normaliser: Normaliser | None, n_time: int):
        self.ds, self.rows, self.variables = ds, rows.reset_index(drop=True), list(variables)
        self.normaliser, self.n_time = normaliser, n_time
        shape = ds.attrs.get("grid_shape")
        self.shape = tuple(shape) if shape else (1, ds.sizes["grid"])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        row = self.rows.iloc[i]
        t0, j0, i0 = int(row["t_index"]), int(row.get("j0", 0)), int(row.get("i0", 0))
        ny, nx = int(row.get("ny", self.shape[0])), int(row.get("nx", self.shape[1]))
        block = self.ds[self.variables].isel(time=slice(t0, t0 + self.n_time))
        cube = np.stack([block[v].values.reshape(self.n_time, *self.shape) for v in self.variables],
                        axis=1)[:, :, j0:j0 + ny, i0:i0 + nx]
        tensor = torch.from_numpy(np.ascontiguousarray(cube.reshape(self.n_time, len(
            self.variables), ny * nx)).astype(np.float32))
        return self.normaliser.normalise(tensor) if self.normaliser is not None else tensor


@typed
@dataclass(frozen=True)
class ToTensor:
    """Batches of the samples: torch tensors [batch, n_time, variable, tile points]."""

    batch_size: Positive = 8
    variables: tuple[str, ...] | None = None
    shuffle: Flag = True
    seed: NonNegative = 0

    def __call__(self, state: PipelineState) -> PipelineState:
        _need(state, "ToTensor")
        variables = tuple(self.variables or state.variables or
                          [v for v in state.ds.data_vars if "time" in state.ds[v].dims])
        rows = state.samples
        n_time = int(rows["n_time"].iloc[0]) if rows is not None and "n_time" in rows else 1
        if rows is None:  # no tiling: every time step of the whole domain
            rows = pd.DataFrame({"t_index": np.arange(state.ds.sizes["time"] - n_time + 1)})
        normaliser = state.normaliser
        if normaliser is not None and list(normaliser.variables) != list(variables):
            raise WorkbenchError(f"ToTensor variables {list(variables)} differ from the "
                                 f"normalised ones {list(normaliser.variables)}")
        dataset = TileDataset(state.ds, rows, variables, normaliser, n_time)
        generator = torch.Generator().manual_seed(self.seed)
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=self.shuffle,
                            generator=generator)
        return dataclasses.replace(state, loader=loader, variables=variables)


def _need(state: PipelineState, step: str) -> None:
    if state.ds is None:
        raise WorkbenchError(f"{step} needs an Open step before it")


STEPS = {"open": Open, "tile": Tile, "bin_norm": BinNormSample, "normalise": Normalise,
         "to_tensor": ToTensor}


class Pipeline:
    """Runs its steps in order on one PipelineState."""

    def __init__(self, steps: Sequence):
        self.steps = list(steps)

    def run(self, state: PipelineState | None = None) -> PipelineState:
        state = state or PipelineState()
        for step in self.steps:
            state = step(state)
        return state


def _step_from_yaml(raw: Mapping, where: str):
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise WorkbenchError(f"{where}: each step is one mapping {{name: options}} "
                             f"with name in {', '.join(STEPS)}")
    (name, options), = raw.items()
    if name not in STEPS:
        raise WorkbenchError(f"{where}: unknown step {name!r}; use {', '.join(STEPS)}")
    return parse(STEPS[name], options or {}, f"{where} ({name})")


def load_pipeline(path: str | Path) -> Pipeline:
    """A pipeline YAML: ``steps: [{open: {dataset: conus}}, {tile: {...}}, ...]``."""
    path = resolve_config(path, "pipelines")
    raw = load_yaml(path)
    if not isinstance(raw, Mapping) or set(raw) - {"steps", "description"} or "steps" not in raw:
        raise WorkbenchError(f"{path}: a pipeline file holds `steps:` (and an optional description)")
    if not isinstance(raw["steps"], list):
        raise WorkbenchError(f"{path}: `steps` must be a list of {{name: options}} mappings")
    return Pipeline([_step_from_yaml(s, str(path)) for s in raw["steps"]])


def index_summary(state: PipelineState) -> dict:
    """What `workbench data index` prints: tiles, drops, per-bin counts, index files."""
    tiles = state.tiles
    summary: dict = {"dataset": state.dataset_id, "index_files": state.index_paths}
    if tiles is not None:
        summary.update({"tiles_total": int(tiles.attrs.get("tiles_total", len(tiles))),
                        "dropped_missing": int(tiles.attrs.get("dropped_missing", 0)),
                        "tiles_kept": int(len(tiles)), "tiling_id": tiles.attrs.get("tiling_id")})
    samples = state.samples
    if samples is not None and "bin_edges" in samples.attrs:
        summary.update({"samples": int(len(samples)),
                        "sampling_id": samples.attrs.get("sampling_id"),
                        "bin_edges": [float(e) for e in samples.attrs["bin_edges"]],
                        "per_bin_before": [int(c) for c in samples.attrs["counts_before"]],
                        "per_bin_after": [int(c) for c in samples.attrs["counts_after"]]})
    return summary
