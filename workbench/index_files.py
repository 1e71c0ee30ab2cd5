"""Index files: a CSV table and its JSON sidecar (``NAME.samples.csv``, ``NAME.meta.json``),
written atomically and reused when the same inputs (their fingerprint) ask again; the tiling
and bin-norm indexes are kept this way."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd


def inputs_fingerprint(payload) -> str:
    """A hash of the inputs an index was made from."""
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def index_paths(index_dir: str | Path, name: str) -> tuple[Path, Path]:
    """The CSV and sidecar paths of index ``name`` in ``index_dir``."""
    folder = Path(index_dir)
    return folder / f"{name}.samples.csv", folder / f"{name}.meta.json"


def reusable(csv_path: Path, meta_path: Path, fingerprint: str) -> dict | None:
    """The sidecar of an index written from the same inputs, or None."""
    if not (csv_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("fingerprint") == fingerprint else None


def read_csv(path: Path) -> pd.DataFrame:
    """An index CSV with its dataset and time columns as text, floats exactly."""
    return pd.read_csv(path, dtype={"dataset": str, "time": str}, float_precision="round_trip")


def write_index(table: pd.DataFrame, meta: dict, csv_path: Path, meta_path: Path) -> None:
    """Write the CSV and its sidecar through temp files + os.replace; no partial files."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp-{os.getpid()}"
    csv_tmp = csv_path.with_name(f".{csv_path.name}{suffix}")
    meta_tmp = meta_path.with_name(f".{meta_path.name}{suffix}")
    try:
        table.to_csv(csv_tmp, index=False)
        meta_tmp.write_text(json.dumps(meta, indent=1))
        os.replace(meta_tmp, meta_path)  # the CSV last: a CSV is never there without its meta
        os.replace(csv_tmp, csv_path)
    finally:
        csv_tmp.unlink(missing_ok=True)
        meta_tmp.unlink(missing_ok=True)
