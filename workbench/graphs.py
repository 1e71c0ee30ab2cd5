"""Encoder-processor-decoder graphs: data nodes + hidden mesh + edges -> HeteroData.

The layout is anemoi-graphs' so graphs move both ways: node sets ``data`` and ``hidden``
with ``x`` = (lat, lon) in radians; edge sets ``("data","to","hidden")`` (encoder),
``("hidden","to","hidden")`` (processor), ``("hidden","to","data")`` (decoder) whose
``edge_index[0]`` is the source. Attributes are 2-D as anemoi-graphs stores them (a node
attribute ``[N, 1]``, an edge attribute ``[E, d]``), so ``anemoi-graphs inspect`` and
anemoi-training read a saved graph: nodes ``area_weight`` (km^2), ``cutout_mask`` (bool),
``boundary_mask``, ``dataset_index``, ``grid_index``, ``lam_edge_cells``; edges
``edge_length`` (``[E, 1]``, unit-max), ``edge_dirs`` (``[E, 2]``, unit direction to the source
in the target's east/north frame), ``edge_length_km`` (``[E, 1]``) and ``edge_attr`` =
[length_km, east, north] (physical, so weights serve every resolution). Graphs saved with
1-D attributes (format 1) load into the same 2-D layout.

Edge builders follow anemoi-graphs: ``knn`` gives every target its k nearest sources
(sources can hang), ``reversed_knn`` gives every source its k nearest targets (targets can
hang), ``cutoff`` joins every source within a radius of each target (a chord radius: a
distance in km, or anemoi's ``cutoff_factor`` times the largest nearest-neighbour chord of the
targets).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from scipy.spatial import cKDTree

from . import grids, meshes
from .config import Flag, NonNegative, Positive, check_keys, load_yaml, parse, resolve_config, typed
from .errors import WorkbenchError

EDGE_SETS = {
    "encoder": ("data", "to", "hidden"),
    "processor": ("hidden", "to", "hidden"),
    "decoder": ("hidden", "to", "data"),
}
EDGE_KINDS = ("knn", "reversed_knn", "cutoff", "multiscale", "flat")
#: layout of saved graphs: 1 = 1-D node attributes; 2 = anemoi-graphs' 2-D attributes and
#: cutoff_factor as a factor of the chord (part of the graph cache key)
GRAPH_FORMAT = 2
HIDDEN_KINDS = ("icosahedral", "stretched", "coarsened")


# --------------------------------------------------------------------------- config


@typed
@dataclass(frozen=True)
class DatasetNodes:
    name: str  # catalog name
    trim_edge: NonNegative | tuple[NonNegative, NonNegative, NonNegative, NonNegative] = 0
    # LAM cells removed per side (S, N, W, E)


@typed
@dataclass(frozen=True)
class DataConfig:
    datasets: tuple[DatasetNodes, ...]  # limited areas first, the global dataset last
    min_distance_km: Annotated[float, Field(ge=0)] = 0.0  # drop global points this near a LAM
    boundary_band_km: Annotated[float, Field(ge=0)] = 500.0  # kept global points this near a
    # LAM: boundary_mask


@typed
@dataclass(frozen=True)
class HiddenConfig:
    kind: str = "icosahedral"
    level: Annotated[int, Field(ge=0, le=9)] = 4  # icosahedral level (global level if stretched)
    lam_level: Annotated[int, Field(ge=0, le=11)] | None = None  # stretched: finest in the LAM
    margin_radius_km: Annotated[float, Field(ge=0)] = 100.0  # stretched: fine level this far out
    factor: Positive = 2  # coarsened: block size over the first dataset's grid
    k: Positive = 6  # coarsened: mesh edges to the k nearest hidden nodes
    multiscale: Flag = True  # icosahedral/stretched processor edges from every level


@typed
@dataclass(frozen=True)
class EdgeConfig:
    kind: str
    k: Positive | None = None
    radius_km: Annotated[float, Field(gt=0)] | None = None
    cutoff_factor: Annotated[float, Field(gt=0)] | None = None
    lam_k: Positive | None = None  # encoder only: also join every LAM data node to its lam_k
    # nearest hidden nodes (anemoi: a ReversedKNNEdges builder with a cutout-mask source mask)


@typed
@dataclass(frozen=True)
class GraphConfig:
    name: str
    data: DataConfig
    hidden: HiddenConfig
    encoder: EdgeConfig
    decoder: EdgeConfig
    processor: EdgeConfig = EdgeConfig(kind="multiscale")
    description: str = ""
    file: Path | None = field(default=None, compare=False)


def load_config(path: str | Path) -> GraphConfig:
    """Read a graph YAML (configs/graphs/*.yaml) into a validated GraphConfig."""
    path = resolve_config(path, "graphs")
    raw = load_yaml(path)
    where = str(path)
    check_keys(raw, GraphConfig, where, required=("name", "data", "hidden", "encoder", "decoder"))
    data = raw["data"]
    if isinstance(data, Mapping) and isinstance(data.get("datasets"), list):
        data = {**data, "datasets": [{"name": d} if isinstance(d, str) else d
                                     for d in data["datasets"]]}
    config = parse(GraphConfig, {**raw, "data": data, "processor": raw.get(
        "processor", {"kind": "multiscale"})}, where)
    if not config.data.datasets:
        raise WorkbenchError(f"{where}: data.datasets lists no dataset")
    config = dataclasses.replace(config, file=path)
    _validate(config)
    return config


def _validate(config: GraphConfig) -> None:
    if config.hidden.kind not in HIDDEN_KINDS:
        raise WorkbenchError(f"hidden.kind {config.hidden.kind!r} is not one of {HIDDEN_KINDS}")
    for role in ("encoder", "decoder", "processor"):
        edge = getattr(config, role)
        if edge.kind not in EDGE_KINDS:
            raise WorkbenchError(f"{role}.kind {edge.kind!r} is not one of {EDGE_KINDS}")
        if edge.kind in ("knn", "reversed_knn") and (edge.k is None or edge.k < 1):
            raise WorkbenchError(f"{role}: {edge.kind} needs k >= 1, got {edge.k}")
        if edge.kind == "cutoff" and (edge.radius_km is None) == (edge.cutoff_factor is None):
            raise WorkbenchError(f"{role}: cutoff needs exactly one of radius_km or cutoff_factor")
        if edge.lam_k is not None and role != "encoder":
            raise WorkbenchError(f"{role}: lam_k applies to the encoder only (LAM data nodes "
                                 "joined to their lam_k nearest hidden nodes)")


# --------------------------------------------------------------------------- data nodes


@dataclass(frozen=True)
class DataNodes:
    """Data nodes combined by cutout: LAM points first, then the kept global points."""

    latitude: np.ndarray
    longitude: np.ndarray
    area_weight: np.ndarray  # km^2
    cutout_mask: np.ndarray  # True for LAM points
    boundary_mask: np.ndarray  # True for kept global points within the band around a LAM
    dataset_index: np.ndarray  # which dataset of the config each node comes from
    grid_index: np.ndarray  # flat index of the node in its dataset's grid
    lam_edge_cells: np.ndarray  # LAM points: cells to the LAM edge; -1 elsewhere
    lam_spacing_km: float | None  # finest LAM grid spacing (None without a LAM)

    @property
    def size(self) -> int:
        return int(self.latitude.size)

    @property
    def xyz(self) -> np.ndarray:
        return grids.unit_xyz(self.latitude, self.longitude)


def dataset_grid(name: str) -> grids.Grid:
    """The grid of a catalog dataset, without generating fields when it is generated."""
    from . import catalog

    return catalog.entry_grid(catalog.get_entry(name))


def build_data_nodes(config: DataConfig, grid_of=dataset_grid) -> DataNodes:
    """Combine datasets by cutout (anemoi-datasets ``cutout``): LAMs first, global last.

    The combination is :func:`workbench.grids.cutout`, shared with the catalog's ``cutout``
    source, so a graph's data nodes are that dataset's points in the same order."""
    parts = [(spec.name, grid_of(spec.name), spec.trim_edge) for spec in config.datasets]
    combined = grids.cutout(parts, config.min_distance_km, config.boundary_band_km)
    return DataNodes(
        latitude=combined.grid.latitude, longitude=combined.grid.longitude,
        area_weight=combined.area_weight, cutout_mask=combined.cutout_mask,
        boundary_mask=combined.boundary_mask, dataset_index=combined.dataset_index,
        grid_index=combined.grid_index, lam_edge_cells=combined.lam_edge_cells,
        lam_spacing_km=combined.lam_spacing_km,
    )



# --------------------------------------------------------------------------- hidden nodes


def build_hidden(config: HiddenConfig, data: DataNodes, data_grid_of=dataset_grid,
                 first_dataset: str | None = None) -> meshes.Mesh:
    """The hidden mesh: icosahedral multi-mesh, stretched over the LAMs, or a coarsened grid."""
    if config.kind == "icosahedral":
        if config.multiscale:
            return meshes.multimesh(config.level)
        return meshes.trimesh_edges(config.level)
    if config.kind == "stretched":
        if not data.cutout_mask.any():
            raise WorkbenchError("a stretched hidden mesh needs a LAM dataset in data.datasets")
        lam_level = config.lam_level if config.lam_level is not None else config.level + 2
        return meshes.stretched_mesh(config.level, lam_level, data.xyz[data.cutout_mask],
                                     config.margin_radius_km)
    grid = data_grid_of(first_dataset) if first_dataset else None
    if grid is None or grid.shape is None:
        raise WorkbenchError("hidden.kind coarsened needs a structured first dataset")
    lat, lon = meshes.coarsened_grid_nodes(grid.latitude, grid.longitude, grid.shape, config.factor)
    xyz = grids.unit_xyz(lat, lon)
    edges = meshes.mesh_edges_knn(xyz, config.k)
    return meshes.Mesh(xyz=xyz, edges=edges, edge_level=np.zeros(edges.shape[1], int),
                       node_level=np.zeros(len(lat), int))


# --------------------------------------------------------------------------- edges


def _check_k(k: int, n_available: int, what: str) -> None:
    if k < 1 or k > n_available:
        raise WorkbenchError(f"{what}: k={k} must be between 1 and the {n_available} candidate nodes")


def knn_edges(src_xyz: np.ndarray, dst_xyz: np.ndarray, k: int) -> np.ndarray:
    """Every target's k nearest sources: edge_index (2, n_dst * k), row 0 the source."""
    _check_k(k, len(src_xyz), "knn")
    _, idx = cKDTree(src_xyz).query(dst_xyz, k=k)
    idx = idx.reshape(len(dst_xyz), k)
    return np.stack([idx.ravel(), np.repeat(np.arange(len(dst_xyz)), k)])


def reversed_knn_edges(src_xyz: np.ndarray, dst_xyz: np.ndarray, k: int) -> np.ndarray:
    """Every source's k nearest targets: edge_index (2, n_src * k), row 0 the source."""
    _check_k(k, len(dst_xyz), "reversed_knn")
    _, idx = cKDTree(dst_xyz).query(src_xyz, k=k)
    idx = idx.reshape(len(src_xyz), k)
    return np.stack([np.repeat(np.arange(len(src_xyz)), k), idx.ravel()])


def max_nn_chord(xyz: np.ndarray) -> float:
    """The largest chord from a node to its nearest neighbour (anemoi's reference distance)."""
    dist, _ = cKDTree(xyz).query(xyz, k=2)
    return float(dist[:, 1].max())


def max_nn_spacing_km(xyz: np.ndarray) -> float:
    """The largest great-circle distance (km) from a node to its nearest neighbour."""
    return float(grids.chord_to_km(max_nn_chord(xyz)))


def cutoff_edges_chord(src_xyz: np.ndarray, dst_xyz: np.ndarray, chord: float,
                       max_neighbours: int | None = None) -> np.ndarray:
    """Every source within ``chord`` (unit sphere) of each target, row 0 the source; with
    ``max_neighbours``, only a target's nearest that many (anemoi's max_num_neighbours)."""
    if not chord > 0:
        raise WorkbenchError(f"cutoff radius must be > 0, got a chord of {chord}")
    pairs = cKDTree(dst_xyz).query_ball_tree(cKDTree(src_xyz), r=float(chord))
    counts = np.fromiter((len(p) for p in pairs), int, len(pairs))
    src = np.fromiter((s for p in pairs for s in p), int, counts.sum())
    dst = np.repeat(np.arange(len(dst_xyz)), counts)
    if max_neighbours is not None and counts.size and counts.max() > max_neighbours:
        dist = np.linalg.norm(src_xyz[src] - dst_xyz[dst], axis=1)
        order = np.lexsort((dist, dst))
        rank = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = np.zeros(order.size, bool)
        keep[order[rank < max_neighbours]] = True
        src, dst = src[keep], dst[keep]
    return np.stack([src, dst])


def cutoff_edges(src_xyz: np.ndarray, dst_xyz: np.ndarray, radius_km: float) -> np.ndarray:
    """Every source within ``radius_km`` of each target (great-circle), row 0 the source."""
    if radius_km <= 0:
        raise WorkbenchError(f"cutoff radius must be > 0 km, got {radius_km}")
    return cutoff_edges_chord(src_xyz, dst_xyz, float(grids.km_to_chord(radius_km)))


def cutoff_chord(edge: EdgeConfig, dst_xyz: np.ndarray) -> float:
    """The cutoff radius of an edge config as a chord: from km, or as anemoi-graphs does,
    ``cutoff_factor`` times the targets' largest nearest-neighbour chord."""
    if edge.radius_km is not None:
        return float(grids.km_to_chord(edge.radius_km))
    return float(edge.cutoff_factor) * max_nn_chord(dst_xyz)


def cutoff_radius_km(edge: EdgeConfig, dst_xyz: np.ndarray) -> float:
    """The cutoff radius of an edge config in km (great circle)."""
    return float(grids.chord_to_km(cutoff_chord(edge, dst_xyz)))


def build_edges(edge: EdgeConfig, src_xyz: np.ndarray, dst_xyz: np.ndarray,
                mesh: meshes.Mesh | None = None) -> np.ndarray:
    """Dispatch on the edge kind (multiscale/flat take the mesh's own edges)."""
    if edge.kind == "knn":
        return knn_edges(src_xyz, dst_xyz, edge.k)
    if edge.kind == "reversed_knn":
        return reversed_knn_edges(src_xyz, dst_xyz, edge.k)
    if edge.kind == "cutoff":
        return cutoff_edges_chord(src_xyz, dst_xyz, cutoff_chord(edge, dst_xyz))
    if mesh is None:
        raise WorkbenchError(f"{edge.kind} edges exist only on the hidden mesh (processor)")
    if edge.kind == "flat":
        finest = mesh.edge_level == mesh.edge_level.max()
        return mesh.edges[:, finest]
    return mesh.edges


def with_lam_edges(index: np.ndarray, data: DataNodes, hid_xyz: np.ndarray,
                   lam_k: int) -> np.ndarray:
    """Encoder edges plus every LAM data node's ``lam_k`` nearest hidden nodes (reversed kNN
    restricted to the LAM sources), duplicates dropped, sorted by (source, target)."""
    if not data.cutout_mask.any():
        raise WorkbenchError("encoder.lam_k needs a LAM dataset in data.datasets")
    lam = np.flatnonzero(data.cutout_mask)
    extra = reversed_knn_edges(data.xyz[lam], hid_xyz, lam_k)
    n_hid = len(hid_xyz)
    keys = np.unique(np.concatenate([index[0].astype(np.int64) * n_hid + index[1],
                                     lam[extra[0]].astype(np.int64) * n_hid + extra[1]]))
    return np.stack(np.divmod(keys, n_hid))


def encoder_edges(edge: EdgeConfig, data: DataNodes, hid_xyz: np.ndarray) -> np.ndarray:
    """The encoder's edge_index (data -> hidden), with the LAM's extra edges of ``lam_k``."""
    index = build_edges(edge, data.xyz, hid_xyz)
    if edge.lam_k is not None:
        index = with_lam_edges(index, data, hid_xyz, edge.lam_k)
    return index


def edge_geometry(src_xyz: np.ndarray, dst_xyz: np.ndarray, edge_index: np.ndarray):
    """Great-circle length (km) and unit direction of each edge in the target's east/north frame."""
    s, d = src_xyz[edge_index[0]], dst_xyz[edge_index[1]]
    chord = np.linalg.norm(s - d, axis=1)
    length = grids.chord_to_km(chord)
    up = d
    east = np.cross([0.0, 0.0, 1.0], up)
    norm = np.linalg.norm(east, axis=1, keepdims=True)
    east = np.where(norm > 1e-12, east / np.maximum(norm, 1e-12), [1.0, 0.0, 0.0])
    north = np.cross(up, east)
    delta = s - d
    direction = np.stack([(delta * east).sum(1), (delta * north).sum(1)], axis=1)
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
    return length, direction


# --------------------------------------------------------------------------- assembly


def _node_x(lat: np.ndarray, lon: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.deg2rad(np.stack([lat, lon], axis=1)).astype(np.float32))


def as_column(value: np.ndarray) -> torch.Tensor:
    """A node or edge attribute as anemoi stores it: 2-D, ``[N, 1]`` for one value a node
    (floats as float32)."""
    value = np.ascontiguousarray(value)
    dtype = np.float32 if value.dtype.kind == "f" else value.dtype
    return torch.from_numpy(value.astype(dtype).reshape(len(value), -1))


def set_edges(graph, key, edge_index: np.ndarray, src_xyz, dst_xyz) -> None:
    """An edge set with the workbench's edge attributes (see the module docstring)."""
    length, direction = edge_geometry(src_xyz, dst_xyz, edge_index)
    store = graph[key]
    store.edge_index = torch.from_numpy(edge_index.astype(np.int64))
    store.edge_length_km = as_column(length)
    store.edge_length = as_column(length / max(length.max(initial=0.0), 1e-12))
    store.edge_dirs = as_column(direction)
    store.edge_attr = as_column(np.concatenate([length[:, None], direction], axis=1))


def nodes_graph(data: DataNodes, mesh: meshes.Mesh):
    """A HeteroData with the data and hidden node sets and their attributes, no edges yet."""
    from torch_geometric.data import HeteroData

    graph = HeteroData()
    graph["data"].x = _node_x(data.latitude, data.longitude)
    for name in ("area_weight", "cutout_mask", "boundary_mask", "dataset_index", "grid_index",
                 "lam_edge_cells"):
        graph["data"][name] = as_column(getattr(data, name))
    graph["hidden"].x = _node_x(mesh.latitude, mesh.longitude)
    graph["hidden"].area_weight = as_column(
        grids.area_weights(grids.Grid("hidden", mesh.latitude, mesh.longitude)))
    graph.lam_spacing_km = float(data.lam_spacing_km or 0.0)
    return graph


def assemble(data: DataNodes, mesh: meshes.Mesh, config: GraphConfig):
    """The HeteroData of a built graph (nodes, three edge sets, attributes, id)."""
    graph = nodes_graph(data, mesh)
    data_xyz, hid_xyz = data.xyz, mesh.xyz
    set_edges(graph, EDGE_SETS["encoder"], encoder_edges(config.encoder, data, hid_xyz),
              data_xyz, hid_xyz)
    set_edges(graph, EDGE_SETS["processor"],
               build_edges(config.processor, hid_xyz, hid_xyz, mesh), hid_xyz, hid_xyz)
    set_edges(graph, EDGE_SETS["decoder"],
               build_edges(config.decoder, hid_xyz, data_xyz), hid_xyz, data_xyz)
    graph.name = config.name
    graph.datasets = [d.name for d in config.data.datasets]
    graph.config = json.dumps(_config_dict(config), sort_keys=True)
    graph.graph_id = graph_id(graph)
    return graph


def _config_dict(config: GraphConfig) -> dict:
    out = dataclasses.asdict(config)
    out.pop("file", None)
    return out


def graph_id(graph) -> str:
    """A short content hash of the graph's nodes and edges (stable across saves)."""
    digest = hashlib.sha1()
    for node in graph.node_types:
        digest.update(graph[node].x.numpy().tobytes())
    for key in graph.edge_types:
        digest.update(graph[key].edge_index.to(torch.int64).numpy().tobytes())
    return digest.hexdigest()[:12]


def build_graph(config: GraphConfig | str | Path, grid_of=dataset_grid):
    """Build the graph of a config (a GraphConfig, a YAML path or a preset name)."""
    if not isinstance(config, GraphConfig):
        config = load_config(config)
    data = build_data_nodes(config.data, grid_of)
    mesh = build_hidden(config.hidden, data, grid_of, config.data.datasets[0].name)
    return assemble(data, mesh, config)


# --------------------------------------------------------------------------- save / load


def save_graph(graph, path: str | Path) -> Path:
    """torch.save the HeteroData atomically (a temporary file, then a rename). PyG's attribute
    cache (``node_attrs()`` fills it with enums ``weights_only`` refuses) is dropped first."""
    for store in graph.stores:
        store.__dict__.pop("_cached_attr", None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(graph, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _attribute_cache(*_factory) -> collections.OrderedDict:
    """Stands in for the ``defaultdict`` of PyG's attribute cache when a graph loads: the
    weights-only unpickler fills only plain mappings. The cache is dropped after loading."""
    return collections.OrderedDict()


def _safe_globals() -> list:
    from torch_geometric.data import HeteroData
    from torch_geometric.data.storage import (
        AttrType,
        BaseStorage,
        EdgeStorage,
        GlobalStorage,
        NodeStorage,
    )

    return [HeteroData, BaseStorage, NodeStorage, EdgeStorage, GlobalStorage, AttrType,
            (_attribute_cache, "collections.defaultdict")]


@contextlib.contextmanager
def _graph_globals():
    """The PyG allow-list for ``torch.load``; anemoi-graphs files saved after a post-processor
    hold PyG's attribute cache (a ``defaultdict``), which PyG itself allow-lists as the real
    class, one the weights-only unpickler cannot fill: ours replaces it while loading."""
    ours = _safe_globals()  # imports PyG first: it allow-lists its classes on import
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(
        [g for g in saved if g is not collections.defaultdict] + ours)
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def load_graph(path: str | Path):
    """Load a graph .pt (ours or anemoi-graphs') with weights_only=True and a PyG allow-list."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"graph file {path} does not exist")
    try:
        with _graph_globals():
            graph = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - any unpickling refusal or corruption
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WorkbenchError(
            f"{path} is not a graph this workbench can load safely ({first[:160]}); "
            "build one with `workbench graph build`"
        ) from None
    from torch_geometric.data import HeteroData

    if not isinstance(graph, HeteroData) or "data" not in graph.node_types:
        raise WorkbenchError(f"{path} holds a {type(graph).__name__}, not a HeteroData graph "
                             "with 'data' nodes")
    return anemoi_layout(graph)


def anemoi_layout(graph):
    """The graph with every 1-D node or edge attribute made 2-D (``[N]`` -> ``[N, 1]``), as
    anemoi-graphs stores them: graphs saved in format 1 read like new ones. PyG's attribute
    cache, if the file held one, is dropped (it is rebuilt on use)."""
    for store in graph.stores:
        store.__dict__.pop("_cached_attr", None)
    for store in graph.node_stores:
        n = store.num_nodes
        for name, value in list(store.items()):
            if name != "x" and isinstance(value, torch.Tensor) and value.dim() == 1 \
                    and value.numel() == n:
                store[name] = value.reshape(-1, 1)
    for store in graph.edge_stores:
        for name, value in list(store.items()):
            if name != "edge_index" and isinstance(value, torch.Tensor) and value.dim() == 1:
                store[name] = value.reshape(-1, 1)
    return graph


def node_values(store, name: str) -> np.ndarray | None:
    """A node or edge attribute as a flat numpy array (``[N, 1]`` or ``[N]``), None if absent."""
    if name not in store:
        return None
    value = store[name]
    value = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if value.ndim == 2 and value.shape[1] == 1:
        return value[:, 0]
    return value


def node_latlon(graph, node: str) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees) of a node set."""
    x = np.rad2deg(graph[node].x.numpy().astype(np.float64))
    return x[:, 0], grids.wrap_longitude(x[:, 1])


def edge_set_key(name: str) -> tuple[str, str, str]:
    """``"encoder"``/``"data->hidden"``/a tuple -> the HeteroData edge key."""
    if name in EDGE_SETS:
        return EDGE_SETS[name]
    if "->" in name:
        src, dst = name.split("->")
        return (src.strip(), "to", dst.strip())
    raise WorkbenchError(f"unknown edge set {name!r}; use encoder, processor, decoder or 'src->dst'")

