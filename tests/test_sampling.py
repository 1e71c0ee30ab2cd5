"""Statistics, normaliser and the multi-domain sampler on the embedded datasets."""

from __future__ import annotations

import collections
import dataclasses
import os
import warnings

import numpy as np
import pytest
import torch

from workbench import catalog, sampling, statistics
from workbench.errors import WorkbenchError

TRAIN = ("2020-01-01", "2020-02-29T18:00")


@pytest.fixture(scope="module")
def conus():
    return catalog.open_dataset("conus")


@pytest.fixture(scope="module")
def module():
    dm = sampling.MultiDomainDataModule("demo")
    dm.setup()
    return dm


def test_statistics_against_numpy(conus, tmp_path):
    stats = statistics.compute_statistics(conus, ["t2m", "tp", "orog"], *TRAIN)
    t2m = conus["t2m"].sel(time=slice(*TRAIN)).values.astype(np.float64)
    assert stats["t2m"].mean == pytest.approx(t2m.mean(), rel=1e-5)
    assert stats["t2m"].std == pytest.approx(t2m.std(), rel=1e-4)
    assert stats["t2m"].min == pytest.approx(t2m.min()) and stats["t2m"].max == pytest.approx(t2m.max())
    assert stats["t2m"].diff_std == pytest.approx(np.diff(t2m, axis=0).std(), rel=1e-4)
    assert stats["orog"].diff_std is None and stats["tp"].min == 0.0
    first = statistics.load_or_compute(conus, "conus", ["t2m"], *TRAIN, cache=tmp_path)
    (path,) = (tmp_path / "statistics").iterdir()
    assert "conus" in path.name and "2020-01-01" in path.name
    mtime = os.stat(path).st_mtime_ns
    again = statistics.load_or_compute(conus, "conus", ["t2m"], *TRAIN, cache=tmp_path)
    assert again == first and os.stat(path).st_mtime_ns == mtime


