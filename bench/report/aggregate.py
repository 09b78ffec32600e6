"""Pure functions from ledger tables to the summary table (no I/O): one row per suite,
method and setting (profile, device, precision, normalization, execution), pooled over
seeds. Every column is listed in bench/report/columns.py (docs/report-columns.md); the
definitions and their sources are in docs/protocol.md ("Metrics") and the README ("What
the report says"). The pieces live beside this module: windows.py (per-window rows),
energy.py (E_meta, E_deploy, net, components), uncertainty.py (bootstrap intervals),
breakeven.py (N*), curves.py (learning curves, energy-to-target, iso-accuracy energy).

Energy that was not measured is NaN (never 0) and reads "not measured".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report import breakeven
from bench.report.columns import NOT_MEASURED, ordered
from bench.report.curves import curves_from_windows, iso_energy, target_summary
from bench.report.energy import row_energy, row_flags, total
from bench.report.ledger import (
    BASELINES,
    CELL_SETTINGS,
    COMPARISON,
    DEPLOY_PHASES,
    SCENARIOS,
    SETTINGS,
    LedgerTables,
    done_cells,
    lower_is_better,
)
from bench.report.uncertainty import Replicates, bootstrap_row, interval
from bench.report.windows import enrich_windows, results_table, trace_table
from bench.stats import ci95, t_ci95

__all__ = [
    "N_LABELS",
    "LedgerTables",
    "enrich_windows",
    "fingerprint_conflicts",
    "learning_curves",
    "results_table",
    "summary_table",
    "trace_table",
]

ROW_KEYS = ("suite", "method", *SETTINGS)
# Settings that change the cost, not the task or the answer: rows differing only in these
# are compared with each other (COMPARISON leaves them out).
RUN_SETTINGS = tuple(k for k in CELL_SETTINGS if k not in COMPARISON)
# The amortization points; "ntest" is the suite's number of test episodes.
N_LABELS = ("n1", "ntest", "n10000", "ninf")


def n_value(label: str, n_test: int) -> float:
    return {"n1": 1.0, "ntest": float(n_test), "n10000": 1e4, "ninf": math.inf}[label]


def amortized(
    e_meta_j: float, e_deploy_j: float, score: float, lower_better: bool, n_test: int
) -> dict[str, float]:
    """E_task(N) = E_meta / N + E_deploy and efficiency (score per kJ; for regression
    1 / MSE per kJ, in its own columns) at N = 1, n_test, 10^4, inf."""
    out: dict[str, float] = {}
    for label in N_LABELS:
        n = n_value(label, n_test)
        e_task = e_meta_j / n + e_deploy_j if n != math.inf else e_deploy_j
        out[f"e_task_j_{label}"] = e_task
        value = (1.0 / score) if lower_better else score
        eff = value / (e_task / 1000.0) if e_task and e_task > 0 else np.nan
        out[f"accuracy_per_kj_{label}"] = np.nan if lower_better else eff
        out[f"inv_mse_per_kj_{label}"] = eff if lower_better else np.nan
    return out


def learning_curves(t: LedgerTables, energy_scope: str = "node") -> pd.DataFrame:
    """Validation checkpoints with cumulative meta-training energy in `energy_scope`."""
    return curves_from_windows(t, enrich_windows(t, energy_scope))


def fingerprint_conflicts(cells: pd.DataFrame) -> pd.DataFrame:
    """Comparison groups (suite and settings) whose methods did not see identical test
    episodes, with the reason: methods ran different seeds, or a seed's episode-set
    fingerprints differ. `cells`: the ledger's cells table."""
    rows = []
    for group, s in done_cells(cells).groupby(list(COMPARISON)):
        where = dict(zip(COMPARISON, group, strict=True))
        seeds = {m: sorted(g["seed"].unique().tolist()) for m, g in s.groupby("method")}
        if len({tuple(v) for v in seeds.values()}) > 1:
            detail = ", ".join(f"{m}: {v}" for m, v in seeds.items())
            rows.append(where | {"reason": f"methods ran different seeds ({detail})"})
        for seed, g in s.groupby("seed"):
            if g["fingerprint"].nunique() > 1:
                detail = ", ".join(f"{r.method} {str(r.fingerprint)[:12]}" for r in g.itertuples())
                rows.append(
                    where
                    | {
                        "reason": f"seed {seed}: episode-set fingerprints differ ({detail}), "
                        "so the methods were tested on different episodes and are not compared"
                    }
                )
    return pd.DataFrame(rows, columns=[*COMPARISON, "reason"])


