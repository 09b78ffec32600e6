"""A suite file edited between runs into one folder (review of issues 12/14, item 1): a
summary row never pools two cells of one seed; superseded cells are left out and counted;
two current suite files of one suite name are rows of their own; scores pair only on the
same episodes."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from ledger_factory import CellSpec, Win, cpu, write_ledger

from bench.report import breakeven as B
from bench.report.aggregate import summary_table
from bench.report.ledger import current_cells
from bench.report.writer import load_tables
from bench.stats import paired_difference

T0 = 1.7e9


def _windows(meta_j: float, deploy_j: float) -> list[Win]:
    meta = [Win("meta_train", 10, 10.0, cpu(meta_j / 2), step=s) for s in (5, 10)] if meta_j else []
    deploy = [Win(p, 2, 1.0, cpu(deploy_j / 2)) for p in ("adapt", "predict") for _ in range(3)]
    return meta + deploy


def _cell(method: str, scores: list[float], t: float, deploy_j: float | None = None, **kw):
    """E_meta 200 J (scratch 0); E_deploy deploy_j / 2 J/task (scratch 6, others 1)."""
    meta_j = 0.0 if method == "scratch" else 200.0
    deploy_j = deploy_j or (12.0 if method == "scratch" else 2.0)
    kw.setdefault("suite_sha256", f"sha-{int(t)}")
    return CellSpec("toy", method, scores, _windows(meta_j, deploy_j), finished_at=T0 + t, **kw)


def _summary(tmp_path, specs: list[CellSpec]) -> pd.DataFrame:
    return summary_table(load_tables(write_ledger(tmp_path / "run", specs)))


MAML = [0.8, 0.9, 0.7, 0.8]
SCRATCH = [0.7, 0.6, 0.7, 0.8]
SCRATCH_NEW = [0.6, 0.6, 0.7, 0.7, 0.5, 0.6]  # the edited scratch: more episodes, other lr


def test_an_edited_suite_file_keeps_the_latest_cell_per_seed(tmp_path):
    # the review's repro: the file edited (every key changes), run again, then scratch's lr
    # changed and scratch run alone; pooling crashed the gate with shapes (4,) (10,)
    specs = [
        _cell("maml", MAML, 1),
        _cell("scratch", SCRATCH, 1),
        _cell("maml", MAML, 2),
        _cell("scratch", SCRATCH, 2),
        _cell("scratch", SCRATCH_NEW, 3, params_hash="lr-0.05"),
    ]
    s = _summary(tmp_path, specs).set_index("method")
    assert s.loc["maml", "n_seeds"] == 1 and s.loc["maml", "n_test_episodes"] == 4
    assert s.loc["scratch", "n_test_episodes"] == 6 and s.loc["scratch", "params_hash"] == "lr-0.05"
    assert s.loc["scratch", "score_mean"] == pytest.approx(sum(SCRATCH_NEW) / 6)
    assert s.loc["maml", "n_superseded_cells"] == 1
    assert s.loc["scratch", "n_superseded_cells"] == 2
    assert s.loc["scratch", "superseded_note"] == (
        "2 cells (seed 0) from an earlier version of the suite file left out"
    )
    assert s.loc["maml", "breakeven_vs_scratch_status"] in B.STATUSES
    # the same numbers as a ledger holding only the current cells
    alone = _summary(tmp_path / "alone", [specs[2], specs[4]]).set_index("method")
    cols = ["score_mean", "score_ci95", "e_meta_j", "breakeven_vs_scratch_n"]
    pd.testing.assert_frame_equal(s[cols], alone[cols])
    assert (alone["n_superseded_cells"] == 0).all() and (alone["superseded_note"] == "").all()


def test_seeds_of_one_experiment_pool_across_file_versions(tmp_path):
    # seeds 0 and 1 under version A; seed 0 re-run under version B with the same
    # hyperparameters and task: seed 0 from B, seed 1 from A, one superseded
    specs = [
        _cell("maml", MAML, 1, seed=0, fingerprint="a0"),
        _cell("maml", MAML[::-1], 1, seed=1, fingerprint="a1"),
        _cell("maml", [1.0, 1.0, 1.0, 1.0], 2, seed=0, fingerprint="a0"),
    ]
    current, superseded = current_cells(load_tables(write_ledger(tmp_path, specs)).cells)
    assert sorted(current["suite_sha256"]) == ["sha-1", "sha-2"]
    assert superseded["seed"].tolist() == [0] and superseded["suite_sha256"].tolist() == ["sha-1"]
    r = _summary(tmp_path / "s", specs).iloc[0]
    assert r["n_seeds"] == 2 and r["n_superseded_cells"] == 1
    assert r["score_mean"] == pytest.approx((4.0 + sum(MAML)) / 8)


def test_a_changed_experiment_supersedes_every_seed_of_the_old_one(tmp_path):
    specs = [
        _cell("maml", MAML, 1, seed=0, fingerprint="a0"),
        _cell("maml", MAML, 1, seed=1, fingerprint="a1"),
        _cell("maml", [1.0] * 4, 2, seed=0, fingerprint="a0", params_hash="hidden-16"),
    ]
    r = _summary(tmp_path, specs).iloc[0]
    assert r["n_seeds"] == 1 and r["score_mean"] == 1.0 and r["params_hash"] == "hidden-16"
    assert r["superseded_note"] == (
        "2 cells (seeds 0, 1) from an earlier version of the suite file left out"
    )


def test_two_current_suite_files_of_one_name_are_rows_of_their_own(tmp_path):
    specs = [
        _cell("maml", MAML, 1, suite_path="/a/toy.toml", params_hash="aaaaaaaa11"),
        _cell("maml", [1.0] * 4, 2, suite_path="/b/toy.toml", params_hash="bbbbbbbb22"),
        _cell("scratch", SCRATCH, 1, suite_path="/a/toy.toml"),
        _cell("scratch", SCRATCH, 2, suite_path="/b/toy.toml", deploy_j=22.0),
    ]
    s = _summary(tmp_path, specs)
    maml = s[s["method"] == "maml"].set_index("variant")
    assert sorted(maml.index) == ["params aaaaaaaa", "params bbbbbbbb"]
    assert (maml["n_seeds"] == 1).all() and (maml["n_superseded_cells"] == 0).all()
    assert maml.loc["params bbbbbbbb", "score_mean"] == 1.0
    # scratch's hyperparameters are the same in both files: told apart by the file
    scratch = s[s["method"] == "scratch"]
    assert sorted(scratch["variant"]) == ["file /a/toy.toml", "file /b/toy.toml"]
    # two scratch rows: each maml row's baseline is the scratch of its own suite file
    assert maml.loc["params aaaaaaaa", "breakeven_vs_scratch_n"] == pytest.approx(200 / (6 - 1))
    assert maml.loc["params bbbbbbbb", "breakeven_vs_scratch_n"] == pytest.approx(200 / (11 - 1))
    assert sorted(maml["suite_path"]) == ["/a/toy.toml", "/b/toy.toml"]


def test_scores_pair_only_on_the_same_episode_set():
    def scores(seed_fp: list[tuple[int, str]], values: list[float]) -> pd.Series:
        idx = [(s, fp, i) for s, fp in seed_fp for i in range(len(values))]
        return pd.Series(values * len(seed_fp), index=pd.MultiIndex.from_tuples(idx))

    a = scores([(0, "fp-x")], [0.8, 0.6, 0.7, 0.9])
    b = scores([(0, "fp-y")], [0.7, 0.6, 0.7, 0.8])
    gate = B.accuracy_gate(a, b, False, "scratch", "accuracy")
    # no common episode: the two means, their pooled CIs in quadrature (not paired)
    half = math.hypot(1.96 * pd.Series(a.values).std() / 2, 1.96 * pd.Series(b.values).std() / 2)
    assert f"± {half:.2g}" in gate.note
    doubled = pd.concat([a, a])
    with pytest.raises(ValueError, match="repeat"):
        B.accuracy_gate(doubled, b, False, "scratch", "accuracy")
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
