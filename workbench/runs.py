"""Notebook runs: papermill execution into run dirs and HTML export.

A run dir ``runs/<run_id>/`` holds the executed notebook, ``params.yaml``, ``report.html``,
the ``summary.json`` the notebook writes (its working directory is the run dir) and
``run.json`` (status, timing, error).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import dump_yaml
from .errors import WorkbenchError
from .parameters import check_parameters

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
KERNEL_NAME = "workbench"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# A cell running longer than this fails the run (engine.CellFailure) instead of hanging it.
# Override per run or with $WORKBENCH_CELL_TIMEOUT (seconds).
CELL_TIMEOUT_S = 3600


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    status: str  # "ok" | "failed"
    duration_s: float
    error: str | None = None

    @property
    def summary(self) -> dict:
        path = self.run_dir / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}


# --------------------------------------------------------------------------- notebooks


def list_notebooks() -> list[Path]:
    """The project's notebooks, in order."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def resolve_notebook(name: str | Path) -> Path:
    """A notebook by path, file name or stem (``00_catalog_tour``)."""
    candidates = [Path(name), NOTEBOOK_DIR / str(name), NOTEBOOK_DIR / f"{name}.ipynb"]
    for path in candidates:
        if path.is_file() and path.suffix == ".ipynb":
            return path.resolve()
    known = ", ".join(p.stem for p in list_notebooks())
    raise WorkbenchError(f"unknown notebook {str(name)!r}; known: {known}")


# --------------------------------------------------------------------------- kernel


def ensure_kernel() -> str:
    """Register the ``workbench`` kernel for this interpreter if it is missing."""
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    spec_dir = specs.get(KERNEL_NAME)
    if spec_dir:
        argv = json.loads((Path(spec_dir) / "kernel.json").read_text())["argv"]
        if Path(argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (workbench)", prefix=sys.prefix)
    return KERNEL_NAME


# --------------------------------------------------------------------------- running


def new_run_id(notebook: Path) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{notebook.stem}-{stamp}-{secrets.token_hex(2)}"


def cell_timeout(seconds: float | None = None) -> int:
    """The cell timeout in whole seconds (nbclient's unit): ``seconds``, else
    $WORKBENCH_CELL_TIMEOUT, else CELL_TIMEOUT_S; rounded up (0 would switch it off)."""
    raw = seconds if seconds is not None else os.environ.get("WORKBENCH_CELL_TIMEOUT",
                                                             CELL_TIMEOUT_S)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not 0 < value < float("inf"):
        raise WorkbenchError(f"cell timeout {raw!r} (WORKBENCH_CELL_TIMEOUT): give seconds > 0")
    return math.ceil(value)


def run_notebook(
    notebook: str | Path,
    params: Mapping | None = None,
    runs_dir: str | Path = "runs",
    run_id: str | None = None,
    progress: bool = True,
    cell_timeout_s: float | None = None,
    log_output: bool = False,
) -> RunResult:
    """Execute a notebook with papermill into ``runs_dir/run_id`` and export its HTML report."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from .engine import ENGINE_NAME, CellFailure
    from .html import export_html

    path = resolve_notebook(notebook)
    params = dict(params or {})
    params = check_parameters(path, params)
    timeout_s = cell_timeout(cell_timeout_s)
    run_dir = Path(runs_dir).resolve() / (run_id or new_run_id(path))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "params.yaml").write_text(dump_yaml(params, sort_keys=True))
    for var in THREAD_VARS:
        os.environ.setdefault(var, "2")
    if os.environ.get("WORKBENCH_CACHE"):  # the kernel runs in run_dir: keep the caller's cache
        os.environ["WORKBENCH_CACHE"] = str(Path(os.environ["WORKBENCH_CACHE"]).resolve())
    kernel = ensure_kernel()
    output = run_dir / path.name
    started = time.monotonic()
    record = {
        "notebook": path.stem,
        "params": params,
        "started": dt.datetime.now().isoformat(timespec="seconds"),
    }
    error = None
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=params,
            kernel_name=kernel,
            engine_name=ENGINE_NAME,
            cwd=str(run_dir),
            progress_bar=progress,
            log_output=log_output,
            execution_timeout=timeout_s,
        )
        status = "ok"
    except (PapermillExecutionError, CellFailure) as err:  # an error, timeout or dead kernel
        status, error = "failed", f"{err.ename}: {err.evalue}".splitlines()[0]
    except (TimeoutError, DeadKernelError) as err:  # outside a cell (the closing kernel_info)
        status, error = "failed", f"{type(err).__name__}: {str(err).splitlines()[0]}"
    duration = time.monotonic() - started
    if output.exists():
        export_html(output, run_dir / "report.html", title=path.stem)
    record.update({"status": status, "duration_s": round(duration, 1), "error": error})
    write_json(record, run_dir / "run.json")
    return RunResult(run_dir=run_dir, status=status, duration_s=duration, error=error)


# --------------------------------------------------------------------------- summary


def read_json(path: str | Path) -> dict:
    """A JSON file's mapping, or {} where the file does not exist (yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_json(value: Mapping, path: str | Path) -> Path:
    """Write ``value`` as JSON atomically (a temporary file, then a rename): readers such as
    the scheduler and the index never see half a file."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, target)
    return target


def write_summary(summary: Mapping, path: str | Path = "summary.json") -> Path:
    """Write a notebook's key figures as JSON atomically (tests and batch reports read it)."""
    return write_json(summary, path)
