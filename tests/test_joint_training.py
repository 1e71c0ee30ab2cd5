"""Joint (multi-domain) training diagnostics: per-domain gradient and update norms (seed 000)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from workbench import diagnostics, training


def tiny(tmp_path, **changes) -> training.TrainingConfig:
    """The demo config, small and short, with the gradient norms logged."""
    raw = training.config_dict(training.load_training_config("demo"))
    raw["sampling"]["batches_per_epoch"] = 6
    raw["model"].update(hidden_dim=16, processor_layers=2)
    raw.update(max_steps=6, val_rollout=1, val_every=1000, val_batches=2, checkpoint_every=1000,
               runs_dir=str(tmp_path / "runs"), log_grad_norms=True, **changes)
    return training.training_config_from_dict(raw)


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    config = tiny(tmp_path_factory.mktemp("joint"))
    run = training.fit(config, progress=False)
    return config, run, pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss"])


@pytest.mark.timeout(300)
def test_each_step_logs_the_norms_of_its_own_domain_only(logged):
    _, _, rows = logged
    assert len(rows) == 6
    seen = set()
    for _, row in rows.iterrows():
        own = "global" if row["train/domain_index"] == 0 else "conus"
        other = "conus" if own == "global" else "global"
        seen.add(own)
        for prefix in (diagnostics.GRAD_NORM, diagnostics.UPDATE_NORM):
            assert row[prefix + own] > 0
            assert np.isnan(row[prefix + other])
    assert seen == {"global", "conus"}  # the seeded draw gives both domains in 6 steps


@pytest.mark.timeout(300)
def test_first_step_norms_match_an_independent_computation(logged):
    """Step 0's gradient norm recomputed from the same initial weights and the same first batch;
    its update by hand: Adam's first step moves every parameter with a non-zero gradient by
    the learning rate (m / sqrt(v) = g / |g|), and the zero-initialised output layer is the
    only one with gradients at the start (every other layer's gradient passes through it)."""
    config, _, rows = logged
    pl.seed_everything(config.seed, workers=True, verbose=False)
    _, datamodule, module = training.prepare_run(config)  # the run's initial weights
    keys = next(iter(datamodule.batch_sampler("train")))
    batch = datamodule.dataset.collate(datamodule.dataset.__getitems__(keys))
    loss, _ = module._task_loss(batch)
    (loss * batch["loss_weight"]).backward()
    grads = {name: p.grad for name, p in module.model.named_parameters() if p.grad is not None}
    expected = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads.values()))
    first = rows.iloc[0]
    domain = batch["domain"]
    assert first["train/domain_index"] == keys[0][0]
    assert first[diagnostics.GRAD_NORM + domain] == pytest.approx(expected, rel=1e-4)
    moving = sum(int((g != 0).sum()) for g in grads.values())
    assert moving == sum(p.numel() for name, p in module.model.named_parameters()
                         if name.startswith("output."))
    lr = config.optimizer.lr / config.optimizer.warmup_steps  # warm-up factor (0 + 1) / 20
    assert first[diagnostics.UPDATE_NORM + domain] == pytest.approx(lr * math.sqrt(moving),
                                                                    rel=1e-3)


@pytest.mark.timeout(300)
def test_domain_norms_summarise_the_logged_steps(logged):
    _, run, rows = logged
    table = diagnostics.domain_norms(run)
    assert set(table.index) == {"global", "conus"}
    assert table["steps"].sum() == 6
    for domain, row in table.iterrows():
        mine = rows.dropna(subset=[diagnostics.GRAD_NORM + domain])
        assert row["steps"] == len(mine)
        early = mine[mine["step"] < 3]
        if len(early):
            assert row["grad_norm_first_half"] == pytest.approx(
                early[diagnostics.GRAD_NORM + domain].median())


def test_gradient_norm_of_a_module_by_hand():
    layer = torch.nn.Linear(2, 1)
    assert diagnostics.gradient_norm(layer) == 0.0  # no gradient yet
    layer(torch.tensor([[3.0, 4.0]])).sum().backward()  # d/dw = (3, 4), d/db = 1
    assert diagnostics.gradient_norm(layer) == pytest.approx(math.sqrt(9 + 16 + 1))
