"""Hanging-node fixes beyond "raise k everywhere" (``workbench graph fixes``).

For a graph config whose encoder is ``knn`` (every hidden node takes its k nearest data nodes,
so data nodes can hang), each fix is searched for the smallest setting that leaves no data
node of a region hanging, then measured on the edges it builds:

- ``global_k``: the encoder k raised everywhere (seed 004's nbd; the baseline);
- ``per_region_k``: k unchanged, plus every LAM data node joined to its ``lam_k`` nearest
  hidden nodes (graph config ``encoder.lam_k``; in anemoi-graphs a ``ReversedKNNEdges``
  builder with ``source_mask_attr_name`` a cutout mask beside the ``KNNEdges``);
- ``reversed_knn``: every data node to its k nearest hidden nodes (hidden nodes can hang);
- ``cutoff``: every data node within ``radius_km`` of a hidden node (whole km);
- ``remove_unconnected``: k unchanged, the data nodes no encoder edge leaves are dropped
  (anemoi's ``RemoveUnconnectedNodes`` on the encoder's edges; on a whole graph the decoder
  joins every data node, so anemoi would drop none): a fix that loses data.

Fixes are ranked by encoder edges; memory is the encoder's edge_index plus edge attributes
as :func:`workbench.graphs.set_edges` stores them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.spatial import cKDTree

from . import graphs, grids, inspection
from .errors import WorkbenchError

K_MAX = 64  # the largest global k searched
GOAL_RATIO = 0.5  # the issue's goal: no hanging LAM node at <= 50 % of global_k's edges


@dataclasses.dataclass(frozen=True)
class _Nodes:
    """A config's nodes, built once for every fix."""

    config: graphs.GraphConfig
    data: graphs.DataNodes
    hid_xyz: np.ndarray
    regions: np.ndarray  # region label of every data node
    in_region: np.ndarray  # bool: the data nodes that must not hang


def unfixable_encoder(config: graphs.GraphConfig) -> str | None:
    """The encoder's kind where it is not a plain knn (reversed_knn, cutoff, a knn with
    lam_k: nothing for the fixes to start from), else None."""
    encoder = config.encoder
    if encoder.kind == "knn" and encoder.lam_k is None:
        return None
    return f"{encoder.kind}{' with lam_k' if encoder.lam_k else ''}"


def _nodes(config: graphs.GraphConfig, region: str, settings: inspection.RegionSettings,
           grid_of=graphs.dataset_grid) -> _Nodes:
    wanted = inspection._region_set(region)
    kind = unfixable_encoder(config)
    if kind:
        raise WorkbenchError(f"{config.name}: fixes start from a plain knn encoder (the kind "
                             f"that leaves data nodes hanging), this one is {kind}")
    data = graphs.build_data_nodes(config.data, grid_of)
    mesh = graphs.build_hidden(config.hidden, data, grid_of, config.data.datasets[0].name)
    regions = inspection.node_regions(graphs.nodes_graph(data, mesh), "data", settings)
    in_region = np.isin(regions, wanted)
    if not in_region.any():
        lam = "" if data.cutout_mask.any() else " (the config has no LAM dataset)"
        raise WorkbenchError(f"{config.name}: region {region!r} holds no data node{lam}; use "
                             "--region all or a config with a LAM")
    return _Nodes(config, data, mesh.xyz, regions, in_region)


def _measure(nodes: _Nodes, name: str, setting: dict | None, encoder: graphs.EdgeConfig,
             note: str, drop_hanging: bool = False) -> dict:
    """A fix's row: hanging counts, edges, memory and lengths of its encoder edges."""
    from torch_geometric.data import HeteroData

    index = graphs.encoder_edges(encoder, nodes.data, nodes.hid_xyz)
    hanging = np.bincount(index[0], minlength=nodes.data.size) == 0
    drops = None
    if drop_hanging:
        drops = inspection.count_by_region(hanging, nodes.regions)
        hanging = np.zeros_like(hanging)
    one = HeteroData()  # every stored tensor is per edge: one edge's bytes times the edges
    graphs.set_edges(one, graphs.EDGE_SETS["encoder"], index[:, :1], nodes.data.xyz,
                     nodes.hid_xyz)
    memory = index.shape[1] * sum(v.numel() * v.element_size()
                                  for _, v in one[graphs.EDGE_SETS["encoder"]].items())
    length = grids.chord_to_km(np.linalg.norm(nodes.data.xyz[index[0]]
                                              - nodes.hid_xyz[index[1]], axis=1))
    return {
        "name": name, "setting": setting, "found": setting is not None,
        "hanging": int((hanging & nodes.in_region).sum()),
        "hanging_elsewhere": int((hanging & ~nodes.in_region).sum()),
        "hanging_by_region": inspection.count_by_region(hanging, nodes.regions),
        "hanging_hidden": int((np.bincount(index[1], minlength=len(nodes.hid_xyz)) == 0).sum()),
        "encoder_edges": int(index.shape[1]), "memory_bytes": int(memory),
        "edge_length_km": {"min": float(length.min()), "median": float(np.median(length)),
                           "p95": float(np.percentile(length, 95)), "max": float(length.max())},
        "drops": drops, "keeps_data": drops is None or drops["total"] == 0,
        "encoder": {k: v for k, v in dataclasses.asdict(encoder).items() if v is not None},
        "note": note,
    }


