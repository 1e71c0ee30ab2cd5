"""Batch plans: checking, expansion, placeholders, the scheduler (real papermill runs of a
small notebook), rerun-skip, retry, blocked entries, sbatch scripts and the index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import tiny_notebook

from workbench import cli
from workbench.batch import Entry, Resources, load_plan, resolve_params
from workbench.errors import WorkbenchError
from workbench.index import collect_runs, hanging_table, write_index
from workbench.scheduler import LocalExecutor, run_plan
from workbench.slurm import sbatch_script

TINY_SOURCE = '''import json, pathlib, time
if must_exist and not pathlib.Path(must_exist).exists():
    raise FileNotFoundError(must_exist)
time.sleep(sleep_s)
pathlib.Path("summary.json").write_text(json.dumps(
    {"key_figures": {"double": 2 * value, "label": label}, "value": value}))
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A two-cell notebook: doubles ``value``, fails if ``must_exist`` is missing."""
    return tiny_notebook(
        tmp_path_factory.mktemp("nb") / "tiny.ipynb",
        'value = 1  # a number\nlabel = "a"  # any text\nmust_exist = ""  # a path; missing: fail'
        '\nsleep_s = 0.0  # seconds to wait', TINY_SOURCE)


def write_plan(tmp_path: Path, steps: list[dict], name: str = "p", **extra) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **extra, "steps": steps}, sort_keys=False))
    return path


# --------------------------------------------------------------------------- checking


def test_grid_foreach_and_needs_expand(tiny, tmp_path):
    plan = load_plan(write_plan(tmp_path, [
        {"name": "a", "notebook": str(tiny), "grid": {"value": [1, 2], "label": ["x", "y"]}},
        {"name": "b", "notebook": str(tiny), "foreach": "a",
         "params": {"value": "${a.summary.key_figures.double}"}},
        {"name": "c", "notebook": str(tiny), "needs": ["b"], "slurm": {"gpus_per_node": 4}},
    ], slurm={"time": "02:00:00", "partition": "gpu"}))
    ids = [e.id for e in plan.entries]
    assert ids == ["a-value=1-label=x", "a-value=1-label=y", "a-value=2-label=x",
                   "a-value=2-label=y", "b-value=1-label=x", "b-value=1-label=y",
                   "b-value=2-label=x", "b-value=2-label=y", "c"]
    b = plan.entry("b-value=2-label=y")
    assert b.needs == ("a-value=2-label=y",) and b.sources == {"a": "a-value=2-label=y"}
    assert b.labels == {"value": 2, "label": "y"}
    assert plan.entry("c").needs == tuple(ids[4:8])
    assert plan.entry("c").resources == Resources(gpus_per_node=4, time="02:00:00",
                                                  partition="gpu")


