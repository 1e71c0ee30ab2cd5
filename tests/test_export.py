"""Datasets out (``workbench data export``): anemoi-datasets' layout, opened by the real
``anemoi.datasets.open_dataset`` in the peer venv (``make peer``: .venv-anemoi, one
subprocess a test for every store it checks), and CF netCDF / zarr read back through the
workbench's own readers and plain xarray.

Each check compares against the workbench's dataset and an independent numpy computation
(statistics with NaN left out, one-step tendencies, hand-listed missing dates).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from corpus import BYOD_TIMES, write_anemoi
from missing_files import write_latlon

from workbench import catalog, cli
from workbench.errors import WorkbenchError
from workbench.export import export_dataset

ANEMOI_PYTHON = Path(__file__).resolve().parent.parent / ".venv-anemoi" / "bin" / "python"

# Run in the peer venv: open each store given with anemoi-datasets, save what it reads.
READ = r"""
import json, sys
import numpy as np
from anemoi.datasets import open_dataset
from anemoi.datasets.usage.gridded.missing import MissingDateError
for path in sys.argv[1:]:
    ds = open_dataset(path)
    missing = sorted(int(i) for i in ds.missing)
    data = np.full(ds.shape, np.nan, dtype=np.float32)
    for i in range(len(ds)):
        if i not in ds.missing:
            data[i] = ds[i]
    refused = []
    for i in missing:
        try:
            ds[i]
        except MissingDateError:
            refused.append(i)
    tendencies = ds.statistics_tendencies()
    np.savez(path + ".npz", data=data, dates=ds.dates.astype("datetime64[s]").astype("int64"),
             latitudes=ds.latitudes, longitudes=ds.longitudes,
             **{k: v for k, v in ds.statistics.items()},
             **{"tendency_" + k: v for k, v in tendencies.items()})
    with open(path + ".json", "w") as f:
        json.dump({"variables": list(ds.variables), "missing": missing, "refused": refused,
                   "frequency": str(ds.frequency), "field_shape": list(ds.field_shape),
                   "resolution": str(ds.resolution), "dtype": str(ds.dtype),
                   "constant_fields": list(ds.constant_fields),
                   "name_to_index": ds.name_to_index,
                   "units": {k: v.get("units") for k, v in ds.variables_metadata.items()}}, f)
"""


def read_with_anemoi(*paths: Path) -> list[tuple[dict, dict]]:
    """What anemoi-datasets reads from each store: (arrays, facts)."""
    if not ANEMOI_PYTHON.exists():
        pytest.skip("anemoi-datasets is not installed in .venv-anemoi (make peer)")
    done = subprocess.run([str(ANEMOI_PYTHON), "-c", READ, *map(str, paths)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = []
    for path in paths:
        with np.load(f"{path}.npz") as arrays:
            out.append((dict(arrays), json.loads(Path(f"{path}.json").read_text())))
    return out


def export(*argv: str) -> dict:
    """``workbench data export ... --json``, in-process; its JSON report."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli.main(["data", "export", *argv, "--json"]) == 0
    return json.loads(buffer.getvalue())


def expected_values(ds: xr.Dataset, variables: list[str]) -> np.ndarray:
    """[time, variable, grid] float32 of a canonical dataset, statics repeated in time."""
    out = np.empty((ds.sizes["time"], len(variables), ds.sizes["grid"]), np.float32)
    for k, name in enumerate(variables):
        values = ds[name].transpose(..., "grid").values
        out[:, k] = values if values.ndim == 2 else values[None, :]
    return out


def check_statistics(arrays: dict, values: np.ndarray, frequency: str) -> None:
    """anemoi's statistics and one-step tendency statistics against numpy's, NaN left out
    (``values``: [time, variable, grid] of the statistics period, NaN at missing dates)."""
    def moments(x):  # x [time, variable, grid] float64
        return {"mean": np.nanmean(x, axis=(0, 2)), "stdev": np.nanstd(x, axis=(0, 2)),
                "minimum": np.nanmin(x, axis=(0, 2)), "maximum": np.nanmax(x, axis=(0, 2))}

    x = values.astype(np.float64)
    for key, value in moments(x).items():
        np.testing.assert_allclose(arrays[key], value, rtol=1e-6, atol=1e-6, err_msg=key)
    tendency = moments(x[1:] - x[:-1])  # NaN wherever either date is missing
    for key, value in tendency.items():
        np.testing.assert_allclose(arrays[f"tendency_{key}"], value, rtol=1e-5, atol=1e-6,
                                   err_msg=f"tendency {key} ({frequency})")


