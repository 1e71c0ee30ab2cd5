"""Icosahedral and grid meshes against known answers and explicit (slow) implementations."""

from __future__ import annotations

import time

import numpy as np
import pytest

from workbench import grids, meshes
from workbench.errors import WorkbenchError

ICOSAHEDRON_EDGE_DEG = np.rad2deg(np.arctan(2.0))  # 63.435 deg between neighbouring vertices
ICOSAHEDRON_EDGE_KM = np.deg2rad(ICOSAHEDRON_EDGE_DEG) * grids.EARTH_RADIUS_KM  # 7053.6 km


def undirected(edges: np.ndarray) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in edges.T.tolist()}


def assert_valid_directed(edges: np.ndarray, n: int) -> None:
    """int64 (2, E), indices in range, no self loops, no duplicates, every reverse present."""
    assert edges.dtype == np.int64 and edges.shape[0] == 2
    assert edges.min() >= 0 and edges.max() < n
    assert np.all(edges[0] != edges[1])
    pairs = set(map(tuple, edges.T.tolist()))
    assert len(pairs) == edges.shape[1]
    assert pairs == {(b, a) for a, b in pairs}


def latlon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.rad2deg(np.arcsin(xyz[:, 2])), np.rad2deg(np.arctan2(xyz[:, 1], xyz[:, 0]))


def outward_normals_point_out(vertices: np.ndarray, faces: np.ndarray) -> bool:
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return bool(np.all(np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) > 0))


def refine_with_dict(vertices: np.ndarray, faces: np.ndarray):
    """The textbook loop: one midpoint per edge, looked up by its sorted vertex pair."""
    vertices = [tuple(v) for v in vertices]
    midpoint: dict[tuple[int, int], int] = {}

    def middle(i: int, j: int) -> int:
        key = (min(i, j), max(i, j))
        if key not in midpoint:
            m = np.add(vertices[i], vertices[j])
            vertices.append(tuple(m / np.linalg.norm(m)))
            midpoint[key] = len(vertices) - 1
        return midpoint[key]

    new_faces = []
    for a, b, c in faces.tolist():
        ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
        new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
    return np.array(vertices), np.array(new_faces)


def face_set(vertices: np.ndarray, faces: np.ndarray) -> set[frozenset]:
    rounded = [tuple(v) for v in np.round(vertices, 12).tolist()]
    return {frozenset(rounded[i] for i in f) for f in faces.tolist()}


@pytest.fixture(scope="module")
def levels6():
    return meshes.icosahedral_levels(6)


@pytest.fixture(scope="module")
def conus_xyz():
    g = grids.hrrr(30)
    return grids.unit_xyz(g.latitude, g.longitude)


# --------------------------------------------------------------------------- icosahedra


def test_icosahedron_is_regular_and_oriented():
    vertices, faces = meshes.icosahedron()
    assert vertices.shape == (12, 3) and faces.shape == (20, 3)
    assert np.allclose(np.linalg.norm(vertices, axis=1), 1.0)
    assert outward_normals_point_out(vertices, faces)
    edges = meshes.face_edges(faces)
    assert edges.shape == (2, 30)
    angle = np.rad2deg(np.arccos(np.einsum("ij,ij->i", vertices[edges[0]], vertices[edges[1]])))
    assert angle == pytest.approx(np.full(30, ICOSAHEDRON_EDGE_DEG), abs=1e-9)
    assert ICOSAHEDRON_EDGE_DEG == pytest.approx(63.435, abs=1e-3)


def test_level_sizes_euler_and_nesting(levels6):
    for r, (vertices, faces) in enumerate(levels6):
        n_edges = meshes.face_edges(faces).shape[1]
        assert vertices.shape == (10 * 4**r + 2, 3) == (meshes.level_size(r), 3)
        assert faces.shape == (20 * 4**r, 3)
        assert n_edges == 30 * 4**r
        assert vertices.shape[0] - n_edges + faces.shape[0] == 2  # Euler, a sphere
        assert np.allclose(np.linalg.norm(vertices, axis=1), 1.0, atol=1e-14)
        assert outward_normals_point_out(vertices, faces)
        if r:
            previous = levels6[r - 1][0]
            assert np.array_equal(vertices[: previous.shape[0]], previous)


def test_refine_matches_the_dict_loop(levels6):
    vertices, faces = levels6[2]
    expected = refine_with_dict(vertices, faces)
    got = meshes.refine(vertices, faces)
    assert got[0].shape == expected[0].shape
    assert np.array_equal(got[0][: vertices.shape[0]], vertices)
    assert face_set(*got) == face_set(*expected)


