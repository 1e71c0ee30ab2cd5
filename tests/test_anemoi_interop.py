"""A graph .pt written by anemoi-graphs itself loads (weights_only) and inspects here.

anemoi-graphs lives in venvs of its own (``make peer``: .venv-anemoi holds 0.9.0,
.venv-anemoi-latest 0.9.8), so these tests run it in a subprocess, once per peer venv; without
a venv its tests are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np

from workbench import graphs, inspection, meshes

RECIPE = """
import sys, torch
from anemoi.graphs.create import GraphCreator
from anemoi.utils.config import DotDict
A = "anemoi.graphs"
config = {
    "nodes": {
        "data": {"node_builder": {"_target_": f"{A}.nodes.TriNodes", "resolution": 3}},
        "hidden": {"node_builder": {"_target_": f"{A}.nodes.TriNodes", "resolution": 1}},
    },
    "edges": [
        {"source_name": "data", "target_name": "hidden",
         "edge_builders": [{"_target_": f"{A}.edges.KNNEdges", "num_nearest_neighbours": 2}],
         "attributes": {"edge_length": {"_target_": f"{A}.edges.attributes.EdgeLength"}}},
        {"source_name": "hidden", "target_name": "hidden",
         "edge_builders": [{"_target_": f"{A}.edges.MultiScaleEdges", "x_hops": 1}]},
        {"source_name": "hidden", "target_name": "data",
         "edge_builders": [{"_target_": f"{A}.edges.KNNEdges", "num_nearest_neighbours": 3}]},
    ],
}
graph = GraphCreator(config=DotDict(config)).create()
torch.save(graph, sys.argv[1])
"""


def test_anemoi_graphs_pt_loads_and_inspects(tmp_path, anemoi_peer):
    path = tmp_path / "anemoi.pt"
    done = subprocess.run([str(anemoi_peer / "python"), "-c", RECIPE, str(path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    graph = graphs.load_graph(path)
    assert graph["data"].num_nodes == meshes.level_size(3) == 642
    assert graph["hidden"].num_nodes == meshes.level_size(1) == 42
    report = inspection.inspect_graph(graph)
    enc = report["edge_sets"]["data->hidden"]
    assert enc["edges"] == 2 * 42  # knn: every hidden node takes its 2 nearest data nodes
    # independent count of hanging data nodes from the loaded edge index
    used = np.unique(graph["data", "to", "hidden"].edge_index[0].numpy())
    assert enc["hanging_sources"]["total"] == 642 - used.size > 0
    assert report["edge_sets"]["hidden->hidden"]["edges"] == 2 * (30 + 120)  # levels 0 and 1
    # the same mesh from workbench: same points, maybe in another order
    ours = meshes.multimesh(1)
    lat, lon = graphs.node_latlon(graph, "hidden")
    theirs = np.round(np.stack([lat, lon], 1), 3)
    mine = np.round(np.stack([ours.latitude, ours.longitude], 1), 3)
    mine[np.isclose(np.abs(mine[:, 0]), 90), 1] = 0  # longitude is arbitrary at the poles
    theirs[np.isclose(np.abs(theirs[:, 0]), 90), 1] = 0
    assert {tuple(p) for p in theirs} == {tuple(p) for p in mine}


def _table_rows(text: str, first: str) -> list[list[str]]:
    """The rows of a rich table printed by anemoi-graphs whose first cell is ``first``."""
    rows = [[cell.strip() for cell in line.split("│")] for line in text.splitlines() if "│" in line]
    return [row for row in rows if row[0] == first]


def test_anemoi_graphs_inspect_reads_a_workbench_graph(tmp_path, anemoi_peer):
    """`anemoi-graphs inspect` (the CLI in the peer venv) runs on the demo graph and reports
    our node and edge counts and hanging (isolated) nodes; every attribute is 2-D."""
    graph = graphs.build_graph("demo")
    path = graphs.save_graph(graph, tmp_path / "demo.pt")
    done = subprocess.run([str(anemoi_peer / "anemoi-graphs"), "inspect", str(path),
                           str(tmp_path / "inspect"), "--no-show_attribute_distributions"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "400"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    out = done.stdout + done.stderr
    for node in ("data", "hidden"):
        (row,) = _table_rows(out, node)[:1]
        assert int(row[1]) == graph[node].num_nodes
    report = inspection.inspect_graph(graph)
    for src, dst in (("data", "hidden"), ("hidden", "hidden"), ("hidden", "data")):
        (row,) = [r for r in _table_rows(out, src) if len(r) > 4 and r[1] == dst]
        edges = report["edge_sets"][f"{src}->{dst}"]
        assert int(row[2]) == edges["edges"] == graph[src, "to", dst].edge_index.shape[1]
        assert int(row[3]) == edges["hanging_sources"]["total"]
        assert int(row[4]) == edges["hanging_targets"]["total"]
        assert "edge_length(1D)" in row[-1] and "edge_dirs(2D)" in row[-1]
    assert (tmp_path / "inspect" / "graph.html").is_file()
