"""Damaged stores: a read that fails names the dataset and the file it failed on.

A zarr chunk that is truncated or garbage fails deep inside a codec, with a traceback that
names neither dataset nor file. :func:`guard_dataset` routes every lazy read of a dataset
through a :class:`ReadGuard`: a failed read becomes one line naming the dataset, the
variable and the file (the chunk file of a zarr store); where the store is a cache entry
the workbench made, the guard's ``repair`` rebuilds it instead and the read is retried.
:func:`zarr_damage` finds what a cheap look at a store can: unreadable metadata, absent
variables, missing or empty chunk files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .errors import WorkbenchError

# repair(still_broken): rebuild the store unless still_broken() (the failed read, tried
# again under the store's lock) says another process or thread has already done so
Repair = Callable[[Callable[[], bool]], None]


@dataclass(frozen=True)
class ReadGuard:
    """How reads of one store fail: the dataset, the store's path, and for cache entries
    the repair that rebuilds it (picklable, so guarded arrays travel to workers)."""

    dataset: str
    path: str
    repair: Repair | None = None

    def read(self, read: Callable[[], Any], variable: str | None = None,
             key: tuple | None = None, chunks: Sequence[int] | None = None) -> Any:
        """``read()``, with a failure repaired (cache entries) or turned into one line."""
        try:
            return read()
        except (WorkbenchError, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure becomes one line
            if self.repair is None:
                raise self._damaged(err, variable, key, chunks) from None
        self.repair(lambda: _fails(read))
        try:
            return read()
        except (WorkbenchError, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001
            raise self._damaged(err, variable, key, chunks, rebuilt=True) from None

    def _damaged(self, err: Exception, variable: str | None, key: tuple | None,
                 chunks: Sequence[int] | None, rebuilt: bool = False) -> WorkbenchError:
        where = chunk_file(Path(self.path), variable, key, chunks) or Path(self.path)
        what = f"variable {variable!r} of dataset {self.dataset!r}" if variable else (
            f"dataset {self.dataset!r}")
        cause = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if rebuilt:
            return WorkbenchError(f"{what}: cache entry {where} is still unreadable after "
                                  f"rebuilding it ({cause}); delete {self.path} and run again")
        return WorkbenchError(f"{what}: {where} is damaged ({cause}); the store cannot be "
                              "read: restore it from its source")


def _fails(read: Callable[[], Any]) -> bool:
    try:
        read()
    except Exception:  # noqa: BLE001
        return True
    return False


def chunk_file(store: Path, variable: str | None, key: tuple | None,
               chunks: Sequence[int] | None) -> Path | None:
    """The zarr chunk file (v3 ``var/c/i/j`` or v2 ``var/i.j``) a one-chunk read of
    ``key`` touches, where it exists; None otherwise (several chunks, not zarr)."""
    if variable is None or key is None or chunks is None or len(key) != len(chunks):
        return None
    index = []
    for k, size in zip(key, chunks, strict=True):
        if k.stop <= k.start or k.start // size != (k.stop - 1) // size:
            return None
        index.append(str(k.start // size))
    folder = store / variable
    candidates = ((folder / "c" / "/".join(index), folder / ".".join(index),
                   folder / "/".join(index)) if index else (folder / "c", folder / "0"))
    return next((c for c in candidates if c.is_file()), None)


class GuardedArray:
    """A sliceable array (a zarr array) whose reads go through a ReadGuard."""

    def __init__(self, source, guard: ReadGuard, variable: str,
                 chunks: Sequence[int] | None = None):
        self.source, self.guard, self.variable = source, guard, variable
        self.chunks = tuple(chunks) if chunks is not None else None
        self.shape, self.dtype, self.ndim = source.shape, source.dtype, len(source.shape)

    def __getitem__(self, key):
        return self.guard.read(lambda: np.asarray(self.source[key]), self.variable,
                               _plain_slices(key, self.shape), self.chunks)


def _plain_slices(key, shape: Sequence[int]) -> tuple[slice, ...] | None:
    """``key`` as one ``slice(start, stop)`` per dimension, or None if it is not that simple."""
    key = key if isinstance(key, tuple) else (key,)
    if len(key) > len(shape):
        return None
    out = []
    for size, k in zip(shape, key + (slice(None),) * (len(shape) - len(key)), strict=True):
        if not isinstance(k, slice) or k.step not in (None, 1):
            return None
        start, stop, _ = k.indices(size)
        out.append(slice(start, stop))
    return tuple(out)


def _guarded_getitem(a, b, asarray=True, lock=None, *, guard: ReadGuard, variable: str,
                     chunks: Sequence[int] | None):
    """dask's block reader (``dask.array.core.getter``), its failures through ``guard``."""
    from dask.array.core import getter

    return guard.read(lambda: getter(a, b, asarray=asarray, lock=lock), variable,
                      _plain_slices(b, a.shape), chunks)


def dask_kwargs(guard: ReadGuard, variable: str, chunks: Sequence[int] | None) -> dict:
    """``dask.array.from_array`` arguments that read each block through ``guard``."""
    from dask.base import tokenize

    getitem = partial(_guarded_getitem, guard=guard, variable=variable,
                      chunks=tuple(chunks) if chunks is not None else None)
    try:  # as xarray's own names: a store rewritten since has other ones
        mtime = os.stat(guard.path).st_mtime_ns
    except OSError:
        mtime = None
    return {"getitem": getitem, "name": f"{variable}-{tokenize(guard, variable, chunks, mtime)}"}


def guard_dataset(ds: xr.Dataset, guard: ReadGuard) -> xr.Dataset:
    """``ds``, opened lazily without dask (``chunks=None``), as dask arrays in the store's
    own chunks (as ``chunks={}`` gives) whose every block is read through ``guard``."""
    replaced = {}
    for name, var in ds.variables.items():
        if name in ds.indexes:  # in memory already
            continue
        preferred = var.encoding.get("preferred_chunks", {})
        chunks = {d: preferred.get(d, size) for d, size in var.sizes.items()}
        replaced[name] = var.chunk(chunks, from_array_kwargs=dask_kwargs(
            guard, str(name), var.encoding.get("chunks")))
    coords = {n: v for n, v in replaced.items() if n in ds.coords}
    return ds.assign_coords(coords).assign({n: v for n, v in replaced.items() if n not in coords})


def zarr_damage(path: Path, names: Iterable[str]) -> str | None:
    """Why the zarr store at ``path`` cannot be used, as far as a cheap look (metadata,
    chunk files present and non-empty) tells, for the arrays ``names``; None if intact."""
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as err:  # noqa: BLE001
        return f"its group metadata cannot be read: {type(err).__name__}"
    for name in names:
        try:
            array = group[name]
        except KeyError:
            return f"variable {name!r} is missing"
        except Exception as err:  # noqa: BLE001
            return f"the metadata of {name!r} cannot be read: {type(err).__name__}"
        if not isinstance(array, zarr.Array):
            return f"{name!r} is not an array"
        missing = array.nchunks - array.nchunks_initialized
        if missing:
            return f"{missing} chunk file(s) of {name!r} are missing"
    empty = next((p for p in Path(path).rglob("*") if p.is_file() and p.stat().st_size == 0),
                 None)
    return f"{empty.relative_to(path)} is empty" if empty else None
