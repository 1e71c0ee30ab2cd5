"""Notebook parameters: JSON values only, checked against the notebook's declared types.

papermill writes parameter values into the notebook as code; a value that is not plain JSON
(a YAML ``!!binary`` or ``!!set``) once reached its fallback translator unescaped and ran.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from helpers import tiny_notebook

from workbench import parameters
from workbench.batch import load_plan
from workbench.errors import WorkbenchError

# what the old fallback translator wrote into the cell and ran: bytes whose str() breaks out
PAYLOAD = '"+str(__import__("os").system("touch {mark}"))+"'


def binary_tag(mark) -> str:
    return "!!binary " + base64.b64encode(PAYLOAD.format(mark=mark).encode()).decode()


def workbench(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(done: subprocess.CompletedProcess, *words: str) -> str:
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in err, (word, err)
    return err


@pytest.fixture(scope="module")
def echo_notebook(tmp_path_factory):
    """A notebook that writes the parameters it received into summary.json."""
    return tiny_notebook(
        tmp_path_factory.mktemp("nb") / "echo.ipynb",
        'text = "a"  # any text\ncount = 1  # a whole number\nscale = 1.0  # a number\n'
        'names = ["x"]  # a list\nlimit = 3  # type: Optional[int] a number or None\n'
        'options = None  # anything JSON\nflag = False  # a boolean',
        'import json, pathlib\npathlib.Path("summary.json").write_text(json.dumps(dict('
        'text=text, count=count, scale=scale, names=names, limit=limit, options=options, '
        'flag=flag)))')


def test_declared_types_and_parsing(tmp_path):
    params = parameters.notebook_parameters("00_catalog_tour")
    assert params["variable"]["default"] == '"t2m"'
    assert params["datasets"]["type"] == "list"
    file = tmp_path / "p.yaml"
    file.write_text("variable: z_500\ntime_index: 3\n")
    parsed = parameters.parse_parameters([("time_index", "4"), ("datasets", "[global, conus]")],
                                         [file], notebook="00_catalog_tour")
    assert parsed == {"variable": "z_500", "time_index": 4, "datasets": ["global", "conus"]}
    # string parameters keep their text: YAML 1.1 would read 1:48 as the number 108
    typed = parameters.parse_parameters([("k_range", "1:48"), ("trims", "[0, 5]")],
                                        notebook="01_graph_inspection")
    assert typed == {"k_range": "1:48", "trims": [0, 5]}
    assert parameters.type_options("int | None") == ["int", "None"]
    assert parameters.type_options("Optional[list[str]]") == ["list", "None"]
    assert parameters.type_options("None") is None and parameters.type_options("expression") is None


@pytest.mark.parametrize(("pairs", "match"), [
    ([("time_index", "abc")], r"time_index must be a whole number \(declared int\), got 'abc'"),
    ([("time_index", "2.5")], "time_index must be a whole number"),
    ([("time_index", "true")], "time_index must be a whole number"),
    ([("datasets", "europe")], r"datasets must be a list .*got 'europe'; for a list write \[europe\]"),
    ([("interactive_frames", "[1, 2]")], "interactive_frames must be a whole number"),
    ([("datasets", "!!set {a, b}")], "tag !!set is not allowed"),
    ([("datasets", "!!python/object/apply:os.system [ls]")], "is not allowed"),
    ([("datasets", "[.nan]")], r"datasets\[0\]: nan is not a finite number"),
    ([("datasets", "[{1: a}]")], "key 1 is not a string"),
    ([("nothing", "1")], "unknown parameter"),
])
def test_bad_values_refused(pairs, match):
    with pytest.raises(WorkbenchError, match=match):
        parameters.parse_parameters(pairs, notebook="00_catalog_tour")


def test_yaml_tags_never_reach_the_notebook(tmp_path):
    """-p, -f and plan values with !!binary are refused before any run dir exists; nothing
    runs (the payload would create the mark file)."""
    mark = tmp_path / "MARK"
    runs = tmp_path / "runs"
    done = workbench("run", "01_graph_inspection", "-p", "trims", binary_tag(mark),
                     "--runs-dir", runs)
    assert_one_line_error(done, "parameter trims", "!!binary is not allowed")
    file = tmp_path / "p.yaml"
    file.write_text(f"trims: {binary_tag(mark)}\n")
    done = workbench("run", "01_graph_inspection", "-f", file, "--runs-dir", runs)
    assert_one_line_error(done, f"{file}:1", "!!binary is not allowed")
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: p\nsteps:\n  - name: graph\n    notebook: 01_graph_inspection\n"
                    f"    grid: {{trims: [{binary_tag(mark)}]}}\n")
    done = workbench("batch", plan, "--runs-dir", runs)
    assert_one_line_error(done, "plan.yaml:5", "!!binary is not allowed")
    with pytest.raises(WorkbenchError, match="!!binary is not allowed"):
        load_plan(plan)
    assert not mark.exists() and not runs.exists()


def test_plan_values_checked_against_notebook_types(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: p\nsteps:\n  - name: graph\n    notebook: 01_graph_inspection\n"
                    "    grid: {band_cells: [4, ten]}\n")
    with pytest.raises(WorkbenchError, match="step 'graph': parameter band_cells must be a "
                                             "whole number.*got 'ten'"):
        load_plan(plan)
    plan.write_text("name: p\nsteps:\n  - name: tour\n    notebook: 00_catalog_tour\n"
                    "    params: {datasets: europe}\n")
    with pytest.raises(WorkbenchError, match="datasets must be a list"):
        load_plan(plan)


@pytest.mark.slow
def test_values_arrive_verbatim(tmp_path, echo_notebook):
    """Quotes, backslashes, newlines and code-like text arrive as the same string; numbers,
    None and nested JSON keep their types."""
    mark = tmp_path / "MARK"
    text = f'a"b\'c\\n\\\\ \n"+str(__import__("os").system("touch {mark}"))+" ${{x}} {{y}}'
    file = tmp_path / "p.yaml"
    file.write_text(json.dumps({"options": {"k": [1, 2.5, None, True, "s"]}, "names": []}))
    runs = tmp_path / "runs"
    done = workbench("run", echo_notebook, "-p", "text", text, "-p", "count", "7",
                     "-p", "scale", "3", "-p", "limit", "null", "-f", file,
                     "--runs-dir", runs, "--no-index", "--no-progress")
    assert done.returncode == 0, done.stderr
    (run_dir,) = runs.iterdir()
    got = json.loads((run_dir / "summary.json").read_text())
    assert got == {"text": text, "count": 7, "scale": 3, "names": [], "limit": None,
                   "options": {"k": [1, 2.5, None, True, "s"]}, "flag": False}
    assert not mark.exists()
    done = workbench("run", echo_notebook, "-p", "limit", "many", "--runs-dir", runs)
    assert_one_line_error(done, "limit must be a whole number or null")


@pytest.mark.slow
def test_relative_paths_are_read_from_where_workbench_run_is_called(tmp_path):
    """The kernel runs in its own run dir; `-p run_dir runs/<id>/train` typed in the project
    folder must name that folder there, not one under the new run dir (it did)."""
    notebook = tiny_notebook(
        tmp_path / "paths.ipynb",
        'config = "demo"  # a preset or a YAML path\nrun_dir = ""  # a run dir\n'
        'runs = ".."  # a runs folder\nforecast_files = []  # files\ninit_from = ""  # a run',
        'import json, pathlib\npathlib.Path("summary.json").write_text(json.dumps(dict('
        'config=config, run_dir=run_dir, runs=runs, forecast_files=forecast_files, '
        'init_from=init_from, seen=[pathlib.Path(p).exists() for p in '
        '[config, run_dir, runs, *forecast_files]])))')
    project = tmp_path / "project"
    (project / "runs" / "old" / "train").mkdir(parents=True)
    (project / "my.yaml").write_text("{}\n")
    (project / "f.nc").write_text("")
    done = workbench("run", notebook, "-p", "config", "my.yaml",
                     "-p", "run_dir", "runs/old/train", "-p", "runs", "runs",
                     "-p", "forecast_files", "[f.nc]", "--no-index", "--no-progress", cwd=project)
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in (project / "runs").iterdir() if p.name != "old"]
    got = json.loads((run_dir / "summary.json").read_text())
    assert got["config"] == str(project / "my.yaml")
    assert got["run_dir"] == str(project / "runs" / "old" / "train")
    assert got["runs"] == str(project / "runs")
    assert got["forecast_files"] == [str(project / "f.nc")]
    assert got["seen"] == [True, True, True, True]
    assert got["init_from"] == ""  # not given: the notebook's default, untouched
    # a preset name stays a name; an empty run_dir keeps its meaning (the latest run)
    done = workbench("run", notebook, "-p", "config", "demo", "-p", "run_dir", "",
                     "--no-index", "--no-progress", cwd=project)
    assert done.returncode == 0, done.stderr
    newest = max((project / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    got = json.loads((newest / "summary.json").read_text())
    assert (got["config"], got["run_dir"]) == ("demo", "")
