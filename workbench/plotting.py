"""Pure plot functions: data in, the axes or hvplot object they drew out; nothing is saved.

Static maps use cartopy with coastlines read locally (``configure_cartopy``); interactive
maps use hvplot with BokehJS inlined (``setup_hvplot``), so reports render offline. Grids
without ``grid_shape`` (a cutout/stretched grid, any point set) are drawn as triangles
between their points (:func:`point_mesh`) on a PlateCarree map, or as points. A grid that
covers the globe is drawn whole; any other (a projected LAM, a lat-lon extract, a regional
point set) as its region (:func:`is_global`, :func:`map_projection`, :func:`map_extent`).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .plotting_offline import configure_cartopy, setup_hvplot
from .times import iso, parse_date

__all__ = [
    "configure_cartopy",
    "setup_hvplot",
    "cartopy_crs",
    "field_2d",
    "is_unstructured",
    "is_global",
    "map_extent",
    "map_projection",
    "map_aspect",
    "point_mesh",
    "map_field",
    "domains_globe",
    "interactive_map",
]

CMAPS = {"tp": "Blues", "t2m": "RdYlBu_r", "t_500": "RdYlBu_r", "t_850": "RdYlBu_r",
         "u10": "RdBu_r", "v10": "RdBu_r", "orog": "terrain", "lsm": "BrBG_r",
         "insolation": "magma"}


def _proj_params(crs: str) -> dict[str, float]:
    params = {}
    for token in crs.split():
        key, _, value = token.lstrip("+").partition("=")
        try:
            params[key] = float(value)
        except ValueError:
            continue
    return params


def cartopy_crs(ds: xr.Dataset):
    """The cartopy CRS of a canonical dataset's grid (PlateCarree when not projected)."""
    import cartopy.crs as ccrs

    crs = ds.attrs.get("crs") or ""
    if "+proj=lcc" in crs:
        p = _proj_params(crs)
        radius = p.get("R", 6371229.0)
        return ccrs.LambertConformal(
            central_longitude=p["lon_0"],
            central_latitude=p["lat_0"],
            standard_parallels=(p.get("lat_1", p["lat_0"]), p.get("lat_2", p["lat_0"])),
            globe=ccrs.Globe(semimajor_axis=radius, semiminor_axis=radius, ellipse=None),
        )
    return ccrs.PlateCarree()


def is_unstructured(ds: xr.Dataset) -> bool:
    """True for a dataset whose grid is a point set (no ``grid_shape``), e.g. a cutout."""
    return ds.attrs.get("grid_shape") is None


def is_global(ds: xr.Dataset) -> bool:
    """True where a dataset's points cover the globe (:func:`grids.covers_globe`): drawn whole;
    anything else is drawn as its region, whatever its grid kind."""
    from .grids import Grid, covers_globe

    return covers_globe(Grid("", np.asarray(ds["latitude"].values),
                             np.asarray(ds["longitude"].values)))


def map_extent(ds: xr.Dataset, pad: float = 0.03) -> tuple[float, float, float, float]:
    """(lon0, lon1, lat0, lat1) around a dataset's points, ``pad`` of the span beyond them;
    longitudes continuous around the points' centre (lon1 may pass 180 across the date line)."""
    lat = np.asarray(ds["latitude"].values, dtype=float)
    lon = np.deg2rad(np.asarray(ds["longitude"].values, dtype=float))
    centre = float(np.rad2deg(np.arctan2(np.sin(lon).mean(), np.cos(lon).mean())))
    from .grids import wrap_longitude

    rel = wrap_longitude(np.rad2deg(lon) - centre)
    lon0, lon1 = centre + rel.min(), centre + rel.max()
    dx, dy = max(lon1 - lon0, 1.0) * pad, max(lat.max() - lat.min(), 1.0) * pad
    return (float(lon0 - dx), float(lon1 + dx), float(max(lat.min() - dy, -90.0)),
            float(min(lat.max() + dy, 90.0)))


