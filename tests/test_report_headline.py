"""The headline's sentences from summary rows with known numbers (the summary columns of
docs/report-columns.md), and the number formats it uses."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.report import fmt
from bench.report.headline import headline, suite_headline
from bench.report.styles import BUILTIN, SPARE, method_styles

NAN = math.nan


def row(method: str, score: float, e_meta: float, e_deploy: float, **extra) -> dict:
    """One summary row of suite "toy" (accuracy, 600 test tasks, 1 seed, node energy:
    GPU measured, CPU estimated, 3/4 of the joules measured)."""
    out = {
        "suite": "toy",
        "method": method,
        "task": "classification",
        "lower_is_better": False,
        "n_test": 600,
        "n_seeds": 1,
        "score_mean": score,
        "score_ci95": 0.003,
        "e_meta_j": e_meta,
        "e_deploy_j_per_task": e_deploy,
        "e_task_j_ntest": e_meta / 600 + e_deploy,
        "e_task_j_ninf": e_deploy,
        "meta_train_s": e_meta / 28.0,
        "energy_measured": True,
        "estimated": True,
        "transductive": False,
        "e_meta_gpu_j": 0.75 * e_meta,
        "e_meta_cpu_j": 0.25 * e_meta,
        "e_deploy_gpu_j_per_task": 0.75 * e_deploy,
        "e_deploy_cpu_j_per_task": 0.25 * e_deploy,
        "estimated_meta_gpu": False,
        "estimated_deploy_gpu": False,
        "estimated_meta_cpu": True,
        "estimated_deploy_cpu": True,
        "source_meta_gpu": "nvml-counter",
        "source_deploy_gpu": "nvml-counter",
        "measured_share_meta": 0.75,
        "measured_share_deploy": 0.75,
    }
    for base in ("scratch", "transfer"):
        out[f"breakeven_vs_{base}_status"] = "baseline" if method == base else "no_baseline"
        for k in ("n", "lo", "hi"):
            out[f"breakeven_vs_{base}_{k}"] = NAN
        out[f"breakeven_vs_{base}_note"] = ""
    out.update(extra)
    return out


def be(base: str, status: str, n=NAN, lo=NAN, hi=NAN, note="") -> dict:
    return {
        f"breakeven_vs_{base}_status": status,
        f"breakeven_vs_{base}_n": n,
        f"breakeven_vs_{base}_lo": lo,
        f"breakeven_vs_{base}_hi": hi,
        f"breakeven_vs_{base}_note": note,
    }


def grid(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


BASES = (row("scratch", 0.697, 0.0, 3.01), row("transfer", 0.6645, 346.0, 1.294))


def test_the_issue_example_reads_as_a_decision():
    proto = row(
        "protonet",
        0.9772,
        2400.0,
        0.166,
        **be("scratch", "after", 843.6, 700.0, 1010.0),
        **be("transfer", "after", 1900.0, 1500.0, 2600.0),
    )
    h = suite_headline("toy", grid(proto, *BASES))
    text = " ".join(h.lines)
    assert h.lines[0] == (
        "Best: ProtoNets 97.7 ± 0.3% against from-scratch 69.7 ± 0.3% and transfer 66.5 ± 0.3%."
    )
    assert "ProtoNets' meta-training costs 2.40 kJ (85.7 s)" in text
    assert "pays back against from-scratch after 800 tasks (95% CI 700 to 1,000)" in text
    assert "then costs 0.166 J per task against 3.01 J and 1.29 J" in text
    assert text.count("estimated") == 1  # once per suite: in the source line
    assert "GPU measured (nvml-counter); CPU estimated" in text and "25% of the joules" in text
    assert "e+" not in text and "e-" not in text  # no scientific notation


def test_pareto_sets_at_n_test_and_infinity():
    cheap = row("anil", 0.80, 10.0, 1.0)  # cheapest at N = 600, mid score
    best = row("protonet", 0.97, 3000.0, 0.1)  # best score, cheapest as N grows
    worse = row("maml", 0.60, 2000.0, 2.5)  # dominated everywhere
    h = suite_headline("toy", grid(cheap, best, worse, *BASES))
    pareto = h.lines[1]
    assert "at N = 600, ANIL and ProtoNets" in pareto
    assert "as N → ∞, ProtoNets" in pareto
    assert "MAML" not in pareto


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("never", "it never pays back against from-scratch: 4.00 J per task against 3.01 J"),
        ("from_first_task", "it costs less than from-scratch from the first task"),
        ("less_accurate", "it is less accurate than from-scratch (50.0 ± 0.3% against 69.7"),
        ("not_comparable", "it is not compared with from-scratch"),
    ],
)
def test_every_break_even_status_has_words(status, expected):
    meta = row("maml", 0.5, 100.0, 4.0, **be("scratch", status))
    text = " ".join(suite_headline("toy", grid(meta, BASES[0])).lines)
    assert expected in text


def test_until_gives_the_crossing_and_the_note():
    meta = row("maml", 0.9, 10.0, 5.0, **be("scratch", "until", 12.3, 11.0, 14.0, "x"))
    text = " ".join(suite_headline("toy", grid(meta, BASES[0])).lines)
    assert "cheaper than from-scratch only until 12 tasks (95% CI 11 to 14) (x)" in text


def test_transductive_rows_are_named_apart_never_ranked():
    inductive = row("protonet", 0.90, 100.0, 0.1)
    trans = row("maml", 0.99, 100.0, 0.1, transductive=True)
    h = suite_headline("toy", grid(inductive, trans, *BASES))
    assert h.lines[0].startswith("Best: ProtoNets 90.0")
    assert any("Not ranked with the rest (transductive" in n and "MAML 99.0" in n for n in h.notes)
    assert "MAML" not in " ".join(h.lines)


def test_missing_methods_are_said_before_the_lines():
    h = headline(
        grid(row("protonet", 0.9, 100.0, 0.1), BASES[0]),
        pd.DataFrame(columns=["suite", "reason"]),
        {"toy": ["Never ran (the run stopped before them): MAML."], "other": ["None ran."]},
    )
    assert [x.suite for x in h] == ["toy", "other"]  # suites with results first
    assert h[0].notes[0].startswith("Never ran") and h[0].text().index("Never ran") < h[
        0
    ].text().index("Best")
    assert h[1].lines == [] and h[1].notes == ["None ran."]


def test_modelled_and_unmeasured_energy_say_so():
    modelled = [
        {**r, "estimated_meta_gpu": True, "estimated_deploy_gpu": True, "measured_share_meta": 0.0,
         "measured_share_deploy": 0.0}
        for r in (row("protonet", 0.9, 100.0, 0.1), BASES[0])
    ]  # fmt: skip
    text = " ".join(suite_headline("toy", grid(*modelled)).lines)
    assert "GPU and CPU estimated by a model of power × time (≈)" in text
    assert text.count("estimated") == 1
    none = [{**r, "energy_measured": False} for r in (row("protonet", 0.9, NAN, NAN), BASES[0])]
    h = suite_headline("toy", grid(*none))
    assert h.lines[-1].startswith("Energy was not measured")
    assert not any("Pareto" in x for x in h.lines)


def test_regression_reads_mse_and_lower_is_better():
    rows = [
        {**row("metasgd", 1.023, 386.0, 0.018), "lower_is_better": True, "score_ci95": 0.086},
        {**row("scratch", 8.216, 0.0, 0.674), "lower_is_better": True, "score_ci95": 1.117},
    ]
    h = suite_headline("toy", grid(*rows))
    assert h.caption.startswith("MSE")
    assert h.lines[0] == "Best: Meta-SGD MSE 1.02 ± 0.09 against from-scratch MSE 8.22 ± 1.12."


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2403.7, "2.40 kJ"),
        (0.166, "0.166 J"),
        (999.96, "1.00 kJ"),
        (3.2e7, "32.0 MJ"),
        (0.0, "0 J"),
    ],
)
def test_joules_read_with_units(value, text):
    assert fmt.joules(value) == text


def test_numbers_never_use_scientific_notation():
    assert fmt.sig(0.000123456) == "0.000123"
    assert fmt.sig(1234567) == "1,230,000"
    assert fmt.grams(0.000212) == "212 µg" and fmt.grams(0.0) == "0 g"
    assert fmt.grams(0.0000467, unit=fmt.mass_unit([0.0000467, 0.00458])) == "0.0467 mg"
    assert fmt.score(0.9862, 0.0015, False) == "98.6 ± 0.1%"
    assert fmt.seconds(3174) == "52.9 min" and fmt.seconds(0.0123) == "12.3 ms"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((116.96, 44.9, 255.6), "120 tasks (95% CI 40 to 260)"),  # the review's H200 case
        ((116.94, 90.2, 171.0), "120 tasks (95% CI 90 to 170)"),
        ((116.94, 112.1, 121.3), "117 tasks (95% CI 112 to 121)"),
        ((116.94, 116.90, 116.98), "117 tasks (95% CI 117 to 117)"),  # at most 3 digits
        ((843.6, 700.0, 1010.0), "800 tasks (95% CI 700 to 1,000)"),
        ((1875.3, 410.0, 9100.0), "2,000 tasks (95% CI 400 to 9,000)"),
        ((40.0, 8.0, math.inf), "40 tasks (95% CI 8 to never)"),
        ((3.2, 0.0, 9.0), "3 tasks (95% CI 0 to 9)"),  # 0: from the first task
        ((0.4,), "1 task"),  # tasks are served whole
        ((116.94,), "117 tasks"),
        ((12345.0,), "12,300 tasks"),
        ((NAN,), "—"),
    ],
)
def test_break_even_prints_the_digits_its_interval_supports(args, text):
    assert fmt.tasks(*args) == text


def test_break_even_words_are_one_function_everywhere():
    from bench.report.reading import breakeven

    r = pd.Series(be("scratch", "until", 40.0, 8.0, math.inf))
    assert breakeven(r, "scratch").text() == "until 40 tasks (95% CI 8 to no limit)"
    r = pd.Series(be("scratch", "after", 40.0, 0.0, math.inf))
    assert breakeven(r, "scratch").text() == "after 40 tasks (95% CI 0 to never)"


def test_styles_are_fixed_per_name_and_distinct():
    one = method_styles(["protonet", "maml"])
    two = method_styles(["maml", "scratch", "protonet", "my_method"])
    assert one["protonet"] == two["protonet"] == BUILTIN["protonet"]
    assert two["my_method"] == method_styles(["my_method"])["my_method"]  # stable by name
    assert two["my_method"] in SPARE
    looks = [(s.color, s.marker, s.hatch) for s in BUILTIN.values()]
    assert len(set(looks)) == len(looks) == 9
    for i in range(3):  # no two built-ins share a colour, a marker or a hatch
        assert len({x[i] for x in looks}) == 9
    # line hatches only: dot and circle hatches bloat every bar's inline SVG tenfold
    assert all(set(s.hatch) <= set("/\\|-+x") for s in [*BUILTIN.values(), *SPARE])


def test_batch_serving_is_named_when_measured():
    proto = row(
        "protonet", 0.97, 2400.0, 0.166, e_deploy_batch_j_per_task=0.0123,
        **be("scratch", "after", 843.6, 700.0, 1010.0),
    )  # fmt: skip
    text = " ".join(suite_headline("toy", grid(proto, BASES[0])).lines)
    assert "served in batches, 0.0123 J per task" in text


def test_an_all_transductive_page_notes_it_once():
    rows = [{**r, "transductive": True} for r in (row("protonet", 0.9, 100.0, 0.1), BASES[0])]
    blocks = headline(grid(*rows), pd.DataFrame(columns=["suite", "reason"]))
    assert blocks[0].notes == []  # the page says it once (TRANSDUCTIVE_NOTE)
    alone = suite_headline("toy", grid(*rows))
    assert len(alone.notes) == 1 and "transductive" in alone.notes[0]


def test_notes_in_prose_drop_their_numbers():
    note = (
        "scores equal within 95% CI (accuracy 0.75 vs scratch 0.5, difference +0.25 ± 0.28 "
        "(95% CI)); no interval: a phase has a single window and a single seed"
    )
    meta = row("maml", 0.75, 100.0, 1.0, **be("scratch", "after", 50.0, note=note))
    text = " ".join(suite_headline("toy", grid(meta, BASES[0])).lines)
    assert "after 50 tasks (scores equal within 95% CI)" in text
    assert text.count("no interval") == 1  # said once per line, at its end
    assert "(no interval: a phase has a single window and a single seed)." in text
    assert "difference" not in text
    assert fmt.score(0.5, 0.0, False) == "50.0 ± 0%"


def test_two_seeds_give_both_intervals_each_labelled():
    meta = row("protonet", 0.70, 100.0, 0.1, n_seeds=3, score_seed_ci95=0.625)
    base = {**BASES[0], "n_seeds": 3, "score_seed_ci95": 0.021}
    h = suite_headline("toy", grid(meta, base))
    assert "over episodes (over seeds, Student's t), 600 test tasks, 3 seeds" in h.caption
    assert h.lines[0].startswith("Best: ProtoNets 70.0 ± 0.3% (± 62.5% over seeds)")


def test_flagged_rows_carry_marks_with_a_legend_line():
    meta = row(
        "protonet", 0.9, 100.0, 0.1, foreign_load_flag=True, foreign_load=0.45,
        foreign_load_max=0.8, shared_energy=True,
        shared_energy_reason="ran beside other cells on the same CPU package",
    )  # fmt: skip
    h = suite_headline("toy", grid(meta, BASES[0]))
    assert h.lines[0].startswith("Best: ProtoNets ⚠ ‡ 90.0")
    legend = [x for x in h.lines if x.startswith("⚠")]
    assert legend and "ProtoNets (45% time-weighted, up to 80%)" in legend[0]
    assert any(x.startswith("‡") and "same CPU package" in x for x in h.lines)


def test_a_diverged_row_is_never_named_best():
    diverged = row("maml", NAN, 100.0, 0.1, score_note="diverged on 3 of 40 episodes")
    h = suite_headline("toy", grid(diverged, row("protonet", 0.6, 100.0, 0.1), BASES[0]))
    assert h.lines[0].startswith("Best: from-scratch")
    assert "MAML has no score (diverged on 3 of 40 episodes): it is not ranked." in h.notes
