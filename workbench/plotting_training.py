"""Plots of notebook 03 (training): loss curves, validation against persistence, forecast maps.

Pure functions like :mod:`workbench.plotting`: tables or a forecast sample in, the axes or
figure they drew out; nothing is saved. Inputs come from :func:`workbench.training_report.read_metrics`,
:func:`workbench.training_report.validation_table` and :func:`workbench.training.forecast_sample`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from .plotting import (
    CMAPS,
    configure_cartopy,
    is_global,
    map_aspect,
    map_field,
    map_projection,
    panel_row,
)
from .times import hours, iso

__all__ = ["train_loss_curves", "validation_curves", "skill_bars", "forecast_maps"]

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:red", "tab:brown")


def _domains(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["domain"]))


def train_loss_curves(train: pd.DataFrame, ax=None, window: int = 20, column: str = "loss",
                      log: bool = True):
    """Training loss against step, one colour per domain: the raw per-batch losses faint, their
    rolling mean over ``window`` of that domain's batches bold. ``train`` is
    ``read_metrics(...)[0]``; rows where ``column`` is NaN are dropped. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6), dpi=80)
    for domain, color in zip(_domains(train), COLORS * 4, strict=False):
        rows = train[train["domain"] == domain].dropna(subset=[column]).sort_values("step")
        if rows.empty:
            continue
        ax.plot(rows["step"], rows[column], color=color, alpha=0.25, linewidth=0.6)
        smooth = rows[column].rolling(window, min_periods=1).mean()
        ax.plot(rows["step"], smooth, color=color, linewidth=1.8,
                label=f"{domain} (rolling mean of {window} batches)")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"training {column} (normalised)")
    ax.set_title(f"training {column} per domain")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def validation_curves(val: pd.DataFrame, axes=None):
    """Validation MSE against lead time, one panel per domain: the model at every validation
    (earlier ones faint, the final one bold) and persistence (dashed). ``val`` is
    ``read_metrics(...)[1]``. Returns the array of axes."""
    domains = _domains(val)
    axes = panel_row(len(domains), 4.2, 3.4, axes=axes)
    for ax, domain, color in zip(axes, domains, COLORS * 4, strict=False):
        rows = val[val["domain"] == domain]
        steps = sorted(rows["step"].unique())
        for step in steps:
            at = rows[rows["step"] == step].sort_values("lead_hours")
            final = step == steps[-1]
            ax.plot(at["lead_hours"], at["model_mse"], marker="o" if final else None,
                    color=color, alpha=1.0 if final else 0.35, linewidth=2 if final else 1,
                    label=f"model, step {step}" if final or step == steps[0] else None)
        final = rows[rows["step"] == steps[-1]].sort_values("lead_hours")
        ax.plot(final["lead_hours"], final["persistence_mse"], color="k", linestyle="--",
                marker="s", label="persistence")
        ax.set_xticks(final["lead_hours"])
        ax.set_xlabel("lead time (h)")
        ax.set_ylabel("MSE (normalised, area-weighted)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{domain}: validation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    plt.tight_layout()
    return axes


def skill_bars(table: pd.DataFrame, ax=None):
    """Skill against persistence (1 - model/persistence) per domain and lead time, as grouped
    bars labelled with their values. ``table`` is ``validation_table(...)``. Returns the axes."""
    domains = _domains(table)
    leads = sorted(table["lead_hours"].unique())
    if ax is None:
        _, ax = plt.subplots(figsize=(0.9 * len(leads) * len(domains) + 2.5, 3.2), dpi=80)
    width = 0.8 / max(len(domains), 1)
    k = np.arange(len(leads))
    for i, (domain, color) in enumerate(zip(domains, COLORS * 4, strict=False)):
        rows = table[table["domain"] == domain].set_index("lead_hours").reindex(leads)
        bars = ax.bar(k + (i - (len(domains) - 1) / 2) * width, rows["skill"], width=width,
                      color=color, label=domain)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(0, color="k", linewidth=0.8)
    skill = table["skill"].to_numpy(dtype=float)
    ax.set_ylim(min(0.0, float(np.nanmin(skill)) * 1.15), max(0.0, float(np.nanmax(skill))) * 1.15
                + 0.05)
    ax.set_xticks(k, [f"{h:g} h" for h in leads])
    ax.set_ylabel("skill vs persistence")
    ax.set_title("1 - MSE(model) / MSE(persistence), final validation")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def _panel_dataset(sample: dict, ds: xr.Dataset, variable: str, values: np.ndarray,
                   units: str) -> xr.Dataset:
    return xr.Dataset({variable: ("grid", np.asarray(values), {"units": units})},
                      coords={"latitude": ("grid", np.asarray(sample["latitude"])),
                              "longitude": ("grid", np.asarray(sample["longitude"]))},
                      attrs=dict(ds.attrs))


def forecast_maps(sample: dict, ds: xr.Dataset, variables: Sequence[str] = ("z_500", "t2m"),
                  leads: Sequence[int] | None = None, dpi: int = 80, width: float = 15.0):
    """Truth, forecast, forecast error and persistence error side by side on cartopy maps, one
    row per variable and lead step (default: the first and the last).

    ``sample`` is :func:`workbench.training.forecast_sample`'s output (physical units), ``ds``
    the domain's dataset, read for its grid (``grid_shape``, ``crs``, ``grid_x``/``grid_y``)
    and units: a grid covering the globe (a cutout grid as triangles) is drawn whole on
    PlateCarree, a limited area as its region (projected ones in their own CRS). Truth
    and forecast share a colour scale, and so do the two errors. Returns the figure.
    """
    import cartopy.crs as ccrs

    configure_cartopy()
    names = list(sample["variables"])
    chosen = [v for v in variables if v in names] or names[:1]
    n_leads = np.asarray(sample["truth"]).shape[0]
    leads = list(dict.fromkeys(leads if leads is not None else (0, n_leads - 1)))
    whole_globe = is_global(ds)  # a limited area (any grid kind) is drawn as its region
    projection = ccrs.PlateCarree() if whole_globe else map_projection(ds)
    aspect = 0.5 if whole_globe else map_aspect(ds)
    rows = [(v, lead) for v in chosen for lead in leads]
    fig = plt.figure(figsize=(width, len(rows) * (width / 4) * aspect + 0.6), dpi=dpi)
    init = iso(sample["init_time"])[:13]  # to the hour, in the data's calendar
    fig.suptitle(f"{sample['domain']}: forecast from {init}", fontsize=11)
    for r, (variable, lead) in enumerate(rows):
        k = names.index(variable)
        truth = np.asarray(sample["truth"])[lead, k]
        forecast = np.asarray(sample["forecast"])[lead, k]
        persistence = np.asarray(sample["persistence"])[lead, k]
        units = ds[variable].attrs.get("units", "") if variable in ds else ""
        lead_hours = hours(sample["valid_times"][lead] - sample["init_time"])
        low = float(np.nanmin([truth.min(), forecast.min()]))
        high = float(np.nanmax([truth.max(), forecast.max()]))
        error, p_error = forecast - truth, persistence - truth
        limit = float(np.nanmax(np.abs(np.concatenate([error, p_error])))) or 1.0
        panels = (
            ("truth", truth, CMAPS.get(variable, "viridis"), low, high),
            ("forecast", forecast, CMAPS.get(variable, "viridis"), low, high),
            ("forecast - truth", error, "RdBu_r", -limit, limit),
            ("persistence - truth", p_error, "RdBu_r", -limit, limit),
        )
        for c, (label, values, cmap, vmin, vmax) in enumerate(panels):
            ax = fig.add_subplot(len(rows), 4, r * 4 + c + 1, projection=projection)
            rmse = f", rms {np.sqrt(np.nanmean(values ** 2)):.3g}" if c >= 2 else ""
            map_field(_panel_dataset(sample, ds, variable, values, units), variable, ax=ax,
                      cmap=cmap, vmin=vmin, vmax=vmax, coastline_scale="110m" if whole_globe
                      else "50m", title=f"{variable} +{lead_hours:g} h: {label}{rmse}")
            ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig
