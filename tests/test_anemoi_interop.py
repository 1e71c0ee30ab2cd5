"""A graph .pt written by anemoi-graphs itself loads (weights_only) and inspects here.

anemoi-graphs lives in venvs of its own (``make peer``: .venv-anemoi holds 0.9.0,
.venv-anemoi-latest 0.9.8), so these tests run it in a subprocess, once per peer venv; without
a venv its tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

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


# Run in the newest peer venv: read a workbench graph as anemoi-training does (torch.load of
# the graph file) and hand it to anemoi-models' node attributes and graph providers, the parts
# of a model that read the graph: sizes, sin/cos coordinates, edge attributes and edge dims.
MODELS = """
import json, sys, torch
from anemoi.models.layers.graph import NamedNodesAttributes
from anemoi.models.layers.graph_provider import create_graph_provider
graph = torch.load(sys.argv[1], map_location="cpu", weights_only=False)  # anemoi-training's way
nodes = NamedNodesAttributes({"data": 0, "hidden": 8}, graph)
out = {"num_nodes": nodes.num_nodes, "attr_ndims": nodes.attr_ndims, "edges": {}}
for src, dst in (("data", "hidden"), ("hidden", "hidden"), ("hidden", "data")):
    provider = create_graph_provider(graph[(src, "to", dst)], ["edge_length", "edge_dirs"],
                                     nodes.num_nodes[src], nodes.num_nodes[dst], trainable_size=4)
    attr, index = provider.get_edges(batch_size=2)[:2]
    out["edges"][f"{src}->{dst}"] = {"edge_dim": provider.edge_dim, "attr": list(attr.shape),
                                     "index": list(index.shape)}
print(json.dumps(out))
"""


def test_anemoi_models_reads_a_workbench_graph(tmp_path):
    """anemoi-models 0.19 (the newest peer) builds its node attributes and graph providers
    from a graph the workbench saved: the sizes, 2 x 2 sin/cos coordinates per node and edge
    attributes edge_length [E, 1] + edge_dirs [E, 2] (+ trainable) it takes from the file."""
    from helpers import ANEMOI_PEERS

    venv = ANEMOI_PEERS["anemoi-graphs-0.9.8"]
    if not (venv / ".installed").exists():
        pytest.skip(f"anemoi-models 0.19 is not installed in {venv.name} (make peer)")
    graph = graphs.build_graph("demo")
    path = graphs.save_graph(graph, tmp_path / "demo.pt")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", MODELS, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    sizes = {n: graph[n].num_nodes for n in ("data", "hidden")}
    assert got["num_nodes"] == sizes
    assert got["attr_ndims"] == {"data": 4, "hidden": 4 + 8}  # sin, cos of (lat, lon) + 8
    for name, seen in got["edges"].items():
        src, dst = name.split("->")
        edges = graph[src, "to", dst].edge_index.shape[1]
        assert seen["edge_dim"] == 1 + 2 + 4
        assert seen["attr"] == [2 * edges, 1 + 2 + 4] and seen["index"] == [2, 2 * edges]
