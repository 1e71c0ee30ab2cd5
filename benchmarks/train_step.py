"""One training step (forward + loss + backward + AdamW step): workbench's EncProcDec against
anemoi-models' graph transformer encoder-processor-decoder of the same size, on the same graphs
and the same batches, each case in a fresh process.

    .venv/bin/python benchmarks/train_step.py [--device cpu|cuda] [--configs demo,full]
        [--domains global,conus] [--steps N] [--warmup W] [--peers ckpt,nockpt] [--profile]
        [--anemoi VENV[,VENV...]] [--flops] [--sequential] [--print-only]

Cases: every training config of ``--configs`` (configs/training/*.yaml; ``NAME:key=value``
replaces a ``model`` key, e.g. ``full,full:mapper=mlp`` measures both mappers) on every domain of its
sampling config (the demo domains: global 2.5 deg, 10,512 data / 2,562 hidden nodes; conus
45 km, 8,330 / 897), by workbench and by each anemoi-models release of ``--anemoi`` (peer
venvs, default ``.venv-anemoi``; e.g. ``.venv-anemoi,.venv-anemoi-latest`` measures 0.13.0 and
0.19.0 side by side):

- ``workbench``: ``training.Trainer`` of the config (``EncProcDec``, the domain's domain_graphs.DomainGraph),
  one step = ``Trainer._task_loss(batch)`` (what ``training_step`` optimises, without its
  logging), ``backward()``, then the AdamW of ``Trainer.configure_optimizers()``;
- ``anemoi <release> ckpt``: anemoi-models' ``AnemoiModelEncProcDec`` with
  GraphTransformerForwardMapper, GraphTransformerProcessor and GraphTransformerBackwardMapper
  of the same channels, layers, heads and MLP width, built under that venv's python on our
  HeteroData graph (saved with ``graphs.save_graph``), as anemoi-models trains: activation
  checkpointing on (the config is written for the release's API, see :func:`anemoi_model`);
- ``anemoi <release> nockpt``: the same model with activation checkpointing switched off (the
  same work per step as workbench without checkpointing).

Inputs: the first ``W + N`` training batches of each domain in the DataModule's order (real
data, normalised), written once to a .pt of plain tensors that both sides read; the anemoi side
gets them in its layout [batch, time, ensemble, grid, variable]. ``W`` untimed warm-up steps,
then ``N`` timed ones; the median is reported. The processes of one graph's cases start
together and then step in turns handed out by the parent (``--sequential``: one case after
another), so no two steps overlap and drift in the machine's load is shared. Peak memory: CPU, the child's peak RSS
(VmHWM, see :func:`rss_mb`) minus its peak RSS after imports and after loading graph and
batches (so it is the model, its gradients, AdamW's state and the step's activations); CUDA,
``torch.cuda.max_memory_allocated`` minus what was allocated before the model was built.
Float32 on CPU whatever the config's precision; on CUDA the config's precision (bf16-mixed:
autocast to bfloat16 on both sides).

``--flops``: no timing; each case counts the FLOPs of one training step on the first batch
(forward + loss + backward, no optimizer) and of the forward alone, with a per-part breakdown
of the forward, by ``torch.utils.flop_counter.FlopCounterMode`` (see :func:`count_flops`), with
activation checkpointing off on every side (its recomputation would count the forward twice).
The counts do not depend on the machine's load, so they are appended to RESULTS.md too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import step_profile  # noqa: E402  (--profile)
from common import (  # noqa: E402
    children_cpu_s,
    machine_busy_s,
    markdown_table,
    report,
    workbench_case,
)

ROOT = Path(__file__).resolve().parent.parent
PEER_VARIANTS = ("ckpt", "nockpt")  # anemoi with activation checkpointing on / off
# (warm-up, timed) steps when not given. On 2 CPU cores one step of the full config takes
# 30-60 s (six cases of it), so on CPU it gets a single timed step and no warm-up: its first
# step is not measurably slower than the next ones (the step's GEMMs dominate, not first-use
# costs), and the script stays near 5 minutes on an idle 2-core machine.
DEFAULT_STEPS = {("demo", "cpu"): (3, 10), ("demo", "cuda"): (3, 20),
                 ("full", "cpu"): (0, 1), ("full", "cuda"): (3, 20)}
FALLBACK_STEPS = {"cpu": (1, 3), "cuda": (3, 20)}
ANEMOI_CHUNKS = 4  # num_chunks of anemoi-training's graphtransformer.yaml (checkpoint groups)


def rss_mb() -> float:
    """This process's peak RSS in MB.

    Linux's VmHWM (the high-water mark of this process's own memory map). getrusage's
    ru_maxrss is not used there: it keeps the high-water mark from before exec, i.e. the
    parent's RSS when it started the child (600 MB of imports and batches here), which would
    floor every child's figure. Elsewhere, getrusage."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 2**20 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


# --------------------------------------------------------------------------- timing loop


def optimizer_step(loss, optimizer) -> float:
    """Backward, step, zero the gradients; the loss as a float (the same for both sides)."""
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def run_steps(step, spec: dict, torch) -> dict:
    """Warm-up then timed steps; wall time per step (CUDA synchronised around each).

    Each step waits for a line on stdin: the parent hands out turns, so that the cases of one
    graph run their steps in alternation and never at the same time."""
    cuda = spec["device"] == "cuda"
    times, cpu_times, first = [], [], math.nan
    print("    ready", flush=True)
    for index in range(spec["warmup"] + spec["steps"]):
        if not sys.stdin.readline():  # the parent's turn signal (see run_cases)
            raise SystemExit("the parent closed the turn pipe")
        if cuda:
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = step(index)
        if cuda:
            torch.cuda.synchronize()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if not math.isfinite(loss):
            raise RuntimeError(f"loss {loss} at step {index}")
        if index == 0:
            first = loss
        if index >= spec["warmup"]:
            times.append(elapsed)
            cpu_times.append(cpu)
        print(f"    step {index + 1}: {elapsed:.3f} s (CPU {cpu:.3f} s), loss {loss:.4g}",
              flush=True)
    return {"step_times": times, "cpu_times": cpu_times, "first_loss": first}