@pytest.mark.parametrize("steps, message", [
    ([{"name": "a", "notebook": "99_nothing"}], "unknown notebook '99_nothing'"),
    ([{"name": "a", "notebook": "00_catalog_tour", "params": {"varaible": "t2m"}}],
     "unknown parameter(s) varaible"),
    ([{"name": "a", "notebook": "00_catalog_tour", "grid": {"time_indx": [0, 1]}}],
     "unknown parameter(s) time_indx"),
    ([{"name": "a", "notebook": "00_catalog_tour", "needs": ["c"]},
      {"name": "b", "notebook": "00_catalog_tour", "needs": ["a"]},
      {"name": "c", "notebook": "00_catalog_tour", "needs": ["b"]}],
     "dependency cycle a -> c -> b -> a"),
    ([{"name": "a", "notebook": "00_catalog_tour", "needs": ["train"]}],
     "needs unknown step(s) train"),
    ([{"name": "a", "notebook": "00_catalog_tour", "grid": {"time_index": [0, 1]}},
      {"name": "b", "notebook": "04_skill_maps", "needs": ["a"],
       "params": {"run_dir": "${a.run_dir}"}}], "add `foreach: a`"),
    ([{"name": "a", "notebook": "00_catalog_tour"},
      {"name": "b", "notebook": "04_skill_maps", "params": {"run_dir": "${a.run_dir}"}}],
     "does not need step 'a'"),
    ([{"name": "a", "notebook": "04_skill_maps", "params": {"run_dir": "${a.rundir}"}}],
     "is not ${STEP.run_dir}"),
    ([{"name": "a", "notebook": "00_catalog_tour", "slurm": {"gpus": 4}}],
     "unknown key 'gpus'"),
    ([{"name": "a", "notebook": "00_catalog_tour", "grid": {"time_index": []}}],
     "must be a non-empty list"),
    ([{"name": "a", "notebook": "00_catalog_tour"}, {"name": "a", "notebook": "00_catalog_tour"}],
     "two steps are named 'a'"),
])
def test_bad_plans_fail_before_anything_runs(tmp_path, capsys, steps, message):
    path = write_plan(tmp_path, steps)
    with pytest.raises(WorkbenchError) as err:
        load_plan(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    code = cli.main(["batch", str(path), "--runs-dir", str(tmp_path / "runs"),
                     "--reports-dir", str(tmp_path / "reports")])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "reports").exists()


def test_missing_sbatch_is_one_line_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code = cli.main(["batch", "demo", "--executor", "slurm", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "sbatch and squeue not found on PATH" in err and "--executor local" in err
    assert not (tmp_path / "runs").exists()


def test_unknown_plan_lists_presets():
    with pytest.raises(WorkbenchError, match="preset: byod, demo, seed000, seed004"):
        load_plan("nothing-like-this")


def test_presets_load_and_chain_graph_training_skill():
    demo = load_plan("demo")
    assert [e.notebook.stem for e in demo.entries] == [
        "00_catalog_tour", "01_graph_inspection", "02_domain_sampling", "03_training",
        "04_skill_maps"]
    assert demo.entry("skill").params["run_dir"] == "${train.run_dir}/train"
    seed = load_plan("seed004")
    trains = [e for e in seed.entries if e.step == "train"]
    skills = [e for e in seed.entries if e.step == "skill"]
    assert [(e.labels["config"], e.labels["seed"]) for e in trains] == [
        (f"seed004-{g}", s) for g in ("mmgt", "nbd", "tnbd", "fix") for s in (0, 1, 2)]
    assert [s.needs for s in skills] == [(t.id,) for t in trains]
    graphs = [e.id for e in seed.entries if e.step == "graph"]
    assert len(graphs) == 4 and all(set(graphs) <= set(t.needs) for t in trains)
    study = load_plan("seed000")  # (a) global, (b) conus, (d) joint, joint-all, (c) fine-tuned
    steps = {}
    for e in study.entries:
        steps.setdefault(e.step, []).append(e)
    assert [(e.labels["config"], e.labels["seed"]) for e in steps["train"]] == [
        (f"seed000-{c}", s) for c in ("conus", "joint", "joint-all") for s in (0, 1, 2)]
    assert [e.needs for e in steps["finetune"]] == [(g.id,) for g in steps["global"]]
    # labelled with the config it trains (its own), and the seed inherited from its parent
    assert [e.id for e in steps["finetune"]] == [
        f"finetune-config=seed000-finetune-seed={s}" for s in (0, 1, 2)]
    assert all(e.params["init_from"] == "${global.run_dir}/train"
               and e.params["seed"] == "${global.params.seed}" for e in steps["finetune"])
    trained = {e.id for name in ("global", "train", "finetune") for e in steps[name]}
    assert len(trained) == 15 and set(steps["study"][0].needs) == trained


# --------------------------------------------------------------------------- plan parameters


def params_plan(tmp_path: Path, tiny: Path, **changes) -> Path:
    """A plan with parameters: its name, a fixed parameter, a grid value, text around one
    and an item of a list read them."""
    plan = {"name": "p-${plan.label}", "description": "label ${plan.label}, value ${plan.value}",
            "params": {"label": "x", "value": 1, "items": None},
            "steps": [{"name": "a", "notebook": str(tiny),
                       "params": {"value": "${plan.value}", "label": "run-${plan.label}"}},
                      {"name": "b", "notebook": str(tiny), "grid": {"value": ["${plan.value}", 9]},
                       "params": {"label": "${plan.items.1}"}}]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**plan, **changes}, sort_keys=False))
    return path


