"""Faults of batch plans: SIGKILL and concurrent runs.

Real `workbench batch` processes run a tiny notebook that notes its kernel's pid and its
parent's (the entry's `workbench run`) in a file before and after a sleep, so a test can
kill the batch mid-run, read /proc for survivors and count how often each entry ran.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import tiny_notebook

from workbench import cli, locks
from workbench.batch import load_plan
from workbench.index import write_index
from workbench.scheduler import LocalExecutor, run_plan

NOTES = '''import json, os, pathlib, time
with open(notes, "a") as f:
    f.write(f"start {value} {os.getpid()} {os.getppid()}\\n")
print(f"kernel {os.getpid()}", flush=True)
time.sleep(sleep_s)
with open(notes, "a") as f:
    f.write(f"end {value} {os.getpid()} {os.getppid()}\\n")
pathlib.Path("summary.json").write_text(json.dumps({"key_figures": {"value": value}}))
'''


@pytest.fixture(scope="module")
def noting(tmp_path_factory) -> Path:
    """A notebook that appends 'start|end VALUE KERNEL_PID RUN_PID' to ``notes``."""
    return tiny_notebook(tmp_path_factory.mktemp("nb") / "noting.ipynb",
                         'value = 1  # a number\nsleep_s = 0.0  # seconds\n'
                         'notes = "notes.txt"  # the file to append to', NOTES)


def write_plan(tmp_path: Path, notebook: Path, values: list[int], sleep_s: float,
               **extra) -> Path:
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump({"name": "f", **extra, "steps": [{
        "name": "a", "notebook": str(notebook), "grid": {"value": values},
        "params": {"sleep_s": sleep_s, "notes": str(tmp_path / "notes.txt")}}]}))
    return path


def batch_command(plan: Path, tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", "batch", str(plan), "--no-progress",
            "--runs-dir", str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "reports")]


def start_batch(plan: Path, tmp_path: Path, name: str, *options: str,
                env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    """The batch as a shell's background job starts it: with SIGINT ignored (``nohup ... &``
    hands that on), so Ctrl-C handling cannot rest on the inherited disposition."""
    out = tmp_path / f"{name}.out"
    with out.open("w") as f:
        proc = subprocess.Popen([*batch_command(plan, tmp_path), *options], stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    return proc, out


REAPER = """import ctypes, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER, as systemd --user: adopts orphans
with open(sys.argv[1], "w") as out:
    batch = subprocess.Popen(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT)
