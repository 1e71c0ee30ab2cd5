"""Graph inspection: hanging nodes by region, degrees, edge lengths, k and trim sweeps.

"Hanging" is counted per edge set: sources with no outgoing edge, targets with no incoming
edge. Regions of a node: ``poles`` (|lat| > 85), ``lam_interior`` and ``lam_boundary`` (LAM
points closer than ``band_cells`` to the LAM edge), ``near_lam`` (other nodes within
``near_km`` of a LAM point) and ``global`` (the rest).

A sweep answers every k from one neighbour query at the largest k: with ``knn`` (every
target takes its k nearest sources) a source hangs at k exactly when no target ranks it
among its first k, so the smallest rank at which any target lists it decides every k.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from . import graphs, grids
from .errors import WorkbenchError

REGIONS = ("lam_interior", "lam_boundary", "near_lam", "global", "poles")
REGION_GROUPS = {"lam": ("lam_interior", "lam_boundary"), "all": REGIONS}
POLE_LATITUDE = 85.0


@dataclasses.dataclass(frozen=True)
class RegionSettings:
    band_cells: int = 10  # LAM points closer than this to the LAM edge form the boundary band
    near_km: float = 500.0  # other nodes this close to a LAM point are "near_lam"

    def __post_init__(self):
        if isinstance(self.band_cells, bool) or not isinstance(self.band_cells, int) \
                or self.band_cells < 0:
            raise WorkbenchError(f"band_cells must be a whole number >= 0, got "
                                 f"{self.band_cells!r}")
        if isinstance(self.near_km, bool) or not isinstance(self.near_km, int | float) \
                or not 0 <= self.near_km < float("inf"):
            raise WorkbenchError(f"near_km must be a distance >= 0, got {self.near_km!r}")


def node_regions(graph, node: str, settings: RegionSettings = RegionSettings()) -> np.ndarray:
    """Region label of every node of a node set (see module docstring)."""
    lat, lon = graphs.node_latlon(graph, node)
    labels = np.full(lat.size, "global", dtype=object)
    data = graph["data"] if "data" in graph.node_types else {}  # a recipe may name it otherwise
    cutout = graphs.node_values(data, "cutout_mask")
    cutout = cutout.astype(bool) if cutout is not None else None
    edge_cells = graphs.node_values(data, "lam_edge_cells")
    if cutout is not None and cutout.any():
        dlat, dlon = graphs.node_latlon(graph, "data")
        lam_xyz = grids.unit_xyz(dlat[cutout], dlon[cutout])
        spacing = float(getattr(graph, "lam_spacing_km", 0.0) or 0.0)
        dist_km, nearest = grids.nearest_km(lam_xyz, grids.unit_xyz(lat, lon),
                                             max(settings.near_km, 2 * spacing) + 1.0)
        labels[dist_km <= settings.near_km] = "near_lam"
        if node == "data":
            lam_label = np.full(cutout.sum(), "lam_interior", dtype=object)
            if edge_cells is not None:
                lam_label[edge_cells[cutout] < settings.band_cells] = "lam_boundary"
            labels[cutout] = lam_label
        else:
            inside = dist_km <= (spacing or np.median(dist_km[np.isfinite(dist_km)]))
            near_edge = np.zeros(lat.size, bool)
            if edge_cells is not None:
                near_edge[inside] = edge_cells[cutout][nearest[inside]] < settings.band_cells
            labels[inside & near_edge] = "lam_boundary"
            labels[inside & ~near_edge] = "lam_interior"
    labels[np.abs(lat) > POLE_LATITUDE] = "poles"
    return labels


def count_by_region(mask: np.ndarray, regions: np.ndarray) -> dict:
    """``{"total": n, region: n, ...}`` for the True entries of ``mask``."""
    counts = {"total": int(mask.sum())}
    for region in REGIONS:
        counts[region] = int((mask & (regions == region)).sum())
    return counts


def _stats(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"min": None, "mean": None, "median": None, "max": None}
    return {"min": float(values.min()), "mean": float(values.mean()),
            "median": float(np.median(values)), "max": float(values.max())}


def inspect_graph(graph, settings: RegionSettings = RegionSettings()) -> dict:
    """Per edge set ("src->dst"): hanging sources/targets by region, degrees, edge lengths."""
    regions = {node: node_regions(graph, node, settings) for node in graph.node_types}
    report: dict = {
        "graph_id": getattr(graph, "graph_id", None),
        "name": getattr(graph, "name", None),
        "nodes": {node: int(graph[node].num_nodes) for node in graph.node_types},
        "regions": {node: {r: int((labels == r).sum()) for r in REGIONS}
                    for node, labels in regions.items()},
        "edge_sets": {},
    }
    for src, _, dst in graph.edge_types:
        store = graph[(src, "to", dst)]
        index = store.edge_index.numpy()
        n_src, n_dst = graph[src].num_nodes, graph[dst].num_nodes
        out_degree = np.bincount(index[0], minlength=n_src)
        in_degree = np.bincount(index[1], minlength=n_dst)
        length = edge_lengths_km(graph, (src, "to", dst))
        report["edge_sets"][f"{src}->{dst}"] = {
            "edges": int(index.shape[1]),
            "source_nodes": int(n_src),
            "target_nodes": int(n_dst),
            "hanging_sources": count_by_region(out_degree == 0, regions[src]),
            "hanging_targets": count_by_region(in_degree == 0, regions[dst]),
            "degree": {"out": _stats(out_degree), "in": _stats(in_degree)},
            "edge_length_km": _stats(length),
        }
    return report


def hanging_mask(graph, edge_set: str, side: str) -> np.ndarray:
    """Boolean mask of hanging nodes: side "sources" (no outgoing) or "targets" (no incoming)."""
    key = graphs.edge_set_key(edge_set)
    src, _, dst = key
    index = graph[key].edge_index.numpy()
    if side == "sources":
        return np.bincount(index[0], minlength=graph[src].num_nodes) == 0
    return np.bincount(index[1], minlength=graph[dst].num_nodes) == 0


# --------------------------------------------------------------------------- sweeps


def first_rank(neighbours: np.ndarray, n_nodes: int) -> np.ndarray:
    """For each node, the smallest column at which it appears in ``neighbours`` (kmax if never)."""
    kmax = neighbours.shape[1]
    ranks = np.full(n_nodes, kmax, dtype=np.int64)
    columns = np.broadcast_to(np.arange(kmax), neighbours.shape)
    np.minimum.at(ranks, neighbours.ravel(), columns.ravel())
    return ranks


def hanging_by_k(src_xyz: np.ndarray, dst_xyz: np.ndarray, ks: Sequence[int],
                 kind: str = "knn") -> tuple[np.ndarray, str]:
    """Per node of the side that can hang, the smallest k at which it stops hanging.

    ``knn``: sources hang; ``reversed_knn``: targets hang. A node hangs at k iff the
    returned value is > k (max(ks) + 1 means: hanging for every k swept). One neighbour
    query at max(ks) answers every k.
    """
    kmax = int(max(ks))
    if min(ks) < 1:
        raise WorkbenchError(f"k must be >= 1, got {min(ks)}")
    if kind == "knn":
        graphs._check_k(kmax, len(src_xyz), "knn sweep")
        _, idx = cKDTree(src_xyz).query(dst_xyz, k=kmax)
        return first_rank(idx.reshape(len(dst_xyz), kmax), len(src_xyz)) + 1, "sources"
    if kind == "reversed_knn":
        graphs._check_k(kmax, len(dst_xyz), "reversed_knn sweep")
        _, idx = cKDTree(dst_xyz).query(src_xyz, k=kmax)
        return first_rank(idx.reshape(len(src_xyz), kmax), len(dst_xyz)) + 1, "targets"
    raise WorkbenchError(f"a k sweep needs a knn or reversed_knn edge set, not {kind!r}")


def parse_k_range(text: str) -> list[int]:
    """``"1:32"`` -> [1..32]; ``"1:32:2"`` -> [1, 3, ...]; ``"4,8,16"`` -> [4, 8, 16]."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) > 2 else 1
            values = list(range(start, stop + 1, step))
        else:
            values = [int(p) for p in text.split(",")]
    except ValueError:
        raise WorkbenchError(f"--k {text!r}: use START:STOP[:STEP] or a comma list") from None
    if not values or min(values) < 1:
        raise WorkbenchError(f"--k {text!r}: every k must be >= 1")
    return values


