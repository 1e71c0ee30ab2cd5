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


def tiny_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook of code cells for the ``workbench`` kernel, the first tagged ``parameters``,
    written to ``path``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "workbench",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                *(nbformat.v4.new_code_cell(source) for source in cells)]
    nbformat.write(nb, path)
    return path


def user_zarr(folder: Path) -> Path:
    """A user's plain zarr store (t2m on a 5 x 8 lat-lon grid, 16 times in 2 chunks) and its
    catalog entry ``mine`` in ``folder/cat``; returns the catalog folder."""
    import numpy as np
    import xarray as xr

    times = np.datetime64("2021-03-01") + np.arange(16) * np.timedelta64(6, "h")
    ds = xr.Dataset({"t2m": (("time", "lat", "lon"), np.ones((16, 5, 8), np.float32))},
                    coords={"time": times, "lat": np.linspace(-60, 60, 5),
                            "lon": np.arange(0, 360, 45.0)})
    ds.chunk({"time": 8}).to_zarr(folder / "user.zarr", consolidated=False)
    write_entry(folder / "cat", "mine", f"""\
name: mine
domain: test
source: {{kind: zarr, path: {folder / 'user.zarr'}}}
variables: [t2m]
time_step: 6h
grid: {{kind: test, resolution: test}}
""")
    return folder / "cat"



PROJECT = Path(__file__).resolve().parent.parent
# The anemoi peers (make peer): the releases pinned first, and the newest (torch 2.10).
ANEMOI_PEERS = {"anemoi-graphs-0.9.0": PROJECT / ".venv-anemoi",
                "anemoi-graphs-0.9.8": PROJECT / ".venv-anemoi-latest"}


@pytest.fixture(params=list(ANEMOI_PEERS))
def anemoi_peer(request) -> Path:
    """The bin folder of each anemoi peer venv in turn; skipped, with the reason, where that
    venv was not (completely) installed."""
    venv = ANEMOI_PEERS[request.param]
    if not (venv / ".installed").exists():
        pytest.skip(f"{request.param} is not installed in {venv.name} (make peer)")
    return venv / "bin"


def frozen_run(run_dir: Path, preset: str = "demo", **changes) -> Path:
    """A tiny run of a training preset whose weights never move (lr 0, so its model is still
    persistence): hidden_dim 8, one processor layer, one step; ``changes`` set top-level keys."""
    from workbench import training

    raw = training.config_dict(training.load_training_config(preset))
    raw["model"].update(hidden_dim=8, processor_layers=1)
    raw.update({"max_steps": 1, "optimizer": {"lr": 0.0}, **changes})
    return training.fit(training.training_config_from_dict(raw), run_dir=run_dir, progress=False)
