"""`metabench compare RUN_DIR RUN_DIR... [--out DIR]`: the same cells of two or more runs
side by side (e.g. one grid on 2 CPU cores and on an H200): seconds and joules per phase,
scores, and their ratios to the first run.

Cells match on every setting of the cell key except the machine's (device, threads):
suite, method, seed, profile, precision, normalization, execution and the hyperparameter
hash. A run folder holds a ledger; an older report folder with only results.csv (and
summary.csv) is read too, and the settings it does not record match anything (the page
says which). Matched cells whose test episodes differ (episode-set fingerprints) are
refused: their scores and costs are not comparable.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.errors import MetabenchError
from bench.report import fmt
from bench.report.aggregate import enrich_windows
from bench.report.energy import row_flags
from bench.report.figure import SMALL_PT, log_axes, new_figure, to_svg
from bench.report.html import environment
from bench.report.marks import FOREIGN
from bench.store import LEDGER_NAME

MATCH = ("suite", "method", "seed", "profile", "precision", "normalization", "execution")
MATCH_EXTRA = ("params_hash",)  # a ledger has it; results.csv does not
# Ledger NULLs mean the setting predates its column (bench/store.py).
NULL_MEANS = {"precision": "fp32", "normalization": "transductive", "execution": "loop"}
PHASES = ("meta_train", "validate", "setup", "adapt", "predict")
PER_TASK = ("adapt", "predict")
RATIO_PLOT = (("meta_train", "seconds"), ("meta_train", "joules"), ("deploy", "seconds"),
              ("deploy", "joules"))  # fmt: skip


# --------------------------------------------------------------------------- loading


def _windows(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(enriched windows, done cells) of a ledger or, without one, of results.csv."""
    if (run_dir / LEDGER_NAME).is_file():
        from bench.report.writer import load_tables

        t = load_tables(run_dir)
        cells = t.done.copy()
        for col, value in NULL_MEANS.items():
            cells[col] = cells[col].fillna(value) if col in cells else value
        return enrich_windows(t), cells
    results = run_dir / "results.csv"
    if not results.is_file():
        raise MetabenchError(
            f"{run_dir}: expected a run folder holding {LEDGER_NAME} (or a report folder "
            "holding results.csv), found neither"
        )
    w = pd.read_csv(results)
    summary = run_dir / "summary.csv"
    keep = ["suite", "method", "precision"]
    if summary.is_file() and "precision" not in w:
        w = w.merge(pd.read_csv(summary)[keep], on=["suite", "method"], how="left")
    cells = w.drop_duplicates("cell_key")
    return w, cells


def load_cells(run_dir: Path) -> pd.DataFrame:
    """One row per done cell: its settings, fingerprint, score, and per phase the seconds
    and joules (meta_train, validate, setup: totals; adapt, predict, deploy: per task)."""
    run_dir = Path(run_dir)
    w, cells = _windows(run_dir)
    ledger = (run_dir / LEDGER_NAME).is_file()
    rows = []
    for key, g in w.groupby("cell_key", sort=False):
        cell = cells[cells["cell_key"] == key].iloc[0]
        row = {c: cell.get(c) for c in (*MATCH, *MATCH_EXTRA, "fingerprint", "device")}
        row.update(
            cell_key=key,
            score_mean=float(cell["score_mean"]),
            score_ci95=float(cell["score_ci95"]),
            lower_is_better=str(cell.get("task")) == "regression",
        )
        row.update(_phase_figures(g))
        row["foreign_load"], row["foreign_load_note"] = (
            _foreign_load(g, cell) if ledger else (False, "")
        )
        rows.append(row)
    if not rows:
        raise MetabenchError(f"{run_dir}: no finished cell to compare")
    return pd.DataFrame(rows)


def _foreign_load(w: pd.DataFrame, cell: pd.Series) -> tuple[bool, str]:
    """(flagged, note) of one cell of a ledger: other processes loaded the CPU while it
    ran, by the report's own rule (bench/report/energy.py row_flags). A run read from
    results.csv alone is never flagged (its CSV does not carry what the rule reads)."""
    flags = row_flags(w, pd.DataFrame([cell]))
    note = flags.get("foreign_load_note") or ""
    if flags["foreign_load_flag"] and not note:
        note = f"other processes used up to {flags['foreign_load_max']:.0%} of the CPU"
    return bool(flags["foreign_load_flag"]), str(note)


