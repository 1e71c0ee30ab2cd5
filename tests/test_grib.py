"""GRIB2 sources (GFS, HRRR): small files written with ecCodes' samples (tests/grib_files.py),
read through catalog entries and the CLI, checked against the analytic fields they were
written from, pyproj, the closed-form wind rotation and cfgrib; graphs built on them and a
short training on both."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from grib_files import (
    HRRR_RADIUS_M,
    field,
    gfs_axes,
    hours_since_2020,
    hrrr_design,
    write_gfs,
    write_hrrr,
)
from helpers import write_entry

from workbench import catalog, cli, grids
from workbench.grib import GRAVITY

pytestmark = pytest.mark.timeout(300)

CYCLES = [f"2020-01-0{d}T{h:02d}" for d in (1, 2) for h in (0, 6, 12, 18)]
ENTRY = """\
name: {name}
domain: {domain}
source:
  kind: grib
  path: {path}
{extra}variables: {variables}
time_step: 6h
grid: {{kind: {kind}, resolution: test}}
"""


def entry(folder: Path, name: str, path, variables="[z_500, t_850, t2m, u10, v10]",
          domain: str | None = None, kind: str = "regular_latlon", extra: str = "") -> Path:
    """A catalog entry for GRIB files in ``folder``/cat; returns the catalog folder."""
    write_entry(folder / "cat", name, ENTRY.format(
        name=name, domain=domain or name, path=json.dumps(path), extra=extra,
        variables=variables, kind=kind))
    return folder / "cat"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err.strip()


def one_line_error(argv: list[str], capsys) -> str:
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """GFS-like analyses and 6 h forecasts of four cycles (one file per cycle and lead) and
    HRRR-like analyses, 2t with a missing patch in its first file."""
    folder = tmp_path_factory.mktemp("grib")
    missing = np.zeros(12 * 15, bool)
    missing[:20] = True
    for k, cycle in enumerate(CYCLES):
        day = f"gfs.2020010{cycle[9]}"
        hh = cycle[-2:]
        write_gfs(folder / day / f"gfs.t{hh}z.pgrb2.f000", cycle, levels=(500, 850, 1000))
        write_gfs(folder / day / f"gfs.t{hh}z.pgrb2.f006", cycle, 6)
        write_hrrr(folder / "hrrr" / f"hrrr.2020010{cycle[9]}.t{hh}z.wrfprsf00.grib2", cycle,
                   missing=missing if k == 0 else None)
    return folder


# --------------------------------------------------------------------------- GFS


def test_gfs_analyses_through_data_show(files, tmp_path, capsys):
    cat = entry(tmp_path, "gfs-grib", str(files / "gfs.*" / "*.f000"))
    code, out, err = run(["data", "show", "gfs-grib", "--catalog", str(cat), "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["dims"] == {"time": 8, "grid": 19 * 36} and info["grid_shape"] == [19, 36]
    assert info["period"]["start"] == "2020-01-01T00:00:00"
    assert info["period"]["steps"] == 8 and info["period"]["time_step"] == "0 days 06:00:00"
    assert info["crs"] == "+proj=longlat +R=6371229 +no_defs"
    assert info["missing_fraction"] == 0
    assert info["variables"]["z_500"]["units"] == "m2 s-2"

    ds = catalog.open_dataset("gfs-grib", catalog=[cat])
    lat, lon = gfs_axes()
    lat2, lon2 = (a.ravel() for a in np.meshgrid(lat, lon, indexing="ij"))
    np.testing.assert_array_equal(ds["latitude"].values, lat2)
    np.testing.assert_array_equal(ds["longitude"].values, grids.wrap_longitude(lon2))
    assert ds.attrs["grid_x"] == list(lon) and ds.attrs["grid_y"] == list(lat)
    assert ds.attrs["grid_spacing_km"] == pytest.approx(2 * math.pi * 6371 / 36)
    expected_times = pd.to_datetime(CYCLES).values
    np.testing.assert_array_equal(ds["time"].values, expected_times)
    for k, time in enumerate(expected_times):
        hours = hours_since_2020(time)
        # gh in gpm, stored as float32, times g: geopotential
        gh = field("gh@500", lat2, lon2, hours).astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(ds["z_500"].values[k], gh * GRAVITY, rtol=1e-6)
        for name, source in (("t_850", "t@850"), ("t2m", "2t"), ("u10", "10u"), ("v10", "10v")):
            np.testing.assert_array_equal(
                ds[name].values[k], field(source, lat2, lon2, hours).astype(np.float32))
    # the grid the graphs and area weights see: the generator's own 10 degree grid
    grid, reference = grids.grid_from_dataset(ds), grids.regular_latlon(10.0)
    assert grid.kind == "regular_latlon" and grid.shape == reference.shape
    np.testing.assert_allclose(grids.area_weights(grid), grids.area_weights(reference))
    assert grids.covers_globe(grid)


def test_gfs_forecasts_one_lead_valid_times_and_tp(files, tmp_path):
    cat = entry(tmp_path, "gfs-f006", str(files / "gfs.*" / "*"), variables="[t2m, tp]",
                extra="  step: 6h\n")
    ds = catalog.open_dataset("gfs-f006", catalog=[cat])
    valid = pd.to_datetime(CYCLES).values + np.timedelta64(6, "h")
    np.testing.assert_array_equal(ds["time"].values, valid)
    lat, lon = gfs_axes()
    lat2, lon2 = (a.ravel() for a in np.meshgrid(lat, lon, indexing="ij"))
    hours = hours_since_2020(valid[2])
    np.testing.assert_array_equal(ds["t2m"].values[2], field("2t", lat2, lon2, hours)
                                  .astype(np.float32))
    tp = field("tp", lat2, lon2, hours).astype(np.float32)
    assert tp.max() > 1  # kg m-2 in the file ...
    np.testing.assert_allclose(ds["tp"].values[2], tp * 1e-3, rtol=1e-6)  # ... m in the dataset
    assert ds["tp"].attrs["units"] == "m"


def test_of_two_accumulations_the_one_from_the_cycle(tmp_path):
    """An f006 file with tp over 0-6 h and 5-6 h (as HRRR's): tp is the 0-6 h one."""
    path = write_gfs(tmp_path / "f006.grib2", CYCLES[0], 6, single=(), tp_from=(5, 0))
    cat = entry(tmp_path, "two-tp", str(path), variables="[tp]", extra="  step: 6h\n")
    ds = catalog.open_dataset("two-tp", catalog=[cat])
    lat, lon = gfs_axes()
    lat2, lon2 = (a.ravel() for a in np.meshgrid(lat, lon, indexing="ij"))
    tp = field("tp", lat2, lon2, 6.0).astype(np.float32)
    np.testing.assert_allclose(ds["tp"].values[0], tp * 1e-3, rtol=1e-6)


def test_explicit_specs_read_as_stored_and_agree_with_cfgrib(files, tmp_path):
    """``gh@850`` stays in gpm; ``t@isobaricInhPa:1000`` is t at 1000 hPa; cfgrib (an
    independent reader on the same ecCodes) finds the same values and coordinates."""
    import xarray as xr

    path = files / "gfs.20200101" / "gfs.t06z.pgrb2.f000"
    cat = entry(tmp_path, "gfs-explicit", [str(path)],
                variables="{gh850: gh@850, t1000: 't@isobaricInhPa:1000', temp: t2m}")
    ds = catalog.open_dataset("gfs-explicit", catalog=[cat])
    ref = xr.open_dataset(path, engine="cfgrib", decode_timedelta=False,
                          backend_kwargs={"indexpath": "",
                                          "filter_by_keys": {"typeOfLevel": "isobaricInhPa"}})
    np.testing.assert_array_equal(ds["gh850"].values[0],
                                  ref["gh"].sel(isobaricInhPa=850).values.ravel())
    np.testing.assert_array_equal(ds["t1000"].values[0],
                                  ref["t"].sel(isobaricInhPa=1000).values.ravel())
    assert ds["gh850"].attrs["units"] == "gpm"
    lat2, lon2 = np.meshgrid(ref["latitude"].values, ref["longitude"].values, indexing="ij")
    np.testing.assert_array_equal(ds["latitude"].values, lat2.ravel())
    assert ds["time"].values[0] == ref["valid_time"].values
    single = xr.open_dataset(path, engine="cfgrib", backend_kwargs={
        "indexpath": "", "filter_by_keys": {"typeOfLevel": "heightAboveGround", "level": 2}})
    np.testing.assert_array_equal(ds["temp"].values[0], single["t2m"].values.ravel())
    assert not list(path.parent.glob("*.idx"))  # nothing written next to the user's files


def test_readme_grib_entry_reads_the_gfs_files(files, tmp_path):
    """The README's copy-paste entry, its path pointed at the test's files, opens."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("#### GRIB2 (GFS, HRRR)", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    path = next(line for line in block.splitlines() if line.strip().startswith("path:"))
    block = block.replace(path, f"  path: {files}/gfs.*/gfs.t*z.pgrb2.f006")
    write_entry(tmp_path / "cat", "gfs-grib", block)
    ds = catalog.open_dataset("gfs-grib", catalog=[tmp_path / "cat"])
    assert list(ds.data_vars) == ["z_500", "z_850", "t_850", "t2m", "u10", "v10", "tp"]
    np.testing.assert_array_equal(ds["time"].values,
                                  pd.to_datetime(CYCLES).values + np.timedelta64(6, "h"))
    assert np.isfinite(ds.to_array().values).all()


# --------------------------------------------------------------------------- HRRR


def test_hrrr_lambert_grid_coordinates_winds_and_missing(files, tmp_path, capsys):
    cat = entry(tmp_path, "hrrr-grib", str(files / "hrrr" / "*.grib2"), kind="lambert_conformal",
                variables="[z_500, t2m, u10, v10]")
    code, out, err = run(["data", "show", "hrrr-grib", "--catalog", str(cat), "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["grid_shape"] == [12, 15] and info["dims"] == {"time": 8, "grid": 180}
    # 20 of 180 points of one of eight 2t fields are missing: 20 / (4 * 8 * 180) overall
    assert info["missing_fraction"] == pytest.approx(20 / (4 * 8 * 180))

    ds = catalog.open_dataset("hrrr-grib", catalog=[cat])
    assert ds.attrs["crs"] == grids.hrrr().crs  # the workbench's own HRRR projection
    design = hrrr_design()
    # points against pyproj: the design's axes, inverse-projected
    from pyproj import Proj

    xx, yy = np.meshgrid(design.x, design.y)
    lon, lat = Proj(f"+proj=lcc +lat_0=38.5 +lon_0=-97.5 +lat_1=38.5 +lat_2=38.5 "
                    f"+R={HRRR_RADIUS_M} +units=m")(xx.ravel(), yy.ravel(), inverse=True)
    np.testing.assert_allclose(ds["latitude"].values, lat, atol=1e-5)
    np.testing.assert_allclose(ds["longitude"].values, lon, atol=1e-5)
    np.testing.assert_allclose(ds.attrs["grid_x"], design.x, atol=0.5)  # metres; GRIB keeps
    np.testing.assert_allclose(ds.attrs["grid_y"], design.y, atol=0.5)  # 1e-6 deg corners
    assert ds.attrs["grid_spacing_km"] == 90.0
    grid = grids.grid_from_dataset(ds)
    assert grid.kind == "lambert_conformal" and not grids.covers_globe(grid)
    np.testing.assert_allclose(grids.area_weights(grid), grids.area_weights(design), rtol=1e-4)
    # values: z from gh; winds stored relative to the grid come back east/north
    for k, time in enumerate(ds["time"].values):
        hours = hours_since_2020(time)
        gh = field("gh@500", design.latitude, design.longitude, hours).astype(np.float32)
        np.testing.assert_allclose(ds["z_500"].values[k], gh.astype(np.float64) * GRAVITY,
                                   rtol=1e-6)
        for name, source in (("u10", "10u"), ("v10", "10v")):
            np.testing.assert_allclose(ds[name].values[k],
                                       field(source, design.latitude, design.longitude, hours),
                                       atol=2e-5)
    t2m = ds["t2m"].values
    assert np.isnan(t2m[0, :20]).all() and np.isfinite(t2m[0, 20:]).all()
    assert np.isfinite(t2m[1:]).all()


def test_winds_alone_read_their_partner_to_turn(files, tmp_path):
    """v10 without u10 in the entry still needs u10 from the files to be east/north."""
    cat = entry(tmp_path, "hrrr-v", str(files / "hrrr" / "*.grib2"), variables="[v10]")
    ds = catalog.open_dataset("hrrr-v", catalog=[cat])
    design = hrrr_design()
    hours = hours_since_2020(ds["time"].values[3])
    np.testing.assert_allclose(ds["v10"].values[3],
                               field("10v", design.latitude, design.longitude, hours), atol=2e-5)


# --------------------------------------------------------------------------- graphs


GRAPHS = {
    "gfs-grib": "hidden: {kind: icosahedral, level: 2}\nencoder: {kind: reversed_knn, k: 3}\n"
                "processor: {kind: multiscale}\ndecoder: {kind: knn, k: 3}\n",
    "hrrr-grib": "hidden: {kind: coarsened, factor: 3, k: 6}\nencoder: {kind: reversed_knn, k: 3}\n"
                 "processor: {kind: multiscale}\ndecoder: {kind: knn, k: 3}\n",
}


def grib_catalog(files: Path, folder: Path) -> Path:
    """Both GRIB datasets (analyses) in one catalog folder, and a graph config for each."""
    entry(folder, "gfs-grib", str(files / "gfs.*" / "*.f000"))
    cat = entry(folder, "hrrr-grib", str(files / "hrrr" / "*.grib2"), kind="lambert_conformal")
    for name, body in GRAPHS.items():
        (folder / f"{name}.graph.yaml").write_text(
            f"name: {name}-graph\ndata: {{datasets: [{name}]}}\n{body}")
    return cat


@pytest.mark.parametrize("name, points", [("gfs-grib", 19 * 36), ("hrrr-grib", 180)])
def test_graph_build_on_grib_grids(files, tmp_path, capsys, monkeypatch, name, points):
    from workbench.graphs import load_graph

    cat = grib_catalog(files, tmp_path)
    monkeypatch.setenv("WORKBENCH_CATALOG", str(cat))
    out = tmp_path / f"{name}.pt"
    code, text, err = run(["graph", "build", str(tmp_path / f"{name}.graph.yaml"),
                           "--out", str(out)], capsys)
    assert code == 0, err
    assert f"data {points}" in text and "hanging encoder sources 0" in text
    graph = load_graph(out)
    ds = catalog.open_dataset(name, catalog=[cat])
    np.testing.assert_allclose(graph["data"].x[:, 0].double().numpy(),
                               np.deg2rad(ds["latitude"].values), atol=1e-6)
    np.testing.assert_allclose(graph["data"].x[:, 1].double().numpy() % (2 * np.pi),
                               np.deg2rad(ds["longitude"].values) % (2 * np.pi), atol=1e-6)


@pytest.mark.slow
def test_short_training_on_gfs_and_hrrr_grib(files, tmp_path, monkeypatch):
    """One model, batches from the GFS-like and HRRR-like GRIB datasets, a few steps: the
    losses of both domains are finite. 2t's missing patch stays out (t2m not trained)."""
    from workbench import training

    cat = grib_catalog(files, tmp_path)
    monkeypatch.setenv("WORKBENCH_CATALOG", str(cat))
    raw = training.config_dict(training.load_training_config("demo"))
    raw["sampling"] = {
        "name": "grib",
        "domains": [{"name": name, "dataset": name, "graph": str(tmp_path / f"{name}.graph.yaml")}
                    for name in GRAPHS],
        "variables": ["z_500", "t_850", "u10", "v10"],
        "splits": {"train": ["2020-01-01T00", "2020-01-01T18"],
                   "val": ["2020-01-02T00", "2020-01-02T18"]},
        "forcings": [], "statics": [], "batch_size": 1, "batches_per_epoch": 4,
    }
    raw["model"].update(hidden_dim=8, processor_layers=1, heads=2)
    raw.update(name="grib", max_steps=4, val_rollout=1, val_every=1000, val_batches=1,
               checkpoint_every=1000, runs_dir=str(tmp_path / "runs"))
    run_dir = training.fit(training.training_config_from_dict(raw), cache=tmp_path / "cache",
                           progress=False)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    losses = metrics.dropna(subset=["train/loss"])
    assert len(losses) == 4 and np.isfinite(losses["train/loss"]).all()
    for name in GRAPHS:
        assert np.isfinite(losses[f"train/loss_{name}"].dropna()).all()
        assert losses[f"train/loss_{name}"].notna().any()
    graphs = json.loads((run_dir / "graphs.json").read_text())
    assert graphs["gfs-grib"]["data_nodes"] == 684 and graphs["hrrr-grib"]["data_nodes"] == 180


# --------------------------------------------------------------------------- bad input


def test_missing_level_is_one_line(files, tmp_path, capsys):
    path = tmp_path / "upper.grib2"
    write_gfs(path, CYCLES[0], levels=(850, 1000), single=())
    cat = entry(tmp_path, "no-500", str(path), variables="[z_500]")
    err = one_line_error(["data", "show", "no-500", "--catalog", str(cat)], capsys)
    assert "z_500 asks for gh at isobaricInhPa 500" in err
    assert "the files have gh at isobaricInhPa 850, 1000" in err


@pytest.mark.parametrize("variables, extra, words", [
    ("[tp]", "", ["tp asks for lead time 0h", "the files have tp at 6h", "source.step"]),
    ("[t2m]", "  step: 12h\n", ["t2m asks for lead time 12h", "0h, 6h"]),
    ("[cape]", "", ["cape asks for cape", "the files have 10u, 10v, 2t, gh, t"]),
    ("{temp: t}", "", ["temp asks for t without a level", "isobaricInhPa 500, 850, 1000"]),
    ("{x: 'gh@high'}", "", ["'gh@high' is not shortName"]),
])
def test_requests_the_files_cannot_meet(files, tmp_path, capsys, variables, extra, words):
    cat = entry(tmp_path, "gfs-bad", str(files / "gfs.*" / "*"), variables=variables, extra=extra)
    err = one_line_error(["data", "show", "gfs-bad", "--catalog", str(cat)], capsys)
    for word in words:
        assert word in err, (word, err)


def test_duplicate_and_missing_times_are_one_line(files, tmp_path, capsys):
    twice = [str(files / "gfs.20200101" / "gfs.t00z.pgrb2.f000")] * 2 + [str(tmp_path / "copy.grib2")]
    (tmp_path / "copy.grib2").write_bytes((files / "gfs.20200101" / "gfs.t00z.pgrb2.f000").read_bytes())
    cat = entry(tmp_path, "gfs-twice", twice)
    err = one_line_error(["data", "show", "gfs-twice", "--catalog", str(cat)], capsys)
    assert "z_500 has two messages valid at 2020-01-01T00:00" in err and "copy.grib2" in err

    partial = tmp_path / "partial.grib2"
    write_gfs(partial, CYCLES[1], single=("10u",))  # no 2t
    cat = entry(tmp_path, "gfs-gap", [str(files / "gfs.20200101" / "gfs.t00z.pgrb2.f000"), str(partial)],
                variables="[t2m, u10]")
    err = one_line_error(["data", "show", "gfs-gap", "--catalog", str(cat)], capsys)
    assert "t2m has no message valid at 2020-01-01T06:00 (u10 has)" in err


def test_mixed_grids_and_damaged_files_are_one_line(files, tmp_path, capsys):
    mixed = [str(files / "gfs.20200101" / "gfs.t00z.pgrb2.f000"), str(files / "hrrr" / "*0101.t06z*")]
    cat = entry(tmp_path, "mixed", mixed, variables="[t2m]")
    err = one_line_error(["data", "show", "mixed", "--catalog", str(cat)], capsys)
    assert "lie on different grids" in err

    cut = tmp_path / "cut.grib2"
    cut.write_bytes((files / "gfs.20200101" / "gfs.t00z.pgrb2.f000").read_bytes()[:-300])
    cat = entry(tmp_path, "cut", str(cut), variables="[t2m]")
    err = one_line_error(["data", "show", "cut", "--catalog", str(cat)], capsys)
    assert "cannot read" in err and "cut.grib2 as GRIB" in err
