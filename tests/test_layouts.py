"""Grids as real sources write them, each through a user catalog folder given with --catalog:
``data show``, ``graph build`` + ``graph inspect``, area weights, tiling (structured grids),
maps, and whether the domain is a limited area (the catalog's label, else its coverage).

Layouts (tiny, written the way the source writes them):

- ``wb2``: WeatherBench 2 ERA5 zarr, dims (time, level, latitude, longitude), latitude
  90..-90 with both pole rows, longitude 0..350, WB2 names, CF attrs;
- ``wb2-lonlat``: WB2's regridded 64 x 32 equiangular layout, dims (time, longitude,
  latitude), latitude ascending without pole rows (-87.19..87.19), longitude 0..354.375;
- ``latlon-lam``: a regional lat-lon extract as netCDF, latitude ascending, longitude
  -180..180 (a limited area on a lat-lon grid);
- ``projected``: a Lambert conformal netCDF with 2-D latitude/longitude and its CRS in the CF
  ``grid_mapping`` variable (``crs_wkt``);
- ``points``: an unstructured point list in zarr (latitude/longitude on a ``values`` dim, as
  anemoi and reduced Gaussian GRIB give).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from corpus import TIMES, field, write_wb2
from corpus import catalog_entry as _entry
from helpers import write_entry
from pyproj import CRS, Geod

from workbench import catalog, cli, domain_graphs, forecast_files, grids, tiling

matplotlib.use("Agg")

SPHERE_KM2 = 4 * np.pi * grids.EARTH_RADIUS_KM**2
pytestmark = pytest.mark.timeout(600)


def write_wb2_lonlat(folder):
    lat, lon = -90 + 5.625 * (np.arange(32) + 0.5), 5.625 * np.arange(64)
    t2m = field(lat[:, None], lon[None, :], np.arange(len(TIMES))).transpose(0, 2, 1)
    ds = xr.Dataset({"2m_temperature": (("time", "longitude", "latitude"), t2m)},
                    coords={"time": TIMES, "latitude": lat, "longitude": lon})
    ds.to_zarr(folder / "wb2-lonlat.zarr", consolidated=False)
    _entry(folder / "cat", "wb2-lonlat", "zarr", folder / "wb2-lonlat.zarr",
           "{t2m: 2m_temperature}", "era5-coarse")
    return (32, 64), "global"


def write_latlon_lam(folder, name="latlon-lam", domain="alps"):
    lat, lon = np.arange(30, 71, 2.0), np.arange(-20, 41, 2.0)
    t2m = field(lat[:, None], lon[None, :], np.arange(len(TIMES)))
    ds = xr.Dataset({"t2m": (("time", "lat", "lon"), t2m, {"units": "K"})},
                    coords={"time": TIMES, "lat": lat, "lon": lon})
    ds.to_netcdf(folder / f"{name}.nc")
    _entry(folder / "cat", name, "netcdf", folder / f"{name}.nc", "[t2m]", domain)
    return (21, 31), "lam"


def write_projected(folder):
    g = grids.lambert_conformal("p", lat_0=52.0, lon_0=10.0, nx=24, ny=20, dx_m=100_000.0)
    ny, nx = g.shape
    lat2, lon2 = g.latitude.reshape(ny, nx), g.longitude.reshape(ny, nx)
    t2m = np.stack([field(lat2, lon2, [t])[0] for t in range(len(TIMES))])
    ds = xr.Dataset(
        {"t2m": (("time", "y", "x"), t2m, {"units": "K", "grid_mapping": "lambert"}),
         "lambert": ((), 0, {"grid_mapping_name": "lambert_conformal_conic",
                             "crs_wkt": CRS(g.crs).to_wkt()})},
        coords={"time": TIMES, "y": g.y, "x": g.x,
                "latitude": (("y", "x"), lat2), "longitude": (("y", "x"), lon2)})
    ds.to_netcdf(folder / "projected.nc")
    _entry(folder / "cat", "projected", "netcdf", folder / "projected.nc", "[t2m]", "lcc")
    return (ny, nx), "lam"


def fibonacci(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(n) + 0.5
    return np.rad2deg(np.arcsin(1 - 2 * k / n)), np.rad2deg(np.pi * (1 + 5**0.5) * k) % 360


def write_points(folder):
    lat, lon = fibonacci(600)
    t2m = np.stack([field(lat, lon, [t])[0, 0] for t in range(len(TIMES))])
    ds = xr.Dataset({"2t": (("time", "values"), t2m)},
                    coords={"time": TIMES, "latitude": ("values", lat),
                            "longitude": ("values", lon)})
    ds.to_zarr(folder / "points.zarr", consolidated=False)
    _entry(folder / "cat", "points", "zarr", folder / "points.zarr", "{t2m: 2t}", "reduced-gg")
    return None, "global"


LAYOUTS = {"wb2": write_wb2, "wb2-lonlat": write_wb2_lonlat, "latlon-lam": write_latlon_lam,
           "projected": write_projected, "points": write_points}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Every layout written once: name -> (shape, "global" | "lam"); the catalog folder."""
    folder = tmp_path_factory.mktemp("layouts")
    written = {name: write(folder) for name, write in LAYOUTS.items()}
    return written, folder / "cat"