print(batch.pid, flush=True)
while True:  # reap the batch and every orphan adopted; end when none is left
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def notes(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "notes.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def alive(pid: int) -> bool:
    """Running (not ended, not a zombie), read from /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop(proc: subprocess.Popen) -> None:
    """End a batch process this test started, if it still runs."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def started_entry(tmp_path: Path) -> tuple[int, int]:
    """(kernel pid, `workbench run` pid) of the first entry, once its notebook runs."""
    first = wait_for(lambda: [n for n in notes(tmp_path) if n[0] == "start"], 90,
                     "the notebook started")[0]
    return int(first[2]), int(first[3])


# --------------------------------------------------------------------------- kills


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("subreaper", [False, True], ids=["init-adopts", "subreaper-adopts"])
def test_sigkill_of_batch_leaves_nothing_running_and_a_rerun_takes_over(noting, tmp_path,
                                                                          subreaper):
    """Orphans go to pid 1 (ipykernel's parent poller ends a kernel there) or, under a
    subreaper such as systemd --user, to that process (the poller never fires)."""
    plan = write_plan(tmp_path, noting, [1], sleep_s=8.0)
    run_dir = tmp_path / "runs" / "f" / "a-value=1"
    if subreaper:
        proc = subprocess.Popen([sys.executable, "-c", REAPER, str(tmp_path / "first.out"),
                                 *batch_command(plan, tmp_path)], stdout=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        batch = int(proc.stdout.readline())
    else:
        proc, _ = start_batch(plan, tmp_path, "first")
        batch = proc.pid
    try:
        kernel, run_pid = started_entry(tmp_path)
        assert alive(kernel) and alive(run_pid)
        lock = json.loads((run_dir / ".lock").read_text())  # the running entry holds its dir
        assert lock["pid"] == run_pid and lock["batch_pid"] == batch
        assert lock["host"] == socket.gethostname() and lock["handle"] == f"pid {run_pid}"
        os.kill(batch, signal.SIGKILL)  # no cleanup runs in the batch process
        if subreaper:  # it ends once it has reaped the batch and all it adopted
            assert proc.wait(5) == 0, "a process of the batch outlived it"
        else:
            proc.wait(10)
        # well before the notebook's 8 s sleep would have ended
        wait_for(lambda: not alive(run_pid) and not alive(kernel), 3,
                 "the entry's `workbench run` and its kernel died with the batch")
    finally:
        stop(proc)
    assert (run_dir / ".lock").exists()  # the lock of the dead batch stays: stale

    rerun = subprocess.run(batch_command(plan, tmp_path), capture_output=True, text=True,
                           timeout=180, stdin=subprocess.DEVNULL)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"took over the stale lock of pid {run_pid} on host {socket.gethostname()}" \
        in rerun.stdout
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
    assert not (run_dir / ".lock").exists()
    # two starts (killed run, rerun), one end: the rerun's kernel's; the killed kernel never
    # woke up to write its end (it would have, 8 s after its start)
    starts = [n for n in notes(tmp_path) if n[0] == "start"]
    ends = [n for n in notes(tmp_path) if n[0] == "end"]
    assert len(starts) == 2 and starts[0][2] == str(kernel)
    assert len(ends) == 1 and ends[0][2] == starts[1][2] != str(kernel)
    log = (run_dir / "log.txt").read_text()  # one run's log: the rerun's
    assert log.count("Executing notebook with kernel") == 1
    assert f"kernel {starts[1][2]}" in log and f"kernel {kernel}" not in log


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_or_sigint_records_the_running_entry_interrupted(noting, tmp_path, sig, code):
    plan = write_plan(tmp_path, noting, [1, 2], sleep_s=30.0)
    run_dir = tmp_path / "runs" / "f" / "a-value=1"
    proc, out = start_batch(plan, tmp_path, "batch")
    try:
        kernel, run_pid = started_entry(tmp_path)
        proc.send_signal(sig)
        try:
            assert proc.wait(60) == code
        except subprocess.TimeoutExpired:  # say where it is stuck (workbench's SIGUSR1)
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            pytest.fail(f"batch still running 60 s after {sig.name}:\n{out.read_text()}")
    finally:
        stop(proc)
    wait_for(lambda: not alive(run_pid) and not alive(kernel), 5, "no child left")
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == "interrupted"
    assert record["params"]["value"] == 1 and record["duration_s"] < 30
    assert not (run_dir / ".lock").exists()
    assert not (tmp_path / "runs" / "f" / "a-value=2").exists()  # never started
    assert "failed  a-value=1" in out.read_text()
    assert [n[0] for n in notes(tmp_path)] == ["start"]


# --------------------------------------------------------------------------- concurrency


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_batches_of_one_plan_run_each_entry_once(noting, tmp_path):
    plan = write_plan(tmp_path, noting, [1, 2], sleep_s=3.0)
    procs = [start_batch(plan, tmp_path, name) for name in ("one", "two")]
    try:
        codes = [proc.wait(240) for proc, _ in procs]
    finally:
        for proc, _ in procs:
            stop(proc)
    outputs = [out.read_text() for _, out in procs]
    assert codes == [0, 0], outputs
    ran = sorted((n[0], n[1]) for n in notes(tmp_path))
    assert ran == [("end", "1"), ("end", "2"), ("start", "1"), ("start", "2")]
    both = "".join(outputs)
    for entry in ("a-value=1", "a-value=2"):
        run_dir = tmp_path / "runs" / "f" / entry
        assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
        assert not (run_dir / ".lock").exists()
        assert both.count(f"started  {entry}") == 1  # one batch ran it, the other used it
        assert both.count(f"   done  {entry}") == 1
    assert "running elsewhere (pid " in both  # one batch waited for the other's entry


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_rerun_waits_for_the_slurm_job_of_a_killed_driver(noting, slurm_cluster, tmp_path):
    """A killed driver leaves its job queued; the rerun submits nothing, waits for that job
    (the lock holds its id) and uses its result."""
    env = {**os.environ, **slurm_cluster.env}
    plan = write_plan(tmp_path, noting, [1], sleep_s=6.0,
                      slurm={"cpus_per_task": 1, "time": "00:10:00"})
    run_dir = tmp_path / "runs" / "f" / "a-value=1"
    driver, _ = start_batch(plan, tmp_path, "driver", "--executor", "slurm", env=env)
    try:
        started_entry(tmp_path)  # the job's notebook runs
        lock = json.loads((run_dir / ".lock").read_text())
        assert lock["executor"] == "slurm" and lock["handle"].startswith("job ")
        assert lock["pid"] == lock["batch_pid"] == driver.pid
        driver.kill()
        driver.wait(10)
    finally:
        stop(driver)
    job = lock["handle"].split()[1]
    assert slurm_cluster.job(job)["JobState"] == "RUNNING"
    rerun = subprocess.run([*batch_command(plan, tmp_path), "--executor", "slurm"], env=env,
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    host = socket.gethostname()
    assert (f"waiting  a-value=1: running elsewhere (job {job} submitted by pid {driver.pid} "
            f"on host {host})") in rerun.stdout
    assert "done  a-value=1: finished elsewhere" in rerun.stdout and "started" not in rerun.stdout
    assert slurm_cluster.job(job)["JobState"] == "COMPLETED"
    assert json.loads((run_dir / "batch.json").read_text())["handle"] == f"job {job}"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
    assert [n[0] for n in notes(tmp_path)] == ["start", "end"]  # ran once
    assert not (run_dir / ".lock").exists()


def test_workbench_run_refuses_a_dir_a_live_lock_holds(noting, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "x"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        lock = {**locks.new_lock("local"), "pid": holder.pid, "handle": f"pid {holder.pid}"}
        assert locks.try_lock(run_dir, lock, lambda held: True) == (True, None)
        code = cli.main(["run", str(noting), "--run-dir", str(run_dir), "--no-index"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1
        assert f"in use by a run of pid {holder.pid} on host {socket.gethostname()}" in err
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing run there
    finally:
        holder.kill()
        holder.wait(10)


def test_a_stale_lock_is_taken_over_and_its_leftovers_killed(tmp_path):
    """A lock whose holder died is replaced (once, under flock) and the processes still
    carrying its token (an orphaned kernel) are killed."""
    dead = subprocess.Popen(["true"])
    dead.wait(10)
    stale = {**locks.new_lock("local"), "pid": dead.pid, "batch_pid": dead.pid}
    run_dir = tmp_path / "run"
    assert locks.try_lock(run_dir, stale, lambda held: True)[0]
    orphan = subprocess.Popen(["sleep", "60"],
                              env={**os.environ, locks.TOKEN_VAR: stale["token"]})
    try:
        mine = locks.new_lock("local")
        taken, held = locks.try_lock(run_dir, mine, lambda held: bool(locks.holder_alive(held)))
        assert taken and held["token"] == stale["token"] and held["leftovers"] == 1
        assert orphan.wait(5) == -signal.SIGKILL
        assert json.loads((run_dir / ".lock").read_text())["token"] == mine["token"]
        # now held by this live process: a second taker is refused and sees who holds it
        other = locks.new_lock("local")
        taken, held = locks.try_lock(run_dir, other,
                                     lambda held: bool(locks.holder_alive(held)))
        assert not taken and held["pid"] == os.getpid()
        locks.release(run_dir, other["token"])  # not the holder: nothing happens
        assert (run_dir / ".lock").exists()
        locks.release(run_dir, mine["token"])
        assert not (run_dir / ".lock").exists()
        assert sorted(p.name for p in run_dir.iterdir()) == []  # no temporary left
    finally:
        stop(orphan)


# --------------------------------------------------------------------------- malformed files


def test_malformed_run_json_is_skipped_with_one_warning(tmp_path, capsys):
    runs = tmp_path / "runs"
    good = runs / "tiny-20260101-000000-abcd"
    good.mkdir(parents=True)
    (good / "run.json").write_text(json.dumps({
        "notebook": "tiny", "params": {"value": 7}, "status": "ok", "duration_s": 1.0,
        "started": "2026-01-01T00:00:00"}))
    (good / "summary.json").write_text('{"key_figures": {"double": 1')  # half-written
    broken = runs / "tiny-20260102-000000-beef"
    broken.mkdir()
    (broken / "run.json").write_text('{"notebook": "tiny", "status": "o')  # half-written
    code = cli.main(["report", "--runs-dir", str(runs), "--reports-dir", str(tmp_path / "rep")])
    captured = capsys.readouterr()
    assert code == 0
    warnings = captured.err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: skipping ") for w in warnings)
    assert str(broken / "run.json") in warnings[0] + warnings[1]
    assert str(good / "summary.json") in warnings[0] + warnings[1]
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "1 runs;" in page and "value=7" in page  # the good run, without figures
    # a JSON file that is not an object is skipped the same way
    (broken / "run.json").write_text("[1, 2]")
    write_index(runs, tmp_path / "rep")
    assert f"warning: skipping {broken / 'run.json'}: not a JSON object" in capsys.readouterr().err


def test_scheduler_reruns_an_entry_whose_run_json_is_malformed(noting, tmp_path, monkeypatch,
                                                               capsys):
    """(A stand-in python that writes a good run.json, so no kernel is needed.)"""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho \'{"notebook": "noting", "status": "ok"}\' > run.json\n')
    fake.chmod(0o755)
    monkeypatch.setattr("workbench.scheduler.sys.executable", str(fake))
    plan = load_plan(write_plan(tmp_path, noting, [1], sleep_s=0.0))
    run_dir = tmp_path / "runs" / "f" / "a-value=1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text('{"status": "ok", "par')
    (outcome,) = run_plan(plan, LocalExecutor(), tmp_path / "runs", progress=False,
                          log=lambda _: None)
    assert outcome.status == "ok"
    assert f"warning: skipping {run_dir / 'run.json'}" in capsys.readouterr().err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
