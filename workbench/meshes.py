"""Hidden meshes for encoder-processor-decoder graphs (GraphCast / anemoi-graphs style).

Icosahedral meshes are refined by splitting every triangle in four; new vertices are
appended after the old ones, so the vertices of level ``r`` are a prefix of those of
level ``r + 1`` and a vertex's index tells the level it first appears on. From them:

- :func:`multimesh`: GraphCast's multi-mesh, the finest level's nodes with the edges of
  every level (long edges for fast propagation, short ones for detail);
- :func:`trimesh_edges`: only the finest level's edges (weather-model-graphs' "flat");
- :func:`stretched_mesh`: anemoi-graphs' stretched icosahedron, the global mesh refined
  further only near a limited area;
- :func:`limited_area_mesh`: anemoi-graphs' LimitedAreaTriNodes, the refined mesh only near
  a limited area; :func:`hop_edges`: MultiScaleEdges with ``x_hops`` on any of these.

Hidden nodes can also come from a data grid (:func:`coarsened_grid_nodes`) joined by
:func:`mesh_edges_knn`. Everything is numpy: unit-sphere xyz (n, 3) float64 and directed
edges (2, E) int64 ``[source, target]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .errors import WorkbenchError
from .grids import EARTH_RADIUS_KM, chord_to_km, km_to_chord, unit_xyz, wrap_longitude

_PHI = (1.0 + np.sqrt(5.0)) / 2.0

# The 20 faces of the icosahedron below, counter-clockwise seen from outside.
_ICOSAHEDRON_FACES = (
    (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
    (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
    (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
    (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Mesh:
    """Hidden nodes on the unit sphere and their directed edges (both directions present)."""

    xyz: np.ndarray  # (n, 3) unit vectors, float64
    edges: np.ndarray  # (2, E) int64 [source, target]
    edge_level: np.ndarray  # (E,) refinement level each edge came from
    node_level: np.ndarray  # (n,) level at which each node first appears

    @property
    def latitude(self) -> np.ndarray:
        """Node latitudes in degrees."""
        return np.rad2deg(np.arcsin(np.clip(self.xyz[:, 2], -1.0, 1.0)))

    @property
    def longitude(self) -> np.ndarray:
        """Node longitudes in degrees, in [-180, 180)."""
        return wrap_longitude(np.rad2deg(np.arctan2(self.xyz[:, 1], self.xyz[:, 0])))

    @property
    def size(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[1])

    def edge_length_km(self, radius_km: float = EARTH_RADIUS_KM) -> np.ndarray:
        """Great-circle length of every edge in km."""
        chord = np.linalg.norm(self.xyz[self.edges[0]] - self.xyz[self.edges[1]], axis=1)
        return chord_to_km(chord, radius_km)

    def __repr__(self) -> str:
        levels = f"levels {self.node_level.min()}-{self.node_level.max()}" if self.size else ""
        return f"Mesh({self.size} nodes, {self.num_edges} edges, {levels})"


# --------------------------------------------------------------------------- icosahedra


def icosahedron() -> tuple[np.ndarray, np.ndarray]:
    """The 12 unit vertices (float64) and 20 faces (int64, counter-clockwise from outside)."""
    vertices = np.array(
        [
            (-1, _PHI, 0), (1, _PHI, 0), (-1, -_PHI, 0), (1, -_PHI, 0),
            (0, -1, _PHI), (0, 1, _PHI), (0, -1, -_PHI), (0, 1, -_PHI),
            (_PHI, 0, -1), (_PHI, 0, 1), (-_PHI, 0, -1), (-_PHI, 0, 1),
        ],
        dtype=np.float64,
    )  # fmt: skip
    vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
    return vertices, np.array(_ICOSAHEDRON_FACES, dtype=np.int64)


def _edge_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """One int64 key per undirected vertex pair."""
    return np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)


def refine(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split every triangle in four at its edge midpoints, projected to the unit sphere.

    The new vertices are appended after the old ones (one per shared edge, ordered by
    sorted vertex pair); the faces keep their orientation.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    n = vertices.shape[0]
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    keys = _edge_keys(np.concatenate([a, b, c]), np.concatenate([b, c, a]), n)
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    first, second = np.divmod(unique_keys, n)
    midpoints = vertices[first] + vertices[second]
    midpoints /= np.linalg.norm(midpoints, axis=1, keepdims=True)
    m_ab, m_bc, m_ca = (n + inverse.reshape(3, -1)).astype(np.int64)
    new_faces = np.concatenate(
        [
            np.stack([a, m_ab, m_ca], axis=1),
            np.stack([b, m_bc, m_ab], axis=1),
            np.stack([c, m_ca, m_bc], axis=1),
            np.stack([m_ab, m_bc, m_ca], axis=1),
        ]
    )
    return np.concatenate([vertices, midpoints]), new_faces


def icosahedral_levels(level: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(vertices, faces)`` of the refined icosahedron for levels 0 .. ``level``."""
    _check_level(level, "level")
    levels = [icosahedron()]
    for _ in range(level):
        levels.append(refine(*levels[-1]))
    return levels


