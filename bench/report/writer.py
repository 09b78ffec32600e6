"""Write a run directory's report from its ledger alone (nothing re-runs): results.csv,
summary.csv, trace.csv, summary.md, one PNG per figure and a self-contained index.html;
then refresh the index of all runs in the parent directory."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.errors import MetabenchError
from bench.report import breakeven, plots
from bench.report.aggregate import (
    LedgerTables,
    enrich_windows,
    fingerprint_conflicts,
    headline,
    learning_curves,
    results_table,
    summary_table,
    trace_table,
)
from bench.report.html import Column, render_index, render_report, table
from bench.store import LEDGER_NAME, Ledger

TABLES = (
    "cells",
    "windows",
    "episodes",
    "checkpoints",
    "idle",
    "carbon",
    "samples",
    "runs",
    "episode_metrics",
)

SUMMARY_COLUMNS = [
    Column("suite", "suite", "text"),
    Column("method", "method", "text"),
    Column("precision", "precision", "text"),
    Column("score_name", "score", "text"),
    Column("score_mean", "mean"),
    Column("score_ci95", "±95% CI"),
    Column("score_seed_std", "seed std"),
    Column("n_seeds", "seeds"),
    Column("e_meta_j", "E_meta (J)", "energy"),
    Column("e_meta_net_j", "E_meta net (J)", "energy"),
    Column("e_validate_j", "validate (J)", "energy"),
    Column("e_adapt_j_per_task", "adapt (J/task)", "energy"),
    Column("e_predict_j_per_task", "predict (J/task)", "energy"),
    Column("e_deploy_j_per_task", "E_deploy (J/task)", "energy"),
    Column("e_deploy_net_j_per_task", "E_deploy net (J/task)", "energy"),
    Column("breakeven_vs_scratch_text", "N* vs scratch", "text"),
    Column("breakeven_vs_transfer_text", "N* vs transfer", "text"),
    Column("energy_to_target_j", "energy-to-target (J)", "energy"),
    Column("target_reached", "target reached", "text"),
    Column("val_score_at_budget", "val score at common budget"),
    Column("budget_j", "common budget (J)", "energy"),
    Column("co2_meta_g", "CO2 meta (g)", "energy"),
    Column("co2_deploy_g_per_task", "CO2 deploy (g/task)", "energy"),
    Column("source_meta", "source meta", "text"),
    Column("source_deploy", "source deploy", "text"),
    Column("energy_note", "energy", "text"),
]
TIMING_COLUMNS = [
    Column("suite", "suite", "text"),
    Column("method", "method", "text"),
    Column("meta_train_s", "meta_train (s)"),
    Column("validate_s", "validate (s)"),
    Column("adapt_s_per_task", "adapt (s/task)"),
    Column("predict_s_per_task", "predict (s/task)"),
    Column("deploy_s_per_task", "deploy (s/task)"),
    Column("seconds_to_target_s", "time-to-target (s)"),
]


def amortization_columns() -> list[Column]:
    cols = [Column("suite", "suite", "text"), Column("method", "method", "text")]
    for label, title in (
        ("n1", "N=1"),
        ("ntest", "N=n_test"),
        ("n10000", "N=10⁴"),
        ("ninf", "N=∞"),
    ):
        cols.append(Column(f"e_task_j_{label}", f"E_task {title} (J)", "energy"))
    for label, title in (
        ("n1", "N=1"),
        ("ntest", "N=n_test"),
        ("n10000", "N=10⁴"),
        ("ninf", "N=∞"),
    ):
        cols.append(Column(f"accuracy_per_kj_{label}", f"acc/kJ {title}", "energy"))
        cols.append(Column(f"inv_mse_per_kj_{label}", f"(1/MSE)/kJ {title}", "energy"))
    return cols


def load_tables(run_dir: Path) -> LedgerTables:
    ledger = Ledger(run_dir)
    return LedgerTables(**{name: ledger.table(name) for name in TABLES})


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write every report file into `out` (default: the run directory); returns the path
    of its index.html."""
    run_dir = Path(run_dir)
    if not (run_dir / LEDGER_NAME).is_file():
        raise MetabenchError(
            f"{run_dir}: expected a run directory holding {LEDGER_NAME}, "
            "found none (run `metabench run` first)"
        )
    out = Path(out or run_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = load_tables(run_dir)
    summary = summary_table(t)
    results_table(t).to_csv(out / "results.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    trace_table(t).to_csv(out / "trace.csv", index=False)
    (out / "summary.md").write_text(summary_markdown(summary))
    index = out / "index.html"
    index.write_text(render_report(page_context(t, summary, out, run_dir.resolve().name)))
    write_runs_index(out.parent)
    return index


# --------------------------------------------------------------------------- markdown


def _fmt(value: object, energy: bool = False) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "not measured" if energy else "—"
        return f"{value:.4g}"
    return str(value)


def summary_markdown(summary: pd.DataFrame) -> str:
    """The headline table for papers: score, E_meta, E_deploy, E_task and efficiency at
    N = n_test, break-even vs from-scratch; ≈ marks estimated energy."""
    head = (
        "| suite | method | score ± 95% CI | E_meta (J) | E_deploy (J/task) | "
        "E_task(n_test) (J/task) | score per kJ at n_test | N* vs scratch |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for _, r in summary.iterrows():
        lower = bool(r["lower_is_better"])
        eff = r["inv_mse_per_kj_ntest" if lower else "accuracy_per_kj_ntest"]
        eff_text = _fmt(eff, True)
        if eff == eff:  # not NaN: name the unit
            eff_text += " 1/MSE per kJ" if lower else " acc/kJ"
        mark = " ≈" if r["estimated"] else ""
        be = [r[f"breakeven_vs_scratch_{k}"] for k in ("status", "n", "lo", "hi")]
        lines.append(
            f"| {r['suite']} | {r['method']}{mark} | {r['score_name']} "
            f"{r['score_mean']:.4g} ± {_fmt(r['score_ci95'])} | {_fmt(r['e_meta_j'], True)} | "
            f"{_fmt(r['e_deploy_j_per_task'], True)} | {_fmt(r['e_task_j_ntest'], True)} | "
            f"{eff_text} | {breakeven.text(*be, 'scratch')} |"
        )
    note = (
        "\n≈: estimated energy (modelled, e.g. estimate:codecarbon). "
        '"not measured": no meter covered the phase. n_test: test episodes per seed.\n'
    )
    return head + "\n".join(lines) + "\n" + note


# --------------------------------------------------------------------------- page


def page_context(t: LedgerTables, summary: pd.DataFrame, out: Path, title: str) -> dict:
    conflicts = fingerprint_conflicts(t.cells)
    if len(summary):
        summary = breakeven.with_text(summary)
    est = summary["estimated"] if len(summary) else None
    return {
        "title": title,
        "headline": headline(summary, conflicts)["sentence"].tolist()
        if len(summary)
        else ["No completed cells in this run."],
        "conflicts": conflicts.to_dict("records"),
        "summary": table(summary, SUMMARY_COLUMNS, "summary", est),
        "amortization": table(summary, amortization_columns(), "amortization", est),
        "timing": table(summary, TIMING_COLUMNS, "timing"),
        **figures(t, summary, out),
        **measurement_context(t),
        **provenance_context(t),
    }


def _timeline(t: LedgerTables) -> object:
    """The power timeline of the first cell with samples (else the first measured one)."""
    ew = enrich_windows(t)
    if ew.empty:
        return None
    trace = trace_table(t)
    keys = list(trace["cell_key"].unique()) or list(
        ew.loc[ew["joules_j"].notna(), "cell_key"].unique()
    )
    if not keys:
        return None
    return plots.power_timeline(trace[trace["cell_key"] == keys[0]], ew[ew["cell_key"] == keys[0]])


def _figure_list(t: LedgerTables, summary: pd.DataFrame) -> Iterator[tuple[str, str, object]]:
    """(file name, caption, figure or None) for every plot of the report, drawn one at a
    time as the caller iterates (the caller closes each: a 14-suite grid has 58 plots)."""
    styles = plots.method_styles(summary["method"].tolist() if len(summary) else [])
    curves = learning_curves(t)
    for suite, s in summary.groupby("suite", sort=True):
        yield (
            f"{suite}-score-vs-energy",
            f"{suite}: score vs energy per task at N = n_test with 95% CI; dashed: Pareto front.",
            plots.accuracy_vs_energy(s, styles),
        )
        yield (
            f"{suite}-amortization",
            f"{suite}: E_task(N) vs N; X marks break-even N*.",
            plots.amortization(s, styles),
        )
        yield (
            f"{suite}-learning-curves",
            f"{suite}: validation score vs cumulative meta-training energy; dashed: target.",
            plots.learning_curves(curves[curves["suite"] == suite], styles),
        )
        yield (
            f"{suite}-efficiency",
            f"{suite}: score per kJ at N = n_test.",
            plots.efficiency_bars(s, styles),
        )
    yield ("power-timeline", "Power of one cell over time, phases shaded.", _timeline(t))
    yield (
        "co2",
        "CO2 per task at N = n_test.",
        plots.co2_per_method(summary, styles) if len(summary) else None,
    )


def figures(t: LedgerTables, summary: pd.DataFrame, out: Path) -> dict:
    items, notes = [], []
    for name, caption, fig in _figure_list(t, summary):
        if fig is None:
            notes.append(
                f"{caption.split(':')[0]}: {name} not drawn — nothing to plot "
                "(energy not measured, or no meta-training checkpoints)."
            )
            continue
        fig.savefig(out / f"{name}.png", dpi=110)
        items.append({"name": name, "caption": caption, "svg": plots.to_svg(fig, name)})
        plt.close(fig)
    return {"plots": items, "plot_notes": notes}


def measurement_context(t: LedgerTables) -> dict:
    ew = enrich_windows(t)
    sources = sorted({s for src in ew.get("source", []) for s in src.split("+")})
    warnings = []
    if len(ew):
        for (cell, phase), g in ew[ew["warnings"] != ""].groupby(["cell_key", "phase"]):
            warnings.append(f"{cell} {phase}: {'; '.join(sorted(set(g['warnings'])))}")
        est = ew[ew["estimated"]]
        for cell in est["cell_key"].unique():
            warnings.append(
                f"{cell}: energy is estimated, not measured "
                f"({', '.join(sorted(set(est[est['cell_key'] == cell]['source'])))})"
            )
        for cell in ew.loc[ew["joules_j"].isna(), "cell_key"].unique():
            warnings.append(f"{cell}: energy not measured for some windows (time only)")
    idle = t.idle.rename(columns={"watts": "idle_w", "seconds": "measured_for_s"})
    carbon = t.carbon
    return {
        "sources": sources,
        "warnings": warnings,
        "idle": table(
            idle,
            [
                Column("run_id", "run", "text"),
                Column("component", "component", "text"),
                Column("idle_w", "idle power (W)"),
                Column("source", "source", "text"),
                Column("measured_for_s", "measured for (s)"),
            ],
            "idle",
        ),
        "carbon": table(
            carbon,
            [
                Column("run_id", "run", "text"),
                Column("intensity_g_per_kwh", "intensity (g/kWh)"),
                Column("source", "source", "text"),
                Column("pue", "PUE"),
                Column("region", "region", "text"),
            ],
            "carbon",
        ),
    }


def provenance_context(t: LedgerTables) -> dict:
    runs = [
        {
            "run_id": r.run_id,
            "command": r.command,
            "environment": json.dumps(json.loads(r.environment or "{}"), indent=2),
        }
        for r in t.runs.itertuples()
    ]
    suites = t.done.groupby("suite", as_index=False).agg(
        suite_path=("suite_path", "first"),
        suite_sha256=("suite_sha256", "first"),
        profile=("profile", "first"),
        dataset=("dataset", "first"),
        split=("split", "first"),
        n_way=("n_way", "first"),
        k_shot=("k_shot", "first"),
        n_test=("n_test", "first"),
        target_score=("target_score", "first"),
    )
    cols = [
        Column("suite", "suite", "text"),
        Column("suite_path", "file", "text"),
        Column("suite_sha256", "sha256", "text"),
        Column("profile", "profile", "text"),
        Column("dataset", "dataset", "text"),
        Column("split", "split", "text"),
        Column("n_way", "way"),
        Column("k_shot", "shot"),
        Column("n_test", "test episodes"),
        Column("target_score", "target"),
    ]
    return {"runs": runs, "suites": table(suites, cols, "suites")}


# --------------------------------------------------------------------------- all runs


def write_runs_index(reports_dir: Path) -> Path:
    """reports/index.html: one row per run directory that holds an index.html."""
    runs = []
    for page in sorted(
        reports_dir.glob("*/index.html"), key=lambda p: p.stat().st_mtime, reverse=True
    ):
        summary = page.parent / "summary.csv"
        suites = methods = ""
        if summary.is_file() and summary.stat().st_size > 1:
            s = pd.read_csv(summary)
            suites = ", ".join(sorted(set(s.get("suite", []))))
            methods = ", ".join(sorted(set(s.get("method", []))))
        runs.append(
            {
                "name": page.parent.name,
                "href": f"{page.parent.name}/index.html",
                "suites": suites,
                "methods": methods,
                "written": time.strftime("%Y-%m-%d %H:%M", time.localtime(page.stat().st_mtime)),
            }
        )
    index = reports_dir / "index.html"
    index.write_text(render_index(runs))
    return index
