"""A training domain's graph: loaded (a .pt) or built once into the cache from a graph config,
checked against the domain's grid, with what training reads from it (area weights, the LAM
boundary forced from the truth, the nearest hidden node of every data node)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import cachelock, catalog, grids
from .config import resolve_config
from .errors import WorkbenchError
from .graphs import (
    EDGE_SETS,
    GRAPH_FORMAT,
    build_graph,
    load_config,
    load_graph,
    node_latlon,
    save_graph,
)
from .model import GraphTensors, graph_tensors


@dataclass
class DomainGraph:
    """A domain's graph and what training reads from it."""

    name: str
    graph_id: str
    graph_name: str
    tensors: GraphTensors
    area_weight: torch.Tensor  # [G]
    boundary: torch.Tensor | None  # bool [G]: LAM nodes forced from the truth, None: global
    patch_id: torch.Tensor  # [G] nearest hidden node (BERT tokens)
    n_hidden: int


def graph_for(spec: str | None, domain: str, cache: str | Path | None):
    """A domain's graph: a .pt file, or a graph config built once into the cache, keyed by the
    config and the catalog entries of its datasets (a name re-pointed by another catalog
    folder gets its own graph)."""

    if spec is None:
        raise WorkbenchError(f"domain {domain!r} names no graph: set `graph:` in the sampling "
                             "config (a graph preset, YAML or .pt)")
    if str(spec).endswith(".pt"):
        return load_graph(spec)
    path = resolve_config(spec, "graphs")
    config = load_config(path)
    entries = [catalog.get_entry(d.name).summary() for d in config.data.datasets]
    key = hashlib.sha1(path.read_bytes() + json.dumps([entries, GRAPH_FORMAT], sort_keys=True)
                       .encode()).hexdigest()[:10]
    cached = catalog.cache_dir(cache) / "graphs" / f"{path.stem}-{key}.pt"
    cachelock.create_once(cached, lambda tmp: save_graph(build_graph(config), tmp),
                          f"graph {path.stem!r}", damage=_graph_file_damage)
    return load_graph(cached)


def _graph_file_damage(path: Path) -> str | None:
    """Why a cached graph file cannot be loaded (torch.save writes a zip archive: a cut
    file has no central directory), else None."""
    return None if zipfile.is_zipfile(path) else "not a complete torch file"


def check_graph_matches(graph, grid: grids.Grid, domain: str, tol_deg: float = 1e-3) -> None:
    """The graph's data nodes must be the dataset's grid points, in order."""

    lat, lon = node_latlon(graph, "data")
    name = getattr(graph, "name", "graph")
    if lat.size != grid.size:
        raise WorkbenchError(f"graph {name!r} has {lat.size} data nodes but domain {domain!r} "
                             f"has {grid.size} grid points: build the graph on this dataset")
    dlon = np.abs((lon - grid.longitude + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(lat))
    off = np.maximum(np.abs(lat - grid.latitude), dlon)
    if off.max() > tol_deg:
        raise WorkbenchError(f"graph {name!r}: data node {int(off.argmax())} is {off.max():.3g} "
                             f"deg from grid point of domain {domain!r}: build the graph on "
                             "this dataset")


def domain_graph(spec: str | None, domain: str, dataset: str, boundary_cells: int,
                 cache: str | Path | None = None) -> DomainGraph:
    """Load or build a domain's graph, check it against the grid, derive masks and weights."""
    graph = graph_for(spec, domain, cache)
    entry = catalog.get_entry(dataset)
    grid = catalog.entry_grid(entry)
    check_graph_matches(graph, grid, domain)
    boundary = None  # a ring only on a structured limited area, as the catalog says
    if boundary_cells > 0 and grid.shape is not None and catalog.is_limited_area(entry, grid):
        boundary = torch.from_numpy(grids.boundary_distance_cells(grid) < boundary_cells)

    dec = graph[EDGE_SETS["decoder"]]
    nearest = torch.full((grid.size,), -1, dtype=torch.long)
    # each target's shortest edge: sorted by target, shortest first, the first of each target
    # (an assignment through repeated indices keeps an arbitrary one of them)
    order = torch.argsort(dec.edge_length_km.reshape(-1), stable=True)
    order = order[torch.argsort(dec.edge_index[1, order], stable=True)]
    target = dec.edge_index[1, order]
    first = torch.ones_like(target, dtype=torch.bool)
    first[1:] = target[1:] != target[:-1]
    nearest[target[first]] = dec.edge_index[0, order[first]]
    area = graph["data"].area_weight.float().reshape(-1) if "area_weight" in graph["data"] \
        else torch.ones(grid.size)
    return DomainGraph(domain, str(graph.graph_id), str(getattr(graph, "name", spec)),
                       graph_tensors(graph), area, boundary, nearest,
                       int(graph["hidden"].num_nodes))
