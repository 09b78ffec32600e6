"""Break-even N* against a baseline that pays its own one-off cost (issue 12 items 2, 3 and
the numeric columns): the rule, the accuracy gate, iso-accuracy energy, the contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from ledger_factory import CellSpec, Win, cpu, write_ledger

from bench.report import breakeven as B
from bench.report.aggregate import summary_table
from bench.report.writer import load_tables

# The H200 run's figures (issue 12, item 2): E_meta J, E_deploy J/task.
LEARNED_OPT = (256.3, 2.279)
PROTONET = (2073.0, 0.2956)
TRANSFER = (402.6, 14.58)
SCRATCH = (0.0, 11.47)


def test_cheaper_in_both_breaks_even_from_the_first_task():
    status, n = B.break_even(*LEARNED_OPT, *TRANSFER)
    assert status == "from_first_task" and math.isnan(n)  # the old formula gave 20.8 tasks


def test_paying_more_up_front_breaks_even_where_the_totals_cross():
    status, n = B.break_even(*PROTONET, *TRANSFER)
    assert status == "after"
    assert n == pytest.approx((2073.0 - 402.6) / (14.58 - 0.2956))
    assert round(n, 1) == 116.9  # the old formula, ignoring transfer's pretraining: 145.1
    # the totals really are equal there
    assert PROTONET[0] + n * PROTONET[1] == pytest.approx(TRANSFER[0] + n * TRANSFER[1])


def test_dearer_in_both_never_breaks_even_and_cheaper_up_front_is_until():
    assert B.break_even(*TRANSFER, *LEARNED_OPT)[0] == "never"
    status, n = B.break_even(*TRANSFER, *PROTONET)
    assert status == "until" and n == pytest.approx(116.94, abs=0.01)
    assert B.break_even(10.0, 5.0, 5.0, 5.0)[0] == "never"  # equal per task, dearer up front
    assert B.break_even(5.0, 5.0, 5.0, 5.0)[0] == "from_first_task"  # equal in both


def test_no_one_off_cost_never_reads_zero():
    # a method with E_meta 0 against scratch: the old formula printed "0.0"
    status, n = B.break_even(0.0, 3.0, *SCRATCH)
    assert status == "from_first_task" and math.isnan(n)
    assert B.break_even(0.0, 20.0, *SCRATCH)[0] == "never"
    assert B.break_even(float("nan"), 1.0, *SCRATCH)[0] == "not_measured"


def test_classify_works_on_replicate_arrays():
    status, n = B.classify(np.array([1.0, -1.0, 1.0, -2.0]), np.array([2.0, 1.0, -1.0, -4.0]))
    assert list(status) == ["after", "from_first_task", "never", "until"]
    assert n[0] == 0.5 and n[3] == 0.5 and np.isnan(n[1:3]).all()


def _scores(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.MultiIndex.from_tuples([(0, i) for i in range(len(values))]))


def test_accuracy_gate_pairs_episodes_and_counts_equal_within_ci_as_equal():
    base = _scores([0.8, 0.6, 0.7, 0.9] * 25)
    worse = _scores([0.3, 0.1, 0.2, 0.4] * 25)
    gate = B.accuracy_gate(worse, base, False, "scratch", "accuracy")
    assert not gate.ok and gate.note.startswith("less accurate")
    # 0.01 below on average, within the noise of the paired differences: equal, and the note
    # says so (differences +0.05, -0.07, +0.03, -0.05: CI half-width 0.011)
    close = _scores([0.85, 0.53, 0.73, 0.85] * 25)
    gate = B.accuracy_gate(close, base, False, "scratch", "accuracy")
    assert gate.ok and "equal within 95% CI" in gate.note
    better = _scores([0.9, 0.7, 0.8, 1.0] * 25)
    assert B.accuracy_gate(better, base, False, "scratch", "accuracy") == B.Gate(True, "")
    # MSE: lower is better, so the worse accuracy-shaped scores are the better MSE
    assert B.accuracy_gate(worse, base, True, "scratch", "mse").ok


def _accuracy_ledger(tmp_path, maml_scores, scratch_scores):
    specs = [
        CellSpec(
            "toy",
            "maml",
            maml_scores,
            [
                Win("meta_train", 10, 10.0, cpu(100.0), step=5),
                Win("meta_train", 10, 10.0, cpu(100.0), step=10),
                Win("adapt", 2, 1.0, cpu(2.0)),
                Win("adapt", 2, 1.0, cpu(2.0)),
                Win("predict", 2, 1.0, cpu(0.0)),
                Win("predict", 2, 1.0, cpu(0.0)),
            ],
            checkpoints=[(5, 0.55), (10, 0.72)],
        ),
        CellSpec(
            "toy",
            "scratch",
            scratch_scores,
            [
                Win("adapt", 2, 1.0, cpu(12.0)),
                Win("adapt", 2, 1.0, cpu(12.0)),
                Win("predict", 2, 1.0, cpu(0.0)),
                Win("predict", 2, 1.0, cpu(0.0)),
            ],
        ),
    ]
    return summary_table(load_tables(write_ledger(tmp_path / "run", specs))).set_index("method")


def test_less_accurate_methods_get_no_break_even(tmp_path):
    s = _accuracy_ledger(tmp_path, [0.5, 0.52, 0.5, 0.52], [0.7, 0.72, 0.7, 0.72])
    r = s.loc["maml"]
    # energy alone would give 200 / (6 - 1) = 40 tasks
    assert r["breakeven_vs_scratch_status"] == "less_accurate"
    assert math.isnan(r["breakeven_vs_scratch_n"]) and math.isnan(r["breakeven_vs_scratch_lo"])
    assert "less accurate" in r["breakeven_vs_scratch_note"]
    assert "0.51 vs scratch 0.71" in r["breakeven_vs_scratch_note"]
    # the validation curve reaches scratch's 0.71 at step 10 (200 J), but on the test
    # episodes maml is less accurate: no iso-accuracy energy either
    assert math.isnan(r["iso_energy_vs_scratch_j"])
    assert r["iso_reached_vs_scratch"] == "less accurate"


def test_iso_accuracy_energy_where_the_gate_passes(tmp_path):
    s = _accuracy_ledger(tmp_path, [0.7, 0.72, 0.71, 0.7], [0.7, 0.72, 0.7, 0.71])
    # equal within the CI on the test episodes; the curve reaches 0.7075 at step 10
    assert s.loc["maml", "iso_energy_vs_scratch_j"] == pytest.approx(200.0)
    assert s.loc["maml", "iso_reached_vs_scratch"] == "1/1 seeds"


def test_equal_scores_break_even_with_a_note(tmp_path):
    s = _accuracy_ledger(tmp_path, [0.7, 0.72, 0.71, 0.7], [0.7, 0.72, 0.7, 0.71])
    r = s.loc["maml"]
    assert r["breakeven_vs_scratch_status"] == "after"
    assert r["breakeven_vs_scratch_n"] == pytest.approx(200.0 / (6.0 - 1.0))
    assert "scores equal within 95% CI" in r["breakeven_vs_scratch_note"]
    assert s.loc["scratch", "breakeven_vs_scratch_status"] == "baseline"
    assert s.loc["scratch", "iso_reached_vs_scratch"] == "baseline"
    assert s.loc["maml", "breakeven_vs_transfer_status"] == "no_baseline"


def test_break_even_columns_follow_the_contract(tmp_path):
    s = _accuracy_ledger(tmp_path, [0.8, 0.82, 0.8, 0.82], [0.7, 0.72, 0.7, 0.72])
    for base in ("scratch", "transfer"):
        for suffix in ("n", "lo", "hi"):
            assert s[f"breakeven_vs_{base}_{suffix}"].dtype == float
        assert set(s[f"breakeven_vs_{base}_status"]) <= set(B.STATUSES)
        assert s[f"breakeven_vs_{base}_note"].map(type).eq(str).all()
    r = s.loc["maml"]
    assert r["breakeven_vs_scratch_status"] == "after" and r["breakeven_vs_scratch_note"] == ""
    assert r["breakeven_vs_scratch_lo"] <= r["breakeven_vs_scratch_n"]
    assert r["breakeven_vs_scratch_n"] <= r["breakeven_vs_scratch_hi"]


def test_interval_of_n_star_maps_never_to_infinity():
    # replicates: one says never (A's saving vanishes) -> the upper end is infinite
    status = np.array(["after"] * 97 + ["never"] * 3)
    n = np.concatenate([np.linspace(10, 20, 97), [np.nan] * 3])
    crossing = B._crossing(status, n, "after")
    assert np.isinf(crossing[-3:]).all() and crossing[0] == 10


def test_with_several_seeds_the_gate_uses_the_seed_level_interval():
    def seeds(means: list[float]) -> pd.Series:
        idx = [(s, i) for s in range(len(means)) for i in range(100)]
        wiggle = [0.02 * ((i % 4) - 1.5) for _ in means for i in range(100)]
        flat = [m for m in means for _ in range(100)]
        return pd.Series(np.add(flat, wiggle), index=pd.MultiIndex.from_tuples(idx))

    base = seeds([0.72, 0.72, 0.72])
    # seed means 0.95, 0.70, 0.45 against 0.72: pooled episodes would call it worse (-0.02
    # +- 0.01); over seeds the difference is -0.02 +- 0.62: equal
    gate = B.accuracy_gate(seeds([0.95, 0.70, 0.45]), base, False, "scratch", "accuracy")
    assert gate.ok and "over 3 seeds" in gate.note
    # consistently 0.1 below on every seed: less accurate however few the seeds
    gate = B.accuracy_gate(seeds([0.62, 0.61, 0.63]), base, False, "scratch", "accuracy")
    assert not gate.ok
