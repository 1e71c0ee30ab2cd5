"""Graph building: edge semantics on hand-made cases, cutout nodes, .pt round trips."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from workbench import graphs, grids, inspection
from workbench.errors import WorkbenchError


def equator(lons) -> np.ndarray:
    return grids.unit_xyz(np.zeros(len(lons)), np.asarray(lons, dtype=float))


SOURCES = equator(np.arange(10.0))  # lon 0..9 on the equator, 111.2 km apart
TARGETS = equator([0.4, 8.6])


def edge_set(index: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(index[0].tolist(), index[1].tolist(), strict=True))


def test_knn_gives_each_target_its_k_nearest_sources():
    index = graphs.knn_edges(SOURCES, TARGETS, k=2)
    assert edge_set(index) == {(0, 0), (1, 0), (8, 1), (9, 1)}
    hanging = np.bincount(index[0], minlength=10) == 0
    np.testing.assert_array_equal(np.flatnonzero(hanging), [2, 3, 4, 5, 6, 7])


def test_reversed_knn_gives_each_source_its_k_nearest_targets():
    targets = np.concatenate([TARGETS, equator([100.0])])
    index = graphs.reversed_knn_edges(SOURCES, targets, k=1)
    assert edge_set(index) == {(s, 0) for s in range(5)} | {(s, 1) for s in range(5, 10)}
    assert (np.bincount(index[1], minlength=3) == 0).tolist() == [False, False, True]


def test_cutoff_in_km_and_as_factor():
    index = graphs.cutoff_edges(SOURCES, TARGETS, radius_km=120)
    # target 0 at lon 0.4: lon 0 (44 km) and 1 (67 km) within 120 km, lon 2 (178 km) not
    assert edge_set(index) == {(0, 0), (1, 0), (8, 1), (9, 1)}
    assert graphs.max_nn_spacing_km(SOURCES) == pytest.approx(111.195, abs=1e-2)
    edge = graphs.EdgeConfig(kind="cutoff", cutoff_factor=0.6)
    assert graphs.cutoff_radius_km(edge, SOURCES) == pytest.approx(0.6 * 111.195, abs=1e-2)


def test_edge_geometry_length_and_direction():
    index = np.array([[1, 0], [0, 0]])  # lon 1 -> target lon 0.4 (east of it); lon 0 -> (west)
    length, direction = graphs.edge_geometry(SOURCES, TARGETS, index)
    np.testing.assert_allclose(length, [0.6 * 111.195, 0.4 * 111.195], rtol=1e-4)
    np.testing.assert_allclose(direction, [[1, 0], [-1, 0]], atol=1e-9)
    north = grids.unit_xyz(np.array([1.0]), np.array([0.4]))
    _, direction = graphs.edge_geometry(north, TARGETS, np.array([[0], [0]]))
    np.testing.assert_allclose(direction, [[0, 1]], atol=1e-6)


@pytest.mark.parametrize("k", [0, 11])
def test_bad_k(k):
    with pytest.raises(WorkbenchError, match="must be between 1 and the 10"):
        graphs.knn_edges(SOURCES, TARGETS, k=k)


# --------------------------------------------------------------------------- with grids

LAM = grids.hrrr(30)
GLOBE = grids.regular_latlon(5.0)
GRIDS = {"lam": LAM, "globe": GLOBE}
CONFIG = graphs.GraphConfig(
    name="hand",
    data=graphs.DataConfig(datasets=(graphs.DatasetNodes("lam"), graphs.DatasetNodes("globe")),
                           boundary_band_km=800),
    hidden=graphs.HiddenConfig(kind="stretched", level=2, lam_level=4, margin_radius_km=200),
    encoder=graphs.EdgeConfig(kind="knn", k=4),
    decoder=graphs.EdgeConfig(kind="knn", k=3),
)


def test_cutout_puts_lam_first_and_removes_covered_global_points():
    nodes = graphs.build_data_nodes(CONFIG.data, GRIDS.get)
    n_lam = LAM.size
    assert nodes.cutout_mask[:n_lam].all() and not nodes.cutout_mask[n_lam:].any()
    np.testing.assert_array_equal(nodes.latitude[:n_lam], LAM.latitude)
    # independent check: a global point is removed iff it projects inside the LAM rectangle
    from pyproj import Proj

    x, y = Proj(LAM.crs)(GLOBE.longitude, GLOBE.latitude)
    half = LAM.spacing_km * 500
    inside = ((x > LAM.x[0] - half) & (x < LAM.x[-1] + half) & (y > LAM.y[0] - half)
              & (y < LAM.y[-1] + half) & (np.abs(GLOBE.latitude) < 89.9))
    assert inside.sum() > 20
    np.testing.assert_array_equal(np.sort(nodes.grid_index[n_lam:]), np.flatnonzero(~inside))
    # boundary band: kept global points within 800 km of a LAM point
    dist = grids.great_circle_km(nodes.latitude[n_lam:, None], nodes.longitude[n_lam:, None],
                                 LAM.latitude[None, ::7], LAM.longitude[None, ::7]).min(1)
    band = nodes.boundary_mask[n_lam:]
    assert band.any() and np.all(dist[band] < 800 + 2 * LAM.spacing_km)
    assert np.all(dist[~band] > 800 - 2 * LAM.spacing_km)


def test_min_distance_and_trim():
    config = dataclasses.replace(CONFIG.data, min_distance_km=1000)
    nodes = graphs.build_data_nodes(config, GRIDS.get)
    kept = ~nodes.cutout_mask
    dist = grids.great_circle_km(nodes.latitude[kept, None], nodes.longitude[kept, None],
                                 LAM.latitude[None], LAM.longitude[None]).min(1)
    assert dist.min() >= 1000
    trimmed = graphs.DataConfig(datasets=(graphs.DatasetNodes("lam", trim_edge=(1, 2, 3, 4)),
                                          graphs.DatasetNodes("globe")))
    nodes = graphs.build_data_nodes(trimmed, GRIDS.get)
    assert nodes.cutout_mask.sum() == (LAM.shape[0] - 3) * (LAM.shape[1] - 7)
    assert nodes.lam_edge_cells.max() == (min(LAM.shape[0] - 3, LAM.shape[1] - 7) - 1) // 2


def test_lam_overlapping_nothing_and_trim_everything():
    # 15 km wide, centred between the points of a 2.5 degree grid: covers none of them
    tiny = grids.lambert_conformal("tiny", lat_0=1.25, lon_0=1.25, nx=5, ny=5, dx_m=3000)
    with pytest.raises(WorkbenchError, match="overlaps no point"):
        graphs.build_data_nodes(CONFIG.data, {"lam": tiny, "globe": grids.regular_latlon(2.5)}.get)
    whole = graphs.DataConfig(datasets=(graphs.DatasetNodes("lam", trim_edge=40),
                                        graphs.DatasetNodes("globe")))
    with pytest.raises(WorkbenchError, match="removes the whole"):
        graphs.build_data_nodes(whole, GRIDS.get)


def test_built_graph_layout_and_pt_round_trip(tmp_path):
    graph = graphs.build_graph(CONFIG, GRIDS.get)
    assert set(graph.node_types) == {"data", "hidden"}
    assert set(graph.edge_types) == set(graphs.EDGE_SETS.values())
    for key in graphs.EDGE_SETS.values():  # anemoi-graphs' shapes: [E, d]
        store = graph[key]
        n = store.edge_index.shape[1]
        assert store.edge_attr.shape == (n, 3) and store.edge_dirs.shape == (n, 2)
        assert store.edge_length.shape == store.edge_length_km.shape == (n, 1)
        assert store.edge_length.max() == pytest.approx(1.0)
        torch.testing.assert_close(store.edge_attr[:, :1], store.edge_length_km)
    for node in ("data", "hidden"):  # anemoi-graphs' shapes: [N, 1] per node attribute
        store = graph[node]
        assert store.x.shape == (store.num_nodes, 2)
        for name in store.node_attrs():
            assert name == "x" or store[name].shape == (store.num_nodes, 1), name
    assert graph["data"].cutout_mask.dtype == torch.bool
    x = graph["data"].x.numpy()
    assert np.abs(x[:, 0]).max() <= np.pi / 2 and graph["data"].x.dtype == torch.float32
    enc = graph[graphs.EDGE_SETS["encoder"]].edge_index
    assert enc.shape[1] == 4 * graph["hidden"].num_nodes  # knn: every target has k sources
    path = graphs.save_graph(graph, tmp_path / "g.pt")
    back = graphs.load_graph(path)
    assert back.graph_id == graph.graph_id == graphs.graph_id(back)
    for key in graphs.EDGE_SETS.values():
        torch.testing.assert_close(back[key].edge_index, graph[key].edge_index)
    torch.testing.assert_close(back["data"].area_weight, graph["data"].area_weight)
    assert inspection.inspect_graph(back) == inspection.inspect_graph(graph)


def test_anemoi_style_graph_loads_and_inspects(tmp_path):
    """A HeteroData written as anemoi-graphs writes it: x in radians, edge_length/edge_dirs."""
    from torch_geometric.data import HeteroData

    g = HeteroData()
    g["data"].x = torch.tensor(np.deg2rad([[0, 0], [0, 1], [0, 2]]), dtype=torch.float32)
    g["hidden"].x = torch.tensor(np.deg2rad([[0, 0.5]]), dtype=torch.float32)
    g["data", "to", "hidden"].edge_index = torch.tensor([[0, 1], [0, 0]])
    g["data", "to", "hidden"].edge_length = torch.rand(2, 1)
    g["hidden", "to", "data"].edge_index = torch.tensor([[0, 0, 0], [0, 1, 2]])
    torch.save(g, tmp_path / "anemoi.pt")
    report = inspection.inspect_graph(graphs.load_graph(tmp_path / "anemoi.pt"))
    enc = report["edge_sets"]["data->hidden"]
    assert enc["hanging_sources"]["total"] == 1 and enc["hanging_sources"]["global"] == 1
    assert enc["edge_length_km"]["max"] == pytest.approx(0.5 * 111.195, rel=1e-3)


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_load_refuses_arbitrary_pickles_and_non_graphs(tmp_path):
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(WorkbenchError, match="not a graph this workbench can load safely"):
        graphs.load_graph(tmp_path / "evil.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "dict.pt")
    with pytest.raises(WorkbenchError, match="holds a dict, not a HeteroData"):
        graphs.load_graph(tmp_path / "dict.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(WorkbenchError, match="not a graph"):
        graphs.load_graph(tmp_path / "text.pt")


def test_config_errors(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: x\ndata: {datasets: [conus, global]}\nhidden: {kind: icosahedral}\n"
                    "encoder: {kind: knn, k: 0}\ndecoder: {kind: knn, k: 3}\n")
    with pytest.raises(WorkbenchError, match=r"g.yaml: encoder.k: should be greater than or "
                                             r"equal to 1, got 0"):
        graphs.load_config(path)
    path.write_text("name: x\ndata: {datasets: [conus, global]}\nhidden: {kind: icosahedral}\n"
                    "encoder: {kind: knn, k: 3, kk: 1}\ndecoder: {kind: knn, k: 3}\n")
    with pytest.raises(WorkbenchError, match="unknown key 'kk'"):
        graphs.load_config(path)
    with pytest.raises(WorkbenchError, match="not found"):
        graphs.load_config(tmp_path / "nope.yaml")


def test_coarsened_hidden_nodes_and_flat_processor():
    """neural-lam style: hidden nodes on the LAM grid coarsened 3x, knn mesh edges."""
    config = dataclasses.replace(
        CONFIG, data=graphs.DataConfig(datasets=(graphs.DatasetNodes("lam"),)),
        hidden=graphs.HiddenConfig(kind="coarsened", factor=3, k=4),
        processor=graphs.EdgeConfig(kind="multiscale"))
    graph = graphs.build_graph(config, GRIDS.get)
    ny, nx = LAM.shape
    assert graph["hidden"].num_nodes == (ny // 3) * (nx // 3)
    lat, _ = graphs.node_latlon(graph, "hidden")
    assert lat[0] == pytest.approx(LAM.latitude[1 * nx + 1], abs=1e-4)  # centre of block (0, 0)
    proc = graph[graphs.EDGE_SETS["processor"]].edge_index.numpy()
    assert (np.bincount(proc[1]) >= 4).all() and not (proc[0] == proc[1]).any()
    flat = dataclasses.replace(CONFIG, processor=graphs.EdgeConfig(kind="flat"))
    flat_edges = graphs.build_graph(flat, GRIDS.get)[graphs.EDGE_SETS["processor"]].edge_index
    multi_edges = graphs.build_graph(CONFIG, GRIDS.get)[graphs.EDGE_SETS["processor"]].edge_index
    assert 0 < flat_edges.shape[1] < multi_edges.shape[1]


def test_graph_saved_with_1d_attributes_loads_2d(tmp_path):
    """A graph cached by an older workbench (format 1: 1-D node attributes, edge_length_km
    [E]) loads into anemoi's 2-D layout and feeds the model and inspection as a new one."""
    from workbench.model import graph_tensors

    graph = graphs.build_graph(CONFIG, GRIDS.get)
    old = graphs.build_graph(CONFIG, GRIDS.get)
    for store in old.node_stores:
        for name in store.node_attrs():
            if name != "x":
                store[name] = store[name].reshape(-1)
    for store in old.edge_stores:
        store.edge_length_km = store.edge_length_km.reshape(-1)
    graphs.save_graph(old, tmp_path / "old.pt")
    back = graphs.load_graph(tmp_path / "old.pt")
    assert back["data"].area_weight.shape == (back["data"].num_nodes, 1)
    assert back["data"].cutout_mask.dtype == torch.bool
    for key in graphs.EDGE_SETS.values():
        assert back[key].edge_length_km.shape == (back[key].edge_index.shape[1], 1)
    ours, theirs = graph_tensors(graph), graph_tensors(back)
    torch.testing.assert_close(theirs.encoder[1], ours.encoder[1])
    assert inspection.inspect_graph(back) == inspection.inspect_graph(graph)
