"""Data catalog: one YAML file per dataset -> ``open_dataset(name)`` in the canonical layout.

Entries come from the project's ``data_catalog/``, then from the folders in the env var
``WORKBENCH_CATALOG`` (``os.pathsep``-separated; ``--catalog`` and the notebooks' ``catalog``
parameter add theirs there, :func:`use_catalog`), then from folders passed explicitly;
a later entry with the same name replaces an earlier one, so users can re-point a name
at their own data. Whether a dataset is a limited area is the catalog's to say
(:func:`is_limited_area`). Generated (embedded-world) datasets are cached as zarr under
:func:`cache_dir`, keyed by a hash of their parameters, made once under a lock however many
processes ask at the same time (:mod:`workbench.cachelock`); a damaged cache entry is
regenerated, when opened or when a read fails (:mod:`workbench.integrity`). A ``cutout``
source combines other entries as anemoi-datasets' ``cutout`` does (limited areas first, then
the global points outside them) through :func:`workbench.grids.cutout`, the function graphs
build their data nodes with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from . import cachelock, integrity, readers
from .config import NonNegative, Positive, check_keys, load_yaml, parse, typed
from .errors import WorkbenchError
from .times import Duration, calendar_name, check_axis, iso

PROJECT_CATALOG = Path(__file__).resolve().parent.parent / "data_catalog"
SOURCE_KINDS = ("generator", "zarr", "netcdf", "anemoi", "grib", "cutout")
WORLD_VERSION = 1  # bump when the analytic world changes, so caches regenerate


@typed
@dataclass(frozen=True)
class CutoutPart:
    """One dataset of a cutout source: a catalog name and its LAM trim (cells per side)."""

    name: str
    trim_edge: NonNegative | tuple[NonNegative, NonNegative, NonNegative, NonNegative] = 0


@typed
@dataclass(frozen=True)
class Source:
    """Where the data comes from: a generator, a local path or a URL."""

    kind: str
    path: str | tuple[str, ...] | None = None  # grib: a file, a glob or a list of them
    url: str | None = None
    level_dim: str = "level"
    # generator only
    grid: str | None = None
    resolution_deg: Annotated[float, Field(gt=0)] | None = None
    coarsen: Positive | None = None
    start: str | None = None
    end: str | None = None
    seed: NonNegative = 0
    # cutout only: limited areas first, the global dataset last
    datasets: tuple[CutoutPart, ...] | None = None
    min_distance_km: Annotated[float, Field(ge=0)] | None = None
    # grib only: the lead time read from forecast files (none: analyses, lead 0)
    step: str | None = None

    @property
    def location(self) -> str:
        if self.kind == "cutout":
            return "cutout of " + ", ".join(p.name for p in self.datasets or ())
        if isinstance(self.path, tuple):
            return ", ".join(self.path)
        return str(self.url or self.path)


@typed
@dataclass(frozen=True)
class CatalogEntry:
    """One dataset of the catalog, as written in its YAML file."""

    name: str
    domain: str
    source: Source
    variables: Mapping[str, str]  # canonical name -> source spec ("name" or "name@level")
    time_step: Duration  # "6h": checked against the data's own step when opened
    grid: Mapping[str, str]
    description: str = ""
    provenance: str = ""
    licence: str = ""
    file: Path | None = field(default=None, compare=False)

    def summary(self) -> dict:
        """The entry as plain JSON-able values (for ``workbench data list --json``)."""
        source = {k: v for k, v in dataclasses.asdict(self.source).items() if v is not None}
        if self.source.kind == "cutout":
            source = {"kind": "cutout", "datasets": list(source["datasets"]),
                      "min_distance_km": source["min_distance_km"]}
        return {
            "name": self.name,
            "domain": self.domain,
            "description": self.description,
            "source": source,
            "variables": list(self.variables),
            "time_step": self.time_step,
            "grid": dict(self.grid),
            "provenance": self.provenance,
            "licence": self.licence,
            "file": str(self.file) if self.file else None,
        }


# --------------------------------------------------------------------------- parsing


GENERATOR_KEYS = ["kind", "grid", "resolution_deg", "coarsen", "start", "end", "seed"]
STORE_KEYS = ["kind", "path", "url", "level_dim"]
CUTOUT_KEYS = ["kind", "datasets", "min_distance_km"]
GRIB_KEYS = ["kind", "path", "step"]


def _source_from_yaml(raw, where: str) -> Source:
    """The keys a source kind takes, checked before the types (:func:`config.parse`)."""
    if not isinstance(raw, Mapping) or "kind" not in raw:
        raise WorkbenchError(f"{where}: `source` needs a mapping with `kind` ({', '.join(SOURCE_KINDS)})")
    kind = raw["kind"]
    if kind not in SOURCE_KINDS:
        raise WorkbenchError(f"{where}: source kind {kind!r} is not one of {', '.join(SOURCE_KINDS)}")
    raw = dict(raw)
    if kind == "cutout":
        check_keys(raw, CUTOUT_KEYS, f"{where} (source)")
        items = raw.get("datasets")
        if not isinstance(items, list) or len(items) < 2:
            raise WorkbenchError(f"{where}: a cutout source needs `datasets`: two or more catalog "
                                 "names, limited areas first and the global dataset last")
        raw["datasets"] = [{"name": item} if isinstance(item, str) else item for item in items]
        raw.setdefault("min_distance_km", 0.0)
    elif kind == "generator":
        check_keys(raw, GENERATOR_KEYS, f"{where} (source)", required=("grid", "start", "end"))
    elif kind == "grib":
        check_keys(raw, GRIB_KEYS, f"{where} (source)", required=("path",))
        try:
            lead = pd.Timedelta(raw.get("step") or "0h")
        except (ValueError, TypeError):
            lead = None
        if lead is None or lead < pd.Timedelta(0) or lead % pd.Timedelta(minutes=1):
            raise WorkbenchError(f"{where}: source step {raw['step']!r} is not a lead time "
                                 "such as 6h or 90min")
    else:
        check_keys(raw, STORE_KEYS, f"{where} (source)")
        if ("path" in raw) == ("url" in raw):
            raise WorkbenchError(f"{where}: a {kind} source needs exactly one of `path` or `url`")
        if isinstance(raw.get("path"), list):
            raise WorkbenchError(f"{where}: a {kind} source reads one `path`; only grib sources "
                                 "take a list of files")
    return parse(Source, raw, f"{where} (source)")


def entry_from_yaml(path: Path) -> CatalogEntry:
    """Parse and validate one catalog YAML file."""
    raw = load_yaml(path)
    where = str(path)
    check_keys(raw, CatalogEntry, where,
               required=("name", "domain", "source", "variables", "time_step", "grid"))
    source = _source_from_yaml(raw["source"], where)
    if isinstance(source.path, tuple):  # a grib source's list of files and globs
        source = dataclasses.replace(
            source, path=tuple(str((path.parent / p).resolve()) for p in source.path))
    elif source.path and not Path(source.path).is_absolute():
        source = dataclasses.replace(source, path=str((path.parent / source.path).resolve()))
    variables = raw["variables"]
    if isinstance(variables, list):  # a plain list: the source's names are the canonical ones
        variables = {v: v for v in variables} if all(isinstance(v, str) for v in variables) \
            else variables
    grid = raw["grid"]
    if isinstance(grid, Mapping):  # "resolution: 2.5" means the text "2.5"
        grid = {k: str(v) if isinstance(v, int | float) else v for k, v in grid.items()}
    text = {k: str(raw.get(k) or "").strip() for k in ("description", "provenance", "licence")}
    entry = parse(CatalogEntry, {**raw, **text, "source": source, "variables": variables,
                                 "grid": grid}, where)
    return dataclasses.replace(entry, file=path)


# --------------------------------------------------------------------------- discovery


def catalog_dirs(extra: Sequence[str | Path] | None = None) -> list[Path]:
    """Folders searched for entries, in order: project, $WORKBENCH_CATALOG, ``extra``."""
    dirs = [PROJECT_CATALOG]
    env = os.environ.get("WORKBENCH_CATALOG", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(p) for p in extra or []]
    for folder in dirs[1:]:
        if not folder.is_dir():
            raise WorkbenchError(
                f"catalog folder {folder} does not exist; fix --catalog or WORKBENCH_CATALOG"
            )
    return dirs


def use_catalog(dirs: Sequence[str | Path] | None) -> list[Path]:
    """Search ``dirs`` too, in this process and every process it starts (DataLoader workers,
    notebook kernels, batch entries): they go to the end of $WORKBENCH_CATALOG, so they take
    the precedence of ``--catalog`` (a later folder's entry replaces an earlier one's). Every
    folder there is made absolute (kernels run in their run dir). Calling it again with the
    same folders changes nothing. A folder that does not exist is a one-line error. Returns
    the folders searched (:func:`catalog_dirs`)."""
    folders = [str(Path(d).expanduser().resolve()) for d in dirs or []]
    for given, folder in zip(dirs or [], folders, strict=True):
        if not Path(folder).is_dir():
            what = "is a file, not a folder" if Path(folder).exists() else "does not exist"
            raise WorkbenchError(f"catalog folder {given} {what}; fix --catalog, the "
                                 "notebook's `catalog` parameter or WORKBENCH_CATALOG")
    current = [str(Path(p).expanduser().resolve())
               for p in os.environ.get("WORKBENCH_CATALOG", "").split(os.pathsep) if p]
    merged = [p for p in current if p not in folders] + list(dict.fromkeys(folders))
    if merged:
        os.environ["WORKBENCH_CATALOG"] = os.pathsep.join(merged)
    return catalog_dirs()


def is_limited_area(entry: CatalogEntry | None, grid) -> bool:
    """Whether a dataset is a limited area (a boundary ring forced from the truth in training
    and evaluation, skill by distance to its edge): its catalog entry's ``domain`` label when
    that is ``lam`` or ``global``, else its grid's coverage (:func:`grids.covers_globe`) --
    never the reader or the grid kind (a global anemoi store is global, a lat-lon extract a
    limited area). ``entry`` None: the coverage alone."""
    from .grids import covers_globe

    label = entry.domain.strip().lower() if entry is not None else ""
    if label in ("lam", "global"):
        return label == "lam"
    return not covers_globe(grid)


def load_catalog(extra_dirs: Sequence[str | Path] | None = None) -> dict[str, CatalogEntry]:
    """All entries by name; later folders override earlier ones."""
    entries: dict[str, CatalogEntry] = {}
    for folder in catalog_dirs(extra_dirs):
        seen: dict[str, Path] = {}
        for path in sorted(folder.glob("*.y*ml")):
            entry = _parsed_entry(path)
            if entry.name in seen:
                raise WorkbenchError(
                    f"{path}: dataset name {entry.name!r} is already used by {seen[entry.name]}; "
                    "rename one of them"
                )
            seen[entry.name] = path
            entries[entry.name] = entry
    return entries


_PARSED: dict[tuple, CatalogEntry] = {}  # by file and text: a kernel reads the catalog often


def _parsed_entry(path: Path) -> CatalogEntry:
    """:func:`entry_from_yaml`, parsed once per text of the file (and its path as given and
    resolved) in this process; the entry is frozen, so it can be shared."""
    try:
        text = path.read_bytes()  # not the mtime: two writes can share a clock tick
    except OSError:
        return entry_from_yaml(path)  # its one-line error
    key = (str(path), str(path.resolve()), text)
    if key not in _PARSED:
        _PARSED[key] = entry_from_yaml(path)
    return _PARSED[key]


def get_entry(name: str, extra_dirs: Sequence[str | Path] | None = None) -> CatalogEntry:
    """The entry called ``name``, or a one-line error listing the known names."""
    entries = load_catalog(extra_dirs)
    if name not in entries:
        raise WorkbenchError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(entries))}. Add a YAML file "
            "to data_catalog/ or to a folder given by --catalog / WORKBENCH_CATALOG"
        )
    return entries[name]


# --------------------------------------------------------------------------- cache


def cache_dir(override: str | Path | None = None) -> Path:
    """Where generated datasets live: ``override``, $WORKBENCH_CACHE or ~/.cache/workbench
    (a file there is a one-line error; the folder is made when something is written)."""
    if override:
        folder = Path(override)
    elif os.environ.get("WORKBENCH_CACHE"):
        folder = Path(os.environ["WORKBENCH_CACHE"])
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "workbench"
    if folder.exists() and not folder.is_dir():
        raise WorkbenchError(f"cache folder {folder} is a file, not a folder: {cachelock.FIX}")
    return folder


def cache_path(entry: CatalogEntry, cache: str | Path | None = None) -> Path:
    """Cache location of a generated entry, keyed by everything that shapes its values."""
    source = {k: v for k, v in dataclasses.asdict(entry.source).items()
              if v is not None or k not in ("datasets", "min_distance_km", "step")}  # old caches
    key = {
        "source": source,
        "variables": dict(entry.variables),
        "time_step": entry.time_step,
        "world": WORLD_VERSION,
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir(cache) / f"{entry.name}-{digest}.zarr"


def generator_times(entry: CatalogEntry) -> np.ndarray:
    """The time axis of a generated entry (start..end inclusive every time_step)."""
    src = entry.source
    try:
        step = pd.Timedelta(entry.time_step)
        times = pd.date_range(pd.Timestamp(src.start), pd.Timestamp(src.end), freq=step)
    except ValueError as err:
        raise WorkbenchError(f"{entry.file}: bad start/end/time_step ({err})") from None
    if len(times) == 0:
        raise WorkbenchError(f"{entry.file}: start {src.start} is after end {src.end}")
    return times.values


def entry_grid(entry: CatalogEntry, catalog: Sequence[str | Path] | None = None):
    """The Grid of an entry; generated and cutout entries without generating any field."""
    from .grids import grid_from_dataset, make_grid

    src = entry.source
    if src.kind == "cutout":
        return cutout_layout(entry, catalog).grid
    if src.kind != "generator":
        return grid_from_dataset(open_dataset(entry, catalog=catalog))
    params = {}
    if src.resolution_deg is not None:
        params["resolution_deg"] = float(src.resolution_deg)
    if src.coarsen is not None:
        params["coarsen"] = int(src.coarsen)
    return make_grid(src.grid, **params)


def cutout_layout(entry: CatalogEntry, catalog: Sequence[str | Path] | None = None):
    """A cutout entry's :class:`workbench.grids.Cutout`: points, order and per-point indices."""
    from .grids import cutout

    src = entry.source
    if src.kind != "cutout":
        raise WorkbenchError(f"dataset {entry.name!r} is not a cutout (source kind {src.kind})")
    parts = [(p.name, entry_grid(get_entry(p.name, catalog), catalog), p.trim_edge)
             for p in src.datasets]
    return cutout(parts, float(src.min_distance_km or 0.0), name=entry.domain)


