"""``workbench lab``: JupyterLab on the notebooks with the ``workbench`` kernel, nothing fetched.

The widget and BokehJS code come from the installed packages (jupyterlab_widgets, the bokeh
and panel lab extensions); the news feed and the update check, JupyterLab's only calls out,
are switched off, and so is its question whether it may fetch news. The test suite's
JupyterLab (tests/lab.py) starts with the same command.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import sys
from pathlib import Path

from .errors import WorkbenchError

__all__ = ["lab_command", "lab_url", "start_lab"]

# JupyterLab's defaults for its settings (overrides.json): news "Never", no update check, so it
# neither fetches nor asks whether it may
SETTINGS = Path(__file__).parent / "templates" / "lab"
OFFLINE = ["--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.app_settings_dir={SETTINGS}"]


def lab_command(root: str | Path, port: int, token: str, ip: str = "127.0.0.1",
                expose_app: bool = False) -> list[str]:
    """The ``jupyter lab`` argv serving ``root`` on ``ip:port`` with ``token``, offline."""
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lab", "--no-browser", f"--ip={ip}", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={Path(root).resolve()}", *OFFLINE]
    if expose_app:  # window.jupyterapp, for the browser tests
        cmd.append("--LabApp.expose_app_in_browser=True")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def lab_url(ip: str, port: int, token: str) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/lab?token={token}"


def start_lab(root: str | Path = "notebooks", port: int = 8888, ip: str = "127.0.0.1") -> None:
    """Register the kernel, print the URL, and become ``jupyter lab`` (Ctrl-C stops it)."""
    from .runs import ensure_kernel

    root = Path(root)
    if not root.is_dir():
        raise WorkbenchError(f"{root} is not a folder; give the notebooks folder (workbench lab "
                             "notebooks)")
    if ip != "localhost":
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise WorkbenchError(f"--ip {ip!r} is not an IP address; give one such as "
                                 "127.0.0.1 or 0.0.0.0") from None
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as probe:
        try:
            probe.bind((ip, port))
        except OSError as err:
            raise WorkbenchError(f"cannot listen on {ip}:{port} ({err.strerror}); pick another "
                                 "--port") from None
    ensure_kernel()
    token = secrets.token_hex(16)
    cmd = lab_command(root, port, token, ip)
    print(f"JupyterLab on {root.resolve()} (kernel: workbench); open\n  {lab_url(ip, port, token)}",
          flush=True)
    os.execv(cmd[0], cmd)