def memory_start(spec: dict, torch) -> float:
    if spec["device"] == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    return rss_mb()


def memory_peak(spec: dict, torch, base: float) -> dict:
    if spec["device"] == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = rss_mb()
    return {"peak_mb": peak - base, "base_mb": base}


def autocast(spec: dict, torch):
    import contextlib

    if spec["device"] == "cuda" and spec["precision"] == "bf16-mixed":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- FLOP counting


def count_flops(loss_of, model, parts: dict[str, list[str]], torch) -> dict:
    """FLOPs of one step on the first batch and of its forward, by FlopCounterMode.

    ``loss_of(0)``: the step's loss (forward + loss); ``parts``: part name -> the qualified
    names in ``model`` of the modules it sums. Step: forward + loss + backward (no optimizer);
    forward: the same call under ``no_grad`` (the loss adds no counted FLOPs), its per-part
    breakdown from the counter's module attribution (reliable in the forward only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss = loss_of(0)
        loss.backward()
    step = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        loss_of(0)
    by_module = counter.get_flop_counts()
    root = type(model).__name__  # FlopCounterMode names modules from the outermost one called
    found = {part: sum(sum(by_module.get(f"{root}.{name}", {}).values()) for name in names)
             for part, names in parts.items()}
    missing = [n for names in parts.values() for n in names if f"{root}.{n}" not in by_module]
    if missing:
        raise RuntimeError(f"FlopCounterMode saw no module {missing} (modules seen: "
                           f"{sorted(by_module)[:8]}...)")
    print(f"    flops: step {step / 1e9:.4g} GFLOP, forward "
          f"{counter.get_total_flops() / 1e9:.4g} GFLOP", flush=True)
    return {"flops_step": step, "flops_forward": counter.get_total_flops(),
            "flops_parts": found, "first_loss": float(loss.detach())}


def measure(spec: dict, loss_of, model, parts: dict[str, list[str]], optimizer, base: float,
            torch) -> dict:
    """The case's figures: FLOP counts (``--flops``) or timed steps and peak memory."""
    if spec.get("flops"):
        return count_flops(loss_of, model, parts, torch)
    profiles = [] if spec.get("profile") else None  # --profile: each step timed by part
    if profiles is None:
        def step(index: int) -> float:
            return optimizer_step(loss_of(index), optimizer)
    else:
        sync = torch.cuda.synchronize if spec["device"] == "cuda" else None
        clock = step_profile.PartClock(model, parts, sync)

        def step(index: int) -> float:
            loss, profile = clock.step(loss_of, optimizer, index)
            if index >= spec["warmup"]:
                profiles.append(profile)
            return loss

    result = run_steps(step, spec, torch)
    result.update(memory_peak(spec, torch, base))
    if profiles is not None:
        result["profile"] = step_profile.median_profile(profiles)
    return result


# --------------------------------------------------------------------------- workbench child

WORKBENCH_PARTS = ("data_embed", "hidden_embed", "encoder", "processor", "decoder", "output")


def workbench_child(spec: dict) -> dict:
    import dataclasses

    import torch

    from workbench import training
    from workbench.model import parameter_count

    device = torch.device(spec["device"])
    config, sampling, graph, batches = workbench_case(spec, device)
    base = memory_start(spec, torch)

    torch.manual_seed(0)
    # One domain: its graph is index 0; normalisers only feed fine-tuning's clipping (off).
    module = training.Trainer(config, [graph], list(sampling.variables), [None]).to(device)
    if spec.get("flops"):  # no recomputation in backward: each FLOP counted once
        module.model.config = dataclasses.replace(module.model.config, checkpointing=False)
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]

    def loss_of(index: int):
        with autocast(spec, torch):
            loss, _ = module._task_loss(batches[index % len(batches)])
        return loss

    parts = {name: [name] for name in WORKBENCH_PARTS}
    result = measure(spec, loss_of, module.model, parts, optimizer, base, torch)
    result.update(params=parameter_count(module.model), n_data=graph.tensors.n_data,
                  n_hidden=graph.n_hidden, versions=f"torch {torch.__version__}",
                  checkpointing=module.model.config.checkpointing)
    return result


# --------------------------------------------------------------------------- anemoi child


def anemoi_release() -> tuple[int, int]:
    """(major, minor) of the installed anemoi-models."""
    import importlib.metadata as metadata

    major, minor = metadata.version("anemoi-models").split(".")[:2]
    return int(major), int(minor)


def anemoi_classes(ratio: float):
    """anemoi's GraphTransformer mapper and processor classes taking a fractional MLP ratio.

    anemoi-models 0.13 sizes the MLP as ``mlp_hidden_ratio * channels`` and expects an int
    ratio (0.19 takes a float and rounds the product itself); a ratio such as 3.5 (512 -> 1792)
    is handed to 0.13 as a float whose product with the channel count is an int, through
    subclasses, so the layers are anemoi's own, unchanged."""
    from anemoi.models.layers import mapper, processor

    classes = (mapper.GraphTransformerForwardMapper, processor.GraphTransformerProcessor,
               mapper.GraphTransformerBackwardMapper)
    if float(ratio).is_integer() or anemoi_release() >= (0, 19):
        return classes

    class Ratio(float):
        def __mul__(self, other):
            return int(round(float(self) * other))

        __rmul__ = __mul__

    def wrap(base):
        def __init__(self, **kwargs):
            kwargs["mlp_hidden_ratio"] = Ratio(kwargs["mlp_hidden_ratio"])
            base.__init__(self, **kwargs)

        # hydra turns a class _target_ into its import path and imports it again: make the
        # subclass a global of this module under its own name.
        name = f"Ratio{base.__name__}"
        cls = type(base)(name, (base,), {"__init__": __init__, "__module__": __name__,
                                         "__qualname__": name})
        globals()[name] = cls
        return cls

    return tuple(wrap(c) for c in classes)


