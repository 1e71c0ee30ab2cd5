"""Open an HTML report in headless Debian chromium with the network cut off, and count what rendered."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no outside address resolves, whatever asks
]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

# Counts in the light DOM and in every open shadow root (BokehJS 3 renders into shadow DOM).
_COUNT_JS = """() => {
  const all = [];
  const walk = (root) => root.querySelectorAll('*').forEach((el) => {
    all.push(el);
    if (el.shadowRoot) walk(el.shadowRoot);
  });
  walk(document);
  const drawn = (c) => c.width > 0 && c.height > 0;
  return {
    bokeh_plots: all.filter((el) => el.classList.contains('bk-Canvas')
      && [...(el.shadowRoot || el).querySelectorAll('canvas')].some(drawn)).length,
    widgets: document.querySelectorAll('.widget-subarea > .jupyter-widgets').length,
    images: [...document.images].filter((im) => im.complete && im.naturalWidth > 0).length,
  };
}"""


def chromium_available() -> str | None:
    """Why the browser check cannot run here, or None when it can."""
    if shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return None


def check_page(html_path: Path, screenshot: Path | None = None, settle_s: float = 8.0) -> dict:
    """Load ``html_path`` offline; return outside requests, errors and rendered-element counts."""
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    failed: list[str] = []
    console_errors: list[str] = []
    page_errors: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith(LOCAL_SCHEMES):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.route("**/*", route)
            page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(f"{r.url[:200]} {r.failure}"))
            page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
            page.wait_for_load_state("networkidle")
            # settle: widgets render after 'load'; stop once counts are non-zero and steady,
            # or have not changed for 2 s, or after settle_s
            counts, steady, deadline = page.evaluate(_COUNT_JS), 0, time.monotonic() + settle_s
            while time.monotonic() < deadline and not (steady >= 1 and all(counts.values())):
                if steady >= 4:
                    break
                page.wait_for_timeout(500)
                new = page.evaluate(_COUNT_JS)
                steady = steady + 1 if new == counts else 0
                counts = new
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {
        "external_requests": external,
        "failed_requests": failed,
        "console_errors": console_errors,
        "page_errors": page_errors,
        **counts,
    }
