"""Write a run directory's report from its ledger alone (nothing re-runs): results.csv,
summary.csv, trace.csv, cells.csv, summary.md, one PNG per figure and a self-contained
index.html, all inside the output folder (nothing is written anywhere else)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.errors import MetabenchError
from bench.report import bars, figure, plots, timeline
from bench.report.aggregate import (
    LedgerTables,
    enrich_windows,
    fingerprint_conflicts,
    learning_curves,
    results_table,
    summary_table,
    trace_table,
)
from bench.report.coverage import absent_lines, cells_table, unfinished_cells
from bench.report.headline import TRANSDUCTIVE_NOTE, all_transductive, headline
from bench.report.html import render_report, table
from bench.report.page import page_context
from bench.report.reading import SCOPES
from bench.report.styles import method_styles
from bench.report.tables import TASK_KINDS, answer_columns, answer_notes, marked_label, prepare
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


def load_tables(run_dir: Path) -> LedgerTables:
    ledger = Ledger(run_dir)
    return LedgerTables(**{name: ledger.table(name) for name in TABLES})


def write_report(run_dir: Path, out: Path | None = None, energy_scope: str = "node") -> Path:
    """Write every report file into `out` (default: the run directory) and nothing
    elsewhere; returns the path of its index.html. `energy_scope` (node | gpu) is what the
    headline sums. Raises MetabenchError when run_dir holds no ledger or out is a file."""
    run_dir = Path(run_dir)
    if not (run_dir / LEDGER_NAME).is_file():
        raise MetabenchError(
            f"{run_dir}: expected a run directory holding {LEDGER_NAME}, "
            "found none (run `metabench run` first)"
        )
    if energy_scope not in SCOPES:
        raise MetabenchError(f"--energy-scope: expected one of {SCOPES}, found {energy_scope!r}")
    out = Path(out or run_dir)
    if out.exists() and not out.is_dir():
        raise MetabenchError(f"--out {out}: expected a folder, found a file")
    out.mkdir(parents=True, exist_ok=True)
    t = load_tables(run_dir)
    summary = summary_table(t, energy_scope)
    results_table(t, energy_scope).to_csv(out / "results.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    trace_table(t).to_csv(out / "trace.csv", index=False)
    cells_table(t.cells).to_csv(out / "cells.csv", index=False)
    (out / "summary.md").write_text(summary_markdown(t, summary, energy_scope))
    context = page_context(t, summary, run_dir.resolve().name, energy_scope)
    index = out / "index.html"
    index.write_text(render_report({**context, **figures(t, summary, out, energy_scope)}))
    return index


# --------------------------------------------------------------------------- markdown


def summary_markdown(t: LedgerTables, summary: pd.DataFrame, scope: str = "node") -> str:
    """For papers and terminals: the headline per suite, the answer columns as Markdown
    tables (classification and regression suites apart) with what their marks mean, and
    the cells that did not finish."""
    blocks = headline(summary, fingerprint_conflicts(t.cells), absent_lines(t.cells, t.runs), scope)
    parts = ["# Headline", ""] + [f"- {h.text()}" for h in blocks]
    if all_transductive(summary):
        parts += ["", TRANSDUCTIVE_NOTE]
    if summary.empty:
        parts += ["", "No cell finished in this run: there are no scores or energies to report."]
    else:
        s = prepare(summary)
        parts += ["", "# Answers"]
        for kind, title in TASK_KINDS:
            if (s["task"] == kind).any():
                parts += ["", f"## {title}", "", _markdown_table(s[s["task"] == kind])]
        parts += ["", *answer_notes(s)]
    unfinished = unfinished_cells(t.cells)
    if len(unfinished):
        parts += ["", f"# {len(unfinished)} cell(s) did not finish (full errors in cells.csv)", ""]
        parts += [
            f"- {r.suite} / {r.method} / seed {r.seed}: {r.status}: {r.error_line}"
            for r in unfinished.itertuples()
        ]
    return "\n".join(parts) + "\n"


def _markdown_table(s: pd.DataFrame) -> str:
    t = table(s, answer_columns(s), "answers", marked_label)
    head = "| " + " | ".join(c["title"] for c in t["columns"]) + " |"
    rule = "|" + "---|" * len(t["columns"])
    rows = ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t["rows"]]
    return "\n".join([head, rule, *rows])


def _md_cell(c: dict) -> str:
    """A table cell's text, its second line (an interval) after it in parentheses."""
    return c["text"] + (f" ({c['sub']})" if c.get("sub") else "")