def test_plan_parameters_fill_name_description_and_steps(tiny, tmp_path):
    plan = load_plan(params_plan(tmp_path, tiny), {"items": ["first", "second"], "value": 4})
    assert plan.name == "p-x" and plan.description == "label x, value 4"
    assert plan.params == {"label": "x", "value": 4, "items": ["first", "second"]}
    assert plan.entry("a").params == {"value": 4, "label": "run-x"}  # a number stays one
    assert [(e.id, e.params) for e in plan.entries if e.step == "b"] == [
        ("b-value=4", {"label": "second", "value": 4}),
        ("b-value=9", {"label": "second", "value": 9})]
    other = load_plan(params_plan(tmp_path, tiny), {"items": ["a", "b"], "label": "y"})
    assert other.name == "p-y"  # another run root: runs/p-y/


@pytest.mark.parametrize("given, changes, message", [
    ({}, {}, "plan parameter items has no default; give it with -p items VALUE"),
    ({"items": ["a", "b"], "lable": "z"}, {}, "unknown plan parameter(s) lable; the plan's "
                                               "parameters: label, value, items"),
    ({"items": ["a", "b"], "value": "abc"}, {},
     "plan parameter value must be a whole number (declared int), got 'abc'"),
    ({"items": ["a", 2]}, {}, "step 'b': parameter label must be a string"),
    ({"items": ["a"]}, {}, "${plan.items.1}: no item '1' in [\"a\"]"),
    ({"items": ["a", "b"], "label": "${a.run_dir}"}, {}, "a value may not hold ${...}"),
    ({"items": ["a", "b"]}, {"description": "about ${plan.items}"},
     "${plan.items} is [\"a\", \"b\"] inside other text"),
    ({"items": ["a", "b"]}, {"name": "p-${plan.lable}"},
     "${plan.lable} reads no plan parameter; declare lable under `params`"),
    ({}, {"params": ["label"]}, "`params` must map plan parameter names to defaults"),
    ({"items": ["a", "b"]}, {"steps": [{"name": "plan", "notebook": "00_catalog_tour"}]},
     "the step name 'plan' is taken by the plan's parameters"),
])
def test_bad_plan_parameters_are_one_line(tiny, tmp_path, given, changes, message):
    with pytest.raises(WorkbenchError) as err:
        load_plan(params_plan(tmp_path, tiny, **changes), given)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert str(err.value).startswith("params.yaml: ")


