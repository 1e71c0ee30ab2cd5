"""Lightning training on the embedded global + CONUS demo: tasks, fine-tuning, runs, resume."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from workbench import checkpoints, domain_graphs, training
from workbench.errors import WorkbenchError
from workbench.finetune import LoRALinear


def tiny(tmp_path: Path, **changes) -> training.TrainingConfig:
    """The demo config, small and short; ``changes`` update top-level keys (dicts merged)."""
    raw = training.config_dict(training.load_training_config("demo"))
    raw["sampling"]["batches_per_epoch"] = 5
    raw["model"].update(hidden_dim=16, processor_layers=2)
    raw.update(max_steps=4, val_rollout=2, val_every=1000, val_batches=2, checkpoint_every=1000,
               runs_dir=str(tmp_path / "runs"))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return training.training_config_from_dict(raw)


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


def train_losses(run_dir: Path) -> pd.Series:
    m = metrics(run_dir).dropna(subset=["train/loss"])
    return m.set_index("step")["train/loss"]


def test_run_dir_holds_config_checkpoint_metrics_and_graph_ids(tmp_path):
    run = training.fit(tiny(tmp_path), progress=False)
    assert run.parent == tmp_path / "runs" and run.name.startswith("train-demo-")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved == json.loads((run / "config.json").read_text())
    assert training.training_config_from_dict(saved).model["hidden_dim"] == 16
    graphs = json.loads((run / "graphs.json").read_text())
    assert graphs["global"]["data_nodes"] == 10512 and graphs["conus"]["data_nodes"] == 8330
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["steps"] == 4
    assert info["graphs"] == {k: v["graph_id"] for k, v in graphs.items()}
    state = checkpoints.load_checkpoint(run / "checkpoints" / "last.ckpt")  # weights_only
    assert state["global_step"] == 4
    assert state["workbench"]["graphs"] == info["graphs"]
    m = metrics(run)
    assert {"train/loss_global", "train/loss_conus", "val/mse_conus_step2",
            "val/persistence_global_step1"} <= set(m.columns)
    # each training row has the loss of its own domain only (no stale values of the other)
    rows = m.dropna(subset=["train/loss"])
    for _, row in rows.iterrows():
        own = "global" if row["train/domain_index"] == 0 else "conus"
        other = "conus" if own == "global" else "global"
        assert row[f"train/loss_{own}"] == pytest.approx(row["train/loss"])
        assert np.isnan(row[f"train/loss_{other}"])


def test_validation_persistence_against_an_independent_computation(tmp_path):
    run = training.fit(tiny(tmp_path, max_steps=1), progress=False)
    _, datamodule, _ = training.prepare_run(tiny(tmp_path))
    val = metrics(run).dropna(subset=["val/mse"]).iloc[-1]
    for domain in datamodule.domains:
        starts = domain.samples("val")[:2]  # val_batches 2: one batch (2 windows) per domain
        graph = domain_graphs.domain_graph(domain.domain.graph, domain.name,
                                           domain.domain.dataset, 2)
        # the LAM ring taken from the truth is not scored (for the model nor for persistence)
        assert (graph.boundary is not None) == (domain.name == "conus")
        interior = np.ones(graph.area_weight.shape, bool) if graph.boundary is None else (
            ~graph.boundary.numpy())
        weight = graph.area_weight.double().numpy() * interior
        norm = domain.normalisers["variables"]
        errors = []
        for t0 in starts:
            raw = torch.from_numpy(domain.read(domain.variables, int(t0), 3))
            x = norm.normalise(raw).double().numpy()
            errors.append([((x[0] - x[s]) ** 2 * weight).sum(-1).mean() / weight.sum()
                           for s in (1, 2)])
        expected = np.mean(errors, axis=0)
        for s in (1, 2):
            assert val[f"val/persistence_{domain.name}_step{s}"] == pytest.approx(
                expected[s - 1], rel=1e-4)


def test_forecast_loss_leaves_out_the_lam_boundary_ring(tmp_path):
    """At its initial weights the model predicts persistence (zero-initialised output layer),
    so a CONUS batch's training loss is persistence's MSE over the interior points alone: the
    ring the rollout takes from the truth (error 0) neither counts nor dilutes the mean."""
    _, datamodule, module = training.prepare_run(tiny(tmp_path))
    conus = [d.name for d in datamodule.domains].index("conus")
    start = int(datamodule.domains[conus].samples("train")[0])
    batch = datamodule.dataset.collate([datamodule.dataset[(conus, start)]])
    loss, _ = module._task_loss(batch)
    ring = module.graphs[conus].boundary.numpy()
    assert 0.05 < ring.mean() < 0.15  # 2 cells of 8330 points
    error = ((batch["x"][0, -1] - batch["y"][0, 0]) ** 2).double().numpy()  # [V, G]
    assert float(loss) == pytest.approx(error[:, ~ring].mean(), rel=1e-5)
    with_ring = np.where(ring, 0.0, error).mean()  # what counting the ring at error 0 gave
    assert float(loss) > 1.05 * with_ring


def final_state(run_dir: Path) -> dict:
    return checkpoints.load_checkpoint(run_dir / "checkpoints" / "last.ckpt")


def assert_same_run(whole: Path, part: Path) -> None:
    """Bitwise the same weights and loop state, the same training rows (steps, losses), every
    validation of the uninterrupted run with the same values and none twice."""
    a, b = final_state(whole), final_state(part)
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    fit_a, fit_b = a["loops"]["fit_loop"], b["loops"]["fit_loop"]
    assert fit_a["epoch_progress"] == fit_b["epoch_progress"]
    assert fit_a["epoch_loop.batch_progress"] == fit_b["epoch_loop.batch_progress"]
    ma, mb = metrics(whole), metrics(part)
    train = [c for c in ma.columns if c.startswith("train/") and c != "train/samples_per_s"]
    ta, tb = (m.dropna(subset=["train/loss"]).reset_index(drop=True) for m in (ma, mb))
    assert tb["step"].tolist() == list(range(a["global_step"]))
    pd.testing.assert_frame_equal(ta[["epoch", "step", *train]], tb[["epoch", "step", *train]],
                                  check_exact=True)
    va, vb = (m.dropna(subset=["val/mse"]).set_index("step") for m in (ma, mb))
    assert not vb.index.duplicated().any()
    val = [c for c in ma.columns if c.startswith("val/")]
    pd.testing.assert_frame_equal(va[val], vb.loc[va.index, val], check_exact=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[training.TrainingConfig, Path]:
    """18 steps of 5-batch epochs (steps 5, 10 and 15 end one), validated every 5 steps."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    config = tiny(tmp, max_steps=18, val_every=5)
    return config, training.fit(config, run_dir=tmp / "whole", progress=False)


