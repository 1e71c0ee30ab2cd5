"""Shared by the benchmark scripts: a machine line and appending a table to RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
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


def machine_busy_s() -> float | None:
    """CPU seconds every process on the machine has used since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is in user


def children_cpu_s() -> float:
    """CPU seconds this process's finished children used."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def publish(title: str, rows: list[dict], notes: str, quick: bool) -> None:
    """Print the table and notes (a quick check), or :func:`report` them to RESULTS.md."""
    if quick:
        print(markdown_table(rows), "", notes, sep="\n")
    else:
        report(title, rows, notes)


def workbench_case(spec: dict, device: str = "cpu") -> tuple:
    """(training config, sampling config, domain graph, batches) of a benchmark child's spec
    (``config``, ``domain``, ``batches``: a .pt of x/y/forcings lists and statics), the
    batches on ``device``."""
    import torch

    from workbench import domain_graphs, training

    config = training.load_training_config(spec.get("config_path", spec["config"]))
    sampling = training.sampling_config(config)
    domain = next(d for d in sampling.domains if d.name == spec["domain"])
    graph = domain_graphs.domain_graph(domain.graph, domain.name, domain.dataset,
                                       config.boundary_cells)
    inputs = torch.load(spec["batches"], weights_only=True)
    batches = [{"x": x.to(device), "y": y.to(device), "forcings": f.to(device),
                "statics": inputs["statics"].to(device), "domain_index": 0}
               for x, y, f in zip(inputs["x"], inputs["y"], inputs["forcings"], strict=True)]
    return config, sampling, graph, batches