def anemoi_model(spec: dict, graph):
    """AnemoiModelEncProcDec of the spec's size on ``graph`` (workbench's HeteroData).

    The same model under either API: anemoi-models 0.13 (``training.multistep_input/output``
    in the config, one ``encoder``/``decoder`` config for every dataset, the model passing
    ``num_channels`` to the layers) and 0.19 (``n_step_input/output`` arguments, per-dataset
    ``encoders``/``decoders`` with their ``mapper``, ``node_trainable_parameters``, a latent
    aggregator, ``num_channels`` in each layer's config, float MLP ratios). The decoder's
    destination nodes get the encoder's input, as in 0.13 (0.19's ``encoded_data``); one
    dataset, so the sum aggregator passes the encoder's latent through."""
    import torch
    from anemoi.models.data_indices.collection import IndexCollection
    from anemoi.models.models.encoder_processor_decoder import AnemoiModelEncProcDec
    from anemoi.utils.config import DotDict
    from omegaconf import OmegaConf

    # Edge features as workbench's: length in units of 1000 km and direction east/north.
    for key in graph.edge_types:
        store = graph[key]
        store["bench_length"] = (store.edge_length_km.float() / spec["length_scale_km"]).view(-1, 1)
        store["bench_dirs"] = store.edge_dirs.float()
    for name in graph.node_types:
        graph[name].x = graph[name].x.float()

    new_api = anemoi_release() >= (0, 19)
    encoder, processor, decoder = anemoi_classes(spec["mlp_ratio"])
    kernels = {"LayerNorm": {"_target_": "torch.nn.LayerNorm"},
               "Linear": {"_target_": "torch.nn.Linear"},
               "Activation": {"_target_": "torch.nn.GELU"}}
    ratio = spec["mlp_ratio"]
    common = {"trainable_size": 0, "sub_graph_edge_attributes": ["bench_length", "bench_dirs"],
              "num_chunks": math.gcd(spec["layers"], ANEMOI_CHUNKS),
              "mlp_hidden_ratio": int(ratio) if float(ratio).is_integer() else ratio,
              "num_heads": spec["heads"],
              "qk_norm": False, "cpu_offload": False, "layer_kernels": kernels,
              "graph_attention_backend": "triton" if spec["device"] == "cuda" else "pyg",
              "edge_pre_mlp": False}
    if new_api:
        common["num_channels"] = spec["hidden_dim"]
    enc = {"_target_": encoder, "shard_strategy": "edges", **common}
    proc = {"_target_": processor, "num_layers": spec["layers"], **common}
    dec = {"_target_": decoder, "shard_strategy": "edges", "initialise_data_extractor_zero": True,
           **common}
    nodes = {"data": 0, "hidden": 0}  # no trainable node tensors
    residual = {"_target_": "anemoi.models.layers.residual.SkipConnection"}
    shared = {"model": {"hidden_nodes_name": "hidden", "latent_skip": True}, "bounding": []}
    if new_api:
        model_config = {"model": {
            **shared, "node_trainable_parameters": nodes, "processor": proc,
            "residual": {"datasets": {"data": residual}},  # 0.19's per-dataset form
            "encoders": {"data": {"source_datasets": ["data"],
                                  "dataset_fusing_strategy": "not_supported", "mapper": enc}},
            "decoders": {"data": {"target_datasets": ["data"],
                                  "target_node_features": ["encoded_data"], "mapper": dec}},
            "latent_aggregator": {"_target_": "anemoi.models.layers.aggregator.SumAggregator"},
        }}
        steps = {"n_step_input": 1, "n_step_output": 1}
    else:
        model_config = {"training": {"multistep_input": 1, "multistep_output": 1},
                        "model": {**shared, "num_channels": spec["hidden_dim"],
                                  "residual": residual,
                                  "trainable_parameters": nodes, "encoder": enc,
                                  "processor": proc, "decoder": dec}}
        steps = {}
    names = spec["variables"] + spec["forcing_names"]
    indices = IndexCollection(OmegaConf.create({"forcing": spec["forcing_names"],
                                                "diagnostic": []}),
                              {name: i for i, name in enumerate(names)})
    torch.manual_seed(0)
    model = AnemoiModelEncProcDec(model_config=DotDict(model_config),
                                  data_indices={"data": indices}, statistics={"data": {}},
                                  graph_data=graph, **steps)
    if not spec["checkpointing"]:
        for module in model.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = False
    return model


