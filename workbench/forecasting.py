"""``workbench forecast``: one forecast from a checkpoint, written to a file.

:func:`forecast_file` rolls a checkpoint out on a domain from one initial time and writes the
forecast as a CF zarr or netCDF file (:func:`workbench.forecast_files.write_forecast`). A
self-describing checkpoint needs nothing but the data, found in the catalog by name: its
training config, weights, normalisers and graph configs are in the file
(:mod:`workbench.restore`); the graph is rebuilt (or read from ``graph``) and checked against
the one the checkpoint was trained on.
"""

from __future__ import annotations

from pathlib import Path

from . import catalog
from .errors import WorkbenchError
from .evaluation import forecast
from .forecast_files import write_forecast
from .times import date_fields

SUFFIXES = {".zarr": "zarr", ".nc": "netcdf"}


def forecast_file(checkpoint: str | Path, domain: str, start: str, steps: int, out: str | Path,
                  members: int = 1, graph: str | None = None, cache: str | Path | None = None,
                  normalise: str = "training", progress: bool = False) -> Path:
    """The forecast of ``checkpoint`` (a checkpoint file or a run dir) on ``domain`` from
    ``start`` (the initial time: the last input step, a time of the data at the run's step)
    for ``steps`` lead steps, written to ``out`` (``.zarr`` or ``.nc``); returns ``out``."""
    out = Path(out)
    if out.suffix not in SUFFIXES:
        raise WorkbenchError(f"forecast --out {out}: name a .zarr or .nc file")
    try:
        date_fields(start)
    except (ValueError, TypeError):
        raise WorkbenchError(f"forecast --start {start!r} is not a date (e.g. 2020-03-20T06:00)"
                             ) from None
    ds = forecast(checkpoint, domain, steps=steps, members=members, graph=graph, cache=cache,
                  progress=progress, normalise=normalise, start=start)
    truth = catalog.open_dataset(ds.attrs["dataset"], cache=cache)
    units = {name: dict(truth[name].attrs) for name in ds.data_vars if name in truth}
    return write_forecast(ds, out, SUFFIXES[out.suffix], units)
