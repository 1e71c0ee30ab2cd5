"""A real single-node SLURM cluster (munged + slurmctld + slurmd) on localhost, for tests.

Everything lives under one work folder: slurm.conf, munge key/socket, state, spool, logs and
pid files; nothing global is changed. Clients reach the cluster through ``Cluster.env``
(``SLURM_CONF``; the private munge socket is named in slurm.conf ``AuthInfo=socket=...``,
which clients, slurmd and slurmstepd all read). Needs root (``SlurmUser=root``).

    cluster = start_cluster(tmp_path)        # a Cluster, or a one-line reason (str)
    env = {**os.environ, **cluster.env}      # or cluster.run("sbatch", "--parsable", script)
    ...
    cluster.stop()
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DAEMONS = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld",
           "slurmd": "/usr/sbin/slurmd"}
CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo", "srun", "scancel")
PARTITION = "debug"
SOCKET_DIR_MAX = 60  # sockets are made under this dir; AF_UNIX paths must stay < 108 chars

SLURM_CONF = """\
ClusterName=workbench
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={run}/slurmctld.pid
SlurmdPidFile={run}/slurmd.pid
SlurmctldLogFile={log}/slurmctld.log
SlurmdLogFile={log}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=600
KillWait=5
MailProg=/bin/true
PlugStackConfig={conf_dir}/plugstack.conf
SchedulerParameters=sched_interval=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def missing_requirements() -> str | None:
    """Why this machine cannot run the cluster at all (not root, binary missing), else None."""
    if os.geteuid() != 0:
        return "SLURM test cluster needs root (SlurmUser=root)"
    missing = [p for p in DAEMONS.values() if not os.access(p, os.X_OK)]
    missing += [c for c in CLIENTS if shutil.which(c) is None]
    return f"SLURM/munge binaries missing: {', '.join(missing)}" if missing else None


def free_port() -> int:
    """A TCP port that is free right now (bind to port 0 and let the kernel choose)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_mb(margin: float = 0.1) -> int:
    """This host's memory in MB (MemTotal from /proc/meminfo) less a safety margin."""
    text = Path("/proc/meminfo").read_text()
    total_kb = int(re.search(r"^MemTotal:\s+(\d+)", text, re.M).group(1))
    return max(1, int(total_kb / 1024 * (1 - margin)))