def metric_columns(metrics: pd.DataFrame, keys: pd.Series) -> dict[str, float]:
    """Extra per-episode scores of a source (ledger table episode_metrics, e.g. the dynamics
    suites' rollout_mse) of the cells `keys`, pooled over episodes and seeds:
    {"<name>_mean": ..., "<name>_ci95": ...} per name; empty when there are none."""
    mine = metrics[metrics["cell_key"].isin(keys)]
    out: dict[str, float] = {}
    for name, values in mine.groupby("name")["value"]:
        out[f"{name}_mean"] = float(values.astype(float).mean())
        out[f"{name}_ci95"] = ci95(values.astype(float))
    return out


def _scores(t: LedgerTables, group: pd.DataFrame) -> pd.Series:
    """Episode scores of a row's cells indexed by (seed, episode-set fingerprint, episode
    index): two rows' scores pair only on the same episode of the same episode set."""
    e = t.episodes[t.episodes["cell_key"].isin(group["cell_key"])]
    e = e.merge(group[["cell_key", "seed", "fingerprint"]], on="cell_key")
    return e.set_index(["seed", "fingerprint", "idx"])["score"].astype(float).sort_index()


def superseded_columns(superseded: pd.DataFrame, row: dict) -> dict:
    """How many done cells of this row's suite, method and settings were left out because
    a later version of the suite file replaced them (ledger.current_cells), in words."""
    mine = superseded
    for k in ROW_KEYS:
        mine = mine[mine[k] == row[k]]
    n = len(mine)
    if not n:
        return {"n_superseded_cells": 0, "superseded_note": ""}
    seeds = sorted(mine["seed"].unique())
    which = ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))
    cells = "cell" if n == 1 else "cells"
    return {
        "n_superseded_cells": n,
        "superseded_note": f"{n} {cells} ({which}) from an earlier version of the suite "
        "file left out",
    }


def _score_columns(scores: pd.Series) -> dict:
    """Score, its pooled-episode and seed-level 95% intervals, and the error bar the plots
    draw. A score that is not finite on any episode (a diverged method) leaves every score
    column NaN and says so in score_note: a mean over the finite episodes would hide it."""
    n, n_bad = len(scores), int((~np.isfinite(scores.to_numpy(float))).sum())
    seed_means = scores.groupby(level="seed").mean()
    out = {"n_test_episodes": n, "diverged": bool(n_bad), "score_note": ""}
    nan = {"score_mean": np.nan, "score_ci95": np.nan, "score_seed_ci95": np.nan}
    nan |= {"score_seed_std": np.nan, "score_errbar": np.nan, "score_errbar_kind": "none"}
    if n_bad:
        note = f"score not finite on {n_bad} of {n} test episodes"
        return out | nan | {"score_note": note}
    if not n:
        return out | nan | {"score_note": "no test episodes recorded"}
    pooled, seeds = ci95(scores), t_ci95(seed_means)
    several = len(seed_means) > 1
    errbar = seeds if several else pooled
    return out | {
        "score_mean": float(scores.mean()),
        "score_ci95": pooled,
        "score_seed_ci95": seeds,
        "score_seed_std": float(seed_means.std(ddof=1)) if several else np.nan,
        "score_errbar": errbar,
        "score_errbar_kind": "none" if math.isnan(errbar) else "seeds" if several else "episodes",
    }


