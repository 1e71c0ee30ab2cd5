"""Aurora-style fine-tuning: LoRA, layer-wise learning rates, replay buffer, clipping."""

from __future__ import annotations

import io
import math

import pytest
import torch
import yaml
from torch import nn

from workbench import finetune
from workbench.errors import WorkbenchError
from workbench.statistics import FixedScaling, Normaliser, VariableStats


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Net(nn.Module):
    def __init__(self, n_layers: int = 2):
        super().__init__()
        self.encoder = nn.Linear(4, 8)
        self.processor = nn.Module()
        self.processor.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.LayerNorm(8)) for _ in range(n_layers))
        self.decoder = nn.Linear(8, 4)

    def forward(self, x):
        x = self.encoder(x)
        for layer in self.processor.layers:
            x = x + layer(x)
        return self.decoder(x)


def test_lora_linear_known_answer_and_identity_at_init():
    torch.manual_seed(0)
    base = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        base.weight.copy_(torch.eye(2))
    lora = finetune.LoRALinear(base, rank=1, alpha=2.0)
    x = torch.tensor([[1.0, 1.0]])
    assert torch.equal(lora(x), base(x))  # B = 0 at init: exactly the base output
    with torch.no_grad():
        lora.lora_a.copy_(torch.tensor([[1.0, 0.0]]))
        lora.lora_b.copy_(torch.tensor([[1.0], [0.0]]))
    # W + (alpha / r) B A = I + 2 [[1, 0], [0, 0]]
    assert lora(x).tolist() == [[3.0, 1.0]]
    assert not base.weight.requires_grad


def test_training_lora_leaves_the_base_bit_identical():
    torch.manual_seed(1)
    lora = finetune.LoRALinear(nn.Linear(5, 3), rank=2, alpha=4.0)
    before = {k: v.clone() for k, v in lora.base.state_dict().items()}
    trainable = [p for p in lora.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(lora.lora_a), id(lora.lora_b)}
    opt = torch.optim.SGD(trainable, lr=0.1)
    x = torch.randn(16, 5, generator=gen(2))
    lora(x).pow(2).sum().backward()
    opt.step()
    assert all(torch.equal(v, lora.base.state_dict()[k]) for k, v in before.items())
    assert lora.lora_b.abs().sum() > 0 and not torch.equal(lora(x), lora.base(x))


def test_add_lora_wraps_included_linears_and_freezes_the_rest():
    torch.manual_seed(3)
    names = finetune.add_lora(Net(n_layers=12), rank=2, include=("processor.layers.1",))
    assert names == ["processor.layers.1.0"]  # layers.10 and layers.11 are not under layers.1
    x = torch.randn(3, 4, generator=gen(4))
    net = Net()
    out = net(x)
    names = finetune.add_lora(net, rank=2, include=("processor",))
    assert names == ["processor.layers.0.0", "processor.layers.1.0"]
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.{k}" for n in names for k in ("lora_a", "lora_b")}
    assert torch.equal(net(x), out)
    assert set(finetune.lora_state_dict(net)) == trainable
    assert finetune.add_lora(net, include=("",)) == ["encoder", "decoder"]  # bases skipped
    assert all(isinstance(net.get_submodule(n).base, nn.Linear) for n in names)
    with pytest.raises(WorkbenchError, match="top level: encoder, processor, decoder"):
        finetune.add_lora(Net(), include=("proc",))  # whole dotted components only


def test_merge_lora_reproduces_the_adapted_output():
    torch.manual_seed(5)
    net = Net().double()  # float64: the merge is exact algebra, compared to ~1e-12
    finetune.add_lora(net, rank=3, alpha=6.0, include=("",))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("lora_b"):
                p.normal_(generator=gen(6))
    x = torch.randn(7, 4, generator=gen(7), dtype=torch.float64)
    adapted = net(x)
    merged = finetune.merge_lora(net)
    assert len(merged) == 4
    assert not any(isinstance(m, finetune.LoRALinear) for m in net.modules())
    assert type(net.processor.layers[0][0]) is nn.Linear
    torch.testing.assert_close(net(x), adapted, rtol=1e-12, atol=1e-12)
    assert net.processor.layers[0][0].weight.dtype == torch.float64
    assert finetune.lora_state_dict(net) == {}


