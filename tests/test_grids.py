"""Grid geometry against known answers and independent implementations (pyproj.Geod)."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod, Proj

from workbench import grids
from workbench.errors import WorkbenchError

SPHERE = Geod(a=grids.EARTH_RADIUS_KM * 1000, b=grids.EARTH_RADIUS_KM * 1000)
SPHERE_AREA_KM2 = 4 * np.pi * grids.EARTH_RADIUS_KM**2


def test_regular_latlon_sizes_and_published_shapes():
    assert grids.regular_latlon(1.0).shape == (181, 360)
    assert grids.regular_latlon(0.25).shape == (721, 1440)  # ERA5 / GFS 0.25 deg
    g = grids.regular_latlon(2.5)
    assert g.size == 73 * 144
    assert g.latitude[0] == 90 and g.latitude[-1] == -90
    assert g.longitude.min() >= -180 and g.longitude.max() < 180


def test_hrrr_grid_matches_published_corners():
    g = grids.hrrr()
    assert g.shape == (1059, 1799)
    # NCEP's HRRR grid: first point 21.138N 122.720W, last point 47.842N 60.917W
    assert (g.latitude[0], g.longitude[0]) == pytest.approx((21.138123, -122.719528), abs=1e-5)
    assert (g.latitude[-1], g.longitude[-1]) == pytest.approx((47.8422, -60.9172), abs=1e-3)
    lat, lon = g.latitude.reshape(g.shape), g.longitude.reshape(g.shape)
    spacing = grids.great_circle_km(lat[::50, :-1], lon[::50, :-1], lat[::50, 1:], lon[::50, 1:])
    # 3 km on the projection plane; the map scale factor stays within 5 % over the domain
    assert np.all(np.abs(spacing - 3.0) < 0.15)
    assert np.abs(np.median(spacing) - 3.0) < 0.03


def test_coarsen_keeps_block_centres():
    fine, coarse = grids.hrrr(1), grids.hrrr(5)
    assert coarse.shape == (211, 359)
    nx = fine.shape[1]
    assert coarse.latitude[0] == pytest.approx(fine.latitude[2 * nx + 2], abs=1e-9)
    assert coarse.longitude[1] == pytest.approx(fine.longitude[2 * nx + 7], abs=1e-9)


def test_great_circle_against_geod():
    rng = np.random.default_rng(1)
    lat1, lat2 = rng.uniform(-90, 90, (2, 200))
    lon1, lon2 = rng.uniform(-180, 180, (2, 200))
    _, _, dist_m = SPHERE.inv(lon1, lat1, lon2, lat2)
    np.testing.assert_allclose(grids.great_circle_km(lat1, lon1, lat2, lon2), dist_m / 1000,
                               rtol=1e-9, atol=1e-6)
    assert grids.great_circle_km(0, 0, 0, 1) == pytest.approx(111.195, abs=1e-3)


def test_unit_xyz_and_chords():
    xyz = grids.unit_xyz(np.array([0, 90, -45]), np.array([0, 0, 135]))
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=1), 1.0)
    np.testing.assert_allclose(xyz[1], [0, 0, 1], atol=1e-12)
    km = np.array([1.0, 500.0, 10000.0])
    np.testing.assert_allclose(grids.chord_to_km(grids.km_to_chord(km)), km, rtol=1e-12)


def test_global_area_weights_sum_to_sphere():
    for res in (2.5, 1.0):
        weights = grids.area_weights(grids.regular_latlon(res))
        assert weights.sum() == pytest.approx(SPHERE_AREA_KM2, rel=1e-10)
        assert np.all(weights > 0)


def test_point_set_area_weights_sum_to_sphere():
    n = 2000
    k = np.arange(n) + 0.5
    lat = np.rad2deg(np.arcsin(1 - 2 * k / n))
    lon = np.rad2deg(np.pi * (1 + 5**0.5) * k) % 360 - 180
    weights = grids.area_weights(grids.Grid("fib", lat, lon))
    assert weights.sum() == pytest.approx(SPHERE_AREA_KM2, rel=1e-9)
    assert weights.std() / weights.mean() < 0.05  # a Fibonacci sphere is near-uniform


@pytest.mark.parametrize("grid", [grids.hrrr(15), grids.europe(15), grids.hrrr(5)],
                         ids=["conus45", "europe45", "conus15"])
def test_lam_area_weights_sum_to_domain_area(grid):
    """Independent check: the spherical area of the polygon around the outer cell edges."""
    dx = grid.x[1] - grid.x[0]
    x0, x1 = grid.x[0] - dx / 2, grid.x[-1] + dx / 2
    y0, y1 = grid.y[0] - dx / 2, grid.y[-1] + dx / 2
    n = 400
    xs = np.concatenate([np.linspace(x0, x1, n), np.full(n, x1), np.linspace(x1, x0, n),
                         np.full(n, x0)])
    ys = np.concatenate([np.full(n, y0), np.linspace(y0, y1, n), np.full(n, y1),
                         np.linspace(y1, y0, n)])
    lon, lat = Proj(grid.crs)(xs, ys, inverse=True)
    area_m2, _ = SPHERE.polygon_area_perimeter(lon, lat)
    assert grids.area_weights(grid).sum() == pytest.approx(abs(area_m2) / 1e6, rel=0.01)


def test_boundary_mask_and_distance():
    g = grids.hrrr(15)
    ny, nx = g.shape
    for width in (1, 3):
        assert grids.boundary_mask(g, width).sum() == ny * nx - (ny - 2 * width) * (nx - 2 * width)
    dist = grids.boundary_distance_cells(g)
    np.testing.assert_array_equal(dist == 0, grids.boundary_mask(g, 1))
    assert dist.max() == (min(ny, nx) - 1) // 2


def test_trim_sides_and_index():
    g = grids.hrrr(15)
    ny, nx = g.shape
    trimmed, index = grids.trim(g, (1, 2, 3, 4))  # south, north, west, east
    assert trimmed.shape == (ny - 3, nx - 7)
    np.testing.assert_array_equal(trimmed.latitude, g.latitude[index])
    lat2 = g.latitude.reshape(ny, nx)
    assert trimmed.latitude[0] == lat2[1, 3]  # first kept row is the 2nd from the south
    assert trimmed.latitude[-1] == lat2[ny - 3, nx - 5]
    same, _ = grids.trim(g, 5)
    assert same.shape == (ny - 10, nx - 10)
    # regular lat-lon rows run north to south: "south" trims the last rows
    glob, gindex = grids.trim(grids.regular_latlon(10), (2, 0, 0, 0))
    assert glob.latitude.min() == -70 and glob.latitude.max() == 90


def test_trim_errors():
    g = grids.hrrr(30)
    with pytest.raises(WorkbenchError, match="removes the whole"):
        grids.trim(g, (g.shape[0] + 1) // 2)
    with pytest.raises(WorkbenchError, match="4 values"):
        grids.trim(g, (1, 2))
    with pytest.raises(WorkbenchError, match=">= 0"):
        grids.trim(g, -1)
    with pytest.raises(WorkbenchError, match="structured"):
        grids.trim(grids.Grid("pts", np.zeros(3), np.zeros(3)), 1)


def test_outline_is_closed_ring_of_boundary_points():
    g = grids.europe(30)
    lat, lon = grids.outline(g)
    ny, nx = g.shape
    assert lat.size == 2 * (ny + nx) - 4 + 1  # every ring point once, plus the closing point
    assert (lat[0], lon[0]) == (lat[-1], lon[-1])
    ring = set(zip(g.latitude[grids.boundary_mask(g)], g.longitude[grids.boundary_mask(g)],
                   strict=True))
    assert set(zip(lat, lon, strict=True)) == ring


def test_make_grid_errors():
    with pytest.raises(WorkbenchError, match="unknown grid"):
        grids.make_grid("mars")
    with pytest.raises(WorkbenchError, match="divide 180"):
        grids.regular_latlon(7)


# ---------------------------------------------------------------- grids as sources write them


def latlon(lat, lon, name="g") -> grids.Grid:
    """The grid of 1-D axes as a reader sees them (row-major points, axes detected)."""
    lat2, lon2 = np.meshgrid(np.asarray(lat, float), np.asarray(lon, float), indexing="ij")
    return grids.grid_from_points(name, lat2, lon2, lat2.shape)


@pytest.mark.parametrize("order", [1, -1], ids=["ascending", "descending"])
def test_area_weights_with_pole_rows_by_hand(order):
    """Rows at 90, 30, -30, -90 deg (pole rows of 6 identical points), 6 columns: cell edges
    at the midpoints, 60 and 0 deg, caps at the poles. By hand, per point: R^2 (2 pi / 6)
    (sin 90 - sin 60) on a pole row and R^2 (2 pi / 6) (sin 60 - sin 0) on the others."""
    g = latlon([90, 30, -30, -90][::-order], np.arange(0, 360, 60.0))
    assert g.kind == "regular_latlon" and g.shape == (4, 6)
    r2 = grids.EARTH_RADIUS_KM**2
    cap, band = r2 * np.pi / 3 * (1 - np.sqrt(3) / 2), r2 * np.pi / 3 * (np.sqrt(3) / 2)
    expected = np.repeat([cap, band, band, cap], 6)
    np.testing.assert_allclose(grids.area_weights(g), expected, rtol=1e-12)
    assert grids.area_weights(g).sum() == pytest.approx(SPHERE_AREA_KM2, rel=1e-12)


@pytest.mark.parametrize("lon", [np.arange(0, 360, 5.625), np.arange(-180, 180, 5.625),
                                 np.arange(0, 360.1, 5.625)],
                         ids=["0..360", "-180..180", "meridian-repeated"])
def test_global_grids_without_poles_sum_to_sphere(lon):
    """WB2's 64 x 32 equiangular grid (no pole rows), longitudes either way or with the first
    meridian repeated at 360: the sphere, each point by latitude band alone."""
    lat = -90 + 5.625 * (np.arange(32) + 0.5)
    g = latlon(lat, lon)
    weights = grids.area_weights(g)
    assert weights.sum() == pytest.approx(SPHERE_AREA_KM2, rel=1e-12)
    assert grids.covers_globe(g)
    if lon.size == 64:
        row = weights.reshape(32, 64)
        np.testing.assert_allclose(row, row[:, :1] * np.ones(64), rtol=1e-12)


@pytest.mark.parametrize("lon", [np.arange(-20, 41, 2.0), np.arange(340, 401, 2.0) % 360,
                                 np.arange(160, 221, 2.0)],
                         ids=["europe", "europe-0..360", "across-dateline"])
@pytest.mark.parametrize("order", [1, -1], ids=["ascending", "descending"])
def test_regional_latlon_area_against_pyproj(lon, order):
    """A lat-lon extract (not 2 pi / nx per column): the box half a cell beyond its outer
    points, against pyproj's geodesic area of that box (dense parallels)."""
    lat = np.arange(30, 71, 2.0)[::order]
    g = latlon(lat, lon)
    assert g.kind == "regular_latlon" and not grids.covers_globe(g)
    x0 = grids.continuous_longitude(lon)[0] - 1
    edges = np.linspace(x0, x0 + 62, 2000)
    area, _ = SPHERE.polygon_area_perimeter(
        np.concatenate([edges, edges[::-1]]), np.concatenate([np.full(2000, 29.0),
                                                              np.full(2000, 71.0)]))
    assert grids.area_weights(g).sum() == pytest.approx(abs(area) / 1e6, rel=1e-4)


