"""A 2-rank DDP training step on CPU (gloo) against the single-rank step, per sample, measured
in one run.

    .venv/bin/python benchmarks/ddp_step.py [--config demo] [--domain global|conus]
        [--steps W+N] [--batch-size B] [--probe] [--quick]

Three settings, in processes started together that step in turns handed out by the parent
(one step at a time, so drift in the machine's load touches every setting): ``1 rank`` (torch
threads 2; ``training.Trainer`` built as train_step.py's ``workbench_child`` builds it, one
step = ``_task_loss``, ``backward()``, the AdamW of ``configure_optimizers()``); ``2 ranks
DDP`` (two processes of 1 thread, gloo on localhost, the Trainer in ``DistributedDataParallel``
with its defaults, as Lightning's DDPStrategy, each rank on its own batch of the same size);
``2 ranks no_sync`` (the same step under ``ddp.no_sync()``, no all-reduce; a turn after each
synced step; only with ``--probe``: with more than 2 probe steps the run hangs after its
last step, not yet understood): synced minus no_sync is the all-reduce's exposed cost.

Inputs: the domain's first 2 x (W + N) training batches of the config's DataModule (real,
normalised); rank 0 and the single rank take the even ones, rank 1 the odd ones. ``W``
untimed warm-up steps, then ``N`` timed; medians; a DDP step's time is the slower rank's.
After the first synced step the ranks' parameters are compared (identical, and changed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from common import children_cpu_s, machine_busy_s, publish, workbench_case

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STEPS = {"demo": (3, 10)}  # (warm-up, timed); other configs: FALLBACK_STEPS
FALLBACK_STEPS = (1, 2)


# --------------------------------------------------------------------------- inputs


def prepare(config_name: str, domain_name: str, batch_size: int | None, n_batches: int,
            tmp: Path) -> dict:
    """The first ``n_batches`` full training batches of one domain, saved as plain tensors."""
    from workbench import domain_graphs, training
    from workbench.sampling import MultiDomainDataModule

    config = training.load_training_config(config_name)
    sampling = training.sampling_config(config)
    domain = next((d for d in sampling.domains if d.name == domain_name), None)
    if domain is None:
        raise SystemExit(f"{config_name}: no domain {domain_name!r} "
                         f"({', '.join(d.name for d in sampling.domains)})")
    sampling = dataclasses.replace(sampling, domains=(domain,),
                                   batch_size=batch_size or sampling.batch_size)
    graph = domain_graphs.domain_graph(domain.graph, domain.name, domain.dataset,
                                       config.boundary_cells)
    module = MultiDomainDataModule(sampling, {domain.name: graph.graph_id})
    module.setup()
    got = []
    for batch in module.train_dataloader():
        if batch["x"].shape[0] == sampling.batch_size:  # a domain's last batch may be short
            got.append(batch)
        if len(got) == n_batches:
            break
    if len(got) < n_batches:
        raise SystemExit(f"{config_name}/{domain_name}: only {len(got)} training batches of "
                         f"{sampling.batch_size}; lower --steps or --batch-size")
    path = tmp / "batches.pt"
    torch.save({"x": [b["x"] for b in got], "y": [b["y"] for b in got],
                "forcings": [b["forcings"] for b in got], "statics": got[0]["statics"]}, path)
    return {"config": config_name, "domain": domain_name, "batches": str(path),
            "batch_size": sampling.batch_size, "n_grid": int(got[0]["x"].shape[-1])}


# --------------------------------------------------------------------------- child


class TaskLoss(torch.nn.Module):
    """The Trainer with ``_task_loss`` as its forward: DDP prepares its gradient reduction in
    its forward, so it must run the step's loss (as Lightning's wrapper runs training_step)."""

    def __init__(self, trainer: torch.nn.Module):
        super().__init__()
        self.inner = trainer

    def forward(self, batch: dict) -> torch.Tensor:
        return self.inner._task_loss(batch)[0]


def flat_parameters(module: torch.nn.Module) -> torch.Tensor:
    """Every parameter, detached, in one 1-D tensor."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def check_identical(model: torch.nn.Module, before: torch.Tensor) -> dict:
    """After a synced step: every rank's parameters equal rank 0's and differ from the start."""
    flat = flat_parameters(model)
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
    changed = float((flat - before).abs().max())
    assert diff == 0.0, f"ranks' parameters differ after a synced step (max |diff| {diff:g})"
    assert changed > 0.0, "the synced step did not change the parameters"
    return {"max_rank_diff": diff, "max_change": changed, "n_params": flat.numel()}


