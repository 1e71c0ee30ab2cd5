"""Plots of notebook 04 (skill maps): skill per grid point, lead-time curves, scorecards and
skill against the distance to the LAM boundary.

Pure functions like :mod:`workbench.plotting`: data in, the axes, figure or hvplot object they
drew out; nothing is saved. Inputs come from :mod:`workbench.evaluation`: ``maps`` is
:func:`~workbench.evaluation.skill_maps`' Dataset (dims forecast, metric, lead_time, grid),
``table`` :func:`~workbench.evaluation.scores`' tidy table, ``card``
:func:`~workbench.evaluation.scorecard`'s and ``bands``
:func:`~workbench.evaluation.boundary_skill`'s frame. Skill is drawn on a diverging colour map
centred on 0 (blue: the model beats the reference, red: it does worse), clipped at +-1.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from .plotting import (
    configure_cartopy,
    field_2d,
    interactive_points,
    is_global,
    is_unstructured,
    map_aspect,
    map_field,
    map_projection,
    panel_row,
    setup_hvplot,
)

__all__ = ["skill_map", "skill_maps_figure", "interactive_skill_map", "lead_time_curves",
           "scorecard_plot", "boundary_curves"]

SKILL_CMAP = "RdBu"
FORECAST_STYLE = {"model": {"color": "tab:blue", "marker": "o", "linestyle": "-"},
                  "persistence": {"color": "k", "marker": "s", "linestyle": "--"},
                  "climatology": {"color": "tab:gray", "marker": "^", "linestyle": ":"}}
LABELS = {"skill_vs_persistence": "skill vs persistence",
          "skill_vs_climatology": "skill vs climatology", "rmse": "RMSE", "mse": "MSE"}


def _lead_index(maps: xr.Dataset, lead: int | float) -> int:
    """A lead as a position (int) or as hours (float, e.g. 24.0)."""
    if isinstance(lead, int | np.integer):
        return int(lead) % maps.sizes["lead_time"]
    hours = maps["lead_time"].values / np.timedelta64(1, "h")
    match = np.flatnonzero(np.isclose(hours, float(lead)))
    if not match.size:
        raise ValueError(f"lead {lead} h is not one of the maps' leads {hours.tolist()} h")
    return int(match[0])


def _lead_hours(maps: xr.Dataset, k: int) -> float:
    return float(maps["lead_time"].values[k] / np.timedelta64(1, "h"))


def _field(maps: xr.Dataset, variable: str, metric: str, forecast: str, k: int | None,
           units: str, name: str | None = None) -> xr.Dataset:
    """One metric of one variable as a canonical dataset (grid attrs kept) named ``name``."""
    var = maps[variable].sel(metric=metric, forecast=forecast)
    if k is not None:
        var = var.isel(lead_time=k)
    var = var.drop_vars(["metric", "forecast"]).assign_attrs(units=units)
    return xr.Dataset({name or variable: var},
                      coords={"latitude": maps["latitude"], "longitude": maps["longitude"]},
                      attrs=maps.attrs)


def skill_map(maps: xr.Dataset, variable: str, lead: int | float = 0,
              metric: str = "skill_vs_persistence", forecast: str = "model", ax=None,
              vmax: float | None = None, title: str | None = None,
              coastline_scale: str | None = None):
    """One map of ``maps[variable]`` at one lead (a position, or hours as a float) on cartopy
    with offline coastlines: a skill metric on a diverging map centred on 0 (``vmax`` 1 by
    default), an error metric (``rmse``, ``mse``) on a sequential one from 0. Global grids are
    drawn whole on Robinson, projected ones in their own CRS, point sets (a cutout grid) as
    triangles on PlateCarree, limited areas (a lat-lon extract too) as their region. Returns
    the GeoAxes."""
    k = _lead_index(maps, lead)
    is_skill = metric.startswith("skill")
    units = "" if is_skill else maps[variable].attrs.get("units", "")
    if metric == "mse" and units:
        units = f"({units})^2"
    values = maps[variable].sel(metric=metric, forecast=forecast).isel(lead_time=k).values
    if is_skill:
        limit = 1.0 if vmax is None else float(vmax)
        options = {"cmap": SKILL_CMAP, "vmin": -limit, "vmax": limit}
    else:
        high = float(np.nanmax(values)) if vmax is None and np.isfinite(values).any() else vmax
        options = {"cmap": "magma_r", "vmin": 0.0, "vmax": high or 1.0}
    whole_globe = is_global(maps)
    scale = coastline_scale or ("110m" if whole_globe else "50m")
    hours = _lead_hours(maps, k)
    name = LABELS.get(metric, metric)
    what = name if is_skill else f"{forecast} {name}"
    ax = map_field(_field(maps, variable, metric, forecast, k, units, what), what, ax=ax,
                   coastline_scale=scale, title=title or
                   f"{maps.attrs.get('domain', '')} {variable} +{hours:g} h: {what}", **options)
    return ax


def skill_maps_figure(maps: xr.Dataset, variables: Sequence[str] | None = None,
                      leads: Sequence[int | float] | None = None,
                      metrics: Sequence[str] = ("skill_vs_persistence", "skill_vs_climatology"),
                      width: float = 14.0, dpi: int = 80):
    """A grid of :func:`skill_map` panels: one row per variable, one column per lead (default:
    the first and the last) and metric. The panel titles give the area-weighted mean of the
    skill over the scored points (from the MSE maps, so it equals :func:`evaluation.scores`'
    interior); points the maps leave out (forced from the truth) are blank and the title
    says how many, as are missing points (NaN: never valid), left out of the domain mean.
    Returns the figure."""
    configure_cartopy()
    names = list(variables or maps.data_vars)
    n_leads = maps.sizes["lead_time"]
    positions = [_lead_index(maps, lead) for lead in (leads if leads is not None
                                                       else (0, n_leads - 1))]
    positions = list(dict.fromkeys(positions))
    columns = [(k, m) for k in positions for m in metrics]
    projection = map_projection(maps)  # the globe whole, a limited area as its region
    aspect = 0.55 if is_global(maps) else map_aspect(maps)
    panel = width / len(columns)
    fig = plt.figure(figsize=(width, len(names) * panel * aspect + 0.8), dpi=dpi)
    weights = maps["area_weight"].values
    scored = weights > 0  # skill_maps weighs the points it leaves out 0
    for r, variable in enumerate(names):
        for c, (k, metric) in enumerate(columns):
            ax = fig.add_subplot(len(names), len(columns), r * len(columns) + c + 1,
                                 projection=projection)
            mse = maps[variable].sel(metric="mse").isel(lead_time=k)
            here = scored & np.isfinite(mse.transpose("forecast", "grid").values).all(0)
            model = float(np.average(mse.sel(forecast="model").values[here],
                                     weights=weights[here])) if here.any() else np.nan
            ref = metric.removeprefix("skill_vs_")
            label = f"{variable} +{_lead_hours(maps, k):g} h, {LABELS.get(metric, metric)}"
            if ref in mse["forecast"].values:
                ref_mse = float(np.average(mse.sel(forecast=ref).values[here],
                                           weights=weights[here])) if here.any() else np.nan
                label += f"\ndomain mean {1 - model / ref_mse:+.2f}" if ref_mse else ""
            skill_map(maps, variable, k, metric, ax=ax, title=label)
            ax.title.set_fontsize(9)
    domain = maps.attrs.get("domain", "")
    trained = maps.attrs.get("trained_on")
    note = ""
    if trained:
        seen = domain in [d.strip() for d in str(trained).split(",")]
        note = f" ({'' if seen else 'unseen; '}trained on {trained})"
    if not scored.all():
        note += f"\n{int((~scored).sum())} points forced from the truth left out (blank)"
    fig.suptitle(f"{domain}: model skill per grid point, {maps.attrs.get('init_times', '')} "
                 f"initial times{note}", fontsize=11)
    fig.tight_layout()
    return fig


def interactive_skill_map(maps: xr.Dataset, variable: str,
                          metric: str = "skill_vs_persistence", forecast: str = "model",
                          width: int = 620, height: int = 380):
    """An hvplot quadmesh of one metric with a lead-time slider (every lead embedded, so it
    works in the static HTML report); skill on the diverging map clipped at +-1. Longitude and
    latitude axes on global grids, the projection's x/y (m) on projected ones; point sets (a
    cutout grid) as coloured points."""
    setup_hvplot()
    is_skill = metric.startswith("skill")
    data = _field(maps, variable, metric, forecast, None, "" if is_skill else
                  maps[variable].attrs.get("units", ""))
    hours = maps["lead_time"].values / np.timedelta64(1, "h")  # the data's steps: 3, 6, 9...
    hours = hours.astype(int) if np.all(hours == np.round(hours)) else hours
    data = data.assign_coords(lead_time=hours).rename(lead_time="lead_hours")
    title = f"{maps.attrs.get('domain', '')} {variable}: {LABELS.get(metric, metric)}"
    if is_unstructured(maps):
        colours = {"cmap": SKILL_CMAP, "clim": (-1.0, 1.0)} if is_skill else {"cmap": "magma_r"}
        values = data[variable].clip(-1.0, 1.0) if is_skill else data[variable]
        return interactive_points(values.load(), LABELS.get(metric, metric), "lead_hours",
                                  width=width, height=height, title=title, **colours)
    field = field_2d(data, variable).load().rename(LABELS.get(metric, metric))
    x, y = ("longitude", "latitude") if "longitude" in field.dims else ("x", "y")
    options = dict(x=x, y=y, width=width, height=height,
                   title=f"{maps.attrs.get('domain', '')} {variable}: "
                         f"{LABELS.get(metric, metric)}")
    if is_skill:
        options.update(cmap=SKILL_CMAP, clim=(-1.0, 1.0))
    else:
        options.update(cmap="magma_r")
    if "y" in field.dims:
        field = field.drop_vars(["latitude", "longitude"])
    return field.hvplot.quadmesh(groupby="lead_hours", dynamic=False, widget_location="bottom",
                                 **options)


def lead_time_curves(table: pd.DataFrame, variables: Sequence[str] | None = None, axes=None,
                     metric: str = "rmse", title: str | None = None, dpi: int = 80,
                     region: str = "interior"):
    """``metric`` (RMSE by default) against lead time for the model, persistence and
    climatology over the ``region``'s points (the interior by default: the forced ring left
    out), one panel per variable. Returns the array of axes."""
    if "region" in table:
        table = table[table["region"] == region]
    rows = table[table["metric"] == metric]
    names = list(variables or dict.fromkeys(rows["variable"]))
    axes = panel_row(len(names), 3.6, 3.2, dpi, axes)
    for ax, variable in zip(axes, names, strict=False):
        for forecast, style in FORECAST_STYLE.items():
            line = rows[(rows["variable"] == variable) & (rows["forecast"] == forecast)]
            if line.empty:
                continue
            line = line.sort_values("lead_hours")
            ax.plot(line["lead_hours"], line["value"], label=forecast, **style)
        leads = sorted(rows["lead_hours"].unique())
        ax.set_xticks(leads)
        ax.set_xlabel("lead time (h)")
        ax.set_ylabel(f"{LABELS.get(metric, metric)} (area-weighted)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{title + ': ' if title else ''}{variable}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    plt.tight_layout()
    return axes


def scorecard_plot(card: pd.DataFrame, ax=None, vmax: float = 1.0, title: str | None = None,
                   label: str = "skill vs persistence", dpi: int = 80, significant=None):
    """A scorecard heatmap: variables (rows) x lead times (columns), coloured by skill on the
    diverging map centred on 0 (clipped at +-``vmax``) and annotated with the values. ``card``
    is :func:`evaluation.scorecard`'s frame. A cell whose 95 % interval excludes 0
    (``significant``, card-shaped bools; by default the card's ``attrs["significant"]``) gets
    an asterisk after its value. Returns the axes."""
    values = card.to_numpy(dtype=float)
    if significant is None:
        significant = card.attrs.get("significant")
    marks = (np.zeros(values.shape, bool) if significant is None
             else np.asarray(significant, dtype=bool))
    if ax is None:
        height = 0.42 * card.shape[0] + 1.2 + 0.2 * marks.any()  # room for the marks' note
        _, ax = plt.subplots(figsize=(1.0 * card.shape[1] + 2.6, height), dpi=dpi)
    image = ax.imshow(values, cmap=SKILL_CMAP, vmin=-vmax, vmax=vmax, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        text = ("nan" if not np.isfinite(value) else f"{value:.2f}") + ("*" if marks[i, j] else "")
        dark = np.isfinite(value) and abs(value) > 0.6 * vmax
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
    ax.set_xticks(range(card.shape[1]), [f"{h:g} h" for h in card.columns])
    ax.set_yticks(range(card.shape[0]), list(card.index))
    ax.set_xlabel("lead time")
    ax.set_title((title or f"scorecard: {label}")
                 + ("\n* 95 % interval excludes 0" if marks.any() else ""), fontsize=10)
    plt.colorbar(image, ax=ax, shrink=0.9, label=label)
    return ax


def boundary_curves(bands: pd.DataFrame, variables: Sequence[str] | None = None, axes=None,
                    metric: str = "skill_vs_persistence", title: str | None = None,
                    dpi: int = 80):
    """Skill (``metric``) against the band of distance to the LAM boundary, one line per lead
    time, one panel per variable; the x labels give each band's cells and point count.
    ``bands`` is :func:`evaluation.boundary_skill`'s frame. Returns the array of axes."""
    names = list(variables or dict.fromkeys(bands["variable"]))
    cutout = bands["band_label"].str.startswith("out").any()  # a cutout grid: km out, cells in
    axes = panel_row(len(names), max(4.2, 0.6 * bands["band"].nunique()), 3.4, dpi, axes)
    leads = sorted(bands["lead_hours"].unique())
    cmap = plt.get_cmap("viridis")
    for ax, variable in zip(axes, names, strict=False):
        rows = bands[bands["variable"] == variable]
        order = rows.drop_duplicates("band").sort_values("band")
        position = {b: i for i, b in enumerate(order["band"])}
        for n, lead in enumerate(leads):
            line = rows[rows["lead_hours"] == lead].sort_values("band")
            ax.plot([position[b] for b in line["band"]], line[metric], marker="o",
                    color=cmap(n / max(len(leads) - 1, 1)), label=f"+{lead:g} h")
        ax.axhline(0, color="k", linewidth=0.8)
        ax.set_xticks(range(len(order)), [f"{lab}\n{p} pts" for lab, p in
                                          zip(order["band_label"], order["points"], strict=True)],
                      fontsize=8, rotation=45 if cutout else 0, ha="right" if cutout else "center")
        ax.set_xlabel("distance to the LAM edge (outside: km, inside: cells)" if cutout
                      else "cells to the domain edge")
        ax.set_ylabel(LABELS.get(metric, metric))
        ax.set_title(f"{title + ': ' if title else ''}{variable}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    plt.tight_layout()
    return axes