def test_normaliser_round_trip_and_fixed_log1p():
    stats = {"a": statistics.VariableStats(10.0, 2.0, 0, 20, 1.0)}
    fixed = {"tp": statistics.FixedScaling(transform="log1p", unit=0.001)}
    norm = statistics.Normaliser(["a", "tp"], stats, fixed)
    x = torch.tensor([[[12.0, 8.0], [0.002, 0.0]]])  # [time, variable, grid]
    y = norm.normalise(x)
    torch.testing.assert_close(y[0, 0], torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(y[0, 1], torch.log1p(torch.tensor([2.0, 0.0])))
    torch.testing.assert_close(norm.denormalise(y), x)


def test_zero_variance_warns_and_centres():
    stats = {"c": statistics.VariableStats(5.0, 0.0, 5.0, 5.0, 0.0)}
    with pytest.warns(UserWarning, match="c has zero variance"):
        norm = statistics.Normaliser(["c"], stats)
    assert torch.all(norm.normalise(torch.full((1, 1, 3), 5.0)) == 0)


def test_batches_have_one_domain_and_the_right_layout(module):
    cfg = module.config
    conus_batch = None
    for batch in module.train_dataloader():
        d = module.domains[batch["domain_index"]]
        assert batch["domain"] == d.name
        assert batch["x"].shape == (cfg.batch_size, 1, len(cfg.variables), d.n_grid)
        assert batch["y"].shape == (cfg.batch_size, 1, len(cfg.variables), d.n_grid)
        assert batch["forcings"].shape == (cfg.batch_size, 2, 1, d.n_grid)
        assert batch["statics"].shape == (2, d.n_grid)
        step = np.diff(batch["times"].numpy(), axis=1)
        assert np.all(step == 6 * 3600 * 10**9)
        if batch["domain"] == "conus":
            conus_batch = batch
    # the target is the next time step of the same field, normalised alike
    assert conus_batch is not None
    ds, t0 = module.domains[1].ds, int(conus_batch["t0"][0])
    raw = torch.tensor(ds["t2m"].isel(time=t0 + 1).values)
    norm = module.domains[1].normalisers["variables"]
    i = list(module.config.variables).index("t2m")
    expect = (raw - norm.offset[i].float()) / norm.scale[i].float()
    torch.testing.assert_close(conus_batch["y"][0, 0, i], expect, rtol=1e-5, atol=1e-5)


def test_domain_shares_follow_weights():
    """4000 batches at weights 3:1: the share of the first domain is 0.75 +- 0.03.

    The binomial std of the share is sqrt(0.75 * 0.25 / 4000) = 0.0068; 0.03 is 4.4 std.
    """
    sampler = sampling.MultiDomainBatchSampler([np.arange(100), np.arange(50)], 4,
                                               weights=[3, 1], batches_per_epoch=4000, seed=1)
    domains = [batch[0][0] for batch in sampler]
    assert len(domains) == 4000
    assert abs(np.mean(np.array(domains) == 0) - 0.75) < 0.03
    for batch in sampler:
        assert len({d for d, _ in batch}) == 1 and len(batch) == 4


def test_size_weighting_sees_every_sample_once_per_epoch():
    samples = [np.arange(10, 47), np.arange(5, 28)]
    sampler = sampling.MultiDomainBatchSampler(samples, 4, seed=3)
    seen = [pair for batch in sampler for pair in batch]
    assert sorted(seen) == sorted((d, int(t)) for d, s in enumerate(samples) for t in s)
    first = list(sampler)
    assert list(sampler) == first  # reproducible from the seed
    sampler.set_epoch(1)
    assert list(sampler) != first  # a new order each epoch
    ranks = [list(sampling.MultiDomainBatchSampler(samples, 4, seed=3, rank=r, world_size=2))
             for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(first)  # DDP ranks split the batches
    assert not {tuple(b) for b in ranks[0]} & {tuple(b) for b in ranks[1]}


def test_split_boundaries(module):
    for domain in module.domains:
        times = domain.times
        for split, (start, end) in module.config.splits.items():
            t0 = domain.samples(split)
            first, last = times[t0[0]], times[t0[-1] + domain.window - 1]
            assert first == np.datetime64(start) and last == np.datetime64(end)
            before = times[t0[0] - 1] if t0[0] > 0 else None
            assert before is None or before < np.datetime64(start)
        train, val = domain.samples("train"), domain.samples("val")
        assert train[-1] + domain.window - 1 < val[0]  # no window crosses into val


@pytest.mark.parametrize("workers", [0, 2])
def test_workers_read_each_sample_once(workers):
    config = dataclasses.replace(sampling.load_sampling_config("demo"), num_workers=workers,
                                 domain_weighting="size", batch_size=8)
    dm = sampling.MultiDomainDataModule(config)
    seen = collections.Counter()
    for batch in dm.val_dataloader():
        seen.update((batch["domain"], int(t)) for t in batch["t0"])
    expected = {(d.name, int(t)) for d in dm.domains for t in d.samples("val")}
    assert set(seen) == expected and max(seen.values()) == 1


def test_bad_sampling_input(tmp_path):
    base = {"name": "x", "domains": [{"name": "g", "dataset": "global"}],
            "variables": ["t2m"], "splits": {"train": ["2020-01-01", "2020-01-31"]}}
    bad_weight = {**base, "domains": [{"name": "g", "dataset": "global", "weight": 0}]}
    with pytest.raises(WorkbenchError, match=r"domains\[0\].weight: should be greater than 0, "
                                             "got 0"):
        sampling.sampling_config_from_dict(bad_weight)
    with pytest.raises(WorkbenchError, match="unknown key 'batchsize'"):
        sampling.sampling_config_from_dict({**base, "batchsize": 3})
    empty = sampling.sampling_config_from_dict(
        {**base, "splits": {"train": ["2021-01-01", "2021-01-31"]}})
    with pytest.raises(WorkbenchError, match="holds 0 time steps"):
        sampling.DomainData(empty, empty.domains[0])
    with pytest.raises(WorkbenchError, match="unknown split 'dev'"):
        sampling.sampling_config_from_dict({**base, "splits": {"dev": ["2020-01-01", "2020-01-31"]}})
    overlap = {**base, "splits": {"train": ["2020-01-01", "2020-01-31"],
                                  "val": ["2020-01-31", "2020-02-10"]}}  # shares 01-31 00 UTC
    with pytest.raises(WorkbenchError, match="splits train .* and val .* overlap"):
        sampling.sampling_config_from_dict(overlap)
    own = {**base, "domains": [{"name": "g", "dataset": "global", "splits": {
        "train": ["2020-01-01", "2020-01-31"], "test": ["2020-01-15", "2020-02-10"]}}]}
    with pytest.raises(WorkbenchError, match="domain 'g': splits train .* and test .* overlap"):
        sampling.sampling_config_from_dict(own)
    with pytest.raises(WorkbenchError, match="is not two dates"):
        sampling.sampling_config_from_dict({**base, "splits": {"train": ["soon", "later"]}})
    with pytest.raises(WorkbenchError, match=r"splits.train: should be a valid tuple, got "
                                             "'2020-01-01'"):
        sampling.sampling_config_from_dict({**base, "splits": {"train": "2020-01-01"}})
    missing = sampling.sampling_config_from_dict({**base, "variables": ["q700"]})
    with pytest.raises(WorkbenchError, match="lacks"):
        sampling.DomainData(missing, missing.domains[0])


def test_no_unexpected_warnings(module):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        next(iter(module.val_dataloader()))


def test_aurora_sources_same_or_mixed_per_batch(tmp_path, monkeypatch):
    """Two analyses of one domain (the world with seeds 0 and 1): with same_source every batch
    takes input and target from one of them; without, the target's source is drawn apart."""
    text = (catalog.PROJECT_CATALOG / "conus.yaml").read_text()
    (tmp_path / "conus-b.yaml").write_text(
        text.replace("name: conus", "name: conus-b").replace("seed: 0", "seed: 1"))
    monkeypatch.setenv("WORKBENCH_CATALOG", str(tmp_path))
    raw = {"name": "x", "variables": ["t2m"], "batch_size": 3,
           "splits": {"val": ["2020-03-01", "2020-03-15T18:00"]},
           "domains": [{"name": "conus", "dataset": "conus", "sources": ["conus-b"]}]}
    data = {n: catalog.open_dataset(n)["t2m"].values for n in ("conus", "conus-b")}
    pairs = collections.Counter()
    for same in (True, False):
        dm = sampling.MultiDomainDataModule(
            sampling.sampling_config_from_dict({**raw, "same_source": same}))
        for batch in dm.val_dataloader():
            domain = dm.domains[0]
            src_in, src_out = batch["source_input"], batch["source_target"]
            pairs[(same, src_in == src_out)] += 1
            t0 = int(batch["t0"][0])
            norm_in, norm_out = (domain.source_normaliser(domain.source_names.index(s))
                                 for s in (src_in, src_out))  # each source its own
            x = norm_in.denormalise(batch["x"][0])[0, 0].numpy()
            y = norm_out.denormalise(batch["y"][0])[0, 0].numpy()
            np.testing.assert_allclose(x, data[src_in][t0], rtol=1e-5)
            np.testing.assert_allclose(y, data[src_out][t0 + 1], rtol=1e-5)
    assert pairs[(True, False)] == 0 and pairs[(True, True)] > 0
    assert pairs[(False, False)] > 0  # 20 batches: P(no mixed batch) = 2**-20
    assert not np.allclose(data["conus"], data["conus-b"])


def test_aurora_source_keeps_its_own_normaliser_and_may_lack_variables(tmp_path, monkeypatch):
    """A second analysis of CONUS written as a netCDF file the way HRRR-like archives write
    it (time, y, x with 2-D latitude/longitude), 12 K warmer and without u10: its batches are
    normalised with its own statistics, and its u10 is imputed in the input and masked out of
    the target (no loss)."""
    import xarray as xr

    conus = catalog.open_dataset("conus")
    ny, nx = 70, 119
    t2m = conus["t2m"].values.reshape(-1, ny, nx) + 12.0
    xr.Dataset(
        {"t2m": (("time", "y", "x"), t2m, {"units": "K"})},
        coords={"time": conus["time"].values,
                "latitude": (("y", "x"), conus["latitude"].values.reshape(ny, nx)),
                "longitude": (("y", "x"), conus["longitude"].values.reshape(ny, nx))},
    ).to_netcdf(tmp_path / "warm.nc")
    (tmp_path / "warm.yaml").write_text(
        f"name: warm\ndomain: conus\nsource: {{kind: netcdf, path: {tmp_path / 'warm.nc'}}}\n"
        "variables: [t2m]\ntime_step: 6h\ngrid: {kind: lambert_conformal, resolution: 45 km}\n")
    monkeypatch.setenv("WORKBENCH_CATALOG", str(tmp_path))
    config = sampling.sampling_config_from_dict(
        {"name": "x", "variables": ["t2m", "u10"], "batch_size": 3,
         "splits": {"train": ["2020-01-01", "2020-02-28"], "val": ["2020-03-01", "2020-03-15"]},
         "domains": [{"name": "conus", "dataset": "conus", "sources": ["warm"]}]})
    dm = sampling.MultiDomainDataModule(config)
    dm.setup()
    domain = dm.domains[0]
    own, warm = domain.source_normaliser(0), domain.source_normaliser(1)
    # each normaliser's mean is its source's own over the train split (hand-computed here)
    train = conus["t2m"].sel(time=slice("2020-01-01", "2020-02-28")).values
    assert float(own.offset[0]) == pytest.approx(train.mean(), rel=1e-4)
    assert float(warm.offset[0]) == pytest.approx(train.mean() + 12.0, rel=1e-4)
    seen = set()
    for batch in dm.val_dataloader():
        source = batch["source_input"]
        seen.add(source)
        norm = warm if source == "warm" else own
        t0 = int(batch["t0"][0])
        x = norm.denormalise(batch["x"][0])[0]
        expected = conus["t2m"].values[t0] + (12.0 if source == "warm" else 0.0)
        np.testing.assert_allclose(x[0].numpy(), expected, rtol=1e-5)
        lacks = source == "warm"
        assert bool(batch["x_mask"][:, :, 1].any()) is not lacks  # u10: valid only in conus
        assert bool(batch["y_mask"][:, :, 1].any()) is not lacks  # ... so no u10 loss from warm
        assert bool(batch["y_mask"][:, :, 0].all()) and torch.isfinite(batch["x"]).all()
    assert seen == {"conus", "warm"}
    none = dataclasses.replace(config, variables=("u10",))
    with pytest.raises(WorkbenchError, match="source 'warm' holds none of the variables"):
        sampling.DomainData(none, none.domains[0])


def test_demo_domain_graphs_match_their_grids_and_leave_no_data_node_hanging():
    from workbench import graphs, grids, inspection

    unseen = sampling.DomainConfig(name="europe", dataset="europe", graph="demo-europe")
    for domain in (*sampling.load_sampling_config("demo").domains, unseen):
        graph = graphs.build_graph(domain.graph)
        ds = catalog.open_dataset(domain.dataset)
        lat, lon = graphs.node_latlon(graph, "data")
        apart = grids.great_circle_km(lat, lon, ds["latitude"].values, ds["longitude"].values)
        assert apart.max() < 0.05  # the same points (float32 radians), in the same order
        report = inspection.inspect_graph(graph)["edge_sets"]
        assert report["data->hidden"]["hanging_sources"]["total"] == 0, domain.name
        assert report["hidden->data"]["hanging_targets"]["total"] == 0, domain.name
