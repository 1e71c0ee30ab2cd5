"""Helpers shared by tests: catalog files written on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest


def write_entry(folder: Path, name: str, text: str) -> Path:
    """Write one catalog YAML file (``text`` is the body) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


SMALL_WORLD = """\
name: {name}
domain: {domain}
source:
  kind: generator
  grid: {grid}
  {grid_param}
  start: "2020-01-01"
  end: "2020-01-02T18:00"
  seed: 0
variables: [t2m, tp, orog]
time_step: 6h
grid: {{kind: test, resolution: coarse}}
"""


@pytest.fixture
def small_catalog(tmp_path: Path) -> Path:
    """A catalog folder with two tiny generated datasets (global 10 deg, conus 90 km)."""
    folder = tmp_path / "catalog"
    write_entry(folder, "tiny-global", SMALL_WORLD.format(
        name="tiny-global", domain="global", grid="regular_latlon", grid_param="resolution_deg: 10"))
    write_entry(folder, "tiny-conus", SMALL_WORLD.format(
        name="tiny-conus", domain="conus", grid="hrrr", grid_param="coarsen: 30"))
    return folder
