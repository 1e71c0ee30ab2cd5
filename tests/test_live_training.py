"""Notebook 03 live: the LiveLosses callback against metrics.csv, a stop that leaves a resumable
run, and the stop button pressed in a real JupyterLab while the training cell runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from test_training import _cli, assert_same_run, final_state, tiny

from workbench import launch, live, live_training, training, training_report
from workbench.errors import WorkbenchError

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_training.ipynb"


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


@pytest.mark.timeout(600)
def test_stop_after_step_three_leaves_a_run_that_resumes_to_max_steps(tmp_path):
    """The panel's callback path outside a kernel: the stop asked for after step 3 (during
    its poll, where a click would be handled) ends the run at step 3 (the step in progress
    when asked), checkpointed and validated there; ``workbench train --resume`` takes it to
    max_steps, bitwise the run never stopped."""
    config = tiny(tmp_path, max_steps=8)
    panel = live_training.Panel(config.max_steps, redraw_s=0.0)

    def on_step() -> None:  # what the poll does when the button was pressed after step 3
        if panel.losses.steps_done == 3:
            panel.losses.request_stop()
        panel.update()

    panel.losses.on_step = on_step
    part = training.fit(config, run_dir=tmp_path / "part", progress=False,
                        callbacks=(panel.losses,))
    # stopped at the end of the step in which the stop was asked for: 3 steps trained
    assert run_json(part)["status"] == "stopped" and run_json(part)["steps"] == 3
    assert final_state(part)["global_step"] == 3
    # the callback's losses are metrics.csv's, step for step (steps 0, 1, 2 as Lightning logs)
    train, val = training_report.read_metrics(part)
    logged = sorted(train[["step", "domain", "loss"]].itertuples(index=False, name=None))
    assert [r[0] for r in logged] == [0, 1, 2]
    assert sorted(panel.losses.rows) == logged
    assert panel.losses.losses().columns.tolist() == ["step", "domain", "loss"]
    assert val["step"].unique().tolist() == [2]  # Lightning validated once more at the stop
    # the panel shows the run's step and last loss, as value_html renders them
    last_step, last_domain, last_loss = max(logged)
    assert live.value_html("step", 3, "step", "of 8") in panel.figures.value
    assert live.value_html("loss", last_loss, f"last loss ({last_domain})") in panel.figures.value
    assert panel._drawn_rows == 3  # the curves were drawn with every step's loss

    # as a person resumes it: the CLI, to the config's max_steps
    resumed = _cli("train", "--resume", str(part), "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{part}: finished after 8 steps" in resumed.stdout
    assert run_json(part)["status"] == "finished" and run_json(part)["steps"] == 8
    whole = training.fit(config, run_dir=tmp_path / "whole", progress=False)
    assert_same_run(whole, part)


def test_callbacks_reach_inline_runs_only_and_batch_runs_train_as_before(tmp_path, monkeypatch):
    """launch.inline: where a panel's callback can run (not in srun's ranks); outside a live
    kernel live_training.train is launch.train (here its one-line srun refusal)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert launch.inline("auto") and launch.inline("inline") and not launch.inline("srun")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert not launch.inline("auto") and launch.inline("inline")
    with pytest.raises(WorkbenchError, match="launcher 'x' is not one of auto, inline, srun"):
        launch.inline("x")
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.delenv(live.BATCH_ENV, raising=False)
    assert not live.is_live()  # no kernel here
    with pytest.raises(WorkbenchError, match="launcher 'srun' needs a SLURM job"):
        live_training.train(tiny(tmp_path), run_dir=tmp_path / "r", launcher="srun")
    assert not (tmp_path / "r").exists()


def parameters_set(source: Path, target: Path, **values) -> Path:
    """Copy a notebook, changing only the values of its parameters cell (as a person would)."""
    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = cell.source.splitlines()
    for name, value in values.items():
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name} = "))
        comment = lines[index].partition("#")[2]
        lines[index] = f"{name} = {value!r}" + (f"  # {comment.strip()}" if comment else "")
    cell.source = "\n".join(lines)
    nbformat.write(nb, target)
    return target


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_stop_button_in_jupyterlab_ends_training_and_later_cells_show_the_stopped_run(tmp_path):
    from lab import lab_root, lab_session

    root = lab_root(tmp_path)
    parameters_set(NOTEBOOK, root / "03_training.ipynb", max_steps=2000)
    timings = {}
    started = time.monotonic()
    with lab_session(root, tmp_path / "lab.log") as lab:
        lab.open("03_training.ipynb")
        timings["lab_open_s"] = time.monotonic() - started
        lab.start_run_all()
        deadline = time.monotonic() + 300
        seen = 0
        while seen < 3:
            assert time.monotonic() < deadline, "the panel never showed step 3"
            with_step = lab.page.locator('[data-wb-value="step"]')
            seen = int(with_step.last.inner_text()) if with_step.count() else 0
            lab.page.wait_for_timeout(200)
        timings["to_step_3_s"] = time.monotonic() - started
        lab.page.locator("button.jupyter-button", has_text="stop").first.click()
        lab.wait_all_ran(timeout_s=600)
        timings["all_cells_s"] = time.monotonic() - started
        shown_step = int(lab.value("step"))
        shown_loss = lab.value("loss")
        lab.screenshot(tmp_path / "03_training_stopped.png")
        assert lab.external == [], f"JupyterLab asked outside: {lab.external[:5]}"
    run_dir = root / "train"
    info = run_json(run_dir)
    assert info["status"] == "stopped"
    assert seen <= info["steps"] <= seen + 3, (seen, info["steps"])  # within a few steps
    assert shown_step == info["steps"] == final_state(run_dir)["global_step"]
    train, _ = training_report.read_metrics(run_dir)
    last = train.sort_values("step").iloc[-1]
    assert int(last["step"]) == info["steps"] - 1
    assert shown_loss == f"{last['loss']:.4g}"
    # the cells after training ran on the stopped run: its summary holds the stopped step
    summary = json.loads((root / "summary.json").read_text())
    assert summary["key_figures"]["steps"] == info["steps"], summary["key_figures"]
    print("timings", {k: round(v, 1) for k, v in timings.items()})
