"""anemoi-graphs recipes, both ways.

In: :func:`build_recipe` builds a recipe (the YAML users give ``anemoi-graphs create``:
``nodes:`` with ``node_builder``/``attributes``, ``edges:`` with ``source_name``,
``target_name``, ``edge_builders``, and ``post_processors:``) with the workbench's own builders
(:mod:`workbench.meshes`, :mod:`workbench.graphs`) into the node and edge sets anemoi-graphs
makes: the same names and counts. Coordinates pass through float32 radians as anemoi stores
them, so nearest-neighbour ties fall the same way. Out: :func:`export_recipe` writes the
recipe of a workbench graph config (:mod:`workbench.recipe_export`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import graphs, grids, meshes
from .config import load_yaml
from .errors import WorkbenchError

A = "anemoi.graphs"
ANEMOI_EARTH_RADIUS_KM = 6371.0  # anemoi.graphs.EARTH_RADIUS: cutoff_distance_km / it = chord
NODE_BUILDERS = ("NPZFileNodes", "AnemoiDatasetNodes", "ZarrDatasetNodes", "TriNodes",
                 "StretchedTriNodes", "LimitedAreaTriNodes")
EDGE_BUILDERS = ("KNNEdges", "ReversedKNNEdges", "CutOffEdges", "MultiScaleEdges")
POST_PROCESSORS = ("RemoveUnconnectedNodes", "RestrictEdgeLength")
AREA_ATTRIBUTES = ("SphericalAreaWeights", "PlanarAreaWeights", "IsolatitudeAreaWeights",
                   "MaskedPlanarAreaWeights", "CosineLatWeightedAttribute", "UniformWeights")
MASK_ATTRIBUTES = ("LimitedAreaMask", "BooleanNot", "BooleanAndMask", "BooleanOrMask")
NOT_HERE = {"HexNodes": "HexNodes need the h3 library, which the workbench does not install",
            "LimitedAreaHexNodes": "LimitedAreaHexNodes need the h3 library, which the "
                                   "workbench does not install"}


def is_recipe(raw) -> bool:
    """True for an anemoi-graphs recipe: a ``nodes`` mapping and an ``edges`` list."""
    return (isinstance(raw, Mapping) and isinstance(raw.get("nodes"), Mapping)
            and isinstance(raw.get("edges"), list))


def read_recipe(spec: str | Path) -> dict | None:
    """The recipe in a YAML file, or None when ``spec`` is no YAML file holding one."""
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return None
    raw = load_yaml(path)
    return raw if is_recipe(raw) else None


# --------------------------------------------------------------------------- checks


def _class(spec, where: str, kinds: tuple[str, ...], what: str) -> str:
    """The class name of a ``_target_`` spec, one line if it is not supported."""
    target = spec.get("_target_") if isinstance(spec, Mapping) else None
    if not isinstance(target, str):
        raise WorkbenchError(f"{where}: needs a mapping with _target_ (an anemoi.graphs class)")
    name = target.rsplit(".", 1)[-1]
    if name not in kinds:
        reason = NOT_HERE.get(name, f"{name} is not supported")
        raise WorkbenchError(f"{where}: {reason}; supported {what}: {', '.join(kinds)}")
    return name


def _options(spec: Mapping, where: str, name: str, required: tuple[str, ...],
             optional: dict) -> dict:
    """The builder's options with defaults; one line for an unknown or a missing one."""
    given = {k: v for k, v in spec.items() if k != "_target_"}
    unknown = sorted(set(given) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join([*required, *optional]) or "none"
        raise WorkbenchError(f"{where}: {name} option {unknown[0]!r} is not supported "
                             f"(supported: {allowed})")
    missing = [k for k in required if given.get(k) is None]
    if missing:
        raise WorkbenchError(f"{where}: {name} needs {missing[0]}")
    return {**optional, **given}


def _int(value, where: str, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise WorkbenchError(f"{where}: needs an integer >= {least}, got {value!r}")
    return value


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise WorkbenchError(f"{where}: needs a number > 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- nodes


@dataclass
class Nodes:
    """One node set: coordinates as anemoi stores them, its mesh if icosahedral, attributes."""

    name: str
    builder: str
    lat: np.ndarray  # degrees, from float32 radians
    lon: np.ndarray
    mesh: meshes.Mesh | None = None
    resolutions: tuple[int, ...] = ()
    attrs: dict[str, np.ndarray] = field(default_factory=dict)
    lam_reference: tuple[np.ndarray, float] | None = None  # stretched: (xyz, margin km)

    @property
    def xyz(self) -> np.ndarray:
        return grids.unit_xyz(self.lat, self.lon)

    @property
    def size(self) -> int:
        return int(self.lat.size)


def _as_float32(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Degrees through float32 radians, as anemoi-graphs keeps node coordinates."""
    rad = np.deg2rad(np.stack([np.asarray(lat, np.float64).ravel(),
                               np.asarray(lon, np.float64).ravel()], 1)).astype(np.float32)
    return tuple(np.rad2deg(rad.astype(np.float64)).T)


def _find_file(value, base: Path, where: str) -> Path:
    path = Path(os.path.expanduser(str(value)))
    for candidate in (path, base / path):
        if candidate.exists():
            return candidate
    raise WorkbenchError(f"{where}: {value} does not exist (relative paths: from the current "
                         f"folder or {base})")


def _dataset_latlon(dataset, base: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes of an anemoi-datasets store (a path) or a catalog dataset."""
    if isinstance(dataset, Mapping) and set(dataset) == {"dataset"}:
        dataset = dataset["dataset"]
    if not isinstance(dataset, (str, Path)):
        raise WorkbenchError(f"{where}: dataset must be a zarr store path or a catalog name; "
                             "combinations (cutout, join, select ...) are not supported")
    path = Path(os.path.expanduser(str(dataset)))
    if not path.exists() and not (base / path).exists():
        from . import catalog

        if str(dataset) in catalog.load_catalog():
            grid = graphs.dataset_grid(str(dataset))
            return grid.latitude, grid.longitude
    import zarr

    store = zarr.open_group(str(_find_file(dataset, base, where)), mode="r")
    if "latitudes" not in store or "longitudes" not in store:
        raise WorkbenchError(f"{where}: {dataset} is no anemoi-datasets store (no latitudes/"
                             "longitudes arrays)")
    return np.asarray(store["latitudes"][:]), np.asarray(store["longitudes"][:])


def _reference(graph: dict[str, Nodes], ref: str, mask_name, where: str) -> np.ndarray:
    """The xyz of a reference node set, masked by one of its attributes (KNNAreaMaskBuilder)."""
    if ref not in graph:
        raise WorkbenchError(f"{where}: reference_node_name {ref!r} is not a node set defined "
                             f"before it ({', '.join(graph) or 'none'})")
    xyz = graph[ref].xyz
    if mask_name is not None:
        xyz = xyz[_mask(graph[ref], mask_name, where)]
    if not len(xyz):
        raise WorkbenchError(f"{where}: the reference nodes {ref!r} ({mask_name}) are empty")
    return xyz


def _mesh_nodes(name: str, kind: str, mesh: meshes.Mesh, resolutions) -> Nodes:
    lat, lon = _as_float32(mesh.latitude, mesh.longitude)
    return Nodes(name, kind, lat, lon, mesh=mesh, resolutions=tuple(resolutions))


def _resolutions(value, where: str) -> list[int]:
    if isinstance(value, list):
        return [_int(v, where) for v in value]
    return list(range(_int(value, where) + 1))


def build_nodes(name: str, spec: Mapping, graph: dict[str, Nodes], base: Path) -> Nodes:
    """One node set of a recipe (``node_builder`` only; attributes: :func:`add_attributes`)."""
    where = f"nodes.{name}.node_builder"
    kind = _class(spec, where, NODE_BUILDERS, "node builders")
    if kind == "NPZFileNodes":
        opts = _options(spec, where, kind, ("npz_file",),
                        {"lat_key": "latitudes", "lon_key": "longitudes"})
        npz = np.load(_find_file(opts["npz_file"], base, where))
        for key in (opts["lat_key"], opts["lon_key"]):
            if key not in npz:
                raise WorkbenchError(f"{where}: {opts['npz_file']} has no array {key!r} "
                                     f"(it has {', '.join(npz.files)})")
        return Nodes(name, kind, *_as_float32(npz[opts["lat_key"]], npz[opts["lon_key"]]))
    if kind in ("AnemoiDatasetNodes", "ZarrDatasetNodes"):
        opts = _options(spec, where, kind, ("dataset",), {})
        return Nodes(name, kind, *_as_float32(*_dataset_latlon(opts["dataset"], base, where)))
    if kind == "TriNodes":
        opts = _options(spec, where, kind, ("resolution",), {})
        levels = _resolutions(opts["resolution"], f"{where}.resolution")
        return _mesh_nodes(name, kind, meshes.multimesh(max(levels)), levels)
    if kind == "LimitedAreaTriNodes":
        opts = _options(spec, where, kind, ("resolution", "reference_node_name"),
                        {"mask_attr_name": None, "margin_radius_km": 100.0})
        levels = _resolutions(opts["resolution"], f"{where}.resolution")
        ref = _reference(graph, opts["reference_node_name"], opts["mask_attr_name"], where)
        mesh = meshes.limited_area_mesh(max(levels), ref,
                                        _number(opts["margin_radius_km"], where))
        return _mesh_nodes(name, kind, mesh, levels)
    opts = _options(spec, where, kind, ("global_resolution", "lam_resolution",
                                        "reference_node_name"),
                    {"mask_attr_name": None, "margin_radius_km": 100.0})
    ref = _reference(graph, opts["reference_node_name"], opts["mask_attr_name"], where)
    margin = _number(opts["margin_radius_km"], where)
    lam = _int(opts["lam_resolution"], f"{where}.lam_resolution")
    mesh = meshes.stretched_mesh(_int(opts["global_resolution"], where), lam, ref, margin)
    nodes = _mesh_nodes(name, kind, mesh, range(lam + 1))
    nodes.lam_reference = (ref, margin)
    return nodes


def _mask(nodes: Nodes, spec, where: str) -> np.ndarray:
    """A boolean node mask: an attribute's name or a mask attribute spec."""
    if isinstance(spec, str):
        if spec not in nodes.attrs:
            raise WorkbenchError(f"{where}: node set {nodes.name!r} has no attribute {spec!r} "
                                 f"(it has {', '.join(nodes.attrs) or 'none'})")
        return nodes.attrs[spec].reshape(-1).astype(bool)
    return _attribute(nodes, spec, where).reshape(-1).astype(bool)


def _attribute(nodes: Nodes, spec, where: str) -> np.ndarray:
    """One node attribute (a mask or a weight) of a node set."""
    kind = _class(spec, where, (*AREA_ATTRIBUTES, *MASK_ATTRIBUTES), "node attributes")
    if kind in ("BooleanNot", "BooleanAndMask", "BooleanOrMask"):
        masks = spec.get("masks")
        masks = masks if isinstance(masks, list) else [masks]
        values = [_mask(nodes, m, f"{where}.masks") for m in masks]
        if kind == "BooleanNot":
            if len(values) != 1:
                raise WorkbenchError(f"{where}: BooleanNot takes one mask, got {len(values)}")
            return ~values[0]
        return np.logical_and.reduce(values) if kind == "BooleanAndMask" else \
            np.logical_or.reduce(values)
    if kind == "LimitedAreaMask":
        if nodes.lam_reference is None:
            raise WorkbenchError(f"{where}: LimitedAreaMask needs StretchedTriNodes, "
                                 f"{nodes.name!r} are {nodes.builder}")
        return meshes.within_km(nodes.xyz, *nodes.lam_reference)
    if kind == "UniformWeights":
        return np.ones(nodes.size, np.float32)
    if kind == "CosineLatWeightedAttribute":
        return np.cos(np.deg2rad(nodes.lat)).astype(np.float32)
    return grids.area_weights(grids.Grid(nodes.name, nodes.lat, nodes.lon)).astype(np.float32)


def add_attributes(nodes: Nodes, spec) -> None:
    """The recipe's ``attributes`` of a node set, in their order (masks may use earlier ones)."""
    for attr, attr_spec in (spec or {}).items():
        nodes.attrs[str(attr)] = _attribute(nodes, attr_spec, f"nodes.{nodes.name}.attributes."
                                                               f"{attr}")


# --------------------------------------------------------------------------- edges


def _subset(nodes: Nodes, mask_name, where: str) -> np.ndarray:
    """Indices of the nodes an edge builder sees (all, or those of a mask attribute)."""
    if mask_name is None:
        return np.arange(nodes.size)
    return np.flatnonzero(_mask(nodes, mask_name, where))


def build_edges(spec: Mapping, src: Nodes, dst: Nodes, where: str) -> np.ndarray:
    """One edge builder's edge_index (2, E), row 0 the source, as anemoi-graphs builds it."""
    kind = _class(spec, where, EDGE_BUILDERS, "edge builders")
    masks = {"source_mask_attr_name": None, "target_mask_attr_name": None}
    if kind == "MultiScaleEdges":
        opts = _options(spec, where, kind, ("x_hops",), {"scale_resolutions": None})
        if src is not dst or src.mesh is None:
            raise WorkbenchError(f"{where}: MultiScaleEdges join an icosahedral node set "
                                 f"(TriNodes ...) to itself, not {src.name}->{dst.name}")
        levels = opts["scale_resolutions"]
        if isinstance(levels, int):  # anemoi: an integer n means levels 1 .. n
            levels = list(range(1, _int(levels, where) + 1))
        levels = [v for v in (levels or src.resolutions) if v <= max(src.resolutions)]
        mesh = meshes.Mesh(src.xyz, src.mesh.edges, src.mesh.edge_level, src.mesh.node_level)
        return meshes.hop_edges(mesh, levels, _int(opts["x_hops"], f"{where}.x_hops", 1))
    if kind == "CutOffEdges":
        opts = _options(spec, where, kind, (), {"cutoff_factor": None,
                                                "cutoff_distance_km": None,
                                                "max_num_neighbours": 64, **masks})
        if (opts["cutoff_factor"] is None) == (opts["cutoff_distance_km"] is None):
            raise WorkbenchError(f"{where}: CutOffEdges needs one of cutoff_factor or "
                                 "cutoff_distance_km")
    else:
        opts = _options(spec, where, kind, ("num_nearest_neighbours",), masks)
    s = _subset(src, opts["source_mask_attr_name"], where)
    t = _subset(dst, opts["target_mask_attr_name"], where)
    s_xyz, t_xyz = src.xyz[s], dst.xyz[t]
    if kind == "KNNEdges":
        index = graphs.knn_edges(s_xyz, t_xyz, _int(opts["num_nearest_neighbours"], where, 1))
    elif kind == "ReversedKNNEdges":
        index = graphs.reversed_knn_edges(s_xyz, t_xyz,
                                          _int(opts["num_nearest_neighbours"], where, 1))
    else:
        if opts["cutoff_distance_km"] is not None:
            chord = _number(opts["cutoff_distance_km"], where) / ANEMOI_EARTH_RADIUS_KM
        else:
            # anemoi's reference distance: over all the target nodes, masked or not
            chord = _number(opts["cutoff_factor"], where) * graphs.max_nn_chord(dst.xyz)
        index = graphs.cutoff_edges_chord(s_xyz, t_xyz, chord,
                                          _int(opts["max_num_neighbours"], where, 1))
    return np.stack([s[index[0]], t[index[1]]])


def _union(parts: list[np.ndarray], n_dst: int) -> np.ndarray:
    """Edge indices of several builders of one edge set, deduplicated (anemoi's concat)."""
    keys = np.unique(np.concatenate([p[0].astype(np.int64) * n_dst + p[1] for p in parts]))
    return np.stack(np.divmod(keys, n_dst)).astype(np.int64)


# --------------------------------------------------------------------------- post-processors


def _edge_km(nodes: dict[str, Nodes], key, index: np.ndarray) -> np.ndarray:
    src, _, dst = key
    chord = np.linalg.norm(nodes[src].xyz[index[0]] - nodes[dst].xyz[index[1]], axis=1)
    return grids.chord_to_km(chord, ANEMOI_EARTH_RADIUS_KM)


def post_process(spec, nodes: dict[str, Nodes], edges: dict, where: str) -> None:
    """Apply one post-processor to the node sets and edge indices in place."""
    kind = _class(spec, where, POST_PROCESSORS, "post-processors")
    if kind == "RestrictEdgeLength":
        opts = _options(spec, where, kind, ("source_name", "target_name", "max_length_km"),
                        {"source_mask_attr_name": None, "target_mask_attr_name": None})
        key = (opts["source_name"], "to", opts["target_name"])
        if key not in edges:
            raise WorkbenchError(f"{where}: no edge set {key[0]}->{key[2]} in the recipe")
        index = edges[key]
        keep = _edge_km(nodes, key, index) <= _number(opts["max_length_km"], where)
        for side, name in ((0, "source_mask_attr_name"), (1, "target_mask_attr_name")):
            if opts[name] is not None:
                keep |= ~_mask(nodes[key[2 * side]], opts[name], where)[index[side]]
        edges[key] = index[:, keep]
        return
    opts = _options(spec, where, kind, ("nodes_name",),
                    {"ignore": None, "save_mask_indices_to_attr": None})
    names = [opts["nodes_name"]] if isinstance(opts["nodes_name"], str) else opts["nodes_name"]
    for name in names:
        if name not in nodes:
            raise WorkbenchError(f"{where}: no node set {name!r} in the recipe")
        node = nodes[name]
        keep = np.zeros(node.size, bool) if opts["ignore"] is None else \
            _mask(node, opts["ignore"], where).copy()
        for (src, _, dst), index in edges.items():
            keep[index[0]] |= src == name
            keep[index[1]] |= dst == name
        renumber = np.cumsum(keep) - 1
        for key, index in edges.items():
            index = index[:, keep[index[0]]] if key[0] == name else index
            index = index[:, keep[index[1]]] if key[2] == name else index
            edges[key] = np.stack([renumber[index[0]] if key[0] == name else index[0],
                                   renumber[index[1]] if key[2] == name else index[1]])
        node.lat, node.lon = node.lat[keep], node.lon[keep]
        node.attrs = {k: v[keep] for k, v in node.attrs.items()}
        node.mesh = None if node.mesh is None else meshes.Mesh(
            node.mesh.xyz[keep], np.zeros((2, 0), np.int64), np.zeros(0, np.int64),
            node.mesh.node_level[keep])
        if opts["save_mask_indices_to_attr"]:
            node.attrs[str(opts["save_mask_indices_to_attr"])] = np.flatnonzero(keep)


# --------------------------------------------------------------------------- the graph


def build_parts(recipe: Mapping, base: Path = Path(".")) -> tuple[dict[str, Nodes], dict]:
    """The recipe's node sets and edge indices (post-processed), before any HeteroData."""
    if not is_recipe(recipe):
        raise WorkbenchError("not an anemoi-graphs recipe: it needs 'nodes' (a mapping) and "
                             "'edges' (a list)")
    unknown = sorted(set(recipe) - {"nodes", "edges", "post_processors", "description"})
    if unknown:
        raise WorkbenchError(f"recipe key {unknown[0]!r} is not supported (supported: nodes, "
                             "edges, post_processors)")
    nodes: dict[str, Nodes] = {}
    for name, spec in recipe["nodes"].items():
        if not isinstance(spec, Mapping) or "node_builder" not in spec:
            raise WorkbenchError(f"nodes.{name}: needs a node_builder")
        nodes[str(name)] = build_nodes(str(name), spec["node_builder"], nodes, base)
        add_attributes(nodes[str(name)], spec.get("attributes"))
    edges: dict = {}
    for i, spec in enumerate(recipe["edges"]):
        where = f"edges[{i}]"
        src, dst = (spec.get(k) if isinstance(spec, Mapping) else None
                    for k in ("source_name", "target_name"))
        for side in (src, dst):
            if side not in nodes:
                raise WorkbenchError(f"{where}: node set {side!r} is not defined under nodes "
                                     f"({', '.join(nodes)})")
        builders = spec.get("edge_builders")
        if not isinstance(builders, list) or not builders:
            raise WorkbenchError(f"{where}: edge_builders must be a non-empty list")
        key = (src, "to", dst)
        parts = [build_edges(b, nodes[src], nodes[dst], f"{where}.edge_builders[{j}]")
                 for j, b in enumerate(builders)]
        parts = parts + ([edges[key]] if key in edges else [])
        edges[key] = parts[0] if len(parts) == 1 else _union(parts, nodes[dst].size)
    for i, spec in enumerate(recipe.get("post_processors") or []):
        post_process(spec, nodes, edges, f"post_processors[{i}]")
    return nodes, edges


def assemble(nodes: dict[str, Nodes], edges: dict, name: str):
    """A HeteroData in anemoi's layout: the recipe's node attributes, the workbench's edge
    attributes (the recipe's edge ``attributes`` are not computed)."""
    from torch_geometric.data import HeteroData

    graph = HeteroData()
    for node in nodes.values():
        graph[node.name].x = graphs.as_column(np.deg2rad(np.stack([node.lat, node.lon], 1)))
        for attr, value in node.attrs.items():
            graph[node.name][attr] = graphs.as_column(value)
    for key, index in edges.items():
        graphs.set_edges(graph, key, index, nodes[key[0]].xyz, nodes[key[2]].xyz)
    graph.name = name
    graph.graph_id = graphs.graph_id(graph)
    return graph


def build_recipe(spec: str | Path | Mapping, name: str | None = None):
    """Build a recipe (a YAML path or its mapping) into a HeteroData with our builders."""
    if isinstance(spec, Mapping):
        return assemble(*build_parts(spec), name or "recipe")
    path = Path(spec)
    recipe = read_recipe(path)
    if recipe is None:
        raise WorkbenchError(f"{path} is no anemoi-graphs recipe (a YAML with nodes: and edges:)")
    return assemble(*build_parts(recipe, path.parent), name or path.stem)


def build_any(spec: str | Path):
    """A graph from an anemoi-graphs recipe or a workbench graph config (or preset)."""
    if read_recipe(spec) is not None:
        return build_recipe(spec)
    return graphs.build_graph(spec)


# --------------------------------------------------------------------------- sweeps


def _swept_entry(recipe: Mapping, edge_set: str) -> int:
    """Index of the recipe edge entry a sweep varies: ``encoder`` (from the first node set),
    ``decoder`` (to it) or ``SRC->DST``."""
    first = next(iter(recipe["nodes"]))
    for i, spec in enumerate(recipe["edges"]):
        src, dst = spec.get("source_name"), spec.get("target_name")
        if (edge_set == "encoder" and src == first != dst) or \
                (edge_set == "decoder" and dst == first != src) or edge_set == f"{src}->{dst}":
            return i
    raise WorkbenchError(f"the recipe has no {edge_set!r} edge set; use encoder, decoder or "
                         "SRC->DST naming one of its edge sets")


def sweep_recipe(path: str | Path, ks, edge_set: str = "encoder", region: str = "lam",
                 settings=None) -> dict:
    """Hanging counts for every k of a recipe's KNNEdges/ReversedKNNEdges edge set (before
    any post-processor), shaped as :func:`workbench.inspection.sweep`'s result (trim 0)."""
    from . import inspection

    settings = settings or inspection.RegionSettings()
    path = Path(path)
    recipe = dict(read_recipe(path) or {})
    if not recipe:
        raise WorkbenchError(f"{path} is no anemoi-graphs recipe (a YAML with nodes: and edges:)")
    recipe["post_processors"] = []
    nodes, edges = build_parts(recipe, path.parent)
    graph = assemble(nodes, edges, path.stem)
    i = _swept_entry(recipe, edge_set)
    spec = recipe["edges"][i]
    builders = spec["edge_builders"]
    kind = _class(builders[0], f"edges[{i}].edge_builders[0]", EDGE_BUILDERS, "edge builders")
    if len(builders) != 1 or kind not in ("KNNEdges", "ReversedKNNEdges"):
        raise WorkbenchError(f"edges[{i}]: a sweep varies one KNNEdges or ReversedKNNEdges "
                             f"builder, this edge set has {len(builders)} ({kind} first)")
    src, dst = nodes[spec["source_name"]], nodes[spec["target_name"]]
    side, node = ("sources", src) if kind == "KNNEdges" else ("targets", dst)
    labels = inspection.node_regions(graph, node.name, settings)
    wanted = inspection.REGION_GROUPS.get(region, (region,))
    if region not in inspection.REGION_GROUPS and region not in inspection.REGIONS:
        raise WorkbenchError(f"unknown region {region!r}; use one of "
                             f"{', '.join([*inspection.REGION_GROUPS, *inspection.REGIONS])}")
    in_region = np.isin(labels, wanted)
    if not in_region.any():
        raise WorkbenchError(f"region {region!r} holds no {node.name} node; try --region all")
    rows, minimum = [], None
    for k in sorted(ks):
        index = build_edges({**builders[0], "num_nearest_neighbours": int(k)}, src, dst,
                            f"edges[{i}]")
        hanging = np.bincount(index[0 if side == "sources" else 1], minlength=node.size) == 0
        rows.append({"trim": 0, "k": int(k),
                     "hanging": inspection.count_by_region(hanging, labels)})
        if minimum is None and not (hanging & in_region).any():
            minimum = int(k)
    return {"graph": path.stem, "edge_set": f"{src.name}->{dst.name}", "kind": kind,
            "side": side, "region": region, "rows": rows, "min_k_without_hanging": {"0": minimum}}


def load_or_build(spec: str | Path):
    """A graph to inspect: a .pt file loaded, or a recipe/config/preset built."""
    path = Path(spec)
    if path.suffix == ".pt" or (path.exists() and path.suffix not in (".yaml", ".yml")):
        return graphs.load_graph(path)
    return build_any(spec)
