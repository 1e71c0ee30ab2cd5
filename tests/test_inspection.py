"""Inspection: hanging counts by region, and the one-query sweep against per-k rebuilds."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from test_graphs import CONFIG, GRIDS, LAM, SOURCES, TARGETS

from workbench import cli, graphs, inspection, meshes
from workbench.errors import WorkbenchError


def test_first_rank_by_hand():
    neighbours = np.array([[2, 0, 1], [2, 3, 0]])
    np.testing.assert_array_equal(inspection.first_rank(neighbours, 5), [1, 2, 0, 1, 3])


def test_hanging_by_k_hand_case():
    free_at, side = inspection.hanging_by_k(SOURCES, TARGETS, range(1, 6), "knn")
    assert side == "sources"
    # target lon 0.4 ranks sources 0,1,2,3,4; target 8.6 ranks 9,8,7,6,5
    np.testing.assert_array_equal(free_at, [1, 2, 3, 4, 5, 5, 4, 3, 2, 1])


@pytest.mark.parametrize("kind", ["knn", "reversed_knn"])
def test_sweep_equals_per_k_rebuild(kind):
    rng = np.random.default_rng(3)
    src = rng.normal(size=(400, 3))
    dst = rng.normal(size=(90, 3))
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    dst /= np.linalg.norm(dst, axis=1, keepdims=True)
    ks = list(range(1, 13))
    free_at, side = inspection.hanging_by_k(src, dst, ks, kind)
    build = graphs.knn_edges if kind == "knn" else graphs.reversed_knn_edges
    for k in ks:
        index = build(src, dst, k)
        row, n = (0, len(src)) if side == "sources" else (1, len(dst))
        hanging = np.bincount(index[row], minlength=n) == 0
        np.testing.assert_array_equal(free_at > k, hanging)


def test_graph_sweep_matches_built_graphs_for_each_k_and_trim():
    ks = [1, 2, 4, 8, 16]
    result = inspection.sweep(CONFIG, ks, trims=[0, 2], region="lam", grid_of=GRIDS.get)
    assert {(r["trim"], r["k"]) for r in result["rows"]} == {(t, k) for t in (0, 2) for k in ks}
    for row in result["rows"]:
        config = inspection.with_trim(CONFIG, row["trim"])
        config = dataclasses.replace(config, encoder=graphs.EdgeConfig(kind="knn", k=row["k"]))
        graph = graphs.build_graph(config, GRIDS.get)
        report = inspection.inspect_graph(graph)
        assert report["edge_sets"]["data->hidden"]["hanging_sources"] == row["hanging"]
    for trim, k in result["min_k_without_hanging"].items():
        rows = [r for r in result["rows"] if r["trim"] == int(trim)]
        lam = [r["hanging"]["lam_interior"] + r["hanging"]["lam_boundary"] for r in rows]
        expected = next((r["k"] for r, n in zip(rows, lam, strict=True) if n == 0), None)
        assert k == expected


def test_regions_of_data_nodes():
    graph = graphs.build_graph(CONFIG, GRIDS.get)
    labels = inspection.node_regions(graph, "data", inspection.RegionSettings(band_cells=3))
    ny, nx = LAM.shape
    assert (labels == "lam_boundary").sum() == ny * nx - (ny - 6) * (nx - 6)
    assert (labels == "lam_interior").sum() == (ny - 6) * (nx - 6)
    lat = np.rad2deg(graph["data"].x[:, 0].numpy())
    assert np.all(labels[np.abs(lat) > 85] == "poles") and (labels == "poles").sum() > 0
    assert (labels == "near_lam").sum() > 0


def test_hanging_mask_counts_by_hand():
    config = dataclasses.replace(CONFIG, hidden=graphs.HiddenConfig(kind="icosahedral", level=1))
    graph = graphs.build_graph(config, GRIDS.get)
    mask = inspection.hanging_mask(graph, "encoder", "sources")
    used = set(graph[graphs.EDGE_SETS["encoder"]].edge_index[0].tolist())
    assert mask.sum() == graph["data"].num_nodes - len(used)
    assert meshes.level_size(1) == graph["hidden"].num_nodes == 42


def test_sweep_bad_input():
    with pytest.raises(WorkbenchError, match="k must be >= 1"):
        inspection.hanging_by_k(SOURCES, TARGETS, [0, 1])
    with pytest.raises(WorkbenchError, match="unknown region"):
        inspection.sweep(CONFIG, [1], region="mars", grid_of=GRIDS.get)
    cutoff = dataclasses.replace(CONFIG, encoder=graphs.EdgeConfig(kind="cutoff", radius_km=300))
    with pytest.raises(WorkbenchError, match="needs knn or reversed_knn"):
        inspection.sweep(cutoff, [1], grid_of=GRIDS.get)
    assert inspection.parse_k_range("1:9:4") == [1, 5, 9]
    with pytest.raises(WorkbenchError, match="START:STOP"):
        inspection.parse_k_range("a:b")


def test_cli_graph_build_inspect_sweep(tmp_path, capsys):
    out = tmp_path / "demo.pt"
    assert cli.main(["graph", "build", "demo", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["graph", "inspect", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    enc = report["edge_sets"]["data->hidden"]
    assert set(enc["hanging_sources"]) == {"total", *inspection.REGIONS}
    assert enc["hanging_sources"]["total"] == sum(
        v for k, v in enc["hanging_sources"].items() if k != "total")
    assert {"degree", "edge_length_km", "edges", "hanging_targets"} <= set(enc)
    assert cli.main(["graph", "sweep", "demo", "--k", "8:48:8", "--trim", "0,2", "--json"]) == 0
    sweep = json.loads(capsys.readouterr().out)
    assert len(sweep["rows"]) == 12 and set(sweep["min_k_without_hanging"]) == {"0", "2"}
    row = next(r for r in sweep["rows"] if r["trim"] == 0 and r["k"] == 16)
    config = dataclasses.replace(graphs.load_config("demo"),
                                 encoder=graphs.EdgeConfig(kind="knn", k=16))
    rebuilt = inspection.inspect_graph(graphs.build_graph(config))
    assert rebuilt["edge_sets"]["data->hidden"]["hanging_sources"] == row["hanging"]


@pytest.mark.parametrize("argv, message", [
    (["graph", "inspect", "/nonexistent.pt"], "does not exist"),
    (["graph", "sweep", "demo", "--k", "0:4"], "every k must be >= 1"),
    (["graph", "sweep", "demo", "--k", "1:100000"], "must be between 1 and"),
    (["graph", "sweep", "demo", "--region", "moon"], "unknown region"),
    (["graph", "build", "nothing-here", "--out", "/tmp/x.pt"], "not found"),
])
def test_cli_graph_bad_input(argv, message, capsys):
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().split("\n")  # a progress bar may come first
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert sum(line.startswith("error") for line in lines) == 1


def test_sweep_region_with_no_node_is_an_error():
    globe_only = dataclasses.replace(
        CONFIG, data=graphs.DataConfig(datasets=(graphs.DatasetNodes("globe"),)),
        hidden=graphs.HiddenConfig(kind="icosahedral", level=2))
    with pytest.raises(WorkbenchError, match="region 'lam' holds no data node"):
        inspection.sweep(globe_only, [1, 2], region="lam", grid_of=GRIDS.get)
    result = inspection.sweep(globe_only, [1, 2, 40], region="all", grid_of=GRIDS.get)
    assert result["rows"][0]["hanging"]["lam_interior"] == 0