def map_projection(ds: xr.Dataset):
    """The projection a dataset's maps are drawn in: Robinson for a global grid
    (PlateCarree for a global point set, whose triangles are made in it), the grid's own
    CRS for a projected one, PlateCarree centred on a limited lat-lon area or point set."""
    import cartopy.crs as ccrs

    if is_global(ds):
        return ccrs.PlateCarree() if is_unstructured(ds) else ccrs.Robinson()
    own = cartopy_crs(ds)
    if not isinstance(own, ccrs.PlateCarree):
        return own
    lon0, lon1, _, _ = map_extent(ds)
    return ccrs.PlateCarree(central_longitude=(lon0 + lon1) / 2)


def map_aspect(ds: xr.Dataset) -> float:
    """Height / width of a dataset's map panel (global 0.5, projected ny / nx, a limited
    lat-lon area or point set its extent's)."""
    if is_global(ds):
        return 0.5
    shape = ds.attrs.get("grid_shape")
    if shape is not None and ds.attrs.get("grid_kind") != "regular_latlon":
        return int(shape[0]) / int(shape[1])
    lon0, lon1, lat0, lat1 = map_extent(ds)
    return float(np.clip((lat1 - lat0) / max(lon1 - lon0, 1e-6), 0.2, 2.0))


def _set_view(ax, ds: xr.Dataset) -> None:
    """The whole globe for a global dataset, else its region (lat-lon and point sets)."""
    import cartopy.crs as ccrs

    if is_global(ds):
        ax.set_global()
    else:
        ax.set_extent(map_extent(ds), crs=ccrs.PlateCarree())


def point_mesh(ax, latitude, longitude, values, **kwargs):
    """Values at scattered points as flat-shaded triangles (Delaunay in longitude/latitude,
    PlateCarree); triangles touching a non-finite value are left out. Returns the collection."""
    import cartopy.crs as ccrs
    from matplotlib.tri import Triangulation

    from .grids import wrap_longitude

    lon = wrap_longitude(longitude)
    lat = np.asarray(latitude, dtype=float)
    values = np.asarray(values, dtype=float)
    west, east = lon < -170.0, lon > 170.0  # copies across the date line close the seam
    lon = np.concatenate([lon, lon[west] + 360.0, lon[east] - 360.0])
    lat = np.concatenate([lat, lat[west], lat[east]])
    values = np.concatenate([values, values[west], values[east]])
    tri = Triangulation(lon, lat)
    bad = ~np.isfinite(values)
    tri.set_mask(bad[tri.triangles].any(axis=1))
    return ax.tripcolor(tri, np.where(bad, 0.0, values), transform=ccrs.PlateCarree(), **kwargs)


def field_2d(ds: xr.Dataset, variable: str) -> xr.DataArray:
    """A variable on its structured grid: dims (..., y, x) with axes in the grid's own CRS.

    Regular lat-lon grids get 1-D ``longitude`` (sorted; -180..180 on a global grid,
    continuous across the date line on a regional one) and ``latitude`` axes (in the source's
    order); projected grids get ``x``/``y`` in metres plus 2-D latitude/longitude coords.
    """
    shape = ds.attrs.get("grid_shape")
    if shape is None:
        raise ValueError(f"{variable}: dataset has no grid_shape; use a scatter plot instead")
    ny, nx = (int(s) for s in shape)
    var = ds[variable]
    lead = [d for d in var.dims if d != "grid"]
    data = var.data.reshape(*[var.sizes[d] for d in lead], ny, nx)
    lat = ds["latitude"].values.reshape(ny, nx)
    lon = ds["longitude"].values.reshape(ny, nx)
    coords = {d: var[d] for d in lead if d in var.coords}
    if ds.attrs.get("grid_kind") == "regular_latlon":
        from .grids import continuous_longitude

        axis = lon[0] if is_global(ds) else continuous_longitude(lon[0])
        order = np.argsort(axis)
        out = xr.DataArray(
            np.take(data, order, axis=-1),
            dims=(*lead, "latitude", "longitude"),
            coords={**coords, "latitude": lat[:, 0], "longitude": axis[order]},
        )
    else:
        x = np.asarray(ds.attrs.get("grid_x", np.arange(nx)), dtype=float)
        y = np.asarray(ds.attrs.get("grid_y", np.arange(ny)), dtype=float)
        out = xr.DataArray(
            data,
            dims=(*lead, "y", "x"),
            coords={**coords, "y": y, "x": x, "latitude": (("y", "x"), lat),
                    "longitude": (("y", "x"), lon)},
        )
    out.attrs = dict(var.attrs)
    out.name = variable
    return out


