"""JupyterLab itself, offline, in a real browser: a live kernel is told apart from a batch run."""

from __future__ import annotations

import json

import nbformat
import pytest

from workbench import runs

pytestmark = pytest.mark.slow

CELLS = [
    "start = 3  # the slider's first value",
    "import ipywidgets as widgets\nfrom IPython.display import display\n"
    "from workbench import live\nLIVE = live.is_live()\nprint('live', LIVE)",
    "shown = widgets.HTML(live.value_html('square', start ** 2, 'square:'))\n"
    "slider = widgets.IntSlider(value=start, min=0, max=20, description='number')\n"
    "slider.observe(lambda ch: setattr(shown, 'value', live.value_html('square', ch['new'] ** 2,"
    " 'square:')), names='value')\n"
    "display(widgets.VBox([slider, shown]) if LIVE else shown)\n"
    "import json, pathlib; pathlib.Path('live.json').write_text(json.dumps(LIVE))",
]


def write_notebook(path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": runs.ensure_kernel(), "display_name": "Python (workbench)",
                                 "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.timeout(300)
def test_jupyterlab_runs_a_live_widget_offline(tmp_path):
    from lab import lab_root, lab_session

    root = lab_root(tmp_path)
    write_notebook(root / "square.ipynb")
    with lab_session(root, tmp_path / "lab.log") as lab:
        lab.open("square.ipynb")
        lab.run_all(timeout_s=120)
        assert json.loads((root / "live.json").read_text()) is True  # JupyterLab is live
        assert lab.value("square") == "9"
        lab.set_slider("number", 12)
        assert lab.wait_value("square", "144") == "144"
        lab.screenshot(tmp_path / "square.png")
        # the settings workbench lab ships: JupyterLab does not ask whether it may fetch news
        assert lab.page.get_by_text("notified about official Jupyter news").count() == 0
        assert lab.external == [], f"JupyterLab asked outside: {lab.external[:5]}"
        assert lab.page_errors == []


@pytest.mark.timeout(300)
def test_a_batch_run_is_not_live(tmp_path):
    write_notebook(tmp_path / "square.ipynb")
    result = runs.run_notebook(tmp_path / "square.ipynb", runs_dir=tmp_path / "runs", progress=False)
    assert result.status == "ok", result.error
    assert json.loads((result.run_dir / "live.json").read_text()) is False


@pytest.mark.timeout(120)
def test_workbench_lab_prints_a_url_that_answers(tmp_path):
    """``workbench lab`` (what ``make lab`` runs) registers the kernel, prints the URL with its
    token, and that URL serves JupyterLab; the kernel list offers ``workbench``."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from lab import free_port, stop

    port = free_port()
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "lab", str(tmp_path),
                                   "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True, env=dict(os.environ))
    try:
        deadline, url = time.monotonic() + 60, None
        while url is None and time.monotonic() < deadline and server.poll() is None:
            url = next((w for w in log.read_text().split() if w.startswith("http://")), None)
            time.sleep(0.3)
        assert url and f":{port}/lab?token=" in url, log.read_text()[-1000:]
        token = url.split("token=")[1]
        while True:
            try:
                page = urllib.request.urlopen(url, timeout=2).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-1000:]
                time.sleep(0.5)
        assert "JupyterLab" in page
        specs = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/kernelspecs?token={token}", timeout=5).read())
        assert "workbench" in specs["kernelspecs"]
        with pytest.raises(OSError):  # the token is required
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernelspecs", timeout=5)
    finally:
        stop(server)
    assert server.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
