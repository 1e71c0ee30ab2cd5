"""Catalog entries, discovery, validation, generated datasets and the cache."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time

import numpy as np
import pytest
import xarray as xr
from helpers import SMALL_WORLD, user_zarr, write_entry

from workbench import cachelock, catalog, cli, grids, world
from workbench.errors import WorkbenchError


def test_project_catalog_has_default_domains_and_real_sources():
    entries = catalog.load_catalog()
    for name in ("global", "conus", "europe", "era5-wb2", "hrrr-analysis", "gfs-analysis"):
        assert name in entries
    assert entries["conus"].source.grid == "hrrr"
    assert entries["era5-wb2"].source.url.startswith("gs://weatherbench2/")
    assert entries["europe"].domain == "europe"


def test_data_list_json(capsys):
    assert cli.main(["data", "list", "--json"]) == 0
    listed = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert {"global", "conus", "europe", "era5-wb2", "hrrr-analysis"} <= set(listed)
    assert listed["conus"]["domain"] == "conus"
    assert "licence" in listed["era5-wb2"] and listed["era5-wb2"]["source"]["kind"] == "zarr"


def test_generated_dataset_matches_world_and_is_cached(small_catalog, tmp_path):
    entry = catalog.get_entry("tiny-conus", [small_catalog])
    ds = catalog.open_dataset(entry, cache=tmp_path / "cache")
    grid = grids.hrrr(30)
    assert ds.sizes["grid"] == grid.size and ds.attrs["grid_shape"] == list(grid.shape)
    assert ds.sizes["time"] == 8 and ds["orog"].dims == ("grid",)
    expected = world.evaluate(["t2m"], grid.latitude, grid.longitude, ds["time"].values[:2])
    np.testing.assert_array_equal(ds["t2m"].values[:2], expected["t2m"])
    stores = list((tmp_path / "cache").glob("*.zarr"))
    assert len(stores) == 1 and stores[0].name.startswith("tiny-conus-")
    mtime = stores[0].stat().st_mtime
    catalog.open_dataset(entry, cache=tmp_path / "cache")  # reused, not regenerated
    assert stores[0].stat().st_mtime == mtime


def test_no_partial_files_when_writing_fails(small_catalog, tmp_path, monkeypatch):
    entry = catalog.get_entry("tiny-global", [small_catalog])
    real_to_zarr = xr.Dataset.to_zarr

    def write_then_fail(self, store, *args, **kwargs):
        real_to_zarr(self.isel(time=slice(0, 2)), store, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        catalog.prepare(entry, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []  # no store, no .tmp-*, no lock file


def test_user_catalog_overrides_and_env(small_catalog, monkeypatch):
    override = small_catalog.parent / "override"
    write_entry(override, "tiny-global", SMALL_WORLD.format(
        name="tiny-global", domain="elsewhere", grid="regular_latlon",
        grid_param="resolution_deg: 10"))
    assert catalog.get_entry("tiny-global", [small_catalog, override]).domain == "elsewhere"
    monkeypatch.setenv("WORKBENCH_CATALOG", str(small_catalog))
    assert "tiny-conus" in catalog.load_catalog()


def test_unknown_key_is_named(tmp_path):
    text = SMALL_WORLD.format(name="x", domain="d", grid="hrrr", grid_param="coarsen: 30")
    write_entry(tmp_path, "x", text + "colour: blue\n")
    with pytest.raises(WorkbenchError, match="unknown key 'colour'"):
        catalog.load_catalog([tmp_path])
    write_entry(tmp_path, "x", text.replace("seed: 0", "sead: 0"))
    with pytest.raises(WorkbenchError, match=r"unknown key 'sead' \(allowed"):
        catalog.load_catalog([tmp_path])


def test_duplicate_names_and_missing_folder(tmp_path):
    text = SMALL_WORLD.format(name="x", domain="d", grid="hrrr", grid_param="coarsen: 30")
    write_entry(tmp_path, "a", text)
    write_entry(tmp_path, "b", text)
    with pytest.raises(WorkbenchError, match="already used"):
        catalog.load_catalog([tmp_path])
    with pytest.raises(WorkbenchError, match="does not exist"):
        catalog.load_catalog([tmp_path / "nope"])


def test_unknown_dataset_lists_known():
    with pytest.raises(WorkbenchError, match="unknown dataset 'mars'.*global"):
        catalog.get_entry("mars")


@pytest.mark.parametrize("argv, message", [
    (["data", "show", "mars"], "unknown dataset 'mars'"),
    (["data", "show", "era5-wb2"], "needs network access"),
    (["data", "list", "--catalog", "/nonexistent"], "does not exist"),
])
def test_cli_bad_input_one_line_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_data_show_json(small_catalog, capsys):
    assert cli.main(["data", "show", "tiny-global", "--json", "--catalog", str(small_catalog)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["grid_points"] == 19 * 36 and info["grid_shape"] == [19, 36]
    assert info["period"]["steps"] == 8 and info["period"]["time_step"] == "0 days 06:00:00"
    assert info["missing_fraction"] == 0.0
    assert set(info["variables"]) == {"t2m", "tp", "orog"}


# --------------------------------------------------------------------------- damage and locks


def _tiny(small_catalog, cache):
    entry = catalog.get_entry("tiny-global", [small_catalog])
    return entry, catalog.cache_path(entry, cache)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_chunk_of_a_cache_entry_is_regenerated_when_read(small_catalog, tmp_path,
                                                                 damage, capsys):
    entry, store = _tiny(small_catalog, tmp_path / "cache")
    fresh = catalog.open_dataset(entry, cache=tmp_path / "cache").load()
    chunk = store / "t2m" / "c" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(b"garbage!" * (len(good) // 8) if damage == "garbage" else good[:40])
    ds = catalog.open_dataset(entry, cache=tmp_path / "cache")  # the cheap look passes
    xr.testing.assert_identical(ds.load(), fresh)
    assert chunk.read_bytes() == good  # rewritten as it was generated
    err = capsys.readouterr().err
    assert f"dataset 'tiny-global' at {store} is damaged (a read failed)" in err
    assert not list(store.parent.glob(".*")) and not list(store.parent.glob("*.lock"))


@pytest.mark.parametrize("part, action, reason", [
    ("t2m/zarr.json", "remove", "variable 't2m' is missing"),
    ("t2m/zarr.json", "garbage", "the metadata of 't2m' cannot be read"),
    ("tp", "remove", "variable 'tp' is missing"),
    ("zarr.json", "remove", "its group metadata cannot be read"),
    ("t2m/c/0/0", "remove", "1 chunk file(s) of 't2m' are missing"),
    ("orog/c/0", "empty", "orog/c/0 is empty"),
    ("time/c/0", "garbage", "a read failed"),  # a coordinate, read when opened
])
def test_damaged_cache_entry_is_regenerated_when_opened(small_catalog, tmp_path, part, action,
                                                        reason, capsys):
    entry, store = _tiny(small_catalog, tmp_path / "cache")
    fresh = catalog.open_dataset(entry, cache=tmp_path / "cache").load()
    path = store / part
    if action == "empty":
        path.write_bytes(b"")
    elif action == "garbage":
        path.write_bytes(b"garbage!" * 8)
    elif path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    xr.testing.assert_identical(catalog.open_dataset(entry, cache=tmp_path / "cache").load(),
                                fresh)
    assert f"is damaged ({reason}" in capsys.readouterr().err


def test_direct_zarr_read_of_a_damaged_cache_entry_is_repaired(small_catalog, tmp_path):
    """Sampling reads cache stores with zarr directly, through catalog.guarded_array."""
    import zarr

    entry, store = _tiny(small_catalog, tmp_path / "cache")
    fresh = catalog.open_dataset(entry, cache=tmp_path / "cache")["t2m"].values
    (store / "t2m" / "c" / "0" / "0").write_bytes(b"garbage!" * 64)
    array = catalog.guarded_array(store, zarr.open_group(store, mode="r")["t2m"], "t2m")
    np.testing.assert_array_equal(array[2:5], fresh[2:5])


def test_damaged_chunk_of_a_user_store_names_dataset_and_file(tmp_path):
    entry = catalog.get_entry("mine", [user_zarr(tmp_path)])
    ds = catalog.open_dataset(entry)
    assert float(ds["t2m"].sum()) == 16 * 5 * 8  # intact: every value read
    chunk = tmp_path / "user.zarr" / "t2m" / "c" / "1" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(good[: len(good) // 2])
    with pytest.raises(WorkbenchError) as info:
        catalog.describe(catalog.open_dataset(entry))
    message = str(info.value)
    assert message.startswith("variable 't2m' of dataset 'mine': ") and "\n" not in message
    assert f"{chunk} is damaged" in message and "restore it from its source" in message
    assert chunk.read_bytes() == good[: len(good) // 2]  # a user's store is never rewritten


def test_damaged_anemoi_store_names_dataset_and_file(tmp_path):
    import zarr

    root = zarr.open_group(tmp_path / "an.zarr", mode="w")
    root.create_array("data", data=np.ones((4, 1, 1, 10), np.float32), chunks=(2, 1, 1, 10))
    root.create_array("dates", data=np.arange(4).astype("datetime64[h]").astype("datetime64[s]"))
    root.create_array("latitudes", data=np.linspace(-50, 50, 10))
    root.create_array("longitudes", data=np.linspace(0, 300, 10))
    root.attrs["variables"] = ["t2m"]
    write_entry(tmp_path / "cat", "an", f"""\
