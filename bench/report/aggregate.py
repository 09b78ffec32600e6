"""Pure functions from ledger tables to report tables (no I/O).

Metric definitions (README, "What the report says"; docs/protocol.md):

- E_meta (J): energy of the meta_train windows of one cell (validate windows excluded and
  reported separately); pooled over seeds as the mean per seed.
- E_deploy (J/task): each adapt / predict window's energy divided by its n_items, averaged
  over all test episodes of all seeds, i.e. sum(J) / sum(n_items).
- E_task(N) = E_meta / N + E_deploy.
- accuracy per kJ at N = score / (E_task(N) / 1000); for regression the analogue is
  (1 / MSE) per kJ, in its own columns so the two are never mixed up.
- break-even N* against baseline b = E_meta / (E_deploy_b - E_deploy) when positive,
  else "never".
- energy-to-target: cumulative meta_train energy at the first validation checkpoint whose
  score reaches the suite's target (>= for accuracy, <= for MSE).
- net energy = gross - idle W x seconds, idle per component from the run's `idle` table.
- CO2 (g) = kWh x carbon intensity (g/kWh) x PUE, from the run's `carbon` table.
- score 95% CI = 1.96 * std(ddof=1) / sqrt(n) over all test episodes pooled across seeds.
- extra per-episode scores of a source (table episode_metrics, e.g. rollout_mse): columns
  <name>_mean and <name>_ci95, pooled the same way.

Energy that was not measured is NaN (never 0) and labelled "not measured".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.stats import ci95

PHASES = ("setup", "meta_train", "validate", "adapt", "predict")
DEPLOY_PHASES = ("adapt", "predict")
BASELINES = ("scratch", "transfer")
NOT_MEASURED = "not measured"
J_PER_KWH = 3.6e6
# The amortization points; "ntest" is the suite's number of test episodes.
N_LABELS = ("n1", "ntest", "n10000", "ninf")


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass(frozen=True)
class LedgerTables:
    """The ledger's tables as DataFrames (the writer reads them; everything here is pure)."""

    cells: pd.DataFrame
    windows: pd.DataFrame
    episodes: pd.DataFrame
    checkpoints: pd.DataFrame = field(
        default_factory=lambda: _empty(
            ["cell_key", "step", "val_score", "meta_seconds", "meta_joules"]
        )
    )
    idle: pd.DataFrame = field(
        default_factory=lambda: _empty(["run_id", "component", "watts", "source", "seconds"])
    )
    carbon: pd.DataFrame = field(
        default_factory=lambda: _empty(["run_id", "intensity_g_per_kwh", "source", "pue", "region"])
    )
    samples: pd.DataFrame = field(
        default_factory=lambda: _empty(["cell_key", "t", "component", "kind", "watts", "phase"])
    )
    runs: pd.DataFrame = field(
        default_factory=lambda: _empty(["run_id", "started_at", "command", "environment"])
    )
    episode_metrics: pd.DataFrame = field(
        default_factory=lambda: _empty(["cell_key", "idx", "name", "value"])
    )

    @property
    def done(self) -> pd.DataFrame:
        return self.cells[self.cells["status"] == "done"]


def n_value(label: str, n_test: int) -> float:
    return {"n1": 1.0, "ntest": float(n_test), "n10000": 1e4, "ninf": math.inf}[label]


def lower_is_better(task_or_score: str) -> bool:
    """Regression scores (MSE) improve downwards; accuracy upwards."""
    return task_or_score in ("regression", "mse")


def _json(text: object, default: object) -> object:
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return default
    return json.loads(str(text))


def component_kind(component: str) -> str:
    """gpu:<uuid> -> gpu; cpu:0 -> cpu; dram:0 -> dram."""
    return component.split(":", 1)[0]


def is_estimated(source: str) -> bool:
    return any(s.startswith("estimate:") for s in source.split("+"))


# --------------------------------------------------------------------------- windows


