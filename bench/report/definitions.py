"""The metric definitions the report page repeats: the same rows as the README's table
"What the report says" (tests/test_report_definitions.py holds them equal), in Markdown:
`code` spans are rendered as <code> on the page."""

from __future__ import annotations

DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "score",
        "accuracy (classification) or MSE (regression) over the test episodes of all seeds; "
        "`score_ci95` = 1.96 std / sqrt(n episodes) (pooled episodes)",
    ),
    (
        "seed-level interval",
        "with two or more seeds also `score_seed_ci95` = t(0.975, n_seeds - 1) std(seed means) "
        "/ sqrt(n_seeds); plots' error bars use it (`score_errbar`)",
    ),
    (
        "`E_meta` (J)",
        "energy of the one-off `meta_train` phase (meta-training or pretraining; 0 for from-"
        "scratch), mean per seed, with a 95% bootstrap interval",
    ),
    (
        "`E_deploy` (J/task)",
        "energy of adapting to one new task and predicting its queries: J / (repeats x tasks) "
        "per window, for the `stream` (one task at a time) and `batch` (chunks of tasks) "
        "scenarios; the headline and N* use `stream` unless asked",
    ),
    (
        "setup",
        "warm-up, graph capture, compilation: reported as `e_setup_j`, neither E_meta nor E_deploy",
    ),
    (
        "`E_task(N)`",
        "`E_meta / N + E_deploy`: energy per task when N tasks are served",
    ),
    (
        "accuracy per kJ at N",
        "`score / (E_task(N) / 1000)` at N = 1, n_test, 10,000 and infinity; regression rows "
        'use (1/MSE) per kJ, and the other kind reads "not applicable"',
    ),
    (
        "break-even N*",
        "against baseline b (from-scratch, transfer), both paying their one-off cost: A's total"
        ' over N tasks is `E_meta + N E_deploy`. "from the first task" when A is no dearer up '
        'front nor per task; "never" when A is dearer in both; `N* = (E_meta - E_meta_b) / '
        '(E_deploy_b - E_deploy)` "after N*" when A pays more up front and less per task, '
        '"until N*" when it pays less up front and more per task. Given only where A\'s score is'
        " at least b's (equal within the 95% CI of their paired difference, over seeds when "
        'there are several, counts as equal, and the note says so), else "less accurate". N* '
        "carries a 95% bootstrap interval and is printed with the digits it supports, e.g. "
        '"after 120 tasks (95% CI 90 to 170)"; a lower end of 0 means resamples cheaper from '
        'the first task, an upper end "never" resamples that never pay back',
    ),
    (
        "iso-accuracy energy",
        "meta-training energy at the first validation checkpoint whose score reaches baseline "
        "b's test score",
    ),
    (
        "energy-to-target",
        "meta-training energy spent when the validation score first reaches the suite's target",
    ),
    (
        "energy by component",
        "E_meta and E_deploy for GPU, CPU and DRAM, each with its source and estimated flag, "
        "and the share of joules that meters measured; the totals sum the whole node (default) "
        "or the GPU only (energy scope `gpu`)",
    ),
    (
        "CO2 (g)",
        "kWh x carbon intensity x PUE, intensity and its source stored with the run",
    ),
    (
        "net energy",
        "gross minus the idle baseline (idle W x seconds, measured before the run, per "
        "component); never shown negative: within ±1.96 x the idle power's std x seconds of the"
        ' baseline it reads "within idle noise", further below "below the idle baseline"',
    ),
    (
        "marks",
        "† `transductive` (predictions depended on the other queries of the episode: never "
        "ranked against inductive rows unmarked), ⚠ `foreign_load_flag` (other processes used "
        "more than 10% of the machine's CPU, time-weighted over the row's windows), ‡ "
        "`shared_energy` (a CPU package shared with concurrent cells, or this process's "
        "attributed share of it, with the reason)",
    ),
    (
        "≈",
        "the figure rests on an estimate (a model of power x time, e.g. codecarbon's), not on a"
        " meter; in a sum of components, at least one part is estimated",
    ),
    (
        "precision",
        "`fp32`, or `bf16` autocast around every method's backbone (the suite's setting, or "
        "`--precision`); compare energy only between rows of equal precision",
    ),
)