def _method_row(
    t: LedgerTables, ew: pd.DataFrame, group: pd.DataFrame, scope: str, scenario: str
) -> tuple[dict, Replicates, pd.Series]:
    keys = group["cell_key"]
    first = group.iloc[0]
    n_seeds = group["seed"].nunique()
    lower = lower_is_better(first["task"])
    w = ew[ew["cell_key"].isin(keys)]
    scores = _scores(t, group)
    row = {k: first[k] for k in ROW_KEYS}
    row |= {
        "params_hash": first["params_hash"],
        "suite_path": first["suite_path"],
        "task": first["task"],
        "score_name": first["score_name"],
        "transductive": first["normalization"] == "transductive",
        "lower_is_better": lower,
        "n_seeds": n_seeds,
        "n_test": int(first["n_test"]),
        **_score_columns(scores),
        "target_score": float(first["target_score"]),
        "energy_scope": scope,
    }
    row |= row_energy(w, n_seeds, scenario)
    seeds = sorted(group["seed"].unique())
    key = "|".join(sorted(keys)) + f"|{scope}"
    intervals, reps = _energy_intervals(w, seeds, key, scenario, bool(row["energy_measured"]))
    row |= intervals
    meta = w[w["phase"] == "meta_train"]
    per_seed = [total(meta[meta["seed"] == s]["joules_j"]) for s in seeds]
    row["e_meta_seed_std_j"] = (
        float(np.std(per_seed, ddof=1)) if n_seeds > 1 and row["energy_measured"] else np.nan
    )
    row |= metric_columns(t.episode_metrics, keys)
    row |= amortized(
        row["e_meta_j"], row["e_deploy_j_per_task"], row["score_mean"], lower, row["n_test"]
    )
    row |= row_flags(w, group)
    return row, reps, scores


def _energy_intervals(
    w: pd.DataFrame, seeds: list, key: str, scenario: str, measured: bool
) -> tuple[dict, Replicates]:
    """95% bootstrap intervals of E_meta and of E_deploy in every deploy scenario (NaN
    where not measured or nothing to resample), and the replicates of `scenario`, the
    break-even's. `key` (the row's cell keys and scope) seeds each scenario's generator."""
    meta = w[w["phase"] == "meta_train"]
    out: dict[str, float] = {}
    chosen = None
    for s in SCENARIOS:
        deploy = w[w["phase"].isin(DEPLOY_PHASES) & (w["scenario"] == s)]
        reps = bootstrap_row(meta, deploy, seeds, f"{key}|{s}")
        ok = measured and reps.deploy_informative
        lo_hi = interval(reps.e_deploy_boot) if ok else (np.nan, np.nan)
        out[f"e_deploy_{s}_j_per_task_lo"], out[f"e_deploy_{s}_j_per_task_hi"] = lo_hi
        chosen = reps if s == scenario else chosen
    ok = measured and chosen.meta_informative
    out["e_meta_j_lo"], out["e_meta_j_hi"] = interval(chosen.e_meta_boot) if ok else (np.nan,) * 2
    out["e_deploy_j_per_task_lo"] = out[f"e_deploy_{scenario}_j_per_task_lo"]
    out["e_deploy_j_per_task_hi"] = out[f"e_deploy_{scenario}_j_per_task_hi"]
    return out, chosen


def _baseline_of(rows: list[dict], i: int, base: str, blocked: dict) -> tuple[int | None, dict]:
    """The index of row i's baseline row (same comparison group; among several, the one of
    the same suite file, then of the same execution and threads), or None with the status
    and note saying why not."""
    r, group = rows[i], tuple(rows[i][k] for k in COMPARISON)
    if group in blocked:
        return None, {"status": "not_comparable", "note": blocked[group]}
    if r["method"] == base:
        return None, {"status": "baseline", "note": ""}
    if r["diverged"]:
        return None, {"status": "diverged", "note": r["score_note"]}
    cands = [
        j
        for j, b in enumerate(rows)
        if b["method"] == base and tuple(b[k] for k in COMPARISON) == group
    ]
    for keys in (("suite_path",), RUN_SETTINGS):
        if len(cands) > 1:
            cands = [j for j in cands if all(rows[j][k] == r[k] for k in keys)] or cands
    if not cands:
        return None, {"status": "no_baseline", "note": f"no {base} run"}
    if len(cands) > 1:
        keys = (*RUN_SETTINGS, "variant")
        runs = ", ".join(
            sorted("/".join(str(rows[j][k]) for k in keys if rows[j][k]) for j in cands)
        )
        return None, {"status": "not_comparable", "note": f"several {base} rows ({runs})"}
    return cands[0], {}


def _baseline_columns(rows: list[dict], ctx: list, curves: pd.DataFrame, blocked: dict) -> None:
    """Add break-even and iso-accuracy columns against each baseline to every row, in place.
    ctx[i] = (replicates, episode scores) of rows[i]; blocked: comparison group -> reason."""
    for i, r in enumerate(rows):
        for base in BASELINES:
            j, res = _baseline_of(rows, i, base, blocked)
            if j is not None:
                res = _against(r, rows[j], ctx[i], ctx[j], base)
            res = {"n": np.nan, "lo": np.nan, "hi": np.nan} | res
            for k in ("n", "lo", "hi", "status", "note"):
                r[f"breakeven_vs_{base}_{k}"] = res[k]
            b = rows[j] if j is not None else None
            r[f"iso_energy_vs_{base}_j"], r[f"iso_reached_vs_{base}"] = _iso(r, b, res, curves)


