"""95 % intervals of skill scores (workbench.intervals): known answers, an independent loop
implementation, scipy's paired bootstrap for blocks of one, and the scores table and scorecard
that carry them."""

from __future__ import annotations

import math

import cftime
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr

from workbench import evaluation, grids, intervals, plotting_skill
from workbench.errors import WorkbenchError

pytestmark = pytest.mark.timeout(120)


def paired_errors(n: int, seed: int = 1, points: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Per-init MSEs [n, 2] of a reference and of a model whose errors are half the
    reference's plus a little independent noise: MSE about a quarter, skill about 0.75."""
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((n, 2, points))
    model = ref / 2 + 0.1 * rng.standard_normal((n, 2, points))
    return (model**2).mean(-1), (ref**2).mean(-1)


def loop_interval(model, reference, block, resamples, seed, level=0.95):
    """The block bootstrap written out: one replicate at a time, one block at a time."""
    n = len(model)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(resamples, math.ceil(n / block)))
    scores = []
    for row in starts:
        picked = []
        for start in row:
            picked += [(start + j) % n for j in range(block)]
        picked = picked[:n]
        scores.append(1 - np.mean(model[picked], axis=0) / np.mean(reference[picked], axis=0))
    tail = 100 * (1 - level) / 2
    return np.percentile(np.array(scores), [tail, 100 - tail], axis=0)


def test_model_equal_to_reference_has_the_interval_zero_zero():
    _, ref = paired_errors(50)
    point, low, high = intervals.skill_interval(ref, ref.copy(), block=4)
    assert (point == 0).all() and (low == 0).all() and (high == 0).all()


def test_twice_as_good_is_about_075_and_narrows_with_more_initial_times():
    widths = []
    for n in (40, 640):
        model, ref = paired_errors(n)
        point, low, high = intervals.skill_interval(model, ref, block=3)
        np.testing.assert_allclose(point, 1 - model.mean(0) / ref.mean(0), rtol=1e-12)
        assert ((low < point) & (point < high)).all()
        assert ((low > 0.6) & (high < 0.9)).all() and (abs(point - 0.75) < 0.05).all()
        widths.append(high - low)
    # the width goes as 1 / sqrt(n): 16 x the initial times, about a quarter of the width
    assert (widths[1] < 0.5 * widths[0]).all() and (widths[1] > 0.1 * widths[0]).all()


@pytest.mark.parametrize("block", [1, 4, 7])
def test_the_vectorised_bootstrap_equals_a_plain_loop(block):
    model, ref = paired_errors(45, seed=3)
    point, low, high = intervals.skill_interval(model, ref, block=block, resamples=300, seed=5)
    expected_low, expected_high = loop_interval(model, ref, block, 300, 5)
    np.testing.assert_allclose(low, expected_low, rtol=1e-12)
    np.testing.assert_allclose(high, expected_high, rtol=1e-12)
    # seeded: the same again; another seed, another interval
    again = intervals.skill_interval(model, ref, block=block, resamples=300, seed=5)
    assert all((a == b).all() for a, b in zip((point, low, high), again, strict=True))
    other = intervals.skill_interval(model, ref, block=block, resamples=300, seed=6)
    assert not (other[1] == low).all()


def test_blocks_of_one_agree_with_scipys_paired_bootstrap():
    model, ref = paired_errors(80, seed=7)
    _, low, high = intervals.skill_interval(model, ref, block=1, resamples=4000)
    for k in range(2):
        got = scipy.stats.bootstrap(
            (model[:, k], ref[:, k]), lambda m, r, axis: 1 - m.mean(axis) / r.mean(axis),
            paired=True, vectorized=True, n_resamples=4000, method="percentile",
            confidence_level=0.95, random_state=np.random.default_rng(11))
        width = high[k] - low[k]
        # two Monte-Carlo estimates of the same percentiles: a few % of the width apart
        assert abs(got.confidence_interval.low - low[k]) < 0.08 * width
        assert abs(got.confidence_interval.high - high[k]) < 0.08 * width


def test_block_indices_are_circular_runs_of_consecutive_initial_times():
    idx = intervals.block_indices(10, 3, resamples=50, seed=2)
    assert idx.shape == (50, 10) and idx.min() >= 0 and idx.max() <= 9
    for row in idx:
        for b in range(0, 9, 3):  # blocks at 0-2, 3-5, 6-8 (the 4th cut to one index)
            block = row[b:b + 3]
            np.testing.assert_array_equal(block, (block[0] + np.arange(len(block))) % 10)