def test_anemoi_export_of_generated_and_cutout_datasets(tmp_path):
    """global (regular lat-lon), conus (Lambert) and the stretched cutout, a few dates each:
    anemoi-datasets reads the same values, dates, points (the cutout's order, as its graphs
    use), variables, statics as constant fields, and statistics over the period asked."""
    period = ["--start", "2020-01-01T00", "--end", "2020-01-02T00"]
    done = export("global", "--format", "anemoi", "--out", str(tmp_path / "global.zarr"),
                  *period, "--statistics-start", "2020-01-01T06", "--statistics-end",
                  "2020-01-01T18")
    assert done["times"] == 5 and done["statistics"] == ["2020-01-01T06:00:00",
                                                         "2020-01-01T18:00:00"]
    short = ["--start", "2020-01-01T00", "--end", "2020-01-01T12"]
    export("conus", "--format", "anemoi", "--out", str(tmp_path / "conus.zarr"), *short)
    export("stretched", "--format", "anemoi", "--out", str(tmp_path / "stretched.zarr"),
           *short)
    read = read_with_anemoi(*(tmp_path / f"{n}.zarr" for n in ("global", "conus", "stretched")))

    for (arrays, facts), name, count in zip(read, ("global", "conus", "stretched"), (5, 3, 3),
                                            strict=True):
        entry = catalog.get_entry(name)
        ds = catalog.open_dataset(entry).isel(time=slice(0, count))
        variables = list(entry.variables)
        assert facts["variables"] == variables, name
        assert facts["name_to_index"] == {v: i for i, v in enumerate(variables)}
        assert facts["frequency"] == "6:00:00" and facts["dtype"] == "float32"
        assert facts["missing"] == []
        assert facts["constant_fields"] == ["lsm", "orog"]  # the statics, constant in time
        assert facts["units"]["t2m"] == ds["t2m"].attrs["units"] == "K"
        times = pd.date_range("2020-01-01", periods=count, freq="6h").values
        np.testing.assert_array_equal(arrays["dates"], times.astype("datetime64[s]").astype(int))
        assert arrays["data"].shape == (count, len(variables), 1, ds.sizes["grid"])
        np.testing.assert_array_equal(arrays["data"][:, :, 0], expected_values(ds, variables))
        np.testing.assert_array_equal(arrays["latitudes"], ds["latitude"].values)
        np.testing.assert_array_equal(arrays["longitudes"], ds["longitude"].values)
        if name == "global":  # statistics over 06 .. 18 only
            check_statistics(arrays, arrays["data"][1:4, :, 0], facts["frequency"])
            assert facts["field_shape"] == [73, 144] and facts["resolution"] == "2.5"
        else:
            check_statistics(arrays, arrays["data"][:, :, 0], facts["frequency"])
    # the cutout's points in the order the workbench's graphs on `stretched` take them
    grid = catalog.entry_grid(catalog.get_entry("stretched"))
    np.testing.assert_array_equal(read[2][0]["latitudes"], grid.latitude)
    np.testing.assert_array_equal(read[2][0]["longitudes"], grid.longitude)
    conus = catalog.entry_grid(catalog.get_entry("conus"))
    assert read[1][1]["field_shape"] == list(conus.shape)


def test_anemoi_export_of_user_datasets_with_missing_dates_and_nan(tmp_path):
    """An anemoi store with 3 missing dates (garbage in them) and a netCDF extract whose SST
    is NaN over land: missing dates stay missing (anemoi refuses to read them), NaN stays
    NaN, and the statistics leave both out (counts by hand)."""
    times = BYOD_TIMES[:10]
    valid = write_anemoi(tmp_path, "an", times, [2, 3, 7])
    write_latlon(tmp_path, "shelf")
    cat = str(tmp_path / "cat")
    done = export("an", "--format", "anemoi", "--out", str(tmp_path / "an-out.zarr"),
                  "--catalog", cat)
    assert done["missing_dates"] == [str(times[i].astype("datetime64[s]")) for i in (2, 3, 7)]
    done = export("shelf", "--format", "anemoi", "--out", str(tmp_path / "shelf-out.zarr"),
                  "--catalog", cat)
    assert done["missing_dates"] == []
    (an, an_facts), (shelf, shelf_facts) = read_with_anemoi(tmp_path / "an-out.zarr",
                                                            tmp_path / "shelf-out.zarr")

    assert an_facts["missing"] == an_facts["refused"] == [2, 3, 7]
    assert an_facts["variables"] == ["t2m", "z_500"]
    expected = np.stack([valid["t2m"], valid["z_500"]], axis=1).astype(np.float32)
    np.testing.assert_array_equal(an["data"][:, :, 0], expected)  # NaN at 2, 3, 7 both sides
    np.testing.assert_array_equal(an["dates"], times.astype("datetime64[s]").astype(int))
    check_statistics(an, expected, an_facts["frequency"])
    # by hand: 7 valid dates of 10; tendencies only between valid neighbours (0-1, 4-5, 5-6, 8-9)
    t2m = expected[:, 0].astype(np.float64)
    assert np.isclose(an["mean"][0], t2m[[0, 1, 4, 5, 6, 8, 9]].mean())
    pairs = np.stack([t2m[b] - t2m[a] for a, b in ((0, 1), (4, 5), (5, 6), (8, 9))])
    assert np.isclose(an["tendency_mean"][0], pairs.mean())

    ds = catalog.open_dataset("shelf", catalog=[cat])
    variables = ["sst", "rr", "depth"]
    assert shelf_facts["variables"] == variables and shelf_facts["constant_fields"] == ["depth"]
    values = expected_values(ds, variables)
    assert np.isnan(values[:, 0]).any()  # land
    np.testing.assert_array_equal(shelf["data"][:, :, 0], values)
    check_statistics(shelf, values, shelf_facts["frequency"])
    assert shelf_facts["field_shape"] == [18, 22]


