"""The answer tables on the page and in summary.md: both score intervals with seeds, the
energy intervals, the batch column (or why it is empty), and the marks with their legend
lines (foreign CPU load in the answers, the headline and the Warnings section)."""

from __future__ import annotations

import dataclasses
import html
import re

import pandas as pd
from ledger_factory import Win, cpu, toy_specs, write_ledger

from bench.report import marks
from bench.report.answers import LOOP_BATCH, answer_columns
from bench.report.tables import marked_label, page_tables, prepare
from bench.report.writer import write_report


def _report(tmp_path, specs):
    run = write_ledger(tmp_path / "run", specs, idle_w={"cpu:0": 1.0}, carbon=(400.0, 1.5))
    page = write_report(run).read_text()
    return page, (run / "summary.md").read_text()


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_foreign_load_is_marked_in_answers_headline_and_warnings(tmp_path):
    loaded = [
        dataclasses.replace(
            s,
            windows=[dataclasses.replace(w, details={"foreign_cpu_load": 0.5}) for w in s.windows],
        )
        if s.method == "protonet"
        else s
        for s in toy_specs()
    ]
    page, md = _report(tmp_path, loaded)
    text = _text(page)
    assert "protonet ⚠" in text and "scratch ⚠" not in text
    assert "⚠: run while other processes used more than 10% of the machine's CPU" in text
    assert "Best: ProtoNets ⚠" in text  # the headline marks it too, with its legend line
    assert "toy / protonet ⚠ / seed 0" in text  # an entry in the Warnings section
    assert "⚠ foreign CPU load" in text
    assert "| toy | protonet ⚠ |" in md and "⚠: run while other processes" in md


def test_two_seeds_show_both_intervals_each_labelled(tmp_path):
    specs = toy_specs()
    second = [
        dataclasses.replace(s, seed=1, scores=[min(x + 0.2, 1.0) for x in s.scores]) for s in specs
    ]
    page, md = _report(tmp_path, specs + second)
    text = _text(page)
    assert "score ± 95% CI over episodes" in text and "± 95% CI over seeds (t)" in text
    assert "Student's t over the seed means" in text
    assert "score ± 95% CI over episodes | ± 95% CI over seeds (t) |" in md
    assert "± 95% CI over seeds (Student's t)" in page  # the score-vs-energy plot's axis


def test_energy_intervals_and_the_batch_column(tmp_path):
    specs = toy_specs()
    # protonet deploys in two windows per phase (meta-trains in two already): every phase
    # has windows to resample, so E_meta and E_deploy carry their bootstrap intervals
    windows = [*specs[0].windows, Win("adapt", 4, 2.0, cpu(12.0)), Win("predict", 4, 1.0, cpu(6.0))]
    specs[0] = dataclasses.replace(specs[0], windows=windows)
    page, md = _report(tmp_path, specs)
    text = _text(page)
    assert re.search(r"400 J ≈?\s*95% CI \d+ to \d+ J", text)
    assert re.search(r"3\.75 J ≈?\s*95% CI [\d.]+ to [\d.]+ J", text)  # (8+4+12+6) J / 8 tasks
    assert re.search(r"\| 400 J \(95% CI \d+ to \d+ J\) \|", md)
    # loop execution (NULL in this ledger): the batch column says why it is empty
    assert LOOP_BATCH in text and "a batch scenario would only repeat the same calls" in text
    assert f"| {LOOP_BATCH} |" in md
    assert "## Classification suites" in md and "## Regression suites" in md
    assert md.index("## Classification suites") < md.index("## Regression suites")


def test_batch_column_reads_stream_and_batch_where_batch_was_measured():
    s = prepare(
        pd.DataFrame(
            [
                _row("protonet", execution="batched", e_deploy_batch_j_per_task=0.01),
                _row("scratch", execution="loop"),
            ]
        )
    )
    titles = [c.title for c in answer_columns(s)]
    assert "E_deploy / task, stream" in titles and "E_deploy / task, batch" in titles
    assert list(s["batch_note"]) == ["", LOOP_BATCH]


def test_shared_energy_mark_carries_its_reason():
    s = prepare(
        pd.DataFrame(
            [
                _row("protonet", shared_energy=True, shared_energy_reason="ran beside cell x"),
                _row("scratch", energy_sharing="attributed", shared_energy_reason="split by CPU"),
                _row("transfer"),
            ]
        )
    )
    labels = [marked_label(r) for _, r in s.iterrows()]
    assert labels == ["protonet ‡", "scratch ‡", "transfer"]
    legend = marks.shared_legend(s)
    assert "protonet: ran beside cell x" in legend and "scratch: split by CPU" in legend
    answers = page_tables(s.drop(columns=["label", "batch_note"]))
    assert any("‡" in n for n in answers["kinds"][0]["notes"])


def _row(method: str, **extra) -> dict:
    base = {
        "suite": "toy",
        "method": method,
        "task": "classification",
        "lower_is_better": False,
        "n_test": 4,
        "n_seeds": 1,
        "score_mean": 0.8,
        "score_ci95": 0.1,
        "e_meta_j": 10.0,
        "e_deploy_j_per_task": 1.0,
        "co2_meta_g": 0.001,
        "co2_deploy_g_per_task": 0.0001,
        "energy_measured": True,
        "estimated": False,
        "transductive": False,
        "execution": "loop",
    }
    return base | extra