def prepare(entry: CatalogEntry, cache: str | Path | None = None, progress: bool = True,
            catalog: Sequence[str | Path] | None = None) -> Path:
    """Generate a generator entry into the cache unless it is there, intact; made once
    under a lock, however many processes ask (:func:`workbench.cachelock.create_once`);
    a cutout entry prepares its generated parts (and returns the cache folder)."""
    if entry.source.kind == "cutout":
        for part in entry.source.datasets:
            sub = get_entry(part.name, catalog)
            if sub.source.kind in ("generator", "cutout"):
                prepare(sub, cache, progress, catalog)
        return cache_dir(cache)
    if entry.source.kind != "generator":
        raise WorkbenchError(f"dataset {entry.name!r} is read from its source; only generated "
                             "datasets are prepared")
    names = [*entry.variables, "time", "latitude", "longitude"]
    return _create_generated(entry, cache, progress,
                             lambda path: integrity.zarr_damage(path, names))


def _create_generated(entry: CatalogEntry, cache: str | Path | None, progress: bool,
                      damage: Callable[[Path], str | None]) -> Path:
    return cachelock.create_once(cache_path(entry, cache),
                                 lambda tmp: _write_generated(entry, tmp, progress),
                                 f"dataset {entry.name!r}", damage)


def _write_generated(entry: CatalogEntry, path: Path, progress: bool) -> None:
    """Evaluate the analytic world on the entry's grid and times into a zarr at ``path``."""
    import dask

    from . import world

    ds = world.generate(
        entry_grid(entry),
        generator_times(entry),
        variables=list(entry.variables.values()),
        seed=int(entry.source.seed),
        progress=progress,
    )
    ds = ds.rename({v: k for k, v in entry.variables.items() if k != v})
    ds.attrs.update({"domain": entry.domain, "dataset": entry.name})
    # one chunk after the other: when a write fails (a full disk) no thread writes on,
    # so the temporary store can be removed whole
    with dask.config.set(scheduler="synchronous"):
        ds.chunk({"time": min(8, ds.sizes["time"])}).to_zarr(path, mode="w", consolidated=False)