# --------------------------------------------------------------------------- CF files


def read_back(folder: Path, name: str, path: Path, kind: str, variables: list[str],
              step: str = "6h") -> xr.Dataset:
    """An exported CF file read by the workbench through a catalog entry of its own."""
    from corpus import catalog_entry

    catalog_entry(folder / "back", name, kind, path, "[" + ", ".join(variables) + "]", "test",
                  step)
    return catalog.open_dataset(name, catalog=[folder / "back"]).load()


def check_round_trip(source: xr.Dataset, back: xr.Dataset, variables: list[str]) -> None:
    """The same values (NaN where NaN), points and times."""
    np.testing.assert_array_equal(back["time"].values, source["time"].values)
    np.testing.assert_allclose(back["latitude"].values, source["latitude"].values, atol=1e-9)
    np.testing.assert_allclose(back["longitude"].values % 360, source["longitude"].values % 360,
                               atol=1e-9)
    for name in variables:
        np.testing.assert_array_equal(back[name].transpose(..., "grid").values,
                                      source[name].transpose(..., "grid").values, err_msg=name)


def test_cf_exports_of_each_grid_kind_read_back(tmp_path):
    """global as netCDF (latitude, longitude), conus as zarr ((y, x), 2-D latitude/longitude,
    a Lambert grid_mapping), the stretched cutout as netCDF (a ``values`` dim), and a user
    extract with NaN over land: plain xarray decodes units, standard names and a standard
    time axis; the workbench reads each back to the same values, points and times."""
    short = ["--start", "2020-01-01T00", "--end", "2020-01-01T12"]
    some = ["t2m", "z_500", "orog"]
    for name, suffix in (("global", "nc"), ("conus", "zarr"), ("stretched", "nc")):
        fmt = "netcdf" if suffix == "nc" else "zarr"
        out = tmp_path / f"{name}.{suffix}"
        export(name, "--format", fmt, "--out", str(out), *short)
        plain = xr.open_dataset(out, decode_cf=True, engine="netcdf4" if suffix == "nc"
                                else "zarr")
        assert plain.attrs["Conventions"] == "CF-1.8"
        assert plain["time"].encoding["calendar"] in ("standard", "proleptic_gregorian")
        np.testing.assert_array_equal(plain["time"].values,
                                      pd.date_range("2020-01-01", periods=3, freq="6h").values)
        t2m, z = plain["t2m"], plain["z_500"]
        assert (t2m.attrs["units"], t2m.attrs["standard_name"]) == ("K", "air_temperature")
        assert z.attrs["standard_name"] == "geopotential" and z.attrs["long_name"]
        assert plain["latitude"].attrs["units"] == "degrees_north"
        source = catalog.open_dataset(name).isel(time=slice(0, 3)).load()
        grid = catalog.entry_grid(catalog.get_entry(name))
        if name == "global":
            assert t2m.dims == ("time", "latitude", "longitude") and t2m.shape == (3, 73, 144)
            assert plain["latitude"].values[0] == 90 and plain["longitude"].values[1] == 2.5
        elif name == "conus":
            assert t2m.dims == ("time", "y", "x") and t2m.shape[1:] == tuple(grid.shape)
            assert plain["latitude"].dims == ("y", "x")
            assert plain["x"].attrs["standard_name"] == "projection_x_coordinate"
            crs = plain[t2m.attrs["grid_mapping"]].attrs
            assert crs["grid_mapping_name"] == "lambert_conformal_conic"
            np.testing.assert_array_equal(plain["latitude"].values.ravel(), grid.latitude)
        else:
            assert t2m.dims == ("time", "values") and t2m.shape == (3, grid.size)
        np.testing.assert_array_equal(t2m.values.reshape(3, -1), source["t2m"].values)
        back = read_back(tmp_path, f"{name}-back", out, fmt, some)
        check_round_trip(source, back, some)

    write_latlon(tmp_path, "shelf")
    cat = str(tmp_path / "cat")
    export("shelf", "--format", "zarr", "--out", str(tmp_path / "shelf.zarr"), "--catalog", cat)
    source = catalog.open_dataset("shelf", catalog=[cat]).load()
    back = read_back(tmp_path, "shelf-back", tmp_path / "shelf.zarr", "zarr",
                     ["sst", "rr", "depth"])
    assert np.isnan(back["sst"].values).any()
    check_round_trip(source, back, ["sst", "rr", "depth"])