def test_layerwise_param_groups_longest_prefix_wins():
    net = Net(n_layers=12)
    net.decoder.requires_grad_(False)
    lrs = {"encoder": 1e-3, "processor.layers.1": 5e-4, "processor": 2e-4}
    groups = finetune.layerwise_param_groups(net, lrs, default_lr=1e-4, weight_decay=0.1)
    table = {g["name"]: (len(g["params"]), g["lr"]) for g in groups}
    # layers.1: weight, bias and LayerNorm weight, bias; the 11 other layers: 4 each
    assert table == {"encoder": (2, 1e-3), "processor.layers.1": (4, 5e-4),
                     "processor": (44, 2e-4)}  # decoder frozen: no default group
    net.decoder.requires_grad_(True)
    groups = finetune.layerwise_param_groups(net, lrs, default_lr=1e-4)
    assert [(g["name"], len(g["params"]), g["lr"]) for g in groups][-1] == ("default", 2, 1e-4)
    opt = torch.optim.AdamW(groups)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 5e-4, 2e-4, 1e-4]
    with pytest.raises(WorkbenchError, match="'head'.*top level: encoder, processor, decoder"):
        finetune.layerwise_param_groups(net, {"head": 1e-3}, default_lr=1e-4)


def sample(i: int) -> dict[str, torch.Tensor]:
    return {"x": torch.tensor(float(i)), "y": torch.tensor(float(i + 1))}


def contents(buffer: finetune.ReplayBuffer) -> list[float]:
    return [s["x"].item() for s in buffer._samples]


def test_replay_buffer_is_fifo_with_constant_size():
    buffer = finetune.ReplayBuffer(size=3, refresh_every=10, generator=gen())
    for i in range(3):
        buffer.add(sample(i))
    assert contents(buffer) == [0, 1, 2] and buffer.ages() == [2, 1, 0]
    for i in range(3, 7):
        buffer.add(sample(i))
        assert len(buffer) == 3
        assert contents(buffer) == [i - 2, i - 1, i]  # the oldest went first
    assert buffer.ages() == [2, 1, 0]
    assert [s for s in range(31) if buffer.needs_refresh(s)] == [0, 10, 20, 30]
    with pytest.raises(WorkbenchError):
        finetune.ReplayBuffer(size=0, refresh_every=10)
    with pytest.raises(WorkbenchError, match="empty"):
        finetune.ReplayBuffer(size=3, refresh_every=10).draw()


def test_replay_draws_are_uniform_and_reproducible():
    buffers = [finetune.ReplayBuffer(4, 10, generator=gen(8)) for _ in range(2)]
    for buffer in buffers:
        for i in range(4):
            buffer.add(sample(i))
    draws = [[b.draw()["x"].item() for _ in range(4000)] for b in buffers]
    assert draws[0] == draws[1]
    assert len(buffers[0]) == 4  # drawing does not remove
    counts = [draws[0].count(float(i)) for i in range(4)]
    sd = math.sqrt(4000 * 0.25 * 0.75)  # binomial: ~27
    assert all(abs(c - 1000) < 4 * sd for c in counts)


def test_replay_state_dict_round_trip_continues_exactly():
    buffer = finetune.ReplayBuffer(5, 10, generator=gen(9))
    for i in range(7):
        buffer.add(sample(i))
    [buffer.draw() for _ in range(3)]
    blob = io.BytesIO()
    torch.save(buffer.state_dict(), blob)
    blob.seek(0)
    resumed = finetune.ReplayBuffer(5, 10, generator=gen(123))
    resumed.load_state_dict(torch.load(blob, weights_only=True))  # tensors and ints only
    for run in (buffer, resumed):
        run.add(sample(7))
    assert contents(resumed) == contents(buffer) == [3, 4, 5, 6, 7]
    assert resumed.ages() == buffer.ages()
    assert [resumed.draw()["x"].item() for _ in range(20)] == \
        [buffer.draw()["x"].item() for _ in range(20)]
    with pytest.raises(WorkbenchError, match="size 5"):
        finetune.ReplayBuffer(4, 10).load_state_dict(buffer.state_dict())