def _sum(values: pd.Series) -> float:
    return float(values.sum(min_count=len(values))) if len(values) else math.nan


def _phase_figures(g: pd.DataFrame) -> dict[str, float]:
    """{<phase>_s, <phase>_j}: totals for one-off phases, per task for deploy phases."""
    out: dict[str, float] = {}
    scenario = g["scenario"].fillna("stream") if "scenario" in g else None
    for phase in PHASES:
        p = g[(g["phase"] == phase) & ((scenario != "batch") if scenario is not None else True)]
        if p.empty:
            out[f"{phase}_s"] = out[f"{phase}_j"] = math.nan if phase in PER_TASK else 0.0
            continue
        divisor = 1.0
        if phase in PER_TASK:
            items = p["items_done"] if "items_done" in p else p["n_items"]
            divisor = float(items.sum())
        out[f"{phase}_s"] = float(p["seconds_s"].sum()) / divisor
        out[f"{phase}_j"] = _sum(p["joules_j"]) / divisor
    for unit in ("s", "j"):
        out[f"deploy_{unit}"] = out[f"adapt_{unit}"] + out[f"predict_{unit}"]
    return out


# --------------------------------------------------------------------------- matching


def _known(cells: pd.DataFrame) -> list[str]:
    return [c for c in (*MATCH, *MATCH_EXTRA) if c in cells and cells[c].notna().all()]


def match(runs: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str], dict[str, int]]:
    """(one row per cell present in every run, with each run's figures suffixed
    "@<label>"; the settings matched on; unmatched cells per run). Raises MetabenchError
    when matched cells saw different test episodes."""
    labels = list(runs)
    keys = [k for k in (*MATCH, *MATCH_EXTRA) if all(k in _known(c) for c in runs.values())]
    merged = None
    for label in labels:
        c = runs[label].copy()
        c["seed"] = c["seed"].astype(int)
        values = [x for x in c.columns if x not in keys]
        c = c.rename(columns={x: f"{x}@{label}" for x in values})
        merged = c if merged is None else merged.merge(c, on=keys, how="inner")
    unmatched = {label: len(runs[label]) - len(merged) for label in labels}
    prints = merged[[f"fingerprint@{label}" for label in labels]].astype(str)
    differ = merged[prints.nunique(axis=1) > 1]
    if len(differ):
        cells = ", ".join(f"{r.suite}/{r.method}/seed {r.seed}" for r in differ.itertuples())
        raise MetabenchError(
            f"compare: the runs tested different episodes for {cells} (episode-set "
            "fingerprints differ): their scores and costs are not comparable; compare runs "
            "of the same suite files and seeds"
        )
    return merged.reset_index(drop=True), keys, unmatched


