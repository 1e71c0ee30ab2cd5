"""Self-test of tests/slurm_cluster.py: real jobs on a real single-node SLURM cluster."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import Cluster

pytestmark = pytest.mark.slow
PYTHON = sys.executable  # the project's venv python (.venv/bin/python), visible on the node


@pytest.fixture
def cluster(slurm_cluster: Cluster) -> Cluster:
    """The session's cluster (tests/conftest.py): skipped only where it cannot run."""
    return slurm_cluster


def submit(cluster: Cluster, folder: Path, body: str, env: dict[str, str] | None = None) -> str:
    """Write a batch script into ``folder``, ``sbatch --parsable`` it, return the job id."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "job.sh"
    script.write_text("#!/bin/bash\n" + body)
    out = cluster.run("sbatch", "--parsable", f"--chdir={folder}",
                      f"--output={folder}/slurm-%j.out", str(script), env=env or {})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def test_batch_job_completes_with_submit_environment(cluster: Cluster, tmp_path: Path) -> None:
    """A job runs here with the submitter's environment and ends COMPLETED, 0:0."""
    job_id = submit(cluster, tmp_path, 'echo "$SLURM_JOB_ID $(hostname) $WORKBENCH_MARK" > out.txt\n',
                    env={"WORKBENCH_MARK": "from-submit-env"})
    info = cluster.wait(job_id)
    assert info["JobState"] == "COMPLETED", info
    assert info["ExitCode"] == "0:0"
    assert (tmp_path / "out.txt").read_text().split() == [job_id, cluster.hostname,
                                                          "from-submit-env"]


def test_failing_job(cluster: Cluster, tmp_path: Path) -> None:
    """``exit 3`` ends FAILED with ExitCode=3:0, and scontrol still knows the job."""
    info = cluster.wait(submit(cluster, tmp_path, "exit 3\n"))
    assert (info["JobState"], info["ExitCode"]) == ("FAILED", "3:0")


def test_srun_two_tasks(cluster: Cluster, tmp_path: Path) -> None:
    """``srun`` inside a ``--ntasks=2`` job starts two ranks, 0 and 1."""
    body = ("#SBATCH --ntasks=2\n"
            f"srun {PYTHON} -c \"import os; print(os.environ['SLURM_PROCID'])\" > ranks.txt\n")
    job_id = submit(cluster, tmp_path, body)
    info = cluster.wait(job_id)
    log = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert info["JobState"] == "COMPLETED", (info, log)
    assert sorted((tmp_path / "ranks.txt").read_text().split()) == ["0", "1"]


def test_two_one_cpu_jobs_run_at_once(cluster: Cluster, tmp_path: Path) -> None:
    """With CR_CPU two 1-cpu jobs share the node: each waits for the other to have started."""
    if cluster.cpus < 2:
        pytest.skip("needs 2 CPUs")
    body = ("#SBATCH --ntasks=1 --cpus-per-task=1\n"
            "touch ../started.$SLURM_JOB_ID\n"
            "for i in $(seq 100); do [ $(ls ../started.* | wc -l) -ge 2 ] && exit 0; sleep 0.2; done\n"
            "exit 1\n")
    ids = [submit(cluster, tmp_path / name, body) for name in ("a", "b")]
    assert [cluster.wait(job_id)["JobState"] for job_id in ids] == ["COMPLETED"] * 2


def test_sacct_does_not_matter(cluster: Cluster) -> None:
    """sacct is not usable here; nothing may depend on it.

    With AccountingStorageType=accounting_storage/none, slurm 22.05's sacct prints
    (rc 1, on stderr) "Slurm accounting storage is disabled".
    """
    start = time.monotonic()
    out = cluster.run("sacct", "-n", "-X", timeout=30)
    assert time.monotonic() - start < 30
    print(out.returncode, out.stdout, out.stderr)