# Stops mid-epoch and at epochs' ends; each list resumes twice in a row from an epoch's end
# (after the first, the epoch counter once fell one behind: the second replayed an epoch).
@pytest.mark.parametrize("stops", [(7, 10, 15), pytest.param((5, 10, 13), marks=pytest.mark.slow)])
def test_run_interrupted_three_times_equals_uninterrupted(tmp_path, uninterrupted, stops):
    config, whole = uninterrupted
    part = training.fit(config, max_steps=stops[0], run_dir=tmp_path / "part", progress=False)
    assert len(train_losses(part)) == stops[0]
    for stop in (*stops[1:], 18):
        training.fit(None, max_steps=stop, resume=part, progress=False)
    assert_same_run(whole, part)
    starts = [p.name for p in sorted((part / "metrics").iterdir())]
    assert starts == [f"from-step{s:08d}.csv" for s in (0, *stops)]
    assert json.loads((part / "run.json").read_text())["steps"] == 18


def test_metrics_merge_keeps_each_segment_before_the_next_start(tmp_path):
    """Hand-made segments: rows from the step a later segment resumed from are dropped, a row
    cut short by a kill is left out, columns are the union, sorted."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "from-step00000000.csv").write_text(
        "epoch,step,train/loss\n0,0,1.5\n0,1,1.25\n0,2,1.0\n0,3,0.75\n0,3")
    (folder / "from-step00000002.csv").write_text(
        "epoch,step,train/loss,val/mse\n0,2,1.0,\n0,3,0.5,\n0,3,,0.25\n0,4,0.375,\n")
    (folder / "from-step00000004.csv").write_text(
        "epoch,step,train/loss\n0,4,0.125\n0,5,0.0625\n0,6")
    path = checkpoints.merge_metrics(tmp_path)
    assert path.read_text().splitlines() == [
        "epoch,step,train/loss,val/mse", "0,0,1.5,", "0,1,1.25,", "0,2,1.0,", "0,3,0.5,",
        "0,3,,0.25", "0,4,0.125,", "0,5,0.0625,"]
    # a new segment from step 3 supersedes those from 3 on; the one before it ends at 3
    checkpoints.begin_segment(tmp_path, 3)
    assert [s for s, _ in checkpoints.segments(tmp_path)] == [0, 2, 3]
    assert metrics(tmp_path)["step"].tolist() == [0, 1, 2]


def test_run_dirs_are_unique_and_their_id_covers_the_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv(checkpoints.RUN_DIR_ENV, raising=False)
    config = tiny(tmp_path)
    made = [checkpoints.default_run_dir(config) for _ in range(20)]  # within a second or two
    assert len(set(made)) == 20 and all(p.is_dir() for p in made)
    digest = checkpoints.run_digest(config)
    assert all(p.name.startswith("train-demo-") and f"-{digest}-" in p.name for p in made)
    assert checkpoints.run_digest(dataclasses.replace(config, max_steps=5)) != digest
    assert checkpoints.run_digest(dataclasses.replace(config, devices=2)) != digest
    assert checkpoints.run_digest(config, {"limit_train_batches": 2}) != digest
    # 200 dirs out of 256 names: most calls collide first and retry with another name
    many = [checkpoints.create_run_dir(tmp_path / "many", "x", random_bytes=1)
            for _ in range(200)]
    assert len(set(many)) == 200 and len(list((tmp_path / "many").iterdir())) == 200
    checkpoints.create_run_dir(tmp_path / "one", "x", random_bytes=0)
    with pytest.raises(WorkbenchError, match="no free run dir"):
        checkpoints.create_run_dir(tmp_path / "one", "x", random_bytes=0, tries=3)


def test_bert_and_interpolation_tasks_train(tmp_path):
    bert = training.fit(tiny(tmp_path, task="bert", sampling={"rollout": 2}), progress=False)
    interp = training.fit(tiny(tmp_path, task="interpolation", sampling={"rollout": 2}),
                          progress=False)
    for run in (bert, interp):
        losses = train_losses(run)
        assert len(losses) == 4 and np.isfinite(losses).all() and (losses > 0).all()
    model = training.load_run(interp)[1].model
    assert model.config.input_steps == model.config.output_steps == 3


def test_ensemble_crps_training(tmp_path):
    config = tiny(tmp_path, members=3, model={"noise_channels": 4},
                  loss={"losses": ["crps", "mse_ensemble"], "crps_alpha": 0.95})
    run = training.fit(config, progress=False)
    m = metrics(run).dropna(subset=["train/loss"])
    assert {"train/crps_global", "train/mse_ensemble_conus"} <= set(m.columns)
    assert np.isfinite(m["train/loss"]).all()


def test_lora_fine_tuning_leaves_base_weights_unchanged(tmp_path):
    base_run = training.fit(tiny(tmp_path), progress=False)
    base = checkpoints.load_checkpoint(base_run / "checkpoints" / "last.ckpt")["state_dict"]
    tuned = training.fit(tiny(tmp_path, init_from=str(base_run / "checkpoints" / "last.ckpt"),
                              finetune={"lora": True, "lora_rank": 2,
                                        "layer_lrs": {"processor": 1e-2}}),
                         progress=False)
    _, module, _ = training.load_run(tuned)
    wrapped = [n for n, m in module.model.named_modules() if isinstance(m, LoRALinear)]
    assert wrapped and all(n.startswith("processor.") for n in wrapped)
    state = module.model.state_dict()
    changed_lora = 0
    for name, value in state.items():
        key = "model." + name.replace(".base.", ".")
        if "lora_" in name:
            changed_lora += bool(value.abs().sum() > 0 and "lora_b" in name)
            continue
        assert torch.equal(value, base[key]), f"{name} changed"
    assert changed_lora > 0  # the adapters did train
    info = json.loads((tuned / "run.json").read_text())
    assert info["trainable_parameters"] < info["parameters"]


def test_replay_buffer_rollout_training_and_clipping(tmp_path):
    config = tiny(tmp_path, max_steps=6, finetune={"replay_size": 3, "replay_refresh": 2,
                                                   "max_rollout": 3, "clip": {"tp": [0, None]}})
    run = training.fit(config, progress=False)
    state = checkpoints.load_checkpoint(run / "checkpoints" / "last.ckpt")
    replay = state["workbench"]["replay"]
    assert replay is not None and len(replay["samples"]) == 3
    assert np.isfinite(train_losses(run)).all()


def test_replay_buffer_on_the_training_path(tmp_path):
    """The buffer Trainer._replay_loss fills, watched after every real training step: a fresh
    batch on the first step and every replay_refresh steps, one sample back per step (the
    prediction one step deeper, or a fresh batch once max_rollout deep), oldest ejected
    first, never a sample as deep as max_rollout."""
    import pytorch_lightning as pl

    from workbench.finetune import ROLLOUT

    config = tiny(tmp_path, max_steps=10, finetune={"replay_size": 3, "replay_refresh": 4,
                                                    "max_rollout": 2})
    pl.seed_everything(0)
    _, datamodule, module = training.prepare_run(config)
    seen = []

    class Watch(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            buffer = pl_module.replay
            seen.append((buffer._count, buffer.ages(),
                         [int(s[ROLLOUT]) for s in buffer._samples]))

    pl.Trainer(max_steps=10, accelerator="cpu", logger=False, callbacks=[Watch()],
               enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
               num_sanity_val_steps=0, limit_val_batches=0).fit(module, datamodule=datamodule)
    assert len(seen) == 10
    refreshed = [step for step in range(10) if step % 4 == 0]  # steps 0, 4, 8
    for step, (count, ages, depths) in enumerate(seen):
        assert count == step + 1 + sum(r <= step for r in refreshed)  # hand count of adds
        assert ages == list(range(min(count, 3)))[::-1]  # FIFO: oldest first, size 3
        assert all(d in (0, 1) for d in depths)  # 2 deep is never put back
    # the sample put back last each step: the prediction (depth 1) or, for a drawn sample
    # already 1 deep, a fresh batch (depth 0); both happen
    put_back = [depths[-1] for _, _, depths in seen]
    assert 0 < put_back.count(0) < 10 and put_back.count(1) == 10 - put_back.count(0)


def test_rollout_schedule_grows_by_steps_and_by_epochs(tmp_path):
    """anemoi's rollout.start/epoch_increment/max (or a step_increment): the logged rollout of
    each step by hand; the batches carry max steps; a schedule that never grows trains exactly
    as the fixed rollout does."""
    by_steps = tiny(tmp_path, max_steps=6, rollout={"start": 1, "step_increment": 2, "max": 3})
    assert training.sampling_config(by_steps).rollout >= 3
    run = training.fit(by_steps, progress=False)
    logged = metrics(run).dropna(subset=["train/rollout"]).set_index("step")["train/rollout"]
    assert logged.tolist() == [1, 1, 2, 2, 3, 3]
    by_epochs = tiny(tmp_path, max_steps=7, rollout={"start": 2, "epoch_increment": 1, "max": 3})
    logged = metrics(training.fit(by_epochs, progress=False)).dropna(subset=["train/rollout"])
    assert logged["train/rollout"].tolist() == [2] * 5 + [3] * 2  # 5 batches an epoch
    fixed = training.fit(tiny(tmp_path, max_steps=2), progress=False)
    still = training.fit(tiny(tmp_path, max_steps=2, rollout={"start": 1, "step_increment": 50,
                                                              "max": 2}), progress=False)
    assert train_losses(still).tolist() == train_losses(fixed).tolist()


@pytest.mark.parametrize(("rollout", "task", "message"), [
    ({"start": 1, "epoch_increment": 1, "step_increment": 2, "max": 3}, "forecast",
     "give epoch_increment or step_increment, not both"),
    ({"start": 3, "max": 2}, "forecast", "max 2 is below start 3"),
    ({"start": 1, "max": 2}, "bert", "applies to forecast training, not bert"),
    ({"start": 0}, "forecast", "rollout.start"),
])
def test_bad_rollout_schedule_is_one_line(tmp_path, rollout, task, message):
    with pytest.raises(WorkbenchError, match=message) as err:
        tiny(tmp_path, rollout=rollout, task=task)
    assert "\n" not in str(err.value)


def test_layerwise_learning_rates_reach_the_optimizer(tmp_path):
    config = tiny(tmp_path, finetune={"layer_lrs": {"encoder": 1e-2, "processor": 5e-4}})
    _, _, module = training.prepare_run(config)
    optimizer = module.configure_optimizers()["optimizer"]
    lrs = {g["name"]: g["initial_lr"] for g in optimizer.param_groups}  # before warm-up
    assert lrs["encoder"] == 1e-2 and lrs["processor"] == 5e-4 and lrs["default"] == 1e-3 * 3
    names = {g["name"]: len(g["params"]) for g in optimizer.param_groups}
    n_proc = sum(1 for n, _ in module.model.named_parameters() if n.startswith("processor."))
    assert names["processor"] == n_proc


def test_nan_loss_stops_naming_step_domain_and_batch(tmp_path):
    config = tiny(tmp_path, max_steps=20, optimizer={"lr": 1e30, "warmup_steps": 0,
                                                     "grad_clip": 0})
    with pytest.raises(WorkbenchError, match=r"loss is (nan|inf) at step \d+, domain '(global|conus)', batch \d+"):
        training.fit(config, progress=False)
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_checkpoint_of_another_shape_is_one_line_error(tmp_path):
    run = training.fit(tiny(tmp_path, max_steps=1), progress=False)
    other = tiny(tmp_path, model={"hidden_dim": 8},
                 init_from=str(run / "checkpoints" / "last.ckpt"))
    with pytest.raises(WorkbenchError, match="another shape") as err:
        training.fit(other, progress=False)
    assert "\n" not in str(err.value)


def test_unsafe_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Path("x")}, path)  # a pickled object
    with pytest.raises(WorkbenchError, match="loads safely"):
        checkpoints.load_checkpoint(path)


def test_graph_of_another_grid_is_refused(tmp_path):
    config = tiny(tmp_path, sampling={"domains": [
        {"name": "conus", "dataset": "conus", "graph": "demo-global"}]})
    with pytest.raises(WorkbenchError, match="10512 data nodes but domain 'conus' has 8330"):
        training.prepare_run(config)


@pytest.mark.parametrize("change, message", [
    ({"optimiser": {}}, "unknown key 'optimiser'"),
    ({"task": "denoise"}, "task 'denoise'"),
    ({"loss": {"losses": ["crps"]}}, "members >= 2"),
    ({"members": 4}, "noise_channels"),
    ({"model": {"layers": 3}}, "unknown key 'layers'"),
    ({"task": "interpolation"}, "rollout >= 2"),
])
def test_bad_training_config_is_one_line_error(tmp_path, change, message):
    with pytest.raises(WorkbenchError, match=message) as err:
        tiny(tmp_path, **change)
    assert "\n" not in str(err.value)


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("workbench")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def _write_config(tmp_path: Path, config: training.TrainingConfig) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(training.config_dict(config)))
    return path


def test_cli_train_and_resume(tmp_path):
    path = _write_config(tmp_path, tiny(tmp_path, max_steps=3))
    done = _cli("train", str(path), "--run-dir", "r", "--no-progress", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout[done.stdout.index("{"):])
    assert info["steps"] == 3 and info["status"] == "finished"
    again = _cli("train", "--resume", "r", "--max-steps", "5", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "finished after 5 steps" in again.stdout
    assert list(train_losses(tmp_path / "r").index) == [0, 1, 2, 3, 4]
    bad = _cli("train", "no-such-config", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: training config")


@pytest.mark.slow
def test_two_process_ddp_run_completes(tmp_path):
    path = _write_config(tmp_path, tiny(tmp_path, max_steps=4, val_batches=2))
    done = _cli("train", str(path), "--devices", "2", "--strategy", "ddp", "--accelerator",
                "cpu", "--run-dir", "ddp", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert info["status"] == "finished" and info["steps"] == 4
    m = metrics(tmp_path / "ddp")
    # two ranks, each takes every second batch of one seeded sequence: both domains trained
    assert m.dropna(subset=["train/loss"]).shape[0] == 4
    val = m.dropna(subset=["val/mse"]).iloc[-1]
    assert np.isfinite(val["val/mse_global_step1"]) and np.isfinite(val["val/mse_conus_step1"])


def test_tensorboard_logger_beside_metrics_csv(tmp_path):
    run = training.fit(tiny(tmp_path, max_steps=2, logger="tensorboard"), progress=False)
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert len(train_losses(run)) == 2  # metrics.csv is written too


def test_mlflow_logger_needs_mlflow_or_logs_to_the_run_dir(tmp_path):
    config = tiny(tmp_path, max_steps=1, logger="mlflow")
    try:
        import mlflow  # noqa: F401
    except ImportError:
        with pytest.raises(WorkbenchError, match="pip install mlflow") as err:
            training.fit(config, progress=False)
        assert "\n" not in str(err.value)
        return
    run = training.fit(config, progress=False)
    assert (run / "mlruns").is_dir()


def test_init_from_override_takes_a_checkpoint_or_a_run_dir(tmp_path):
    """Notebook 03's ``init_from``: a .ckpt file as given, a run dir as its last checkpoint,
    anything else one error line."""
    from workbench.training_config import apply_overrides

    config = tiny(tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert apply_overrides(config, init_from=str(ckpt)).init_from == str(ckpt)
    assert apply_overrides(config, init_from=str(tmp_path / "run")).init_from == str(ckpt)
    assert apply_overrides(config, init_from="").init_from is None
    with pytest.raises(WorkbenchError, match="init_from .*no checkpoint there"):
        apply_overrides(config, init_from=str(tmp_path / "nowhere"))