def test_trim_and_boundary_either_row_order():
    """(south, north, west, east) trims the same points whichever way rows and columns run."""
    lat, lon = np.arange(30, 51, 2.0), np.arange(-20, 21, 2.0)
    kept = []
    for lat_order, lon_order in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
        g = latlon(lat[::lat_order], lon[::lon_order])
        trimmed, index = grids.trim(g, (1, 2, 3, 0))
        assert trimmed.shape == (11 - 3, 21 - 3)
        assert trimmed.latitude.min() == 32 and trimmed.latitude.max() == 46
        assert grids.wrap_longitude(trimmed.longitude).min() == -14
        assert grids.wrap_longitude(trimmed.longitude).max() == 20
        np.testing.assert_allclose(grids.area_weights(trimmed), grids.area_weights(g)[index])
        kept.append(set(zip(trimmed.latitude, trimmed.longitude, strict=True)))
        assert grids.boundary_mask(g, 2).sum() == 11 * 21 - 7 * 17
    assert all(k == kept[0] for k in kept)


def test_cutout_of_a_latlon_lam_into_a_global_grid():
    """A lat-lon LAM (2 deg, 30..50N, 20W..20E) cut into the 10 deg global grid: the global
    points inside its box, half a cell beyond its outer points, go (by hand: latitudes 30,
    40, 50 times longitudes -20, -10, 0, 10, 20 = 15 points); the LAM's own areas travel."""
    lam = latlon(np.arange(30, 51, 2.0), np.arange(-20, 21, 2.0), "lam")
    glob = grids.regular_latlon(10)
    combined = grids.cutout([("lam", lam, 0), ("global", glob, 0)])
    assert combined.cutout_mask.sum() == lam.size
    assert (~combined.cutout_mask).sum() == glob.size - 15
    np.testing.assert_allclose(combined.area_weight[:lam.size], grids.area_weights(lam))
    trimmed = grids.cutout([("lam", lam, 2), ("global", glob, 0)])
    assert trimmed.cutout_mask.sum() == 7 * 17
    assert (~trimmed.cutout_mask).sum() == glob.size - 3  # 40N at -10, 0, 10 only
    assert trimmed.lam_edge_cells.max() == 3


