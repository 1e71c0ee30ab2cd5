"""Catalog entries, discovery, validation, generated datasets and the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from helpers import SMALL_WORLD, write_entry

from workbench import catalog, cli, grids, world
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
    assert list((tmp_path / "cache").iterdir()) == []


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