def test_batch_command_takes_plan_parameters(tiny, tmp_path, capsys):
    """``-f FILE`` then ``-p NAME VALUE``; a parameter whose default is text keeps the text
    as given (007, not 7); the others are YAML values."""
    path = params_plan(tmp_path, tiny)
    (tmp_path / "values.yaml").write_text("items: [one, two]\nvalue: 3\n")
    code = cli.main(["batch", str(path), "-f", str(tmp_path / "values.yaml"), "-p", "value", "5",
                     "-p", "label", "007", "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "value=5, label=run-007" in out and "label=two, value=5" in out
    assert not (tmp_path / "runs").exists()


def test_byod_plan_gives_each_dataset_its_own_runs(tmp_path):
    """The byod preset: required dataset and variables; its name (the run root) carries the
    dataset; notebook 00 maps the first variable, 04 scores the dataset; catalog folders
    reach every notebook, absolute."""
    with pytest.raises(WorkbenchError, match="plan parameter dataset has no default"):
        load_plan("byod")
    one = load_plan("byod", {"dataset": "era5", "variables": ["t2m", "z_500"]})
    two = load_plan("byod", {"dataset": "sst", "variables": ["sst"], "max_steps": 50})
    assert (one.name, two.name) == ("byod-era5", "byod-sst")
    assert [e.id for e in one.entries] == ["catalog", "graph", "sampling", "train", "skill"]
    assert one.entry("catalog").params["variable"] == "t2m"
    assert one.entry("catalog").params["datasets"] == ["era5"]
    assert one.entry("train").params["variables"] == ["t2m", "z_500"]
    assert two.entry("train").params["max_steps"] == 50
    assert two.entry("skill").params["domains"] == ["sst"]
    assert one.entry("skill").params["run_dir"] == "${train.run_dir}/train"
    (tmp_path / "cat").mkdir()
    code = cli.main(["batch", "byod", "-p", "dataset", "era5", "-p", "variables", "[t2m]",
                     "-p", "catalog", f"[{tmp_path / 'cat'}]", "--dry-run"])
    assert code == 0


def test_resolve_params_reads_earlier_outputs(tmp_path, tiny):
    run = tmp_path / "a"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"key_figures": {"k": 21}, "name": "nbd"}))
    (run / "params.yaml").write_text("config: mmgt\n")
    entry = Entry("b", "b", tiny, {
        "value": "${a.summary.key_figures.k}", "must_exist": "${a.run_dir}/train",
        "label": "graph ${a.summary.name} from ${a.params.config}"}, {}, ("a",), {"a": "a"})
    assert resolve_params(entry, {"a": run}) == {
        "value": 21, "must_exist": f"{run}/train", "label": "graph nbd from mmgt"}
    missing = Entry("b", "b", tiny, {"value": "${a.summary.nothing}"}, {}, ("a",), {"a": "a"})
    with pytest.raises(WorkbenchError, match="no 'nothing'"):
        resolve_params(missing, {"a": run})
    (run / "summary.json").write_text('{"key_figures": {"k": 2')  # half-written
    with pytest.raises(WorkbenchError, match="summary.json is not valid JSON"):
        resolve_params(entry, {"a": run})
    (run / "summary.json").write_text(json.dumps({"key_figures": {"k": 21}, "name": "nbd"}))
    # the resolved value must still fit the notebook's type: a name is not a number
    wrong = Entry("b", "b", tiny, {"value": "${a.summary.name}"}, {}, ("a",), {"a": "a"})
    with pytest.raises(WorkbenchError, match="value must be a whole number.*got 'nbd'"):
        resolve_params(wrong, {"a": run})


def test_sbatch_script_asks_for_the_plan_resources(tmp_path):
    entry = Entry("train-config=nbd", "train", Path("03_training.ipynb"), {}, {}, (), {},
                  Resources(nodes=2, tasks_per_node=4, gpus_per_node=4, cpus_per_task=8,
                            mem="200G", time="12:00:00", partition="gpu", account="wx",
                            extra=("--qos=high",)))
    script = sbatch_script(entry, tmp_path, ["python", "-m", "workbench.cli", "run", "x y"],
                           "seed004", {"WORKBENCH_CACHE": "/data/cache dir",
                                       "OMP_NUM_THREADS": "2"})
    lines = script.splitlines()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=200G", "#SBATCH --time=12:00:00",
                 "#SBATCH --partition=gpu", "#SBATCH --account=wx", "#SBATCH --qos=high",
                 f"#SBATCH --output={tmp_path / 'log.txt'}",
                 "#SBATCH --job-name=seed004.train-config=nbd",
                 "export WORKBENCH_CACHE='/data/cache dir'",
                 "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-2}",
                 "exec python -m workbench.cli run 'x y'"):
        assert line in lines, line
    assert lines[0] == "#!/bin/bash"
    assert max(i for i, ln in enumerate(lines) if ln.startswith("#SBATCH")) < lines.index(
        "set -euo pipefail")