def _global_k(nodes: _Nodes, k_max: int) -> dict:
    k_max = min(k_max, len(nodes.hid_xyz))
    free_at, _ = inspection.hanging_by_k(nodes.data.xyz, nodes.hid_xyz, range(1, k_max + 1))
    need = int(free_at[nodes.in_region].max())
    found = need <= k_max
    k = need if found else k_max
    return _measure(nodes, "global_k", {"k": k} if found else None,
                    graphs.EdgeConfig(kind="knn", k=k),
                    "encoder k raised everywhere" if found else f"hanging up to k = {k_max}")


def _per_region_k(nodes: _Nodes) -> dict | None:
    if not nodes.data.cutout_mask.any():
        return None
    # lam_k = 1 already gives every LAM data node an edge: the smallest setting
    encoder = dataclasses.replace(nodes.config.encoder, lam_k=1)
    row = _measure(nodes, "per_region_k", {"k": nodes.config.encoder.k, "lam_k": 1}, encoder,
                   "k unchanged + each LAM data node to its nearest hidden node")
    if row["hanging"]:  # the region reaches outside the LAM
        row.update(setting=None, found=False, note="lam_k reaches LAM data nodes only")
    return row


def _cutoff(nodes: _Nodes) -> dict:
    nearest, _ = cKDTree(nodes.hid_xyz).query(nodes.data.xyz[nodes.in_region])
    least = math.ceil(float(grids.chord_to_km(nearest.max())))
    for radius in (least, least + 1):  # float rounding of km <-> chord: the next km covers it
        row = _measure(nodes, "cutoff", {"radius_km": radius},
                       graphs.EdgeConfig(kind="cutoff", radius_km=float(radius)),
                       "every data node within the radius of a hidden node")
        if not row["hanging"]:
            break
    else:
        row.update(setting=None, found=False, note=f"hanging at {radius} km")
        return row
    factor = grids.km_to_chord(radius) / graphs.max_nn_chord(nodes.hid_xyz)
    row["setting"]["cutoff_factor"] = math.ceil(float(factor) * 1000) / 1000  # same reach
    return row


def find_fixes(config: graphs.GraphConfig | str | Path, region: str = "lam",
               settings: inspection.RegionSettings | None = None,
               k_max: int = K_MAX, grid_of=graphs.dataset_grid) -> dict:
    """Every fix's smallest setting without a hanging data node in ``region``, measured and
    ranked by encoder edges (fixes not found last); ``goal`` says whether a fix that keeps
    all data reaches it at <= 50 % of ``global_k``'s edges."""
    if not isinstance(config, graphs.GraphConfig):
        config = graphs.load_config(config)
    nodes = _nodes(config, region, settings or inspection.RegionSettings(), grid_of)
    base = config.encoder
    rows = [
        _global_k(nodes, k_max),
        _per_region_k(nodes),
        _measure(nodes, "reversed_knn", {"k": 1}, graphs.EdgeConfig(kind="reversed_knn", k=1),
                 "every data node to its nearest hidden node"),
        _cutoff(nodes),
        _measure(nodes, "remove_unconnected", {"k": base.k}, base,
                 "k unchanged; hanging data nodes dropped (data lost)", drop_hanging=True),
    ]
    rows = sorted((r for r in rows if r is not None),
                  key=lambda r: (not r["found"], r["encoder_edges"]))
    baseline = next(r for r in rows if r["name"] == "global_k")
    for row in rows:
        row["edges_vs_global_k"] = round(row["encoder_edges"] / baseline["encoder_edges"], 4)
        if row["setting"] is not None and row["drops"]:
            row["setting"]["dropped_data_nodes"] = row["drops"]["total"]
    dropped = next(r for r in rows if r["name"] == "remove_unconnected")["drops"]
    as_is = sum(dropped[r] for r in inspection._region_set(region))  # hanging with k as it is
    elsewhere = dropped["total"] - as_is
    best = chosen_fix({"fixes": rows, "hanging_elsewhere_as_is": elsewhere})
    return {
        "graph": config.name, "region": region, "data_nodes": nodes.data.size,
        "lam_data_nodes": int(nodes.data.cutout_mask.sum()),
        "hidden_nodes": len(nodes.hid_xyz), "encoder": {"kind": base.kind, "k": base.k},
        "hanging_as_is": as_is,
        "hanging_elsewhere_as_is": elsewhere, "fixes": rows,
        "chosen": best["name"] if best else None,
        "goal": {"ratio": GOAL_RATIO, "global_k_edges": baseline["encoder_edges"],
                 "best": best["name"] if best else None,
                 "best_vs_global_k": best["edges_vs_global_k"] if best else None,
                 "met": bool(best and baseline["found"]
                             and best["edges_vs_global_k"] <= GOAL_RATIO)},
    }