@dataclass(frozen=True)
class _Rebuild:
    """The repair of a generated entry's cache store whose reads fail (picklable)."""

    entry: CatalogEntry
    cache: str | None

    def __call__(self, still_broken: Callable[[], bool]) -> None:
        _create_generated(self.entry, self.cache, False,
                          lambda path: "a read failed" if still_broken() else None)


# --------------------------------------------------------------------------- opening


def open_dataset(
    name: str | CatalogEntry,
    *,
    catalog: Sequence[str | Path] | None = None,
    cache: str | Path | None = None,
) -> xr.Dataset:
    """Open a catalog dataset lazily in the canonical layout (generating it if needed)."""
    entry = name if isinstance(name, CatalogEntry) else get_entry(name, catalog)
    src = entry.source
    if src.kind == "generator":
        ds = _open_generated(entry, cache)
    elif src.kind == "cutout":
        ds = _open_cutout(entry, catalog, cache)
    elif src.kind == "anemoi":
        ds = readers.read_anemoi(src.location, entry.variables, entry.name)
    elif src.kind == "grib":
        from .grib import read_grib

        ds = read_grib(src.path, entry.variables, entry.name, src.step)
    else:
        raw = readers.open_store(src.location, src.kind, entry.name)
        ds = readers.canonicalize_gridded(raw, entry.variables, entry.name, src.level_dim)
    ds = readers.check_canonical(ds, entry.name, entry.time_step,
                                 str(entry.file or "its catalog entry"))
    ds = _in_catalog_order(ds, entry)
    ds.attrs.update({"domain": entry.domain, "dataset": entry.name,
                     "source_id": source_fingerprint(entry, catalog, cache)})
    return ds


