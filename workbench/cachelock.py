"""Create once under a lock: the cache entries that concurrent processes share.

:func:`create_once` makes a cache entry (a file or a folder) exactly once. It takes an
``fcntl.flock`` on ``<target>.lock`` beside the target, checks again whether another process
made the target meanwhile, builds it into ``.<name>.tmp-<pid>`` and renames that into
place. A process that finds the lock held waits, saying so after a few seconds, then uses
the winner's result. The lock file is removed when the build ends. The kernel releases the
lock of a killed process, so no lock is ever stale; the temporary build (and lock file) a
killed process leaves behind is removed by the next process that builds in that folder. A damaged entry is rebuilt in place, file by file, so that
readers of the old one never see a file go missing. Faults of the place itself (a file
where the cache folder should be, a read-only folder, a full disk) become one-line
:class:`WorkbenchError` messages naming the path and the fix.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WorkbenchError

WAIT_NOTE_S = 3.0  # a waiting process says so after this long
POLL_S = 0.05
FIX = "point WORKBENCH_CACHE (or --cache) at another folder"
_PLACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.ENOTDIR, errno.EEXIST}


def lock_path(target: Path) -> Path:
    """The lock file of a cache entry: ``<target>.lock`` beside it."""
    return target.with_name(f"{target.name}.lock")


def place_error(err: OSError, path: Path) -> WorkbenchError:
    """One line for a cache place that cannot be written: the path and the fix."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return WorkbenchError(f"no space left on the disk of {path}: free space there or {FIX}")
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WorkbenchError(f"cannot write to {path} ({os.strerror(err.errno)}): make it "
                              f"writable or {FIX}")
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        return WorkbenchError(f"cannot make the folder {path}: a file is in the way; remove "
                              f"it or {FIX}")
    return WorkbenchError(f"cannot write to {path} ({err.strerror or err}): {FIX}")


def ensure_folder(folder: Path) -> Path:
    """``folder`` made if missing; a file in its place or an unwritable parent is one line."""
    if folder.exists() and not folder.is_dir():
        raise WorkbenchError(f"cache folder {folder} is a file, not a folder: {FIX}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise place_error(err, folder) from None
    return folder


def create_once(target: Path, build: Callable[[Path], None], what: str,
                damage: Callable[[Path], str | None] | None = None) -> Path:
    """``target``, built by ``build(tmp)`` unless it is there and intact.

    ``build`` writes the entry at the temporary path it is given (a file or a folder);
    ``damage(target)`` says why an existing entry cannot be used (None: it can), so that
    it is rebuilt. ``what`` names the entry in messages ("dataset 'conus'").
    """
    damage = damage or (lambda path: None)
    if target.exists() and damage(target) is None:
        return target
    ensure_folder(target.parent)
    with _locked(target, what):
        reason = damage(target) if target.exists() else None
        if target.exists() and reason is None:
            return target  # another process made it while this one waited
        remove_orphans(target.parent, target)
        if reason:
            print(f"note: {what} at {target} is damaged ({reason}); rebuilding it",
                  file=sys.stderr, flush=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            build(tmp)
            _install(tmp, target)
        except Exception as err:
            cause = _os_error(err)
            if cause is None or cause.errno not in _PLACE_ERRNOS:
                raise
            raise place_error(cause, target.parent) from None
        finally:
            _remove(tmp)
    return target


@contextmanager
def _locked(target: Path, what: str) -> Iterator[None]:
    """Hold the flock of ``target``; waiting for it is said after WAIT_NOTE_S seconds. The
    lock file is removed while still held, so that it does not outlive the build."""
    path = lock_path(target)
    started, said = time.monotonic(), False
    while (fd := _take(path, create=True)) is None:
        if not said and time.monotonic() - started >= WAIT_NOTE_S:
            print(f"waiting for another process preparing {what} ({path})",
                  file=sys.stderr, flush=True)
            said = True
        time.sleep(POLL_S)
    try:
        yield
    finally:
        _release(path, fd)


def _take(path: Path, create: bool) -> int | None:
    """An open file holding the flock of the lock file ``path``; None where another process
    holds it, or it is gone or was replaced meanwhile (the lock of a finished build)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT if create else os.O_RDONLY, 0o666)
    except OSError as err:
        if create:
            raise place_error(err, path.parent) from None
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(fd)
    return None


def _release(path: Path, fd: int) -> None:
    try:
        path.unlink()
    except OSError:
        pass
    os.close(fd)  # releases the flock


def remove_orphans(folder: Path, held: Path | None = None) -> list[Path]:
    """Remove the temporary builds in ``folder`` that no live process writes: those of
    ``held`` (whose lock the caller holds) and those whose entry's lock file a killed
    process left behind (with the lock file). A temporary without a lock file beside its
    entry was not made here and is kept."""
    removed = []
    for tmp in folder.glob(".*.tmp-*"):
        name = tmp.name[1:].rsplit(".tmp-", 1)[0]
        if held is not None and name == held.name:
            _remove(tmp)
            removed.append(tmp)
            continue
        lock = lock_path(folder / name)
        fd = _take(lock, create=False)
        if fd is not None:  # the lock is free: nobody builds that entry
            _remove(tmp)
            removed.append(tmp)
            _release(lock, fd)
    return removed


def _install(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; over an existing folder, file by file (each rename is
    atomic, so a reader of the old folder never finds a file missing)."""
    if not (tmp.is_dir() and target.is_dir()):
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
        return
    for root, dirs, files in os.walk(tmp):
        here = target / Path(root).relative_to(tmp)
        for name in dirs:
            if (here / name).exists() and not (here / name).is_dir():
                (here / name).unlink()
            (here / name).mkdir(exist_ok=True)
        for name in files:
            if (here / name).is_dir():
                shutil.rmtree(here / name)
            os.replace(Path(root) / name, here / name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _os_error(err: BaseException | None) -> OSError | None:
    """The OSError behind ``err`` (itself, or in its cause/context chain), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno is not None:
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
