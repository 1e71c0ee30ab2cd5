"""A graph .pt written by anemoi-graphs itself loads (weights_only) and inspects here.

anemoi-graphs lives in its own venv (``make peer``: .venv-anemoi), so this test runs its
GraphCreator in a subprocess; without that venv the test is skipped with the reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from workbench import graphs, inspection, meshes

ANEMOI_PYTHON = Path(__file__).resolve().parent.parent / ".venv-anemoi" / "bin" / "python"
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


def test_anemoi_graphs_pt_loads_and_inspects(tmp_path):
    if not ANEMOI_PYTHON.exists():
        pytest.skip("anemoi-graphs is not installed in .venv-anemoi (make peer)")
    path = tmp_path / "anemoi.pt"
    done = subprocess.run([str(ANEMOI_PYTHON), "-c", RECIPE, str(path)], capture_output=True,
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
