"""Faults of training runs: SIGKILL and concurrent runs.

Real `workbench train` processes train the tiny demo config of tests/test_training.py: one is
killed with SIGKILL once its checkpoints/last.ckpt shows a given step and continued with
`workbench train --resume`, twice; two identical ones start at the same time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_training import assert_same_run, tiny, train_losses

from workbench import checkpoints, training


def start(tmp_path: Path, log: str, *args: str) -> subprocess.Popen:
    """`workbench ARGS` in ``tmp_path``, stdout and stderr to ``log``.out / .err there."""
    exe = Path(sys.executable).with_name("workbench")
    with open(tmp_path / f"{log}.out", "w") as out, open(tmp_path / f"{log}.err", "w") as err:
        return subprocess.Popen([str(exe), *args], cwd=tmp_path, stdout=out, stderr=err)


def finish(proc: subprocess.Popen, tmp_path: Path, log: str, timeout_s: float = 500) -> str:
    """Wait for ``proc`` to succeed; its stdout."""
    assert proc.wait(timeout=timeout_s) == 0, (tmp_path / f"{log}.err").read_text()[-3000:]
    return (tmp_path / f"{log}.out").read_text()


def checkpoint_step(run_dir: Path) -> int:
    """The step of the run's last.ckpt (-1: none yet); the file is only ever renamed into place."""
    path = run_dir / "checkpoints" / "last.ckpt"
    return int(checkpoints.load_checkpoint(path)["global_step"]) if path.is_file() else -1


def kill_at(proc: subprocess.Popen, run_dir: Path, step: int, timeout_s: float = 400) -> int:
    """SIGKILL ``proc`` once last.ckpt shows ``step`` or a later one; the step it resumes from."""
    deadline = time.monotonic() + timeout_s
    while checkpoint_step(run_dir) < step:
        assert proc.poll() is None, f"training ended (exit {proc.returncode}) before step {step}"
        assert time.monotonic() < deadline, f"no checkpoint of step {step} in {timeout_s} s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    return checkpoint_step(run_dir)


def write_config(tmp_path: Path, config: training.TrainingConfig) -> str:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(training.config_dict(config)))
    return "tiny.yaml"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigkilled_training_resumes_to_the_uninterrupted_run(tmp_path):
    """Killed twice (no finally runs: no run.json, no merge), resumed twice: the weights, the
    loop state and every training row equal an uninterrupted run's; validations kept once."""
    config = tiny(tmp_path, max_steps=18, val_every=5, checkpoint_every=1)
    path = write_config(tmp_path, config)
    finish(start(tmp_path, "whole", "train", path, "--run-dir", "whole", "--no-progress"),
           tmp_path, "whole")
    part = tmp_path / "part"
    first = kill_at(start(tmp_path, "first", "train", path, "--run-dir", "part",
                          "--no-progress"), part, 3)
    assert not (part / "run.json").exists()
    second = kill_at(start(tmp_path, "second", "train", "--resume", "part", "--no-progress"),
                     part, 11)  # past the end of the second epoch (step 10)
    assert not (part / "run.json").exists()
    # the second segment began by merging the first one's rows before the step it resumed from
    assert train_losses(part).index.tolist() == list(range(first))
    assert first < second < 18, (first, second)
    print(f"killed with last.ckpt at steps {first} and {second}")
    finish(start(tmp_path, "third", "train", "--resume", "part", "--no-progress"), tmp_path,
           "third")
    assert_same_run(tmp_path / "whole", part)
    assert [s for s, _ in checkpoints.segments(part)] == [0, first, second]
    assert json.loads((part / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_identical_trainings_at_once_get_their_own_run_dirs(tmp_path):
    """Same config, same moment, no --run-dir: two dirs, each with its own complete run (the
    same losses, as the config is the same and CPU training is deterministic)."""
    path = write_config(tmp_path, tiny(tmp_path, max_steps=4))
    procs = [start(tmp_path, f"run{i}", "train", path, "--no-progress", "--json")
             for i in range(2)]
    outputs = [finish(proc, tmp_path, f"run{i}") for i, proc in enumerate(procs)]
    reported = [Path(json.loads(out[out.index("{"):])["run_dir"]) for out in outputs]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and sorted(tmp_path / r for r in reported) == runs
    digest = checkpoints.run_digest(training.training_config_from_dict(
        yaml.safe_load((tmp_path / path).read_text())))
    losses = []
    for run in runs:
        assert run.name.startswith("train-demo-") and f"-{digest}-" in run.name
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "finished" and info["steps"] == 4
        loss = train_losses(run)
        assert loss.index.tolist() == [0, 1, 2, 3]
        losses.append(loss.to_numpy())
    np.testing.assert_array_equal(*losses)
