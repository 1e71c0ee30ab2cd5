"""anemoi-graphs recipes both ways: built here with the workbench's builders and by
``anemoi-graphs create`` in each peer venv (.venv-anemoi: 0.9.0, .venv-anemoi-latest: 0.9.8),
side by side; a workbench graph config exported as a recipe that anemoi-graphs builds into the
same graph. Without a peer venv its side-by-side tests are skipped with the reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from corpus import BYOD_TIMES, write_anemoi
from scipy.spatial import cKDTree

from workbench import cli, graphs, grids, inspection, meshes, recipes
from workbench.errors import WorkbenchError

A = "anemoi.graphs"
# Builds each recipe given on the command line (from its own folder) and prints, as JSON,
# every node set's size and every edge set's size, and the data nodes' coordinates.
PEER = """
import json, logging, os, sys, torch, yaml
logging.disable(logging.WARNING)
from anemoi.graphs.create import GraphCreator
from anemoi.utils.config import DotDict
out = {}
for path in sys.argv[1:]:
    os.chdir(os.path.dirname(path))
    g = GraphCreator(config=DotDict(yaml.safe_load(open(path)))).create()
    torch.save(g, path.replace(".yaml", ".pt"))
    out[path] = {"nodes": {n: int(g[n].num_nodes) for n in g.node_types},
                 "edges": {f"{s}->{d}": int(g[s, r, d].edge_index.shape[1])
                           for s, r, d in g.edge_types},
                 "data_x": g["data"].x.tolist()}
