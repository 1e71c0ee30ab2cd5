"""The demo plan (what `make demo` runs) locally, its index and every report in chromium."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from browser import check_page, chromium_available

from workbench import cli

pytestmark = pytest.mark.slow
# what each notebook draws at least: interactive (bokeh) plots, images (maps), widgets
DRAWN = {
    "catalog": dict(bokeh_plots=3, images=4, widgets=1),
    "graph": dict(bokeh_plots=1, images=5),
    "sampling": dict(bokeh_plots=0, images=5, widgets=1),
    "train": dict(bokeh_plots=0, images=5),
    "skill": dict(bokeh_plots=1, images=10),
}


@pytest.mark.timeout(1800)  # the session's demo plan may run in this test's set-up
def test_demo_plan_runs_locally_and_renders_offline(demo_plan, capsys):
    runs, reports, args = demo_plan  # `workbench batch demo`, run once (tests/conftest.py)
    root = runs / "demo"
    summaries = {e: json.loads((root / e / "summary.json").read_text()) for e in DRAWN}
    # the skill maps scored the model the training step trained, also on unseen europe
    assert Path(summaries["skill"]["run"]["run_dir"]) == root / "train" / "train"
    figures = summaries["skill"]["key_figures"]
    assert figures["unseen_domains"] == "europe"
    assert summaries["train"]["key_figures"]["beats_persistence_global"] is True
    assert figures["skill_vs_persistence_global_6h"] > 0

    page = (reports / "index.html").read_text()
    links = re.findall(r'href="(demo/[a-z]+\.html)"', page)
    assert sorted(links) == sorted(f"demo/{e}.html" for e in DRAWN)
    assert page.count("class='status ok'") == 5

    reason = chromium_available()
    if reason:
        pytest.skip(reason)
    index = check_page(reports / "index.html", settle_s=1)
    assert index["external_requests"] == [] and index["failed_requests"] == []
    assert index["console_errors"] == [] and index["page_errors"] == []
    for entry, least in DRAWN.items():
        result = check_page(reports / "demo" / f"{entry}.html")
        assert result["external_requests"] == [] and result["failed_requests"] == [], entry
        assert result["console_errors"] == [] and result["page_errors"] == [], entry
        for what, count in least.items():
            assert result[what] >= count, (entry, what, result[what])

    # rerun: nothing runs again
    started = time.monotonic()
    assert cli.main(args) == 0
    assert "5 done" in capsys.readouterr().out and time.monotonic() - started < 30