def level_size(level: int) -> int:
    """Number of vertices of the level-``level`` icosahedral mesh: 10 * 4**level + 2."""
    return 10 * 4**level + 2


def face_edges(faces: np.ndarray) -> np.ndarray:
    """Undirected edges (2, E) of a triangle mesh, each once with source < target."""
    faces = np.asarray(faces, dtype=np.int64)
    n = int(faces.max()) + 1 if faces.size else 0
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    keys = np.unique(_edge_keys(np.concatenate([a, b, c]), np.concatenate([b, c, a]), n))
    return np.stack(np.divmod(keys, n)).astype(np.int64)


def _check_level(level: int, name: str) -> None:
    if int(level) != level or level < 0:
        raise WorkbenchError(f"{name} must be an integer >= 0, got {level!r}")
    if level > 9:
        raise WorkbenchError(f"{name}={level} gives {level_size(level):,} nodes; use 9 or less")


def _node_levels(n: int) -> np.ndarray:
    """Level each vertex of a nested icosahedral mesh of ``n`` vertices first appears on."""
    bounds = [level_size(r) for r in range(12)]
    return np.searchsorted(bounds, np.arange(n), side="right").astype(np.int64)


def _both_directions(undirected: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges in both directions, deduplicated (first occurrence wins), no self loops."""
    edges = np.concatenate([undirected, undirected[::-1]], axis=1)
    levels = np.concatenate([levels, levels])
    keep = edges[0] != edges[1]
    edges, levels = edges[:, keep], levels[keep]
    n = int(edges.max()) + 1 if edges.size else 0
    _, first = np.unique(edges[0] * n + edges[1], return_index=True)
    first.sort()
    return edges[:, first].astype(np.int64), levels[first].astype(np.int64)


def _multiscale(levels: list[tuple[np.ndarray, np.ndarray]], included: range) -> Mesh:
    """Finest level's nodes with the triangle edges of the ``included`` levels."""
    vertices = levels[-1][0]
    parts = [face_edges(levels[r][1]) for r in included]
    edge_level = np.concatenate(
        [np.full(p.shape[1], r) for p, r in zip(parts, included, strict=True)]
    )
    edges, edge_level = _both_directions(np.concatenate(parts, axis=1), edge_level)
    return Mesh(vertices, edges, edge_level, _node_levels(vertices.shape[0]))


def multimesh(level: int, min_level: int = 0) -> Mesh:
    """GraphCast's multi-mesh: level ``level`` nodes, edges of levels ``min_level`` .. ``level``."""
    _check_level(level, "level")
    if not 0 <= min_level <= level:
        raise WorkbenchError(f"min_level={min_level} must be between 0 and level={level}")
    return _multiscale(icosahedral_levels(level), range(min_level, level + 1))


def trimesh_edges(level: int) -> Mesh:
    """A flat mesh: level ``level`` nodes with only that level's triangle edges."""
    return multimesh(level, min_level=level)


def stretched_mesh(
    global_level: int, lam_level: int, lam_xyz: np.ndarray, margin_radius_km: float
) -> Mesh:
    """anemoi-graphs' stretched icosahedron: finer levels only near a limited area.

    Vertices up to ``global_level`` are all kept; those first appearing on levels
    ``global_level + 1`` .. ``lam_level`` are kept when within ``margin_radius_km``
    (great circle) of a point of ``lam_xyz``. Each level's triangle edges whose two
    endpoints are kept are added, both directions. Nodes keep their nested order.
    """
    _check_level(global_level, "global_level")
    _check_level(lam_level, "lam_level")
    if lam_level < global_level:
        raise WorkbenchError(f"lam_level={lam_level} must be >= global_level={global_level}")
    lam_xyz = np.asarray(lam_xyz, dtype=np.float64)
    if lam_xyz.ndim != 2 or lam_xyz.shape[1] != 3 or lam_xyz.shape[0] == 0:
        raise WorkbenchError(
            f"lam_xyz must be a non-empty (n, 3) array of unit vectors, got shape {lam_xyz.shape}"
        )
    if margin_radius_km < 0:
        raise WorkbenchError(f"margin_radius_km must be >= 0, got {margin_radius_km}")
    levels = icosahedral_levels(lam_level)
    vertices = levels[-1][0]
    node_level = _node_levels(vertices.shape[0])
    keep = node_level <= global_level
    candidates = np.flatnonzero(~keep)
    if candidates.size:
        keep[candidates] = within_km(vertices[candidates], lam_xyz, margin_radius_km)
    mesh = _multiscale(levels, range(lam_level + 1))
    return _subset(mesh, keep)


def limited_area_mesh(level: int, lam_xyz: np.ndarray, margin_radius_km: float) -> Mesh:
    """anemoi-graphs' LimitedAreaTriNodes: the level-``level`` vertices within
    ``margin_radius_km`` of a point of ``lam_xyz``, with every level's triangle edges among
    them (both directions). Nodes keep their nested order."""
    _check_level(level, "level")
    lam_xyz = np.asarray(lam_xyz, dtype=np.float64)
    if lam_xyz.ndim != 2 or lam_xyz.shape[1] != 3 or lam_xyz.shape[0] == 0:
        raise WorkbenchError(
            f"lam_xyz must be a non-empty (n, 3) array of unit vectors, got shape {lam_xyz.shape}"
        )
    levels = icosahedral_levels(level)
    keep = within_km(levels[-1][0], lam_xyz, margin_radius_km)
    if not keep.any():
        raise WorkbenchError(f"no level-{level} mesh node lies within {margin_radius_km} km of "
                             "the reference nodes: widen margin_radius_km")
    return _subset(_multiscale(levels, range(level + 1)), keep)


def hop_edges(mesh: Mesh, levels, x_hops: int = 1) -> np.ndarray:
    """anemoi-graphs' MultiScaleEdges on a mesh: for each level in ``levels``, every pair of
    nodes at most ``x_hops`` steps apart along that level's triangle edges (both directions,
    no self loops), the union over the levels, deduplicated. ``x_hops=1`` gives the mesh's own
    edges of those levels."""
    if int(x_hops) != x_hops or x_hops < 1:
        raise WorkbenchError(f"x_hops must be an integer >= 1, got {x_hops!r}")
    from scipy.sparse import coo_matrix

    n = mesh.size
    parts = []
    for level in sorted(set(int(v) for v in levels)):
        edges = mesh.edges[:, mesh.edge_level == level]
        if x_hops == 1 or edges.size == 0:
            parts.append(edges)
            continue
        step = coo_matrix((np.ones(edges.shape[1], np.int32), (edges[0], edges[1])),
                          shape=(n, n)).tocsr()
        reach = frontier = step
        for _ in range(int(x_hops) - 1):
            frontier = (frontier @ step).astype(bool).astype(np.int32)
            reach = (reach + frontier).astype(bool).astype(np.int32)
        reach = reach.tocoo()
        off = reach.row != reach.col
        parts.append(np.stack([reach.row[off], reach.col[off]]).astype(np.int64))
    if not parts:
        return np.zeros((2, 0), np.int64)
    edges = np.concatenate(parts, axis=1)
    keys = np.unique(edges[0] * n + edges[1])
    return np.stack(np.divmod(keys, n)).astype(np.int64)


def within_km(points: np.ndarray, targets: np.ndarray, radius_km: float) -> np.ndarray:
    """True for each point within ``radius_km`` (great circle) of any target point."""
    chord = float(km_to_chord(radius_km))
    distance, _ = cKDTree(targets).query(points, k=1, distance_upper_bound=chord * (1 + 1e-12))
    return np.isfinite(distance)


def _subset(mesh: Mesh, keep: np.ndarray) -> Mesh:
    """The kept nodes (order preserved, renumbered) and the edges among them."""
    new_index = np.cumsum(keep) - 1
    edge_kept = keep[mesh.edges[0]] & keep[mesh.edges[1]]
    return Mesh(
        mesh.xyz[keep],
        new_index[mesh.edges[:, edge_kept]].astype(np.int64),
        mesh.edge_level[edge_kept],
        mesh.node_level[keep],
    )


# --------------------------------------------------------------------------- grid meshes


def coarsened_grid_nodes(
    latitude: np.ndarray, longitude: np.ndarray, shape: tuple[int, int], factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Centre of every ``factor`` x ``factor`` block of a structured grid, row-major.

    Leftover rows/columns at the end are dropped (``ny // factor`` x ``nx // factor``
    nodes). For an even ``factor`` the centre is the spherical midpoint of the block's
    four central points.
    """
    ny, nx = (int(v) for v in shape)
    latitude = np.asarray(latitude, dtype=np.float64)
    longitude = np.asarray(longitude, dtype=np.float64)
    if latitude.size != ny * nx or longitude.size != ny * nx:
        raise WorkbenchError(
            f"grid shape {ny}x{nx} needs {ny * nx} points, got {latitude.size} latitudes "
            f"and {longitude.size} longitudes"
        )
    if int(factor) != factor or not 1 <= factor <= min(ny, nx):
        raise WorkbenchError(f"factor={factor!r} must be an integer between 1 and {min(ny, nx)}")
    xyz = unit_xyz(latitude, longitude).reshape(ny, nx, 3)
    lo, hi = (factor - 1) // 2, factor // 2
    rows = np.arange(ny // factor) * factor
    cols = np.arange(nx // factor) * factor
    centre = sum(
        xyz[rows[:, None] + dj, cols[None, :] + di]
        for dj in sorted({lo, hi})
        for di in sorted({lo, hi})
    ).reshape(-1, 3)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    lat = np.rad2deg(np.arcsin(np.clip(centre[:, 2], -1.0, 1.0)))
    lon = wrap_longitude(np.rad2deg(np.arctan2(centre[:, 1], centre[:, 0])))
    return lat, lon


def mesh_edges_knn(xyz: np.ndarray, k: int) -> np.ndarray:
    """Edges (2, E) joining each node to its ``k`` nearest others, both directions, deduplicated."""
    xyz = np.asarray(xyz, dtype=np.float64)
    n = xyz.shape[0]
    if int(k) != k or not 1 <= k < n:
        raise WorkbenchError(f"k={k!r} must be an integer between 1 and {n - 1} (nodes - 1)")
    _, neighbours = cKDTree(xyz).query(xyz, k=k + 1)
    own = np.arange(n)[:, None]
    not_self = neighbours != own
    # rows where the node itself was not returned (duplicate points): drop the farthest
    not_self[not_self.all(axis=1), -1] = False
    source = neighbours[not_self]
    target = np.broadcast_to(own, neighbours.shape)[not_self]
    keys = np.unique(np.concatenate([source * n + target, target * n + source]))
    return np.stack(np.divmod(keys, n)).astype(np.int64)