print(json.dumps(out))
"""


def peer(bin_dir: Path, *paths: Path) -> dict:
    """What anemoi-graphs (the peer venv's ``bin_dir``) builds from each recipe."""
    done = subprocess.run([str(bin_dir / "python"), "-c", PEER, *map(str, paths)],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def counts(graph) -> dict:
    return {"nodes": {n: int(graph[n].num_nodes) for n in graph.node_types},
            "edges": {f"{s}->{d}": int(graph[s, r, d].edge_index.shape[1])
                      for s, r, d in graph.edge_types}}


def node(builder: str, **options) -> dict:
    return {"node_builder": {"_target_": f"{A}.nodes.{builder}", **options}}


def edge(src: str, dst: str, *builders: tuple[str, dict], **extra) -> dict:
    return {"source_name": src, "target_name": dst,
            "edge_builders": [{"_target_": f"{A}.edges.{b}", **o} for b, o in builders], **extra}


def random_points(path: Path, n: int, lat=(-90, 90), lon=(-180, 180), seed=0) -> None:
    """Points without ties (a regular grid's equidistant neighbours make KNN ambiguous)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(*np.sin(np.deg2rad(lat)), n)
    np.savez(path, latitudes=np.rad2deg(np.arcsin(z)), longitudes=rng.uniform(*lon, n))


def write_recipes(folder: Path) -> dict[str, dict]:
    random_points(folder / "glob.npz", 600)
    random_points(folder / "lam.npz", 300, lat=(40, 60), lon=(-10, 20), seed=1)
    write_anemoi(folder, "an", BYOD_TIMES[:4], [])
    tri = {  # TriNodes 1-3, KNN, ReversedKNN, CutOff (factor, km), MultiScale (x_hops 1, 2)
        "nodes": {"data": node("TriNodes", resolution=3), "hidden": node("TriNodes", resolution=1),
                  "h2": node("TriNodes", resolution=[1, 2])},
        "edges": [edge("data", "hidden", ("KNNEdges", {"num_nearest_neighbours": 3})),
                  edge("data", "hidden", ("CutOffEdges", {"cutoff_factor": 0.7})),
                  edge("hidden", "data", ("ReversedKNNEdges", {"num_nearest_neighbours": 2}),
                       ("CutOffEdges", {"cutoff_distance_km": 900})),
                  edge("hidden", "hidden", ("MultiScaleEdges", {"x_hops": 1})),
                  edge("data", "data", ("MultiScaleEdges", {"x_hops": 2, "scale_resolutions": 2})),
                  edge("h2", "h2", ("MultiScaleEdges", {"x_hops": 1}))]}
    lam = {  # stretched + limited-area meshes, masks, both post-processors
        "nodes": {
            "data": node("NPZFileNodes", npz_file="glob.npz"),
            "lam": node("NPZFileNodes", npz_file="lam.npz"),
            "hidden": {**node("StretchedTriNodes", global_resolution=2, lam_resolution=4,
                              reference_node_name="lam", margin_radius_km=200),
                       "attributes": {
                           "lam_mask": {"_target_": f"{A}.nodes.attributes.LimitedAreaMask"},
                           "outside": {"_target_": f"{A}.nodes.attributes.BooleanNot",
                                       "masks": "lam_mask"}}},
            "fine": node("LimitedAreaTriNodes", resolution=4, reference_node_name="hidden",
                         mask_attr_name="lam_mask", margin_radius_km=150)},
        "edges": [
            edge("data", "hidden", ("KNNEdges", {"num_nearest_neighbours": 3,
                                                 "target_mask_attr_name": "outside"})),
            edge("lam", "hidden", ("CutOffEdges", {"cutoff_factor": 0.6,
                                                   "target_mask_attr_name": "lam_mask"})),
            edge("hidden", "hidden", ("MultiScaleEdges", {"x_hops": 1}), attributes={
                "edge_length": {"_target_": f"{A}.edges.attributes.EdgeLength"}}),
            edge("fine", "fine", ("MultiScaleEdges", {"x_hops": 2})),
            edge("hidden", "lam", ("KNNEdges", {"num_nearest_neighbours": 4,
                                                "source_mask_attr_name": "lam_mask"})),
            edge("hidden", "data", ("ReversedKNNEdges", {"num_nearest_neighbours": 2,
                                                         "source_mask_attr_name": "outside"}))],
        "post_processors": [
            {"_target_": f"{A}.processors.RemoveUnconnectedNodes", "nodes_name": "data",
             "save_mask_indices_to_attr": "kept_index"},
            {"_target_": f"{A}.processors.RestrictEdgeLength", "source_name": "hidden",
             "target_name": "hidden", "max_length_km": 1500,
             "target_mask_attr_name": "outside"}]}
    dataset = {  # data nodes from an anemoi-datasets store, a reversed-knn encoder
        "nodes": {"data": node("AnemoiDatasetNodes", dataset=str(folder / "an.zarr")),
                  "hidden": node("TriNodes", resolution=2)},
        "edges": [edge("data", "hidden", ("ReversedKNNEdges", {"num_nearest_neighbours": 2})),
                  edge("hidden", "data", ("KNNEdges", {"num_nearest_neighbours": 3}))]}
    return {"tri": tri, "lam": lam, "dataset": dataset}


def test_recipes_build_as_anemoi_graphs_builds_them(tmp_path, anemoi_peer):
    written = {}
    for name, recipe in write_recipes(tmp_path).items():
        written[name] = tmp_path / f"{name}.yaml"
        written[name].write_text(yaml.safe_dump(recipe, sort_keys=False))
    theirs = peer(anemoi_peer, *written.values())
    for name, path in written.items():
        ours = recipes.build_recipe(path)
        assert counts(ours) == {k: theirs[str(path)][k] for k in ("nodes", "edges")}, name
        x = np.asarray(theirs[str(path)]["data_x"])
        if name == "tri":  # anemoi orders mesh nodes by latitude, longitude: the same points
            x = grids.unit_xyz(*np.rad2deg(x).T)
            dist, _ = cKDTree(x).query(grids.unit_xyz(*np.rad2deg(ours["data"].x.numpy()).T))
            assert dist.max() < 1e-6
        else:  # data nodes from a file: the same points in the same order
            np.testing.assert_allclose(ours["data"].x.numpy(), x, atol=1e-6)
    tri = recipes.build_recipe(written["tri"])  # hand counts of the icosahedral meshes
    assert counts(tri)["nodes"] == {"data": 642, "hidden": 42, "h2": 162}
    assert counts(tri)["edges"]["hidden->hidden"] == 2 * (30 + 120)  # levels 0, 1
    assert counts(tri)["edges"]["h2->h2"] == 2 * (120 + 480)  # levels 1, 2 only
    lam = recipes.build_recipe(written["lam"])
    kept = lam["data"].kept_index.numpy()[:, 0]  # RemoveUnconnectedNodes' indices
    assert kept.size == lam["data"].num_nodes < 600 and np.all(np.diff(kept) > 0)
    lat = np.load(tmp_path / "glob.npz")["latitudes"][kept]
    np.testing.assert_allclose(np.rad2deg(lam["data"].x.numpy()[:, 0]), lat, atol=1e-4)


def test_exported_recipes_build_the_same_graphs(tmp_path, anemoi_peer):
    """export-recipe of a stretched (demo) and a cut-off (demo-global) preset: anemoi-graphs
    builds the same node and edge sets, the same data node coordinates."""
    names = ("demo", "demo-global")
    for name in names:
        assert cli.main(["graph", "export-recipe", name, "--out", str(tmp_path / f"{name}.yaml")]
                        ) == 0
    theirs = peer(anemoi_peer, *(tmp_path / f"{name}.yaml" for name in names))
    for name in names:
        ours, got = graphs.build_graph(name), theirs[str(tmp_path / f"{name}.yaml")]
        assert got["nodes"].pop("lam_reference", 0) == 0  # the mesh's reference, emptied
        assert counts(ours) == {"nodes": got["nodes"], "edges": got["edges"]}, name
        np.testing.assert_allclose(ours["data"].x.numpy(), got["data_x"], atol=1e-6)
    # anemoi's file, written after a post-processor (PyG's attribute cache inside), loads here
    saved = graphs.load_graph(tmp_path / "demo.pt")
    assert inspection.inspect_graph(saved)["nodes"] == {"data": 18570, "lam_reference": 0,
                                                        "hidden": 1041}


def test_cli_builds_inspects_and_sweeps_a_recipe(tmp_path, capsys):
    """A level-1 mesh as data and level 0 as hidden: knn k=1 joins each of the 12 hidden
    nodes to the data node at its own place, so 30 data nodes (the midpoints) hang; at k=6
    every vertex also takes its 5 midpoints and none hangs."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({
        "nodes": {"data": node("TriNodes", resolution=1), "hidden": node("TriNodes", resolution=0)},
        "edges": [edge("data", "hidden", ("KNNEdges", {"num_nearest_neighbours": 1})),
                  edge("hidden", "hidden", ("MultiScaleEdges", {"x_hops": 1})),
                  edge("hidden", "data", ("KNNEdges", {"num_nearest_neighbours": 3}))]}))
    assert cli.main(["graph", "build", str(path), "--out", str(tmp_path / "r.pt")]) == 0
    saved = graphs.load_graph(tmp_path / "r.pt")
    assert saved["data"].num_nodes == meshes.level_size(1)
    capsys.readouterr()
    assert cli.main(["graph", "inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    enc = report["edge_sets"]["data->hidden"]
    assert enc["edges"] == 12 and enc["hanging_sources"]["total"] == 30
    assert report["edge_sets"]["hidden->hidden"]["edges"] == 60  # the icosahedron's 30 edges
    assert cli.main(["graph", "sweep", str(path), "--k", "1,6", "--region", "all", "--json"]) == 0
    rows = {r["k"]: r["hanging"]["total"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows == {1: 30, 6: 0}


def test_unsupported_builder_is_one_line(tmp_path):
    recipe = {"nodes": {"data": node("HexNodes", resolution=2)}, "edges": []}
    with pytest.raises(WorkbenchError, match="h3 library.*supported node builders: NPZFileNodes"):
        recipes.build_recipe(recipe)
    recipe = {"nodes": {"data": node("TriNodes", resolution=1)},
              "edges": [edge("data", "data", ("KNNEdges", {"num_nearest_neighbours": 2,
                                                           "weight": 3}))]}
    with pytest.raises(WorkbenchError, match="KNNEdges option 'weight' is not supported"):
        recipes.build_recipe(recipe)


def test_hop_edges_and_limited_area_mesh_by_hand():
    """On the icosahedron (level 0) a vertex has 5 neighbours, 10 vertices within 2 hops (all
    but its antipode) and 11 within 3; a level-1 limited area around one vertex, with a margin
    just past the level-1 spacing (3,526 km), is the vertex and its 5 midpoints, joined by 5
    spokes and 5 rim edges (level 1, both directions) and no level-0 edge."""
    mesh = meshes.multimesh(0)
    assert meshes.hop_edges(mesh, [0], 1).shape[1] == 12 * 5
    assert meshes.hop_edges(mesh, [0], 2).shape[1] == 12 * 10
    assert meshes.hop_edges(mesh, [0], 3).shape[1] == 12 * 11
    vertex = meshes.icosahedron()[0][:1]
    small = meshes.limited_area_mesh(1, vertex, 3600.0)
    assert small.size == 6 and small.num_edges == 2 * 10
    assert set(small.edge_level.tolist()) == {1}
    with pytest.raises(WorkbenchError, match="widen margin_radius_km"):
        meshes.limited_area_mesh(1, grids.unit_xyz(np.array([0.0]), np.array([1.0])) * -1, 1.0)
