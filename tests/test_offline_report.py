"""An executed notebook exported with export_html renders fully offline in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from browser import check_page, chromium_available

import workbench.html
from workbench.errors import WorkbenchError
from workbench.html import ensure_js_assets, export_html
from workbench.runs import KERNEL_NAME as KERNEL
from workbench.runs import ensure_kernel

CELLS = [
    "from workbench.plotting_offline import configure_cartopy, setup_hvplot\n"
    "configure_cartopy()\nsetup_hvplot()",
    "%matplotlib inline\n"
    "import cartopy.crs as ccrs\nimport matplotlib.pyplot as plt\n"
    "ax = plt.axes(projection=ccrs.PlateCarree())\nax.coastlines('110m')\nax.set_global()\nplt.show()",
    "import numpy as np\nimport xarray as xr\n"
    "da = xr.DataArray(np.random.default_rng(0).random((10, 20)), dims=('lat', 'lon'),\n"
    "                  coords={'lat': np.linspace(-45, 45, 10), 'lon': np.linspace(0, 342, 20)}, name='t2m')\n"
    "da.hvplot.image(x='lon', y='lat', width=400, height=250)",
    "import ipywidgets as widgets\n"
    "widgets.HBox([widgets.Dropdown(options=['t2m', 'z500', 'tp'], value='z500', description='field'),\n"
    "              widgets.Button(description='icon font', icon='check')])",
]


@pytest.mark.slow
def test_report_renders_offline(tmp_path: Path) -> None:
    reason = chromium_available()
    if reason:
        pytest.skip(reason)
    import papermill as pm

    ensure_js_assets()
    ensure_kernel()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL, "language": "python"}
    src, executed = tmp_path / "report.ipynb", tmp_path / "report.out.ipynb"
    nbformat.write(nb, src)
    pm.execute_notebook(src, executed, kernel_name=KERNEL, progress_bar=False, cwd=tmp_path)

    widget_state = nbformat.read(executed, as_version=4).metadata["widgets"]
    assert widget_state["application/vnd.jupyter.widget-state+json"]["state"]

    html = export_html(executed, tmp_path / "report.html", title="offline check")
    text = html.read_text(encoding="utf-8")
    size_mb = html.stat().st_size / 1e6
    print(f"\nreport: {html} ({size_mb:.2f} MB)")
    assert size_mb < 20
    assert not re.findall(r"<script[^>]+src=[\"']?[^\"'>]*(cdn\.jsdelivr|unpkg\.com|cdnjs)", text)
    assert "<title>offline check</title>" in text

    result = check_page(html, screenshot=tmp_path / "report.png")
    print(f"check_page: {result}\nscreenshot: {tmp_path / 'report.png'}")
    assert result["external_requests"] == []
    assert result["failed_requests"] == []
    assert result["console_errors"] == []
    assert result["page_errors"] == []
    assert result["bokeh_plots"] >= 1
    assert result["widgets"] >= 1
    assert result["images"] >= 1


def test_export_without_js_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workbench.html, "STATIC_DIR", tmp_path / "static")
    nb = tmp_path / "empty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), nb)
    with pytest.raises(WorkbenchError, match="workbench setup"):
        export_html(nb, tmp_path / "empty.html")
    assert not (tmp_path / "empty.html").exists()