def test_aurora_rollout_loop_keeps_depth_within_max_rollout():
    # a toy Aurora loop: the "model" adds 1, the dataset sample i has target i + 1
    buffer = finetune.ReplayBuffer(4, refresh_every=3, generator=gen(10))
    data = iter(range(1000, 2000))
    for _ in range(4):
        buffer.add(sample(next(data)))
    depths, kept = [], []
    for step in range(1, 60):
        if buffer.needs_refresh(step):
            buffer.add(sample(next(data)))
        drawn = buffer.draw()
        pred = drawn["x"] + 1
        assert pred == drawn["y"]
        nxt = {"x": pred, "y": pred + 1, finetune.ROLLOUT: drawn[finetune.ROLLOUT] + 1}
        kept.append(buffer.add_rollout(nxt, max_rollout=2, fresh=lambda: sample(next(data))))
        depths += [int(s[finetune.ROLLOUT]) for s in buffer._samples]
        assert len(buffer) == 4
    assert max(depths) == 1 and any(kept) and not all(kept)


def test_finetune_config_from_yaml():
    raw = yaml.safe_load("""
layer_lrs: {encoder: 1e-3, processor: 1.0e-4}
lora: true
lora_include: processor
replay_size: 20
clip: {tp: [0, null], t2m: [150, 350]}
""")
    assert raw["layer_lrs"]["encoder"] == "1e-3"  # PyYAML reads 1e-3 as a string
    config = finetune.finetune_config_from_dict(raw)
    assert config.layer_lrs == {"encoder": 1e-3, "processor": 1e-4}
    assert config.lora_include == ("processor",) and config.replay_refresh == 10
    assert config.clip == {"tp": (0.0, None), "t2m": (150.0, 350.0)}
    for bad, match in (({"replay": 20}, "unknown key 'replay'"),
                       ({"clip": {"tp": [1, 0]}}, "swap"),
                       ({"clip": {"tp": 0}}, r"clip.tp: should be a valid tuple, got 0"),
                       ({"layer_lrs": {"encoder": "fast"}},
                        "layer_lrs.encoder: should be a valid number.*got 'fast'"),
                       ({"replay_size": 2.5}, "replay_size: should be a valid integer"),
                       ({"lora": "yes"}, "lora: should be a valid boolean, got 'yes'")):
        with pytest.raises(WorkbenchError, match=match):
            finetune.finetune_config_from_dict(bad)


@pytest.fixture
def normaliser() -> Normaliser:
    stats = {"t2m": VariableStats(mean=280.0, std=10.0, min=200.0, max=320.0, diff_std=1.0)}
    fixed = {"tp": FixedScaling(transform="log1p", offset=0.5, scale=2.0, unit=0.001)}
    return Normaliser(["t2m", "tp"], stats, fixed)


def test_clip_bounds_through_a_real_normaliser(normaliser):
    clip = {"t2m": (200.0, 330.0), "tp": (0.0, None)}
    lo, hi = finetune.clip_bounds(["t2m", "tp"], clip, normaliser.normalise)
    # t2m: (200 - 280) / 10, (330 - 280) / 10; tp: (log1p(0) - 0.5) / 2, open
    assert lo.tolist() == [-8.0, -0.25] and hi.tolist() == [5.0, math.inf]
    assert lo.dtype == torch.float32
    pred = 10 * torch.randn((8, 2, 50), generator=gen(11))
    assert (normaliser.denormalise(pred)[:, 1] < 0).any()  # negative rain before clipping
    phys = normaliser.denormalise(finetune.clip_predictions(pred, lo, hi))
    assert (phys[:, 1] >= 0).all()
    ulp = 330 * 2.0**-23  # float32 rounding at 330 K
    assert phys[:, 0].min() >= 200 - ulp and phys[:, 0].max() <= 330 + ulp
    assert (phys[:, 0] <= 200 + ulp).any() and (phys[:, 0] >= 330 - ulp).any()
    with pytest.raises(WorkbenchError, match="sst not among"):
        finetune.clip_bounds(["t2m", "tp"], {"sst": (None, 300.0)}, normaliser.normalise)


def test_clip_predictions_passes_gradients_where_not_clipped():
    pred = torch.tensor([[[-2.0, 0.5, 3.0], [-2.0, 0.5, 3.0]]], requires_grad=True)  # [1, 2, 3]
    lo, hi = torch.tensor([-1.0, -math.inf]), torch.tensor([1.0, math.inf])
    out = finetune.clip_predictions(pred, lo, hi)
    assert out.detach().tolist() == [[[-1.0, 0.5, 1.0], [-2.0, 0.5, 3.0]]]
    out.sum().backward()
    assert pred.grad.tolist() == [[[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]]
