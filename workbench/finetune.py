"""Aurora-style fine-tuning: LoRA adapters, layer-wise learning rates, a roll-out replay buffer
and clipping of predicted variables.

* LoRA: the backbone's linear layers get low-rank adapters and the whole base is frozen
  (Aurora's roll-out fine-tuning).
* Layer-wise learning rates: optimizer param groups by module-name prefix (Aurora: 1e-3 for
  new patch embeddings, 1e-4 for the rest).
* Replay buffer (Aurora: 20 samples per GPU, refreshed every 10 steps): each step draws a
  sample, predicts the next step and adds the prediction (with its next target) back; every
  ``refresh_every`` steps a fresh dataset sample is added, ejecting the oldest (FIFO).
* Clipping: chosen variables clamped to physical bounds (Aurora clips SO2 predictions).

Name prefixes match whole dotted components: ``processor.layers.1`` matches
``processor.layers.1.mlp`` but not ``processor.layers.10``; the empty prefix matches everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from .config import Flag, NonNegative, Positive, parse, typed
from .errors import WorkbenchError

LORA_NAMES = ("lora_a", "lora_b")
ROLLOUT = "rollout"  # sample key: roll-out depth (0-dim int64 tensor), 0 for dataset samples


def _matches(name: str, prefix: str) -> bool:
    """Whether ``prefix`` is empty or a whole-component prefix of the dotted ``name``."""
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


# --------------------------------------------------------------------------- LoRA


class LoRALinear(nn.Module):
    """base(x) + (alpha / rank) * dropout(x) @ A^T @ B^T with the base frozen; B = 0 at init."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0,
                 dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise WorkbenchError(f"LoRA rank {rank}: use a rank >= 1")
        self.base = base
        self.base.requires_grad_(False)
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        kw = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, **kw))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, **kw))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear's weight
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (self.dropout(x) @ self.lora_a.T @ self.lora_b.T)

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with weight base + scale * B @ A (parameters frozen)."""
        out = nn.Linear(self.base.in_features, self.base.out_features,
                        bias=self.base.bias is not None, device=self.base.weight.device,
                        dtype=self.base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.lora_b @ self.lora_a)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out.requires_grad_(False)


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(module.get_submodule(parent), child, new)


def add_lora(module: nn.Module, rank: int = 8, alpha: float = 16.0,
             include: Sequence[str] = ("",), dropout: float = 0.0) -> list[str]:
    """Wrap every nn.Linear under an ``include`` prefix in LoRALinear (in place), freeze every
    other parameter of ``module`` and return the wrapped layers' names. Subclasses of nn.Linear
    (e.g. nn.MultiheadAttention's out_proj, whose weight is read directly) are left alone."""
    wrapped = {f"{n}.base" for n, m in module.named_modules() if isinstance(m, LoRALinear)}
    names = [name for name, sub in module.named_modules()
             if type(sub) is nn.Linear and name not in wrapped
             and any(_matches(name, p) for p in include)]
    if "" in names:
        raise WorkbenchError("add_lora: the module itself is an nn.Linear: wrap it in a "
                             "container (e.g. nn.Sequential) first")
    if not names:
        top = ", ".join(n for n, _ in module.named_children())
        raise WorkbenchError(f"add_lora: no nn.Linear under {list(include)}: use prefixes of "
                             f"the module names (top level: {top})")
    for name in names:
        _replace(module, name, LoRALinear(module.get_submodule(name), rank, alpha, dropout))
    for name, param in module.named_parameters():
        param.requires_grad_(name.rpartition(".")[2] in LORA_NAMES)
    return names


def lora_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors of ``module``'s state dict (what a fine-tuning run changes)."""
    return {k: v for k, v in module.state_dict().items() if k.rpartition(".")[2] in LORA_NAMES}


def merge_lora(module: nn.Module) -> list[str]:
    """Fold every LoRALinear back into a plain (frozen) nn.Linear in place; the merged names."""
    names = [name for name, sub in module.named_modules() if isinstance(sub, LoRALinear)]
    for name in names:
        _replace(module, name, module.get_submodule(name).merged())
    return names


# --------------------------------------------------------------------------- learning rates


def layerwise_param_groups(model: nn.Module, lrs: Mapping[str, float], default_lr: float,
                           weight_decay: float = 0.0) -> list[dict]:
    """Optimizer param groups: each trainable parameter goes to its longest matching prefix in
    ``lrs`` (whole dotted components), else to the "default" group; frozen ones are skipped."""
    params = list(model.named_parameters())
    for prefix in lrs:
        if not any(_matches(name, prefix) for name, _ in params):
            top = ", ".join(n for n, _ in model.named_children())
            raise WorkbenchError(f"layer_lrs: prefix {prefix!r} matches no parameter: use a "
                                 f"module name (top level: {top})")
    groups: dict[str, list[nn.Parameter]] = {p: [] for p in (*lrs, "default")}
    for name, param in params:
        if param.requires_grad:
            hits = [p for p in lrs if _matches(name, p)]
            groups[max(hits, key=len) if hits else "default"].append(param)
    out = [{"name": key, "params": group, "lr": lrs.get(key, default_lr),
            "weight_decay": weight_decay} for key, group in groups.items() if group]
    if not out:
        raise WorkbenchError("layerwise_param_groups: the model has no trainable parameter: "
                             "unfreeze some (or check add_lora's include prefixes)")
    return out


# --------------------------------------------------------------------------- replay buffer


class ReplayBuffer:
    """Fixed-size FIFO of samples (dicts of tensors) for Aurora-style roll-out training.

    ``draw`` picks a sample uniformly at random and leaves it in the buffer (Aurora draws from
    the buffer); ``add`` appends, ejecting the oldest sample when full. A sample's roll-out
    depth is kept under ``ROLLOUT``. Draws use ``generator`` (whose state is saved by
    ``state_dict``), so a resumed run continues exactly.
    """

    def __init__(self, size: int, refresh_every: int, generator: torch.Generator | None = None):
        if size < 1 or refresh_every < 1:
            raise WorkbenchError(f"replay buffer size {size}, refresh every {refresh_every}: "
                                 f"use positive integers")
        self.size, self.refresh_every = size, refresh_every
        if generator is None:  # seeded from torch's global RNG (follows torch.manual_seed)
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
        self.generator = generator
        self._samples: list[dict[str, torch.Tensor]] = []
        self._added: list[int] = []  # insertion number of each sample, oldest first
        self._count = 0

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: Mapping[str, torch.Tensor]) -> None:
        """Append a sample (ROLLOUT defaults to 0), ejecting the oldest when full."""
        sample = dict(sample)
        sample.setdefault(ROLLOUT, torch.tensor(0))
        if len(self._samples) == self.size:
            del self._samples[0], self._added[0]
        self._samples.append(sample)
        self._added.append(self._count)
        self._count += 1

    def add_rollout(self, prediction: Mapping[str, torch.Tensor], max_rollout: int,
                    fresh: Callable[[], Mapping[str, torch.Tensor]]) -> bool:
        """Add a prediction sample (its ROLLOUT = its parent's + 1) unless it is
        ``max_rollout`` deep; then add ``fresh()`` (a dataset sample) instead. Whether kept."""
        keep = int(prediction[ROLLOUT]) < max_rollout
        self.add(prediction if keep else fresh())
        return keep

    def draw(self) -> dict[str, torch.Tensor]:
        """A sample picked uniformly at random (it stays in the buffer; don't modify it)."""
        if not self._samples:
            raise WorkbenchError("replay buffer is empty: add dataset samples before drawing")
        index = int(torch.randint(len(self._samples), (1,), generator=self.generator,
                                  device=self.generator.device))
        return dict(self._samples[index])

    def needs_refresh(self, step: int) -> bool:
        """Whether a fresh dataset sample is due at this step (every refresh_every steps)."""
        return step % self.refresh_every == 0

    def ages(self) -> list[int]:
        """For each sample, oldest first: how many samples were added after it."""
        return [self._count - 1 - n for n in self._added]

    def state_dict(self) -> dict:
        """Tensors, ints and lists/dicts of them only (loadable with weights_only=True)."""
        return {"size": self.size, "refresh_every": self.refresh_every, "count": self._count,
                "added": list(self._added), "samples": [dict(s) for s in self._samples],
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping) -> None:
        if (state["size"], state["refresh_every"]) != (self.size, self.refresh_every):
            raise WorkbenchError(f"replay buffer state has size {state['size']}, refresh every "
                                 f"{state['refresh_every']}: build the buffer with the same")
        self._samples = [dict(s) for s in state["samples"]]
        self._added = [int(n) for n in state["added"]]
        self._count = int(state["count"])
        self.generator.set_state(state["generator"])


