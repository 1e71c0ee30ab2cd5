"""Where a training step's time goes, by top-level part of the model (``train_step.py
--profile``): forward, backward (activation recomputation included) and the optimizer.

Forward: module hooks time each part's call (a call during the backward, a checkpoint's
recomputation where hooks fire for it, is left to the backward's figures).
Backward: each part's output passes through an identity autograd function whose backward
notes the time the gradient reaches that output; a part's backward is the time from that
moment to the next such moment (or to the end of the backward). The autograd engine runs the
parts' backwards in reverse order of their forwards, so these segments split the backward
between the parts; the segment before the first mark (the loss's backward) is ``rest``.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import torch


class _Mark(torch.autograd.Function):
    """Identity; its backward tells the clock that the gradient reached a part's output."""

    @staticmethod
    def forward(ctx, x, clock, part):
        ctx.clock, ctx.part = clock, part
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.clock.reached(ctx.part)
        return grad, None, None


class PartClock:
    """Hooks on the modules of ``parts`` (part name -> qualified module names) that time one
    step's forward and backward by part; ``sync`` waits for the device (CUDA) before a time
    is taken."""

    def __init__(self, model: torch.nn.Module, parts: dict[str, list[str]], sync=None):
        self.sync = sync or (lambda: None)
        self.in_backward = False
        self.forward = defaultdict(float)
        self.marks: dict[str, float] = {}
        self._starts: list[float] = []  # a stack: parts do not nest, hooks may
        modules = dict(model.named_modules())
        for part, names in parts.items():
            for name in names:
                module = modules[name]
                module.register_forward_pre_hook(self._begin)
                module.register_forward_hook(lambda m, a, out, part=part: self._end(part, out))

    def now(self) -> float:
        self.sync()
        return time.perf_counter()

    def _begin(self, module, args) -> None:
        self._starts.append(self.now())

    def _end(self, part: str, out):
        elapsed = self.now() - self._starts.pop()
        if self.in_backward:  # a checkpointed part recomputing its forward
            return out
        self.forward[part] += elapsed
        if isinstance(out, torch.Tensor):
            return self._mark(out, part)
        if isinstance(out, tuple):
            return tuple(self._mark(o, part) if isinstance(o, torch.Tensor) else o for o in out)
        return out

    def _mark(self, x: torch.Tensor, part: str) -> torch.Tensor:
        return _Mark.apply(x, self, part) if x.requires_grad else x

    def reached(self, part: str) -> None:
        # the last of its outputs to get its gradient: a part that also passes a tensor on
        # as a skip (anemoi's encoder returns the data nodes' latent, which its decoder
        # reads) gets that one's gradient early, during a later part's backward
        self.marks[part] = self.now()

    def step(self, loss_of, optimizer, index: int) -> tuple[float, dict]:
        """One training step, timed by part: (loss, {forward, backward, optimizer, parts})."""
        self.forward.clear()
        self.marks.clear()
        self.in_backward = False
        start = self.now()
        loss = loss_of(index)
        forward_end = self.now()
        self.in_backward = True
        loss.backward()
        backward_end = self.now()
        self.in_backward = False
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        end = self.now()
        order = sorted(self.marks.items(), key=lambda item: item[1])
        backward = {part: (order[i + 1][1] if i + 1 < len(order) else backward_end) - t
                    for i, (part, t) in enumerate(order)}
        forward_total, backward_total = forward_end - start, backward_end - forward_end
        parts = {part: {"forward": self.forward.get(part, 0.0),
                        "backward": backward.get(part, 0.0)}
                 for part in dict.fromkeys([*self.forward, *backward])}
        parts["rest"] = {"forward": forward_total - sum(self.forward.values()),
                         "backward": backward_total - sum(backward.values())}
        return float(loss.detach()), {
            "step": end - start, "forward": forward_total, "backward": backward_total,
            "optimizer": end - backward_end, "parts": parts}


def median_profile(profiles: list[dict]) -> dict:
    """The per-key median of the timed steps' profiles."""
    def med(get):
        return statistics.median(get(p) for p in profiles)

    out = {key: med(lambda p, key=key: p[key])
           for key in ("step", "forward", "backward", "optimizer")}
    out["parts"] = {part: {kind: med(lambda p, part=part, kind=kind: p["parts"][part][kind])
                           for kind in ("forward", "backward")}
                    for part in profiles[0]["parts"]}
    return out


#: the table's part columns: workbench's embeddings and output layer are one column (anemoi's
#: are inside its encoder and decoder)
COLUMNS = {"encoder": ("encoder",), "processor": ("processor",), "decoder": ("decoder",),
           "embed+output": ("data_embed", "hidden_embed", "output"), "rest": ("rest",)}


def profile_row(spec: dict, impl: str, res: dict) -> dict:
    """A row of the --profile table: seconds forward / backward by part."""
    row = {"config": spec["config"], "domain": spec["domain"], "impl": impl}
    if "error" in res:
        return {**row, "step_s": res["error"]}
    prof = res["profile"]
    row.update({"step_s": f"{prof['step']:.3g}", "forward_s": f"{prof['forward']:.3g}",
                "backward_s": f"{prof['backward']:.3g}",
                "optimizer_s": f"{prof['optimizer']:.3g}"})
    for column, names in COLUMNS.items():
        found = [prof["parts"][n] for n in names if n in prof["parts"]]
        row[f"{column} fwd/bwd"] = (
            f"{sum(f['forward'] for f in found):.3g} / {sum(f['backward'] for f in found):.3g}"
            if found else "")
    return row


NOTES = (
    "Seconds of one training step by part of the model (median of the timed steps): "
    "`forward_s` (forward and loss), `backward_s` (activation recomputation of checkpointed "
    "parts included), `optimizer_s` (AdamW step and zeroing the gradients). Part columns are `forward / "
    "backward` seconds: forward from module hooks around each part's call; backward from the "
    "moment the gradient reaches the part's output (the last of its outputs, where it returns "
    "several: anemoi's encoder also returns the data nodes' latent for its decoder) to the "
    "moment it reaches the next part's output (the autograd engine runs the parts' backwards in reverse order), so each part's "
    "backward holds its recomputation, and the loss's backward is in `rest`. workbench: "
    "`encoder`/`processor`/`decoder` are its mappers and processor, `embed+output` its data "
    "and hidden node embeddings and output layer; anemoi: its encoder holds its data "
    "embedding and its decoder its output extractor. `rest` forward: building the node "
    "inputs, the loss and the LAM boundary overwrite. The hooks synchronise and add a little "
    "time of their own (compare `step_s` with the timing table's).")
