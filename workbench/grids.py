"""Grid geometry: coordinates, projections, area weights, boundaries, trimming.

A :class:`Grid` is a flat list of points (``latitude``/``longitude`` in degrees) with,
for structured grids, the 2-D ``shape`` (ny, nx) in row-major order, rows in the source's
own order (north to south as GFS/ERA5 store lat-lon grids, south to north as WeatherBench 2's
1.5 degree grids and projected grids): every function here reads the order from the points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import WorkbenchError

EARTH_RADIUS_KM = 6371.0
HRRR_RADIUS_M = 6371229.0
LONLAT_CRS = "+proj=longlat +R=6371000 +no_defs"


@dataclass(frozen=True, eq=False)
class Grid:
    """Points of one domain; ``shape``/``crs``/``x``/``y`` are set for structured grids."""

    name: str
    latitude: np.ndarray
    longitude: np.ndarray
    kind: str = "points"  # "regular_latlon" | "lambert_conformal" | "projected" | "points"
    shape: tuple[int, int] | None = None
    crs: str | None = None
    # 1-D axes, len nx and ny: projected x/y in m; for regular_latlon the longitudes of the
    # columns (continuous, see continuous_longitude) and the latitudes of the rows, in degrees
    x: np.ndarray | None = field(default=None, repr=False)
    y: np.ndarray | None = field(default=None, repr=False)
    spacing_km: float | None = None

    @property
    def size(self) -> int:
        return int(self.latitude.size)

    def __repr__(self) -> str:
        shape = f"{self.shape[0]}x{self.shape[1]}" if self.shape else f"{self.size} points"
        res = f", ~{self.spacing_km:g} km" if self.spacing_km else ""
        return f"Grid({self.name!r}, {self.kind}, {shape}{res})"


# --------------------------------------------------------------------------- spheres


def unit_xyz(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Unit-sphere Cartesian coordinates (n, 3) of points given in degrees."""
    lat = np.deg2rad(np.asarray(latitude, dtype=np.float64))
    lon = np.deg2rad(np.asarray(longitude, dtype=np.float64))
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def great_circle_km(lat1, lon1, lat2, lon2, radius_km: float = EARTH_RADIUS_KM) -> np.ndarray:
    """Great-circle distance in km (haversine, stable for small and large separations)."""
    p1, l1, p2, l2 = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return 2 * radius_km * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def chord_to_km(chord: np.ndarray, radius_km: float = EARTH_RADIUS_KM) -> np.ndarray:
    """Great-circle distance for a chord length measured on the unit sphere."""
    return 2 * radius_km * np.arcsin(np.clip(np.asarray(chord) / 2, 0.0, 1.0))


def km_to_chord(km: float | np.ndarray, radius_km: float = EARTH_RADIUS_KM) -> np.ndarray:
    """Unit-sphere chord length of a great-circle distance in km."""
    return 2 * np.sin(np.minimum(np.asarray(km) / (2 * radius_km), np.pi / 2))


def wrap_longitude(longitude: np.ndarray) -> np.ndarray:
    """Longitudes folded into [-180, 180)."""
    return (np.asarray(longitude, dtype=np.float64) + 180.0) % 360.0 - 180.0


def continuous_longitude(longitude: np.ndarray) -> np.ndarray:
    """Longitudes along an axis without jumps of 360 deg, from the first one as given
    (a 0..360 axis stays 0..360, a regional axis across the date line runs on past 180)."""
    lon = np.asarray(longitude, dtype=np.float64).ravel()
    if lon.size < 2:
        return lon.copy()
    return lon[0] + np.concatenate([[0.0], np.cumsum(wrap_longitude(np.diff(lon)))])


# --------------------------------------------------------------------------- grid makers


