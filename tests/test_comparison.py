"""Run against run (``workbench compare``): skills, their difference and its 95 % interval."""

from __future__ import annotations

import json
from pathlib import Path

import helpers
import numpy as np
import pytest

from workbench import cli, comparison, evaluation
from workbench.forecast_files import read_forecast

pytestmark = pytest.mark.slow
TRAIN = ("2020-01-01", "2020-02-29T18:00")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """A (trained 20 steps) and B (lr 0: its forecasts are persistence's)."""
    base = tmp_path_factory.mktemp("compare")
    trained = helpers.frozen_run(base / "a", max_steps=20, optimizer={"lr": 3e-3},
                                 val_rollout=2, val_batches=1)
    frozen = helpers.frozen_run(base / "b", val_rollout=2, val_batches=1)
    return trained, frozen


@pytest.fixture(scope="module")
def compared(runs):
    """compare_runs on conus (it writes both runs' forecast files, which the tests reread)."""
    return comparison.compare_runs(*runs, "conus", steps=2)


def _interior_skill(run: Path, domain: str):
    """Skill against persistence as ``evaluate`` scores the forecast file compare_runs wrote."""
    fc = read_forecast(evaluation.forecast_path(run, domain, "test"))
    table = evaluation.scores(fc, evaluation.truth_for(fc).load(), TRAIN)
    rows = table[(table.region == "interior") & (table.metric == "skill_vs_persistence")]
    return rows.set_index(["variable", "lead_hours"]).sort_index()


def test_against_a_persistence_run_the_difference_is_the_skill_and_its_interval(runs, compared):
    """B forecasts persistence, so skill(A) - skill(B) is A's skill against persistence with the
    same bootstrap interval evaluation.scores gives it (computed there on its own)."""
    a, b = runs
    table = compared.set_index(["variable", "lead_hours"]).sort_index()
    own_a, own_b = _interior_skill(a, "conus"), _interior_skill(b, "conus")
    assert len(table) == 8 * 2 and list(table.index) == list(own_a.index)
    np.testing.assert_allclose(table.skill_a, own_a.value, rtol=0, atol=1e-12)
    np.testing.assert_allclose(table.skill_b, own_b.value, rtol=0, atol=1e-12)
    assert np.abs(table.skill_b).max() < 1e-5  # persistence, to float32 rounding
    np.testing.assert_allclose(table.difference, table.skill_a - table.skill_b, atol=1e-12)
    np.testing.assert_allclose(table.ci_low, own_a.ci_low, atol=2e-5)
    np.testing.assert_allclose(table.ci_high, own_a.ci_high, atol=2e-5)
    assert ((table.ci_low <= table.difference) & (table.difference <= table.ci_high)).all()
    assert (table.significant == ((table.ci_low > 0) | (table.ci_high < 0))).all()
    assert table.significant.any()  # 20 steps of training beat persistence somewhere


def test_a_run_against_itself_and_the_other_way_round(runs, compared):
    """On the forecast files compare_runs wrote."""
    fa, fb = (read_forecast(evaluation.forecast_path(run, "conus", "test")) for run in runs)
    truth = evaluation.truth_for(fa).load()
    same = comparison.compare_forecasts(fa, fa, truth, TRAIN)
    assert (same.difference == 0).all() and (same.ci_low == 0).all() and (same.ci_high == 0).all()
    assert not same.significant.any()
    ab = comparison.compare_forecasts(fa, fb, truth, TRAIN)
    ba = comparison.compare_forecasts(fb, fa, truth, TRAIN)
    np.testing.assert_allclose(ba.difference, -ab.difference, atol=1e-12)
    np.testing.assert_allclose(ba.ci_low, -ab.ci_high, atol=1e-9)
    np.testing.assert_allclose(ba.ci_high, -ab.ci_low, atol=1e-9)


def test_cli_json_and_table(runs, compared, capsys):
    a, b = runs
    assert cli.main(["compare", str(a), str(b), "--domain", "conus", "--steps", "2",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["difference"] for r in out["rows"]] == pytest.approx(list(compared.difference))
    assert out["reference"] == "persistence" and len(out["rows"]) == 16
    assert cli.main(["compare", str(a), str(b), "--domain", "conus", "--steps", "2",
                     "--reference", "climatology"]) == 0
    text = capsys.readouterr().out
    assert "skill against climatology on conus" in text and "A - B" in text
