"""Export a workbench graph config as an anemoi-graphs recipe (``workbench graph
export-recipe``): data nodes in an NPZ beside the YAML (our order), the hidden mesh as
TriNodes/StretchedTriNodes, edges as KNN/ReversedKNN/CutOff/MultiScale builders, so
``anemoi-graphs create`` builds the same node and edge sets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from . import graphs, grids
from .errors import WorkbenchError
from .recipes import ANEMOI_EARTH_RADIUS_KM

A = "anemoi.graphs"


def export_recipe(config: graphs.GraphConfig | str | Path, out: str | Path) -> Path:
    """Write the anemoi-graphs recipe of a workbench graph config to ``out`` (YAML) and its
    data nodes to ``out`` with suffix ``.npz`` (latitudes, longitudes in our order)."""
    if not isinstance(config, graphs.GraphConfig):
        config = graphs.load_config(config)
    out = Path(out)
    data = graphs.build_data_nodes(config.data)
    npz = out.with_suffix(".npz")
    recipe = recipe_of(config, npz.name, data)
    header = (f"# anemoi-graphs recipe of the workbench graph {config.name!r} (workbench graph "
              f"export-recipe);\n# data nodes: {npz.name} beside it. Build: anemoi-graphs "
              f"create {out.name} GRAPH.pt (from this folder)\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, write in ((npz, lambda f: np.savez(f, latitudes=data.latitude,
                                                 longitudes=data.longitude,
                                                 lam_latitudes=data.latitude[data.cutout_mask],
                                                 lam_longitudes=data.longitude[
                                                     data.cutout_mask])),
                        (out, lambda f: f.write(header.encode() + yaml.safe_dump(
                            recipe, sort_keys=False).encode()))):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                write(f)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def _export_edge(edge: graphs.EdgeConfig, hidden: graphs.HiddenConfig, role: str) -> dict:
    if edge.lam_k is not None:  # the exported NPZ data nodes carry no LAM mask to restrict it
        raise WorkbenchError(f"{role}: lam_k has no anemoi-graphs export here; add a "
                             "ReversedKNNEdges builder with a cutout-mask source mask by hand")
    if edge.kind in ("knn", "reversed_knn"):
        name = "KNNEdges" if edge.kind == "knn" else "ReversedKNNEdges"
        return {"_target_": f"{A}.edges.{name}", "num_nearest_neighbours": int(edge.k)}
    if edge.kind == "cutoff":  # every source in the radius, as ours: no neighbour cap
        out = {"_target_": f"{A}.edges.CutOffEdges", "max_num_neighbours": 1_000_000}
        if edge.cutoff_factor is not None:
            out["cutoff_factor"] = float(edge.cutoff_factor)
        else:  # anemoi's radius is a chord: cutoff_distance_km / 6371
            out["cutoff_distance_km"] = float(ANEMOI_EARTH_RADIUS_KM *
                                              grids.km_to_chord(edge.radius_km))
        return out
    finest = hidden.lam_level if hidden.kind == "stretched" and hidden.lam_level is not None \
        else hidden.level + 2 if hidden.kind == "stretched" else hidden.level
    out = {"_target_": f"{A}.edges.MultiScaleEdges", "x_hops": 1}
    if edge.kind == "flat" or not hidden.multiscale:
        out["scale_resolutions"] = [int(finest)]
    elif edge.kind != "multiscale":
        raise WorkbenchError(f"{role}: {edge.kind} edges have no anemoi-graphs builder here")
    return out


def recipe_of(config: graphs.GraphConfig, npz_file: str, data: graphs.DataNodes) -> dict:
    """The anemoi-graphs recipe of a workbench graph config (data nodes from ``npz_file``)."""
    hidden = config.hidden
    nodes: dict = {"data": {
        "node_builder": {"_target_": f"{A}.nodes.NPZFileNodes", "npz_file": npz_file,
                         "lat_key": "latitudes", "lon_key": "longitudes"},
        # SphericalAreaWeights (Voronoi) refuses the repeated pole points of a lat-lon grid
        "attributes": {"area_weight": {
            "_target_": f"{A}.nodes.attributes.CosineLatWeightedAttribute", "norm": "unit-max"}}}}
    if hidden.kind == "icosahedral":
        builder = {"_target_": f"{A}.nodes.TriNodes", "resolution": int(hidden.level)}
    elif hidden.kind == "stretched":
        if not data.cutout_mask.any():
            raise WorkbenchError(f"{config.name}: a stretched mesh needs a LAM dataset")
        # anemoi builds no mask from an NPZ: the LAM points are a reference node set
        nodes["lam_reference"] = {"node_builder": {
            "_target_": f"{A}.nodes.NPZFileNodes", "npz_file": npz_file,
            "lat_key": "lam_latitudes", "lon_key": "lam_longitudes"}}
        builder = {"_target_": f"{A}.nodes.StretchedTriNodes",
                   "global_resolution": int(hidden.level),
                   "lam_resolution": int(hidden.lam_level if hidden.lam_level is not None
                                         else hidden.level + 2),
                   "reference_node_name": "lam_reference",
                   "margin_radius_km": float(hidden.margin_radius_km)}
    else:
        raise WorkbenchError(f"{config.name}: hidden.kind {hidden.kind} has no anemoi-graphs "
                             "node builder; use icosahedral or stretched")
    nodes["hidden"] = {"node_builder": builder, "attributes": {"area_weight": {
        "_target_": f"{A}.nodes.attributes.SphericalAreaWeights", "fill_value": 0}}}
    attributes = {"edge_length": {"_target_": f"{A}.edges.attributes.EdgeLength",
                                  "norm": "unit-max"},
                  "edge_dirs": {"_target_": f"{A}.edges.attributes.EdgeDirection",
                                "norm": "unit-std"}}
    edges = [{"source_name": src, "target_name": dst,
              "edge_builders": [_export_edge(getattr(config, role), hidden, role)],
              "attributes": attributes}
             for role, (src, _, dst) in graphs.EDGE_SETS.items()]
    recipe = {"nodes": nodes, "edges": edges}
    if "lam_reference" in nodes:  # it served the mesh only: leave it empty
        recipe["post_processors"] = [{"_target_": f"{A}.processors.RemoveUnconnectedNodes",
                                      "nodes_name": "lam_reference"}]
    return recipe
