"""Shared by the benchmark scripts: a machine line and appending a table to RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    return (f"{platform.node()} · {os.cpu_count()} cores · {platform.processor() or platform.machine()}"
            f" · Python {platform.python_version()}")


def markdown_table(rows: list[dict]) -> str:
    """A list of same-keyed dicts as a markdown table (floats to 3 significant figures)."""
    keys = list(rows[0])
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def report(title: str, rows: list[dict], notes: str = "") -> None:
    """Print the table and append it, with machine and date, to RESULTS.md."""
    table = markdown_table(rows)
    print(table)
    stamp = dt.datetime.now().isoformat(timespec="minutes")
    block = f"\n## {title}\n\n{stamp} · {machine()}\n\n{table}\n"
    if notes:
        block += f"\n{notes}\n"
    with RESULTS.open("a") as fh:
        fh.write(block)