def chosen_fix(result: Mapping) -> dict | None:
    """The cheapest fix that was found, leaves none hanging in the region, keeps every data
    node and leaves no more hanging outside the region than the config as it is."""
    return next((r for r in result["fixes"]
                 if r["found"] and not r["hanging"] and r["keeps_data"]
                 and r["hanging_elsewhere"] <= result["hanging_elsewhere_as_is"]), None)


def fixed_config(config: graphs.GraphConfig, fix: Mapping) -> graphs.GraphConfig:
    """The config with the fix's encoder (and its name)."""
    return dataclasses.replace(config, name=f"{config.name}-{fix['name'].replace('_', '-')}",
                               encoder=graphs.EdgeConfig(**fix["encoder"]), file=None)


def write_config(config: graphs.GraphConfig | str | Path, result: Mapping,
                 path: str | Path) -> Path:
    """Write the chosen fix as a graph config YAML (atomically) that ``workbench graph
    build`` and a training config's ``graph:`` accept."""
    if not isinstance(config, graphs.GraphConfig):
        config = graphs.load_config(config)
    fix = chosen_fix(result)
    if fix is None:
        raise WorkbenchError(f"{config.name}: no fix keeps every data node without a hanging "
                             f"one in {result['region']}; nothing written (raise --k-max)")
    fixed = fixed_config(config, fix)
    raw = json.loads(json.dumps({k: v for k, v in dataclasses.asdict(fixed).items()
                                 if k != "file"}))  # tuples -> lists
    for role in ("encoder", "decoder", "processor"):
        raw[role] = {k: v for k, v in raw[role].items() if v is not None}
    raw["description"] = (f"{config.name} with the cheapest hanging-node fix without hanging "
                          f"{result['region']} data nodes (none more elsewhere): {fix['name']} {fix['setting']} "
                          f"({fix['encoder_edges']} encoder edges, "
                          f"{fix['edges_vs_global_k']:.0%} of global_k's; workbench graph fixes)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fixes_table(result: Mapping) -> pd.DataFrame:
    """One row per fix, cheapest first."""
    rows = []
    for r in result["fixes"]:
        length = r["edge_length_km"]
        rows.append({
            "fix": r["name"],
            "setting": ", ".join(f"{k}={v}" for k, v in r["setting"].items())
            if r["setting"] else "not found",
            "hanging": r["hanging"], "hanging elsewhere": r["hanging_elsewhere"],
            "hanging hidden": r["hanging_hidden"],
            "encoder edges": r["encoder_edges"], "vs global_k": r["edges_vs_global_k"],
            "memory MB": round(r["memory_bytes"] / 1e6, 2),
            "length km min/med/p95/max": "/".join(f"{length[q]:.0f}"
                                                  for q in ("min", "median", "p95", "max")),
            "dropped data nodes": r["drops"]["total"] if r["drops"] else 0,
        })
    return pd.DataFrame(rows).set_index("fix")


def fixes_plot(result: Mapping):
    """Encoder edges per fix (hatched: loses data), the global-k baseline and its 50 %."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 * len(result["fixes"]) + 1.2))
    for i, r in enumerate(result["fixes"]):
        ax.barh(i, r["encoder_edges"], color="tab:green" if r["found"] else "tab:grey",
                hatch=None if r["keeps_data"] else "//")
    ax.set_yticks(range(len(result["fixes"])), [r["name"] for r in result["fixes"]])
    ax.invert_yaxis()
    edges = result["goal"]["global_k_edges"]
    ax.axvline(edges, color="k", lw=1, label="global_k")
    ax.axvline(GOAL_RATIO * edges, color="tab:red", ls="--", lw=1, label="50 % of global_k")
    ax.set_xlabel("encoder edges")
    ax.set_title(f"hanging-node fixes: {result['graph']}, region {result['region']}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def fixes_overview(config: graphs.GraphConfig | str | Path, region: str = "lam",
                   settings: inspection.RegionSettings | None = None):
    """Notebook 01: the fixes table and its plot; for a graph whose encoder is not a plain
    knn (reversed_knn, cutoff, or a knn with lam_k: fixed already) a one-row table saying so
    and no plot."""
    if not isinstance(config, graphs.GraphConfig):
        config = graphs.load_config(config)
    kind = unfixable_encoder(config)
    if kind:
        return pd.DataFrame([{"graph": config.name, "encoder": kind,
                              "fixes": "none searched: the fixes start from a plain knn "
                                       "encoder; the hanging counts above are this graph's"}]), None
    result = find_fixes(config, region, settings)
    return fixes_table(result), fixes_plot(result)