# --------------------------------------------------------------------------- figures


def _timeline(t: LedgerTables) -> object:
    """The power timeline of the first cell with samples (else the first measured one)."""
    ew = enrich_windows(t)  # every component: the timeline draws each kind
    if ew.empty:
        return None
    trace = trace_table(t)
    keys = list(trace["cell_key"].unique()) or list(
        ew.loc[ew["joules_j"].notna(), "cell_key"].unique()
    )
    if not keys:
        return None
    return timeline.power_timeline(
        trace[trace["cell_key"] == keys[0]], ew[ew["cell_key"] == keys[0]]
    )


def figure_list(
    t: LedgerTables, summary: pd.DataFrame, energy_scope: str = "node"
) -> Iterator[tuple[str, str, str, object]]:
    """(suite or "", file name, caption, figure or None) for every plot of the report,
    drawn one at a time as the caller iterates (the caller closes each: a 14-suite grid
    has 85 plots). Learning curves count the energy of `energy_scope`."""
    if summary.empty:
        return
    styles = method_styles(summary["method"].tolist())
    curves = learning_curves(t, energy_scope)
    for suite, s in prepare(summary).groupby("suite", sort=True):
        n = int(s["n_test"].iloc[0])
        yield (
            suite,
            f"{suite}-score-vs-energy",
            f"{suite}: score against energy per task at N = {n} (95% CI bars); the thin line "
            "runs to the same method's energy per task as N grows without bound (E_deploy); "
            "dashed: the Pareto front.",
            plots.accuracy_vs_energy(s, styles),
        )
        yield (
            suite,
            f"{suite}-amortization",
            f"{suite}: energy per task E_meta/N + E_deploy as N tasks share the one-off "
            "meta-training; circles and diamonds mark break-even with from-scratch and "
            "transfer, listed in the table.",
            plots.amortization(s, styles),
        )
        yield (
            suite,
            f"{suite}-learning-curves",
            f"{suite}: validation score against cumulative meta-training energy; dashed: "
            "the suite's target.",
            plots.learning_curves(curves[curves["suite"] == suite], styles, s),
        )
        yield (
            suite,
            f"{suite}-efficiency",
            f"{suite}: score per kJ of energy per task at N = {n}.",
            bars.efficiency_bars(s, styles),
        )
        yield (
            suite,
            f"{suite}-components",
            f"{suite}: energy per task at N = {n} split into GPU, CPU and DRAM, each with "
            "the meter (or model) behind it; estimated parts lighter.",
            bars.component_bars(s, styles),
        )
        yield (
            suite,
            f"{suite}-co2",
            f"{suite}: grams of CO2 per task at N = {n}: deploy plus the meta-training share.",
            bars.co2_per_method(s, styles),
        )
    yield ("", "power-timeline", "Power of one cell over time, phases shaded.", _timeline(t))


def figures(t: LedgerTables, summary: pd.DataFrame, out: Path, energy_scope: str = "node") -> dict:
    """Draw, save (PNG) and inline (SVG) every figure, one at a time; grouped by suite."""
    groups: dict[str, list[dict]] = {}
    notes = []
    for suite, name, caption, fig in figure_list(t, summary, energy_scope):
        if fig is None:
            notes.append(
                f"{name} not drawn: nothing to plot (energy not measured, or no "
                "meta-training checkpoints)."
            )
            continue
        fig.savefig(out / f"{name}.png", dpi=110)
        groups.setdefault(suite or "all suites", []).append(
            {
                "name": name,
                "caption": caption,
                "svg": figure.to_svg(fig, name),
                "wide": fig.get_figwidth() > figure.WIDTH_IN,
            }
        )
        plt.close(fig)
    return {
        "plot_groups": [{"suite": k, "plots": v} for k, v in groups.items()],
        "plot_notes": notes,
    }