def test_level_seven_is_fast():
    start = time.perf_counter()
    vertices, faces = meshes.icosahedral_levels(7)[-1]
    assert time.perf_counter() - start < 3.0
    assert vertices.shape[0] == 163_842 and faces.shape[0] == 20 * 4**7


def test_bad_levels_raise():
    for bad in (-1, 1.5):
        with pytest.raises(WorkbenchError, match="level"):
            meshes.multimesh(bad)
    with pytest.raises(WorkbenchError, match="min_level"):
        meshes.multimesh(2, min_level=3)


# --------------------------------------------------------------------------- multimesh


def test_multimesh_counts_symmetry_and_degrees():
    level = 4
    mesh = meshes.multimesh(level)
    assert mesh.size == 10 * 4**level + 2
    assert mesh.num_edges == sum(2 * 30 * 4**r for r in range(level + 1))
    assert_valid_directed(mesh.edges, mesh.size)
    assert mesh.edge_level.shape == (mesh.num_edges,)
    assert np.bincount(mesh.node_level).tolist() == [12] + [30 * 4 ** (r - 1) for r in range(1, 5)]
    in_degree = np.bincount(mesh.edges[1], minlength=mesh.size)
    out_degree = np.bincount(mesh.edges[0], minlength=mesh.size)
    assert np.array_equal(in_degree, out_degree)
    assert np.all(in_degree[:12] == 5 * (level + 1))  # 5 neighbours on every level
    levels_present = level + 1 - mesh.node_level[12:]
    assert np.array_equal(in_degree[12:], 6 * levels_present)


def test_multimesh_levels_are_the_level_meshes(levels6):
    mesh = meshes.multimesh(3, min_level=1)
    assert np.array_equal(mesh.xyz, levels6[3][0])
    assert set(np.unique(mesh.edge_level)) == {1, 2, 3}
    for r in (1, 2, 3):
        expected = undirected(meshes.face_edges(levels6[r][1]))
        assert undirected(mesh.edges[:, mesh.edge_level == r]) == expected


def test_edge_lengths_halve_with_each_level():
    mesh = meshes.multimesh(5)
    length = mesh.edge_length_km()
    assert length[mesh.edge_level == 0] == pytest.approx(ICOSAHEDRON_EDGE_KM, rel=1e-9)
    assert ICOSAHEDRON_EDGE_KM == pytest.approx(7053.6, abs=0.1)
    for r in range(1, 6):
        ratio = length[mesh.edge_level == r] / (ICOSAHEDRON_EDGE_KM / 2**r)
        # the edges along the icosahedron's own arcs are exact halvings; the rest are longer
        assert ratio.min() == pytest.approx(1.0, abs=1e-9)
        assert ratio.max() < 1.2
        assert 1.0 < ratio.mean() < 1.1


def test_trimesh_has_only_the_finest_level(levels6):
    mesh = meshes.trimesh_edges(3)
    assert mesh.size == 642 and mesh.num_edges == 2 * 30 * 4**3
    assert np.all(mesh.edge_level == 3)
    assert_valid_directed(mesh.edges, mesh.size)
    degree = np.bincount(mesh.edges[1], minlength=mesh.size)
    assert np.all(degree[:12] == 5) and np.all(degree[12:] == 6)
    assert undirected(mesh.edges) == undirected(meshes.face_edges(levels6[3][1]))


def test_latitude_longitude_round_trip():
    mesh = meshes.multimesh(2)
    lat, lon = mesh.latitude, mesh.longitude
    assert lat.min() >= -90 and lat.max() <= 90 and lon.min() >= -180 and lon.max() < 180
    assert np.allclose(grids.unit_xyz(lat, lon), mesh.xyz, atol=1e-12)


# --------------------------------------------------------------------------- stretched


def test_stretched_mesh_refines_only_near_the_lam(conus_xyz):
    global_level, lam_level, margin = 3, 5, 200.0
    mesh = meshes.stretched_mesh(global_level, lam_level, conus_xyz, margin)
    full = meshes.icosahedral_levels(lam_level)[-1][0]
    assert np.array_equal(mesh.xyz[:642], full[:642])  # every level <= 3 vertex kept, in order
    assert np.all(mesh.node_level[:642] <= global_level)
    assert np.all(mesh.node_level[642:] > global_level)
    assert_valid_directed(mesh.edges, mesh.size)

    # independent check on a subsample of level 4-5 vertices: brute-force great circles
    candidates = np.arange(642, full.shape[0])
    sample = np.random.default_rng(0).choice(candidates, 400, replace=False)
    lam_lat, lam_lon = latlon(conus_xyz)
    s_lat, s_lon = latlon(full[sample])
    nearest = grids.great_circle_km(s_lat[:, None], s_lon[:, None], lam_lat, lam_lon).min(axis=1)
    kept = {tuple(v) for v in mesh.xyz[642:].tolist()}
    is_kept = np.array([tuple(full[i].tolist()) in kept for i in sample])
    assert np.array_equal(is_kept, nearest <= margin)
    assert is_kept.sum() > 10  # the sample reaches into the LAM

    # density: the LAM (~8e6 km^2 of ~5.1e8) holds the finer nodes, none elsewhere
    fine = mesh.xyz[mesh.node_level > global_level]
    assert fine.shape[0] > 5 * 642 * 8e6 / 5.1e8
    assert np.all(meshes.within_km(fine, conus_xyz, margin + 1e-6))