def anemoi_child(spec: dict) -> dict:
    import importlib.metadata as metadata
    import logging

    import torch
    from anemoi.models.models.encoder_processor_decoder import AnemoiModelEncProcDec  # noqa: F401

    logging.getLogger("anemoi").setLevel(logging.ERROR)  # "triton is not available" per block
    graph = torch.load(spec["graph"], weights_only=False)
    inputs = torch.load(spec["batches"], weights_only=True)
    device = torch.device(spec["device"])
    statics = inputs["statics"]  # [S, G]
    batches = []
    for x, y, f in zip(inputs["x"], inputs["y"], inputs["forcings"], strict=True):
        # x [B, 1, V, G], forcings [B, T, F, G] (input time, then target time), statics [S, G]
        b = x.shape[0]
        channels = torch.cat([x[:, 0], f[:, 0], f[:, 1], statics.expand(b, -1, -1)], dim=1)
        batches.append((channels.transpose(1, 2)[:, None, None].contiguous().to(device),
                        y[:, :1].transpose(2, 3)[:, :, None].contiguous().to(device)))
    # workbench's loss: sum(a_g e) / sum(a_g) over the interior nodes, a_g the area weights
    # (latitude weighting) or 1; LAM boundary nodes are forced to the truth, as workbench's
    # rollout does, and left out of the loss, as workbench's loss leaves them out
    weights = inputs["area_weight"].float()
    if not spec["latitude_weighting"]:
        weights = torch.ones_like(weights)
    boundary = inputs.get("boundary")
    if boundary is not None:
        weights = torch.where(boundary, 0.0, weights)
        boundary = boundary.to(device).view(1, 1, 1, -1, 1)
    weights = weights.to(device).view(1, 1, 1, -1, 1)
    base = memory_start(spec, torch)

    model = anemoi_model(spec, graph).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"],
                                  weight_decay=spec["weight_decay"])

    def loss_of(index: int):
        x, y = batches[index % len(batches)]
        with autocast(spec, torch):
            pred = model({"data": x})["data"]
            if boundary is not None:
                pred = torch.where(boundary, y.to(pred.dtype), pred)
        error = (pred.float() - y) ** 2
        return (error * weights).sum() / weights.expand_as(error).sum()

    # encoder/decoder: ModuleDicts of one mapper per dataset (both releases)
    parts = {"encoder": [f"encoder.{k}" for k in model.encoder], "processor": ["processor"],
             "decoder": [f"decoder.{k}" for k in model.decoder]}
    result = measure(spec, loss_of, model, parts, optimizer, base, torch)
    block = model.processor.proc[0]
    result.update(params=sum(p.numel() for p in model.parameters()),
                  n_data=int(graph["data"].num_nodes), n_hidden=int(graph["hidden"].num_nodes),
                  backend=getattr(block, "graph_attention_backend", "?"),
                  release=metadata.version("anemoi-models"),
                  checkpointing=any(getattr(m, "gradient_checkpointing", False)
                                    for m in model.modules()),
                  versions=", ".join(f"{p} {metadata.version(p)}"
                                     for p in ("anemoi-models", "torch", "torch-geometric")))
    return result


# --------------------------------------------------------------------------- parent side


def config_variant(label: str, tmp: Path) -> str:
    """A config of ``--configs``: a preset or YAML path, or ``NAME:key=value[:key=value]``,
    that config with those ``model`` keys replaced (e.g. ``full:mapper=mlp``), written to
    ``tmp``; returns what load_training_config reads."""
    import yaml

    from workbench.config import load_yaml, parse_yaml, resolve_config

    base, *overrides = label.split(":")
    if not overrides:
        return label
    raw = load_yaml(resolve_config(base, "training"))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--configs {label}: write NAME:key=value, got {item!r}")
        raw.setdefault("model", {})[key] = parse_yaml(value, f"--configs {label}")
    path = tmp / (label.replace(":", "-").replace("=", "-") + ".yaml")
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def prepare(config_name: str, domains: list[str] | None, n_batches: int, tmp: Path,
            device: str) -> list[dict]:
    """Graph .pt and batches .pt of every domain of a config; one spec per domain."""
    import torch

    from workbench import domain_graphs, graphs, training
    from workbench.sampling import MultiDomainDataModule

    config_path = config_variant(config_name, tmp)
    config = training.load_training_config(config_path)
    sampling = training.sampling_config(config)
    model_cfg = training.model_config(config, sampling)
    if model_cfg.processor != "transformer" or config.task != "forecast":
        raise SystemExit(f"{config_name}: only forecast graph transformers have an anemoi peer "
                         f"here (processor {model_cfg.processor}, task {config.task})")
    chosen = [d for d in sampling.domains if domains is None or d.name in domains]
    dgraphs = {d.name: domain_graphs.domain_graph(d.graph, d.name, d.dataset, config.boundary_cells)
               for d in chosen}
    module = MultiDomainDataModule(sampling, {n: g.graph_id for n, g in dgraphs.items()})
    module.setup()
    found: dict[str, list[dict]] = {d.name: [] for d in chosen}
    for batch in module.train_dataloader():
        if batch["domain"] in found and len(found[batch["domain"]]) < n_batches:
            found[batch["domain"]].append(batch)
        if all(len(v) == n_batches for v in found.values()):
            break
    specs = []
    for d in chosen:
        got = found[d.name]
        if len(got) < n_batches:
            raise SystemExit(f"{config_name}/{d.name}: only {len(got)} training batches")
        batches = tmp / f"{Path(config_path).stem}-{d.name}-batches.pt"
        torch.save({"x": [b["x"] for b in got], "y": [b["y"] for b in got],
                    "forcings": [b["forcings"] for b in got], "statics": got[0]["statics"],
                    "area_weight": dgraphs[d.name].area_weight,
                    "boundary": dgraphs[d.name].boundary}, batches)
        graph_path = tmp / f"{d.name}-graph.pt"
        if not graph_path.exists():
            graphs.save_graph(domain_graphs.graph_for(d.graph, d.name, None), graph_path)
        on_cuda = device == "cuda"
        specs.append({
            "config": config_name, "config_path": config_path, "domain": d.name,
            "device": device,
            "batches": str(batches), "graph": str(graph_path),
            "batch_size": int(got[0]["x"].shape[0]),
            "precision": config.precision if on_cuda else "32-true",
            "hidden_dim": model_cfg.hidden_dim, "layers": model_cfg.processor_layers,
            "heads": model_cfg.heads, "mlp_ratio": model_cfg.mlp_ratio,
            "mapper": model_cfg.mapper,
            "length_scale_km": model_cfg.length_scale_km,
            "variables": list(sampling.variables),
            "forcing_names": [f"{f}_{t}" for t in ("t0", "t1") for f in sampling.forcings]
            + list(sampling.statics),
            "lr": config.optimizer.lr, "weight_decay": config.optimizer.weight_decay,
            "latitude_weighting": config.loss.latitude_weighting,
        })
    return specs