name: an
domain: test
source: {{kind: anemoi, path: {tmp_path / 'an.zarr'}}}
variables: [t2m]
time_step: 1h
grid: {{kind: test, resolution: test}}
""")
    chunk = tmp_path / "an.zarr" / "data" / "c" / "1" / "0" / "0" / "0"
    chunk.write_bytes(b"garbage!" * 8)
    ds = catalog.open_dataset("an", catalog=[tmp_path / "cat"])
    np.testing.assert_array_equal(ds["t2m"].isel(time=slice(0, 2)).values, 1.0)
    with pytest.raises(WorkbenchError, match=f"variable 'data' of dataset 'an': {chunk} is damaged"):
        ds["t2m"].load()


def test_damaged_statistics_are_computed_again(small_catalog, tmp_path):
    from workbench.statistics import load_or_compute

    entry, _ = _tiny(small_catalog, tmp_path / "cache")
    ds = catalog.open_dataset(entry, cache=tmp_path / "cache")
    first = load_or_compute(ds, "tiny-global", ["t2m"], cache=tmp_path / "cache")
    assert first["t2m"].mean == pytest.approx(float(ds["t2m"].values.astype(np.float64).mean()))
    (path,) = (tmp_path / "cache" / "statistics").iterdir()
    path.write_text('{"variables": {"t2m": {"mean": ')  # cut off mid-write by another tool
    assert load_or_compute(ds, "tiny-global", ["t2m"], cache=tmp_path / "cache") == first
    assert json.loads(path.read_text())["variables"]["t2m"]["mean"] == first["t2m"].mean


def test_create_once_waits_for_the_holder_and_uses_its_result(tmp_path, monkeypatch, capsys):
    """The lock is held (by another open file, as another process would); create_once says
    it waits, and once the holder made the entry and let go, uses it without building."""
    monkeypatch.setattr(cachelock, "WAIT_NOTE_S", 0.1)
    target = tmp_path / "entry.json"
    built, result = [], []
    fd = os.open(cachelock.lock_path(target), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    waiter = threading.Thread(target=lambda: result.append(cachelock.create_once(
        target, lambda tmp: built.append(tmp.write_text("mine")), "entry x")), daemon=True)
    waiter.start()
    seen = ""
    for _ in range(200):
        seen += capsys.readouterr().err
        if "waiting for another process preparing entry x" in seen:
            break
        time.sleep(0.02)
    assert "waiting for another process preparing entry x" in seen and waiter.is_alive()
    target.write_text("theirs")
    os.close(fd)  # the holder lets go
    waiter.join(timeout=30)
    assert not waiter.is_alive() and result == [target] and built == []
    assert target.read_text() == "theirs" and not cachelock.lock_path(target).exists()


def test_remove_orphans_only_takes_what_nobody_writes(tmp_path):
    (tmp_path / ".a.zarr.tmp-11").mkdir()  # a killed build: its lock file is left, free
    (tmp_path / "a.zarr.lock").touch()
    (tmp_path / ".b.zarr.tmp-12").mkdir()  # a build going on: its lock is held
    fd = os.open(tmp_path / "b.zarr.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (tmp_path / ".c.csv.tmp-13").write_text("x")  # written without a lock: not ours
    try:
        assert cachelock.remove_orphans(tmp_path) == [tmp_path / ".a.zarr.tmp-11"]
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.zarr.tmp-12", ".c.csv.tmp-13",
                                                          "b.zarr.lock"]


def test_statistics_follow_a_rewritten_user_store(tmp_path):
    """Statistics are cached per store content: a store rewritten under the same name (new
    values) gets new statistics, not the cached ones of the old values."""
    import time

    from workbench.statistics import load_or_compute

    folder = user_zarr(tmp_path)  # t2m = 1 everywhere
    entry = catalog.get_entry("mine", [folder])
    cache = tmp_path / "cache"
    first = load_or_compute(catalog.open_dataset(entry), "mine", ["t2m"], cache=cache)
    assert first["t2m"].mean == pytest.approx(1.0)
    again = load_or_compute(catalog.open_dataset(entry), "mine", ["t2m"], cache=cache)
    assert again["t2m"].mean == first["t2m"].mean
    assert len(list((cache / "statistics").glob("mine-*.json"))) == 1  # reused
    time.sleep(0.01)
    ds = xr.open_zarr(tmp_path / "user.zarr").load()
    (ds * 3).to_zarr(tmp_path / "user.zarr", mode="w", consolidated=False)
    rewritten = load_or_compute(catalog.open_dataset(entry), "mine", ["t2m"], cache=cache)
    assert rewritten["t2m"].mean == pytest.approx(3.0)



def test_variables_come_in_catalog_order_whatever_the_store_lists(tmp_path, capsys):
    """A store read without consolidated metadata lists its arrays in directory order (here
    t2m, orog, tp); the dataset, and so `data stats --json`, keeps the catalog's order (two
    concurrent `data stats` once printed the same numbers in two orders)."""
    folder = tmp_path / "cat"
    write_entry(folder, "tiny", SMALL_WORLD.format(
        name="tiny", domain="global", grid="regular_latlon", grid_param="resolution_deg: 30",
    ).replace("[t2m, tp, orog]", "[tp, orog, t2m]"))
    cache = tmp_path / "cache"
    opened = catalog.open_dataset(catalog.get_entry("tiny", [folder]), cache=cache)
    assert list(opened.data_vars) == ["tp", "orog", "t2m"]
    for _ in range(2):  # computed, then read back from the cache
        assert cli.main(["data", "stats", "tiny", "--json", "--catalog", str(folder),
                         "--cache", str(cache)]) == 0
        printed = json.loads(capsys.readouterr().out)["variables"]
        assert list(printed) == ["tp", "orog", "t2m"]
        assert printed["orog"]["diff_std"] is None and printed["t2m"]["mean"] > 200