def _region_set(region: str) -> tuple[str, ...]:
    if region in REGION_GROUPS:
        return REGION_GROUPS[region]
    if region in REGIONS:
        return (region,)
    raise WorkbenchError(
        f"unknown region {region!r}; use one of {', '.join([*REGION_GROUPS, *REGIONS])}")


@dataclasses.dataclass(frozen=True)
class HangingRanks:
    """One neighbour query's answer for every k: node ``i`` hangs at k iff free_at[i] > k."""

    free_at: np.ndarray
    side: str  # "sources" or "targets"
    node: str  # the node set that can hang ("data" or "hidden")
    regions: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray

    def hanging(self, k: int) -> np.ndarray:
        return self.free_at > k


def _swept_edges(config: graphs.GraphConfig, edge_set: str):
    key = graphs.edge_set_key(edge_set)
    role = next((r for r, k in graphs.EDGE_SETS.items() if k == key), None)
    edge = getattr(config, role) if role in ("encoder", "decoder") else None
    if edge is None or edge.kind not in ("knn", "reversed_knn"):
        raise WorkbenchError(
            f"{edge_set} edges of {config.name!r} are {edge.kind if edge else 'not swept'}; "
            "a k sweep needs knn or reversed_knn encoder/decoder edges")
    return key, edge


