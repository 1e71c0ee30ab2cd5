"""A real JupyterLab server and headless Chromium (Playwright) for the live-notebook tests.

``lab_session(root)`` starts JupyterLab as ``workbench lab`` does (``lab.lab_command``) on a free
localhost port with a token, serving ``root``, and yields a ``Lab`` whose ``open`` loads one
notebook in Chromium with every outside address cut off. ``Lab.run_all`` runs all cells through JupyterLab's own command and waits
until the kernel is idle with every code cell executed; widgets are then driven like a person
does (``set_slider``, ``select``), and figures tagged ``data-wb-value`` (``workbench.live``)
are read back with ``value``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from browser import ARGS, CHROMIUM, chromium_available

from workbench import runs
from workbench.lab import lab_command

# browser.ARGS, except that 127.0.0.1 (the server) resolves; every other address still does not
LAB_ARGS = [a if not a.startswith("--host-resolver-rules") else a + ", EXCLUDE 127.0.0.1"
            for a in ARGS]
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")

_CELLS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter((c) => c.model.type === 'code');
  const errors = [];
  cells.forEach((c, i) => {
    for (const o of c.model.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  });
  return {
    kernel: kernel ? kernel.status : 'none',
    executed: cells.filter((c) => c.model.executionCount !== null).length,
    cells: cells.length,
    errors: errors,
  };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_root(tmp_path: Path) -> Path:
    """A fresh folder for JupyterLab to serve, once a browser test can run here: chromium and
    Playwright present (``make test`` installs both, so a missing one fails the test rather than
    skipping it) and the ``workbench`` kernel registered."""
    missing = chromium_available()
    if missing:
        pytest.fail(missing)
    runs.ensure_kernel()
    root = tmp_path / "lab"
    root.mkdir()
    return root


@dataclass
class Lab:
    """A running JupyterLab and one Chromium page; what the page asked of the outside world."""

    url: str
    token: str
    page: object
    external: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def open(self, notebook: str, timeout_s: float = 120) -> None:
        """Load ``notebook`` (relative to the server root) and wait for its kernel to be idle."""
        self.page.goto(f"{self.url}/lab/tree/{notebook}?token={self.token}")
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell"
                                    " && window.jupyterapp.shell.currentWidget"
                                    " && window.jupyterapp.shell.currentWidget.sessionContext",
                                    timeout=timeout_s * 1000)
        self._wait(lambda s: s and s["kernel"] == "idle", timeout_s, "the kernel to start")

    def run_all(self, timeout_s: float = 600) -> dict:
        """Run all cells (JupyterLab's ``notebook:run-all-cells``); wait until every code cell ran."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        return self.wait_all_ran(timeout_s)

    def start_run_all(self) -> None:
        """Run all cells without waiting (to press a widget while a cell still runs): the
        command's promise, which settles once every cell ran, is not awaited."""
        self.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    def wait_all_ran(self, timeout_s: float = 600) -> dict:
        """Wait until every code cell ran; fail on any cell's error."""
        state = self._wait(lambda s: s and (s["errors"] or (s["kernel"] == "idle"
                                                            and s["executed"] == s["cells"])),
                           timeout_s, "every cell to run")
        if state["errors"]:
            raise AssertionError("a cell failed in JupyterLab: " + "; ".join(state["errors"]))
        return state

    def wait_idle(self, timeout_s: float = 120) -> None:
        """Wait until the kernel has answered what a widget asked (busy, then idle)."""
        self.page.wait_for_timeout(300)
        self._wait(lambda s: s and s["kernel"] == "idle", timeout_s, "the kernel to be idle")

    def widget(self, description: str):
        """The widget box whose label reads ``description`` (ipywidgets 8 DOM)."""
        label = self.page.locator(".widget-label", has_text=description).first
        return label.locator("xpath=..")

    def set_slider(self, description: str, value: int | float) -> None:
        """Type ``value`` into the slider's editable readout, as a person may, and press Enter."""
        readout = self.widget(description).locator(".widget-readout").first
        readout.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(str(value))
        self.page.keyboard.press("Enter")
        self.wait_idle()

    def select(self, description: str, label: str) -> None:
        """Choose the option shown as ``label`` in the dropdown ``description``."""
        self.widget(description).locator("select").first.select_option(label=label)
        self.wait_idle()

    def click(self, description: str) -> None:
        """Press the button whose text is ``description``."""
        self.page.locator("button.jupyter-button", has_text=description).first.click()
        self.wait_idle()

    def value(self, name: str, timeout_s: float = 60) -> str:
        """The text of the figure tagged ``data-wb-value="name"`` (the last one shown)."""
        loc = self.page.locator(f'[data-wb-value="{name}"]')
        loc.last.wait_for(state="attached", timeout=timeout_s * 1000)
        return (loc.last.text_content() or "").strip()  # inner_text is '' off screen
        # (JupyterLab 4 gives cells content-visibility: auto)

    def wait_value(self, name: str, expected: str, timeout_s: float = 60) -> str:
        """Wait until the figure ``name`` reads ``expected``; return what it reads at the end."""
        deadline = time.monotonic() + timeout_s
        text = self.value(name, timeout_s)
        while text != expected and time.monotonic() < deadline:
            self.page.wait_for_timeout(250)
            text = self.value(name, timeout_s)
        return text

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)

    def _wait(self, done, timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        state = None
        while time.monotonic() < deadline:
            state = self.page.evaluate(_CELLS_JS)
            if done(state):
                return state
            self.page.wait_for_timeout(500)
        raise AssertionError(f"JupyterLab: waited {timeout_s:.0f} s for {what}; last state {state}")


@contextlib.contextmanager
def lab_session(root: Path, log: Path) -> Iterator[Lab]:
    """A JupyterLab server on ``root`` and one offline Chromium page on it; stopped afterwards."""
    from playwright.sync_api import sync_playwright

    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_NO_CONFIG="1", BROWSER="true")
    env.pop("WORKBENCH_BATCH", None)
    cmd = lab_command(root, port, token, expose_app=True)  # as `workbench lab` starts it
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  cwd=root, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"jupyter lab did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAB_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                lab = Lab(url=url, token=token, page=page)

                def route(r) -> None:
                    if r.request.url.startswith(LOCAL):
                        r.continue_()
                    else:
                        lab.external.append(r.request.url)
                        r.abort()

                page.route("**/*", route)
                page.on("pageerror", lambda e: lab.page_errors.append(str(e)))
                page.set_default_timeout(60_000)
                yield lab
            finally:
                browser.close()
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """End the server's whole session (kernels included): TERM, then KILL after 20 s."""
    for sig, wait_s in ((15, 20), (9, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        try:
            server.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
