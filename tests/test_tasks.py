"""AtmoRep-style training strategies on graph nodes: BERT masking, forecast, interpolation."""

from __future__ import annotations

import math

import pytest
import torch

from workbench import tasks
from workbench.errors import WorkbenchError

B, T, V, G, PATCH = 512, 4, 3, 32, 4  # 8 patches of 4 nodes: 32 tokens per (entry, variable)
PATCH_ID = torch.arange(G) // PATCH


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return 3.0 + torch.rand((B, T, V, G), generator=gen(123))  # in [3, 4): never 0 or noise-like


def token_view(t: torch.Tensor) -> torch.Tensor:
    return t.view(B, T, V, G // PATCH, PATCH)


def treatments(x, x_in, mask):
    """Per selected token: which treatment it got, read from the values alone."""
    xt, it = token_view(x), token_view(x_in)
    selected = token_view(mask).all(-1)
    masked = (it == 0).all(-1)
    unchanged = (it == xt).all(-1)
    multires = torch.isclose(it, xt.mean(-1, keepdim=True)).all(-1) & ~unchanged
    noised = ~(masked | unchanged | multires)
    return {k: v[selected] for k, v in
            {"masked": masked, "noised": noised, "multires": multires,
             "unchanged": unchanged}.items()}


def test_fixed_total_rate_selects_exactly_ceil_rate_times_tokens(x):
    for rate, expect in ((0.5, 16), (0.3, math.ceil(32 * 0.3))):
        config = tasks.MaskingConfig(total_rate=rate, randomise_total=False)
        _, mask = tasks.bert_mask(x, config, gen(), PATCH_ID)
        tokens = token_view(mask).all(-1)
        assert (token_view(mask).any(-1) == tokens).all()  # a patch is all in or all out
        per_entry = tokens.sum(dim=(1, 3))  # [B, V]: exact, like AtmoRep's permutation
        assert (per_entry == expect).all()


def test_randomised_total_rate_matches_atmorep_expectation():
    # AtmoRep: rate = U(0,1) * total per entry and field, ceil(N * rate) tokens. With N = 32
    # and total 0.5 the count ceil(16 U) is uniform on 1..16: mean fraction 8.5 / 32.
    n, v = 4096, 2
    x = torch.ones((n, 4, v, 8))
    _, mask = tasks.bert_mask(x, tasks.MaskingConfig(), gen(1))
    fraction = mask.float().mean(dim=(1, 3))  # [n, v]
    assert set(torch.unique(fraction * 32).long().tolist()) == set(range(1, 17))
    sd = math.sqrt((16**2 - 1) / 12) / 32 / math.sqrt(n * v)  # std error of the mean
    assert abs(fraction.mean().item() - 8.5 / 32) < 4 * sd


def test_selected_tokens_split_between_treatments_as_configured(x):
    config = tasks.MaskingConfig(total_rate=0.5, rate_masking=0.7, rate_noising=0.1,
                                 rate_multires=0.1, randomise_total=False)
    x_in, mask = tasks.bert_mask(x, config, gen(2), PATCH_ID)
    assert torch.equal(x_in[~mask], x[~mask])  # tokens not selected are untouched
    kinds = treatments(x, x_in, mask)
    n = kinds["masked"].numel()
    assert n == B * V * 16
    assert (sum(k.long() for k in kinds.values()) == 1).all()  # exactly one treatment each
    for name, p in (("masked", 0.7), ("noised", 0.1), ("multires", 0.1), ("unchanged", 0.1)):
        se = math.sqrt(p * (1 - p) / n)  # binomial standard error, ~0.002-0.003 here
        assert abs(kinds[name].float().mean().item() - p) < 4 * se, name


def test_noised_tokens_are_gaussian_with_noise_std(x):
    config = tasks.MaskingConfig(rate_masking=0.0, rate_noising=1.0, rate_multires=0.0,
                                 noise_std=2.0, randomise_total=False)
    x_in, mask = tasks.bert_mask(x, config, gen(3), PATCH_ID)
    values = x_in[mask].double()
    n = values.numel()
    assert n == B * V * 16 * PATCH
    assert abs(values.mean().item()) < 4 * 2.0 / math.sqrt(n)
    assert abs(values.std().item() - 2.0) < 4 * 2.0 / math.sqrt(2 * n)


def test_multires_tokens_equal_their_patch_mean(x):
    config = tasks.MaskingConfig(rate_masking=0.0, rate_noising=0.0, rate_multires=1.0,
                                 randomise_total=False)
    x_in, mask = tasks.bert_mask(x, config, gen(4), PATCH_ID)
    means = token_view(x).mean(-1, keepdim=True).expand(-1, -1, -1, -1, PATCH).reshape(x.shape)
    torch.testing.assert_close(x_in[mask], means[mask])
    assert torch.equal(x_in[~mask], x[~mask])


def test_coarsen_uses_chunks_of_r_squared_nodes_within_a_patch():
    x = torch.arange(8.0)
    assert tasks.coarsen(x, torch.zeros(8, dtype=torch.long), 2).tolist() == [1.5] * 4 + [5.5] * 4
    interleaved = torch.arange(8) % 2  # patch 0: nodes 0 2 4 6, patch 1: nodes 1 3 5 7
    assert tasks.coarsen(x, interleaved, 2).tolist() == [3.0, 4.0] * 4
    assert tasks.coarsen(x, interleaved, 3).tolist() == [3.0, 4.0] * 4  # r*r > patch: its mean


def test_patch_nodes_share_one_token_decision():
    patch_id = torch.randperm(G, generator=gen(5)) % 8  # patches scattered over the node order
    x = torch.randn((16, T, V, G), generator=gen(6))
    _, mask = tasks.bert_mask(x, tasks.MaskingConfig(), gen(7), patch_id)
    for p in range(8):
        nodes = mask[..., patch_id == p]
        assert (nodes == nodes[..., :1]).all()


def test_synced_fields_share_masks_and_treatments(x):
    synced = tasks.MaskingConfig(synced_fields=True, noise_std=0.5)
    x_in, mask = tasks.bert_mask(x, synced, gen(8), PATCH_ID)
    zero = x_in == 0
    for v in range(1, V):
        assert torch.equal(mask[:, :, v], mask[:, :, 0])
        assert torch.equal(zero[:, :, v], zero[:, :, 0])
    _, mask = tasks.bert_mask(x, tasks.MaskingConfig(), gen(8), PATCH_ID)
    assert not torch.equal(mask[:, :, 1], mask[:, :, 0])


def test_seeded_generator_is_reproducible(x):
    config = tasks.MaskingConfig()
    a = tasks.bert_mask(x, config, gen(9), PATCH_ID)
    b = tasks.bert_mask(x, config, gen(9), PATCH_ID)
    c = tasks.bert_mask(x, config, gen(10), PATCH_ID)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_masking_config_validation():
    tasks.MaskingConfig()  # 0.9 + 0.05 + 0.05 is 1.0000000000000002 in floats: accepted
    for bad in ({"total_rate": 1.5}, {"rate_noising": -0.1}, {"rate_masking": 0.95},
                {"mr_max": 1}, {"noise_std": 0.0}):
        with pytest.raises(WorkbenchError):
            tasks.MaskingConfig(**bad)
    config = tasks.masking_config_from_dict({"total_rate": 1, "synced_fields": True,
                                             "rate_noising": "5e-2"})  # as PyYAML reads 5e-2
    assert config.total_rate == 1.0 and config.synced_fields and config.randomise_total
    assert config.rate_noising == 0.05
    with pytest.raises(WorkbenchError, match="unknown key 'rate'"):
        tasks.masking_config_from_dict({"rate": 0.5})
    with pytest.raises(WorkbenchError, match="mr_max"):
        tasks.masking_config_from_dict({"mr_max": 2.5})


def test_forecast_and_interpolation_masks_are_exact():
    mask = tasks.forecast_mask((2, 5, 3, 4), 2)
    assert mask[:, 3:].all() and not mask[:, :3].any()
    assert tasks.interpolation_mask((2, 5, 3, 4))[0, :, 0, 0].tolist() == [0, 0, 1, 0, 0]
    assert tasks.interpolation_mask((1, 4, 1, 1)).flatten().tolist() == [0, 0, 1, 0]  # T // 2
    assert tasks.interpolation_mask((1, 6, 1, 1), 2).flatten().tolist() == [0, 0, 1, 1, 0, 0]
    assert tasks.interpolation_mask((1, 5, 1, 1), 3).flatten().tolist() == [0, 1, 1, 1, 0]
    for call in (lambda: tasks.forecast_mask((1, 3, 1, 1), 3),
                 lambda: tasks.forecast_mask((1, 3, 1, 1), 0),
                 lambda: tasks.interpolation_mask((1, 2, 1, 1)),
                 lambda: tasks.interpolation_mask((1, 4, 1, 1), 3)):
        with pytest.raises(WorkbenchError):
            call()


def test_apply_mask_returns_a_masked_copy():
    x = torch.randn((2, 5, 3, 4), generator=gen(11))
    before = x.clone()
    mask = tasks.forecast_mask(x.shape, 1)
    out = tasks.apply_mask(x, mask, value=-1.0)
    assert (out[mask] == -1.0).all() and torch.equal(out[~mask], x[~mask])
    assert torch.equal(x, before)


def test_overwrite_boundary_is_exact_and_keeps_gradients_inside():
    pred = torch.randn((2, 3, 6), generator=gen(12), requires_grad=True)
    truth = torch.randn((2, 3, 6), generator=gen(13))
    boundary = torch.tensor([True, False, False, True, False, True])
    before = pred.detach().clone()
    out = tasks.overwrite_boundary(pred, truth, boundary)
    assert torch.equal(out[..., boundary], truth[..., boundary])
    assert torch.equal(out[..., ~boundary], before[..., ~boundary])
    assert torch.equal(pred.detach(), before)
    (2 * out).sum().backward()
    assert (pred.grad[..., boundary] == 0).all() and (pred.grad[..., ~boundary] == 2).all()
    with pytest.raises(WorkbenchError):
        tasks.overwrite_boundary(pred, truth, boundary[:5])


def test_strategies():
    assert tasks.STRATEGIES == ("forecast", "bert", "interpolation")