def test_cf_export_keeps_a_360_day_calendar(tmp_path):
    """A climate model's 360_day data as netCDF and zarr: xarray decodes 360_day cftime
    dates (2000-02-30 exists), the workbench reads the same times and values back, and the
    anemoi layout, whose dates are numpy datetime64, refuses it in one line."""
    import cftime
    from corpus import DAY0_360, catalog_entry, climate_netcdf

    climate_netcdf(tmp_path / "clim.nc", "360_day", DAY0_360 + 59 + np.arange(6) / 4)
    catalog_entry(tmp_path / "cat", "clim", "netcdf", tmp_path / "clim.nc", "{t2m: tas}",
                  "global")
    cat = str(tmp_path / "cat")
    source = catalog.open_dataset("clim", catalog=[cat]).load()
    for fmt, out in (("netcdf", tmp_path / "c.nc"), ("zarr", tmp_path / "c.zarr")):
        export("clim", "--format", fmt, "--out", str(out), "--catalog", cat,
               "--start", "2000-02-30T00", "--end", "2000-03-01T06")
        plain = xr.open_dataset(out, decode_cf=True,
                                engine="netcdf4" if fmt == "netcdf" else "zarr")
        assert plain["time"].encoding["calendar"] == "360_day"
        assert list(plain["time"].values) == [
            cftime.Datetime360Day(2000, 2, 30, h) for h in (0, 6, 12, 18)] + [
            cftime.Datetime360Day(2000, 3, 1, h) for h in (0, 6)]
        assert plain["t2m"].dims == ("time", "latitude", "longitude")
        back = read_back(tmp_path, f"clim-{fmt}", out, fmt, ["t2m"])
        check_round_trip(source, back, ["t2m"])
    with pytest.raises(WorkbenchError, match="360_day calendar.*--format netcdf"):
        export_dataset("clim", "anemoi", tmp_path / "c-an.zarr", catalog_dirs=[cat])
    assert not (tmp_path / "c-an.zarr").exists()


def test_existing_out_is_kept_until_a_complete_export_replaces_it(tmp_path):
    """Without --force an existing --out is refused; an export that fails after writing its
    data (SST NaN over the whole statistics period) leaves the old store as it was and no
    temporary files; with --force a complete export replaces it."""
    import zarr
    from missing_files import SST_NAN_IN_TRAIN, text_zarr_case

    for name, text in text_zarr_case(SST_NAN_IN_TRAIN).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    cat, out = [tmp_path / "cat"], tmp_path / "sea.zarr"
    (out / "old").mkdir(parents=True)
    with pytest.raises(WorkbenchError, match="exists; add --force"):
        export_dataset("sea", "anemoi", out, catalog_dirs=cat)
    with pytest.raises(WorkbenchError, match="sst is NaN at every point between"):
        export_dataset("sea", "anemoi", out, force=True, catalog_dirs=cat,
                       statistics_end="2020-01-04T18:00")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat", "g.yaml", "sea.zarr",
                                                          "sst.zarr", "t.yaml"]
    assert [p.name for p in out.iterdir()] == ["old"]
    done = export_dataset("sea", "anemoi", out, force=True, catalog_dirs=cat)
    root = zarr.open_group(str(out), mode="r")
    data = root["data"][:, 0, 0]  # 14 times x 12 points: NaN for 8 times, then K = 270 + b/10
    assert data.shape == (14, 12) and np.isnan(data[:8]).all()
    expected = 270 + np.frombuffer(b"ABCDEFGHIJKL", np.uint8) / 10
    np.testing.assert_allclose(data[8:], np.tile(expected, (6, 1)), rtol=1e-6)
    assert root["count"][0] == 6 * 12 and np.isclose(root["mean"][0], expected.mean())
    assert done.statistics == ("2020-01-03T00:00:00", "2020-01-06T06:00:00")
    assert root.attrs["allow_nans"] is True and not (out / "old").exists()
