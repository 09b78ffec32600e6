"""Intervals (issue 12 items 4 and 11): bootstrap of E_meta, E_deploy (each deploy scenario,
chunk by chunk) and N* over windows and seeds, the seed-level t interval of a score, the
digits an interval supports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ledger_factory import CellSpec, Win, cpu, write_ledger
from scipy import stats

from bench.report.aggregate import summary_table
from bench.report.uncertainty import generator, interval
from bench.report.writer import load_tables
from bench.stats import ci95, t_ci95


def _episode_scores(mean: float, n: int = 600, queries: int = 75) -> list[float]:
    """Accuracies of n episodes of `queries` queries: binomial quantiles at evenly spaced
    levels (a deterministic stand-in for a sample), shifted so that their mean is exact."""
    k = stats.binom.ppf((np.arange(n) + 0.5) / n, queries, mean) / queries
    return list(k - k.mean() + mean)


def _cell(seed: int, scores: list[float], meta: list[float], method: str = "maml") -> CellSpec:
    windows = [Win("meta_train", 10, 5.0, cpu(j), step=10 * (i + 1)) for i, j in enumerate(meta)]
    windows += [Win("adapt", 300, 3.0, cpu(30.0 + seed)), Win("adapt", 300, 3.0, cpu(36.0))]
    windows += [Win("predict", 300, 1.0, cpu(3.0)), Win("predict", 300, 1.0, cpu(3.0))]
    return CellSpec("toy", method, scores, windows, seed=seed)


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    means = (0.95, 0.70, 0.45)
    specs = [_cell(s, _episode_scores(m), [100.0, 120.0, 80.0]) for s, m in enumerate(means)]
    path = write_ledger(tmp_path_factory.mktemp("seeds") / "run", specs)
    return summary_table(load_tables(path)).iloc[0]


def test_seed_level_interval_is_students_t_over_seed_means(three_seeds):
    r = three_seeds
    # pooled over 1800 episodes: the narrow interval the summary used to show alone
    assert r["score_ci95"] == pytest.approx(0.0098, abs=2e-4)
    # t(0.975, 2) = 4.303; 4.303 * 0.25 / sqrt(3) = 0.621 (the 0.625 rounds
    # t / sqrt(3) = 2.48 to 2.5)
    assert r["score_seed_ci95"] == pytest.approx(4.302653 * 0.25 / math.sqrt(3), rel=1e-5)
    assert r["score_seed_ci95"] == pytest.approx(0.625, abs=0.005)
    assert r["score_errbar"] == r["score_seed_ci95"] and r["score_errbar_kind"] == "seeds"
    assert t_ci95([0.5]) != t_ci95([0.5])  # NaN with one seed


def test_one_seed_error_bar_is_the_episode_interval(tmp_path):
    specs = [_cell(0, [0.5, 0.7, 0.6, 0.8], [100.0, 120.0])]
    r = summary_table(load_tables(write_ledger(tmp_path / "run", specs))).iloc[0]
    assert math.isnan(r["score_seed_ci95"])
    assert r["score_errbar"] == pytest.approx(ci95([0.5, 0.7, 0.6, 0.8]))
    assert r["score_errbar_kind"] == "episodes"


def _summary(tmp_path, specs):
    return summary_table(load_tables(write_ledger(tmp_path / "run", specs)))


def test_energy_intervals_resample_windows_deterministically(tmp_path):
    specs = [_cell(0, [0.5, 0.7], [100.0, 120.0, 80.0, 100.0])]
    a = _summary(tmp_path / "a", specs).iloc[0]
    b = _summary(tmp_path / "b", [*specs, _cell(0, [0.5, 0.7], [50.0, 60.0], "anil")])
    b = b.set_index("method").loc["maml"]
    assert a["e_meta_j"] == pytest.approx(400.0)
    # per-window rates 8-12 J/item over 40 items: the interval lies within 320-480 J
    assert 320.0 <= a["e_meta_j_lo"] < a["e_meta_j"] < a["e_meta_j_hi"] <= 480.0
    # deterministic, and a row's interval does not depend on the other rows
    for col in ("e_meta_j_lo", "e_meta_j_hi", "e_deploy_j_per_task_lo", "e_deploy_j_per_task_hi"):
        assert a[col] == b[col]
    # deploy: adapt 66 J / 600 tasks (windows 0.1 and 0.12 J/task) + predict 0.01 J/task
    assert a["e_deploy_j_per_task"] == pytest.approx(66 / 600 + 0.01)
    assert 0.11 <= a["e_deploy_j_per_task_lo"] <= a["e_deploy_j_per_task_hi"] <= 0.13


def test_equal_windows_give_a_zero_width_interval_and_one_window_none(tmp_path):
    r = _summary(tmp_path / "a", [_cell(0, [0.5, 0.7], [100.0, 100.0])]).iloc[0]
    assert r["e_meta_j_lo"] == pytest.approx(200.0) == r["e_meta_j_hi"]
    r = _summary(tmp_path / "b", [_cell(0, [0.5, 0.7], [100.0])]).iloc[0]
    assert math.isnan(r["e_meta_j_lo"]) and math.isnan(r["e_meta_j_hi"])


def test_seed_spread_widens_the_interval(tmp_path):
    one = _summary(tmp_path / "a", [_cell(0, [0.5, 0.7], [100.0, 110.0])]).iloc[0]
    two = _summary(
        tmp_path / "b",
        [_cell(0, [0.5, 0.7], [100.0, 110.0]), _cell(1, [0.5, 0.7], [200.0, 210.0])],
    ).iloc[0]
    assert two["e_meta_j"] == pytest.approx((210.0 + 410.0) / 2)
    assert two["e_meta_j_hi"] - two["e_meta_j_lo"] > 5 * (one["e_meta_j_hi"] - one["e_meta_j_lo"])
    # the seeds' own totals bound the resampled means
    assert two["e_meta_j_lo"] >= 200.0 and two["e_meta_j_hi"] <= 420.0


def test_n_star_interval_comes_from_the_bootstrap_of_its_inputs(tmp_path):
    maml = _cell(0, [0.8, 0.8], [100.0, 120.0, 80.0, 100.0])
    scratch = CellSpec(
        "toy",
        "scratch",
        [0.8, 0.8],
        [
            Win("adapt", 300, 3.0, cpu(300.0)),
            Win("adapt", 300, 3.0, cpu(330.0)),
            Win("predict", 300, 1.0, cpu(3.0)),
            Win("predict", 300, 1.0, cpu(3.0)),
        ],
    )
    s = _summary(tmp_path, [maml, scratch]).set_index("method")
    r = s.loc["maml"]
    expected = r["e_meta_j"] / (s.loc["scratch", "e_deploy_j_per_task"] - r["e_deploy_j_per_task"])
    assert r["breakeven_vs_scratch_n"] == pytest.approx(expected)
    assert r["breakeven_vs_scratch_lo"] < r["breakeven_vs_scratch_n"] < r["breakeven_vs_scratch_hi"]
    # N* = E_meta / saving: its interval is bounded by the extremes of its inputs' intervals
    saving_lo = s.loc["scratch", "e_deploy_j_per_task_lo"] - r["e_deploy_j_per_task_hi"]
    saving_hi = s.loc["scratch", "e_deploy_j_per_task_hi"] - r["e_deploy_j_per_task_lo"]
    assert r["breakeven_vs_scratch_lo"] >= r["e_meta_j_lo"] / saving_hi * 0.99
    assert r["breakeven_vs_scratch_hi"] <= r["e_meta_j_hi"] / saving_lo * 1.01


def test_interval_keeps_infinite_replicates_and_nan_poisons():
    r = np.concatenate([np.arange(1.0, 98.0), [np.inf] * 3])
    assert interval(r) == (3.0, math.inf)
    assert all(math.isnan(x) for x in interval(np.array([1.0, np.nan])))
    a, b = generator("cell-a").random(3), generator("cell-a").random(3)
    assert (a == b).all() and not (a == generator("cell-b").random(3)).all()


def _chunked(stream: list[tuple[float, float]], batch: list[tuple[float, float]], setup_j=0.0):
    """A cell metered as the harness does: a setup window (warm-up), then per chunk of 10
    tasks a stream adapt and predict window and a batch adapt and predict window (each
    batch pass repeated 5 times inside its window); (adapt J, predict J) per chunk."""
    windows = [Win("setup", 1, 1.0, cpu(setup_j)), Win("meta_train", 10, 5.0, cpu(50.0))]
    windows.append(Win("meta_train", 10, 5.0, cpu(70.0), step=20))
    for (sa, sp), (ba, bp) in zip(stream, batch, strict=True):
        windows += [
            Win("adapt", 10, 1.0, cpu(sa), scenario="stream"),
            Win("predict", 10, 1.0, cpu(sp), scenario="stream"),
            Win("adapt", 10, 0.4, cpu(ba), scenario="batch", repeats=5),
            Win("predict", 10, 0.2, cpu(bp), scenario="batch", repeats=5),
        ]
    return CellSpec("toy", "maml", [0.5, 0.7], windows, execution="batched")


def test_each_scenario_has_its_own_interval_from_its_chunks(tmp_path):
    stream = [(10.0, 2.0), (12.0, 2.0), (14.0, 2.0)]
    batch = [(5.0, 1.0), (10.0, 1.0), (5.0, 1.0)]
    r = _summary(tmp_path / "a", [_chunked(stream, batch)]).iloc[0]
    # one seed, three chunks: an interval (one deploy window used to leave it NaN)
    assert r["e_deploy_stream_j_per_task"] == pytest.approx(42.0 / 30)
    assert 1.2 <= r["e_deploy_stream_j_per_task_lo"] < 1.4 < r["e_deploy_stream_j_per_task_hi"]
    assert r["e_deploy_stream_j_per_task_hi"] <= 1.6  # chunk rates 1.2, 1.4, 1.6
    # batch: J / (5 repeats x 10 tasks); chunk rates 0.12, 0.22, 0.12
    assert r["e_deploy_batch_j_per_task"] == pytest.approx(23.0 / 150)
    assert r["e_deploy_batch_j_per_task_lo"] == pytest.approx(0.12)
    assert r["e_deploy_batch_j_per_task_hi"] == pytest.approx(0.22)
    # the break-even scenario's interval is the stream one
    assert r["e_deploy_j_per_task_lo"] == r["e_deploy_stream_j_per_task_lo"]
    batch_row = summary_table(load_tables(tmp_path / "a" / "run"), scenario="batch").iloc[0]
    assert batch_row["e_deploy_j_per_task_hi"] == pytest.approx(0.22)
    assert r["e_meta_j_lo"] == pytest.approx(100.0) and r["e_meta_j_hi"] == pytest.approx(140.0)
    # setup windows are in neither: a costly warm-up changes no interval
    warm = _summary(tmp_path / "b", [_chunked(stream, batch, setup_j=500.0)]).iloc[0]
    cols = [c for c in r.index if c.endswith(("_lo", "_hi")) and c.startswith("e_")]
    assert all(warm[c] == r[c] for c in cols)


def test_a_chunks_adapt_and_predict_windows_are_drawn_together(tmp_path):
    # a load burst shifts joules from predict to adapt within each chunk, the chunk's total
    # staying 12 J: drawn together, every replicate is 12 J / 10 tasks
    stream = [(10.0, 2.0), (6.0, 6.0), (2.0, 10.0)]
    r = _summary(tmp_path, [_chunked(stream, stream)]).iloc[0]
    assert r["e_deploy_stream_j_per_task_lo"] == pytest.approx(1.2)
    assert r["e_deploy_stream_j_per_task_hi"] == pytest.approx(1.2)