def test_block_length_from_the_lead_and_the_initial_time_step():
    six_hourly = pd.date_range("2020-01-01", periods=64, freq="6h").values
    lead = pd.to_timedelta([6, 12, 18, 24], unit="h").values
    assert intervals.block_length(six_hourly, lead) == 4  # 24 h / 6 h = 4 = 64^(1/3)
    assert intervals.block_length(six_hourly, lead[:1]) == 4  # ceil(64^(1/3)) wins
    assert intervals.block_length(six_hourly[:8], lead * 10) == 8  # at most n
    assert intervals.block_length(six_hourly[:1], lead) == 1
    daily = pd.date_range("2020-01-01", periods=1000, freq="D").values
    assert intervals.block_length(daily, pd.to_timedelta([240], unit="h").values) == 10
    noleap = np.array([cftime.DatetimeNoLeap(2021, 2, 28) + pd.Timedelta(hours=12 * i)
                       for i in range(27)])
    assert intervals.block_length(noleap, pd.to_timedelta([60], unit="h").values) == 5


def test_initial_times_without_scores_are_left_out_nan_propagates_one_is_too_few():
    model, ref = paired_errors(30, seed=4)
    counted = np.ones(model.shape, bool)
    counted[[3, 17], 0] = False
    model[[3, 17], 0] = ref[[3, 17], 0] = np.nan  # no point scored there
    point, low, high = intervals.skill_interval(model, ref, counted, block=2)
    keep = np.setdiff1d(np.arange(30), [3, 17])
    assert point[0] == pytest.approx(1 - model[keep, 0].mean() / ref[keep, 0].mean(), rel=1e-12)
    assert np.isfinite([low, high]).all()
    model[5, 1] = np.nan  # a NaN where a point is scored: NaN, as skill.mse gives
    point, low, high = intervals.skill_interval(model, ref, counted, block=2)
    assert np.isnan(point[1]) and np.isnan(low[1]) and np.isnan(high[1])
    counted[1:, 1] = False  # one initial time left: no interval
    point, low, high = intervals.skill_interval(model, ref, counted, block=2)
    assert np.isfinite(point[1]) and np.isnan(low[1]) and np.isnan(high[1])
    point, low, high = intervals.skill_interval(model[:1], ref[:1])
    assert np.isfinite(point).all() and np.isnan(low).all() and np.isnan(high).all()
    with pytest.raises(WorkbenchError, match="differ: score the same initial times") as err:
        intervals.skill_interval(model, ref[:, :1])
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- scores


@pytest.fixture(scope="module")
def scored():
    """A global 30-degree grid, 40 six-hourly times; z_500 forecast close to the truth (skill
    against persistence far above 0), t2m persistence itself (skill exactly 0)."""
    grid = grids.regular_latlon(30.0)
    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=40, freq="6h")
    values = {"z_500": 5e4 + 100 * rng.standard_normal((40, grid.size)),
              "t2m": 280 + 5 * rng.standard_normal((40, grid.size))}
    truth = xr.Dataset({k: (("time", "grid"), v) for k, v in values.items()},
                       coords={"time": times, "latitude": ("grid", grid.latitude),
                               "longitude": ("grid", grid.longitude)},
                       attrs=grids.grid_attrs(grid))
    init, lead = times[4:34], pd.to_timedelta([6, 12, 18], unit="h")
    valid = np.add.outer(init.values, lead.values)
    z = truth["z_500"].sel(time=valid.ravel()).values.reshape(30, 3, -1)
    z = z + 20 * rng.standard_normal(z.shape)
    t = np.repeat(truth["t2m"].sel(time=init).values[:, None], 3, axis=1)
    fc = xr.Dataset({"z_500": (("init_time", "lead_time", "grid"), z),
                     "t2m": (("init_time", "lead_time", "grid"), t)},
                    coords={"init_time": init, "lead_time": lead,
                            "latitude": truth["latitude"], "longitude": truth["longitude"]})
    return fc, truth, evaluation.scores(fc, truth, ("2020-01-01", "2020-01-04"))