def test_stretched_edges_are_level_edges_among_kept_nodes(conus_xyz):
    mesh = meshes.stretched_mesh(2, 4, conus_xyz, 300.0)
    levels = meshes.icosahedral_levels(4)
    full = levels[-1][0]
    index = {tuple(v): i for i, v in enumerate(full.tolist())}
    original = np.array([index[tuple(v)] for v in mesh.xyz.tolist()])
    kept = set(original.tolist())
    for r in range(5):
        expected = {
            (a, b)
            for a, b in undirected(meshes.face_edges(levels[r][1]))
            if a in kept and b in kept
        }
        got = undirected(original[mesh.edges[:, mesh.edge_level == r]])
        assert got == expected


def test_stretched_equal_levels_is_the_global_multimesh(conus_xyz):
    mesh = meshes.stretched_mesh(3, 3, conus_xyz, 100.0)
    reference = meshes.multimesh(3)
    assert np.array_equal(mesh.xyz, reference.xyz)
    assert np.array_equal(mesh.edges, reference.edges)


def test_stretched_bad_input_raises(conus_xyz):
    with pytest.raises(WorkbenchError, match="lam_level"):
        meshes.stretched_mesh(4, 3, conus_xyz, 100.0)
    with pytest.raises(WorkbenchError, match="lam_xyz"):
        meshes.stretched_mesh(2, 3, np.empty((0, 3)), 100.0)


# --------------------------------------------------------------------------- grid meshes


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_coarsened_grid_nodes_match_a_loop(factor):
    ny, nx = 7, 10
    lat1, lon1 = np.linspace(30, 42, ny), np.linspace(170, 188, nx)  # crosses the dateline
    lat, lon = (v.ravel() for v in np.meshgrid(lat1, lon1, indexing="ij"))
    got_lat, got_lon = meshes.coarsened_grid_nodes(lat, lon, (ny, nx), factor)
    xyz = grids.unit_xyz(lat, lon).reshape(ny, nx, 3)
    centre = []
    for j in range(ny // factor):
        for i in range(nx // factor):
            rows = {j * factor + (factor - 1) // 2, j * factor + factor // 2}
            cols = {i * factor + (factor - 1) // 2, i * factor + factor // 2}
            v = sum(xyz[r, c] for r in rows for c in cols)
            centre.append(v / np.linalg.norm(v))
    assert got_lat.shape == ((ny // factor) * (nx // factor),)
    assert np.allclose(grids.unit_xyz(got_lat, got_lon), np.array(centre), atol=1e-12)
    assert got_lon.min() >= -180 and got_lon.max() < 180
    if factor == 3:  # odd blocks: the centre is the middle grid point itself
        assert got_lat[0] == pytest.approx(lat1[1]) and got_lon[1] == pytest.approx(lon1[4])


def test_coarsened_grid_nodes_errors():
    lat, lon = np.zeros(12), np.zeros(12)
    for factor in (0, 4, 2.5):
        with pytest.raises(WorkbenchError, match="factor"):
            meshes.coarsened_grid_nodes(lat, lon, (3, 4), factor)
    with pytest.raises(WorkbenchError, match="shape"):
        meshes.coarsened_grid_nodes(lat, lon, (3, 5), 1)


def test_knn_mesh_against_brute_force():
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(60, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    k = 4
    edges = meshes.mesh_edges_knn(xyz, k)
    assert_valid_directed(edges, 60)
    distance = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :k]
    expected = {(int(j), i) for i in range(60) for j in nearest[i]}
    expected |= {(b, a) for a, b in expected}
    assert set(map(tuple, edges.T.tolist())) == expected


def test_knn_mesh_duplicates_and_errors():
    xyz = grids.unit_xyz([0, 0, 0, 10], [0, 0, 20, 0])  # points 0 and 1 coincide
    edges = meshes.mesh_edges_knn(xyz, 1)
    assert_valid_directed(edges, 4)
    assert (0, 1) in set(map(tuple, edges.T.tolist()))
    for k in (0, 4):
        with pytest.raises(WorkbenchError, match="k="):
            meshes.mesh_edges_knn(xyz, k)
