"""Time and size of preparing the embedded demo datasets, against a plain zarr write of the
same arrays (the I/O floor) measured in the same run.

    .venv/bin/python benchmarks/data_prepare.py
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from common import report

from workbench import catalog, world


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("global", "conus", "europe"):
            entry = catalog.get_entry(name)
            start = time.perf_counter()
            path = catalog.prepare(entry, Path(tmp) / "cache", progress=False)
            prepare_s = time.perf_counter() - start
            ds = world.generate(catalog.entry_grid(entry), catalog.generator_times(entry),
                                variables=list(entry.variables), seed=0).load()
            start = time.perf_counter()
            ds.chunk({"time": 8}).to_zarr(Path(tmp) / f"plain-{name}.zarr", consolidated=False)
            write_s = time.perf_counter() - start
            rows.append({"dataset": name, "points": ds.sizes["grid"], "steps": ds.sizes["time"],
                         "prepare_s": prepare_s, "plain_write_s": write_s,
                         "ratio": prepare_s / write_s, "size_mb": folder_mb(path)})
        shutil.rmtree(Path(tmp) / "cache")
    total = {"dataset": "total", "points": sum(r["points"] for r in rows),
             "steps": rows[0]["steps"], "prepare_s": sum(r["prepare_s"] for r in rows),
             "plain_write_s": sum(r["plain_write_s"] for r in rows), "ratio": 0.0,
             "size_mb": sum(r["size_mb"] for r in rows)}
    total["ratio"] = total["prepare_s"] / total["plain_write_s"]
    report("Embedded demo data: prepare (generate + zarr write) vs plain zarr write",
           rows + [total], "Goal (issue 2): the three demo datasets in under 60 s and 300 MB.")


if __name__ == "__main__":
    main()
