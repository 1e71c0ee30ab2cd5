"""Seed 004 at demo size: the cutout (stretched-grid) datasets, their three graphs (mmgt, nbd,
tnbd), training, scores and maps on an unstructured grid."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from pyproj import Proj

from workbench import (
    catalog,
    domain_graphs,
    evaluation,
    graphs,
    inspection,
    training,
    training_report,
)
from workbench.errors import WorkbenchError

matplotlib.use("Agg")

TRAIN = ("2020-01-01", "2020-02-29T18:00")
GRAPHS = {"mmgt": "stretched", "nbd": "stretched", "tnbd": "stretched-trim"}  # graph -> dataset
CONUS_SHAPE = (70, 119)


@pytest.fixture(scope="module")
def built() -> dict:
    """The three demo graphs of seed 004, built from their configs."""
    return {name: graphs.build_graph(f"demo-{name}") for name in GRAPHS}


def edge_cells(ny: int, nx: int) -> np.ndarray:
    """Cells to the nearest edge of an ny x nx grid, computed by hand."""
    j, i = np.divmod(np.arange(ny * nx), nx)
    return np.minimum(np.minimum(j, ny - 1 - j), np.minimum(i, nx - 1 - i))


def test_cutout_dataset_is_the_parts_values_at_the_graph_indices(built):
    ds = catalog.open_dataset("stretched")
    parts = (catalog.open_dataset("conus"), catalog.open_dataset("global"))
    data = built["nbd"]["data"]
    which = graphs.node_values(data, "dataset_index")
    index = graphs.node_values(data, "grid_index")
    assert ds.sizes["grid"] == which.size == 18570
    assert ds.attrs["grid_kind"] == "cutout" and "grid_shape" not in ds.attrs
    assert ds.attrs["domain"] == "stretched"
    np.testing.assert_array_equal(ds["time"].values, np.intersect1d(
        parts[0]["time"].values, parts[1]["time"].values))
    steps = [0, 100, ds.sizes["time"] - 1]
    for name in ("z_500", "t2m", "tp", "orog"):
        got = ds[name].values if "time" not in ds[name].dims else ds[name].values[steps]
        expected = np.empty_like(got)
        for d, part in enumerate(parts):
            values = part[name].values if "time" not in part[name].dims else (
                part[name].values[steps])
            expected[..., which == d] = values[..., index[which == d]]
        np.testing.assert_array_equal(got, expected)
        assert ds[name].attrs["units"] == parts[0][name].attrs["units"]
    for coord in ("latitude", "longitude"):
        expected = np.concatenate([parts[d][coord].values[index[which == d]] for d in (0, 1)])
        np.testing.assert_array_equal(ds[coord].values, expected)

    # LAM first in its own order, then the global points outside the CONUS rectangle
    assert (which[:8330] == 0).all() and (index[:8330] == np.arange(8330)).all()
    kept = index[which == 1]
    assert (np.diff(kept) > 0).all()
    conus, glob = parts
    x, y = Proj(conus.attrs["crs"])(glob["longitude"].values, glob["latitude"].values)
    gx, gy, half = np.asarray(conus.attrs["grid_x"]), np.asarray(conus.attrs["grid_y"]), 22500.0
    inside = ((x > gx[0] - half) & (x < gx[-1] + half) & (y > gy[0] - half) & (y < gy[-1] + half)
              & (np.abs(glob["latitude"].values) < 89.9))
    np.testing.assert_array_equal(kept, np.flatnonzero(~inside))
    assert 0 < inside.sum() < 1000
    np.testing.assert_array_equal(ds["cutout_mask"].values, which == 0)
    np.testing.assert_array_equal(ds["lam_edge_cells"].values,
                                  np.concatenate([edge_cells(*CONUS_SHAPE), -np.ones(kept.size)]))


def test_trimmed_cutout_keeps_the_inner_conus_block():
    trimmed = catalog.open_dataset("stretched-trim")
    conus = catalog.open_dataset("conus")
    ny, nx = CONUS_SHAPE
    lam = trimmed["cutout_mask"].values
    assert lam.sum() == (ny - 6) * (nx - 6) and lam[:lam.sum()].all()
    block = conus["t2m"].isel(time=7).values.reshape(ny, nx)[3:-3, 3:-3].ravel()
    np.testing.assert_array_equal(trimmed["t2m"].isel(time=7).values[lam], block)
    lat = conus["latitude"].values.reshape(ny, nx)[3:-3, 3:-3].ravel()
    np.testing.assert_array_equal(trimmed["latitude"].values[lam], lat)
    np.testing.assert_array_equal(trimmed["lam_edge_cells"].values[lam], edge_cells(ny - 6, nx - 6))
    # the trimmed LAM cuts fewer global points: more of them are kept
    full = catalog.open_dataset("stretched")
    assert (~lam).sum() >= (~full["cutout_mask"].values).sum()


def test_entry_grid_and_summary_need_no_generated_fields():
    entry = catalog.get_entry("stretched")
    grid = catalog.entry_grid(entry)
    assert grid.kind == "cutout" and grid.shape is None and grid.size == 18570
    summary = entry.summary()
    assert summary["source"] == {"kind": "cutout", "min_distance_km": 0.0, "datasets": [
        {"name": "conus", "trim_edge": 0}, {"name": "global", "trim_edge": 0}]}
    assert entry.source.location == "cutout of conus, global"


def test_bad_cutout_entries_are_one_line_errors(tmp_path):
    folder = tmp_path / "catalog"
    folder.mkdir()
    body = ("name: bad\ndomain: bad\nsource: {kind: cutout, datasets: %s}\nvariables: [t2m]\n"
            "time_step: 6h\ngrid: {kind: cutout}\n")
    (folder / "bad.yaml").write_text(body % "[global]")
    with pytest.raises(WorkbenchError, match="two or more catalog names"):
        catalog.load_catalog([folder])
    (folder / "bad.yaml").write_text(body % "[{name: conus, trim: 3}, global]")
    with pytest.raises(WorkbenchError, match="trim"):
        catalog.load_catalog([folder])


def test_each_graph_has_its_cutout_datasets_points(built):
    for name, dataset in GRAPHS.items():
        graph = built[name]
        ds = catalog.open_dataset(dataset)
        domain_graphs.check_graph_matches(graph, catalog.entry_grid(catalog.get_entry(dataset)),
                                     dataset)
        lat, lon = graphs.node_latlon(graph, "data")
        np.testing.assert_allclose(lat, ds["latitude"].values, atol=1e-5)
        np.testing.assert_allclose(np.cos(np.deg2rad(lon - ds["longitude"].values)), 1.0,
                                   atol=1e-9)
        np.testing.assert_array_equal(graphs.node_values(graph["data"], "cutout_mask"),
                                      ds["cutout_mask"].values)
        np.testing.assert_allclose(graphs.node_values(graph["data"], "area_weight"),
                                   ds["area_weight"].values,
                                   rtol=1e-6)
    with pytest.raises(WorkbenchError, match="17506 data nodes"):
        domain_graphs.check_graph_matches(built["tnbd"], catalog.entry_grid(
            catalog.get_entry("stretched")), "stretched")


def test_mmgt_leaves_conus_nodes_hanging_and_nbd_tnbd_do_not(built):
    hanging_lam = {}
    for name, graph in built.items():
        report = inspection.inspect_graph(graph)["edge_sets"]["data->hidden"]["hanging_sources"]
        lam = report["lam_interior"] + report["lam_boundary"]
        # independently: CONUS data nodes that are no source of any encoder edge
        sources = graph[graphs.EDGE_SETS["encoder"]].edge_index[0].numpy()
        out_degree = np.bincount(sources, minlength=graph["data"].num_nodes)
        mask = graphs.node_values(graph["data"], "cutout_mask")
        assert lam == int((out_degree[mask] == 0).sum())
        hanging_lam[name] = lam
    assert hanging_lam["mmgt"] > 1000
    assert hanging_lam["nbd"] == hanging_lam["tnbd"] == 0
    k = {name: graphs.load_config(f"demo-{name}").encoder.k for name in GRAPHS}
    result = inspection.sweep(graphs.load_config("demo-mmgt"), range(1, 17), trims=(0, 3))
    assert result["min_k_without_hanging"] == {"0": k["nbd"], "3": k["tnbd"]}
    assert k["mmgt"] < k["nbd"]


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory) -> Path:
    """A tiny seed004-nbd run whose weights never move (lr 0): its model is persistence."""
    tmp = tmp_path_factory.mktemp("seed004")
    raw = training.config_dict(training.load_training_config("seed004-nbd"))
    raw["sampling"]["batches_per_epoch"] = 3
    raw["model"].update(hidden_dim=8, processor_layers=1)
    raw.update(max_steps=2, val_rollout=2, val_batches=1, checkpoint_every=1000,
               optimizer={"lr": 0.0}, runs_dir=str(tmp / "runs"))
    return training.fit(training.training_config_from_dict(raw), run_dir=tmp / "run",
                        progress=False)


def test_tiny_training_on_the_cutout_domain_writes_metrics(frozen_run):
    info = json.loads((frozen_run / "run.json").read_text())
    assert info["status"] == "finished" and info["steps"] == 2
    assert json.loads((frozen_run / "graphs.json").read_text())["stretched"]["data_nodes"] == 18570
    table = pd.read_csv(frozen_run / "metrics.csv")
    assert np.isfinite(table["train/loss_stretched"].dropna()).all()
    val = table.dropna(subset=["val/mse"]).iloc[-1]
    # a global domain: nothing is forced from the truth, so the untrained model is persistence
    for step in (1, 2):
        assert val[f"val/mse_stretched_step{step}"] == pytest.approx(
            val[f"val/persistence_stretched_step{step}"], rel=1e-6)
    config, module, datamodule = training.load_run(frozen_run)
    assert module.graphs[0].boundary is None
    domain = datamodule.domains[0]
    area = module.graphs[0].area_weight.double().numpy()
    area = area / area.mean()
    norm = domain.normalisers["variables"]
    errors = []
    for t0 in domain.samples("val")[:2]:  # val_batches 1: the first batch of 2 windows
        x = norm.normalise(torch.from_numpy(domain.read(domain.variables, int(t0), 3)))
        x = x.double().numpy()
        errors.append([((x[0] - x[s]) ** 2 * area).mean() for s in (1, 2)])
    expected = np.mean(errors, axis=0)
    for step in (1, 2):
        assert val[f"val/persistence_stretched_step{step}"] == pytest.approx(
            expected[step - 1], rel=1e-4)
    sample = training.forecast_sample(module, datamodule, "stretched", "val", 0, steps=2)
    assert sample["grid_shape"] is None and sample["forecast"].shape == (2, 8, 18570)
    summary = training_report.notebook_summary(frozen_run)
    assert summary["key_figures"]["graph_id_stretched"] == module.graphs[0].graph_id


@pytest.fixture(scope="module")
def scored(frozen_run):
    fc = evaluation.forecast(frozen_run, "stretched", "test", steps=2, progress=False)
    truth = evaluation.truth_for(fc)
    maps = evaluation.skill_maps(fc[["z_500", "t2m"]], truth, TRAIN)
    return fc, truth, maps


@pytest.mark.slow
def test_scores_on_the_cutout_domain(scored):
    fc, truth, maps = scored
    init = fc["init_time"].values
    at_init = truth["z_500"].sel(time=init).values
    for k in range(2):  # persistence everywhere, the LAM edge included: no boundary forcing
        np.testing.assert_allclose(fc["z_500"].values[:, k], at_init, rtol=1e-5)
    table = evaluation.scores(fc, truth, TRAIN)
    weights = truth["area_weight"].values / truth["area_weight"].values.mean()
    lead = fc["lead_time"].values
    for k, hours in enumerate(lead / np.timedelta64(1, "h")):
        valid = truth["t2m"].sel(time=init + lead[k]).values
        error = (truth["t2m"].sel(time=init).values - valid) ** 2
        expected = np.sqrt(np.mean((error * weights).mean(axis=1)))
        row = table[(table.forecast == "persistence") & (table.metric == "rmse")
                    & (table.variable == "t2m") & (table.lead_hours == hours)]
        assert float(row["value"].iloc[0]) == pytest.approx(expected, rel=1e-5)

    bands = evaluation.boundary_skill(fc[["z_500", "t2m"]], truth, TRAIN, maps=maps)
    first = bands[(bands.variable == "t2m") & (bands.lead_hours == 6.0)]
    assert first["points"].sum() == truth.sizes["grid"]
    lam = first[first.band_label.str.startswith("LAM")]
    assert lam["points"].sum() == 8330 and (first["band"].diff().dropna() > 0).all()
    ring = (truth["lam_edge_cells"].values >= 0) & (truth["lam_edge_cells"].values < 2)
    valid = truth["t2m"].sel(time=init + lead[0]).values
    per_point = ((truth["t2m"].sel(time=init).values - valid) ** 2).mean(axis=0)
    expected = np.average(per_point[ring], weights=weights[ring])
    got = lam[lam.band_label == "LAM [0, 2) cells"]["persistence_mse"].iloc[0]
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_unstructured_maps_draw(scored, frozen_run):
    import holoviews as hv
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from workbench import plotting_skill, plotting_training

    _, _, maps = scored
    fig = plotting_skill.skill_maps_figure(maps, ["z_500"])
    meshes = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(meshes) == 4  # 1 variable x 2 leads x 2 metrics
    assert all(m.get_array().size > 18570 for m in meshes)  # ~2 triangles per point
    plt.close(fig)

    _, module, datamodule = training.load_run(frozen_run)
    sample = training.forecast_sample(module, datamodule, "stretched", "val", 0, steps=2)
    fig = plotting_training.forecast_maps(sample, datamodule.domains[0].ds)
    meshes = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(meshes) == 16  # 2 variables x 2 leads x (truth, forecast, 2 errors)
    plt.close(fig)

    view = plotting_skill.interactive_skill_map(maps, "z_500")
    holomap = next(p.object for p in view if isinstance(getattr(p, "object", None), hv.HoloMap))
    assert list(holomap.keys()) == [6, 12]
    assert all(len(frame.data) == 18570 for frame in holomap.values())