def _in_catalog_order(ds: xr.Dataset, entry: CatalogEntry) -> xr.Dataset:
    """``ds`` with its variables in the catalog entry's order, any others after them sorted:
    a store read without consolidated metadata lists them in directory order, which differs
    between filesystems and between a store being written and the same store written."""
    listed = [v for v in entry.variables if v in ds.data_vars]
    order = listed + sorted(v for v in ds.data_vars if v not in listed)
    return ds if list(ds.data_vars) == order else ds[order]


def source_fingerprint(entry: CatalogEntry, catalog: Sequence[str | Path] | None = None,
                       cache: str | Path | None = None) -> str:
    """A short hash of what a dataset's values come from: the entry, and for local stores the
    size and modification time of their files (so statistics cached for a store are not
    reused once it is rewritten); a generated entry's cache key; a cutout's parts'."""
    key: dict = {"entry": entry.summary() | {"file": None}}
    src = entry.source
    if src.kind == "generator":
        key["store"] = cache_path(entry, cache).name
    elif src.kind == "cutout":
        key["parts"] = [source_fingerprint(get_entry(p.name, catalog), catalog, cache)
                        for p in src.datasets or ()]
    elif not readers.is_remote(src.location):
        paths = src.path if isinstance(src.path, list | tuple) else [src.path]
        key["files"] = [_stat_key(Path(f)) for p in paths for f in sorted(glob.glob(str(p)))]
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _stat_key(path: Path) -> list:
    """(name, size, mtime) of a file, or of a store folder and its top-level entries (a
    rewritten zarr store gets new metadata files and chunk folders)."""
    items = [path, *sorted(path.iterdir())] if path.is_dir() else [path]
    out = []
    for item in items:
        with contextlib.suppress(OSError):
            st = item.stat()
            out.append([item.name, st.st_size, st.st_mtime_ns])
    return out