def map_field(
    ds: xr.Dataset,
    variable: str,
    time: int | str | np.datetime64 = 0,
    ax=None,
    cmap: str | None = None,
    title: str | None = None,
    coastline_scale: str = "50m",
    **kwargs,
):
    """A static cartopy map of one field at one time; returns the GeoAxes."""
    import cartopy.crs as ccrs

    configure_cartopy()
    var = ds[variable]
    if "time" in var.dims:
        if isinstance(time, str):  # a date of the data's calendar (2000-02-30 in 360_day)
            time = parse_date(time, var["time"].values, f"map_field {variable}")
        var = var.isel(time=time) if isinstance(time, int) else var.sel(time=time)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), subplot_kw={"projection": map_projection(ds)})
    if is_unstructured(ds):  # a point set: triangles, on the globe or around the region
        kwargs.pop("shading", None)
        mesh = point_mesh(ax, ds["latitude"].values, ds["longitude"].values, var.values,
                          cmap=cmap or CMAPS.get(variable, "viridis"), **kwargs)
        _set_view(ax, ds)
        return _finish_map(ax, mesh, var, ds, variable, title, coastline_scale)
    sub = ds.assign({variable: var})
    field = field_2d(sub, variable).load()
    crs = cartopy_crs(ds)
    if "x" in field.dims and "grid_x" in ds.attrs and not isinstance(crs, ccrs.PlateCarree):
        mesh = ax.pcolormesh(field["x"], field["y"], field.values, transform=crs,
                             cmap=cmap or CMAPS.get(variable, "viridis"), shading="auto", **kwargs)
    else:
        mesh = ax.pcolormesh(field["longitude"], field["latitude"], field.values,
                             transform=ccrs.PlateCarree(), shading="auto",
                             cmap=cmap or CMAPS.get(variable, "viridis"), **kwargs)
        _set_view(ax, ds)
    return _finish_map(ax, mesh, var, ds, variable, title, coastline_scale)


def _finish_map(ax, mesh, var: xr.DataArray, ds: xr.Dataset, variable: str, title: str | None,
                coastline_scale: str):
    """Coastlines, colour bar and title of :func:`map_field`."""
    ax.coastlines(coastline_scale, linewidth=0.6)
    units = var.attrs.get("units", "")
    plt.colorbar(mesh, ax=ax, shrink=0.7, label=f"{variable} [{units}]" if units else variable)
    when = f" {iso(var['time'].values[()])[:13]}" if "time" in var.coords else ""
    ax.set_title(title or f"{ds.attrs.get('domain', '')} {variable}{when}")
    return ax