class Child:
    """One case's process: its spec, log and the pipes the parent hands turns out through."""

    def __init__(self, impl: str, python: str, spec: dict, tmp: Path):
        self.impl = impl
        spec = {**spec, "checkpointing": impl.endswith(" ckpt")}
        tag = f"{Path(spec['config_path']).stem}-{spec['domain']}-{impl.replace(' ', '-')}"
        spec_path, self.out = tmp / f"{tag}.json", tmp / f"{tag}.out.json"
        self.log = tmp / f"{tag}.log"
        spec_path.write_text(json.dumps(spec))
        kind = "workbench" if impl == "workbench" else "anemoi"
        cmd = [python, str(Path(__file__).resolve()), "--child", kind, str(spec_path),
               str(self.out)]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        self.error: str | None = None

    def expect(self, what: str) -> str | None:
        """The child's next stdout line starting with ``what``; None (and .error) on exit."""
        for line in self.proc.stdout:
            if line.strip().startswith(what):
                return line
        self.proc.wait()
        tail = [x.strip() for x in self.log.read_text().splitlines() if x.strip()]
        self.error = f"exit {self.proc.returncode}: {(tail or [''])[-1][:200]}"
        return None

    def turn(self) -> str | None:
        try:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        return self.expect("step")

    def finish(self) -> dict:
        if self.error is None:
            self.proc.stdin.close()
            self.proc.wait()
            if self.proc.returncode or not self.out.exists():
                self.expect("never")  # sets .error from the log
        if self.error is not None:
            self.proc.kill()
            self.proc.wait()
            return {"error": self.error}
        return json.loads(self.out.read_text())


def run_cases(impls: dict[str, str], spec: dict, tmp: Path) -> dict[str, dict]:
    """The cases of one config and graph (impl label -> its python), each in its own
    process, stepping in turns.

    Every process sets up (imports, inputs, model) at once; then the parent hands out one step
    at a time, round-robin: a step always runs alone, and a change in the load of the machine
    during the run touches every implementation alike."""
    start, busy_start, own_start = time.perf_counter(), machine_busy_s(), children_cpu_s()
    children = [Child(impl, python, spec, tmp) for impl, python in impls.items()]
    alive = [c for c in children if c.expect("ready") is not None]
    for _ in range(spec["warmup"] + spec["steps"]):
        for child in list(alive):
            line = child.turn()
            if line is None:
                alive.remove(child)
            else:
                print(f"  {child.impl:22s}{line.strip()}", flush=True)
    results = {c.impl: c.finish() for c in children}
    elapsed = time.perf_counter() - start
    busy_end = machine_busy_s()
    for result in results.values():
        result["process_s"] = elapsed
        if busy_start is not None and busy_end is not None:
            others = (busy_end - busy_start) - (children_cpu_s() - own_start)
            result["others_cpu"] = max(0.0, others) / (elapsed * (os.cpu_count() or 1))
    return results


def run_flops(impl: str, python: str, spec: dict, tmp: Path) -> dict:
    """One case's FLOP counts (``--flops``), in its own process; one case at a time."""
    child = Child(impl, python, {**spec, "flops": True}, tmp)
    line = child.expect("flops")
    if line is not None:
        print(f"  {impl:22s}{line.strip()}", flush=True)
    return child.finish()


def child_main(kind: str, spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = workbench_child(spec) if kind == "workbench" else anemoi_child(spec)
    result["rss_total_mb"] = rss_mb()
    Path(out_path).write_text(json.dumps(result))


def anemoi_peer(venv: str) -> tuple[str, str]:
    """(python, anemoi-models release) of a peer venv, or ("", why it cannot run)."""
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        return "", f"{python} is missing"
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m, "
                           "anemoi.models.models; print(m.version('anemoi-models'))"],
                          capture_output=True, text=True)
    if done.returncode:
        return "", f"anemoi-models does not import in {venv}: " + (
            done.stderr.strip().splitlines() or ["?"])[-1][:160]
    return str(python), done.stdout.strip().splitlines()[-1]


def implementations(venvs: list[str], variants: list[str]) -> tuple[dict[str, str], list[str]]:
    """impl label -> python (workbench first, then ``anemoi <release> <variant>`` of each
    venv), and why any venv was left out."""
    impls, why_not = {"workbench": sys.executable}, []
    for venv in venvs:
        python, release = anemoi_peer(venv)
        if not python:
            why_not.append(release)
            continue
        for variant in variants:
            label = f"anemoi {release} {variant}"
            if label in impls:
                raise SystemExit(f"--anemoi: two venvs hold anemoi-models {release}")
            impls[label] = python
    return impls, why_not


