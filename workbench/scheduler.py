"""Run a plan's entries in dependency order, locally or on SLURM, skipping finished ones.

Each entry runs in ``runs/<plan>/<entry>/`` as ``workbench run NOTEBOOK --run-dir DIR``, a
process of its own (a job on SLURM) whose output goes to ``log.txt``. ``batch.json`` says
which plan, step and grid values the run belongs to; ``run.json`` (written by the run, or
here when the process died first) says how it ended. Rerunning a plan skips entries that
finished with the same parameters (unless an entry they need ran again) and keeps failed
ones failed unless ``retry``.

A running entry holds its run dir's lock (:mod:`workbench.locks`): another batch of the
same plan waits for it and uses its result, and a lock whose holder died is taken over.
Local entries run in process groups of their own that die with the batch process, however
it ends: SIGINT/SIGTERM end them and record them failed ("interrupted"); on SIGKILL the
Linux kernel kills them (PR_SET_PDEATHSIG), and a watchdog beside each entry
(:func:`workbench.locks.watch`) kills what carries the entry's lock token: its notebook
kernel, which jupyter_client starts in a session of its own.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import locks
from .batch import Entry, Plan, resolve_params
from .config import dump_yaml, load_yaml
from .errors import WorkbenchError
from .index import read_json_or_warn
from .runs import THREAD_VARS, write_json
from .slurm import SlurmJob

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


PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
WATCHDOG = [sys.executable, "-m", "workbench.locks"]  # + the run's token: locks.watch


def _dies_with(parent: int, sig: int = signal.SIGKILL):
    """A preexec function: the child gets ``sig`` when ``parent`` dies (Linux)."""
    def preexec() -> None:
        if sig != signal.SIGKILL:  # pending until the child waits for it
            signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
        _LIBC.prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)
    return preexec if _LIBC is not None else None


@dataclass
class LocalRun:
    proc: subprocess.Popen
    token: str  # $WORKBENCH_LOCK_TOKEN of the run and of everything it started
    watchdog: subprocess.Popen | None = None  # kills what carries the token (locks.watch)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sweep(self) -> None:
        """Kill whatever of the run is left (its kernel); the watchdog does it and ends (if
        it does not within 10 s, this process kills it and does the sweep itself)."""
        if self.watchdog is None:
            return
        self.watchdog.terminate()
        try:
            self.watchdog.wait(10)
        except subprocess.TimeoutExpired:
            self.watchdog.kill()
            self.watchdog.wait()
            locks.kill_leftovers(self.token)


class LocalExecutor:
    """Each entry a subprocess on this machine, in a process group of its own."""

    name = "local"
    poll_interval_s = 0.5

    def submit(self, entry: Entry, run_dir: Path, command: list[str],
               env: dict[str, str]) -> LocalRun:
        token = env.get(locks.TOKEN_VAR, "")
        watchdog = subprocess.Popen(
            [*WATCHDOG, token], stdin=subprocess.DEVNULL, process_group=0,
            preexec_fn=_dies_with(os.getpid(), signal.SIGTERM)) if token and _LIBC else None
        log = (run_dir / "log.txt").open("w")
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env={**os.environ, **env},
                                    cwd=run_dir, process_group=0,
                                    preexec_fn=_dies_with(os.getpid()))
        except BaseException:
            if watchdog is not None:
                watchdog.kill()
                watchdog.wait()
            raise
        finally:
            log.close()
        return LocalRun(proc, token, watchdog)

    def describe(self, run: LocalRun) -> str:
        return f"pid {run.pid}"

    def poll(self, run: LocalRun) -> tuple[bool, str] | None:
        code = run.proc.poll()
        if code is None:
            return None
        run.sweep()  # a run that died leaves no kernel behind
        return code == 0, "" if code == 0 else f"exit code {code}"

    def cancel(self, run: LocalRun) -> None:
        """SIGTERM to the run's process group, SIGKILL after 10 s, then its leftovers."""
        _signal_group(run.pid, signal.SIGTERM)
        try:
            run.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(run.pid, signal.SIGKILL)  # whatever of the group is left
        run.proc.wait()
        run.sweep()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


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
    return read_json_or_warn(run_dir / "run.json") or None