def compare_table(merged: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """compare.csv: one row per cell and phase; seconds and joules in each run and their
    ratio to the first run (deploy phases per task, others in total)."""
    rows = []
    first = labels[0]
    for _, r in merged.iterrows():
        for phase in (*PHASES, "deploy"):
            row = {"suite": r["suite"], "method": r["method"], "seed": r["seed"]}
            row["phase"] = phase
            row["foreign_load"] = ",".join(x for x in labels if r[f"foreign_load@{x}"])
            row["per"] = "task" if phase in (*PER_TASK, "deploy") else "cell"
            for unit, name in (("s", "seconds"), ("j", "joules")):
                base = r[f"{phase}_{unit}@{first}"]
                for label in labels:
                    value = r[f"{phase}_{unit}@{label}"]
                    row[f"{name}@{label}"] = value
                    if label != first:
                        # a phase one run did not record (e.g. setup windows, newer than
                        # an older ledger) has no ratio, not x0
                        row[f"{name} ratio {label}/{first}"] = (
                            value / base if base and value and base == base else math.nan
                        )
            if all(row[f"seconds@{x}"] in (0.0,) for x in labels):
                continue  # a phase no run has (e.g. meta_train of from-scratch)
            rows.append(row)
    return pd.DataFrame(rows)


def score_table(merged: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """compare-scores.csv: each run's score ± CI per cell, and the difference to the first."""
    out = merged[["suite", "method", "seed"]].copy()
    out["lower_is_better"] = merged[f"lower_is_better@{labels[0]}"]
    for label in labels:
        out[f"score@{label}"] = merged[f"score_mean@{label}"]
        out[f"ci95@{label}"] = merged[f"score_ci95@{label}"]
    for label in labels[1:]:
        out[f"score ratio {label}/{labels[0]}"] = (
            merged[f"score_mean@{label}"] / merged[f"score_mean@{labels[0]}"]
        )
        out[f"difference {label}-{labels[0]}"] = (
            merged[f"score_mean@{label}"] - merged[f"score_mean@{labels[0]}"]
        )
    return out


# --------------------------------------------------------------------------- outputs

PLOT_STYLE = {
    ("meta_train", "seconds"): ("o", "#0072B2", "meta-training time"),
    ("meta_train", "joules"): ("o", "#D55E00", "meta-training energy"),
    ("deploy", "seconds"): ("s", "#56B4E9", "deploy time per task"),
    ("deploy", "joules"): ("s", "#E69F00", "deploy energy per task"),
}


def ratio_figure(table: pd.DataFrame, suite: str, first: str, other: str) -> plt.Figure | None:
    """Ratios other / first per method of one suite: time and energy of meta-training and
    of deploy per task, on a log axis with 1 marked."""
    s = table[(table["suite"] == suite) & table["phase"].isin(["meta_train", "deploy"])]
    if s.empty:
        return None
    methods = sorted(s["method"].unique(), reverse=True)
    fig, ax, _ = new_figure(
        f"{suite}: {other} / {first}, per method",
        f"left of 1: {other} took less time or energy than {first}; seed-wise points.",
    )
    handles = {}
    values = []
    for (phase, unit), (marker, color, label) in PLOT_STYLE.items():
        col = f"{unit} ratio {other}/{first}"
        p = s[(s["phase"] == phase) & s[col].notna() & np.isfinite(s[col]) & (s[col] > 0)]
        offset = {"meta_train": 0.12, "deploy": -0.12}[phase]
        y = [methods.index(m) + offset for m in p["method"]]
        (h,) = ax.plot(p[col], y, linestyle="none", marker=marker, color=color, ms=7)
        handles[label] = h
        values += list(p[col])
    if not values:
        plt.close(fig)
        return None
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(methods)), methods)
    ax.set_ylim(-0.6, len(methods) - 0.4)
    lo, hi = min(values), max(values)
    ax.set_xlim(min(lo, 1.0) / 1.6, max(hi, 1.0) * 1.6)
    log_axes(ax, "x")
    ax.set_xlabel(f"ratio {other} / {first} (log scale)")
    fig.legend(
        handles=list(handles.values()),
        labels=list(handles),
        loc="outside lower center",
        ncols=2,
        fontsize=SMALL_PT,
    )
    return fig


def _labels(run_dirs: list[Path]) -> list[str]:
    """Short, distinct names for the runs: the folder name, with its parent if needed."""
    names = [p.resolve().name for p in run_dirs]
    if len(set(names)) < len(names):
        names = [f"{p.resolve().parent.name}/{p.resolve().name}" for p in run_dirs]
    if len(set(names)) < len(names):
        names = [f"run{i}" for i in range(len(run_dirs))]
    return names


def _ratio_text(value: float) -> str:
    return "—" if fmt.is_missing(value) or math.isinf(value) else f"×{fmt.sig(value, 2)}"


def foreign_note(merged: pd.DataFrame, labels: list[str]) -> str:
    """A note naming the cells of each run that ran under foreign CPU load ("" if none):
    their seconds and joules may include other processes' work, and so their ratios."""
    parts = []
    for x in labels:
        flagged = merged[merged[f"foreign_load@{x}"].astype(bool)]
        if len(flagged):
            cells = ", ".join(f"{r.suite}/{r.method}/seed {r.seed}" for r in flagged.itertuples())
            parts.append(f"{x}: {cells}")
    if not parts:
        return ""
    return (
        f"{FOREIGN} Foreign CPU load (other processes used more than 10% of the machine's "
        f"CPU while these cells ran): {'; '.join(parts)}. Their time and energy, and the "
        "ratios built on them, may include other processes' work."
    )


def text_table(table: pd.DataFrame, labels: list[str]) -> str:
    """The ratios for a terminal: one line per cell and phase, against the first run
    (⚠ after the method where a run's cell ran under foreign CPU load)."""
    first = labels[0]
    head = f"{'suite':<24} {'method':<12} {'seed':>4}  {'phase':<10}"
    for label in labels[1:]:
        head += f"  {'time ' + label + '/' + first:>24}  {'energy ' + label + '/' + first:>24}"
    lines = [head]
    for _, r in table.iterrows():
        method = r["method"] + (f" {FOREIGN}" if r.get("foreign_load") else "")
        line = f"{r['suite']:<24} {method:<12} {int(r['seed']):>4}  {r['phase']:<10}"
        for label in labels[1:]:
            line += f"  {_ratio_text(r[f'seconds ratio {label}/{first}']):>24}"
            line += f"  {_ratio_text(r[f'joules ratio {label}/{first}']):>24}"
        lines.append(line)
    return "\n".join(lines)


