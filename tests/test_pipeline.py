"""The composable pipeline (seed 002), its YAML form and the data CLI commands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from workbench import binnorm, catalog, cli, pipeline, sampling, statistics, tiling
from workbench.errors import WorkbenchError


def test_pipeline_steps_compose_and_tensors_match_the_data(tmp_path):
    steps = [
        pipeline.Open("conus", index_dir=str(tmp_path)),
        pipeline.Tile(tile_size=(16, 16), n_time_window=2),
        pipeline.BinNormSample(n_bins=5, bin_edges="linear", n_samples=50),
        pipeline.Normalise(variables=("t2m",)),
        pipeline.ToTensor(batch_size=5, variables=("t2m",), shuffle=False),
    ]
    state = pipeline.Pipeline(steps).run()
    assert set(state.index_paths) == {"tiling", "sampling"}
    assert len(state.samples) == 50
    batch = next(iter(state.loader))
    assert batch.shape == (5, 2, 1, 256)
    row = state.samples.iloc[0]
    ds = catalog.open_dataset("conus")
    ny, nx = ds.attrs["grid_shape"]
    t0, j0, i0 = int(row["t_index"]), int(row["j0"]), int(row["i0"])
    raw = ds["t2m"].values[t0:t0 + 2].reshape(2, ny, nx)[:, j0:j0 + 16, i0:i0 + 16]
    stats = statistics.compute_statistics(ds, ["t2m"])["t2m"]
    expect = (raw.reshape(2, 256) - stats.mean) / stats.std
    np.testing.assert_allclose(batch[0, :, 0].numpy(), expect, rtol=1e-4, atol=1e-4)


def test_pipeline_without_tiling_uses_whole_domain_windows():
    state = pipeline.Pipeline([pipeline.Open("global"), pipeline.ToTensor(
        batch_size=3, variables=("z_500",), shuffle=False)]).run()
    batch = next(iter(state.loader))
    ds = catalog.open_dataset("global")
    assert batch.shape == (3, 1, 1, ds.sizes["grid"])
    torch.testing.assert_close(batch[2, 0, 0], torch.from_numpy(ds["z_500"].values[2]))


def test_step_order_and_yaml_errors(tmp_path):
    with pytest.raises(WorkbenchError, match="needs an Open step"):
        pipeline.Pipeline([pipeline.Tile()]).run()
    with pytest.raises(WorkbenchError, match="needs a Tile step"):
        pipeline.Pipeline([pipeline.Open("conus"), pipeline.BinNormSample()]).run()
    path = tmp_path / "p.yaml"
    path.write_text("steps:\n  - open: {dataset: conus}\n  - tile: {tilesize: [4, 4]}\n")
    with pytest.raises(WorkbenchError, match="unknown key 'tilesize'"):
        pipeline.load_pipeline(path)
    path.write_text("steps:\n  - shuffle: {}\n")
    with pytest.raises(WorkbenchError, match="unknown step 'shuffle'"):
        pipeline.load_pipeline(path)


def test_all_nan_dataset_and_oversized_tile(tmp_path):
    import xarray as xr

    times = pd.date_range("2020-01-01", periods=6, freq="6h")
    ds = xr.Dataset({"tp": (("time", "grid"), np.full((6, 12), np.nan))},
                    coords={"time": times, "latitude": ("grid", np.zeros(12)),
                            "longitude": ("grid", np.arange(12.0))},
                    attrs={"grid_shape": [3, 4]})
    state = pipeline.PipelineState(dataset_id="nan", ds=ds, index_dir=tmp_path)
    with pytest.raises(WorkbenchError, match="nan"):
        pipeline.Tile(tile_size=(2, 2)).__call__(state)
    with pytest.raises(WorkbenchError, match="larger than"):
        pipeline.Tile(tile_size=(5, 5)).__call__(state)
    assert not list(tmp_path.glob("*.csv"))


def test_cli_data_index_and_stats(capsys, tmp_path):
    assert cli.main(["data", "index", "conus-tp", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    tiles = pd.read_csv(summary["index_files"]["tiling"])
    assert summary["tiles_total"] == summary["tiles_kept"] + summary["dropped_missing"]
    assert summary["tiles_kept"] == len(tiles)
    edges = np.asarray(summary["bin_edges"])
    assert summary["per_bin_before"] == binnorm.bin_counts(tiles["aggregate"].to_numpy(),
                                                          edges).tolist()
    after = pd.read_csv(summary["index_files"]["sampling"])
    assert sum(summary["per_bin_after"]) == len(after)
    assert max(summary["per_bin_after"]) - min(c for c in summary["per_bin_after"] if c) <= 1

    assert cli.main(["data", "stats", "global", "--start", "2020-01-01", "--end",
                     "2020-01-31T18:00", "--variables", "t2m", "--json", "--cache",
                     str(tmp_path)]) == 0
    stats = json.loads(capsys.readouterr().out)["variables"]["t2m"]
    t2m = catalog.open_dataset("global")["t2m"].sel(time=slice("2020-01-01", "2020-01-31T18:00"))
    assert stats["mean"] == pytest.approx(float(t2m.values.astype(np.float64).mean()), rel=1e-5)
    assert cli.main(["data", "stats", "global", "--start", "2030-01-01", "--cache",
                     str(tmp_path)]) == 2
    assert "no time step" in capsys.readouterr().err


def test_training_samples_from_a_whole_domain_index(tmp_path):
    """A bin-norm index over whole-domain windows drives which train times are sampled."""
    ds = catalog.open_dataset("conus")
    tiles = tiling.tile_index(ds, tiling.TilingConfig(tile_size=None, n_time_window=2),
                              "conus", tmp_path)
    picked = binnorm.bin_norm_sample(tiles, binnorm.BinNormConfig(n_bins=4, bin_edges="linear",
                                                                n_samples=40), tmp_path)
    config = sampling.sampling_config_from_dict({
        "name": "x", "variables": ["t2m"], "splits": {"train": ["2020-01-01", "2020-02-29T18:00"]},
        "domains": [{"name": "conus", "dataset": "conus", "index": picked.attrs["path"]}]})
    domain = sampling.DomainData(config, config.domains[0])
    t = domain.samples("train")
    last = np.flatnonzero(domain.times <= np.datetime64("2020-02-29T18:00"))[-1]
    expected = picked["t_index"].to_numpy()
    np.testing.assert_array_equal(np.sort(t), np.sort(expected[expected <= last - 1]))