def fmt_row(spec: dict, impl: str, res: dict, ours: dict | None) -> dict:
    """A table row; the ratio columns (workbench / this peer) on the peer rows."""
    ok = "error" not in res

    def ratio(key: str):
        if impl == "workbench" or not ok or not ours or "error" in ours or not res[key] > 0:
            return ""
        return ours[key] / res[key]

    row = {
        "config": spec["config"],
        "domain (data/hidden)": (f"{spec['domain']} ({res['n_data']:,}/{res['n_hidden']:,})"
                                 if ok else spec["domain"]),
        "impl": impl,
        "params": f"{res['params']:,}" if ok else "-",
        "batch": spec["batch_size"],
        "steps": f"{spec['warmup']}+{spec['steps']}",
        "step_s": res["step_s"] if ok else res["error"],
        "cpu_s": res["cpu_s"] if ok else "",
        "samples_per_s": spec["batch_size"] / res["step_s"] if ok else "",
        "peak_mb": round(res["peak_mb"]) if ok else "",
        "step wb/peer": ratio("step_s"),
        "cpu wb/peer": ratio("cpu_s"),
        "peak wb/peer": ratio("peak_mb"),
        "others": f"{res['others_cpu']:.0%}" if "others_cpu" in res else "",
    }
    if spec["device"] != "cpu":
        del row["cpu_s"], row["cpu wb/peer"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument("--configs", default="demo,full")
    parser.add_argument("--domains", help="comma list (default: every domain of the config)")
    parser.add_argument("--steps", type=int, help="timed steps (default: per config and device)")
    parser.add_argument("--warmup", type=int, help="untimed warm-up steps")
    parser.add_argument("--peers", default="ckpt,nockpt",
                        help="anemoi variants: ckpt (its default), nockpt, or both")
    parser.add_argument("--anemoi", default=".venv-anemoi", metavar="VENV[,VENV...]",
                        help="peer venvs (relative to the repository), one anemoi-models "
                             "release each, e.g. .venv-anemoi,.venv-anemoi-latest")
    parser.add_argument("--flops", action="store_true",
                        help="count the FLOPs of one step and of the forward (by part) instead "
                             "of timing; checkpointing off everywhere (anemoi: nockpt only)")
    parser.add_argument("--profile", action="store_true",
                        help="time each step by part (forward, backward, optimizer; encoder, "
                             "processor, decoder) instead of the plain timing table")
    parser.add_argument("--sequential", action="store_true",
                        help="run the cases of a graph one after another instead of side by "
                             "side in turns (less memory at once, no protection from drift)")
    parser.add_argument("--print-only", action="store_true",
                        help="print the table without appending it to RESULTS.md")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SPEC", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch in .venv has no CUDA device")
    variants = ["nockpt"] if args.flops else [p for p in args.peers.split(",") if p]
    if unknown := set(variants) - set(PEER_VARIANTS):
        sys.exit(f"--peers: unknown {sorted(unknown)}; use {','.join(PEER_VARIANTS)}")
    impls, why_not = implementations([v for v in args.anemoi.split(",") if v], variants)
    domains = args.domains.split(",") if args.domains else None
    load_start = os.getloadavg()
    wall = time.perf_counter()
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-train-step-") as name:
        tmp = Path(name)
        for config_name in args.configs.split(","):
            warmup, steps = DEFAULT_STEPS.get((config_name.split(":")[0], device),
                                              FALLBACK_STEPS[device])
            warmup = warmup if args.warmup is None else args.warmup
            steps = steps if args.steps is None else args.steps
            if args.flops:  # one step on the first batch, not timed
                warmup, steps = 0, 1
            print(f"{config_name}: preparing graphs and {warmup + steps} batches per domain",
                  flush=True)
            for spec in prepare(config_name, domains, warmup + steps, tmp, device):
                spec.update(warmup=warmup, steps=steps, profile=args.profile)
                print(f"{config_name} / {spec['domain']}: {', '.join(impls)}", flush=True)
                if args.flops:
                    done = {impl: run_flops(impl, python, spec, tmp)
                            for impl, python in impls.items()}
                elif args.sequential:
                    done = {impl: run_cases({impl: python}, spec, tmp)[impl]
                            for impl, python in impls.items()}
                else:
                    done = run_cases(impls, spec, tmp)
                ours = done["workbench"]
                for impl, res in done.items():
                    if "error" in res:
                        print(f"  {impl}: failed: {res['error']}", flush=True)
                    elif not args.flops:
                        res["step_s"] = statistics.median(res["step_times"])
                        res["cpu_s"] = statistics.median(res["cpu_times"])
                        print(f"  {impl}: median {res['step_s']:.3f} s, peak "
                              f"{res['peak_mb']:.0f} MB over {res['base_mb']:.0f} MB, "
                              f"{res['params']:,} parameters", flush=True)
                    if args.profile:
                        rows.append(step_profile.profile_row(spec, impl, res))
                    else:
                        rows.append((flops_row if args.flops else fmt_row)(spec, impl, res, ours))
                    results[(config_name, spec["domain"], impl)] = (spec, res)
    wall = time.perf_counter() - wall
    if args.flops:
        notes = flops_notes(results, device, why_not, wall)
        title = "Training step FLOPs: workbench EncProcDec vs anemoi-models graph transformer"
    elif args.profile:
        notes = (step_profile.NOTES + "\n\n"
                 + make_notes(results, device, why_not, load_start, os.getloadavg(), wall, args))
        title = f"Training step by part: workbench EncProcDec vs anemoi-models ({device})"
    else:
        notes = make_notes(results, device, why_not, load_start, os.getloadavg(), wall, args)
        title = ("Training step: workbench EncProcDec vs anemoi-models graph transformer "
                 f"({device})")
    if args.print_only:
        print(markdown_table(rows), "", notes, sep="\n")
    else:
        report(title, rows, notes)


def gflop(flops: float) -> str:
    """FLOPs as GFLOP, 4 significant figures, no exponent below 10^4 GFLOP."""
    return f"{flops / 1e9:.4g}"


def flops_row(spec: dict, impl: str, res: dict, ours: dict | None) -> dict:
    """A row of the --flops table: totals, then the forward by part (GFLOP)."""
    ok = "error" not in res
    row = {"config": spec["config"],
           "domain (data/hidden)": (f"{spec['domain']} ({res['n_data']:,}/{res['n_hidden']:,})"
                                    if ok else spec["domain"]),
           "impl": impl, "params": f"{res['params']:,}" if ok else "-",
           "batch": spec["batch_size"],
           "GFLOP step": gflop(res["flops_step"]) if ok else res["error"],
           "GFLOP forward": gflop(res["flops_forward"]) if ok else ""}
    parts = res.get("flops_parts", {})
    for name in WORKBENCH_PARTS:
        row[name] = gflop(parts[name]) if name in parts else ""
    row["rest"] = gflop(res["flops_forward"] - sum(parts.values())) if ok else ""
    peer = ok and impl != "workbench" and ours and "error" not in ours
    row["step wb/peer"] = ours["flops_step"] / res["flops_step"] if peer else ""
    return row


