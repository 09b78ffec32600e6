"""The answer table, the same on the page and in summary.md: score with its 95% CI pooled
over episodes (and over seeds, Student's t, where a row has two or more), E_meta and
E_deploy with their 95% bootstrap intervals (stream, and batch where measured or where
loop execution left it unmeasured), N* against each baseline, CO2 per task at N = n_test;
and the legend lines that explain every mark and word the table uses."""

from __future__ import annotations

import pandas as pd

from bench.report import marks
from bench.report.html import Column
from bench.report.reading import BASELINES

IDENTITY = [Column("suite", "suite", "text"), Column("method", "method", "text")]
TRANSDUCTIVE_MARK = (
    "†: transductive normalization (BatchNorm statistics of the whole query set, so a "
    "query's prediction depended on the other queries of its episode); such rows are "
    "ranked and compared only among themselves, apart from the inductive rows of their "
    "suite."
)
LOOP_BATCH = "not measured (loop)"
LOOP_BATCH_NOTE = (
    "E_deploy, batch: not measured where execution is loop: the loop path serves tasks one "
    "at a time, so a batch scenario would only repeat the same calls (--execution batched "
    "or graph measures it)."
)


def batch_note(s: pd.DataFrame) -> pd.Series:
    """Why a row has no batch E_deploy: LOOP_BATCH for loop execution, else empty."""
    batch = s.get("e_deploy_batch_j_per_task", pd.Series(float("nan"), index=s.index))
    loop = s.get("execution", pd.Series("", index=s.index)).fillna("loop") == "loop"
    return pd.Series([LOOP_BATCH if lp and b != b else "" for lp, b in zip(loop, batch)], s.index)


def _seeds(s: pd.DataFrame) -> bool:
    return bool((s["n_seeds"] >= 2).any())


def _batch(s: pd.DataFrame) -> bool:
    batch = s.get("e_deploy_batch_j_per_task", pd.Series(dtype=float))
    unmeasured = s.get("batch_note", pd.Series(dtype=str)) != ""
    return bool(batch.notna().any()) or bool(unmeasured.any())


def answer_columns(s: pd.DataFrame) -> list[Column]:
    """The answer columns for the prepared rows `s` (bench/report/tables.py prepare)."""
    cols = [*IDENTITY, Column("score_mean", "score ± 95% CI over episodes", "score")]
    if _seeds(s):
        cols.append(
            Column(
                "score_seed_ci95",
                "± 95% CI over seeds (t)",
                "score_ci",
                help="Student's t over the seed means; — with one seed",
            )
        )
    batch = _batch(s)
    cols += [
        Column("e_meta_j", "E_meta", "energy", "estimated", "one-off meta-training energy",
               interval=True),
        Column("e_deploy_j_per_task", "E_deploy / task" + (", stream" if batch else ""),
               "energy", "estimated", "adapt + predict, one task at a time", interval=True),
    ]  # fmt: skip
    if batch:
        cols.append(
            Column("e_deploy_batch_j_per_task", "E_deploy / task, batch", "energy", "estimated",
                   "adapt + predict, tasks served in batches", missing_from="batch_note")
        )  # fmt: skip
    cols += [
        Column(f"breakeven_vs_{b}_n", f"N* vs {b}", f"breakeven:{b}", help="tasks, 95% CI")
        for b in BASELINES
    ]
    cols.append(Column("co2_task_ntest_g", "CO2 / task", "grams", "estimated", "at N = n_test"))
    return cols


def answer_notes(s: pd.DataFrame) -> list[str]:
    """What the answer table of rows `s` says, one line per mark or word it uses."""
    notes = [
        "score: mean over all test episodes ± its 95% CI pooled over the episodes "
        "(1.96 std / √n)"
        + (
            "; beside it the seed-level 95% CI (Student's t over the seed means), the one "
            "the plots draw."
            if _seeds(s)
            else "."
        ),
        "E_meta, E_deploy: with their 95% CI (bootstrap over the windows and seeds) where "
        "a phase has more than one window or the row more than one seed. ≈: rests on "
        'estimated energy (a model, not a meter); "not measured": no meter covered the '
        "phase.",
        "N*: tasks after which meta-training pays back against the baseline (both one-off "
        "costs counted), with its 95% CI; a lower end of 0: resamples cheaper from the "
        'first task; "never": resamples that never pay back. CO2 per task at N = n_test: '
        "deploy plus E_meta / n_test.",
    ]
    if (s.get("batch_note", pd.Series(dtype=str)) == LOOP_BATCH).any():
        notes.append(LOOP_BATCH_NOTE)
    if s["label"].astype(str).str.endswith("†").any():
        notes.append(TRANSDUCTIVE_MARK)
    return notes + marks.legends(s)