def allreduce_time(n: int, repeats: int = 5) -> float:
    """Median seconds of one all-reduce of ``n`` float32 (the gradients in one piece)."""
    buffer, times = torch.ones(n), []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(buffer)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child_main(spec_path: str, out_path: str) -> None:
    """One process of a setting: build, then one step per line on stdin ("sync"/"nosync")."""
    from workbench import training

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    rank, world = spec["rank"], spec["world"]
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world,  # a lost peer: 10 min
                                init_method=f"tcp://127.0.0.1:{spec['port']}",
                                timeout=dt.timedelta(minutes=10))
    config, sampling, graph, batches = workbench_case(spec)
    batches = batches[rank::2]  # the single rank steps on rank 0's batches

    torch.manual_seed(0)
    module = training.Trainer(config, [graph], list(sampling.variables), [None])
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]
    model = TaskLoss(module)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    before = flat_parameters(module)
    result = {"times": {"sync": [], "nosync": []}, "cpu": {"sync": [], "nosync": []},
              "losses": [], "threads": torch.get_num_threads(),
              "buffers": sum(b.numel() for b in module.buffers())}
    print("ready", flush=True)
    index = 0
    for line in sys.stdin:
        kind = line.strip()
        sync = model.no_sync() if kind == "nosync" and world > 1 else contextlib.nullcontext()
        start, cpu_start = time.perf_counter(), time.process_time()
        with sync:
            loss = model(batches[index % len(batches)])
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        result["times"][kind].append(elapsed)
        result["cpu"][kind].append(cpu)
        if kind == "sync":
            result["losses"].append(float(loss.detach()))
            if index == 0 and world > 1:
                result["check"] = check_identical(module, before)
            index += 1
        print(f"step {kind} {index}: {elapsed:.3f} s (CPU {cpu:.3f} s), loss {float(loss):.4g}",
              flush=True)
    result["params"] = int(before.numel())
    if world > 1:
        result["allreduce_s"] = allreduce_time(result["params"])
        dist.destroy_process_group()
    Path(out_path).write_text(json.dumps(result))


# --------------------------------------------------------------------------- parent