def first_loss_checks(results: dict) -> list[str]:
    """'config/domain workbench vs peer (impl)' of the first step's loss, per peer case."""
    checks = []
    for (c, d, impl), (_, r) in results.items():
        ours = results.get((c, d, "workbench"), (None, {}))[1]
        if impl != "workbench" and "error" not in r and "first_loss" in ours:
            checks.append(f"{c}/{d} {ours['first_loss']:.4g} vs {r['first_loss']:.4g} ({impl})")
    return checks


def peer_versions(results: dict) -> str:
    """'release: anemoi-models X, torch Y, ...' of each peer release that ran."""
    seen = {}
    for (_, _, impl), (_, r) in results.items():
        if impl != "workbench" and "error" not in r:
            seen.setdefault(r["release"], r["versions"])
    return "; ".join(seen.values())


def flops_notes(results: dict, device: str, why_not: list[str], wall: float) -> str:
    """The paragraph under the --flops table: what was counted, how, and the command."""
    specs = {c: s for (c, _, _), (s, _) in results.items()}
    sizes = "; ".join(
        f"{c}: {s['hidden_dim']} channels, {s['layers']} processor layers, {s['heads']} heads, "
        f"MLP {s['mlp_ratio']:g} x channels, batch {s['batch_size']}" for c, s in specs.items())
    lines = [
        "FLOPs of one training step, counted (not timed) with "
        "`torch.utils.flop_counter.FlopCounterMode` in each case's process, on the same model, "
        "graph and first training batch as the timed step of this benchmark: `GFLOP step` = "
        "forward + loss + backward (no optimizer step), `GFLOP forward` = the same forward "
        "and loss under `no_grad` (the loss has no matrix products). The counter counts "
        "matrix products (mm/addmm/bmm, convolutions, fused attention) only: gathers, "
        "scatters, the per-edge attention scores and softmax, norms and activations add none, "
        "on either side. Activation checkpointing is off in every case (workbench's "
        "`checkpointing` switched off, anemoi's `nockpt`), as with it the backward recomputes "
        "the forward and would count it twice: a checkpointed step costs about one more "
        "forward. The backward has no input-gradient of the first layer, so the step is a "
        "little under 3 x the forward. Parts: the forward's FLOPs by top-level module, from "
        "the counter's module attribution (reliable in the forward only, so the backward is "
        "not split): workbench's `EncProcDec` modules `data_embed`, `hidden_embed`, `encoder`, "
        "`processor`, `decoder`, `output`; anemoi's `encoder` (GraphTransformerForwardMapper, "
        "its data-node embedding included), `processor` (GraphTransformerProcessor) and "
        "`decoder` (GraphTransformerBackwardMapper, its output extractor included); `rest`: "
        "forward minus the parts (products outside them). `step wb/peer`: "
        "workbench / that peer. Device: " + device + "; the counts do not depend on the "
        "machine or its load.",
        "",
        f"Sizes: {sizes}. The models are those of the timed table (see its notes).",
    ]
    checks = first_loss_checks(results)
    if checks:
        lines += ["", "First step's loss, workbench vs anemoi (both start as persistence): "
                  + "; ".join(checks) + "."]
    if versions := peer_versions(results):
        lines += ["", f"anemoi side: {versions}."]
    if why_not:
        lines += ["", "Peers not measured: " + "; ".join(why_not) + "."]
    failed = [f"{c}/{d}/{i}: {r['error']}" for (c, d, i), (_, r) in results.items()
              if "error" in r]
    if failed:
        lines += ["", "Failed: " + "; ".join(failed) + "."]
    cmd = "benchmarks/train_step.py " + " ".join(a for a in sys.argv[1:] if a != "--print-only")
    lines += ["", f"Command: `.venv/bin/python {cmd.strip()}`; whole script {wall:.0f} s."]
    return "\n".join(lines)


