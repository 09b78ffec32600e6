"""Pure functions from ledger tables to report tables (no I/O).

Metric definitions are those of DESIGN.md (Metrics); the score's 95% CI is
1.96 * std(ddof=1) / sqrt(n) over all test episodes pooled across seeds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

PHASES = ("meta_train", "validate", "adapt", "predict")


def window_joules(windows: pd.DataFrame) -> pd.Series:
    """Total joules of each window (NaN when nothing measured energy)."""
    def total(text: str) -> float:
        values = json.loads(text or "{}").values()
        return float(sum(values)) if values else np.nan

    return windows["joules"].map(total)


def window_source(windows: pd.DataFrame) -> pd.Series:
    """The sources of each window's components, e.g. 'nvml-counter+rapl', or 'none'."""
    def sources(text: str) -> str:
        found = sorted(set(json.loads(text or "{}").values()))
        return "+".join(found) if found else "none"

    return windows["sources"].map(sources)


def results_table(cells: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """One tidy row per cell and phase: windows, items, seconds, joules and source."""
    done = cells[cells["status"] == "done"]
    w = windows.assign(joules_j=window_joules(windows), source=window_source(windows))
    per_phase = (
        w.groupby(["cell_key", "phase"])
        .agg(n_windows=("idx", "size"), n_items=("n_items", "sum"), seconds_s=("seconds", "sum"),
             joules_j=("joules_j", lambda s: s.sum(min_count=len(s))),
             energy_source=("source", lambda s: "+".join(sorted(set(s)))))
        .reset_index()
    )
    cols = ["cell_key", "suite", "profile", "method", "seed", "device", "score_name",
            "score_mean", "score_ci95", "fingerprint"]
    out = done[cols].merge(per_phase, on="cell_key")
    out["phase"] = pd.Categorical(out["phase"], PHASES, ordered=True)
    return out.sort_values(["suite", "method", "seed", "phase"]).reset_index(drop=True)


def ci95(values: pd.Series) -> float:
    n = len(values)
    return float(1.96 * values.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan


def metric_columns(metrics: pd.DataFrame | None, keys: pd.Series) -> dict[str, float]:
    """Extra per-episode metrics (ledger table episode_metrics) of the cells `keys`, pooled:
    {"<name>_mean": ..., "<name>_ci95": ...} per metric name (none when there are none)."""
    if metrics is None or metrics.empty:
        return {}
    mine = metrics[metrics["cell_key"].isin(keys)]
    out: dict[str, float] = {}
    for name, values in mine.groupby("name")["value"]:
        out[f"{name}_mean"] = float(values.mean())
        out[f"{name}_ci95"] = ci95(values)
    return out


def summary_table(cells: pd.DataFrame, windows: pd.DataFrame,
                  episodes: pd.DataFrame, metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per suite and method, pooled over seeds: score with 95% CI, seed spread, seconds per
    phase (meta_train and validate in total, adapt and predict per test task), and the mean
    with 95% CI of every extra per-episode metric (`metrics`: ledger table episode_metrics)."""
    done = cells[cells["status"] == "done"]
    rows = []
    for (suite, method), group in done.groupby(["suite", "method"], sort=True):
        scores = episodes[episodes["cell_key"].isin(group["cell_key"])]["score"]
        w = windows[windows["cell_key"].isin(group["cell_key"])]
        seconds = w.groupby("phase")["seconds"].sum()
        n_seeds = len(group)
        n_tasks = int(group["n_test"].sum())
        rows.append({
            "suite": suite,
            "method": method,
            "score_name": group["score_name"].iloc[0],
            "n_seeds": n_seeds,
            "n_test_episodes": n_tasks,
            "score_mean": float(scores.mean()),
            "score_ci95": ci95(scores),
            "score_seed_std": float(group["score_mean"].std(ddof=1)) if n_seeds > 1 else np.nan,
            "meta_train_s": float(seconds.get("meta_train", 0.0)) / n_seeds,
            "validate_s": float(seconds.get("validate", 0.0)) / n_seeds,
            "adapt_s_per_task": float(seconds.get("adapt", 0.0)) / n_tasks,
            "predict_s_per_task": float(seconds.get("predict", 0.0)) / n_tasks,
            "deploy_s_per_task": float(seconds.get("adapt", 0.0) + seconds.get("predict", 0.0))
            / n_tasks,
            "fingerprints": group["fingerprint"].nunique(),
            **metric_columns(metrics, group["cell_key"]),
        })
    return pd.DataFrame(rows)