# Break-even statuses after which the accuracy gate did not pass: no iso-accuracy energy.
NOT_AS_ACCURATE = {"less_accurate": "less accurate", "diverged": "diverged"}


def _iso(r: dict, b: dict | None, res: dict, curves: pd.DataFrame) -> tuple[float, str]:
    """Iso-accuracy energy of row r against baseline row b, only where r passed the
    accuracy gate on the test episodes (a validation curve reaching b's test score says
    nothing for a method less accurate than b on the test episodes)."""
    status = str(res["status"])
    if status in NOT_AS_ACCURATE:
        return np.nan, NOT_AS_ACCURATE[status]
    if b is None:
        return np.nan, "baseline" if status == "baseline" else str(res["note"])
    if not (math.isfinite(float(r["score_mean"])) and math.isfinite(float(b["score_mean"]))):
        return np.nan, str(res["note"])
    return iso_energy(_curves_of(curves, r), float(b["score_mean"]), int(r["n_seeds"]))


def _against(r: dict, b: dict, ctx: tuple, ctx_b: tuple, base: str) -> dict:
    """Break-even of row r against its baseline row b, gated by accuracy (a row whose
    score is not finite is diverged; a diverged baseline is no baseline)."""
    if not math.isfinite(float(r["score_mean"])):
        return {"status": "not_measured", "note": r["score_note"] or "no score"}
    if not math.isfinite(float(b["score_mean"])):
        why = "diverged" if b["diverged"] else "has no score"
        return {"status": "no_baseline", "note": f"{base} {why}: {b['score_note']}"}
    lower = bool(r["lower_is_better"])
    gate = breakeven.accuracy_gate(ctx[1], ctx_b[1], lower, base, str(r["score_name"]))
    if not gate.ok:
        return {"status": "less_accurate", "note": gate.note}
    res = breakeven.against(
        (r["e_meta_j"], r["e_deploy_j_per_task"]),
        (b["e_meta_j"], b["e_deploy_j_per_task"]),
        ctx[0],
        ctx_b[0],
    )
    res["note"] = "; ".join(n for n in (gate.note, res["note"]) if n)
    return res


def summary_table(
    t: LedgerTables, energy_scope: str = "node", scenario: str = "stream"
) -> pd.DataFrame:
    """summary.csv: one row per suite, method and setting, pooled over seeds.

    energy_scope: "node" (every component) or "gpu" (accelerator only) for the headline
    energy totals; scenario: the deploy scenario ("stream" or "batch") of E_deploy, E_task,
    efficiency and break-even. Raises ValueError for an unknown scope or scenario."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}: {scenario}")
    ew = enrich_windows(t, energy_scope)
    curves = curves_from_windows(t, ew)
    done = t.done
    rows, ctx = [], []
    for _, g in done.groupby(list(ROW_KEYS), sort=True):
        row, reps, scores = _method_row(t, ew, g, energy_scope, scenario)
        rows.append(row)
        ctx.append((reps, scores))
    if not rows:
        return pd.DataFrame()
    conflicts = fingerprint_conflicts(t.cells)
    blocked = conflicts.groupby(list(COMPARISON))["reason"].apply("; ".join).to_dict()
    superseded = t.superseded
    for r in rows:
        r |= target_summary(_curves_of(curves, r), int(r["n_seeds"]))
        r["comparable"] = tuple(r[k] for k in COMPARISON) not in blocked
        r |= superseded_columns(superseded, r)
    _baseline_columns(rows, ctx, curves, blocked)
    summary = pd.DataFrame(rows)
    summary["energy_note"] = np.where(
        ~summary["energy_measured"].astype(bool),
        NOT_MEASURED,
        np.where(summary["estimated"].astype(bool), "estimated", "measured"),
    )
    return summary[ordered(list(summary.columns))]


def _curves_of(curves: pd.DataFrame, r: dict) -> pd.DataFrame:
    mine = curves
    for k in ROW_KEYS:
        mine = mine[mine[k] == r[k]]
    return mine