_GUARDS: dict[str, integrity.ReadGuard] = {}  # cache stores this process opened, by path


def _open_generated(entry: CatalogEntry, cache: str | Path | None) -> xr.Dataset:
    """A generated entry's cache store, opened lazily; damaged, it is regenerated (when
    opened or when a read fails) and the read goes on."""
    path = prepare(entry, cache, progress=False)
    guard = integrity.ReadGuard(entry.name, str(path),
                                _Rebuild(entry, str(cache) if cache else None))
    _GUARDS[str(path)] = guard
    ds = guard.read(lambda: xr.open_zarr(path, chunks=None, consolidated=False))
    return integrity.guard_dataset(ds, guard)


def guarded_array(path: str | Path, array, variable: str):
    """A zarr array of a cache store (read directly, as sampling does) whose reads go
    through the store's guard: regenerated where damaged."""
    guard = _GUARDS.get(str(path)) or integrity.ReadGuard(Path(path).name, str(path))
    return integrity.GuardedArray(array, guard, variable, array.chunks)


def _open_cutout(entry: CatalogEntry, catalog, cache) -> xr.Dataset:
    """The parts of a cutout entry at its points (LAMs first), on the times they share."""
    layout = cutout_layout(entry, catalog)
    names = list(entry.variables.values())
    parts = [open_dataset(p.name, catalog=catalog, cache=cache) for p in entry.source.datasets]
    times = parts[0]["time"].values
    for part in parts[1:]:
        times = np.intersect1d(times, part["time"].values)
    if times.size == 0:
        raise WorkbenchError(f"cutout {entry.name!r}: its datasets share no time")
    pieces = []
    for k, (spec, part) in enumerate(zip(entry.source.datasets, parts, strict=True)):
        absent = [v for v in names if v not in part]
        if absent:
            raise WorkbenchError(f"cutout {entry.name!r}: dataset {spec.name!r} lacks {absent}")
        index = layout.grid_index[layout.dataset_index == k]
        piece = part[names].sel(time=times).isel(grid=index)
        pieces.append(piece.drop_vars([c for c in piece.coords
                                       if c not in ("time", "latitude", "longitude")]))
    ds = xr.concat(pieces, dim="grid", data_vars="minimal", coords="minimal",
                   compat="override", join="override", combine_attrs="override")
    ds.attrs = {}  # the first part's grid description (shape, crs) is not this grid's
    ds = ds.rename({v: k for k, v in entry.variables.items() if k != v})
    ds = ds.assign_coords(cutout_mask=("grid", layout.cutout_mask),
                          lam_edge_cells=("grid", layout.lam_edge_cells),
                          area_weight=("grid", layout.area_weight))  # km^2, as graphs' nodes
    ds.attrs.update({"grid_kind": "cutout",
                     "cutout_datasets": [p.name for p in entry.source.datasets],
                     "lam_spacing_km": float(layout.lam_spacing_km or 0.0)})
    return ds