def _failed_record(entry: Entry, run_dir: Path, error: str, duration: float) -> dict:
    """run.json for a run that ended before it could write its own."""
    try:
        params = load_yaml(run_dir / "params.yaml")
    except WorkbenchError:  # missing or damaged: the record must still be written
        params = {}
    record = {"notebook": entry.notebook.stem, "params": params,
              "status": "failed", "duration_s": round(duration, 1), "error": error}
    write_json(record, run_dir / "run.json")
    return record


def _last_log_line(run_dir: Path) -> str:
    log = run_dir / "log.txt"
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] \
        if log.is_file() else []
    return lines[-1][:300] if lines else ""


def _child_env() -> dict[str, str]:
    """What every entry gets, named (a SLURM job exports it even where a site's sbatch does
    not pass the whole environment): thread counts, the cache and the catalog folders."""
    env = {var: os.environ.get(var, "2") for var in THREAD_VARS}
    if os.environ.get("WORKBENCH_CACHE"):
        env["WORKBENCH_CACHE"] = str(Path(os.environ["WORKBENCH_CACHE"]).resolve())
    if os.environ.get("WORKBENCH_CATALOG"):
        env["WORKBENCH_CATALOG"] = os.pathsep.join(
            str(Path(p).resolve()) for p in os.environ["WORKBENCH_CATALOG"].split(os.pathsep) if p)
    return env


