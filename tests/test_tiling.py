"""Tiling and bin-norm indexes against direct numpy computations (seed 002, LDCast)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from workbench import binnorm, catalog, tiling
from workbench.binnorm import BinNormConfig
from workbench.errors import WorkbenchError
from workbench.tiling import TilingConfig

NY, NX, NT = 12, 15, 20


def synthetic(ny: int = NY, nx: int = NX, nt: int = NT, seed: int = 0) -> xr.Dataset:
    """A small canonical dataset: heavy-tailed tp with zeros, t2m, a static, NaN patches."""
    rng = np.random.default_rng(seed)
    tp = rng.gamma(0.3, 2.0, (nt, ny, nx)) * (rng.random((nt, ny, nx)) < 0.4)
    t2m = rng.normal(280.0, 5.0, (nt, ny, nx))
    t2m[3:7, 2:9, 4:12] = np.nan  # a block several tiles wide
    tp[10, :, :6] = np.nan  # one step missing over the west
    tp[15:18, 8:, 10:] = np.nan
    lat, lon = np.meshgrid(np.linspace(30, 40, ny), np.linspace(-100, -90, nx), indexing="ij")
    flat = {"dims": ("time", "grid")}
    return xr.Dataset(
        {
            "tp": (flat["dims"], tp.reshape(nt, -1).astype(np.float32)),
            "t2m": (flat["dims"], t2m.reshape(nt, -1).astype(np.float32)),
            "orog": (("grid",), rng.random(ny * nx)),
        },
        coords={
            "time": pd.date_range("2021-01-01", periods=nt, freq="6h"),
            "latitude": ("grid", lat.ravel()),
            "longitude": ("grid", lon.ravel()),
        },
        attrs={"grid_shape": [ny, nx], "domain": "syn"},
    )


def brute_force(ds: xr.Dataset, tile, window, stride=None, time_stride=1, how="sum"):
    """Every candidate tile by explicit slicing: {(t, j, i): (missing_fraction, aggregate)}."""
    ny, nx = ds.attrs["grid_shape"]
    cube = {v: ds[v].values.reshape(-1, ny, nx).astype(np.float64) for v in ("tp", "t2m")}
    ty, tx = tile
    sy, sx = stride or tile
    out = {}
    for t in range(0, ds.sizes["time"] - window + 1, time_stride):
        for j in range(0, ny - ty + 1, sy):
            for i in range(0, nx - tx + 1, sx):
                parts = {v: c[t:t + window, j:j + ty, i:i + tx] for v, c in cube.items()}
                missing = np.mean([np.isnan(p).mean() for p in parts.values()])
                agg = np.nansum(parts["tp"]) if how == "sum" else np.nanmean(parts["tp"])
                out[(t, j, i)] = (missing, agg)
    return out


def keys(table: pd.DataFrame) -> list[tuple[int, int, int]]:
    return list(zip(table["t_index"], table["j0"], table["i0"], strict=True))


@pytest.fixture(scope="module")
def conus():
    return catalog.open_dataset("conus")


@pytest.fixture(scope="module")
def conus_tiles(conus, tmp_path_factory):
    config = TilingConfig(tile_size=(16, 16), n_time_window=4)
    return tiling.tile_index(conus, config, "conus", tmp_path_factory.mktemp("idx"))


# --------------------------------------------------------------------------- ids


def test_ids_follow_seed_002():
    assert tiling.tiling_id("conus", TilingConfig((32, 32), 4)) == "conus.32x32.4"
    assert tiling.tiling_id("conus", TilingConfig((32, 32), 4, stride=(32, 32))) == "conus.32x32.4"
    assert (tiling.tiling_id("conus", TilingConfig((32, 32), 4, stride=(16, 16), time_stride=2))
            == "conus.32x32.4.s16x16.t2")
    assert tiling.tiling_id("conus", TilingConfig(None, 12)) == "conus.full.12"
    tid = "conus.32x32.4.s16x16.t2"
    ids = {binnorm.sampling_id(tid, c) for c in (
        BinNormConfig(), BinNormConfig(seed=1), BinNormConfig(n_bins=5),
        BinNormConfig(method="importance"), BinNormConfig(bin_edges="log"))}
    assert len(ids) == 5 and all(i.startswith(f"{tid}.4.") for i in ids)
    assert binnorm.sampling_id(tid, BinNormConfig(n_time_sample=2)).startswith(f"{tid}.2.")


# --------------------------------------------------------------------------- tiling


@pytest.mark.parametrize("tile, window, stride, time_stride, expected", [
    ((4, 5), 3, None, 1, 3 * 3 * 18),
    ((4, 5), 3, (2, 3), 2, 5 * 4 * 9),  # overlapping tiles, every other window
    ((12, 15), 1, None, 1, 20),
    ((5, 4), 4, (3, 3), 5, 3 * 4 * 4),  # strides that leave a margin
])
def test_tile_counts_and_values_match_numpy(tmp_path, monkeypatch, tile, window, stride,
                                            time_stride, expected):
    monkeypatch.setattr(tiling, "CHUNK_STEPS", 7)  # windows straddle the time chunks
    ds = synthetic()
    config = TilingConfig(tile, window, stride, time_stride, max_missing_fraction=0.05)
    table = tiling.tile_index(ds, config, "syn", tmp_path)
    ny, nx = tile
    sy, sx = stride or tile
    assert expected == (((NY - ny) // sy + 1) * ((NX - nx) // sx + 1)
                        * ((NT - window) // time_stride + 1))
    reference = brute_force(ds, tile, window, stride, time_stride)
    assert table.attrs["tiles_total"] == len(reference) == expected
    dropped = {k for k, (missing, _) in reference.items() if missing > 0.05}
    assert 0 < len(dropped) < expected  # the NaN patches bite, but not everywhere
    assert table.attrs["dropped_missing"] == len(dropped)
    assert sorted(keys(table)) == sorted(set(reference) - dropped)
    got = {k: (m, a) for k, m, a in zip(keys(table), table["missing_fraction"],
                                         table["aggregate"], strict=True)}
    for k in got:
        np.testing.assert_allclose(got[k], reference[k], rtol=1e-9, atol=1e-9)
    assert (table[["ny", "nx", "n_time"]].to_numpy() == [ny, nx, window]).all()
    times = pd.DatetimeIndex(ds["time"].values)
    assert list(table["time"]) == [times[t].isoformat() for t in table["t_index"]]
    assert table["tile_id"].is_unique


def test_mean_aggregate_ignores_nan_and_zero_tiles_are_exact(tmp_path):
    ds = synthetic()
    tp = ds["tp"].values.reshape(NT, NY, NX)
    tp[:, 4:8, 5:10] = 0.0  # a dry inner tile: it must aggregate to exactly 0 (no round-off)
    ds["tp"] = (("time", "grid"), tp.reshape(NT, -1))
    config = TilingConfig((4, 5), 2, max_missing_fraction=1.0, aggregate="mean")
    table = tiling.tile_index(ds, config, "syn", tmp_path)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="empty slice"):
        reference = brute_force(ds, (4, 5), 2, how="mean")
    no_value = [k for k, (_, agg) in reference.items() if np.isnan(agg)]
    assert len(no_value) == 2  # tp is NaN over one whole tile for two windows: dropped
    assert table.attrs["dropped_missing"] == 2 and len(table) == len(reference) - 2
    assert not set(no_value) & set(keys(table))
    for k, agg in zip(keys(table), table["aggregate"], strict=True):
        assert agg == pytest.approx(reference[k][1], rel=1e-9, abs=1e-12)
    dry = table[(table["j0"] == 4) & (table["i0"] == 5)]
    assert len(dry) == NT - 1 and (dry["aggregate"] == 0.0).all()


def test_whole_domain_tiling_on_conus(conus, tmp_path):
    table = tiling.tile_index(conus, TilingConfig(None, 4), "conus", tmp_path)
    n_steps = conus.sizes["time"]
    assert len(table) == table.attrs["tiles_total"] == n_steps - 3
    assert table.attrs["tiling_id"] == "conus.full.4"
    assert (table[["j0", "i0", "ny", "nx"]].to_numpy() == [0, 0, 70, 119]).all()
    per_step = conus["tp"].values.astype(np.float64).sum(axis=1)
    expected = np.array([per_step[t:t + 4].sum() for t in range(n_steps - 3)])
    np.testing.assert_allclose(table["aggregate"], expected, rtol=1e-9)
    np.testing.assert_array_equal(table["t_index"], np.arange(n_steps - 3))
    assert (table["missing_fraction"] == 0).all()


# --------------------------------------------------------------------------- bins


def test_bin_counts_and_edges_against_numpy():
    rng = np.random.default_rng(3)
    values = np.concatenate([np.zeros(50), rng.lognormal(0, 2, 950)])
    for kind in ("quantile", "log", "linear"):
        edges = binnorm.make_bin_edges(values, 6, kind)
        np.testing.assert_array_equal(binnorm.bin_counts(values, edges),
                                      np.histogram(values, edges)[0])
        assert edges[0] == 0 and edges[1] == values[values > 0].min()
        assert binnorm.bin_counts(values, edges)[0] == 50  # the zeros' own bin
    positive = values[values > 0]
    np.testing.assert_allclose(binnorm.make_bin_edges(values, 6, "quantile")[1:],
                               np.quantile(positive, np.linspace(0, 1, 6)))
    np.testing.assert_allclose(binnorm.make_bin_edges(values, 6, "log")[1:],
                               np.geomspace(positive.min(), positive.max(), 6))
    np.testing.assert_allclose(binnorm.make_bin_edges(positive, 4, "linear"),
                               np.linspace(positive.min(), positive.max(), 5))


def test_equalize_flattens_a_skewed_histogram(conus_tiles, tmp_path):
    config = BinNormConfig(n_bins=10, bin_edges="linear", n_samples=5007)
    sample = binnorm.bin_norm_sample(conus_tiles, config, tmp_path)
    edges = np.array(sample.attrs["bin_edges"])
    before = binnorm.bin_counts(conus_tiles["aggregate"], edges)
    after = binnorm.bin_counts(sample["aggregate"], edges)
    assert list(before) == sample.attrs["counts_before"]
    assert list(after) == sample.attrs["counts_after"]
    assert before[:2].sum() > 0.8 * before.sum()  # tp: most tiles in the lowest bins
    non_empty = np.flatnonzero(before)
    assert after.sum() == len(sample) == 5007
    assert np.all(np.abs(after[non_empty] - 5007 // non_empty.size) <= 1)
    assert np.all(after[before == 0] == 0)
    np.testing.assert_array_equal(sample["bin"], binnorm.assign_bins(sample["aggregate"], edges))
    # the weights undo the re-balancing: weighted counts = the input's share of each bin
    weighted = np.bincount(sample["bin"], weights=sample["weight"], minlength=before.size)
    np.testing.assert_allclose(weighted, before / before.sum() * 5007, rtol=1e-9)
    assert set(sample.columns) == set(tiling.TILE_COLUMNS) | {"bin", "weight"}


def test_importance_keeps_tiles_with_probability_q(conus_tiles, tmp_path):
    config = BinNormConfig(method="importance", q_min=0.1, mean_weight=1.0, seed=4)
    sample = binnorm.bin_norm_sample(conus_tiles, config, tmp_path)
    a = conus_tiles["aggregate"].to_numpy()
    q = np.clip(a / a.mean(), 0.1, 1.0)  # independent of the module's importance_q
    edges = np.array(sample.attrs["bin_edges"])
    bins = binnorm.assign_bins(a, edges)
    kept = np.bincount(sample["bin"], minlength=edges.size - 1)
    for b in range(edges.size - 1):
        qb = q[bins == b]
        # kept count per bin is a sum of Bernoulli(q_i): mean sum(q), std sqrt(sum q(1-q))
        std = np.sqrt(np.sum(qb * (1 - qb)))
        assert abs(kept[b] - qb.sum()) <= 4 * std + 1e-9, (b, kept[b], qb.sum(), std)
    assert sample["tile_id"].is_unique
    by_id = dict(zip(conus_tiles["tile_id"], q, strict=True))
    np.testing.assert_allclose(sample["weight"], [1 / by_id[i] for i in sample["tile_id"]])
    assert kept[-1] == (bins == edges.size - 2).sum()  # the wettest tiles all have q = 1


def test_sampling_is_reproducible_per_seed(conus_tiles, tmp_path):
    for method in ("equalize", "importance"):
        first = binnorm.bin_norm_sample(conus_tiles, BinNormConfig(method=method), tmp_path / "a")
        again = binnorm.bin_norm_sample(conus_tiles, BinNormConfig(method=method), tmp_path / "b")
        other = binnorm.bin_norm_sample(conus_tiles, BinNormConfig(method=method, seed=1),
                                       tmp_path / "a")
        pd.testing.assert_frame_equal(first, again)
        assert not np.array_equal(first["tile_id"], other["tile_id"])


# --------------------------------------------------------------------------- index files


def test_index_files_are_named_by_id_and_reused(tmp_path, monkeypatch):
    ds = synthetic()
    config = TilingConfig((4, 5), 3, stride=(2, 5), max_missing_fraction=0.05)
    calls = {"tiles": 0, "sample": 0}
    compute, sample = tiling._compute_tiles, binnorm._sample

    def spy_tiles(*args, **kwargs):
        calls["tiles"] += 1
        return compute(*args, **kwargs)

    def spy_sample(*args, **kwargs):
        calls["sample"] += 1
        return sample(*args, **kwargs)

    monkeypatch.setattr(tiling, "_compute_tiles", spy_tiles)
    monkeypatch.setattr(binnorm, "_sample", spy_sample)
    first = tiling.tile_index(ds, config, "syn", tmp_path)
    path = tmp_path / "syn.4x5.3.s2x5.samples.csv"
    assert first.attrs["path"] == str(path) and path.is_file()
    meta = json.loads((tmp_path / "syn.4x5.3.s2x5.meta.json").read_text())
    assert meta["tiles_total"] == first.attrs["tiles_total"]
    mtime = path.stat().st_mtime_ns
    second = tiling.tile_index(ds, config, "syn", tmp_path)
    assert calls["tiles"] == 1 and path.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(first, second)
    assert first.attrs == second.attrs
    pd.testing.assert_frame_equal(pd.read_csv(path), first, check_dtype=False)

    sconfig = BinNormConfig(n_bins=4)
    s1 = binnorm.bin_norm_sample(first, sconfig, tmp_path)
    s2 = binnorm.bin_norm_sample(second, sconfig, tmp_path)
    assert calls["sample"] == 1
    name = binnorm.sampling_id("syn.4x5.3.s2x5", sconfig)
    assert s1.attrs["path"] == str(tmp_path / f"{name}.samples.csv")
    assert s1.attrs["sampling_id"] == name == "syn.4x5.3.s2x5.3.equalize-quantile4-seed0"
    pd.testing.assert_frame_equal(s1, s2)
    assert s1.attrs == s2.attrs

    # same id, different inputs: the stale index is replaced, not reused
    looser = TilingConfig((4, 5), 3, stride=(2, 5), max_missing_fraction=1.0)
    third = tiling.tile_index(ds, looser, "syn", tmp_path)
    assert calls["tiles"] == 2
    assert third.attrs["dropped_missing"] < first.attrs["dropped_missing"]
    assert len(third) > len(first) and third.attrs["tiles_total"] == first.attrs["tiles_total"]
    binnorm.bin_norm_sample(third, sconfig, tmp_path)
    assert calls["sample"] == 2


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    ds = synthetic()

    def broken_to_csv(self, path, *args, **kwargs):
        with open(path, "w") as handle:
            handle.write("tile_id,dataset\n0,sy")  # part of the file, then the disk fills
        raise OSError("No space left on device")

    tiles = tiling.tile_index(ds, TilingConfig((4, 5), 2, max_missing_fraction=1.0), "syn",
                              tmp_path / "ok")
    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError):
        tiling.tile_index(ds, TilingConfig((4, 5), 3), "syn", tmp_path / "bad")
    with pytest.raises(OSError):
        binnorm.bin_norm_sample(tiles, BinNormConfig(), tmp_path / "bad")
    assert os.listdir(tmp_path / "bad") == []


# --------------------------------------------------------------------------- bad input


def error_of(call) -> str:
    with pytest.raises(WorkbenchError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    return message


def test_bad_tiling_inputs_raise_one_line_errors(tmp_path):
    ds = synthetic()
    run = lambda data, **kw: tiling.tile_index(data, TilingConfig(**kw), "syn", tmp_path)  # noqa: E731
    nan = ds.copy()
    nan["tp"] = nan["tp"] * np.nan
    nan["t2m"] = nan["t2m"] * np.nan
    message = error_of(lambda: run(nan, tile_size=(4, 5)))
    assert "'syn'" in message and "max_missing_fraction=0.1" in message
    message = error_of(lambda: run(ds, tile_size=(13, 5)))
    assert "13x5" in message and "12x15" in message
    message = error_of(lambda: run(ds, tile_size=(4, 5), n_time_window=21))
    assert "n_time_window=21" in message and "20 time steps" in message
    shapeless = ds.copy()
    shapeless.attrs = {}
    assert "grid_shape" in error_of(lambda: run(shapeless, tile_size=(4, 5)))
    whole = run(shapeless, n_time_window=2, max_missing_fraction=1.0)
    assert len(whole) == NT - 1  # whole-domain tiling still works
    assert "'precip'" in error_of(lambda: run(ds, tile_size=(4, 5), aggregate_variable="precip"))
    assert "'rh'" in error_of(lambda: run(ds, tile_size=(4, 5), variables=("rh",)))
    assert "aggregate 'median'" in error_of(lambda: TilingConfig(aggregate="median"))
    assert "tile_size" in error_of(lambda: TilingConfig(tile_size=(0, 4)))
    assert "stride needs a tile_size" in error_of(lambda: TilingConfig(stride=(2, 2)))
    assert os.listdir(tmp_path) == [f for f in os.listdir(tmp_path) if "full" in f]


def test_bad_sampling_inputs_raise_one_line_errors(tmp_path):
    assert "n_bins=0" in error_of(lambda: BinNormConfig(n_bins=0))
    assert "q_min=0" in error_of(lambda: BinNormConfig(q_min=0))
    assert "q_min=1.5" in error_of(lambda: BinNormConfig(q_min=1.5))
    assert "method 'stratify'" in error_of(lambda: BinNormConfig(method="stratify"))
    assert "bin_edges 'sqrt'" in error_of(lambda: BinNormConfig(bin_edges="sqrt"))
    assert "n_samples" in error_of(lambda: BinNormConfig(method="importance", n_samples=10))
    ds = synthetic()
    tiles = tiling.tile_index(ds, TilingConfig((4, 5), 2, aggregate_variable=None,
                                               max_missing_fraction=1.0), "syn", tmp_path)
    assert "NaN" in error_of(lambda: binnorm.bin_norm_sample(tiles, BinNormConfig(), tmp_path))
    bare = pd.DataFrame({"aggregate": [1.0, 2.0]})
    assert "tiling_id" in error_of(lambda: binnorm.bin_norm_sample(bare, BinNormConfig(), tmp_path))
    assert not [f for f in os.listdir(tmp_path) if f.startswith("syn.4x5.2.2")]
