"""Run-dir locks: while a run goes on, ``<run_dir>/.lock`` says who runs it.

The lock is JSON: ``pid`` (the process running the notebook), ``host``, ``started``,
``executor`` and its ``handle`` (``pid 123``, ``job 45``), ``batch_pid`` (the batch process
that holds it, if any) and a ``token``. The run gets the token as ``$WORKBENCH_LOCK_TOKEN``,
so ``workbench run`` knows the lock of its own batch; every process it starts (the
notebook's kernel) inherits it, so leftovers of a dead run can be found and ended.

A lock is created whole and atomically (a temporary file hard-linked to ``.lock``, which
fails where one exists), updated by rename and removed when the run ends. A lock whose
processes are all dead on this host is stale and may be taken over; checking and taking
over happen under ``flock`` of the run dir, so two processes never both take it over.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .runs import write_json

LOCK_NAME = ".lock"
TOKEN_VAR = "WORKBENCH_LOCK_TOKEN"


def new_lock(executor: str, batch_pid: int | None = None) -> dict:
    """A lock held by this process on this host, with a fresh token."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "executor": executor,
            "handle": f"pid {pid}", "batch_pid": batch_pid, "token": secrets.token_hex(8),
            "started": dt.datetime.now().isoformat(timespec="seconds")}


def read_lock(run_dir: Path) -> dict | None:
    """The run dir's lock; None where there is none, {} where it is unreadable."""
    try:
        lock = json.loads((run_dir / LOCK_NAME).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return lock if isinstance(lock, dict) else {}


def describe(lock: dict) -> str:
    """``pid P on host H`` (plus the SLURM job where there is one)."""
    job = lock.get("handle", "") if str(lock.get("handle", "")).startswith("job ") else ""
    where = f"pid {lock.get('pid', '?')} on host {lock.get('host', '?')}"
    return f"{job} submitted by {where}" if job else where


def taken_over(held: dict) -> str:
    """The warning line for a stale lock that was taken over."""
    what = f"the stale lock of {describe(held)}" if held else "an unreadable lock"
    killed = held.get("leftovers")
    return f"took over {what}" + (f"; killed {killed} leftover process(es)" if killed else "")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs on this machine (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def holder_alive(lock: dict) -> bool | None:
    """True or False on the lock's host (is its run or batch process alive?); None where
    this machine cannot tell (another host)."""
    if lock.get("host") != socket.gethostname():
        return None
    return any(pid_alive(int(pid)) for pid in (lock.get("pid"), lock.get("batch_pid")) if pid)


def processes_with_token(token: str) -> list[int]:
    """This user's processes whose environment holds ``$WORKBENCH_LOCK_TOKEN=token``."""
    needle = f"{TOKEN_VAR}={token}".encode()
    proc = Path("/proc")
    pids = []
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # ended meanwhile, or another user's
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_leftovers(token: str) -> int:
    """SIGKILL every process still carrying the run's token (an orphaned kernel); how many."""
    killed = 0
    for pid in processes_with_token(token):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def watch(token: str) -> None:
    """``python -m workbench.locks TOKEN``: wait for SIGTERM, then kill what carries TOKEN.

    The batch starts one beside each local run, with SIGTERM blocked and as its death
    signal, and terminates it when the run ends: so the run's kernel dies with the batch
    even where ipykernel's parent poller cannot tell (a subreaper such as ``systemd
    --user`` adopts orphans in place of pid 1)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.sigwait({signal.SIGTERM})
    kill_leftovers(token)


@contextmanager
def _guarded(run_dir: Path) -> Iterator[None]:
    """An exclusive flock on the run dir for a check-then-write of its lock."""
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def try_lock(run_dir: Path, lock: dict,
             is_live: Callable[[dict], bool]) -> tuple[bool, dict | None]:
    """Create ``run_dir/.lock`` holding ``lock``.

    Returns (True, the stale lock it replaced or None), or (False, the live lock of another
    process). ``is_live(held)`` decides whether a lock found there is still held. Processes
    a stale lock's run left behind on this host are killed (``leftovers`` in the lock).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    with _guarded(run_dir):
        held = read_lock(run_dir)
        if held is not None:
            if held and is_live(held):
                return False, held
            if held.get("token") and holder_alive(held) is False:
                held["leftovers"] = kill_leftovers(held["token"])
            path.unlink()
        tmp = write_json(lock, run_dir / f"{LOCK_NAME}.{lock['token']}")
        try:
            os.link(tmp, path)  # whole and atomic; fails where another lock appeared
        finally:
            tmp.unlink()
    return True, held


def update_lock(run_dir: Path, token: str, **fields) -> None:
    """Add ``fields`` (the executor's handle, the run's pid) to the lock this token holds."""
    with _guarded(run_dir):
        held = read_lock(run_dir)
        if held and held.get("token") == token:
            write_json({**held, **fields}, run_dir / LOCK_NAME)


def release(run_dir: Path, token: str) -> None:
    """Remove the lock if this token holds it."""
    with _guarded(run_dir):
        held = read_lock(run_dir)
        if held and held.get("token") == token:
            (run_dir / LOCK_NAME).unlink()


@contextmanager
def holding_run_dir(run_dir: Path) -> Iterator[None]:
    """For ``workbench run --run-dir``: run under the lock of the batch that started this
    process, else hold the run dir meanwhile; another live holder is a one-line error."""
    from .errors import WorkbenchError

    token = os.environ.get(TOKEN_VAR)
    held = read_lock(run_dir) if run_dir.is_dir() else None
    if held and token and held.get("token") == token:
        yield
        return
    lock = new_lock("run")
    taken, held = try_lock(run_dir, lock, lambda held: holder_alive(held) is not False
                           or str(held.get("handle", "")).startswith("job "))
    if not taken:
        raise WorkbenchError(f"{run_dir} is in use by a run of {describe(held)}: wait for it "
                             f"to end, or remove {run_dir / LOCK_NAME} if it no longer runs")
    if held is not None:
        print(f"warning: {taken_over(held)}", file=sys.stderr)
    try:
        yield
    finally:
        release(run_dir, lock["token"])


if __name__ == "__main__":
    watch(sys.argv[1])
