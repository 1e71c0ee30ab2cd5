"""Live notebooks: is this kernel driven by a person (JupyterLab) or by a batch run (papermill)?

Notebooks build widgets that call library code only when ``is_live()``; a batch run renders the
same content statically (the report keeps embedded frames), so no cell ever waits on a widget.
Every value a live panel shows is tagged ``data-wb-value="NAME"`` (``value_html``), which the
browser tests read back and compare with the library's own answer.
"""

from __future__ import annotations

import html
import os

__all__ = ["is_live", "value_html", "BATCH_ENV"]

BATCH_ENV = "WORKBENCH_BATCH"  # "1" in kernels that workbench's runs start; "0" forces live


def is_live() -> bool:
    """True in an interactive frontend, False under papermill/nbclient or outside a kernel.

    ``$WORKBENCH_BATCH`` decides when set (``workbench run``/``batch`` set 1). Otherwise the
    kernel's last execute request decides: JupyterLab, Notebook and VS Code send
    ``allow_stdin=True``; nbclient (papermill's engine) always sends False.
    """
    forced = os.environ.get(BATCH_ENV)
    if forced in ("0", "1"):
        return forced == "0"
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return False
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    return bool(getattr(kernel, "_allow_stdin", False))


def value_html(name: str, value: object, label: str = "", unit: str = "") -> str:
    """One figure as HTML, tagged so a browser test can read it: ``label <b data-wb-value>``."""
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    tag = f'<b data-wb-value="{html.escape(name)}">{html.escape(text)}</b>'
    parts = [html.escape(label), tag, html.escape(unit)]
    return " ".join(p for p in parts if p)