def last_line(path: Path) -> str:
    """The last non-empty line of a log file, or '' when there is none."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def parse_fields(text: str) -> dict[str, str]:
    """``Key=Value`` pairs of one ``scontrol show -o`` record."""
    return dict(re.findall(r"(\w+)=(\S*)", text))


@dataclass
class Cluster:
    """A running cluster; ``env`` is what a client needs on top of ``os.environ``."""

    workdir: Path
    env: dict[str, str]
    partition: str
    cpus: int
    hostname: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    socket_dir: Path | None = None  # a short /tmp folder of our own, removed on stop

    def run(self, *args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run a client command (``sbatch``, ``squeue``, ...) against this cluster."""
        env = {**os.environ, **self.env, **kwargs.pop("env", {})}
        return subprocess.run(args, env=env, capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` fields of one job ({} when unknown)."""
        out = self.run("scontrol", "-o", "show", "job", job_id)
        return parse_fields(out.stdout) if out.returncode == 0 else {}

    def wait(self, job_id: str, timeout: float = 60) -> dict[str, str]:
        """Wait until a job has left the queue; return its ``scontrol show job`` fields."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip()
            if not state or state in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}:
                return self.job(job_id)
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} still queued after {timeout} s")

    def stop(self) -> None:
        """Cancel jobs, stop the daemons (TERM, then KILL) and remove the socket folder."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", "-p", self.partition, timeout=10)
                time.sleep(0.5)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            if (proc := self.procs.get(name)) is not None:
                _terminate(proc)
        self.procs.clear()
        _kill_steps(self.workdir / "log" / "slurmd.log")
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None


def _terminate(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM a daemon's process group, SIGKILL it if it lingers, and reap it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def _kill_steps(slurmd_log: Path) -> None:
    """SIGKILL the sessions of slurmstepds left behind (they hold ``slurmd_log`` open).

    slurmstepd detaches (setsid, reparented to init), so stopping slurmd does not end jobs.
    """
    sessions = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == str(slurmd_log):
                sessions.add(os.getsid(int(fd.parts[2])))
        except OSError:
            continue
    sessions.discard(os.getsid(0))
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.getsid(int(proc.name)) in sessions:
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            continue


def _start(name: str, args: list[str], workdir: Path) -> subprocess.Popen:
    """Start one daemon in the foreground, in its own session, output to log/<name>.out."""
    with open(workdir / "log" / f"{name}.out", "ab") as out:
        return subprocess.Popen([DAEMONS[name], *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _dead(cluster: Cluster, logs: Path) -> str | None:
    """A one-line reason when one of the daemons has exited, else None."""
    for name, proc in cluster.procs.items():
        if proc.poll() is not None:
            line = last_line(logs / f"{name}.log") or last_line(logs / f"{name}.out") or "no log"
            return f"{name} exited with {proc.returncode}: {line}"
    return None


def start_cluster(workdir: Path, timeout: float = 30) -> Cluster | str:
    """Start munged, slurmctld and slurmd under ``workdir``; a Cluster, or why it cannot start.

    Waits until the node is idle. On failure the daemons already started are stopped and a
    one-line reason (with the last log line of the daemon that died) is returned.
    """
    if reason := missing_requirements():
        return reason
    workdir = Path(workdir).resolve()
    dirs = {d: workdir / d for d in ("etc", "state", "spool", "run", "log", "munge")}
    for name in ("state", "spool", "run", "log"):  # fresh: no jobs or log lines of a former run
        shutil.rmtree(dirs[name], ignore_errors=True)
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    dirs["munge"].chmod(0o755)  # munged wants its socket's folder searchable by all
    socket_dir = None
    if len(str(workdir)) > SOCKET_DIR_MAX:
        socket_dir = Path(tempfile.mkdtemp(prefix="slurm", dir="/tmp"))
        socket_dir.chmod(0o755)
    sockets = socket_dir or dirs["munge"]
    if socket_dir is not None:
        dirs["spool"] = socket_dir / "spool"  # slurmstepd makes sockets in the spool dir
        dirs["spool"].mkdir(mode=0o700)
    munge_socket = sockets / "munge.socket"
    munge_socket.unlink(missing_ok=True)

    key = dirs["munge"] / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    conf = dirs["etc"] / "slurm.conf"
    conf.write_text(SLURM_CONF.format(
        host=host, ctld_port=free_port(), slurmd_port=free_port(), munge_socket=munge_socket,
        state=dirs["state"], spool=dirs["spool"], run=dirs["run"], log=dirs["log"],
        conf_dir=dirs["etc"], cpus=cpus, memory=memory_mb(), partition=PARTITION))
    (dirs["etc"] / "plugstack.conf").write_text("")  # not Debian's /etc/slurm one

    cluster = Cluster(workdir=workdir, env={"SLURM_CONF": str(conf)}, partition=PARTITION,
                      cpus=cpus, hostname=host, socket_dir=socket_dir)
    munged = ["--foreground", "--force", f"--key-file={key}", f"--socket={munge_socket}",
              f"--pid-file={dirs['run'] / 'munged.pid'}", f"--log-file={dirs['log'] / 'munged.log'}",
              f"--seed-file={dirs['munge'] / 'munged.seed'}"]
    try:
        reason = _launch(cluster, munged, munge_socket, time.monotonic() + timeout)
    except BaseException:
        cluster.stop()
        raise
    if reason:
        cluster.stop()
        return reason
    return cluster


def _launch(cluster: Cluster, munged: list[str], munge_socket: Path, deadline: float) -> str | None:
    """Start the three daemons and wait for an idle node; None when up, else why not."""
    logs = cluster.workdir / "log"
    conf = cluster.env["SLURM_CONF"]
    cluster.procs["munged"] = _start("munged", munged, cluster.workdir)
    while not munge_socket.exists():
        if reason := _dead(cluster, logs):
            return reason
        if time.monotonic() > deadline:
            return f"munged made no socket {munge_socket}: {last_line(logs / 'munged.log')}"
        time.sleep(0.05)
    cluster.procs["slurmctld"] = _start("slurmctld", ["-D", "-f", conf], cluster.workdir)
    cluster.procs["slurmd"] = _start("slurmd", ["-D", "-f", conf, "-N", cluster.hostname],
                                     cluster.workdir)
    while True:
        if reason := _dead(cluster, logs):
            return reason
        try:
            out = cluster.run("sinfo", "-h", "-N", "-o", "%T", timeout=5)
            state = out.stdout.strip() if out.returncode == 0 else out.stderr.strip()
        except subprocess.TimeoutExpired:
            state = "sinfo timed out"
        if state == "idle":
            return None
        if time.monotonic() > deadline:
            return (f"node {cluster.hostname} not idle ({state}): "
                    f"{last_line(logs / 'slurmctld.log')}")
        time.sleep(0.2)