class Child:
    """One child process and the pipes the parent hands turns out through."""

    def __init__(self, spec: dict, tmp: Path, tag: str):
        self.tag = tag
        spec_path, self.out, self.log = (tmp / f"{tag}.json", tmp / f"{tag}.out.json",
                                         tmp / f"{tag}.log")
        spec_path.write_text(json.dumps(spec))
        threads = str(spec["threads"])
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "OPENBLAS_NUM_THREADS": threads}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path),
               str(self.out)]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True)

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        """End the child's step loop (the DDP ranks then time an all-reduce together)."""
        self.proc.stdin.close()

    def expect(self, what: str) -> str:
        """The child's next stdout line starting with ``what``; its log's tail on exit."""
        for line in self.proc.stdout:
            if line.startswith(what):
                return line.strip()
        self.proc.wait()
        tail = [x for x in self.log.read_text().splitlines() if x.strip()]
        raise SystemExit(f"{self.tag} exited {self.proc.returncode}: {(tail or [''])[-1]}")

    def finish(self) -> dict:
        """The child's results, once it has exited (its stdin closed: :meth:`close`)."""
        if self.proc.wait() or not self.out.exists():
            self.expect("never")
        return json.loads(self.out.read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(spec: dict, warmup: int, steps: int, probe: bool, tmp: Path) -> tuple[dict, dict]:
    """Start the single rank and the two DDP ranks, hand out the turns, collect results."""
    start, busy_start, own_start = time.perf_counter(), machine_busy_s(), children_cpu_s()
    port = free_port()
    single = Child({**spec, "threads": 2, "rank": 0, "world": 1}, tmp, "1rank")
    ranks = [Child({**spec, "threads": 1, "rank": r, "world": 2, "port": port}, tmp, f"rank{r}")
             for r in range(2)]
    kinds = ("sync", "nosync") if probe else ("sync",)
    try:
        for child in (single, *ranks):
            child.expect("ready")
        for _ in range(warmup + steps):
            single.send("sync")
            print(f"  1 rank      {single.expect('step')}", flush=True)
            for kind in kinds:
                for child in ranks:
                    child.send(kind)
                lines = [child.expect("step") for child in ranks]
                print(f"  2 ranks     {' | '.join(lines)}", flush=True)
        for child in (single, *ranks):
            child.close()
        one, two = single.finish(), [child.finish() for child in ranks]
    finally:  # a failed rank leaves the other waiting in a collective
        for child in (single, *ranks):
            if child.proc.poll() is None:
                child.proc.kill()
    elapsed = time.perf_counter() - start
    busy_end = machine_busy_s()
    others = None
    if busy_start is not None and busy_end is not None:
        used = (busy_end - busy_start) - (children_cpu_s() - own_start)
        others = max(0.0, used) / (elapsed * (os.cpu_count() or 1))
    ddp = {"times": {k: [max(t) for t in zip(*(r["times"][k] for r in two), strict=True)]
                     for k in kinds},
           "cpu": {k: [sum(c) for c in zip(*(r["cpu"][k] for r in two), strict=True)]
                   for k in kinds},
           "check": two[0]["check"], "losses": [r["losses"][0] for r in two],
           "allreduce_s": max(r["allreduce_s"] for r in two), "params": two[0]["params"]}
    one["others"] = ddp["others"] = others
    return one, ddp


def rows_of(spec: dict, one: dict, ddp: dict, warmup: int, probe: bool) -> list[dict]:
    """Table rows: 1 rank, 2 ranks DDP, and the no_sync probe."""
    batch = spec["batch_size"]
    median = lambda v: statistics.median(v[warmup:])  # noqa: E731
    per_sample_one = median(one["times"]["sync"]) / batch
    cases = [("1 rank", 1, one["threads"], one, "sync"), ("2 ranks DDP", 2, 1, ddp, "sync")]
    if probe:
        cases.append(("2 ranks no_sync", 2, 1, ddp, "nosync"))
    rows = []
    for name, n_ranks, threads, res, kind in cases:
        step = median(res["times"][kind])
        rows.append({
            "setting": name, "ranks x threads": f"{n_ranks} x {threads}",
            "batch/rank": batch, "steps": f"{warmup}+{len(res['times'][kind]) - warmup}",
            "step_s": step, "cpu_s": median(res["cpu"][kind]),
            "samples_per_s": batch * n_ranks / step,
            "per_sample_ms": 1000 * step / (batch * n_ranks),
            "per-sample / 1 rank": step / (batch * n_ranks) / per_sample_one,
            "others": f"{res['others']:.0%}" if res["others"] is not None else "",
        })
    return rows


def make_notes(spec: dict, one: dict, ddp: dict, rows: list[dict], probe: bool, wall: float,
               load: tuple[float, float]) -> str:
    ratio = rows[1]["per-sample / 1 rank"]
    verdict = "MET" if ratio <= 1.1 else "MISSED"
    check = ddp["check"]
    lines = [
        f"Goal: per-sample time of the 2-rank DDP step <= 1.1 x the single rank's: {verdict} "
        f"({ratio:.2f} x).",
        "",
        f"Correctness: after the first synced step (same initial weights, rank 0 and rank 1 on "
        f"different batches, losses {ddp['losses'][0]:.4g} and {ddp['losses'][1]:.4g}) both "
        f"ranks hold identical parameters (max |rank diff| {check['max_rank_diff']:g} over "
        f"{check['n_params']:,} parameters; max change from the start "
        f"{check['max_change']:.3g}): checked by all_gather, asserted.",
    ]
    if probe:
        sync, nosync = rows[1]["step_s"], rows[2]["step_s"]
        lines += ["", f"All-reduce share: synced {sync:.3f} s vs no_sync {nosync:.3f} s per "
                  f"step, {(sync - nosync) / sync:.0%} of the synced step is the gradient "
                  "all-reduce DDP does not hide behind backward (no_sync steps are a timing "
                  "probe; the ranks' parameters drift apart in them). One all-reduce of all "
                  f"{ddp['params']:,} gradients ({4 * ddp['params'] / 2**20:.2f} MB) in one "
                  f"piece, timed alone after the steps: {1000 * ddp['allreduce_s']:.2f} ms."]
    if one["others"] is not None and one["others"] > 0.1:
        lines[:0] = [f"**Other processes used {one['others']:.0%} of the machine's CPU during "
                     "the run (column `others`): the times are inflated by that competition, "
                     "a 2-thread process more than two 1-thread ones (a thread that loses its "
                     "core stalls the other at every parallel region), so the ratio is not a "
                     "measurement of DDP. Rerun on a quiet machine.**", ""]
    lines += [
        "",
        "On this 2-core machine the 2-rank run uses both cores with one thread each, while the "
        "single rank uses 2 threads: the ratio measures DDP's overhead (gradient all-reduce, "
        "each rank's duplicated per-step work: its optimizer step, graph and Python overhead) "
        "and the single rank's 2-thread efficiency together; a ratio below 1 means two "
        "1-thread processes use the cores better than one 2-thread process.",
        "",
        f"Config {spec['config']}, domain {spec['domain']} ({spec['n_grid']:,} grid points), "
        f"{ddp['params']:,} parameters, float32, batch {spec['batch_size']} per rank (the "
        "2-rank step does 2x the samples). One step = `Trainer._task_loss` (forecast, rollout "
        "1, the config's loss), `backward()`, AdamW of `configure_optimizers()` (no clipping, "
        "no LR schedule). DDP: `DistributedDataParallel` defaults (25 MB buckets, "
        "broadcast_buffers; the Trainer has "
        f"{one['buffers']} buffer elements), gloo over 127.0.0.1, the Trainer called through a "
        "wrapper module whose forward is `_task_loss`. `step_s`: median wall time per timed "
        "step (DDP: the slower rank's); `cpu_s`: CPU time per step (DDP: both ranks "
        "summed); `samples_per_s`: batch x ranks / `step_s`; `per_sample_ms`: `step_s` / "
        "(batch x ranks); `others`: share of the machine's CPU other processes used during "
        "the run (/proc/stat minus this run's processes): above a few percent the times are "
        "inflated by competition for the cores.",
        "",
        f"Command: `.venv/bin/python benchmarks/ddp_step.py {' '.join(sys.argv[1:])}`; whole "
        f"script {wall:.0f} s. Load average at start {load[0]:.2f}, at end {load[1]:.2f}, "
        f"{os.cpu_count()} cores. {platform.platform()}.",
    ]
    return "\n".join(lines)


def parse_steps(text: str) -> tuple[int, int]:
    warmup, _, timed = text.partition("+")
    if not timed or int(warmup) < 1 or int(timed) < 1:
        raise argparse.ArgumentTypeError("--steps W+N with W >= 1 (DDP's first step rebuilds "
                                         "its buckets) and N >= 1, e.g. 3+10")
    return int(warmup), int(timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="demo")
    parser.add_argument("--domain", default="global", help="global or conus (demo)")
    parser.add_argument("--steps", type=parse_steps,
                        help="warm-up+timed steps (default 3+10 for demo, else 1+2)")
    parser.add_argument("--batch-size", type=int, help="per rank (default: the config's)")
    parser.add_argument("--probe", action="store_true",
                        help="add the no_sync steps (the all-reduce share; hangs at the end "
                             "beyond 2 steps)")
    parser.add_argument("--quick", action="store_true",
                        help="print the table without appending it to RESULTS.md")
    parser.add_argument("--child", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return
    warmup, steps = args.steps or DEFAULT_STEPS.get(args.config, FALLBACK_STEPS)
    probe = args.probe
    load_start, wall = os.getloadavg()[0], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ddp-step-") as name:
        tmp = Path(name)
        print(f"{args.config}/{args.domain}: preparing {2 * (warmup + steps)} batches",
              flush=True)
        spec = prepare(args.config, args.domain, args.batch_size, 2 * (warmup + steps), tmp)
        one, ddp = run(spec, warmup, steps, probe, tmp)
    rows = rows_of(spec, one, ddp, warmup, probe)
    wall = time.perf_counter() - wall
    notes = make_notes(spec, one, ddp, rows, probe, wall, (load_start, os.getloadavg()[0]))
    title = f"DDP training step, 2 ranks on CPU (gloo) vs 1 rank ({args.config}/{args.domain})"
    publish(title, rows, notes, args.quick)


if __name__ == "__main__":
    main()