def hanging_ranks(config: graphs.GraphConfig, ks: Sequence[int], edge_set: str = "encoder",
                  trim: int = 0, settings: RegionSettings = RegionSettings(),
                  grid_of=graphs.dataset_grid) -> HangingRanks:
    """Build the nodes of ``config`` (LAMs trimmed by ``trim``) and rank every k at once."""
    key, edge = _swept_edges(config, edge_set)
    cfg = with_trim(config, trim)
    data = graphs.build_data_nodes(cfg.data, grid_of)
    mesh = graphs.build_hidden(cfg.hidden, data, grid_of, cfg.data.datasets[0].name)
    src_xyz, dst_xyz = (data.xyz, mesh.xyz) if key[0] == "data" else (mesh.xyz, data.xyz)
    free_at, side = hanging_by_k(src_xyz, dst_xyz, ks, edge.kind)
    node = key[0] if side == "sources" else key[2]
    graph = graphs.nodes_graph(data, mesh)
    lat, lon = graphs.node_latlon(graph, node)
    return HangingRanks(free_at, side, node, node_regions(graph, node, settings), lat, lon)


def sweep(
    config: graphs.GraphConfig,
    ks: Sequence[int],
    trims: Iterable[int] = (0,),
    edge_set: str = "encoder",
    region: str = "lam",
    settings: RegionSettings = RegionSettings(),
    grid_of=graphs.dataset_grid,
    progress: bool = False,
) -> dict:
    """Hanging counts for every (trim, k) of a knn/reversed_knn edge set, one query per trim.

    Returns ``{"rows": [{"trim", "k", "hanging": {"total", region...}}],
    "min_k_without_hanging": {trim: k or None}, ...}`` where the minimum looks at ``region``.
    """
    from tqdm.auto import tqdm

    key, edge = _swept_edges(config, edge_set)
    wanted = _region_set(region)
    rows, minimum = [], {}
    for trim in tqdm(list(trims), desc="trim", disable=not progress):
        ranks = hanging_ranks(config, ks, edge_set, trim, settings, grid_of)
        in_region = np.isin(ranks.regions, wanted)
        if not in_region.any():
            raise WorkbenchError(f"region {region!r} holds no {ranks.node} node at trim {trim}")
        minimum[trim] = None
        for k in sorted(ks):
            hanging = ranks.hanging(k)
            rows.append({"trim": int(trim), "k": int(k),
                         "hanging": count_by_region(hanging, ranks.regions)})
            if minimum[trim] is None and not (hanging & in_region).any():
                minimum[trim] = int(k)
    return {"graph": config.name, "edge_set": "->".join((key[0], key[2])), "kind": edge.kind,
            "side": ranks.side, "region": region, "rows": rows,
            "min_k_without_hanging": {str(t): k for t, k in minimum.items()}}