# --------------------------------------------------------------------------- config


Bound = Annotated[float, Field(allow_inf_nan=False)] | None  # a clip side; None: open
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


@typed
@dataclass(frozen=True)
class FineTuneConfig:
    """Fine-tuning options; replay_size 0 turns the replay buffer off.

    ``max_rollout``: a prediction that would be this many steps deep is not added back to the
    buffer; a fresh dataset sample takes its place (Aurora does not bound the depth; we keep
    roll-outs within the data window, which holds targets only so far ahead).
    ``clip``: variable -> (min, max) in physical units, None for an open side.
    """

    layer_lrs: Mapping[str, PositiveFloat] = field(default_factory=dict)
    lora: Flag = False
    lora_rank: Positive = 8
    lora_alpha: PositiveFloat = 16.0
    lora_include: tuple[str, ...] = ("processor",)
    replay_size: NonNegative = 0
    replay_refresh: Positive = 10
    max_rollout: Positive = 4
    clip: Mapping[str, tuple[Bound, Bound]] = field(default_factory=dict)

    def __post_init__(self):
        for name, lr in self.layer_lrs.items():
            if not lr > 0:
                raise WorkbenchError(f"finetune layer_lrs[{name!r}] = {lr}: use a rate > 0")
        if self.lora_rank < 1 or not self.lora_alpha > 0:
            raise WorkbenchError("finetune: use lora_rank >= 1 and lora_alpha > 0")
        if self.replay_size < 0 or self.replay_refresh < 1 or self.max_rollout < 1:
            raise WorkbenchError("finetune: use replay_size >= 0, replay_refresh >= 1 and "
                                 "max_rollout >= 1")
        for name, (lo, hi) in self.clip.items():
            if lo is not None and hi is not None and lo > hi:
                raise WorkbenchError(f"finetune clip {name}: min {lo} > max {hi}: swap them")