def domains_globe(
    datasets: Sequence[xr.Dataset],
    ax=None,
    central: tuple[float, float] = (45.0, -45.0),
    colors: Sequence[str] = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"),
):
    """Every limited-area domain's outline (and global grids' points) on one orthographic globe."""
    import cartopy.crs as ccrs

    from .grids import covers_globe, grid_from_dataset, outline

    configure_cartopy()
    if ax is None:
        _, ax = plt.subplots(
            figsize=(6.5, 6.5),
            subplot_kw={"projection": ccrs.Orthographic(central[1], central[0])},
        )
    ax.set_global()
    ax.stock_img()
    ax.coastlines("110m", linewidth=0.5)
    ax.gridlines(linewidth=0.3, alpha=0.5)
    for ds, color in zip(datasets, colors, strict=False):
        grid = grid_from_dataset(ds)
        label = f"{ds.attrs.get('domain', grid.name)} ({grid.size} points)"
        if grid.shape is None or covers_globe(grid):  # points; a LAM (any kind): its outline
            step = max(1, grid.size // 4000)
            ax.scatter(grid.longitude[::step], grid.latitude[::step], s=0.5, color=color,
                       transform=ccrs.PlateCarree(), label=label, alpha=0.5)
        else:
            lat, lon = outline(grid)
            ax.plot(lon, lat, color=color, linewidth=2, transform=ccrs.Geodetic(), label=label)
    ax.legend(loc="lower left", fontsize=8)
    return ax


def interactive_map(
    ds: xr.Dataset, variable: str, times: int | slice = 8, width: int = 600, height: int = 360
):
    """An hvplot quadmesh with a time slider (frames embedded, so it works in static HTML)."""
    setup_hvplot()
    var = ds[variable]
    if "time" in var.dims:
        index = slice(0, times) if isinstance(times, int) else times
        var = var.isel(time=index)
    if is_unstructured(ds):
        return interactive_points(var.load(), variable, "time" if "time" in var.dims else None,
                                  cmap=CMAPS.get(variable, "viridis"), width=width, height=height,
                                  title=f"{ds.attrs.get('domain', '')} {variable}")
    field = field_2d(ds.assign({variable: var}), variable).load()
    x, y = ("longitude", "latitude") if "longitude" in field.dims else ("x", "y")
    options = dict(x=x, y=y, cmap=CMAPS.get(variable, "viridis"), width=width, height=height,
                   title=f"{ds.attrs.get('domain', '')} {variable}")
    if "time" in field.dims:
        return field.hvplot.quadmesh(groupby="time", dynamic=False, widget_location="bottom",
                                     **options)
    return field.hvplot.quadmesh(**options)


def interactive_points(var: xr.DataArray, name: str, groupby: str | None = None,
                       width: int = 600, height: int = 360, size: float = 3.0, **options):
    """An hvplot scatter of a field on a point set (dims ``grid`` and optionally ``groupby``,
    coords latitude/longitude), with a slider over ``groupby`` (frames embedded)."""
    setup_hvplot()
    import hvplot.pandas  # noqa: F401  (after setup_hvplot: BokehJS stays inline)

    from .grids import wrap_longitude

    frame = var.rename(name).to_dataframe().reset_index()
    frame["longitude"] = wrap_longitude(frame["longitude"].to_numpy())
    keep = ["longitude", "latitude", name] + ([groupby] if groupby else [])
    points = dict(x="longitude", y="latitude", c=name, size=size, width=width, height=height,
                  **options)
    if groupby:
        return frame[keep].hvplot.points(groupby=groupby, dynamic=False,
                                         widget_location="bottom", **points)
    return frame[keep].hvplot.points(**points)


# --------------------------------------------------------------------------- graphs


REGION_COLORS = {"lam_interior": "tab:red", "lam_boundary": "tab:orange", "near_lam": "tab:purple",
                 "global": "tab:blue", "poles": "tab:green"}


def hanging_map(
    latitude: np.ndarray,
    longitude: np.ndarray,
    hanging: np.ndarray,
    regions: np.ndarray,
    ax=None,
    extent: Sequence[float] | None = None,
    title: str = "hanging nodes",
    max_background: int = 200_000,
):
    """All nodes in light grey (rasterized, subsampled past ``max_background``), hanging ones
    coloured by region; ``extent`` = (lon0, lon1, lat0, lat1) zooms in. Returns the GeoAxes."""
    import cartopy.crs as ccrs

    configure_cartopy()
    if ax is None:
        projection = ccrs.PlateCarree() if extent is not None else ccrs.Robinson()
        _, ax = plt.subplots(figsize=(9, 4.8), subplot_kw={"projection": projection})
    step = max(1, latitude.size // max_background)
    ax.scatter(longitude[::step], latitude[::step], s=0.3, color="0.8", transform=ccrs.PlateCarree(),
               rasterized=True, linewidths=0)
    for region, color in REGION_COLORS.items():
        pick = hanging & (regions == region)
        if pick.any():
            ax.scatter(longitude[pick], latitude[pick], s=2, color=color, rasterized=True,
                       transform=ccrs.PlateCarree(), label=f"{region} ({int(pick.sum())})",
                       linewidths=0)
    if extent is not None:
        ax.set_extent(extent, crs=ccrs.PlateCarree())
    else:
        ax.set_global()
    ax.coastlines("50m" if extent is not None else "110m", linewidth=0.5)
    ax.set_title(f"{title}: {int(hanging.sum())} of {hanging.size}")
    if hanging.any():
        ax.legend(loc="lower left", fontsize=7, markerscale=4)
    return ax


def sweep_plot(table, ax=None, regions: Sequence[str] | None = None, trim: int | None = None,
               min_k: int | None = None):
    """Hanging nodes against k, one line per region (log scale); marks the smallest safe k."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    rows = table if trim is None else table[table["trim"] == trim]
    for region in regions or [c for c in REGION_COLORS if c in rows]:
        ax.plot(rows["k"], rows[region].clip(lower=0.5), marker=".", label=region,
                color=REGION_COLORS.get(region))
    ax.plot(rows["k"], rows["total"].clip(lower=0.5), color="k", linestyle="--", label="total")
    if min_k is not None:
        ax.axvline(min_k, color="0.3", linestyle=":", label=f"smallest safe k = {min_k}")
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("hanging nodes (0 drawn at 0.5)")
    ax.set_title("k sweep" + (f" (trim {trim})" if trim is not None else ""))
    ax.legend(fontsize=8)
    return ax


def trim_sweep_plot(table, region_columns: Sequence[str], ax=None):
    """Hanging nodes in the chosen regions against k, one line per LAM trim."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for trim, rows in table.groupby("trim"):
        ax.plot(rows["k"], rows[list(region_columns)].sum(axis=1).clip(lower=0.5), marker=".",
                label=f"trim {trim}")
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel(f"hanging in {'+'.join(region_columns)}")
    ax.set_title("trim x k sweep")
    ax.legend(fontsize=8)
    return ax


def panel_row(n: int, width: float, height: float, dpi: int = 80, axes=None) -> np.ndarray:
    """``axes`` as a 1-D array, or a new row of ``n`` panels (each ``width`` x ``height`` in)."""
    if axes is None:
        _, axes = plt.subplots(1, n, figsize=(width * n + 0.6, height), dpi=dpi, squeeze=False)
        axes = axes[0]
    return np.atleast_1d(axes)


def edge_histograms(edge_arrays: dict, axes=None):
    """Per edge set: histograms of in-degree and edge length (km). Returns the axes array."""
    n = len(edge_arrays)
    if axes is None:
        _, axes = plt.subplots(n, 2, figsize=(10, 2.6 * n), squeeze=False)
    for row, (name, arrays) in zip(axes, edge_arrays.items(), strict=True):
        degree = arrays["in_degree"]
        row[0].hist(degree, bins=np.arange(degree.min(), degree.max() + 2) - 0.5, color="tab:blue")
        row[0].set_title(f"{name}: in-degree of targets")
        row[0].set_yscale("log")
        row[1].hist(arrays["length_km"], bins=60, color="tab:gray")
        row[1].set_title(f"{name}: edge length (km)")
        row[1].set_yscale("log")
    plt.tight_layout()
    return axes


def hanging_slider(latitude, longitude, free_at, ks: Sequence[int], dynamic: bool = False,
                   width: int = 700, height: int = 380):
    """Hanging nodes for each k behind a slider, rasterized with datashader.

    ``free_at`` is :func:`workbench.inspection.hanging_by_k`'s output (a node hangs at k iff
    free_at > k). ``dynamic=True`` (JupyterLab) redraws on demand for any k in range;
    ``dynamic=False`` embeds a frame per k, for static HTML reports.
    """
    setup_hvplot()
    import holoviews as hv
    from holoviews.operation.datashader import dynspread, rasterize

    lon = np.asarray(longitude)
    lat = np.asarray(latitude)
    everything = hv.Points((lon, lat), ["longitude", "latitude"])
    base = rasterize(everything, width=width, height=height, dynamic=False).opts(
        cmap=["#dddddd", "#bbbbbb"], colorbar=False)

    def frame(k: int):
        hanging = free_at > k
        points = hv.Points((lon[hanging], lat[hanging]), ["longitude", "latitude"])
        shaded = dynspread(rasterize(points, width=width, height=height, dynamic=False),
                           threshold=0.8, max_px=3)
        return (base * shaded.opts(cmap="Reds", cnorm="eq_hist", colorbar=False)).opts(
            title=f"hanging at k={k}: {int(hanging.sum())}", width=width, height=height)

    if dynamic:
        return hv.DynamicMap(frame, kdims=[hv.Dimension("k", values=list(ks))])
    return hv.HoloMap({int(k): frame(int(k)) for k in ks}, kdims="k")


# ---- sampling


def bin_histograms(edges: Sequence[float], before: Sequence[int], after: Sequence[int], ax=None,
                   quantity: str = "aggregate"):
    """Tiles per bin of their aggregate before bin-norm and samples per bin after it, side by
    side on a log scale; bins labelled by their edges [low, high). Returns the axes."""
    edges = np.asarray(edges, dtype=float)
    before, after = np.asarray(before), np.asarray(after)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    k = np.arange(before.size)
    ax.bar(k - 0.2, np.maximum(before, 0), width=0.4, color="tab:gray",
           label=f"tiles before bin-norm ({int(before.sum())})")
    ax.bar(k + 0.2, np.maximum(after, 0), width=0.4, color="tab:blue",
           label=f"samples after bin-norm ({int(after.sum())})")
    ax.set_yscale("log")
    labels = [f"[{lo:.3g}, {hi:.3g})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    if labels:
        labels[-1] = labels[-1][:-1] + "]"
    ax.set_xticks(k, labels, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel(f"bin of {quantity}")
    ax.set_ylabel("count")
    ax.set_title(f"{quantity}: per-bin counts before and after bin-norm")
    ax.legend(fontsize=8)
    return ax


def domain_shares(requested, drawn, ax=None):
    """Requested against drawn share of batches per domain (mappings or Series by domain name),
    as grouped bars labelled with their values. Returns the axes."""
    names = list(requested.keys())
    req = np.array([float(requested[n]) for n in names])
    got = np.array([float(drawn[n]) for n in names])
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * len(names) + 3, 3.6))
    k = np.arange(len(names))
    bars = ax.bar(k - 0.2, req, width=0.4, color="tab:gray", label="requested")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    bars = ax.bar(k + 0.2, got, width=0.4, color="tab:orange", label="drawn")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(k, names)
    ax.set_ylim(0, max(1e-9, float(max(req.max(), got.max()))) * 1.15)
    ax.set_ylabel("share of training batches")
    ax.set_title(f"domain frequency (max |drawn - requested| = {np.abs(got - req).max():.3f})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def tile_map(ds: xr.Dataset, tiles, column: str | None = None, ax=None, cmap: str = "viridis",
             title: str | None = None, label_limit: int = 60):
    """Tiles (rows with j0, i0, ny, nx, as a tiling or sampling index) on the domain's map,
    each tile location outlined and coloured by its number of rows (``column`` None) or by the
    mean of ``column`` (e.g. ``"bin"``); values written in the tiles when there are at most
    ``label_limit`` locations. Overlapping tiles add up their counts. A point list (no
    ``grid_shape``) has whole-domain tiles only: its points coloured, no outline. Returns the
    GeoAxes."""
    import cartopy.crs as ccrs

    from .grids import continuous_longitude

    shape = ds.attrs.get("grid_shape") or (1, ds.sizes["grid"])
    ny, nx = (int(s) for s in shape)
    table = tiles.assign(**{c: tiles[c] if c in tiles else default for c, default in
                            (("j0", 0), ("i0", 0), ("ny", ny), ("nx", nx))})
    keys = ["j0", "i0", "ny", "nx"]
    grouped = table.groupby(keys)
    counts = grouped.size()
    totals = grouped[column].sum() if column else counts
    hits, sums = np.zeros((ny, nx)), np.zeros((ny, nx))
    for (j0, i0, h, w), n in counts.items():
        hits[j0:j0 + h, i0:i0 + w] += n
        sums[j0:j0 + h, i0:i0 + w] += totals[(j0, i0, h, w)]
    with np.errstate(invalid="ignore", divide="ignore"):
        cover = np.where(hits > 0, sums / hits if column else hits, np.nan)
    name = f"mean {column}" if column else "samples per tile"
    grid = xr.Dataset({name: ("grid", cover.ravel())},
                      coords={"latitude": ("grid", np.asarray(ds["latitude"].values)),
                              "longitude": ("grid", np.asarray(ds["longitude"].values))},
                      attrs=ds.attrs)
    ax = map_field(grid, name, ax=ax, cmap=cmap, title=title or f"{ds.attrs.get('domain', '')}: "
                   f"{len(counts)} tile locations, {name}")
    if "grid_shape" not in ds.attrs:
        return ax
    projected = ds.attrs.get("grid_kind") != "regular_latlon" and "grid_x" in ds.attrs
    if projected:
        crs, x, y = cartopy_crs(ds), np.asarray(ds.attrs["grid_x"]), np.asarray(ds.attrs["grid_y"])
    else:
        crs = ccrs.PlateCarree()
        x = continuous_longitude(ds["longitude"].values.reshape(ny, nx)[0])
        y = ds["latitude"].values.reshape(ny, nx)[:, 0]
    dx = (x[1] - x[0]) / 2 if x.size > 1 else 0.5
    dy = (y[1] - y[0]) / 2 if y.size > 1 else 0.5
    for (j0, i0, h, w), n in counts.items():
        x0, x1 = x[i0] - dx, x[i0 + w - 1] + dx
        y0, y1 = y[j0] - dy, y[j0 + h - 1] + dy
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="k", linewidth=0.6,
                transform=crs)
        if len(counts) <= label_limit:
            text = f"{totals[(j0, i0, h, w)] / n:.3g}" if column else f"{n:d}"
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, text, transform=crs, fontsize=7,
                    ha="center", va="center", color="k",
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.7,
                          "linewidth": 0})
    return ax


def sample_map(samples: Sequence[dict], index: int, variable: str, ax=None):
    """One normalised input field of ``samples[index]`` (as ``sampling_report.take_samples`` returns
    them) on its domain's map. Returns the GeoAxes."""
    sample = samples[index]
    values = np.asarray(sample["x"])[list(sample["variables"]).index(variable)]
    ds = sample["ds"]
    grid = xr.Dataset({variable: ("grid", values, {"units": "normalised"})},
                      coords={"latitude": ds["latitude"], "longitude": ds["longitude"]},
                      attrs=ds.attrs)
    when = iso(sample["time"])[:13]  # to the hour, in the data's calendar
    return map_field(grid, variable, ax=ax, title=f"sample {index}: {sample['domain']} "
                     f"{variable} (normalised input) at {when}, t0={sample['t0']}")