def _idle_by_run(idle: pd.DataFrame) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for row in idle.itertuples():
        out.setdefault(row.run_id, {})[row.component] = float(row.watts)
    return out


def _carbon_factor_by_run(carbon: pd.DataFrame) -> dict[str, float]:
    """g CO2 per joule for each run: intensity (g/kWh) x PUE / 3.6e6 J/kWh."""
    return {
        r.run_id: float(r.intensity_g_per_kwh) * float(r.pue) / J_PER_KWH
        for r in carbon.itertuples()
    }


def _window_row(w: object, idle_w: dict[str, float] | None, g_per_j: float) -> dict:
    joules = {k: float(v) for k, v in _json(w.joules, {}).items()}
    sources = _json(w.sources, {})
    measured = bool(joules) and not any(math.isnan(v) for v in joules.values())
    gross = sum(joules.values()) if measured else np.nan
    # Net needs an idle figure for every measured component; a partial baseline would
    # silently inflate the net figure, so it is NaN instead.
    if measured and idle_w is not None and all(c in idle_w for c in joules):
        idle_watts = sum(idle_w[c] for c in joules)
    else:
        idle_watts = np.nan
    row = {
        "seconds_s": float(w.seconds),
        "joules_j": gross,
        "idle_w": idle_watts,
        "idle_j": idle_watts * float(w.seconds),
        "net_j": gross - idle_watts * float(w.seconds),
        "co2_g": gross * g_per_j,
        "source": "+".join(sorted(set(sources.values()))) or "none",
        "warnings": "; ".join(_json(w.warnings, [])),
    }
    for kind in ("gpu", "cpu", "dram"):
        parts = [v for c, v in joules.items() if component_kind(c) == kind]
        row[f"{kind}_j"] = sum(parts) if measured and parts else np.nan
    row["estimated"] = is_estimated(row["source"])
    return row