def describe(ds: xr.Dataset) -> dict:
    """Dims, variables, period, grid size and missing-value fractions of a canonical dataset."""
    info: dict = {
        "dataset": ds.attrs.get("dataset"),
        "domain": ds.attrs.get("domain"),
        "dims": {k: int(v) for k, v in ds.sizes.items()},
        "grid_points": int(ds.sizes["grid"]),
        "grid_shape": ds.attrs.get("grid_shape"),
        "crs": ds.attrs.get("crs"),
    }
    if "time" in ds.dims:
        times = ds["time"].values
        step = check_axis(times, str(info["dataset"]))
        info["period"] = {
            "start": iso(times[0]),
            "end": iso(times[-1]),
            "steps": len(times),
            "time_step": str(step) if step is not None else None,
            "calendar": calendar_name(times),
        }
    missing_counts = ds.isnull().sum().compute()  # one pass over every variable
    total_missing = total = 0
    variables = {}
    for name, var in ds.data_vars.items():
        missing = int(missing_counts[name])
        total_missing += missing
        total += var.size
        variables[name] = {
            "dims": list(var.dims),
            "units": var.attrs.get("units", ""),
            "missing_fraction": missing / var.size if var.size else 0.0,
        }
    info["variables"] = variables
    info["missing_fraction"] = total_missing / total if total else 0.0
    return info
