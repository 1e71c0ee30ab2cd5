"""The workbench installs into a researcher's anemoi environment: pip resolves it together
with the newest anemoi-graphs and anemoi-models (which need torch<2.11) without a conflict.

A dry run in a fresh venv (pip reads the wheels' metadata from PyPI, downloads no torch):
skipped with the reason only where PyPI cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
NEWEST = {"anemoi-graphs": "0.9.8", "anemoi-models": "0.19.0"}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pip_resolves_workbench_with_the_newest_anemoi(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--dry-run", "--quiet", "--report", str(report),
         str(PROJECT), *(f"{name}=={version}" for name, version in NEWEST.items())],
        capture_output=True, text=True, timeout=540)
    if done.returncode != 0 and any(word in done.stderr for word in (
            "Could not fetch URL", "NewConnectionError", "Temporary failure in name resolution",
            "No matching distribution found for anemoi")):
        pytest.skip(f"PyPI cannot be reached here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert chosen["workbench"] == "0.1.0"
    for name, version in NEWEST.items():
        assert chosen[name] == version
    major, minor = (int(part) for part in chosen["torch"].split("+")[0].split(".")[:2])
    assert (major, minor) < (2, 11), chosen["torch"]  # what the newest anemoi releases need
