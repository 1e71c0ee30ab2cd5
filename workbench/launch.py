"""Where notebook 03 trains: in its own kernel, or over a SLURM job's tasks with srun.

A notebook kernel cannot host multi-GPU DDP. Inside a SLURM job of several tasks (an sbatch
entry with ``tasks_per_node`` > 1), training runs as ``srun workbench train`` instead, so
that each rank is a task SLURM started and Lightning reads SLURM's environment (ranks, nodes,
master address). The notebook then reads the run dir as if it had trained in the kernel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import deque
from pathlib import Path

from .config import dump_yaml
from .errors import WorkbenchError
from .training import fit
from .training_config import TrainingConfig, config_dict

LAUNCHERS = ("auto", "inline", "srun")


def slurm_tasks() -> tuple[int, int]:
    """(tasks, nodes) of the SLURM job this process runs in; (1, 1) outside SLURM."""
    tasks = int(os.environ.get("SLURM_NTASKS", "1")) if "SLURM_JOB_ID" in os.environ else 1
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", os.environ.get("SLURM_NNODES", "1")))
    return tasks, nodes if tasks > 1 else 1


def srun_command(config_path: Path, run_dir: Path, tasks: int, nodes: int) -> list[str]:
    """``srun`` over every task of the job: one DDP rank per task."""
    per_node = tasks // nodes
    return ["srun", f"--ntasks={tasks}", f"--ntasks-per-node={per_node}", "--kill-on-bad-exit=1",
            sys.executable, "-m", "workbench.cli", "train", str(config_path),
            "--run-dir", str(run_dir), "--devices", str(per_node), "--num-nodes", str(nodes),
            "--strategy", "ddp", "--no-progress"]


def inline(launcher: str) -> bool:
    """Whether ``launcher`` trains in this process (``auto``: unless the SLURM job has several
    tasks)."""
    if launcher not in LAUNCHERS:
        raise WorkbenchError(f"launcher {launcher!r} is not one of {', '.join(LAUNCHERS)}")
    return launcher == "inline" or (launcher == "auto" and slurm_tasks()[0] == 1)


def train(config: TrainingConfig, run_dir: str | Path = "train", launcher: str = "auto",
          progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train ``config`` into ``run_dir``: inline, or with srun (``auto``: srun when the SLURM
    job has several tasks). Returns the run dir. ``callbacks`` (Lightning's) go to an inline
    run only: srun's ranks are other processes."""
    if inline(launcher):
        return fit(config, run_dir=run_dir, progress=progress, callbacks=callbacks)
    tasks, nodes = slurm_tasks()
    if shutil.which("srun") is None or "SLURM_JOB_ID" not in os.environ:
        raise WorkbenchError("launcher 'srun' needs a SLURM job (sbatch with several tasks); "
                             "use launcher 'inline' outside SLURM")
    if tasks % nodes:
        raise WorkbenchError(f"{tasks} SLURM tasks do not split evenly over {nodes} nodes; "
                             "ask for --ntasks-per-node")
    run_dir = Path(run_dir).resolve()
    config_path = run_dir.with_name(f"{run_dir.name}-config.yaml")
    tmp = config_path.with_name(f".{config_path.name}.tmp")
    tmp.write_text(dump_yaml(config_dict(config)))
    os.replace(tmp, config_path)
    command = srun_command(config_path, run_dir, tasks, nodes)
    print("launching: " + " ".join(command[:4]) + f" ... train ({tasks} ranks on {nodes} node(s))",
          flush=True)
    tail: deque[str] = deque(maxlen=5)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        for line in proc.stdout:
            tail.append(line.rstrip())
            print(line, end="", flush=True)
    if proc.returncode != 0:
        last = next((line for line in reversed(tail) if line.strip()), "")
        raise WorkbenchError(f"srun training exited with {proc.returncode}: {last}")
    return run_dir
