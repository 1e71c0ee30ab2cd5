"""Session set-up: a shared cache for generated data, pinned thread counts."""

from __future__ import annotations

import os
import tempfile

# Generated datasets are shared by the whole session (make test points this at data/cache,
# so the demo's datasets are reused); tests that check cache writes use their own folder.
os.environ.setdefault("WORKBENCH_CACHE", tempfile.mkdtemp(prefix="workbench-cache-"))
# a notebook cell that hangs fails its test after 10 minutes instead of stalling CI
os.environ.setdefault("WORKBENCH_CELL_TIMEOUT", "600")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import pytest  # noqa: E402
from helpers import anemoi_peer, small_catalog  # noqa: E402,F401  (fixtures)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real single-node SLURM (slurm-wlm + munge) on localhost for the session; skipped
    with the reason where it cannot run (not root, slurm-wlm or munge missing); where it can,
    a cluster that does not start fails the test (CI on this machine kind never skips)."""
    from slurm_cluster import missing_requirements, start_cluster

    started = start_cluster(tmp_path_factory.mktemp("slurm"))
    if isinstance(started, str):
        if missing_requirements() is None:  # root with slurm-wlm and munge: it must start
            pytest.fail(f"SLURM cluster did not start (root, binaries present): {started}")
        pytest.skip(started)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def demo_plan(tmp_path_factory):
    """``workbench batch demo`` (what `make demo` runs: every notebook through papermill) run
    once for the session: tests that check the demo plan and those that check notebook 03's
    demo training read the same runs. Returns (runs dir, reports dir, the CLI arguments)."""
    import contextlib
    import io

    from workbench import cli

    folder = tmp_path_factory.mktemp("demo-plan")
    runs, reports = folder / "runs", folder / "reports"
    args = ["batch", "demo", "--runs-dir", str(runs), "--reports-dir", str(reports),
            "--no-progress"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(args)
    assert code == 0, out.getvalue()[-4000:]
    return runs, reports, args
