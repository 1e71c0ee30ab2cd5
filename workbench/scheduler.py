"""Run a plan's entries in dependency order, locally or on SLURM, skipping finished ones.

Each entry runs in ``runs/<plan>/<entry>/`` as ``workbench run NOTEBOOK --run-dir DIR``, a
process of its own (a job on SLURM) whose output goes to ``log.txt``. ``batch.json`` says
which plan, step and grid values the run belongs to; ``run.json`` (written by the run, or
here when the process died first) says how it ended. Rerunning a plan skips entries that
finished with the same parameters (unless an entry they need ran again) and keeps failed
ones failed unless ``retry``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .batch import Entry, Plan, resolve_params
from .errors import WorkbenchError
from .runs import THREAD_VARS, read_json, write_json

ENDED = ("ok", "done", "failed", "kept", "blocked")


@dataclass
class Outcome:
    entry: Entry
    run_dir: Path
    status: str  # ok | done (finished earlier) | failed | kept (failed earlier) | blocked
    duration_s: float | None = None
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status in ("ok", "done")


class LocalExecutor:
    """Each entry a subprocess on this machine."""

    name = "local"
    poll_interval_s = 0.5

    def submit(self, entry: Entry, run_dir: Path, command: list[str],
               env: dict[str, str]) -> subprocess.Popen:
        log = (run_dir / "log.txt").open("w")
        try:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, **env}, cwd=run_dir)
        finally:
            log.close()

    def describe(self, proc: subprocess.Popen) -> str:
        return f"pid {proc.pid}"

    def poll(self, proc: subprocess.Popen) -> tuple[bool, str] | None:
        code = proc.poll()
        if code is None:
            return None
        return code == 0, "" if code == 0 else f"exit code {code}"

    def cancel(self, proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def entry_command(entry: Entry, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", "run", str(entry.notebook),
            "-f", str(run_dir / "params.yaml"), "--run-dir", str(run_dir),
            "--no-index", "--no-progress", "--log-output"]


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def notebook_sha(path: Path) -> str:
    """The notebook's content hash: a changed notebook reruns its entries."""
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def read_record(run_dir: Path) -> dict | None:
    return read_json(run_dir / "run.json") or None


def _last_log_line(run_dir: Path) -> str:
    log = run_dir / "log.txt"
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] \
        if log.is_file() else []
    return lines[-1][:300] if lines else ""


def _child_env() -> dict[str, str]:
    env = {var: os.environ.get(var, "2") for var in THREAD_VARS}
    if os.environ.get("WORKBENCH_CACHE"):
        env["WORKBENCH_CACHE"] = str(Path(os.environ["WORKBENCH_CACHE"]).resolve())
    return env


def run_plan(plan: Plan, executor, runs_dir: str | Path = "runs", max_parallel: int = 1,
             retry: bool = False, progress: bool = True, log=None,
             on_end=None) -> list[Outcome]:
    """Run every entry whose needs succeeded; return one outcome per entry, in plan order.

    ``on_end()`` is called after each run that ends here (the CLI rewrites the index).
    """
    from tqdm.auto import tqdm

    if log is None:
        def log(message: str) -> None:  # above the progress bar, at once (logs are tailed)
            tqdm.write(message)
            sys.stdout.flush()
    if max_parallel < 1:
        raise WorkbenchError(f"--max-parallel must be at least 1, got {max_parallel}")
    root = Path(runs_dir).resolve() / plan.name
    run_dirs = {e.id: root / e.id for e in plan.entries}
    outcomes: dict[str, Outcome] = {}
    running: dict[str, tuple[object, float]] = {}
    ran: set[str] = set()
    env = _child_env()
    bar = tqdm(total=len(plan.entries), desc=f"plan {plan.name}", unit="run", disable=not progress)

    def end(entry: Entry, status: str, detail: str = "", duration: float | None = None) -> None:
        outcomes[entry.id] = Outcome(entry, run_dirs[entry.id], status, duration, detail)
        bar.update(1)
        took = f" after {duration:.0f} s" if duration is not None else ""
        log(f"{status:>7}  {entry.id}{took}{': ' + detail if detail else ''}")

    def start(entry: Entry) -> None:
        run_dir = run_dirs[entry.id]
        try:
            params = resolve_params(entry, run_dirs)
        except WorkbenchError as err:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json({"notebook": entry.notebook.stem, "params": {}, "status": "failed",
                        "error": str(err)}, run_dir / "run.json")
            end(entry, "failed", str(err))
            return
        record = read_record(run_dir)
        earlier = read_json(run_dir / "batch.json")
        fresh = not any(need in ran for need in entry.needs)
        sha = notebook_sha(entry.notebook)
        same_notebook = earlier.get("notebook_sha") == sha
        if record and fresh and same_notebook and _same(record.get("params"), params):
            if record.get("status") == "ok":
                return end(entry, "done", "finished earlier")
            if record.get("status") == "failed" and not retry:
                return end(entry, "kept", f"failed earlier ({record.get('error')}); "
                                          "--retry runs it again")
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("run.json", "summary.json", "report.html"):
            (run_dir / stale).unlink(missing_ok=True)
        (run_dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=True))
        batch = {"plan": plan.name, "plan_file": str(plan.path), "step": entry.step,
                 "entry": entry.id, "labels": entry.labels, "needs": list(entry.needs),
                 "executor": executor.name, "notebook_sha": sha,
                 "submitted": dt.datetime.now().isoformat(timespec="seconds")}
        handle = executor.submit(entry, run_dir, entry_command(entry, run_dir), env)
        batch["handle"] = executor.describe(handle)
        write_json(batch, run_dir / "batch.json")
        running[entry.id] = (handle, time.monotonic())
        ran.add(entry.id)
        log(f"started  {entry.id} ({batch['handle']})")

    def finish(entry: Entry, ok: bool, detail: str, started: float) -> None:
        run_dir = run_dirs[entry.id]
        record = read_record(run_dir)
        duration = time.monotonic() - started
        if record is None:  # the process died before run_notebook wrote its record
            error = detail or "no run.json"
            last = _last_log_line(run_dir)
            record = {"notebook": entry.notebook.stem,
                      "params": yaml.safe_load((run_dir / "params.yaml").read_text()),
                      "status": "failed", "duration_s": round(duration, 1),
                      "error": f"{error}; log: {last}" if last else error}
            write_json(record, run_dir / "run.json")
        status = "ok" if ok and record.get("status") == "ok" else "failed"
        end(entry, status, "" if status == "ok" else (record.get("error") or detail), duration)
        if on_end is not None:
            on_end()

    try:
        while len(outcomes) < len(plan.entries):
            for entry in plan.entries:
                if entry.id in outcomes or entry.id in running:
                    continue
                needs = [outcomes.get(n) for n in entry.needs]
                if any(o is not None and not o.succeeded for o in needs):
                    failed = next(o.entry.id for o in needs if o is not None and not o.succeeded)
                    end(entry, "blocked", f"needs {failed}, which did not succeed")
                elif all(o is not None for o in needs) and len(running) < max_parallel:
                    start(entry)
            for entry_id, (handle, started) in list(running.items()):
                result = executor.poll(handle)
                if result is not None:
                    del running[entry_id]
                    finish(plan.entry(entry_id), *result, started)
            if running:
                time.sleep(executor.poll_interval_s)
    except BaseException:
        for handle, _ in running.values():
            executor.cancel(handle)
        raise
    finally:
        bar.close()
    return [outcomes[e.id] for e in plan.entries]
