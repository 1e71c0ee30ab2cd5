"""Training diagnostics: which domain's batches move the shared weights, and by how much.

:class:`DomainGradNorms` (training config ``log_grad_norms: true``) logs at every training
step, as ``train/loss_<domain>`` is logged, the gradient norm of that step's batch before
clipping (``train/grad_norm_<domain>``) and the size of the optimizer's update it led to
(``train/update_norm_<domain>``), NaN for the other domains; :func:`domain_norms` summarises
them from a run's ``metrics.csv``. With several domains in one run (seed 000) they show
whether one domain's gradients dominate: Adam divides every step by the running root mean
square of *all* domains' gradients, so a domain whose gradients are smaller gets smaller
updates. The update norm keeps a copy of the trainable weights for the step (memory).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
import torch

GRAD_NORM = "train/grad_norm_"
UPDATE_NORM = "train/update_norm_"


def gradient_norm(module: torch.nn.Module) -> float:
    """The L2 norm of all gradients of ``module``'s parameters together (0 with none)."""
    squares = [p.grad.detach().double().pow(2).sum() for p in module.parameters()
               if p.grad is not None]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


class DomainGradNorms(pl.Callback):
    """Logs each step's pre-clipping gradient norm and update norm under its batch's domain."""

    def __init__(self) -> None:
        self._grad: float | None = None
        self._before: list[torch.Tensor] | None = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # Lightning calls this after backward and before gradient clipping
        self._grad = gradient_norm(pl_module.model)
        self._before = [p.detach().clone() for p in pl_module.model.parameters()
                        if p.requires_grad]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._before is None:  # no optimizer step (skipped)
            return
        after = [p.detach() for p in pl_module.model.parameters() if p.requires_grad]
        update = math.sqrt(sum(float((a.double() - b.double()).pow(2).sum())
                               for a, b in zip(after, self._before, strict=True)))
        size = batch["x"].shape[0]
        for graph in pl_module.graphs:  # every key every step, as train/loss_<domain>
            mine = graph.name == batch["domain"]
            pl_module.log(GRAD_NORM + graph.name, self._grad if mine else math.nan,
                          batch_size=size)
            pl_module.log(UPDATE_NORM + graph.name, update if mine else math.nan,
                          batch_size=size)
        self._grad = self._before = None


def domain_norms(run_dir: str | Path) -> pd.DataFrame:
    """Per domain, from a run's metrics.csv: training steps, median loss, gradient norm and
    update norm over the first and the second half of the run (rows: domains)."""
    metrics = pd.read_csv(Path(run_dir) / "metrics.csv")
    domains = [c[len(GRAD_NORM):] for c in metrics.columns if c.startswith(GRAD_NORM)]
    half = metrics["step"].max() / 2
    rows = {}
    for domain in domains:
        mine = metrics.dropna(subset=[GRAD_NORM + domain])
        row = {"steps": len(mine)}
        for part, rows_of in (("first", mine[mine["step"] < half]),
                              ("second", mine[mine["step"] >= half])):
            for name, column in (("loss", f"train/loss_{domain}"),
                                 ("grad_norm", GRAD_NORM + domain),
                                 ("update_norm", UPDATE_NORM + domain)):
                row[f"{name}_{part}_half"] = float(rows_of[column].median())
        rows[domain] = row
    return pd.DataFrame.from_dict(rows, orient="index")
