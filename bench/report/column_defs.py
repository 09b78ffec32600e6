"""The entries of the summary.csv column dictionary (bench/report/columns.py turns them
into lookups and docs/report-columns.md): one per column or column pattern, grouped by
the section of the dictionary they belong to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Col:
    name: str  # column name or pattern
    unit: str  # "" for text and flags
    meaning: str
    group: str  # the section of the dictionary it belongs to


def _c(group: str, *rows: tuple[str, str, str]) -> list[Col]:
    return [Col(n, u, m, group) for n, u, m in rows]


COLUMNS: list[Col] = [
    *_c(
        "identity and settings (a summary row pools the seeds of one value of all of these)",
        ("suite", "", "suite name"),
        ("method", "", "method name"),
        ("task", "", "classification | regression"),
        ("score_name", "", "accuracy | mse"),
        ("profile", "", "suite profile (smoke | standard | paper | ...)"),
        ("device", "", "device the cells ran on (cpu | cuda | cuda:N)"),
        ("precision", "", "fp32 | bf16 (NULL in older ledgers = fp32)"),
        (
            "normalization",
            "",
            "support | transductive: where batch-statistics BatchNorm took its statistics "
            "(NULL in older ledgers = transductive)",
        ),
        ("execution", "", "loop | batched | graph (NULL in older ledgers = loop)"),
        ("torch_threads", "", "torch intra-op threads per cell (empty in older ledgers)"),
        (
            "variant",
            "",
            "empty, unless two suite files of this suite name are both current for the "
            "method: then 'params <first 8 hex of params_hash>' or 'file <suite file>'; "
            "show it in the row's label",
        ),
        ("params_hash", "", "hash of the method's hyperparameters (for the profile)"),
        (
            "suite_path",
            "",
            "the suite file the row's cells ran from; among several baseline rows, the one "
            "of the same file is the baseline",
        ),
        (
            "n_superseded_cells",
            "",
            "done cells of this suite file, method and settings left out because a later "
            "version of the suite file replaced them (never pooled with the current ones)",
        ),
        (
            "superseded_note",
            "",
            "empty, or e.g. '2 cells (seeds 0, 1) from an earlier version of the suite file "
            "left out'",
        ),
        (
            "transductive",
            "",
            "True when normalization is transductive: a query's prediction depended on the "
            "other queries of its episode; never rank such a row against inductive rows "
            "unmarked",
        ),
        ("lower_is_better", "", "True for MSE (regression), False for accuracy"),
        ("n_seeds", "", "seeds pooled in this row"),
        ("n_test", "", "test episodes per seed (the suite's n_test)"),
        ("n_test_episodes", "", "test episodes pooled over all seeds"),
        ("comparable", "", "False when the suite's methods did not see identical test episodes"),
    ),
    *_c(
        "scores",
        (
            "score_mean",
            "score",
            "mean test score over all episodes of all seeds; NaN when diverged",
        ),
        (
            "diverged",
            "",
            "True when the score is not finite on some test episode (NaN or inf loss): "
            "every score column is then NaN, and the row is never ranked or given an N*",
        ),
        (
            "score_note",
            "",
            "empty, or why there is no score: 'score not finite on k of n test episodes' "
            "(diverged) or 'no test episodes recorded'",
        ),
        (
            "score_ci95",
            "score",
            "half-width of the pooled-episode 95% CI: 1.96 std(ddof=1) / sqrt(n episodes)",
        ),
        (
            "score_seed_ci95",
            "score",
            "half-width of the seed-level 95% CI of the mean: t(0.975, n_seeds - 1) "
            "std(seed means, ddof=1) / sqrt(n_seeds); NaN with one seed",
        ),
        ("score_seed_std", "score", "std(ddof=1) of the seed means; NaN with one seed"),
        (
            "score_errbar",
            "score",
            "the error bar plots draw: score_seed_ci95 with >= 2 seeds, else score_ci95",
        ),
        (
            "score_errbar_kind",
            "",
            "seeds | episodes | none: which interval score_errbar is (none: NaN, e.g. a "
            "single episode or a diverged row)",
        ),
        ("target_score", "score", "the suite's target score (energy-to-target)"),
        ("<name>_mean", "score", "extra per-episode score of a source, pooled like score_mean"),
        ("<name>_ci95", "score", "its pooled-episode 95% CI half-width"),
    ),
    *_c(
        "energy (headline totals sum the components of energy_scope)",
        ("energy_scope", "", "node (GPU + CPU + DRAM, default) | gpu (accelerator only)"),
        (
            "deploy_scenario",
            "",
            "stream | batch: the deploy scenario of e_deploy_*, e_task_*, efficiency and N*",
        ),
        ("e_meta_j", "J", "one-off meta_train energy (0 for from-scratch), mean per seed"),
        (
            "e_meta_j_lo",
            "J",
            "lower end of e_meta_j's 95% bootstrap interval (seeds, then meta_train windows; "
            "NaN with a single seed and a single window)",
        ),
        ("e_meta_j_hi", "J", "upper end of e_meta_j's 95% bootstrap interval"),
        ("e_meta_seed_std_j", "J", "std(ddof=1) of E_meta over seeds; NaN with one seed"),
        ("e_validate_j", "J", "validation windows' energy (not part of E_meta), mean per seed"),
        ("e_setup_j", "J", "setup windows' energy (warm-up, capture; neither E_meta nor E_deploy)"),
        ("e_adapt_j_per_task", "J/task", "adapt energy per task (deploy_scenario)"),
        ("e_predict_j_per_task", "J/task", "predict energy per task (deploy_scenario)"),
        ("e_deploy_j_per_task", "J/task", "E_deploy = adapt + predict per task (deploy_scenario)"),
        (
            "e_deploy_j_per_task_lo",
            "J/task",
            "lower end of E_deploy's 95% bootstrap interval (seeds, then deploy chunks: a "
            "chunk's adapt and predict windows together; setup windows excluded; J / "
            "(repeats x tasks)); NaN with a single seed and a single window",
        ),
        ("e_deploy_j_per_task_hi", "J/task", "upper end of E_deploy's 95% bootstrap interval"),
        ("e_deploy_stream_j_per_task", "J/task", "E_deploy of the stream scenario"),
        ("e_deploy_stream_j_per_task_lo", "J/task", "its 95% bootstrap interval, lower end"),
        ("e_deploy_stream_j_per_task_hi", "J/task", "its 95% bootstrap interval, upper end"),
        ("e_deploy_batch_j_per_task", "J/task", "E_deploy of the batch scenario"),
        ("e_deploy_batch_j_per_task_lo", "J/task", "its 95% bootstrap interval, lower end"),
        ("e_deploy_batch_j_per_task_hi", "J/task", "its 95% bootstrap interval, upper end"),
        (
            "e_meta_net_j",
            "J",
            "E_meta minus idle W x seconds; NaN when within the idle baseline's noise "
            "(see e_meta_net_note): never negative",
        ),
        ("e_meta_net_note", "", "empty, 'within idle noise', or why the net figure is missing"),
        ("e_deploy_net_j_per_task", "J/task", "E_deploy net of idle, as e_meta_net_j"),
        ("e_deploy_net_note", "", "as e_meta_net_note"),
        ("co2_meta_g", "g", "CO2 of E_meta: kWh x intensity x PUE"),
        ("co2_adapt_g_per_task", "g/task", "CO2 of adapt per task"),
        ("co2_predict_g_per_task", "g/task", "CO2 of predict per task"),
        ("co2_deploy_g_per_task", "g/task", "CO2 of E_deploy per task"),
        ("source_meta", "", "meters behind E_meta, '+'-joined, or 'no meta-training'"),
        ("source_deploy", "", "meters behind E_deploy, '+'-joined"),
        ("energy_measured", "", "False when no meter covered the row (time only)"),
        ("estimated", "", "True when any part of the headline totals is a model estimate"),
        ("energy_note", "", "measured | estimated | not measured"),
    ),
    *_c(
        "energy by component",
        ("e_meta_<kind>_j", "J", "E_meta of this component kind, mean per seed"),
        ("e_deploy_<kind>_j_per_task", "J/task", "E_deploy of this component kind"),
        ("source_meta_<kind>", "", "its meter(s), e.g. nvml-counter, rapl, estimate:..."),
        ("source_deploy_<kind>", "", "its meter(s)"),
        ("estimated_meta_<kind>", "", "True when the component's E_meta is an estimate"),
        ("estimated_deploy_<kind>", "", "True when the component's E_deploy is an estimate"),
        (
            "measured_share_meta",
            "share",
            "share of E_meta's joules (energy_scope) from measuring meters (NVML, RAPL), 0..1",
        ),
        ("measured_share_deploy", "share", "the same for E_deploy"),
    ),
    *_c(
        "time",
        ("meta_train_s", "s", "meta_train seconds, mean per seed"),
        ("validate_s", "s", "validation seconds, mean per seed"),
        ("setup_s", "s", "setup seconds, mean per seed"),
        ("adapt_s_per_task", "s/task", "adapt latency per task (deploy_scenario)"),
        ("predict_s_per_task", "s/task", "predict latency per task (deploy_scenario)"),
        ("deploy_s_per_task", "s/task", "adapt + predict latency per task (deploy_scenario)"),
        ("deploy_stream_s_per_task", "s/task", "deploy latency per task, stream scenario"),
        ("deploy_batch_s_per_task", "s/task", "deploy time per task, batch scenario"),
    ),
    *_c(
        "amortization",
        ("e_task_j_<label>", "J/task", "E_task(N) = E_meta / N + E_deploy at N = <label>"),
        (
            "accuracy_per_kj_<label>",
            "1/kJ",
            "accuracy / (E_task(N) / 1000); not applicable to regression rows",
        ),
        (
            "inv_mse_per_kj_<label>",
            "1/(MSE kJ)",
            "(1 / MSE) / (E_task(N) / 1000); not applicable to classification rows",
        ),
    ),
    *_c(
        "learning curves",
        ("energy_to_target_j", "J", "meta_train energy at the first checkpoint reaching target"),
        ("seconds_to_target_s", "s", "meta_train seconds to the same checkpoint"),
        ("target_reached", "", "'k/n seeds', or 'no checkpoints'"),
        (
            "iso_energy_vs_<b>_j",
            "J",
            "iso-accuracy energy: meta_train energy at the first checkpoint whose validation "
            "score reaches baseline <b>'s test score (mean over the seeds that do); only "
            "where the row passes the accuracy gate against <b> on the test episodes (the "
            "break-even's), NaN otherwise",
        ),
        (
            "iso_reached_vs_<b>",
            "",
            "'k/n seeds', 'no checkpoints', 'baseline', 'less accurate', 'diverged', or the "
            "break-even note saying why there is no comparison (e.g. 'no <b> run')",
        ),
    ),
    *_c(
        "break-even against baseline <b> (scratch, transfer)",
        (
            "breakeven_vs_<b>_n",
            "tasks",
            "N* = (E_meta - E_meta_b) / (E_deploy_b - E_deploy) where status is after or "
            "until; NaN otherwise",
        ),
        ("breakeven_vs_<b>_lo", "tasks", "lower end of N*'s 95% bootstrap interval"),
        ("breakeven_vs_<b>_hi", "tasks", "upper end (inf: 'never' lies inside the interval)"),
        (
            "breakeven_vs_<b>_status",
            "",
            "after | from_first_task | never | until | less_accurate | diverged | baseline "
            "| no_baseline (also: the baseline diverged) | not_measured | not_comparable",
        ),
        ("breakeven_vs_<b>_note", "", "the reason in words (e.g. 'scores equal within 95% CI')"),
    ),
    *_c(
        "flags",
        (
            "foreign_load",
            "share",
            "CPU share other processes used while the row's cells ran: seconds-weighted mean "
            "of the windows' foreign_cpu_load over windows of >= 0.2 s "
            "(bench.report.energy.LOAD_MIN_WINDOW_S; shorter ones read 0 or 1 CPU-clock "
            "tick); NaN where no such window recorded it",
        ),
        ("foreign_load_max", "share", "its largest value in one such window"),
        (
            "foreign_load_flag",
            "",
            "True when foreign_load > 0.1 (bench.report.energy.FOREIGN_LOAD_THRESHOLD): "
            "mark the row wherever its numbers appear",
        ),
        (
            "foreign_load_note",
            "",
            "empty, or for a flagged row: 'other processes used 35% of the machine's CPU "
            "while these cells ran (time-weighted; up to 80% in one window): contention "
            "may have inflated its time and energy'",
        ),
        (
            "energy_sharing",
            "",
            "own (no other cell shared the CPU package) | attributed (cells shared it; every "
            "CPU and DRAM figure is this process's share: a package split by CPU time, or "
            "an estimate for the process such as estimate:codecarbon-process) | shared "
            "(cells shared it and some CPU or DRAM figure is the whole package's or "
            "machine's, counted once per concurrent cell)",
        ),
        ("shared_energy", "", "True when energy_sharing is shared: the row's energy is inflated"),
        (
            "shared_energy_reason",
            "",
            "empty for own; else what happened, e.g. 'ran on an executor whose concurrent "
            "cells share the CPU "
            "package; its CPU and DRAM figures are this process's share: estimated for this "
            "process's CPU time and memory (estimate:codecarbon-process)'",
        ),
    ),
]