# --------------------------------------------------------------------------- scheduler


def run(plan_path: Path, tmp_path: Path, **kwargs):
    return run_plan(load_plan(plan_path), LocalExecutor(), tmp_path / "runs", progress=False,
                    log=lambda _: None, **kwargs)


@pytest.mark.slow
def test_scheduler_runs_passes_outputs_skips_and_retries(tiny, tmp_path):
    """Real papermill runs: values flow a -> b; a rerun skips; a failure blocks and retries."""
    flag = tmp_path / "flag"
    path = write_plan(tmp_path, [
        {"name": "a", "notebook": str(tiny), "grid": {"value": [1, 5]}},
        {"name": "b", "notebook": str(tiny), "foreach": "a",
         "params": {"value": "${a.summary.key_figures.double}"}},
        {"name": "c", "notebook": str(tiny), "params": {"must_exist": str(flag)}},
        {"name": "d", "notebook": str(tiny), "needs": ["c"]},
    ])
    outcomes = run(path, tmp_path, max_parallel=2)
    status = {o.entry.id: o.status for o in outcomes}
    assert status == {"a-value=1": "ok", "a-value=5": "ok", "b-value=1": "ok",
                      "b-value=5": "ok", "c": "failed", "d": "blocked"}
    root = tmp_path / "runs" / "p"
    summary = json.loads((root / "b-value=5" / "summary.json").read_text())
    assert summary["value"] == 10 and summary["key_figures"]["double"] == 20
    for name in ("tiny.ipynb", "report.html", "log.txt", "params.yaml", "batch.json", "run.json"):
        assert (root / "b-value=5" / name).is_file(), name
    failed = json.loads((root / "c" / "run.json").read_text())
    assert failed["status"] == "failed" and failed["error"].startswith("FileNotFoundError")
    assert (root / "c" / "tiny.ipynb").is_file() and (root / "c" / "report.html").is_file()
    assert "FileNotFoundError" in (root / "c" / "log.txt").read_text()

    stamps = {p: p.stat().st_mtime_ns for p in root.glob("*/run.json")}
    flag.touch()
    again = {o.entry.id: o.status for o in run(path, tmp_path)}
    assert again == {"a-value=1": "done", "a-value=5": "done", "b-value=1": "done",
                     "b-value=5": "done", "c": "kept", "d": "blocked"}
    assert {p: p.stat().st_mtime_ns for p in root.glob("*/run.json")} == stamps

    retried = {o.entry.id: o.status for o in run(path, tmp_path, retry=True)}
    assert retried == {"a-value=1": "done", "a-value=5": "done", "b-value=1": "done",
                       "b-value=5": "done", "c": "ok", "d": "ok"}
    # a changed parameter of an upstream entry reruns it and everything that reads it
    path.write_text(path.read_text().replace("- 5", "- 6"))
    changed = {o.entry.id: o.status for o in run(path, tmp_path)}
    assert changed["a-value=6"] == "ok" and changed["b-value=6"] == "ok"
    assert changed["a-value=1"] == "done" and changed["d"] == "done"
    assert json.loads((root / "b-value=6" / "summary.json").read_text())["value"] == 12


def test_max_parallel_runs_entries_at_once(tiny, tmp_path):
    path = write_plan(tmp_path, [{"name": "a", "notebook": str(tiny),
                                  "grid": {"value": [1, 2]}, "params": {"sleep_s": 4.0}}])
    outcomes = run(path, tmp_path, max_parallel=2)
    spans = []
    for o in outcomes:
        record = json.loads((o.run_dir / "run.json").read_text())
        assert record["status"] == "ok"
        spans.append((o.run_dir / "batch.json").stat().st_mtime)
    # both were submitted before either ended: each takes over 4 s, they started < 2 s apart
    assert abs(spans[0] - spans[1]) < 2.0
    assert sum(o.duration_s for o in outcomes) > 8.0


