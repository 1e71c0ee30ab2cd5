"""Faults of the data cache: SIGKILL and concurrent runs.

Every run is a real ``python -m workbench.cli`` process; kills are real SIGKILLs, locks
real flocks, the full disk and the read-only folder real tmpfs mounts (skipped only where
mounting is not permitted). Each child has a timeout and each wait a deadline.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import xarray as xr
from helpers import user_zarr, write_entry

from workbench import catalog

ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 120
# a 2 deg global over 10 days every 3 h: about a second to generate, ~0.2 s to write
WORLD = """\
name: {name}
domain: global
source:
  kind: generator
  grid: regular_latlon
  resolution_deg: {resolution}
  start: "2020-01-01"
  end: "{end}"
  seed: 0
variables: [t2m, tp, orog]
time_step: {step}
grid: {{kind: test, resolution: coarse}}
"""


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> tuple[Path, Path]:
    """A catalog folder (``mid``: slow enough to kill; ``tiny``) and a cache holding the
    reference store of ``mid``, prepared in this process, to compare contents with."""
    folder = tmp_path_factory.mktemp("faults") / "catalog"
    write_entry(folder, "mid", WORLD.format(name="mid", resolution=2, end="2020-01-11",
                                            step="3h"))
    write_entry(folder, "tiny", WORLD.format(name="tiny", resolution=10,
                                             end="2020-01-02T18:00", step="6h"))
    reference = catalog.prepare(catalog.get_entry("mid", [folder]), folder.parent / "reference",
                                progress=False)
    return folder, reference


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    return proc.returncode, out, err


def _assert_one_error(result, *needles: str) -> str:
    """Exit 2, exactly one stderr line starting ``error:`` (the last; before it only
    progress bars), holding every needle; no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.002)


def _lock_held(path: Path) -> bool:
    """Whether another process holds the flock of ``path`` (probing it releases at once)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if ".tmp-" in p.name or p.suffix == ".lock")


def _assert_same_store(store: Path, reference: Path) -> None:
    with xr.open_zarr(store, consolidated=False) as got, \
            xr.open_zarr(reference, consolidated=False) as want:
        xr.testing.assert_identical(got.load(), want.load())


def _mid(folder: Path, cache: Path) -> Path:
    return catalog.cache_path(catalog.get_entry("mid", [folder]), cache)


# --------------------------------------------------------------------------- concurrency


def test_two_prepares_at_once_share_one_store(worlds, tmp_path):
    folder, reference = worlds
    cache = tmp_path / "cache"
    procs = [_cli("data", "prepare", "mid", "--catalog", str(folder), "--cache", str(cache))
             for _ in range(2)]
    results = [_finish(p) for p in procs]
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    store = _mid(folder, cache)
    assert results[0][1] == results[1][1] == f"mid: {store}\n"
    assert "Directory not empty" not in results[0][2] + results[1][2]
    assert [p.name for p in cache.iterdir()] == [store.name]  # one store, no tmp, no lock
    _assert_same_store(store, reference)


def test_two_stats_at_once_agree(worlds, tmp_path):
    folder, _ = worlds
    cache = tmp_path / "cache"
    argv = ("data", "stats", "tiny", "--json", "--catalog", str(folder), "--cache", str(cache))
    results = [_finish(p) for p in [_cli(*argv), _cli(*argv)]]
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert results[0][1] == results[1][1]
    assert len(list((cache / "statistics").iterdir())) == 1  # one JSON, no tmp, no lock
    assert _leftovers(cache) == []


def test_waiting_prepare_goes_on_when_the_holder_is_killed(worlds, tmp_path):
    """A process holding the lock (a real flock in another process) is SIGKILLed: the
    kernel releases the lock and the waiting prepare, which said it waits, builds."""
    folder, reference = worlds
    cache = tmp_path / "cache"
    cache.mkdir()
    lock = catalog.cache_path(catalog.get_entry("tiny", [folder]), cache)
    lock = lock.with_name(lock.name + ".lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; "
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        log = tmp_path / "waiter.err"
        with log.open("w") as err:
            waiter = subprocess.Popen([sys.executable, "-m", "workbench.cli", "data", "prepare",
                                       "tiny", "--catalog", str(folder), "--cache", str(cache)],
                                      cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
            _wait_for(lambda: "waiting for another process preparing dataset 'tiny'"
                      in log.read_text(), "the waiting message")
            assert waiter.poll() is None and not list(cache.glob("*.zarr"))
            holder.send_signal(signal.SIGKILL)
            assert holder.wait(timeout=10) == -signal.SIGKILL
            out, _ = waiter.communicate(timeout=CHILD_TIMEOUT_S)
        assert waiter.returncode == 0, log.read_text()[-2000:]
        assert out.startswith("tiny: ") and len(list(cache.glob("*.zarr"))) == 1
        assert _leftovers(cache) == []
    finally:
        holder.kill()
        holder.wait(timeout=10)


# --------------------------------------------------------------------------- SIGKILL


def test_prepare_killed_while_generating(worlds, tmp_path):
    folder, reference = worlds
    cache = tmp_path / "cache"
    store = _mid(folder, cache)
    lock = store.with_name(store.name + ".lock")
    proc = _cli("data", "prepare", "mid", "--catalog", str(folder), "--cache", str(cache))
    try:
        _wait_for(lambda: _lock_held(lock), "the prepare to take its lock")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert not store.exists() and lock.exists()  # killed before the rename, lock file left
    result = _run("data", "prepare", "mid", "--catalog", str(folder), "--cache", str(cache))
    assert result.returncode == 0, result.stderr[-2000:]
    assert _leftovers(cache) == []
    _assert_same_store(store, reference)


def test_prepare_killed_while_writing_leaves_an_orphan_that_is_removed(worlds, tmp_path):
    """Killed with its temporary store half written; the next prepare in that folder (of
    another dataset) removes the orphan, and the dataset's own prepare succeeds."""
    folder, reference = worlds
    cache = tmp_path / "cache"
    store = _mid(folder, cache)
    proc = _cli("data", "prepare", "mid", "--catalog", str(folder), "--cache", str(cache))
    tmp = store.with_name(f".{store.name}.tmp-{proc.pid}")
    try:
        _wait_for(lambda: (tmp / "zarr.json").exists() or proc.poll() is not None,
                  "the temporary store")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL, "prepare ended before it was killed"
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert tmp.is_dir() and not store.exists()
    result = _run("data", "prepare", "tiny", "--catalog", str(folder), "--cache", str(cache))
    assert result.returncode == 0, result.stderr[-2000:]
    assert not tmp.exists() and _leftovers(cache) == []
    result = _run("data", "prepare", "mid", "--catalog", str(folder), "--cache", str(cache))
    assert result.returncode == 0, result.stderr[-2000:]
    assert _leftovers(cache) == []
    _assert_same_store(store, reference)