def finetune_config_from_dict(raw: Mapping, where: str = "finetune config") -> FineTuneConfig:
    """A FineTuneConfig from a YAML mapping (unknown keys and wrong types are errors);
    ``lora_include`` may name one prefix as a plain string."""
    if isinstance(raw, Mapping) and isinstance(raw.get("lora_include"), str):
        raw = {**raw, "lora_include": [raw["lora_include"]]}
    return parse(FineTuneConfig, raw, where)


# --------------------------------------------------------------------------- clipping


def clip_bounds(variables: Sequence[str], clip: Mapping[str, tuple[float | None, float | None]],
                normalise: Callable[[torch.Tensor], torch.Tensor],
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (lo [V], hi [V]) from physical bounds; -inf / inf where a side is open.
    ``normalise`` must be increasing and take a [V, 1] tensor (e.g. Normaliser.normalise)."""
    unknown = sorted(set(clip) - set(variables))
    if unknown:
        raise WorkbenchError(f"clip: {', '.join(unknown)} not among the predicted variables "
                             f"({', '.join(variables)}): fix the names")
    sides = []
    for side, fill in ((0, -math.inf), (1, math.inf)):
        phys = [clip.get(v, (None, None))[side] for v in variables]
        values = torch.tensor([[0.0 if p is None else p] for p in phys], dtype=torch.float64)
        open_side = torch.tensor([p is None for p in phys])
        normed = normalise(values).reshape(-1).double()
        sides.append(torch.where(open_side, fill, normed).to(dtype))
    lo, hi = sides
    if (lo > hi).any():
        raise WorkbenchError("clip: a normalised min exceeds its max: normalise must be "
                             "increasing and each min <= max")
    return lo, hi


def clip_predictions(pred: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """pred [..., V, G] clamped per variable to [lo, hi]; gradients pass where not clipped."""
    kw = {"dtype": pred.dtype, "device": pred.device}
    return torch.clamp(pred, min=lo.to(**kw).view(-1, 1), max=hi.to(**kw).view(-1, 1))
