"""Typed configs: YAML mappings checked against frozen dataclasses.

An unknown key is an error that names it and lists the allowed ones; a missing required key
is an error that names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import WorkbenchError


def field_names(cls) -> list[str]:
    """The keys a dataclass accepts from YAML (``file`` is set by the loader, not the user)."""
    return [f.name for f in dataclasses.fields(cls) if f.name != "file"]


def check_keys(raw, allowed: type | Iterable[str], where: str,
               required: Iterable[str] = ()) -> Mapping:
    """``raw`` if it is a mapping of allowed keys holding every required one, else an error."""
    names = field_names(allowed) if isinstance(allowed, type) else list(allowed)
    if not isinstance(raw, Mapping):
        raise WorkbenchError(f"{where}: expected a mapping with keys {', '.join(names)}")
    for key in raw:
        if key not in names:
            raise WorkbenchError(f"{where}: unknown key {key!r} (allowed: {', '.join(names)})")
    for key in required:
        if key not in raw:
            raise WorkbenchError(f"{where}: missing required key `{key}`")
    return raw


def resolve_config(path, kind: str) -> Path:
    """A YAML path, or the name of a preset in ``configs/<kind>/`` (e.g. "demo")."""
    path = Path(path)
    if path.is_file():
        return path
    preset = Path(__file__).resolve().parent.parent / "configs" / kind / f"{path}.yaml"
    if not preset.is_file():
        raise WorkbenchError(f"{kind} config {path} not found (nor a preset configs/{kind}/{path}.yaml)")
    return preset