def test_grid_from_points_kinds():
    """Lat-lon axes are found from the points; a projected grid's axes through its CRS; points
    without axes stay a structured point set; no shape, a point set."""
    g = grids.lambert_conformal("p", lat_0=40, lon_0=-100, nx=12, ny=9, dx_m=50_000)
    ny, nx = g.shape
    proj = grids.grid_from_points("p", g.latitude, g.longitude, g.shape, g.crs)
    assert proj.kind == "projected" and proj.spacing_km == pytest.approx(50.0)
    np.testing.assert_allclose(proj.x, g.x, atol=1e-3)
    np.testing.assert_allclose(grids.area_weights(proj), grids.area_weights(g), rtol=1e-9)
    bare = grids.grid_from_points("p", g.latitude, g.longitude, g.shape)
    assert bare.kind == "projected" and bare.x is None
    assert bare.spacing_km == pytest.approx(50.0, rel=0.02)  # great circles between neighbours
    shuffled = grids.grid_from_points("s", np.roll(g.latitude, 1), g.longitude, (ny, nx))
    assert shuffled.kind == "projected" and shuffled.x is None
    assert grids.grid_from_points("q", g.latitude, g.longitude).kind == "points"
    glob = grids.regular_latlon(10)
    again = grids.grid_from_points("g", glob.latitude, glob.longitude + 360 * (glob.longitude < 0),
                                   glob.shape)
    np.testing.assert_array_equal(again.x, glob.x)
    np.testing.assert_array_equal(again.y, glob.y)