def test_scores_carry_the_interval_of_the_per_init_errors(scored):
    fc, truth, table = scored
    assert list(table.columns) == evaluation.SCORE_COLUMNS
    skill = table[table.metric.str.startswith("skill_vs_")]
    assert len(skill) == 2 * 2 * 3 and np.isfinite(skill[["ci_low", "ci_high"]]).all().all()
    assert ((skill.ci_low <= skill.value) & (skill.value <= skill.ci_high)).all()
    assert table[~table.metric.str.startswith("skill_vs_")][["ci_low", "ci_high"]].isna().all().all()
    # by hand: area-weighted MSE per initial time, the persistence forecast, the same bootstrap
    w = evaluation.area_weights(truth).values
    init, lead = fc["init_time"].values, fc["lead_time"].values
    block = intervals.block_length(init, lead)
    assert block == 4  # ceil(30^(1/3)) = 4 > 18 h / 6 h
    x = truth["z_500"]
    for k, h in enumerate((6.0, 12.0, 18.0)):
        target = x.sel(time=init + lead[k]).values
        model = [np.average((fc["z_500"].values[i, k] - target[i]) ** 2, weights=w)
                 for i in range(30)]
        persistence = [np.average((x.sel(time=t).values - target[i]) ** 2, weights=w)
                       for i, t in enumerate(init)]
        point, low, high = intervals.skill_interval(np.array(model), np.array(persistence),
                                                    block=block)
        row = skill[(skill.metric == "skill_vs_persistence") & (skill.variable == "z_500")
                    & (skill.lead_hours == h)]
        assert row["value"].item() == pytest.approx(float(point), rel=1e-9)
        assert row["ci_low"].item() == pytest.approx(float(low), rel=1e-9)
        assert row["ci_high"].item() == pytest.approx(float(high), rel=1e-9)
    t2m = skill[(skill.metric == "skill_vs_persistence") & (skill.variable == "t2m")]
    assert (t2m[["value", "ci_low", "ci_high"]] == 0).all().all()


def test_the_scorecard_marks_exactly_the_cells_whose_interval_excludes_zero(scored):
    _, _, table = scored
    for metric in ("skill_vs_persistence", "skill_vs_climatology"):
        card = evaluation.scorecard(table, metric)
        low = evaluation.scorecard(table, metric, column="ci_low")
        high = evaluation.scorecard(table, metric, column="ci_high")
        expected = ((low > 0) | (high < 0)).to_numpy()
        assert card.attrs["significant"] == expected.tolist()
        np.testing.assert_array_equal(
            evaluation.scorecard(table, metric, column="significant").to_numpy(), expected)
        ax = plotting_skill.scorecard_plot(card)
        starred = np.array([t.get_text().endswith("*") for t in ax.texts]).reshape(card.shape)
        np.testing.assert_array_equal(starred, expected)
        plt.close("all")
    card = evaluation.scorecard(table)  # z_500 beats persistence, t2m is persistence
    assert card.attrs["significant"] == [[True] * 3, [False] * 3]
    assert "excludes 0" in plotting_skill.scorecard_plot(card).get_title()
    plt.close("all")
    # pandas keeps the marks through the notebook's concat and rounding
    both = pd.concat({"a": card, "b": card}, names=["domain"]).round(3)
    assert both.shape == (4, 3)


def test_one_initial_time_has_no_interval_and_nothing_marked(scored):
    fc, truth, _ = scored
    table = evaluation.scores(fc.isel(init_time=[0]), truth, ("2020-01-01", "2020-01-04"))
    skill = table[table.metric.str.startswith("skill_vs_")]
    assert skill.value.notna().all() and skill[["ci_low", "ci_high"]].isna().all().all()
    assert not table.significant.any()
    card = evaluation.scorecard(table)
    assert not np.array(card.attrs["significant"]).any()
    assert evaluation.plain_value(skill.ci_low.iloc[0]) is None  # null in evaluate --json


def test_run_against_run_difference_pairs_the_initial_times():
    model, ref = paired_errors(60, seed=8)
    worse = model * 1.5 + 0.01  # a second run, worse on every initial time
    point, low, high = intervals.difference_interval(model, worse, ref, block=3, resamples=400)
    expected = (1 - model.mean(0) / ref.mean(0)) - (1 - worse.mean(0) / ref.mean(0))
    np.testing.assert_allclose(point, expected, rtol=1e-12)
    assert ((0 < low) & (low < point) & (point < high)).all()
    # by hand: the same resampled initial times for both runs and the reference
    idx = intervals.block_indices(60, 3, 400, intervals.SEED)
    diffs = [(1 - model[i].mean(0) / ref[i].mean(0)) - (1 - worse[i].mean(0) / ref[i].mean(0))
             for i in idx]
    np.testing.assert_allclose([low, high], np.percentile(diffs, [2.5, 97.5], axis=0),
                               rtol=1e-12)
    same = intervals.difference_interval(model, model.copy(), ref, block=3)
    assert all((x == 0).all() for x in same)
