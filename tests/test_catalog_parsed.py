"""The catalog parses each YAML file once per text of it in a process (a notebook kernel
reads the catalog dozens of times): an edit is read at once, an unchanged file is not
parsed again."""

from __future__ import annotations

import os

import pytest
from helpers import SMALL_WORLD, write_entry

from workbench import catalog, config
from workbench.errors import WorkbenchError


def entry_text(name: str, seed: int = 0) -> str:
    return SMALL_WORLD.format(name=name, domain="global", grid="regular_latlon",
                              grid_param="resolution_deg: 10").replace("seed: 0", f"seed: {seed}")


@pytest.mark.timeout(60)
def test_an_unchanged_file_is_parsed_once_and_an_edit_is_read(tmp_path, monkeypatch):
    path = write_entry(tmp_path, "mine", entry_text("mine"))
    monkeypatch.setenv("WORKBENCH_CATALOG", str(tmp_path))
    parsed = []
    real = config.load_yaml

    def counting(file):
        parsed.append(os.path.basename(file))
        return real(file)

    monkeypatch.setattr(catalog, "load_yaml", counting)
    first = catalog.get_entry("mine")
    assert first.source.seed == 0 and parsed.count("mine.yaml") == 1
    assert catalog.get_entry("mine") is first and parsed.count("mine.yaml") == 1
    # an edit of the same size at once, its mtime put back: the text tells
    mtime = path.stat().st_mtime_ns
    path.write_text(entry_text("mine", seed=7))
    os.utime(path, ns=(mtime, mtime))
    assert catalog.get_entry("mine").source.seed == 7 and parsed.count("mine.yaml") == 2
    assert catalog.get_entry("mine").source.seed == 7 and parsed.count("mine.yaml") == 2
    # a broken file is an error every time it is read, never a stale entry
    path.write_text("name: [unclosed\n")
    for _ in range(2):
        with pytest.raises(WorkbenchError, match="not valid YAML"):
            catalog.get_entry("mine")
    assert parsed.count("mine.yaml") == 4
