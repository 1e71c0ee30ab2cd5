"""Self-contained HTML reports from executed notebooks, renderable with no network.

The ``offline`` nbconvert template (``workbench/templates/offline``) extends ``lab`` and
inlines require.js and the ipywidgets html-manager (``embed-amd.js``) instead of loading
them from CDNs; MathJax and Mermaid (CDN-only) are left out. Bokeh/HoloViews JS must be
embedded by the notebook itself (``workbench.plotting_offline.setup_hvplot``) and
coastlines read from local files (``configure_cartopy``).

Widget state: papermill 2.7 executes through nbclient, whose ``store_widget_state`` is
True by default, so the executed notebook already holds
``metadata.widgets["application/vnd.jupyter.widget-state+json"]``; nothing to pass.
The JS is fetched once by ``ensure_js_assets`` (``workbench setup``, run by ``make``), not committed.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import warnings
from pathlib import Path

from .errors import WorkbenchError

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = TEMPLATES_DIR / "offline" / "static"
# html-manager 1.x speaks ipywidgets 8's widget protocol (ipywidgets' own range: ^1.0.1)
JS_PACKAGES = {
    "require.js": ("requirejs@2.3.8", "package/require.js"),
    "embed-amd.js": ("@jupyter-widgets/html-manager@1.0.15", "package/dist/embed-amd.js"),
}
_SOURCE_MAP = re.compile(rb"^//# sourceMappingURL=\S*$", re.MULTILINE)
# webpack's font URLs (publicPath + hash) point next to a script file that an inlined copy lacks
_WOFF2 = re.compile(rb'\b\w+\.p\+"([0-9a-f]+\.woff2)"')


def _missing_assets() -> list[str]:
    return [name for name in JS_PACKAGES if not (STATIC_DIR / name).is_file()]


def ensure_js_assets(force: bool = False) -> Path:
    """Fetch require.js and embed-amd.js with ``npm pack`` into the template's static folder."""
    if not force and not _missing_assets():
        return STATIC_DIR
    npm = shutil.which("npm")
    if npm is None:
        raise WorkbenchError("npm not found: install Node.js, then run `workbench setup`")
    STATIC_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (spec, member) in JS_PACKAGES.items():
            proc = subprocess.run(
                [npm, "pack", "--silent", spec], cwd=tmp, capture_output=True, text=True
            )
            if proc.returncode != 0:
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise WorkbenchError(f"`npm pack {spec}` failed ({err}): check the npm registry")
            tgz = Path(tmp) / proc.stdout.strip().splitlines()[-1]
            with tarfile.open(tgz) as tar:
                data = _inline_fonts(tar, tar.extractfile(member).read())  # type: ignore[union-attr]
            # an inlined script has no URL: drop source-map comments that point nowhere
            _write_atomic(STATIC_DIR / name, _SOURCE_MAP.sub(b"", data))
    return STATIC_DIR


def _inline_fonts(tar: tarfile.TarFile, js: bytes) -> bytes:
    """Swap webpack woff2 font URLs (FontAwesome icons) for data: URIs; browsers try woff2 first."""

    def data_uri(m: re.Match[bytes]) -> bytes:
        font = tar.extractfile(f"package/dist/{m.group(1).decode()}").read()  # type: ignore[union-attr]
        return b'"data:font/woff2;base64,' + base64.b64encode(font) + b'"'

    return _WOFF2.sub(data_uri, js)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_html(notebook_path: Path, html_path: Path, title: str | None = None) -> Path:
    """Convert an executed notebook to one self-contained HTML file (written atomically)."""
    import nbformat
    from nbconvert import HTMLExporter

    missing = _missing_assets()
    if missing:
        raise WorkbenchError(
            f"offline report JS missing ({', '.join(missing)}): run `workbench setup` (make does it)"
        )
    nb = nbformat.read(Path(notebook_path), as_version=4)
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES_DIR)])
    with warnings.catch_warnings():  # hvplot leaves an empty display_data; nothing to show
        warnings.filterwarnings("ignore", re.escape("Your element with mimetype(s) dict_keys([])"))
        body, _ = exporter.from_notebook_node(
            nb, resources={"metadata": {"name": Path(notebook_path).stem}}
        )
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(html_path, body.encode("utf-8"))
    return html_path
