"""The demo plan through a real SLURM: sbatch jobs followed with squeue/scontrol, training
launched by srun over two tasks (DDP), the skill maps reading the training step's run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from workbench import cli
from workbench.batch import PLAN_DIR

pytestmark = pytest.mark.slow
FAST = {  # the demo plan's steps at test size
    "catalog": {"interactive_frames": 2},
    "graph": {"k_range": "10:14", "trims": [0], "slider_ks": [12]},
    "sampling": {"n_batches": 100, "browse_samples": 1},
    "train": {"max_steps": 6},
    "skill": {"domains": ["conus", "europe"], "lead_steps": 2},
}


def fast_demo_plan(tmp_path: Path) -> Path:
    raw = yaml.safe_load((PLAN_DIR / "demo.yaml").read_text())
    training = yaml.safe_load((PLAN_DIR.parent / "training" / "demo.yaml").read_text())
    training.update(val_every=3, val_batches=2, checkpoint_every=3, val_rollout=2)
    # the skill step forecasts every window of the test split: 4 of its 16 days
    splits = yaml.safe_load((PLAN_DIR.parent / "sampling" / "demo.yaml").read_text())["splits"]
    assert splits["test"] == ["2020-03-16", "2020-03-31T18:00"]
    training["sampling"]["splits"] = {**splits, "test": ["2020-03-16", "2020-03-19T18:00"]}
    config = tmp_path / "train-fast.yaml"
    config.write_text(yaml.safe_dump(training))
    raw["slurm"] = {"cpus_per_task": 1, "time": "00:20:00"}
    for step in raw["steps"]:
        step.setdefault("params", {}).update(FAST[step["name"]])
        if step["name"] == "train":
            step["params"]["config"] = str(config)
            step["slurm"] = {"tasks_per_node": 2, "cpus_per_task": 1}  # srun: two DDP ranks
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_demo_plan_through_slurm(slurm_cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    plan = fast_demo_plan(tmp_path)
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    args = ["batch", str(plan), "--executor", "slurm", "--max-parallel", "2", "--runs-dir",
            str(runs), "--reports-dir", str(reports), "--no-progress"]
    code = cli.main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    root = runs / "demo"
    jobs = {}
    for entry in ("catalog", "graph", "sampling", "train", "skill"):
        batch = json.loads((root / entry / "batch.json").read_text())
        assert batch["executor"] == "slurm" and batch["handle"].startswith("job "), batch
        job_id = batch["handle"].split()[1]
        jobs[entry] = job_id
        info = slurm_cluster.job(job_id)  # SLURM's own account of the job
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", info
        script = (root / entry / "job.sbatch").read_text()
        assert f"#SBATCH --output={root / entry / 'log.txt'}" in script
        assert json.loads((root / entry / "run.json").read_text())["status"] == "ok"
        log = (root / entry / "log.txt").read_text()
        tasks = 2 if entry == "train" else 1
        assert f"job {job_id} on {slurm_cluster.hostname}: {tasks} task(s)" in log
    assert len(set(jobs.values())) == 5
    # training ran as srun's two tasks, one DDP rank each, into the notebook's run dir
    train_log = (root / "train" / "log.txt").read_text()
    assert "launching: srun --ntasks=2 --ntasks-per-node=2" in train_log
    trained = json.loads((root / "train" / "train" / "run.json").read_text())
    assert trained["status"] == "finished" and trained["steps"] == 6
    assert trained["world_size"] == 2
    # the skill maps scored that very run
    skill = json.loads((root / "skill" / "summary.json").read_text())
    assert Path(skill["run"]["run_dir"]) == root / "train" / "train"
    assert "europe" in skill["key_figures"]["unseen_domains"]
    index = (reports / "index.html").read_text()
    assert "plan demo" in index and index.count("class='status ok'") == 5
    # a rerun through SLURM submits nothing: every entry finished with the same parameters
    assert cli.main(args) == 0
    assert "5 done" in capsys.readouterr().out
    assert json.loads((root / "skill" / "batch.json").read_text())["handle"] == f"job {jobs['skill']}"