# --------------------------------------------------------------------------- damage


def test_damaged_chunk_of_a_user_store_is_one_line(tmp_path):
    folder = user_zarr(tmp_path)
    chunk = tmp_path / "user.zarr" / "t2m" / "c" / "1" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:7])  # truncated
    for command in ("show", "stats"):
        result = _run("data", command, "mine", "--catalog", str(folder),
                      "--cache", str(tmp_path / "cache"))
        _assert_one_error(result, "dataset 'mine'", str(chunk), "damaged")
        assert result.stderr.count("\n") == 1  # nothing but that line
    assert not list((tmp_path / "cache" / "statistics").glob("*.json"))


# --------------------------------------------------------------------------- places


@contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def test_cache_path_is_a_file(worlds, tmp_path):
    folder, _ = worlds
    a_file = tmp_path / "cache"
    a_file.write_text("not a folder")
    result = _run("data", "prepare", "tiny", "--catalog", str(folder), "--cache", str(a_file))
    _assert_one_error(result, str(a_file), "is a file", "WORKBENCH_CACHE")
    env_result = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "data", "show", "tiny", "--catalog", str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        env={**os.environ, "WORKBENCH_CACHE": str(a_file / "below")})
    _assert_one_error(env_result, str(a_file / "below"), "WORKBENCH_CACHE")
    assert a_file.read_text() == "not a folder"


def test_read_only_cache(worlds, tmp_path):
    """Nothing can be written: one line; a store prepared before it turned read-only is
    still read (no lock is taken to read)."""
    folder, _ = worlds
    with _tmpfs(tmp_path / "cache", "size=4m") as cache:
        assert _run("data", "prepare", "tiny", "--catalog", str(folder),
                    "--cache", str(cache)).returncode == 0
        remount = subprocess.run(["mount", "-o", "remount,ro", str(cache)],
                                 capture_output=True, text=True, timeout=30)
        assert remount.returncode == 0, remount.stderr
        result = _run("data", "prepare", "mid", "--catalog", str(folder), "--cache", str(cache))
        _assert_one_error(result, str(cache), "Read-only", "WORKBENCH_CACHE")
        shown = _run("data", "show", "tiny", "--json", "--catalog", str(folder),
                     "--cache", str(cache))
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert '"grid_points": 684' in shown.stdout  # 19 x 36
        assert [p.name for p in cache.iterdir()] == [_tiny_store(folder, cache).name]


def _tiny_store(folder: Path, cache: Path) -> Path:
    return catalog.cache_path(catalog.get_entry("tiny", [folder]), cache)


def test_full_disk_leaves_no_partial_store(worlds, tmp_path):
    folder, _ = worlds
    with _tmpfs(tmp_path / "cache", "size=256k") as cache:
        result = _run("data", "prepare", "mid", "--catalog", str(folder), "--cache", str(cache))
        _assert_one_error(result, str(cache), "no space left", "free space", "WORKBENCH_CACHE")
        assert list(cache.iterdir()) == []  # no store, no temporary, no lock file


def test_cache_truncated_graph_file_is_rebuilt(tmp_path, capsys):
    """A graph cached by training (cache/graphs/*.pt) cut short by a kill or a full disk is
    rebuilt on next use, equal to a fresh build."""
    from workbench import domain_graphs

    first = domain_graphs.graph_for("demo-conus", "conus", tmp_path)
    (cached,) = (tmp_path / "graphs").glob("demo-conus-*.pt")
    cached.write_bytes(cached.read_bytes()[:1000])
    again = domain_graphs.graph_for("demo-conus", "conus", tmp_path)
    assert "damaged (not a complete torch file); rebuilding it" in capsys.readouterr().err
    assert again.graph_id == first.graph_id
    for key in ("data", "hidden"):
        assert torch.equal(again[key].x, first[key].x)
    assert not list((tmp_path / "graphs").glob(".*tmp*"))