def run_plan(plan: Plan, executor, runs_dir: str | Path = "runs", max_parallel: int = 1,
             retry: bool = False, progress: bool = True, log=None,
             on_end=None) -> list[Outcome]:
    """Run every entry whose needs succeeded; return one outcome per entry, in plan order.

    An entry another process runs (its lock is live) is waited for, and its result used.
    ``on_end()`` is called after each run that ends here (the CLI rewrites the index).
    Interrupted (KeyboardInterrupt, SystemExit), running entries are cancelled, recorded
    failed ("interrupted") and unlocked before the exception goes on.
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
    running: dict[str, tuple[object, float, str]] = {}  # handle, start, lock token
    waiting: set[str] = set()  # entries another process runs
    jobs: dict[str, SlurmJob] = {}  # SLURM jobs of other batches' locks, followed here
    ran: set[str] = set()
    env = _child_env()
    bar = tqdm(total=len(plan.entries), desc=f"plan {plan.name}", unit="run", disable=not progress)

    def end(entry: Entry, status: str, detail: str = "", duration: float | None = None) -> None:
        outcomes[entry.id] = Outcome(entry, run_dirs[entry.id], status, duration, detail)
        bar.update(1)
        took = f" after {duration:.0f} s" if duration is not None else ""
        log(f"{status:>7}  {entry.id}{took}{': ' + detail if detail else ''}")

    def is_live(held: dict, run_dir: Path) -> bool:
        """Whether another process still runs the entry of this lock."""
        alive = locks.holder_alive(held)
        handle = str(held.get("handle", ""))
        if alive or not handle.startswith("job "):
            return alive is not False  # another host's process: this one cannot tell
        if executor.name != "slurm":
            return True  # a SLURM job, and no SLURM to ask here
        job = jobs.setdefault(handle, SlurmJob(handle.split()[1], run_dir))
        return executor.poll(job) is None  # still queued or running

    def start(entry: Entry) -> None:
        run_dir = run_dirs[entry.id]
        lock = locks.new_lock(executor.name, batch_pid=os.getpid())
        taken, held = locks.try_lock(run_dir, lock, lambda held: is_live(held, run_dir))
        if not taken:
            if entry.id not in waiting:
                log(f"waiting  {entry.id}: running elsewhere ({locks.describe(held)}); "
                    "its result is used when it ends")
            waiting.add(entry.id)
            return
        if held is not None:
            log(f"warning: {entry.id}: {locks.taken_over(held)}")
        elsewhere = entry.id in waiting
        waiting.discard(entry.id)
        try:
            submit(entry, run_dir, lock["token"], elsewhere)
        finally:
            if entry.id not in running:  # ended without running, or submit failed
                locks.release(run_dir, lock["token"])

    def submit(entry: Entry, run_dir: Path, token: str, elsewhere: bool) -> None:
        """Under the entry's lock: skip it if it finished, else start its run."""
        try:
            params = resolve_params(entry, run_dirs)
        except WorkbenchError as err:
            write_json({"notebook": entry.notebook.stem, "params": {}, "status": "failed",
                        "error": str(err)}, run_dir / "run.json")
            end(entry, "failed", str(err))
            return
        record = read_record(run_dir)
        earlier = read_json_or_warn(run_dir / "batch.json") or {}
        fresh = not any(need in ran for need in entry.needs)
        sha = notebook_sha(entry.notebook)
        same_notebook = earlier.get("notebook_sha") == sha
        if record and fresh and same_notebook and _same(record.get("params"), params):
            if record.get("status") == "ok":
                return end(entry, "done", "finished elsewhere" if elsewhere else "finished earlier")
            if record.get("status") == "failed" and not retry:
                return end(entry, "kept", f"failed earlier ({record.get('error')}); "
                                          "--retry runs it again")
        for stale in ("run.json", "summary.json", "report.html"):
            (run_dir / stale).unlink(missing_ok=True)
        (run_dir / "params.yaml").write_text(dump_yaml(params, sort_keys=True))
        batch = {"plan": plan.name, "plan_file": str(plan.path), "step": entry.step,
                 "entry": entry.id, "labels": entry.labels, "needs": list(entry.needs),
                 "executor": executor.name, "notebook_sha": sha,
                 "submitted": dt.datetime.now().isoformat(timespec="seconds")}
        handle = executor.submit(entry, run_dir, entry_command(entry, run_dir),
                                 {**env, locks.TOKEN_VAR: token})
        running[entry.id] = (handle, time.monotonic(), token)
        ran.add(entry.id)
        batch["handle"] = executor.describe(handle)
        pid = getattr(handle, "pid", None)  # local runs; a SLURM job's lock keeps the batch's
        locks.update_lock(run_dir, token, handle=batch["handle"], **({"pid": pid} if pid else {}))
        write_json(batch, run_dir / "batch.json")
        log(f"started  {entry.id} ({batch['handle']})")

    def finish(entry: Entry, ok: bool, detail: str, started: float, token: str) -> None:
        run_dir = run_dirs[entry.id]
        record = read_record(run_dir)
        duration = time.monotonic() - started
        if record is None:  # the process died before run_notebook wrote its record
            error = detail or "no run.json"
            last = _last_log_line(run_dir)
            record = _failed_record(entry, run_dir, f"{error}; log: {last}" if last else error,
                                    duration)
        locks.release(run_dir, token)
        status = "ok" if ok and record.get("status") == "ok" else "failed"
        end(entry, status, "" if status == "ok" else (record.get("error") or detail), duration)
        if on_end is not None:
            on_end()

    def interrupt(reason: str) -> None:
        for entry_id, (handle, started, token) in running.items():
            try:
                executor.cancel(handle)
            except Exception as err:  # noqa: BLE001 - every other entry is still cancelled
                log(f"could not cancel {entry_id} cleanly: {type(err).__name__}: {err}")
            run_dir = run_dirs[entry_id]
            if read_record(run_dir) is None:
                _failed_record(plan.entry(entry_id), run_dir, reason, time.monotonic() - started)
            locks.release(run_dir, token)
            end(plan.entry(entry_id), "failed", reason, time.monotonic() - started)

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
            for entry_id, (handle, started, token) in list(running.items()):
                result = executor.poll(handle)
                if result is not None:
                    del running[entry_id]
                    finish(plan.entry(entry_id), *result, started, token)
            if running or waiting:
                time.sleep(executor.poll_interval_s)
    except BaseException as err:
        stopped = isinstance(err, KeyboardInterrupt | SystemExit)
        interrupt("interrupted" if stopped else f"interrupted by {type(err).__name__}: {err}")
        raise
    finally:
        bar.close()
    return [outcomes[e.id] for e in plan.entries]