def enrich_windows(t: LedgerTables) -> pd.DataFrame:
    """One row per window of a done cell: gross / idle / net joules, per-kind joules,
    CO2, source label, estimated flag and the cell's identity columns."""
    done = t.done
    cols = ["cell_key", "run_id", "suite", "method", "seed", "task", "score_name", "n_test"]
    idle, carbon = _idle_by_run(t.idle), _carbon_factor_by_run(t.carbon)
    run_of = dict(zip(done["cell_key"], done["run_id"], strict=True))
    rows = []
    for w in t.windows[t.windows["cell_key"].isin(done["cell_key"])].itertuples():
        run = run_of[w.cell_key]
        extra = _window_row(w, idle.get(run), carbon.get(run, np.nan))
        rows.append(
            {
                "cell_key": w.cell_key,
                "phase": w.phase,
                "idx": int(w.idx),
                "n_items": int(w.n_items),
                "step": int(w.step),
                "start_s": float(w.start_s),
                **extra,
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = done[cols].merge(out, on="cell_key")
    out["j_per_item"] = out["joules_j"] / out["n_items"]
    return out


def results_table(t: LedgerTables) -> pd.DataFrame:
    """results.csv: one tidy row per cell, phase and window."""
    ew = enrich_windows(t)
    if ew.empty:
        return ew
    ew["phase"] = pd.Categorical(ew["phase"], PHASES, ordered=True)
    scores = t.done[["cell_key", "score_mean", "score_ci95", "fingerprint"]]
    out = ew.merge(scores, on="cell_key")
    return out.sort_values(["suite", "method", "seed", "phase", "idx"]).reset_index(drop=True)


# --------------------------------------------------------------------------- phases


def _sum(values: pd.Series) -> float:
    """Sum that stays NaN when any part is NaN (unmeasured is never 0); empty -> 0."""
    return float(values.sum(min_count=len(values))) if len(values) else 0.0


def _sources(w: pd.DataFrame) -> str:
    found = sorted(set("+".join(w["source"]).split("+"))) if len(w) else []
    return "+".join(found) if found else "none"


def phase_energy(w: pd.DataFrame, n_seeds: int) -> dict[str, float | str | bool]:
    """Energy and time of one suite x method group of enriched windows (all its seeds)."""
    meta, val = w[w["phase"] == "meta_train"], w[w["phase"] == "validate"]
    measured = bool(w["joules_j"].notna().any())
    out: dict[str, float | str | bool] = {}
    for col, suffix in (("joules_j", ""), ("net_j", "_net"), ("co2_g", "")):
        unit = "g" if col == "co2_g" else "j"
        stem = "co2" if col == "co2_g" else "e"
        total = _sum(meta[col]) / n_seeds if measured else np.nan
        out[f"{stem}_meta{suffix}_{unit}"] = total
        for phase in DEPLOY_PHASES:
            p = w[w["phase"] == phase]
            n = p["n_items"].sum()
            out[f"{stem}_{phase}{suffix}_{unit}_per_task"] = (
                _sum(p[col]) / n if measured and n else np.nan
            )
        out[f"{stem}_deploy{suffix}_{unit}_per_task"] = (
            out[f"{stem}_adapt{suffix}_{unit}_per_task"]
            + out[f"{stem}_predict{suffix}_{unit}_per_task"]
        )
    out["e_validate_j"] = _sum(val["joules_j"]) / n_seeds if measured else np.nan
    deploy = w[w["phase"].isin(DEPLOY_PHASES)]
    out["source_meta"] = _sources(meta) if len(meta) else "no meta-training"
    out["source_deploy"] = _sources(deploy)
    out["energy_measured"] = measured
    out["estimated"] = is_estimated(_sources(w))
    n_tasks = w[w["phase"] == "adapt"]["n_items"].sum()
    out["meta_train_s"] = float(meta["seconds_s"].sum()) / n_seeds
    out["validate_s"] = float(val["seconds_s"].sum()) / n_seeds
    for phase in DEPLOY_PHASES:
        secs = w[w["phase"] == phase]["seconds_s"].sum()
        out[f"{phase}_s_per_task"] = float(secs) / n_tasks if n_tasks else np.nan
    out["deploy_s_per_task"] = out["adapt_s_per_task"] + out["predict_s_per_task"]
    return out


def amortized(
    e_meta_j: float, e_deploy_j: float, score: float, lower_better: bool, n_test: int
) -> dict[str, float]:
    """E_task(N) and efficiency (score per kJ) at N = 1, n_test, 10^4, inf."""
    out: dict[str, float] = {}
    for label in N_LABELS:
        n = n_value(label, n_test)
        e_task = e_meta_j / n + e_deploy_j if n != math.inf else e_deploy_j
        out[f"e_task_j_{label}"] = e_task
        # Regression: 1/MSE so that "more per kJ" is better in both columns.
        value = (1.0 / score) if lower_better else score
        eff = value / (e_task / 1000.0) if e_task and e_task > 0 else np.nan
        out[f"accuracy_per_kj_{label}"] = np.nan if lower_better else eff
        out[f"inv_mse_per_kj_{label}"] = eff if lower_better else np.nan
    return out


def break_even(e_meta_j: float, e_deploy_j: float, e_deploy_base_j: float) -> float | str:
    """N* = E_meta / (E_deploy_b - E_deploy) when positive, else "never"."""
    if any(isinstance(v, float) and math.isnan(v) for v in (e_meta_j, e_deploy_j, e_deploy_base_j)):
        return NOT_MEASURED
    saving = e_deploy_base_j - e_deploy_j
    if saving <= 0:
        return "never"
    n_star = e_meta_j / saving
    return float(n_star) if n_star >= 0 else "never"


# --------------------------------------------------------------------------- curves


def learning_curves(t: LedgerTables) -> pd.DataFrame:
    """Validation checkpoints with cumulative meta_train joules and seconds (from the
    meta_train windows, so the curve and E_meta use the same numbers)."""
    cols = [
        "suite",
        "method",
        "seed",
        "cell_key",
        "step",
        "val_score",
        "meta_j_cum",
        "meta_s_cum",
        "estimated",
        "target_score",
        "task",
    ]
    ew = enrich_windows(t)
    if ew.empty or t.checkpoints.empty:
        return _empty(cols)
    meta = ew[ew["phase"] == "meta_train"].sort_values(["cell_key", "idx"])
    rows = []
    done = t.done.set_index("cell_key")
    for c in t.checkpoints[t.checkpoints["cell_key"].isin(done.index)].itertuples():
        m = meta[(meta["cell_key"] == c.cell_key) & (meta["step"] <= c.step)]
        cell = done.loc[c.cell_key]
        rows.append(
            {
                "suite": cell["suite"],
                "method": cell["method"],
                "seed": cell["seed"],
                "cell_key": c.cell_key,
                "step": int(c.step),
                "val_score": float(c.val_score),
                "meta_j_cum": _sum(m["joules_j"]) if len(m) else np.nan,
                "meta_s_cum": float(m["seconds_s"].sum()),
                "estimated": bool(m["estimated"].any()),
                "target_score": cell["target_score"],
                "task": cell["task"],
            }
        )
    if not rows:
        return _empty(cols)
    return pd.DataFrame(rows).sort_values(["suite", "method", "seed", "step"], ignore_index=True)


def reached(score: float, target: float, lower_better: bool) -> bool:
    return score <= target if lower_better else score >= target


def to_target(curve: pd.DataFrame) -> dict[str, float]:
    """Energy and seconds at the first checkpoint of one cell's curve reaching target."""
    for row in curve.sort_values("step").itertuples():
        if reached(row.val_score, row.target_score, lower_is_better(row.task)):
            return {"joules": row.meta_j_cum, "seconds": row.meta_s_cum}
    return {"joules": np.nan, "seconds": np.nan}


def target_summary(curves: pd.DataFrame, n_seeds: int) -> dict[str, float | str]:
    """Energy-to-target of one suite x method: mean over the seeds that reached it."""
    if curves.empty:
        return {
            "energy_to_target_j": np.nan,
            "seconds_to_target_s": np.nan,
            "target_reached": "no checkpoints",
        }
    hits = [to_target(c) for _, c in curves.groupby("seed")]
    ok = [h for h in hits if not math.isnan(h["seconds"])]
    joules = [h["joules"] for h in ok]
    return {
        "energy_to_target_j": float(np.mean(joules)) if ok else np.nan,
        "seconds_to_target_s": float(np.mean([h["seconds"] for h in ok])) if ok else np.nan,
        "target_reached": f"{len(ok)}/{n_seeds} seeds",
    }


def score_at_budget(curves: pd.DataFrame) -> pd.DataFrame:
    """Per suite: the common meta-training energy budget (the smallest final cumulative
    energy among the meta-trained methods, so every method has spent it) and each method's
    mean validation score at the last checkpoint within it."""
    cols = ["suite", "method", "budget_j", "val_score_at_budget"]
    c = curves.dropna(subset=["meta_j_cum"])
    if c.empty:
        return _empty(cols)
    rows = []
    for suite, s in c.groupby("suite"):
        budget = s.groupby(["method", "seed"])["meta_j_cum"].max().min()
        for method, m in s.groupby("method"):
            within = m[m["meta_j_cum"] <= budget * (1 + 1e-9)]
            last = within.sort_values("step").groupby("seed")["val_score"].last()
            rows.append(
                {
                    "suite": suite,
                    "method": method,
                    "budget_j": float(budget),
                    "val_score_at_budget": float(last.mean()) if len(last) else np.nan,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- protocol


def fingerprint_conflicts(cells: pd.DataFrame) -> pd.DataFrame:
    """Suites whose methods did not see identical test episodes, with the reason: methods
    ran different seeds, or the same seed's episode-set fingerprints differ."""
    rows = []
    done = cells[cells["status"] == "done"]
    for suite, s in done.groupby("suite"):
        seeds = {m: sorted(g["seed"].tolist()) for m, g in s.groupby("method")}
        if len({tuple(v) for v in seeds.values()}) > 1:
            detail = ", ".join(f"{m}: {v}" for m, v in seeds.items())
            rows.append({"suite": suite, "reason": f"methods ran different seeds ({detail})"})
        for seed, g in s.groupby("seed"):
            if g["fingerprint"].nunique() > 1:
                detail = ", ".join(f"{r.method} {str(r.fingerprint)[:12]}" for r in g.itertuples())
                rows.append(
                    {
                        "suite": suite,
                        "reason": f"seed {seed}: episode-set fingerprints "
                        f"differ ({detail}), so the methods were tested on different "
                        "episodes and are not compared",
                    }
                )
    return pd.DataFrame(rows, columns=["suite", "reason"])


# --------------------------------------------------------------------------- summary


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


def _method_row(
    t: LedgerTables, ew: pd.DataFrame, curves: pd.DataFrame, group: pd.DataFrame
) -> dict:
    keys = group["cell_key"]
    scores = t.episodes[t.episodes["cell_key"].isin(keys)]["score"]
    n_seeds = len(group)
    first = group.iloc[0]
    lower = lower_is_better(first["task"])
    energy = phase_energy(ew[ew["cell_key"].isin(keys)], n_seeds)
    score = float(scores.mean())
    per_seed_meta = [
        _sum(ew[(ew["cell_key"] == k) & (ew["phase"] == "meta_train")]["joules_j"]) for k in keys
    ]
    row = {
        "suite": first["suite"],
        "method": first["method"],
        "task": first["task"],
        "score_name": first["score_name"],
        # NULL (NaN here) in ledgers older than the column: those ran in fp32.
        "precision": first["precision"] if isinstance(first.get("precision"), str) else "fp32",
        "lower_is_better": lower,
        "n_seeds": n_seeds,
        "n_test": int(first["n_test"]),
        "n_test_episodes": len(scores),
        "score_mean": score,
        "score_ci95": ci95(scores),
        "score_seed_std": float(group["score_mean"].std(ddof=1)) if n_seeds > 1 else np.nan,
        "target_score": float(first["target_score"]),
        **energy,
        "e_meta_seed_std_j": (
            float(np.std(per_seed_meta, ddof=1))
            if n_seeds > 1 and energy["energy_measured"]
            else np.nan
        ),
    }
    row.update(metric_columns(t.episode_metrics, keys))
    row.update(amortized(row["e_meta_j"], row["e_deploy_j_per_task"], score, lower, row["n_test"]))
    mine = curves[(curves["suite"] == row["suite"]) & (curves["method"] == row["method"])]
    row.update(target_summary(mine, n_seeds))
    return row


def _add_break_even(summary: pd.DataFrame, conflicts: pd.DataFrame) -> pd.DataFrame:
    blocked = set(conflicts["suite"])
    for base in BASELINES:
        col = f"breakeven_vs_{base}_n"
        values = []
        for r in summary.itertuples():
            b = summary[(summary["suite"] == r.suite) & (summary["method"] == base)]
            if r.suite in blocked:
                values.append("not comparable")
            elif r.method == base:
                values.append("baseline")
            elif b.empty:
                values.append(f"no {base} run")
            else:
                values.append(
                    break_even(
                        r.e_meta_j, r.e_deploy_j_per_task, float(b["e_deploy_j_per_task"].iloc[0])
                    )
                )
        summary[col] = pd.Series(values, index=summary.index, dtype=object)
    return summary


def summary_table(t: LedgerTables) -> pd.DataFrame:
    """summary.csv: per suite and method, pooled over seeds (see the module docstring)."""
    ew = enrich_windows(t)
    curves = learning_curves(t)
    conflicts = fingerprint_conflicts(t.cells)
    rows = [
        _method_row(t, ew, curves, g) for _, g in t.done.groupby(["suite", "method"], sort=True)
    ]
    if not rows:
        return pd.DataFrame()
    summary = pd.DataFrame(rows)
    budget = score_at_budget(curves)
    summary = (
        summary.merge(budget, on=["suite", "method"], how="left")
        if len(budget)
        else (summary.assign(budget_j=np.nan, val_score_at_budget=np.nan))
    )
    summary["comparable"] = ~summary["suite"].isin(set(conflicts["suite"]))
    summary = _add_break_even(summary, conflicts)
    summary["energy_note"] = np.where(
        ~summary["energy_measured"],
        NOT_MEASURED,
        np.where(summary["estimated"], "estimated", "measured"),
    )
    return summary


# --------------------------------------------------------------------------- headline


def efficiency_column(lower_better: bool, label: str) -> str:
    return f"{'inv_mse' if lower_better else 'accuracy'}_per_kj_{label}"


def n_text(label: str, n_test: int) -> str:
    return {"n1": "N=1", "ntest": f"N={n_test}", "n10000": "N=10,000", "ninf": "N=∞"}[label]


def headline(summary: pd.DataFrame, conflicts: pd.DataFrame) -> pd.DataFrame:
    """One sentence per suite: the most energy-efficient method at each N."""
    rows = []
    reasons = conflicts.groupby("suite")["reason"].apply("; ".join).to_dict()
    for suite, s in summary.groupby("suite", sort=True):
        lower = bool(s["lower_is_better"].iloc[0])
        n_test = int(s["n_test"].iloc[0])
        if suite in reasons:
            text = f"{suite}: methods not compared — {reasons[suite]}."
        elif not s["energy_measured"].any():
            best = s.sort_values("score_mean", ascending=lower).iloc[0]
            text = (
                f"{suite}: energy was not measured (time only), so no method is ranked by "
                f"energy; best {best['score_name']} is {best['method']} "
                f"({best['score_mean']:.4g})."
            )
        else:
            text = _best_sentence(suite, s, lower, n_test)
        rows.append({"suite": suite, "sentence": text})
    return pd.DataFrame(rows, columns=["suite", "sentence"])


def _best_sentence(suite: str, s: pd.DataFrame, lower: bool, n_test: int) -> str:
    unit = "1/MSE per kJ" if lower else "accuracy per kJ"
    parts: list[tuple[str, list[str]]] = []
    for label in N_LABELS:
        col = efficiency_column(lower, label)
        ranked = s.dropna(subset=[col]).sort_values(col, ascending=False)
        if ranked.empty:
            continue
        best = ranked.iloc[0]
        mark = " (estimated)" if best["estimated"] else ""
        piece = f"{n_text(label, n_test)} ({best[col]:.3g} {unit}{mark})"
        if parts and parts[-1][0] == best["method"]:
            parts[-1][1].append(piece)
        else:
            parts.append((best["method"], [piece]))
    clauses = [f"{m} at {', '.join(p)}" for m, p in parts]
    return f"{suite}: most energy-efficient is " + "; ".join(clauses) + "."


def trace_table(t: LedgerTables) -> pd.DataFrame:
    """trace.csv: power samples with their phase and seconds since the cell's first sample."""
    cols = [
        "suite",
        "method",
        "seed",
        "cell_key",
        "t_s",
        "t_rel_s",
        "component",
        "kind",
        "power_w",
        "phase",
    ]
    if t.samples.empty:
        return _empty(cols)
    s = t.samples.rename(columns={"t": "t_s", "watts": "power_w"})
    s = t.done[["cell_key", "suite", "method", "seed"]].merge(s, on="cell_key")
    s["t_rel_s"] = s["t_s"] - s.groupby("cell_key")["t_s"].transform("min")
    return s[cols].sort_values(["suite", "method", "seed", "t_s"], ignore_index=True)