def compare(run_dirs: list[Path], out: Path | None = None) -> str:
    """Compare the runs; returns the ratio table as text. With `out`, also writes
    compare.csv, compare-scores.csv, one ratio plot per suite and pair (PNG) and
    compare.html into `out` (and nothing elsewhere). Raises MetabenchError for fewer than
    two runs, a folder without results, no cell in common, or differing episodes."""
    if len(run_dirs) < 2:
        raise MetabenchError("compare: expected two or more run folders")
    labels = _labels([Path(p) for p in run_dirs])
    runs = {label: load_cells(Path(p)) for label, p in zip(labels, run_dirs, strict=True)}
    merged, keys, unmatched = match(runs)
    if merged.empty:
        raise MetabenchError(
            f"compare: no cell is in every run (matched on {', '.join(keys)}); compare runs "
            "of the same suites, methods, seeds and settings"
        )
    table = compare_table(merged, labels)
    note = foreign_note(merged, labels)
    text = text_table(table, labels) + (f"\n\n{note}" if note else "")
    if out is None:
        return text
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MetabenchError(f"--out {out}: expected a folder, found a file")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "compare.csv", index=False)
    scores = score_table(merged, labels)
    scores.to_csv(out / "compare-scores.csv", index=False)
    plots = []
    for suite in sorted(merged["suite"].unique()):
        for other in labels[1:]:
            fig = ratio_figure(table, suite, labels[0], other)
            if fig is None:
                continue
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"ratio-{suite}-{other}-vs-{labels[0]}")
            fig.savefig(out / f"{name}.png", dpi=110)
            plots.append({"name": name, "suite": suite, "svg": to_svg(fig, name)})
            plt.close(fig)
    template = environment().get_template("compare.html.j2")
    page = template.render(
        labels=labels,
        runs=[
            _run_row(chr(ord("A") + i), x, run_dirs[i], runs[x], unmatched[x])
            for i, x in enumerate(labels)
        ],
        keys=keys,
        unknown=[k for k in (*MATCH, *MATCH_EXTRA) if k not in keys],
        plots=plots,
        rows=_page_rows(table, labels),
        foreign_note=note,
        scores=_score_rows(scores, labels),
    )
    (out / "compare.html").write_text(page)
    return text


def _page_rows(table: pd.DataFrame, labels: list[str]) -> list[list[str]]:
    rows = []
    for _, r in table.iterrows():
        per = " / task" if r["per"] == "task" else ""
        method = r["method"] + (f" {FOREIGN}" if r.get("foreign_load") else "")
        cells = [r["suite"], method, str(int(r["seed"])), r["phase"] + per]
        for name, show in (("seconds", fmt.seconds), ("joules", fmt.joules)):
            cells += [show(r[f"{name}@{x}"]) for x in labels]
            cells += [_ratio_text(r[f"{name} ratio {x}/{labels[0]}"]) for x in labels[1:]]
        rows.append(cells)
    return rows


def _run_row(letter: str, label: str, path: Path, cells: pd.DataFrame, unmatched: int) -> dict:
    devices = sorted({str(d) for d in cells["device"].dropna()})
    return {
        "letter": letter,
        "label": label,
        "path": str(path),
        "cells": len(cells),
        "unmatched": unmatched,
        "devices": ", ".join(devices) or "not recorded",
    }


def _score_rows(scores: pd.DataFrame, labels: list[str]) -> list[list[str]]:
    rows = []
    for _, r in scores.iterrows():
        lower = bool(r["lower_is_better"])
        cells = [r["suite"], r["method"], str(int(r["seed"]))]
        cells += [fmt.score(r[f"score@{x}"], r[f"ci95@{x}"], lower) for x in labels]
        scale = 1.0 if lower else 100.0  # accuracy differences in points
        unit = "" if lower else " points"
        cells += [
            f"{fmt.sig(scale * r[f'difference {x}-{labels[0]}'], 2)}{unit}" for x in labels[1:]
        ]
        rows.append(cells)
    return rows
