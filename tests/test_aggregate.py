"""Report aggregation on synthetic ledgers with hand-computed numbers (tests/ledger_factory)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
from ledger_factory import CellSpec, Win, cpu, toy_ledger, toy_specs, write_ledger

from bench.report import aggregate as A
from bench.report.curves import to_target
from bench.report.headline import headline
from bench.report.writer import load_tables, write_report

GOLDEN = Path(__file__).parent / "golden" / "summary.csv"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> A.LedgerTables:
    return load_tables(toy_ledger(tmp_path_factory.mktemp("toy") / "run"))


@pytest.fixture(scope="module")
def summary(toy) -> pd.DataFrame:
    return A.summary_table(toy).set_index(["suite", "method"])


def test_score_ci_is_pooled_over_episodes(summary):
    r = summary.loc[("toy", "protonet")]
    # scores 1, .5, 1, .5: std(ddof=1) = sqrt(1/12); CI = 1.96 * std / sqrt(4)
    assert r["score_mean"] == pytest.approx(0.75)
    assert r["score_ci95"] == pytest.approx(1.96 * math.sqrt(1 / 12) / 2)


def test_meta_and_deploy_energy_split_by_phase(summary):
    r = summary.loc[("toy", "protonet")]
    assert r["e_meta_j"] == pytest.approx(400.0)  # 100 + 300, validation excluded
    assert r["e_validate_j"] == pytest.approx(100.0)
    assert r["e_adapt_j_per_task"] == pytest.approx(2.0)  # 8 J over 4 episodes
    assert r["e_predict_j_per_task"] == pytest.approx(1.0)
    assert r["e_deploy_j_per_task"] == pytest.approx(3.0)


def test_net_energy_subtracts_idle_watts_times_seconds(summary):
    r = summary.loc[("toy", "protonet")]
    assert r["e_meta_net_j"] == pytest.approx(400.0 - 1.0 * 20.0)
    assert r["e_deploy_net_j_per_task"] == pytest.approx((8 - 2 + 4 - 1) / 4)


def test_co2_is_kwh_times_intensity_times_pue(summary):
    r = summary.loc[("toy", "protonet")]
    assert r["co2_meta_g"] == pytest.approx(400 / 3.6e6 * 400 * 1.5)


def test_amortized_energy_and_accuracy_per_kj(summary):
    r = summary.loc[("toy", "protonet")]
    assert r["e_task_j_n1"] == pytest.approx(403.0)
    assert r["e_task_j_ntest"] == pytest.approx(400 / 4 + 3)
    assert r["e_task_j_n10000"] == pytest.approx(3.04)
    assert r["e_task_j_ninf"] == pytest.approx(3.0)
    assert r["accuracy_per_kj_n1"] == pytest.approx(0.75 / 0.403)
    assert r["accuracy_per_kj_ninf"] == pytest.approx(250.0)
    assert math.isnan(r["inv_mse_per_kj_n1"])


def test_break_even_against_baselines_including_never(summary):
    r = summary.loc[("toy", "protonet")]
    # scratch pays nothing up front: (400 - 0) / (11 - 3)
    assert r["breakeven_vs_scratch_n"] == pytest.approx(50.0)
    assert r["breakeven_vs_scratch_status"] == "after"
    # 0.75 vs 0.5 over 4 episodes: within the 95% CI of the paired difference
    assert "scores equal within 95% CI" in r["breakeven_vs_scratch_note"]
    # protonet pays more up front (400 J vs 200 J) and per task (3 J vs 2.5 J)
    assert r["breakeven_vs_transfer_status"] == "never"
    assert math.isnan(r["breakeven_vs_transfer_n"])
    t = summary.loc[("toy", "transfer")]
    assert t["breakeven_vs_scratch_n"] == pytest.approx(200 / 8.5)
    # more accurate beyond the CI (no "equal" note); one window per phase: no interval
    assert (
        t["breakeven_vs_scratch_note"]
        == "no interval: a phase has a single window and a single seed"
    )
    assert math.isnan(t["breakeven_vs_scratch_lo"])
    assert summary.loc[("toy", "scratch"), "breakeven_vs_scratch_status"] == "baseline"
    assert summary.loc[("toy", "scratch"), "breakeven_vs_transfer_status"] == "less_accurate"


def test_energy_to_target(summary):
    r = summary.loc[("toy", "protonet")]
    assert r["energy_to_target_j"] == pytest.approx(400.0)  # 0.85 >= 0.8 at step 10
    assert r["seconds_to_target_s"] == pytest.approx(20.0)
    assert r["target_reached"] == "1/1 seeds"
    assert math.isnan(summary.loc[("toy", "transfer"), "energy_to_target_j"])
    # the common-budget columns read placeholders for nearly every row: gone
    assert "budget_j" not in summary and "val_score_at_budget" not in summary


def test_regression_target_is_reached_downwards():
    curve = pd.DataFrame(
        {
            "step": [1, 2],
            "val_score": [0.9, 0.4],
            "meta_j_cum": [5.0, 9.0],
            "meta_s_cum": [1.0, 2.0],
            "target_score": [0.5, 0.5],
            "task": ["regression"] * 2,
        }
    )
    assert to_target(curve) == {"joules": 9.0, "seconds": 2.0}


def test_unmeasured_energy_is_nan_never_zero(summary):
    r = summary.loc[("toy-sine", "scratch")]
    assert math.isnan(r["e_deploy_j_per_task"]) and math.isnan(r["e_meta_j"])
    assert math.isnan(r["inv_mse_per_kj_ntest"])
    assert r["energy_note"] == "not measured"
    assert r["score_mean"] == pytest.approx(1.0)


def test_sources_and_estimates_are_marked(summary):
    assert summary.loc[("toy", "transfer"), "energy_note"] == "estimated"
    assert summary.loc[("toy", "transfer"), "source_meta"] == "estimate:codecarbon"
    assert summary.loc[("toy", "protonet"), "source_deploy"] == "rapl"


def test_results_has_one_row_per_window_and_trace_has_phases(toy):
    results = A.results_table(toy)
    assert len(results) == sum(len(s.windows) for s in toy_specs())
    assert {"joules_j", "net_j", "co2_g", "seconds_s", "source"} <= set(results.columns)
    trace = A.trace_table(toy)
    assert set(trace["phase"]) == {"meta_train", "adapt"} and "power_w" in trace


def test_different_fingerprints_are_never_compared(tmp_path):
    specs = [
        CellSpec(
            "toy",
            "protonet",
            [1.0, 0.0],
            [Win("meta_train", 1, 1.0, cpu(10.0)), Win("adapt", 2, 1.0, cpu(2.0))],
        ),
        CellSpec(
            "toy", "scratch", [1.0, 0.0], [Win("adapt", 2, 1.0, cpu(8.0))], fingerprint="fp-other"
        ),
    ]
    t = load_tables(write_ledger(tmp_path / "run", specs))
    conflicts = A.fingerprint_conflicts(t.cells)
    assert list(conflicts["suite"]) == ["toy"]
    assert "fingerprints differ" in conflicts["reason"].iloc[0]
    s = A.summary_table(t).set_index("method")
    assert s.loc["protonet", "breakeven_vs_scratch_status"] == "not_comparable"
    assert "fingerprints differ" in s.loc["protonet", "breakeven_vs_scratch_note"]
    assert not s["comparable"].any()
    (toy_headline,) = headline(A.summary_table(t), conflicts)
    assert any("not compared" in note for note in toy_headline.notes)


def test_summary_csv_matches_golden(tmp_path):
    out = tmp_path / "report"
    write_report(toy_ledger(tmp_path / "run"), out)
    text = (out / "summary.csv").read_text()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "summary.csv changed; UPDATE_GOLDEN=1 to accept"


def test_report_files_are_written(tmp_path):
    page = write_report(toy_ledger(tmp_path / "reports" / "run"))
    names = {p.name for p in page.parent.iterdir()}
    assert {
        "results.csv",
        "summary.csv",
        "trace.csv",
        "summary.md",
        "index.html",
        "toy-co2.png",
        "power-timeline.png",
        "toy-amortization.png",
    } <= names
    html = page.read_text()
    for loader in ('src="http', 'href="http', "url(http", "@import", '<link rel="stylesheet'):
        assert loader not in html, f"the page must be self-contained: found {loader}"


def test_seeds_are_pooled_meta_per_seed_deploy_per_episode(tmp_path):
    def cell(seed: int, meta_j: float, adapt_j: float, scores: list[float]) -> CellSpec:
        return CellSpec(
            "toy",
            "protonet",
            scores,
            [
                Win("meta_train", 1, 1.0, cpu(meta_j)),
                Win("adapt", 2, 1.0, cpu(adapt_j)),
                Win("predict", 2, 1.0, cpu(0.0)),
            ],
            seed=seed,
        )

    t = load_tables(
        write_ledger(
            tmp_path / "run", [cell(0, 100.0, 2.0, [1.0, 0.0]), cell(1, 300.0, 6.0, [1.0, 1.0])]
        )
    )
    r = A.summary_table(t).iloc[0]
    assert r["e_meta_j"] == pytest.approx(200.0)  # mean of 100 and 300 per seed
    assert r["e_meta_seed_std_j"] == pytest.approx(math.sqrt(2) * 100)
    assert r["e_deploy_j_per_task"] == pytest.approx(8.0 / 4)  # 8 J over 4 episodes
    assert r["n_test_episodes"] == 4 and r["score_mean"] == pytest.approx(0.75)
    assert r["score_seed_std"] == pytest.approx(math.sqrt(0.125))