@pytest.fixture
def using(corpus, monkeypatch):
    """The corpus's catalog folder in $WORKBENCH_CATALOG for this test (as --catalog puts it)."""
    monkeypatch.setenv("WORKBENCH_CATALOG", str(corpus[1]))
    return corpus[0]


def _cli_json(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_data_show_and_values_in_place(name, corpus, capsys):
    """``data show --catalog``: grid size and shape; every canonical value is the source's
    value at that point (so no row, column or transposition went astray)."""
    (shape, _), folder = corpus[0][name], corpus[1]
    info = _cli_json(["data", "show", name, "--catalog", str(folder), "--json"], capsys)
    size = int(np.prod(shape)) if shape else 600
    assert info["grid_points"] == size and info["grid_shape"] == (list(shape) if shape else None)
    assert info["missing_fraction"] == 0.0
    ds = catalog.open_dataset(name, catalog=[folder])
    expected = field(ds["latitude"].values[None, :], ds["longitude"].values[None, :],
                     np.arange(len(TIMES)))[:, 0]
    np.testing.assert_allclose(ds["t2m"].values, expected, rtol=1e-6)
    assert ds["longitude"].min() >= -180 and ds["longitude"].max() < 180


def test_wb2_levels_and_row_order_kept(using):
    """WB2's geopotential@500 picks the level; rows stay as the source stores them (north to
    south here, south to north in the lon-lat layout) and the 1-D axes say so."""
    ds = catalog.open_dataset("wb2")
    np.testing.assert_allclose(ds["z_500"].values, ds["t2m"].values * 10, rtol=1e-6)
    assert ds.attrs["grid_kind"] == "regular_latlon"
    assert ds.attrs["grid_y"][0] == 90 and ds.attrs["grid_y"][-1] == -90
    assert ds.attrs["grid_x"][:2] == [0.0, 10.0] and ds.attrs["grid_x"][-1] == 350.0
    assert ds["latitude"].values[0] == 90 and ds["latitude"].values[-1] == -90
    up = catalog.open_dataset("wb2-lonlat")
    assert up.attrs["grid_y"][0] == -87.1875 and up["latitude"].values[64] == -81.5625
    assert up["longitude"].values[63] == 354.375 - 360
    assert up.attrs["grid_spacing_km"] == pytest.approx(np.deg2rad(5.625) * grids.EARTH_RADIUS_KM)
    lam = catalog.open_dataset("latlon-lam")
    assert lam.attrs["grid_x"][0] == -20 and lam.attrs["grid_y"][0] == 30
    proj = catalog.open_dataset("projected")
    assert proj.attrs["grid_kind"] == "projected" and "grid_x" in proj.attrs
    np.testing.assert_allclose(proj.attrs["grid_x"][1] - proj.attrs["grid_x"][0], 100_000.0,
                               rtol=1e-6)
    assert catalog.open_dataset("points").attrs["grid_kind"] == "points"


def _polygon_area_km2(lat0, lat1, lon0, lon1, n=2000):
    """Independent: pyproj's geodesic polygon area of the box (dense parallels, a sphere)."""
    lons = np.linspace(lon0, lon1, n)
    lat = np.concatenate([np.full(n, lat0), np.full(n, lat1)])
    lon = np.concatenate([lons, lons[::-1]])
    area, _ = Geod(a=grids.EARTH_RADIUS_KM * 1000, b=grids.EARTH_RADIUS_KM * 1000) \
        .polygon_area_perimeter(lon, lat)
    return abs(area) / 1e6


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_area_weights(name, using):
    """Global layouts sum to the sphere; the lat-lon LAM to its box (half a cell beyond its
    outer points, from pyproj); the projected LAM to nx*ny cells of 100 km (to 1 %)."""
    grid = grids.grid_from_dataset(catalog.open_dataset(name))
    weights = grids.area_weights(grid)
    assert np.all(weights > 0)
    if name == "latlon-lam":
        assert weights.sum() == pytest.approx(_polygon_area_km2(29, 71, -21, 41), rel=1e-4)
    elif name == "projected":
        assert weights.sum() == pytest.approx(24 * 20 * 100.0**2, rel=0.01)
    else:
        assert weights.sum() == pytest.approx(SPHERE_KM2, rel=1e-9)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_graph_build_and_inspect(name, corpus, tmp_path, capsys):
    """``graph build`` / ``graph inspect`` with --catalog: one data node per grid point, in the
    dataset's order, each reached by the knn decoder; node areas as the grid's."""
    (shape, _), folder = corpus[0][name], corpus[1]
    config = tmp_path / "g.yaml"
    config.write_text(f"name: g-{name}\ndata: {{datasets: [{name}]}}\n"
                      "hidden: {kind: icosahedral, level: 2}\n"
                      "encoder: {kind: knn, k: 3}\ndecoder: {kind: knn, k: 3}\n")
    assert cli.main(["graph", "build", str(config), "--out", str(tmp_path / "g.pt"),
                     "--catalog", str(folder)]) == 0
    capsys.readouterr()
    report = _cli_json(["graph", "inspect", str(tmp_path / "g.pt"), "--json"], capsys)
    size = int(np.prod(shape)) if shape else 600
    assert report["nodes"]["data"] == size
    assert report["edge_sets"]["hidden->data"]["hanging_targets"]["total"] == 0
    from workbench.graphs import load_graph

    graph = load_graph(tmp_path / "g.pt")
    ds = catalog.open_dataset(name, catalog=[folder])
    lat = np.rad2deg(graph["data"].x[:, 0].double().numpy())
    np.testing.assert_allclose(lat, ds["latitude"].values, atol=1e-4)
    np.testing.assert_allclose(graph["data"].area_weight.double().numpy()[:, 0],
                               grids.area_weights(grids.grid_from_dataset(ds)), rtol=1e-5)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_limited_area_from_coverage_and_boundary_ring(name, using, tmp_path):
    """Without a ``lam``/``global`` label the coverage decides; training's forced ring exists
    on the limited areas only, and counts 2 rows/columns all round (by hand)."""
    shape, kind = using[name]
    entry = catalog.get_entry(name)
    ds = catalog.open_dataset(name)
    grid = grids.grid_from_dataset(ds)
    assert catalog.is_limited_area(entry, grid) == (kind == "lam")
    graph = tmp_path / "g.yaml"
    graph.write_text(f"name: ring-{name}\ndata: {{datasets: [{name}]}}\n"
                     "hidden: {kind: icosahedral, level: 1}\n"
                     "encoder: {kind: knn, k: 1}\ndecoder: {kind: knn, k: 1}\n")
    dom = domain_graphs.domain_graph(str(graph), name, name, 2, cache=tmp_path)
    if kind == "lam":
        ny, nx = shape
        assert int(dom.boundary.sum()) == ny * nx - (ny - 4) * (nx - 4)
    else:
        assert dom.boundary is None


def test_catalog_label_decides_over_coverage(tmp_path, monkeypatch):
    """``domain: lam`` makes a global-looking grid a LAM; ``domain: global`` a regional one
    global: the catalog decides, never the reader or grid kind."""
    write_wb2(tmp_path, "wb2-as-lam", domain="lam")
    write_latlon_lam(tmp_path, "lam-as-global", domain="global")
    monkeypatch.setenv("WORKBENCH_CATALOG", str(tmp_path / "cat"))
    for name, expected in (("wb2-as-lam", True), ("lam-as-global", False)):
        grid = grids.grid_from_dataset(catalog.open_dataset(name))
        assert catalog.is_limited_area(catalog.get_entry(name), grid) is expected
        assert catalog.is_limited_area(None, grid) is not expected  # coverage alone


def test_global_anemoi_store_with_field_shape_has_no_ring(tmp_path, monkeypatch):
    """A global anemoi store with ``field_shape`` (a lat-lon grid, 73 x 144 as the embedded
    global): regular lat-lon, global, no truth-forced ring (once 852 of its 10,512 points)."""
    import zarr

    g = grids.regular_latlon(2.5)
    root = zarr.open_group(tmp_path / "an.zarr", mode="w")
    root.create_array("data", data=np.ones((4, 1, 1, g.size), np.float32))
    root.create_array("dates", data=TIMES[:4].astype("datetime64[s]"))
    root.create_array("latitudes", data=g.latitude)
    root.create_array("longitudes", data=g.longitude % 360)
    root.attrs.update({"variables": ["2t"], "field_shape": list(g.shape)})
    _entry(tmp_path / "cat", "an", "anemoi", tmp_path / "an.zarr", "{t2m: 2t}", "era5-anemoi")
    monkeypatch.setenv("WORKBENCH_CATALOG", str(tmp_path / "cat"))
    ds = catalog.open_dataset("an")
    grid = grids.grid_from_dataset(ds)
    assert grid.kind == "regular_latlon" and grid.shape == (73, 144)
    np.testing.assert_allclose(grids.area_weights(grid), grids.area_weights(g), rtol=1e-12)
    graph = tmp_path / "g.yaml"
    graph.write_text("name: an\ndata: {datasets: [an]}\nhidden: {kind: icosahedral, level: 1}\n"
                     "encoder: {kind: knn, k: 1}\ndecoder: {kind: knn, k: 1}\n")
    assert domain_graphs.domain_graph(str(graph), "an", "an", 2, cache=tmp_path).boundary is None


@pytest.mark.parametrize("name", ["wb2", "wb2-lonlat", "latlon-lam", "projected"])
def test_tiling_on_structured_layouts(name, using, tmp_path):
    """4 x 4 tiles of t2m: their count and mean against numpy on the (ny, nx) field."""
    shape, _ = using[name]
    ny, nx = shape
    ds = catalog.open_dataset(name)
    config = tiling.TilingConfig(tile_size=(4, 4), n_time_window=1, aggregate_variable="t2m",
                                 aggregate="mean", variables=("t2m",))
    tiles = tiling.tile_index(ds, config, name, tmp_path)
    assert len(tiles) == (ny // 4) * (nx // 4) * len(TIMES)
    cube = ds["t2m"].values.reshape(len(TIMES), ny, nx)
    for row in tiles.sample(5, random_state=0).itertuples():
        block = cube[row.t_index, row.j0:row.j0 + 4, row.i0:row.i0 + 4]
        assert row.aggregate == pytest.approx(float(block.mean()), rel=1e-6)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_maps_draw_the_globe_or_the_region(name, using):
    """A global layout is drawn whole; a limited area (the lat-lon extract too) as its region."""
    import matplotlib.pyplot as plt

    from workbench import plotting

    _, kind = using[name]
    ds = catalog.open_dataset(name)
    ax = plotting.map_field(ds, "t2m")
    try:
        import cartopy.crs as ccrs

        lon0, lon1, lat0, lat1 = ax.get_extent(crs=ccrs.PlateCarree())
        if kind == "global":
            assert lon1 - lon0 > 350 and lat1 - lat0 > 170
        else:
            assert lon1 - lon0 < 120 and lat1 - lat0 < 60
            assert lat0 < ds["latitude"].min() and lat1 > ds["latitude"].max()
    finally:
        plt.close("all")


# ---------------------------------------------------------------- --catalog end to end


def test_use_catalog_appends_absolute_folders_once(tmp_path, monkeypatch):
    """Folders go to the end of $WORKBENCH_CATALOG (the precedence of --catalog: a later
    folder's entry replaces an earlier one's), absolute, once however often it is called."""
    first, second = tmp_path / "a", tmp_path / "b"
    write_latlon_lam(tmp_path, "mine", "lam")  # a store for both entries
    store = tmp_path / "mine.nc"
    for folder, domain in ((first, "from-a"), (second, "from-b")):
        _entry(folder, "mine", "netcdf", store, "[t2m]", domain)
    monkeypatch.setenv("WORKBENCH_CATALOG", str(first))
    monkeypatch.chdir(tmp_path)
    dirs = catalog.use_catalog(["b"])
    assert dirs[1:] == [first, second]
    assert catalog.get_entry("mine").domain == "from-b"
    catalog.use_catalog(["b", str(second)])
    assert catalog.catalog_dirs()[1:] == [first, second]
    catalog.use_catalog([str(first)])  # given again: now it comes last and wins
    assert catalog.get_entry("mine").domain == "from-a"


TRAIN_CONFIG = """\
name: mine
sampling:
  name: mine
  domains: [{{name: mine, dataset: mine, graph: {graph}}}]
  splits: {{train: ["2021-03-01", "2021-03-05T18:00"], val: ["2021-03-06", "2021-03-07T18:00"],
           test: ["2021-03-08", "2021-03-10T18:00"]}}
  variables: [t2m]
  batch_size: 2
  batches_per_epoch: 4
model: {{processor: transformer, hidden_dim: 16, processor_layers: 1, heads: 2}}
optimizer: {{lr: 1.0e-3, warmup_steps: 0}}
max_steps: 3
val_rollout: 2
val_every: 1000
val_batches: 2
checkpoint_every: 1000
boundary_cells: 2
runs_dir: {runs}
"""


def _user_lam(folder):
    """``mine``: a lat-lon extract (21 x 31, -180..180, ascending rows) 2021-03-01..10, 6 h,
    in its own catalog folder, with a training config and a graph made for that grid."""
    times = pd.date_range("2021-03-01", "2021-03-10T18:00", freq="6h").values
    lat, lon = np.arange(30, 71, 2.0), np.arange(-20, 41, 2.0)
    steps = np.arange(len(times))[:, None, None]
    t2m = 280 + 20 * np.cos(np.deg2rad(lat))[None, :, None] + 3 * np.sin(
        np.deg2rad(lon[None, None, :] - 10 * steps))  # a wave moving east
    xr.Dataset({"t2m": (("time", "lat", "lon"), t2m.astype(np.float32), {"units": "K"})},
               coords={"time": times, "lat": lat, "lon": lon}).to_netcdf(folder / "mine.nc")
    _entry(folder / "cat", "mine", "netcdf", folder / "mine.nc", "[t2m]", "alps")
    graph = folder / "mine-graph.yaml"
    graph.write_text("name: mine\ndata: {datasets: [mine]}\n"
                     "hidden: {kind: coarsened, factor: 3, k: 6}\n"
                     "encoder: {kind: reversed_knn, k: 1}\ndecoder: {kind: knn, k: 3}\n")
    config = folder / "mine.yaml"
    config.write_text(TRAIN_CONFIG.format(graph=graph, runs=folder / "runs"))
    return folder / "cat", config


def _workbench(*args: str, cwd, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("workbench")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_user_dataset_trains_and_evaluates_through_catalog_flag(tmp_path):
    """``workbench train ... --catalog DIR`` then ``workbench evaluate`` on a dataset that
    exists only in DIR: finite losses, a forecast of every test init time, finite scores; the
    LAM's forced ring on its lat-lon grid; training without --catalog is one line, evaluating
    needs none (the run recorded DIR in its catalog.json)."""
    folder, config = _user_lam(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_CATALOG"}
    env["WORKBENCH_CACHE"] = str(tmp_path / "cache")
    missing = _workbench("train", str(config), "--no-progress", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "unknown dataset 'mine'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    done = _workbench("train", str(config), "--catalog", str(folder), "--run-dir", "r",
                      "--no-progress", "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout[done.stdout.index("{"):])
    assert info["status"] == "finished" and info["steps"] == 3
    losses = pd.read_csv(tmp_path / "r" / "metrics.csv")["train/loss"].dropna()
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert json.loads((tmp_path / "r" / "catalog.json").read_text()) == [str(folder)]
    # the run remembers its catalog folder: evaluate finds the dataset without --catalog
    scored = _workbench("evaluate", "r", "--domain", "mine", "--json", cwd=tmp_path, env=env)
    assert scored.returncode == 0, scored.stderr[-3000:]
    table = pd.DataFrame(json.loads(scored.stdout)["scores"])
    model = table[(table.forecast == "model") & (table.metric == "rmse")]
    assert len(model) >= 2 and np.isfinite(model.value).all()
    forecast = forecast_files.read_forecast(tmp_path / "r" / "forecasts" / "mine-test.zarr")
    assert forecast.sizes["init_time"] == 12 - 3 + 1 and forecast.sizes["grid"] == 21 * 31
    # a LAM on a lat-lon grid: its outer 2 rows/columns come from the truth at every lead
    truth = catalog.open_dataset("mine", catalog=[folder])
    ring = grids.boundary_distance_cells(grids.grid_from_dataset(truth)) < 2
    assert ring.sum() == 21 * 31 - 17 * 27
    valid = forecast["init_time"].values[:, None] + forecast["lead_time"].values[None, :]
    expected = truth["t2m"].sel(time=valid.ravel()).values.reshape(*valid.shape, -1)
    predicted = forecast["t2m"].values
    np.testing.assert_allclose(predicted[..., ring], expected[..., ring], rtol=1e-5)
    assert np.abs(predicted[..., ~ring] - expected[..., ~ring]).max() > 1e-3


@pytest.mark.slow
def test_catalog_tour_on_a_user_dataset_through_the_parameter_and_batch(tmp_path):
    """``workbench run 00_catalog_tour -p catalog '[DIR]' -p datasets '[mine]'``: the notebook
    opens the dataset that exists only in DIR and maps it (its mean against the data's); a
    batch plan's entry does the same under ``workbench batch --catalog DIR``."""
    folder, _ = _user_lam(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_CATALOG"}
    done = _workbench("run", "00_catalog_tour", "-p", "catalog", f"[{folder}]", "-p", "datasets",
                      "[mine]", "-p", "interactive_frames", "2", "--runs-dir", "runs",
                      "--no-progress", "--no-index", cwd=tmp_path, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    info = summary["datasets"]["mine"]
    assert info["grid_points"] == 21 * 31 and info["grid_shape"] == [21, 31]
    data = xr.open_dataset(tmp_path / "mine.nc")["t2m"].isel(time=0).values
    assert info["mapped"]["mean"] == pytest.approx(float(data.mean()), rel=1e-6)
    # a batch plan's entries find it through `workbench batch --catalog DIR`
    (tmp_path / "plan.yaml").write_text(
        "name: byod\nsteps:\n  - name: tour\n    notebook: 00_catalog_tour\n"
        "    params: {datasets: [mine], interactive_frames: 2}\n")
    done = _workbench("batch", "plan.yaml", "--catalog", str(folder), "--runs-dir", "batch",
                      "--no-progress", cwd=tmp_path, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (summary_path,) = (tmp_path / "batch").rglob("summary.json")
    again = json.loads(summary_path.read_text())["datasets"]["mine"]
    assert again["mapped"]["mean"] == pytest.approx(info["mapped"]["mean"], rel=1e-12)


def test_readme_wb2_entry_opens_a_wb2_store(corpus, tmp_path):
    """The README's copy-paste WeatherBench 2 entry, its path pointed at the WB2-like store,
    opens with every variable it names."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Your own data", 1)[1].split("#### GRIB2", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```")[0]
    path = next(line for line in block.splitlines() if line.strip().startswith("path:"))
    store = corpus[1].parent / "wb2.zarr"
    write_entry(tmp_path / "cat", "era5-1p5", block.replace(path, f"  path: {store}"))
    ds = catalog.open_dataset("era5-1p5", catalog=[tmp_path / "cat"])
    assert list(ds.data_vars) == ["z_500", "z_850", "t_850", "t2m", "u10", "v10", "tp"]
    assert ds.attrs["grid_kind"] == "regular_latlon" and ds.attrs["domain"] == "global"
    np.testing.assert_allclose(ds["t_850"].values, ds["t2m"].values * 20 / 50, rtol=1e-6)


def test_cached_graph_follows_the_catalog_entry(tmp_path, monkeypatch):
    """One graph config over ``mine``, once from a catalog where it is a 21 x 31 grid, once
    from one where it is the 19 x 36 WB2 grid: each gets its own cached graph, not the other's."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    write_latlon_lam(tmp_path / "a", "mine", "alps")
    write_wb2(tmp_path / "b", "mine", "era5")
    graph = tmp_path / "g.yaml"
    graph.write_text("name: g\ndata: {datasets: [mine]}\nhidden: {kind: icosahedral, level: 1}\n"
                     "encoder: {kind: knn, k: 1}\ndecoder: {kind: knn, k: 1}\n")
    for folder, size in (("a", 21 * 31), ("b", 19 * 36), ("a", 21 * 31)):
        monkeypatch.setenv("WORKBENCH_CATALOG", str(tmp_path / folder / "cat"))
        dom = domain_graphs.domain_graph(str(graph), "mine", "mine", 2, cache=tmp_path / "cache")
        assert dom.area_weight.numel() == size
    assert len(list((tmp_path / "cache" / "graphs").glob("g-*.pt"))) == 2


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_skill_on_each_layout(name, using):
    """A forecast that is the truth plus 0.1 K, scored on each layout: RMSE 0.1 (by hand),
    skill maps over every point, boundary bands on the limited areas only, the skill map
    drawn as the globe or the region."""
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    from workbench import evaluation, plotting_skill

    shape, kind = using[name]
    truth = catalog.open_dataset(name)[["t2m"]].load()
    times = truth["time"].values
    init, lead = times[:-2], pd.to_timedelta([6, 12], "h")
    values = np.stack([truth["t2m"].sel(time=init + step).values for step in lead], axis=1)
    forecast = xr.Dataset({"t2m": (("init_time", "lead_time", "grid"), values + 0.1)},
                          coords={"init_time": init, "lead_time": lead,
                                  "latitude": truth["latitude"], "longitude": truth["longitude"]},
                          attrs={"dataset": name, "domain": name})
    period = (str(times[0]), str(times[-1]))
    table = evaluation.scores(forecast, truth, period)
    rmse = table[(table.metric == "rmse") & (table.forecast == "model")]
    np.testing.assert_allclose(rmse.value, 0.1, rtol=1e-4)
    maps = evaluation.skill_maps(forecast, truth, period)
    assert np.isfinite(maps["t2m"].sel(forecast="model", metric="rmse").values).all()
    bands = evaluation.boundary_skill(forecast, truth, period, maps=maps)
    assert (len(bands) > 0) == (kind == "lam")
    ax = plotting_skill.skill_map(maps, "t2m", 0, "rmse")
    try:
        lon0, lon1, lat0, lat1 = ax.get_extent(crs=ccrs.PlateCarree())
        assert (lon1 - lon0 > 350) == (kind == "global")
    finally:
        plt.close("all")