def make_notes(results: dict, device: str, why_not: list[str], load_start, load_end,
               wall: float, args) -> str:
    peer = next((r for (_, _, impl), (_, r) in results.items()
                 if impl != "workbench" and "error" not in r), None)
    specs = {c: s for (c, _, _), (s, _) in results.items()}
    ours_ckpt = {c: r["checkpointing"] for (c, _, i), (_, r) in results.items()
                 if i == "workbench" and "checkpointing" in r}
    sizes = "; ".join(
        f"{c}: {s['hidden_dim']} channels, {s['layers']} processor layers, {s['heads']} heads, "
        f"MLP {s['mlp_ratio']:g} x channels, workbench mapper {s.get('mapper', 'mlp')}, "
        f"batch {s['batch_size']}, "
        f"{s['precision']}, lr {s['lr']:g}" for c, s in specs.items())
    lines = [
        "One step = forward + loss + backward + AdamW step (no gradient clipping, no LR "
        "schedule), on real normalised training batches of the demo DataModule (the first "
        "warm-up + timed batches of each domain, cycled; the same tensors on both sides). "
        "`step_s`: median wall time of the timed steps after the warm-up steps (`steps` = "
        "warm-up+timed); `others`: the share of the machine's CPU time other processes "
        "used while the cases of that graph ran (/proc/stat minus the cases' own CPU time): "
        "above a few percent, the times are inflated by competition for the cores; "
        + ("`cpu_s`: median CPU time of the process (all threads) per timed step, so "
           "`cpu_s / step_s` is about the number of cores the step got (the threads are "
           f"{os.environ.get('OMP_NUM_THREADS', '?')}); "
           if device == "cpu" else "")
        + "`samples_per_s` = batch / `step_s`; `peak_mb`: "
        + ("the child's peak RSS (VmHWM) minus its peak RSS after imports and loading graph "
           "and batches, i.e. model, gradients, AdamW state and the step's activations "
           "(getrusage's ru_maxrss is not used: in a child it keeps the parent's RSS from "
           "before exec)" if device == "cpu" else
           "torch.cuda.max_memory_allocated minus what was allocated before the model")
        + ". Every case runs in a fresh process"
        + (", one after another (--sequential)" if args.sequential else
           "; the cases of one graph start together and then take turns, one step at a time, "
           "so that no two steps overlap and a change in the machine's load touches every "
           "implementation alike")
        + ". `wb/peer`: workbench / that peer (below 1: workbench faster or smaller).",
        "",
        f"Sizes: {sizes}.",
        "",
        "workbench: `training.Trainer` of configs/training/<config>.yaml on the domain's graph "
        "(EncProcDec: MLP embeddings; mappers as the config's `model.mapper` says: `mlp`, an "
        "edge-embedding MLP and an edge MLP, both channels wide, on every encoder/decoder "
        "edge, messages averaged, then a node MLP, which is where its extra parameters are; "
        "`transformer`, one graph-transformer block each, as anemoi's: attention over each "
        "node's incoming edges with the edge features through one linear layer, then an MLP "
        "of MLP ratio x channels per node; a graph transformer processor; SiLU); the step is `Trainer._task_loss` (forecast, rollout 1, LAM boundary "
        "overwrite, the config's MSE), `backward()`, the AdamW of `configure_optimizers()`; "
        "activation checkpointing as the config sets it ("
        + (", ".join(f"{c}: {'on' if on else 'off'}" for c, on in ours_ckpt.items()) or "-")
        + ").",
        "",
        "anemoi-models (each release of `--anemoi` under its own venv's python, labelled "
        "`anemoi <release> ckpt|nockpt`): `AnemoiModelEncProcDec` with "
        "GraphTransformerForwardMapper / "
        "GraphTransformerProcessor / GraphTransformerBackwardMapper (anemoi-training's "
        "graphtransformer.yaml layers, each mapper a single graph-transformer block whose "
        "edge features enter through one linear layer: GELU, num_chunks "
        f"{ANEMOI_CHUNKS} or fewer to divide the layers, latent skip, SkipConnection residual) "
        "with workbench's channels, layers, heads and MLP width (0.13's config takes an int "
        "MLP ratio: a 3.5 ratio is passed to its own layers through a subclass; 0.19 takes a "
        "float); the same settings under 0.19's config API (per-dataset encoders/decoders, "
        "a sum latent aggregator, which passes the one dataset's latent through, decoder "
        "target features `encoded_data`: the encoder's input, as 0.13 decodes onto); built on "
        "workbench's HeteroData graph saved with `graphs.save_graph`, edge features length / "
        "1000 km and direction as workbench's, node features anemoi's sin/cos of lat/lon, "
        "trainable node/edge tensors off (anemoi's default is 8 per node and edge; workbench's "
        "model is grid-agnostic and has none), no output bounding. Inputs per data node: the 8 "
        "variables, insolation at input and target time, orog, lsm (workbench adds the node's "
        "unit vector). Loss: the same MSE (area-weighted when the config weights by "
        "latitude) over the interior nodes: the LAM boundary ring, forced to the truth on "
        "both sides, is left out, as workbench's loss leaves it out. "
        "`ckpt`: activation checkpointing on, as anemoi-models trains (its mappers and "
        "processor always checkpoint, the mappers in chunks of destination nodes); `nockpt`: "
        "switched off on every module, the same work per step as workbench without "
        "checkpointing. "
        "Attention backend: " + (peer["backend"] if peer else "-")
        + (" (triton is GPU-only)." if device == "cpu" else "."),
    ]
    others = [r["others_cpu"] for _, r in results.values() if "others_cpu" in r]
    if others and max(others) > 0.1:
        lines[:0] = [f"**Other processes used {min(others):.0%}-{max(others):.0%} of the "
                     "machine's CPU while the cases ran (column `others`): every time here is "
                     "inflated by that competition, unevenly from case to case, so the time "
                     "ratios are rough; peak RSS also came out higher under heavy load (up to "
                     "1.5x in trial runs). Rerun on a quiet machine.**", ""]
    summary = []
    for impl in dict.fromkeys(i for (_, _, i) in results if i != "workbench"):
        for key, what in (("step_s", "step time"), ("peak_mb", "peak memory")):
            for config in specs:
                ratios = [results[(c, d, "workbench")][1][key] / r[key]
                          for (c, d, i), (_, r) in results.items()
                          if i == impl and c == config and "error" not in r and r[key] > 0
                          and "error" not in results[(c, d, "workbench")][1]]
                if ratios:
                    summary.append(f"{what} vs {impl}, {config}: "
                                   f"{min(ratios):.2f}-{max(ratios):.2f}")
    if summary:
        lines[:0] = ["Workbench / anemoi over the domains: " + "; ".join(summary) + ".", ""]
    checks = first_loss_checks(results)
    if checks:
        lines += ["", "Same inputs, same targets, same loss: both models start as persistence "
                  "(zero-initialised output layers), so the first step's loss must agree, "
                  "workbench vs anemoi: " + "; ".join(checks) + "."]
    if versions := peer_versions(results):
        lines += ["", f"anemoi side: {versions}."]
    if why_not:
        lines += ["", "Peers not measured: " + "; ".join(why_not)
                  + " (`make bench-train-step` installs .venv-anemoi)."]
    failed = [f"{c}/{d}/{i}: {r['error']}" for (c, d, i), (_, r) in results.items()
              if "error" in r]
    if failed:
        lines += ["", "Failed: " + "; ".join(failed) + "."]
    cmd = "benchmarks/train_step.py " + " ".join(
        a for a in sys.argv[1:] if a != "--print-only")
    lines += ["", f"Command: `.venv/bin/python {cmd.strip()}`; whole script {wall:.0f} s. "
              f"Load average (this script's own processes included) at start "
              f"{load_start[0]:.2f}, at end {load_end[0]:.2f}, {os.cpu_count()} cores. "
              f"{platform.platform()}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