def test_killed_run_is_failed_with_its_log(tiny, tmp_path, monkeypatch):
    """A process that dies before writing run.json (here: python cannot start) is failed."""
    monkeypatch.setattr("workbench.scheduler.sys.executable", str(tmp_path / "no-python"))
    path = write_plan(tmp_path, [{"name": "a", "notebook": str(tiny)}])
    with pytest.raises(FileNotFoundError):
        run(path, tmp_path)
    monkeypatch.undo()
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'killed by the OOM killer' >&2\nexit 137\n")
    fake.chmod(0o755)
    monkeypatch.setattr("workbench.scheduler.sys.executable", str(fake))
    (outcome,) = run(path, tmp_path)
    record = json.loads((outcome.run_dir / "run.json").read_text())
    assert outcome.status == "failed" and record["status"] == "failed"
    assert record["error"] == "exit code 137; log: killed by the OOM killer"


# --------------------------------------------------------------------------- index


def test_index_groups_plans_and_compares_sweeps(tiny, tmp_path):
    path = write_plan(tmp_path, [{"name": "a", "notebook": str(tiny),
                                  "grid": {"value": [1, 3]}}], name="sweep")
    run(path, tmp_path)
    single = tmp_path / "runs" / "tiny-20260101-000000-abcd"
    single.mkdir()
    (single / "run.json").write_text(json.dumps({
        "notebook": "tiny", "params": {"value": 7}, "status": "ok", "duration_s": 1.0,
        "started": "2026-01-01T00:00:00"}))
    (single / "train").mkdir()  # a training run's own run.json is not a notebook run
    (single / "train" / "run.json").write_text(json.dumps({"status": "finished", "steps": 3}))
    runs = collect_runs(tmp_path / "runs")
    assert sorted(r["run_dir"].name for r in runs) == ["a-value=1", "a-value=3", single.name]
    index = write_index(tmp_path / "runs", tmp_path / "reports")
    page = index.read_text()
    assert "plan sweep" in page and "comparison" in page and "single runs" in page
    assert (tmp_path / "reports" / "sweep" / "a-value=3.html").is_file()
    assert 'href="sweep/a-value=3.html"' in page
    # one column per key figure: the doubled values of both entries sit in that column
    row = next(ln for ln in page.splitlines() if "a-value=3.html" in ln)
    assert "<td>6</td>" in row and "<td>3</td>" in row


def test_hanging_table_counts_per_k_and_trim():
    def sweep_run(label, rows):
        return {"batch": {"labels": {"config": label}},
                "summary": {"sweep": {"graph": label, "region": "lam", "rows": rows}}}

    def row(trim, k, interior, boundary):
        return {"trim": trim, "k": k, "hanging": {"total": 99, "lam_interior": interior,
                                                  "lam_boundary": boundary, "global": 50}}

    runs = [sweep_run("mmgt", [row(0, 1, 5, 4), row(0, 2, 1, 1), row(0, 3, 0, 0),
                               row(3, 1, 2, 0), row(3, 2, 0, 0), row(3, 3, 0, 0)]),
            sweep_run("nbd", [row(0, 1, 0, 1), row(0, 2, 0, 0), row(0, 3, 0, 0)])]
    header, body = hanging_table(runs)
    assert header == ["graph", "trim", "smallest safe k", "k=1", "k=2", "k=3"]
    plain = [[cell.split(">")[1].split("<")[0] if "<" in cell else cell for cell in r]
             for r in body]
    assert plain == [["config=mmgt", "0", "3", "9", "2", "0"],
                     ["config=mmgt", "3", "2", "2", "0", "0"],
                     ["config=nbd", "0", "2", "1", "0", "0"]]


def test_dry_run_lists_entries_without_running(tmp_path, capsys):
    code = cli.main(["batch", "seed004", "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0 and "train-config=seed004-nbd" in out and "skill-config=seed004-tnbd" in out
    assert not (tmp_path / "runs").exists()
