"""Scores that cannot be ranked (review of issues 12/14, item 3): a diverged method's
non-finite score is never a number, never ranked and never given an N*; and the pooled and
seed-level intervals stay clean with no episode, one episode or one seed."""

from __future__ import annotations

import dataclasses
import math

import pytest
from ledger_factory import CellSpec, Win, cpu, write_ledger

from bench.report.aggregate import summary_table
from bench.report.breakeven import STATUSES
from bench.report.writer import load_tables, write_report


def _cell(method: str, scores: list[float], seed: int = 0, **kw) -> CellSpec:
    meta = [] if method == "scratch" else [Win("meta_train", 10, 10.0, cpu(100.0), step=10)]
    deploy = [
        Win(p, 2, 1.0, cpu(6.0 if method == "scratch" else 1.0)) for p in ("adapt", "predict")
    ]
    checkpoints = [] if method == "scratch" else [(10, 0.99)]
    return CellSpec("toy", method, scores, meta + deploy, checkpoints, seed=seed, **kw)


def _summary(tmp_path, specs: list[CellSpec]):
    return summary_table(load_tables(write_ledger(tmp_path / "run", specs))).set_index("method")


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_diverged_method_has_no_score_rank_or_break_even(tmp_path, bad):
    s = _summary(tmp_path, [_cell("maml", [0.9, bad, 0.9, 0.9]), _cell("scratch", [0.5] * 4)])
    r = s.loc["maml"]
    # a mean over the finite episodes (0.9) would hide the divergence
    assert r["diverged"] and math.isnan(r["score_mean"]) and math.isnan(r["score_errbar"])
    assert r["score_errbar_kind"] == "none"
    assert r["score_note"] == "score not finite on 1 of 4 test episodes"
    assert math.isnan(r["accuracy_per_kj_ninf"])
    assert r["breakeven_vs_scratch_status"] == "diverged" and "diverged" in STATUSES
    assert math.isnan(r["breakeven_vs_scratch_n"])
    assert r["breakeven_vs_scratch_note"] == r["score_note"]
    # its validation curve reaches scratch's score, but it has no test score to stand on
    assert math.isnan(r["iso_energy_vs_scratch_j"]) and r["iso_reached_vs_scratch"] == "diverged"
    # what a headline ranks by: the diverged row is never the best
    assert s["score_mean"].idxmax() == "scratch"
    assert not s.loc["scratch", "diverged"] and s.loc["scratch", "score_note"] == ""


def test_diverged_says_more_than_a_missing_baseline(tmp_path):
    r = _summary(tmp_path, [_cell("maml", [math.nan] * 4)]).loc["maml"]
    assert r["breakeven_vs_transfer_status"] == "diverged"
    assert r["iso_reached_vs_transfer"] == "diverged"


def test_a_diverged_baseline_is_no_baseline(tmp_path):
    s = _summary(tmp_path, [_cell("maml", [0.9] * 4), _cell("scratch", [0.5, math.nan] * 2)])
    r = s.loc["maml"]
    assert r["breakeven_vs_scratch_status"] == "no_baseline"
    assert r["breakeven_vs_scratch_note"] == (
        "scratch diverged: score not finite on 2 of 4 test episodes"
    )
    assert math.isnan(r["iso_energy_vs_scratch_j"])
    assert s.loc["scratch", "breakeven_vs_scratch_status"] == "baseline"


def test_no_episode_and_one_episode_read_nan_never_zero(tmp_path):
    s = _summary(
        tmp_path,
        [_cell("maml", [], n_test=4), _cell("scratch", [0.5])],
    )
    none, one = s.loc["maml"], s.loc["scratch"]
    assert none["n_test_episodes"] == 0 and not none["diverged"]
    assert math.isnan(none["score_mean"]) and none["score_note"] == "no test episodes recorded"
    # no score is not a divergence: not measured, and said why
    assert none["breakeven_vs_scratch_status"] == "not_measured"
    assert none["breakeven_vs_scratch_note"] == "no test episodes recorded"
    assert math.isnan(none["iso_energy_vs_scratch_j"])
    assert one["score_mean"] == 0.5 and math.isnan(one["score_ci95"])
    assert math.isnan(one["score_errbar"]) and one["score_errbar_kind"] == "none"


def test_pooled_and_seed_intervals_are_both_carried(tmp_path):
    specs = [_cell("maml", [m - 0.1, m + 0.1] * 2, seed=i) for i, m in enumerate((0.9, 0.7))]
    r = _summary(tmp_path, specs).loc["maml"]
    # pooled over 8 episodes; over 2 seeds: t(0.975, 1) = 12.706 x std(0.9, 0.7) / sqrt(2)
    assert r["score_ci95"] == pytest.approx(1.96 * 0.1511858 / math.sqrt(8), rel=1e-5)
    assert r["score_seed_ci95"] == pytest.approx(12.7062 * 0.1414214 / math.sqrt(2), rel=1e-4)
    assert r["score_errbar"] == r["score_seed_ci95"] and r["score_errbar_kind"] == "seeds"


def test_a_validation_score_that_diverged_mid_training_is_a_gap_not_a_crash(tmp_path):
    # review of issue 15, item 1: a NULL val_score crashed curves_from_windows (TypeError)
    maml = dataclasses.replace(_cell("maml", [0.9] * 4), checkpoints=[(5, None), (10, None)])
    run = write_ledger(tmp_path / "run", [maml, _cell("scratch", [0.5] * 4)])
    s = summary_table(load_tables(run)).set_index("method")
    # every checkpoint NULL (a column of None, not NaN): no curve reaches scratch's score
    assert math.isnan(s.loc["maml", "iso_energy_vs_scratch_j"])
    assert write_report(run).name == "index.html"
