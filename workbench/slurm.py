"""The SLURM executor: one sbatch script per plan entry, followed with squeue and sacct.

The job runs ``workbench run`` on the entry's notebook in its run dir. Multi-GPU training
happens inside the job: notebook 03 sees ``SLURM_NTASKS > 1`` and launches
``srun workbench train`` (see :mod:`workbench.launch`), so Lightning reads SLURM's
environment. sacct needs SLURM's accounting database; where it is off, ``scontrol show
job`` (jobs stay known for ``MinJobAge``) and the run's own run.json say how it ended.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .batch import Entry, Resources
from .errors import WorkbenchError
from .runs import THREAD_VARS

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
COMMANDS = ("sbatch", "squeue")
FORGOTTEN_AFTER_S = 900  # a job neither squeue, sacct, scontrol nor its run dir knows: failed


def check_available() -> None:
    """sbatch and squeue on PATH, else a one-line error."""
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        raise WorkbenchError(f"{' and '.join(missing)} not found on PATH: run on a SLURM login "
                             "node (or load its module), or use --executor local")


def sbatch_script(entry: Entry, run_dir: Path, command: list[str], plan: str,
                  env: dict[str, str] | None = None) -> str:
    """The job script: resources from the plan, log into the run dir, then the command.

    Resources are checked where the plan is read (:class:`workbench.batch.Resources`); a run
    dir with a control character would still break an ``#SBATCH`` line, so it is refused."""
    res: Resources = entry.resources
    if re.search(r"[\x00-\x1f\x7f]", str(run_dir)):
        raise WorkbenchError(f"run dir {str(run_dir)!r} holds a control character; choose a "
                             "--runs-dir without newlines or tabs")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={plan}.{entry.id}"[:200],
        f"#SBATCH --output={run_dir / 'log.txt'}",
        f"#SBATCH --nodes={res.nodes}",
        f"#SBATCH --ntasks-per-node={res.tasks_per_node}",
        f"#SBATCH --cpus-per-task={res.cpus_per_task}",
        f"#SBATCH --time={res.time}",
    ]
    if res.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={res.gpus_per_node}")
    if res.mem:
        lines.append(f"#SBATCH --mem={res.mem}")
    if res.partition:
        lines.append(f"#SBATCH --partition={res.partition}")
    if res.account:
        lines.append(f"#SBATCH --account={res.account}")
    lines += [f"#SBATCH {option}" for option in res.extra]
    lines += ["", "set -euo pipefail", f"cd {shlex.quote(str(run_dir))}",
              'echo "job $SLURM_JOB_ID on $(hostname): $SLURM_NTASKS task(s)"']
    for name, value in (env or {}).items():
        if name in THREAD_VARS:  # as many threads as the job has CPUs per task
            value = "${SLURM_CPUS_PER_TASK:-2}"
            lines.append(f"export {name}={value}")
        else:
            lines.append(f"export {name}={shlex.quote(value)}")
    lines.append("exec " + " ".join(shlex.quote(part) for part in command))
    return "\n".join(lines) + "\n"


@dataclass
class SlurmJob:
    job_id: str
    run_dir: Path
    state: str = "PENDING"
    unknown_since: float | None = None


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


class SlurmExecutor:
    """Submits with sbatch; ``poll`` returns None while queued or running, else (ok, detail)."""

    name = "slurm"
    poll_interval_s = 2.0

    def __init__(self, plan: str) -> None:
        check_available()
        self.plan = plan

    def submit(self, entry: Entry, run_dir: Path, command: list[str],
               env: dict[str, str]) -> SlurmJob:
        script = run_dir / "job.sbatch"
        script.write_text(sbatch_script(entry, run_dir, command, self.plan, env))
        done = _run(["sbatch", "--parsable", str(script)])
        if done.returncode != 0:
            raise WorkbenchError(f"sbatch refused {entry.id}: "
                                 f"{(done.stderr or done.stdout).strip().splitlines()[-1]}")
        return SlurmJob(done.stdout.strip().split(";")[0], run_dir)

    def describe(self, job: SlurmJob) -> str:
        return f"job {job.job_id}"

    def poll(self, job: SlurmJob) -> tuple[bool, str] | None:
        state = self._queue_state(job.job_id)
        if state and state not in FINAL_STATES:
            job.state = state
            return None
        if not state:
            state, code = self._final_state(job.job_id)
        else:
            code = self._final_state(job.job_id)[1]
        if not state:  # forgotten by SLURM and no accounting: the run's own record decides
            if (job.run_dir / "run.json").exists():
                return True, "finished"
            job.unknown_since = job.unknown_since or time.monotonic()
            if time.monotonic() - job.unknown_since > FORGOTTEN_AFTER_S:
                return False, f"SLURM no longer knows job {job.job_id} and it left no run.json"
            return None
        job.unknown_since = None
        job.state = state
        detail = f"SLURM {state}" + (f" (exit {code})" if code and code != "0:0" else "")
        return state == "COMPLETED", detail

    def cancel(self, job: SlurmJob) -> None:
        _run(["scancel", job.job_id])

    @staticmethod
    def _queue_state(job_id: str) -> str:
        done = _run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"])
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""

    @staticmethod
    def _final_state(job_id: str) -> tuple[str, str]:
        """(state, exit code) from sacct, else from scontrol; ("", "") if neither knows."""
        if shutil.which("sacct"):
            done = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"])
            line = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
            if line:
                state, _, code = line.partition("|")
                return state.split()[0], code
        done = _run(["scontrol", "-o", "show", "job", job_id])
        if done.returncode == 0:
            fields = dict(part.split("=", 1) for part in done.stdout.split() if "=" in part)
            return fields.get("JobState", ""), fields.get("ExitCode", "")
        return "", ""