def regular_latlon(resolution_deg: float, name: str = "global") -> Grid:
    """Global regular grid, poles included, latitude north to south, longitude from 0 (as GFS)."""
    if resolution_deg <= 0 or 180.0 / resolution_deg % 1 > 1e-9:
        raise WorkbenchError(
            f"resolution_deg={resolution_deg} must divide 180 evenly (e.g. 0.25, 1, 2.5)"
        )
    ny = int(round(180.0 / resolution_deg)) + 1
    nx = int(round(360.0 / resolution_deg))
    lat = np.linspace(90.0, -90.0, ny)
    lon = np.arange(nx) * resolution_deg
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    return Grid(
        name=name,
        latitude=lat2.ravel(),
        longitude=wrap_longitude(lon2.ravel()),
        kind="regular_latlon",
        shape=(ny, nx),
        crs=LONLAT_CRS,
        x=lon,
        y=lat,
        spacing_km=float(np.deg2rad(resolution_deg) * EARTH_RADIUS_KM),
    )


def lambert_conformal(
    name: str,
    *,
    lat_0: float,
    lon_0: float,
    nx: int,
    ny: int,
    dx_m: float,
    lower_left: tuple[float, float] | None = None,
    radius_m: float = HRRR_RADIUS_M,
    coarsen: int = 1,
) -> Grid:
    """Tangent Lambert conformal grid (lat_1 = lat_2 = lat_0) on a sphere.

    ``lower_left`` is the (lat, lon) of the first point; without it the grid is centred
    on (lat_0, lon_0). ``coarsen`` keeps the centre of every ``coarsen`` x ``coarsen`` block.
    """
    from pyproj import Proj

    if coarsen < 1 or coarsen > min(nx, ny):
        raise WorkbenchError(f"coarsen={coarsen} must be between 1 and {min(nx, ny)}")
    crs = (
        f"+proj=lcc +lat_0={lat_0} +lon_0={lon_0} +lat_1={lat_0} +lat_2={lat_0} "
        f"+R={radius_m:.0f} +units=m +no_defs"
    )
    proj = Proj(crs)
    if lower_left is None:
        x0, y0 = -(nx - 1) / 2 * dx_m, -(ny - 1) / 2 * dx_m
    else:
        x0, y0 = proj(lower_left[1], lower_left[0])
    offset = (coarsen - 1) / 2
    x = x0 + (np.arange(nx // coarsen) * coarsen + offset) * dx_m
    y = y0 + (np.arange(ny // coarsen) * coarsen + offset) * dx_m
    xx, yy = np.meshgrid(x, y)
    lon, lat = proj(xx.ravel(), yy.ravel(), inverse=True)
    return Grid(
        name=name,
        latitude=np.asarray(lat, dtype=np.float64),
        longitude=wrap_longitude(lon),
        kind="lambert_conformal",
        shape=(y.size, x.size),
        crs=crs,
        x=x,
        y=y,
        spacing_km=dx_m * coarsen / 1000.0,
    )


def hrrr(coarsen: int = 1) -> Grid:
    """The HRRR CONUS grid: 1799 x 1059 points at 3 km, optionally coarsened."""
    return lambert_conformal(
        "conus",
        lat_0=38.5,
        lon_0=-97.5,
        nx=1799,
        ny=1059,
        dx_m=3000.0,
        lower_left=(21.138123, -122.719528),
        coarsen=coarsen,
    )


def europe(coarsen: int = 1) -> Grid:
    """A European limited area (Lambert conformal at 52N 10E, 1400 x 1200 points at 3 km)."""
    return lambert_conformal(
        "europe", lat_0=52.0, lon_0=10.0, nx=1400, ny=1200, dx_m=3000.0, coarsen=coarsen
    )


GRID_MAKERS = {"regular_latlon": regular_latlon, "hrrr": hrrr, "europe": europe}


def make_grid(kind: str, **params) -> Grid:
    """Build a named grid: ``regular_latlon(resolution_deg=...)``, ``hrrr(coarsen=...)``, ``europe(coarsen=...)``."""
    if kind not in GRID_MAKERS:
        raise WorkbenchError(f"unknown grid {kind!r}; choose one of {sorted(GRID_MAKERS)}")
    try:
        return GRID_MAKERS[kind](**params)
    except TypeError as err:
        raise WorkbenchError(f"grid {kind!r}: {err}") from None


def grid_from_points(name: str, latitude, longitude, shape: Sequence[int] | None = None,
                     crs: str | None = None) -> Grid:
    """The Grid of points as a source gives them; ``shape`` (ny, nx) for row-major rows.

    Rows of one latitude and columns of one longitude make a regular lat-lon grid (either
    latitude order, longitudes 0..360 or -180..180, pole rows of identical points included)
    with its 1-D axes; points a ``crs`` maps onto 1-D x/y axes a projected grid with those
    axes; other structured points a projected grid without axes (Voronoi areas); no
    ``shape``, a point set."""
    lat = np.asarray(latitude, dtype=np.float64).ravel()
    given = np.asarray(longitude, dtype=np.float64).ravel()
    lon = wrap_longitude(given)
    if shape is None:
        return Grid(name, lat, lon, kind="points", crs=crs)
    ny, nx = (int(v) for v in shape)
    lat2, lon2 = lat.reshape(ny, nx), lon.reshape(ny, nx)
    y, x = lat2[:, 0].copy(), continuous_longitude(given[:nx])  # the source's convention
    if (np.allclose(lat2, y[:, None], rtol=0, atol=1e-6) and _monotonic(y) and _monotonic(x)
            and np.allclose(wrap_longitude(lon2 - x[None, :]), 0.0, rtol=0, atol=1e-6)):
        step = np.abs(np.diff(y if ny > 1 else x))
        spacing = float(np.deg2rad(np.median(step)) * EARTH_RADIUS_KM) if step.size else None
        return Grid(name, lat, lon, "regular_latlon", (ny, nx), crs or LONLAT_CRS, x, y, spacing)
    axes = _projected_axes(lat2, lon2, crs) if crs else None
    if axes is not None:
        step = np.abs(np.diff(axes[0] if nx > 1 else axes[1]))
        spacing = float(np.median(step)) / 1000.0 if step.size else None
        return Grid(name, lat, lon, "projected", (ny, nx), crs, *axes, spacing)
    along = great_circle_km(lat2[:, 1:], lon2[:, 1:], lat2[:, :-1], lon2[:, :-1]) if nx > 1 \
        else great_circle_km(lat2[1:], lon2[1:], lat2[:-1], lon2[:-1])
    spacing = float(np.median(along)) if along.size else None
    return Grid(name, lat, lon, "projected", (ny, nx), crs, spacing_km=spacing)


def _monotonic(axis: np.ndarray) -> bool:
    steps = np.diff(axis)
    return bool(np.all(steps > 0) or np.all(steps < 0))


def _projected_axes(lat2: np.ndarray, lon2: np.ndarray, crs: str):
    """(x, y) in m where ``crs`` maps the (ny, nx) points onto 1-D axes, else None."""
    from pyproj import Proj

    try:
        xx, yy = (np.asarray(v) for v in Proj(crs)(lon2, lat2))
    except Exception:  # noqa: BLE001 - a CRS pyproj cannot use: no axes, Voronoi areas
        return None
    x, y = xx[0].copy(), yy[:, 0].copy()
    step = np.abs(np.concatenate([np.diff(x), np.diff(y)]))
    tol = 1e-3 * float(np.median(step)) if step.size else 1.0
    if (np.all(np.isfinite(xx)) and np.all(np.isfinite(yy)) and _monotonic(x) and _monotonic(y)
            and np.allclose(xx, x[None, :], rtol=0, atol=tol)
            and np.allclose(yy, y[:, None], rtol=0, atol=tol)):
        return x, y
    return None


def latlon_axes(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Column longitudes (continuous) and row latitudes of a regular lat-lon grid."""
    ny, nx = _structured_shape(grid, "latlon_axes")
    if grid.x is not None and grid.y is not None:
        return np.asarray(grid.x, dtype=np.float64), np.asarray(grid.y, dtype=np.float64)
    return (continuous_longitude(grid.longitude[:nx]),
            np.asarray(grid.latitude, dtype=np.float64)[::nx].copy())


def grid_from_dataset(ds) -> Grid:
    """The grid of a canonical dataset (coords latitude/longitude, attrs grid_shape, crs)."""
    shape = ds.attrs.get("grid_shape")
    shape = tuple(int(v) for v in shape) if shape is not None and len(shape) == 2 else None
    crs = ds.attrs.get("crs") or None
    kind = ds.attrs.get("grid_kind", "points")
    x = np.asarray(ds.attrs["grid_x"]) if "grid_x" in ds.attrs else None
    y = np.asarray(ds.attrs["grid_y"]) if "grid_y" in ds.attrs else None
    spacing = ds.attrs.get("grid_spacing_km")
    grid = Grid(
        name=str(ds.attrs.get("domain", "dataset")),
        latitude=np.asarray(ds["latitude"].values, dtype=np.float64),
        longitude=np.asarray(ds["longitude"].values, dtype=np.float64),
        kind=kind,
        shape=shape,
        crs=crs,
        x=x,
        y=y,
        spacing_km=float(spacing) if spacing is not None else None,
    )
    if kind == "regular_latlon" and shape is not None and (x is None or y is None):
        x, y = latlon_axes(grid)  # attrs written before the axes were (forecast files)
        grid = Grid(grid.name, grid.latitude, grid.longitude, kind, shape, crs, x, y,
                    grid.spacing_km)
    return grid


def grid_attrs(grid: Grid) -> dict:
    """Dataset attrs that let :func:`grid_from_dataset` rebuild ``grid``."""
    attrs: dict = {"domain": grid.name, "grid_kind": grid.kind}
    if grid.shape is not None:
        attrs["grid_shape"] = list(grid.shape)
    if grid.crs:
        attrs["crs"] = grid.crs
    if grid.x is not None and grid.y is not None:
        attrs["grid_x"] = [float(v) for v in grid.x]
        attrs["grid_y"] = [float(v) for v in grid.y]
    if grid.spacing_km:
        attrs["grid_spacing_km"] = float(grid.spacing_km)
    return attrs


# --------------------------------------------------------------------------- areas


def area_weights(grid: Grid, radius_km: float = EARTH_RADIUS_KM) -> np.ndarray:
    """Area (km^2) each point represents on the sphere.

    Regular lat-lon (global or regional, either row order): exact spherical cells between
    the midpoints of the axes (half cells at the poles, a pole row of nx identical points
    sharing its cap, a column repeated at +360 deg sharing its meridian), so a global grid
    sums to 4 pi R^2. Projected grids: dx*dy divided by the projection's areal scale at each
    point. Other point sets: spherical Voronoi cells (points that coincide share their cell).
    """
    if grid.kind == "regular_latlon" and grid.shape is not None:
        lon, lat = latlon_axes(grid)
        step = np.deg2rad(grid.spacing_km / EARTH_RADIUS_KM) if grid.spacing_km else 0.0
        lat_edges = np.clip(_cell_edges(lat, np.rad2deg(step)), -90.0, 90.0)
        band = np.abs(np.diff(np.sin(np.deg2rad(lat_edges))))
        width = np.deg2rad(np.abs(np.diff(_cell_edges(lon, np.rad2deg(step)))))
        if lon.size > 1 and abs(abs(lon[-1] - lon[0]) - 360.0) < 1e-6:
            width[[0, -1]] /= 2  # the first meridian again at the end: one cell for both
        return radius_km**2 * np.outer(band, width).ravel()
    if grid.shape is not None and grid.crs and grid.x is not None and grid.y is not None:
        from pyproj import Proj

        dx = float(np.mean(np.diff(grid.x))) if grid.x.size > 1 else grid.spacing_km * 1000
        dy = float(np.mean(np.diff(grid.y))) if grid.y.size > 1 else grid.spacing_km * 1000
        factors = Proj(grid.crs).get_factors(grid.longitude, grid.latitude)
        scale_to_km = (radius_km * 1000 / _crs_radius_m(grid.crs)) ** 2 / 1e6
        return np.abs(dx * dy) / np.asarray(factors.areal_scale) * scale_to_km
    from scipy.spatial import SphericalVoronoi

    xyz = unit_xyz(grid.latitude, grid.longitude)
    unique, inverse, counts = np.unique(np.round(xyz, 9), axis=0, return_inverse=True,
                                        return_counts=True)  # e.g. a lat-lon grid's pole rows
    areas = SphericalVoronoi(unique, radius=1.0).calculate_areas() / counts
    return areas[inverse.ravel()] * radius_km**2


def _cell_edges(centres: np.ndarray, single_step: float) -> np.ndarray:
    """The n + 1 edges of cells around n monotonic centres: midpoints, and half a step
    beyond the ends (``single_step`` wide for a single centre)."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size == 1:
        return np.array([c[0] - single_step / 2, c[0] + single_step / 2])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (c[1] - c[0]) / 2], mid, [c[-1] + (c[-1] - c[-2]) / 2]])


def _crs_radius_m(crs: str) -> float:
    for token in crs.split():
        if token.startswith("+R="):
            return float(token[3:])
    return EARTH_RADIUS_KM * 1000


# --------------------------------------------------------------------------- boundaries


def _structured_shape(grid: Grid, what: str) -> tuple[int, int]:
    if grid.shape is None:
        raise WorkbenchError(
            f"{what} needs a structured grid (ny, nx); grid {grid.name!r} is a point set"
        )
    return grid.shape


def boundary_mask(grid: Grid, width: int = 1) -> np.ndarray:
    """True for the points in the outer ``width`` rows/columns of a structured grid."""
    ny, nx = _structured_shape(grid, "boundary_mask")
    if width < 0:
        raise WorkbenchError(f"boundary width must be >= 0, got {width}")
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ring = (j < width) | (j >= ny - width) | (i < width) | (i >= nx - width)
    return ring.ravel()


def boundary_distance_cells(grid: Grid) -> np.ndarray:
    """For each point, the number of cells to the nearest edge of a structured grid (0 on the ring)."""
    ny, nx = _structured_shape(grid, "boundary distance")
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    return np.minimum.reduce([j, ny - 1 - j, i, nx - 1 - i]).ravel()


def _trim_sides(trim: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(trim, int | np.integer):
        sides = (int(trim),) * 4
    else:
        sides = tuple(int(v) for v in trim)
        if len(sides) != 4:
            raise WorkbenchError(
                f"trim takes one int or 4 values (south, north, west, east), got {list(trim)}"
            )
    if min(sides) < 0:
        raise WorkbenchError(f"trim values must be >= 0, got {list(sides)}")
    return sides  # type: ignore[return-value]


def trim(grid: Grid, cells: int | Sequence[int]) -> tuple[Grid, np.ndarray]:
    """Remove cells from the edges of a structured grid.

    ``cells`` is one int for every side or (south, north, west, east), whichever way the
    rows and columns are stored (read from the points). Returns the trimmed grid and the flat
    indices of the kept points in the original grid, so ``ds.isel(grid=index)`` trims data
    alike.
    """
    ny, nx = _structured_shape(grid, "trim")
    south, north, west, east = _trim_sides(cells)
    lat, lon = grid.latitude.reshape(ny, nx), grid.longitude.reshape(ny, nx)
    if lat[0].mean() > lat[-1].mean():  # first row northmost
        south, north = north, south
    if nx > 1 and wrap_longitude(lon[ny // 2, 1] - lon[ny // 2, 0]) < 0:  # first column eastmost
        west, east = east, west
    if south + north >= ny or west + east >= nx:
        raise WorkbenchError(
            f"trim {[south, north, west, east]} removes the whole {ny}x{nx} grid "
            f"{grid.name!r}; use fewer cells"
        )
    rows = np.arange(south, ny - north)
    cols = np.arange(west, nx - east)
    index = (rows[:, None] * nx + cols[None, :]).ravel()
    trimmed = Grid(
        name=grid.name,
        latitude=grid.latitude[index],
        longitude=grid.longitude[index],
        kind=grid.kind,
        shape=(rows.size, cols.size),
        crs=grid.crs,
        x=None if grid.x is None else grid.x[cols],
        y=None if grid.y is None else grid.y[rows],
        spacing_km=grid.spacing_km,
    )
    return trimmed, index


def outline(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of the closed outer ring of a structured grid (for maps)."""
    ny, nx = _structured_shape(grid, "outline")
    lat = grid.latitude.reshape(ny, nx)
    lon = grid.longitude.reshape(ny, nx)
    path = [
        (lat[0, :], lon[0, :]),
        (lat[1:, -1], lon[1:, -1]),
        (lat[-1, -2::-1], lon[-1, -2::-1]),
        (lat[-2::-1, 0], lon[-2::-1, 0]),
    ]
    return np.concatenate([p[0] for p in path]), np.concatenate([p[1] for p in path])


# --------------------------------------------------------------------------- cutout


def nearest_km(tree_xyz: np.ndarray, query_xyz: np.ndarray, reach_km: float):
    """Great-circle distance (km) and index of each query point's nearest tree point.

    Only distances up to ``reach_km`` are resolved (inf and index len(tree_xyz) beyond):
    unbounded queries from far away are pathological for a kd-tree around a compact LAM.
    """
    from scipy.spatial import cKDTree

    dist, index = cKDTree(tree_xyz).query(query_xyz, distance_upper_bound=float(
        km_to_chord(reach_km)))
    return np.where(np.isfinite(dist), chord_to_km(np.minimum(dist, 2.0)), np.inf), index


def inside_lam(lam: Grid, lat: np.ndarray, lon: np.ndarray) -> np.ndarray | None:
    """Points inside a structured LAM's rectangle (half a cell beyond its outer points): a
    lat-lon box, or a projected rectangle; None where the grid has no axes to say."""
    if lam.kind == "regular_latlon" and lam.shape is not None:
        x, y = latlon_axes(lam)
        x_edges, y_edges = _cell_edges(np.sort(x), 0.0), _cell_edges(np.sort(y), 0.0)
        east_of_west_edge = (np.asarray(lon) - x_edges[0]) % 360.0
        return ((east_of_west_edge <= x_edges[-1] - x_edges[0])
                & (lat >= y_edges[0]) & (lat <= y_edges[-1]))
    if lam.crs and lam.x is not None and lam.y is not None and lam.spacing_km:
        return inside_projected(lam, lat, lon)
    return None


def inside_projected(lam: Grid, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points inside a projected LAM's rectangle (half a cell beyond its outer points)."""
    from pyproj import Proj

    proj = Proj(lam.crs)
    x, y = proj(lon, lat)
    half = lam.spacing_km * 500.0
    return (
        (x >= lam.x.min() - half) & (x <= lam.x.max() + half)
        & (y >= lam.y.min() - half) & (y <= lam.y.max() + half)
        & (np.abs(lat) < 89.9)  # a conic projection folds the far hemisphere
    )


@dataclass(frozen=True, eq=False)
class Cutout:
    """Grids combined by cutout (anemoi-datasets ``cutout``): LAM points first, then the kept
    points of the last (global) grid; ``grid`` is the combined point set (kind "cutout")."""

    grid: Grid
    dataset_index: np.ndarray  # which part each point comes from
    grid_index: np.ndarray  # flat index of the point in its part's (untrimmed) grid
    area_weight: np.ndarray  # km^2, from each part's own grid
    cutout_mask: np.ndarray  # True for LAM points
    boundary_mask: np.ndarray  # True for kept global points within the band around a LAM
    lam_edge_cells: np.ndarray  # LAM points: cells to the (trimmed) LAM edge; -1 elsewhere
    lam_spacing_km: float | None  # finest LAM grid spacing (None without a LAM)


def covers_globe(grid: Grid) -> bool:
    """True where the points reach both polar caps (beyond +-80 deg) and every longitude
    (no gap wider than 10 deg): a global grid, not a limited area."""
    lat = np.asarray(grid.latitude)
    if lat.size == 0 or lat.min() > -80.0 or lat.max() < 80.0:
        return False
    lon = np.unique(np.round(np.asarray(grid.longitude) % 360.0, 6))
    gaps = np.diff(np.concatenate([lon, [lon[0] + 360.0]]))
    return bool(gaps.max() <= 10.0)


def cutout(
    parts: Sequence[tuple[str, Grid, int | Sequence[int]]],
    min_distance_km: float = 0.0,
    boundary_band_km: float = 500.0,
    name: str = "cutout",
) -> Cutout:
    """Combine ``(name, grid, trim_edge)`` parts by cutout: limited areas first, global last.

    Each LAM is trimmed by its ``trim_edge`` cells; the global points inside a LAM's
    rectangle, or closer than ``min_distance_km`` to a LAM point, are dropped. Graphs
    (:func:`workbench.graphs.build_data_nodes`) and the catalog's ``cutout`` source both
    call this, so data nodes and dataset points agree by construction.
    """
    if not parts:
        raise WorkbenchError("a cutout needs at least one dataset")
    *lams, (outer_name, glob, _) = parts
    for lam_name, grid, _ in lams:
        if covers_globe(grid):
            raise WorkbenchError(f"cutout: {lam_name!r} covers the globe but is listed before "
                                 f"{outer_name!r}: list the limited areas first and the global "
                                 "dataset last")
    if lams and not covers_globe(glob):
        raise WorkbenchError(f"cutout: the last dataset {outer_name!r} must be the global one "
                             "(limited areas first, the global dataset last)")
    pieces, lam_xyz, lam_grids = [], [], []
    for index, (lam_name, grid, trim_edge) in enumerate(lams):
        if grid.shape is None:
            raise WorkbenchError(f"LAM dataset {lam_name!r} needs a structured grid to trim")
        grid, kept = trim(grid, trim_edge) if trim_edge else (grid, np.arange(grid.size))
        pieces.append(dict(
            latitude=grid.latitude, longitude=grid.longitude, area_weight=area_weights(grid),
            cutout_mask=np.ones(grid.size, bool), boundary_mask=np.zeros(grid.size, bool),
            dataset_index=np.full(grid.size, index), grid_index=kept,
            lam_edge_cells=boundary_distance_cells(grid),
        ))
        lam_xyz.append(unit_xyz(grid.latitude, grid.longitude))
        lam_grids.append(grid)

    keep = np.ones(glob.size, bool)
    band = np.zeros(glob.size, bool)
    if lam_grids:
        reach_km = max(min_distance_km, boundary_band_km,
                       *(2 * g.spacing_km for g in lam_grids if g.spacing_km)) + 1.0
        dist_km = nearest_km(np.concatenate(lam_xyz),
                             unit_xyz(glob.latitude, glob.longitude), reach_km)[0]
        for (lam_name, _, _), lam in zip(lams, lam_grids, strict=True):
            inside = inside_lam(lam, glob.latitude, glob.longitude)
            if inside is None:  # a structured LAM without axes: within a cell of its points
                inside = dist_km < (lam.spacing_km or 0.0)
            if not inside.any() and not (dist_km < min_distance_km).any():
                raise WorkbenchError(
                    f"LAM {lam_name!r} overlaps no point of {outer_name!r}: nothing to cut out; "
                    "check that the global dataset is last in the datasets and covers the LAM"
                )
            keep &= ~inside
        keep &= dist_km >= min_distance_km
        band = keep & (dist_km <= boundary_band_km)
    kept = np.flatnonzero(keep)
    pieces.append(dict(
        latitude=glob.latitude[kept], longitude=glob.longitude[kept],
        area_weight=area_weights(glob)[kept],
        cutout_mask=np.zeros(kept.size, bool), boundary_mask=band[kept],
        dataset_index=np.full(kept.size, len(lams)), grid_index=kept,
        lam_edge_cells=np.full(kept.size, -1),
    ))
    merged = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
    spacing = min((g.spacing_km for g in lam_grids if g.spacing_km), default=None)
    grid = Grid(name=name, latitude=merged.pop("latitude"), longitude=merged.pop("longitude"),
                kind="cutout")
    return Cutout(grid=grid, lam_spacing_km=spacing, **merged)