def with_trim(config: graphs.GraphConfig, trim: int) -> graphs.GraphConfig:
    """The config with every LAM dataset trimmed by ``trim`` cells per side (0: as given)."""
    if not trim:
        return config
    *lams, outer = config.data.datasets
    lams = [dataclasses.replace(d, trim_edge=int(trim)) for d in lams]
    data = dataclasses.replace(config.data, datasets=(*lams, outer))
    return dataclasses.replace(config, data=data)


def sweep_table(result: Mapping) -> pd.DataFrame:
    """Sweep rows as a DataFrame: one row per (trim, k), one column per region and the total."""
    return pd.DataFrame([{"trim": r["trim"], "k": r["k"], **r["hanging"]} for r in result["rows"]])


def edge_arrays(graph) -> dict:
    """Per edge set ("src->dst"): in-degree of every target and every edge's length in km."""
    out = {}
    for src, _, dst in graph.edge_types:
        store = graph[(src, "to", dst)]
        index = store.edge_index.numpy()
        out[f"{src}->{dst}"] = {
            "in_degree": np.bincount(index[1], minlength=graph[dst].num_nodes),
            "length_km": edge_lengths_km(graph, (src, "to", dst)),
        }
    return out


def edge_lengths_km(graph, key: tuple[str, str, str]) -> np.ndarray:
    """Every edge's great-circle length in km: the graph's ``edge_length_km`` (1-D or
    ``[E, 1]``), else computed from the node coordinates (an anemoi-graphs file)."""
    length = graphs.node_values(graph[key], "edge_length_km")
    if length is not None:
        return length
    src, _, dst = key
    return np.asarray(inspect_lengths(graph, src, dst, graph[key].edge_index.numpy()))


def inspect_lengths(graph, src: str, dst: str, index: np.ndarray) -> np.ndarray:
    """Great-circle edge lengths (km) computed from node coordinates."""
    slat, slon = graphs.node_latlon(graph, src)
    dlat, dlon = graphs.node_latlon(graph, dst)
    return grids.great_circle_km(slat[index[0]], slon[index[0]], dlat[index[1]], dlon[index[1]])


def report_table(report: Mapping) -> pd.DataFrame:
    """One row per edge set of :func:`inspect_graph`'s report: counts and hanging totals."""
    rows = []
    for name, edges in report["edge_sets"].items():
        rows.append({
            "edge set": name, "edges": edges["edges"],
            "sources": edges["source_nodes"], "targets": edges["target_nodes"],
            "hanging sources": edges["hanging_sources"]["total"],
            "hanging targets": edges["hanging_targets"]["total"],
            "median in-degree": edges["degree"]["in"]["median"],
            "max length km": edges["edge_length_km"]["max"],
        })
    return pd.DataFrame(rows).set_index("edge set")


def lam_extent(graph, pad_deg: float = 5.0) -> tuple[float, float, float, float] | None:
    """(lon0, lon1, lat0, lat1) around the graph's LAM data nodes, for zoomed maps."""
    mask = graphs.node_values(graph["data"], "cutout_mask") \
        if "data" in graph.node_types else None
    if mask is None or not mask.any():
        return None
    lat, lon = graphs.node_latlon(graph, "data")
    mask = mask.astype(bool)
    return (float(lon[mask].min() - pad_deg), float(lon[mask].max() + pad_deg),
            float(lat[mask].min() - pad_deg), float(lat[mask].max() + pad_deg))


def notebook_summary(report: Mapping, sweep_result: Mapping) -> dict:
    """summary.json of notebook 01: the built graph's hanging counts and the sweep results."""
    edge_sets = report["edge_sets"]
    key_figures = {
        **{f"min_k_trim_{t}": k for t, k in sweep_result["min_k_without_hanging"].items()},
        **{f"hanging_{name.replace('->', '_to_')}_sources": e["hanging_sources"]["total"]
           for name, e in edge_sets.items()},
        "data_nodes": report["nodes"]["data"],
        "hidden_nodes": report["nodes"]["hidden"],
        "graph_id": report["graph_id"],
    }
    return {"key_figures": key_figures, "report": report, "sweep": sweep_result}
