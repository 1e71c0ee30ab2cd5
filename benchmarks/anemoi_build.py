"""One anemoi-graphs build in a fresh process: the anemoi side of benchmarks/graph_build.py.

Runs in .venv-anemoi (anemoi-graphs[tri], its own torch); never imports workbench.

    .venv-anemoi/bin/python benchmarks/anemoi_build.py SPEC.json RESULT.json
    .venv-anemoi/bin/python benchmarks/anemoi_build.py SPEC.json --recipe   # print the YAML

SPEC.json names the data-node NPZ (``latitudes``, ``longitudes`` in degrees and
``cutout_mask``, exported by graph_build.py from workbench's combined data nodes) and the
hidden mesh and edges in workbench's terms; :func:`recipe` turns them into an anemoi-graphs
recipe, which ``GraphCreator(config=...).create()`` builds. RESULT.json gets the build time
(imports excluded), node and edge counts and the recipe.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from anemoi.graphs.nodes.attributes.base_attributes import BooleanBaseNodeAttribute

A = "anemoi.graphs"
ROLES = {"encoder": ("data", "hidden"), "processor": ("hidden", "hidden"),
         "decoder": ("hidden", "data")}
# Cut-off edges join every source within the radius, as workbench's: anemoi's default cap of
# 64 neighbours per target would drop edges near the poles of a regular lat-lon grid.
CUTOFF_MAX_NEIGHBOURS = 100_000


class NPZMask(BooleanBaseNodeAttribute):
    """A boolean node attribute read from an NPZ (anemoi's CutOutMask needs anemoi-datasets)."""

    def __init__(self, npz_file: str, key: str = "cutout_mask") -> None:
        super().__init__()
        self.npz_file = npz_file
        self.key = key

    def get_raw_values(self, nodes, **kwargs) -> torch.Tensor:
        return torch.from_numpy(np.load(self.npz_file)[self.key].astype(bool))


def _hidden_builder(hidden: dict) -> dict:
    if hidden["kind"] == "stretched":
        return {"_target_": f"{A}.nodes.StretchedTriNodes",
                "global_resolution": int(hidden["level"]),
                "lam_resolution": int(hidden["lam_level"]),
                "reference_node_name": "data", "mask_attr_name": "cutout_mask",
                "margin_radius_km": float(hidden["margin_radius_km"])}
    if hidden["kind"] == "icosahedral":
        return {"_target_": f"{A}.nodes.TriNodes", "resolution": int(hidden["level"])}
    raise SystemExit(f"no anemoi-graphs equivalent for hidden kind {hidden['kind']!r}")


def _edge_builder(edge: dict, hidden: dict) -> dict:
    kind = edge["kind"]
    if kind in ("knn", "reversed_knn"):
        name = "KNNEdges" if kind == "knn" else "ReversedKNNEdges"
        return {"_target_": f"{A}.edges.{name}", "num_nearest_neighbours": int(edge["k"])}
    if kind == "cutoff":
        out = {"_target_": f"{A}.edges.CutOffEdges", "max_num_neighbours": CUTOFF_MAX_NEIGHBOURS}
        if edge.get("cutoff_factor") is not None:
            out["cutoff_factor"] = float(edge["cutoff_factor"])
        else:
            out["cutoff_distance_km"] = float(edge["radius_km"])
        return out
    if kind in ("multiscale", "flat"):
        out = {"_target_": f"{A}.edges.MultiScaleEdges", "x_hops": 1}
        finest = hidden.get("lam_level") if hidden["kind"] == "stretched" else hidden["level"]
        if kind == "flat" or not hidden.get("multiscale", True):
            out["scale_resolutions"] = [int(finest)]
        return out
    raise SystemExit(f"no anemoi-graphs equivalent for edge kind {kind!r}")


def _edge_attributes() -> dict:
    return {
        "edge_length": {"_target_": f"{A}.edges.attributes.EdgeLength", "norm": "unit-max"},
        "edge_dirs": {"_target_": f"{A}.edges.attributes.EdgeDirection", "norm": "unit-std"},
    }


def recipe(spec: dict) -> dict:
    """The anemoi-graphs recipe (GraphCreator config) equivalent to a workbench spec."""
    data_attributes = {
        # SphericalAreaWeights (Voronoi) refuses the duplicated pole points of a regular
        # lat-lon grid, so the data nodes get anemoi's cheap latitude weighting.
        "area_weight": {"_target_": f"{A}.nodes.attributes.CosineLatWeightedAttribute",
                        "norm": "unit-max"},
    }
    if spec["hidden"]["kind"] == "stretched":  # the LAM points the mesh is refined around
        data_attributes["cutout_mask"] = {"_target_": "anemoi_build.NPZMask",
                                          "npz_file": spec["npz"]}
    return {
        "nodes": {
            "data": {
                "node_builder": {"_target_": f"{A}.nodes.NPZFileNodes", "npz_file": spec["npz"],
                                 "lat_key": "latitudes", "lon_key": "longitudes"},
                "attributes": data_attributes,
            },
            "hidden": {
                "node_builder": _hidden_builder(spec["hidden"]),
                "attributes": {"area_weight": {
                    "_target_": f"{A}.nodes.attributes.SphericalAreaWeights",
                    "norm": "unit-max", "fill_value": 0}},
            },
        },
        "edges": [
            {"source_name": src, "target_name": dst,
             "edge_builders": [_edge_builder(spec[role], spec["hidden"])],
             "attributes": _edge_attributes()}
            for role, (src, dst) in ROLES.items()
        ],
    }


def counts(graph) -> dict:
    return {
        "data_nodes": int(graph["data"].num_nodes),
        "hidden_nodes": int(graph["hidden"].num_nodes),
        **{f"{role}_edges": int(graph[(src, "to", dst)].edge_index.shape[1])
           for role, (src, dst) in ROLES.items()},
    }


def main(argv: list[str]) -> None:
    spec = json.loads(open(argv[0]).read())
    config = recipe(spec)
    if argv[1:] == ["--recipe"]:
        import yaml

        print(yaml.safe_dump(config, sort_keys=False))
        return
    import logging

    # Imports are not timed: load now what the builders would import on first use.
    import anemoi.graphs.edges.attributes  # noqa: F401
    import anemoi.graphs.nodes.attributes  # noqa: F401
    import trimesh  # noqa: F401
    from anemoi.graphs.create import GraphCreator
    from anemoi.graphs.edges import CutOffEdges  # noqa: F401
    from anemoi.graphs.nodes import NPZFileNodes  # noqa: F401
    from anemoi.utils.config import DotDict

    logging.disable(logging.WARNING)  # the torch-cluster hint, once per edge set
    start = time.perf_counter()
    graph = GraphCreator(config=DotDict(config)).create()
    build_s = time.perf_counter() - start
    result = {"build_s": build_s, **counts(graph), "recipe": config}
    with open(argv[1], "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
