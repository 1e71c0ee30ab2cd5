"""Notebook 03 live: loss curves per domain while Lightning trains, and a stop button.

``train(config, run_dir, launcher)`` is what the notebook's training cell calls. In a batch run
(papermill, ``workbench run``/``batch``: ``live.is_live()`` False) it is ``launch.train``, nothing
more: no widget, no waiting. In JupyterLab it shows a panel (the step and the last loss as
``value_html`` figures, a "stop" button, the loss curves per domain) and trains with a
:class:`LiveLosses` callback that updates it after every step.

Why training stays in the cell, on the kernel's main thread: while a cell executes, the kernel
reads nothing from its shell channel, so a button's click would wait until training ended. After
every training and validation batch the callback lets the kernel handle what waits there
(jupyter-ui-poll: ipykernel's own ``do_one_iteration``, with the execute requests of cells
queued behind this one, as run-all queues them, held back and replayed in order once this cell
ends). The click handler only sets a flag; at the end of the step in progress the callback sets
``trainer.should_stop``, Lightning validates once more and stops, and the checkpoint callback
(which runs after it) writes ``checkpoints/last.ckpt`` at that step; run.json says ``stopped``
and ``training.fit(resume=run_dir)`` / ``workbench train --resume`` continue to max_steps.
The other way out, training in a thread while the cell returns, would leave later cells (and
run-all) reading a run still in progress, and takes Lightning off the main thread that its
signal handling and the kernel's interrupt button expect; here the cell ends with the run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl

from . import launch, live
from .training_config import TrainingConfig

__all__ = ["LiveLosses", "Panel", "train"]


class LiveLosses(pl.Callback):
    """Each step's training loss under its domain, as metrics.csv logs it; a stop on request.

    ``rows`` holds ``(step, domain, loss)`` with metrics.csv's step (the batch's, from 0) and
    ``train/loss_<domain>``. ``request_stop()`` (from any thread) ends training at the end of the
    step in progress, or of the next one. ``on_step`` runs after each training and validation
    batch, before the stop is checked: the panel's poll and redraw."""

    def __init__(self, on_step: Callable[[], None] | None = None):
        self.rows: list[tuple[int, str, float]] = []
        self.steps_done = 0
        self.on_step = on_step
        self._stop = threading.Event()

    def request_stop(self) -> None:
        self._stop.set()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        domain = batch["domain"]
        loss = trainer.callback_metrics.get(f"train/loss_{domain}")
        if loss is not None:
            self.rows.append((trainer.global_step - 1, domain, float(loss)))
        self.steps_done = trainer.global_step
        if self.on_step is not None:
            self.on_step()
        if self._stop.is_set():
            trainer.should_stop = True

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0) -> None:
        if self.on_step is not None and trainer.state.fn == "fit":
            self.on_step()

    def losses(self) -> pd.DataFrame:
        """The rows as ``training_report.read_metrics``'s train table: step, domain, loss."""
        return pd.DataFrame(self.rows, columns=["step", "domain", "loss"])


class Panel:
    """The live view: step and last loss (``value_html``), a stop button, the loss curves
    (redrawn at most every ``redraw_s`` seconds, and never taking more than a fifth of the
    time: a slow machine trains, it does not draw)."""

    def __init__(self, max_steps: int, redraw_s: float = 2.0):
        import ipywidgets as widgets

        self.max_steps, self.redraw_s = max_steps, redraw_s
        self.losses = LiveLosses()
        self.figures = widgets.HTML()
        self.status = widgets.HTML("preparing the graphs and data…")
        self.button = widgets.Button(description="stop", button_style="warning",
                                     tooltip="end training after the step in progress; "
                                             "the run stays resumable")
        self.button.on_click(self._clicked)
        self.plot = widgets.Output()
        self.box = widgets.VBox([widgets.HBox([self.button, self.figures, self.status]),
                                 self.plot])
        self._drawn_at = 0.0
        self._draw_s = 0.0  # how long the last drawing took
        self._drawn_rows = 0
        self.show_figures()

    def _clicked(self, _button) -> None:
        self.losses.request_stop()
        self.button.disabled = True
        self.button.description = "stopping"

    def show_figures(self) -> None:
        rows = self.losses.rows
        parts = [live.value_html("step", self.losses.steps_done, "step",
                                 f"of {self.max_steps}")]
        if rows:
            _, domain, loss = rows[-1]
            parts.append(live.value_html("loss", loss, f"last loss ({domain})"))
        self.figures.value = " &nbsp; ".join(parts)

    def update(self, force: bool = False) -> None:
        """The figures every call; the curves at most every ``redraw_s`` seconds (or forced)."""
        self.show_figures()
        if self.losses.rows and self.status.value.startswith("preparing"):
            self.status.value = "training"
        due = time.monotonic() - self._drawn_at >= max(self.redraw_s, 4 * self._draw_s)
        if (force or due) and len(self.losses.rows) != self._drawn_rows:
            self.draw()

    def draw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        from .plotting_training import train_loss_curves

        started = time.monotonic()
        self._drawn_rows = len(self.losses.rows)
        fig, ax = plt.subplots(figsize=(8, 3.6), dpi=80)
        train_loss_curves(self.losses.losses(), ax=ax)
        self.plot.clear_output(wait=True)
        with self.plot:
            display(fig)
        plt.close(fig)
        self._drawn_at = time.monotonic()
        self._draw_s = self._drawn_at - started

    def finish(self, outcome: str) -> None:
        self.update(force=True)
        self.button.disabled = True
        self.button.description = outcome.split(" ")[0]  # stopped, finished, failed
        self.status.value = outcome


def train(config: TrainingConfig, run_dir: str | Path = "train", launcher: str = "auto") -> Path:
    """Train as ``launch.train`` does; in JupyterLab with the live panel (see the module doc)."""
    if not live.is_live() or not launch.inline(launcher):
        return launch.train(config, run_dir=run_dir, launcher=launcher)
    from IPython.display import display
    from jupyter_ui_poll import ui_events

    panel = Panel(config.max_steps)
    display(panel.box)
    outcome = "failed"
    with ui_events() as poll:
        def on_step() -> None:
            poll(20)  # the clicks (comm messages) waiting on the shell channel
            panel.update()

        panel.losses.on_step = on_step
        try:
            run_dir = launch.train(config, run_dir=run_dir, launcher=launcher, progress=False,
                                   callbacks=(panel.losses,))
            outcome = _outcome(run_dir)
        finally:
            with contextlib.suppress(Exception):  # the panel never hides training's own error
                panel.finish(outcome)
    return run_dir


def _outcome(run_dir: str | Path) -> str:
    import json

    info = json.loads((Path(run_dir) / "run.json").read_text())
    if info["status"] == "stopped":
        return (f"stopped at step {info['steps']}: resume with training.fit(resume=...) or "
                f"workbench train --resume {run_dir}")
    return f"{info['status']} after {info['steps']} steps"
