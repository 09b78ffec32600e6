"""Energy and time figures of one summary row (all its seeds) from its enriched windows:
E_meta, E_deploy per deploy scenario, setup and validation, net of idle (never negative),
CO2, the split by component with each part's source, and the row's load and sharing flags.

Definitions (README "What the report says"; docs/protocol.md "Metrics"):
- E_meta (J): energy of the meta_train windows, mean per seed (validate and setup apart).
- E_deploy (J/task) of a scenario: for adapt and for predict, sum(J) / sum(repeats x
  n_items) over its windows of every seed; E_deploy = adapt + predict.
- net = gross - idle W x seconds; when net <= IDLE_Z x idle std (W) x seconds the figure is
  within the idle baseline's noise and reads so (NaN in the numeric column).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report.ledger import DEPLOY_PHASES, KINDS, SCENARIOS, is_estimated, join_sources

IDLE_Z = 1.96  # the idle noise band: 95% of a normal idle power reading
# Ledgers without an idle std (written before the meters stored it): assume this share of
# the idle power as its std. The H200's energy counter and its integrated power disagreed
# by up to 1.5% at idle over 10 s (docs/results/h200-2026-11-30); 2% rounds that up.
IDLE_FALLBACK_REL_STD = 0.02
FOREIGN_LOAD_THRESHOLD = 0.1  # share of the machine's CPU used by other processes
WITHIN_IDLE_NOISE = "within idle noise"
BELOW_IDLE = "below the idle baseline"


def total(values: pd.Series) -> float:
    """Sum that stays NaN when any part is NaN (unmeasured is never 0); empty -> 0."""
    return float(values.sum(min_count=len(values))) if len(values) else 0.0


def per_task(w: pd.DataFrame, col: str) -> float:
    """sum(col) / sum(items_done) over windows; NaN without items."""
    items = float(w["items_done"].sum())
    return total(w[col]) / items if items else math.nan


def _deploy(w: pd.DataFrame, scenario: str) -> pd.DataFrame:
    return w[w["phase"].isin(DEPLOY_PHASES) & (w["scenario"] == scenario)]


def _deploy_per_task(w: pd.DataFrame, scenario: str, col: str) -> float:
    """adapt + predict per task of one scenario (each phase divided by its own items)."""
    d = _deploy(w, scenario)
    return sum(per_task(d[d["phase"] == p], col) for p in DEPLOY_PHASES)


def net_figure(gross: float, idle: float, idle_std: float) -> tuple[float, str]:
    """(net value or NaN, note) from gross and idle energy and the idle energy's std: a net
    figure is shown only above the idle noise band, so it is never negative."""
    if math.isnan(gross):
        return math.nan, ""
    if gross == 0 and idle == 0:  # no window at all (no meta-training): exactly nothing
        return 0.0, ""
    if math.isnan(idle):
        return math.nan, "no idle baseline"
    net, band = gross - idle, IDLE_Z * idle_std
    if net > band:
        return net, ""
    return math.nan, WITHIN_IDLE_NOISE if net >= -band else BELOW_IDLE


def _with_idle_std(w: pd.DataFrame) -> pd.Series:
    """Idle std (J) of each window: its idle std W (fallback: a share of idle W) x seconds."""
    std_w = w["idle_std_w"].where(w["idle_std_w"].notna(), IDLE_FALLBACK_REL_STD * w["idle_w"])
    return std_w * w["seconds_s"]


def _net(w: pd.DataFrame, n_seeds: int, scenario: str) -> dict:
    w = w.assign(idle_std_j=_with_idle_std(w))
    meta = w[w["phase"] == "meta_train"]
    out = {}
    parts = [total(meta[c]) / n_seeds for c in ("joules_j", "idle_j", "idle_std_j")]
    out["e_meta_net_j"], out["e_meta_net_note"] = net_figure(*parts)
    parts = [_deploy_per_task(w, scenario, c) for c in ("joules_j", "idle_j", "idle_std_j")]
    out["e_deploy_net_j_per_task"], out["e_deploy_net_note"] = net_figure(*parts)
    return out


def _components(w: pd.DataFrame, n_seeds: int, scenario: str) -> dict:
    """E_meta and E_deploy per component kind, each with its own source and estimated flag,
    and the share of the headline joules that measuring meters (not models) produced."""
    meta, deploy = w[w["phase"] == "meta_train"], _deploy(w, scenario)
    out: dict[str, object] = {}
    for kind in KINDS:
        out[f"e_meta_{kind}_j"] = total(meta[f"{kind}_j"]) / n_seeds
        out[f"e_deploy_{kind}_j_per_task"] = _deploy_per_task(w, scenario, f"{kind}_j")
        for phase, part in (("meta", meta), ("deploy", deploy)):
            source = join_sources(part[f"{kind}_source"])
            out[f"source_{phase}_{kind}"] = source
            out[f"estimated_{phase}_{kind}"] = is_estimated(source)
    meta_j = total(meta["joules_j"])
    out["measured_share_meta"] = total(meta["measured_j"]) / meta_j if meta_j else math.nan
    e_deploy = _deploy_per_task(w, scenario, "joules_j")
    out["measured_share_deploy"] = (
        _deploy_per_task(w, scenario, "measured_j") / e_deploy if e_deploy else math.nan
    )
    return out


def row_energy(w: pd.DataFrame, n_seeds: int, scenario: str = "stream") -> dict:
    """Energy, CO2 and time of one row from its enriched windows (all seeds); the deploy
    columns without a scenario in their name are `scenario`'s. A row no meter covered
    reads NaN in every energy column (never 0)."""
    meta, val, setup = (w[w["phase"] == p] for p in ("meta_train", "validate", "setup"))
    deploy = _deploy(w, scenario)
    out: dict[str, object] = {"deploy_scenario": scenario}
    out["e_meta_j"] = total(meta["joules_j"]) / n_seeds
    out["e_validate_j"] = total(val["joules_j"]) / n_seeds
    out["e_setup_j"] = total(setup["joules_j"]) / n_seeds
    out["co2_meta_g"] = total(meta["co2_g"]) / n_seeds
    for p in DEPLOY_PHASES:
        out[f"e_{p}_j_per_task"] = per_task(deploy[deploy["phase"] == p], "joules_j")
        out[f"co2_{p}_g_per_task"] = per_task(deploy[deploy["phase"] == p], "co2_g")
    out["e_deploy_j_per_task"] = out["e_adapt_j_per_task"] + out["e_predict_j_per_task"]
    out["co2_deploy_g_per_task"] = out["co2_adapt_g_per_task"] + out["co2_predict_g_per_task"]
    for s in SCENARIOS:
        out[f"e_deploy_{s}_j_per_task"] = _deploy_per_task(w, s, "joules_j")
    out.update(_net(w, n_seeds, scenario))
    out.update(_components(w, n_seeds, scenario))
    measured = bool(w["joules_j"].notna().any())
    if not measured:
        out = {k: (math.nan if isinstance(v, float) else v) for k, v in out.items()}
    out["source_meta"] = join_sources(meta["source"]) if len(meta) else "no meta-training"
    out["source_deploy"] = join_sources(deploy["source"])
    out["energy_measured"] = measured
    out["estimated"] = is_estimated(join_sources(w["source"]))
    out["meta_train_s"] = float(meta["seconds_s"].sum()) / n_seeds
    out["validate_s"] = float(val["seconds_s"].sum()) / n_seeds
    out["setup_s"] = float(setup["seconds_s"].sum()) / n_seeds
    for p in DEPLOY_PHASES:
        out[f"{p}_s_per_task"] = per_task(deploy[deploy["phase"] == p], "seconds_s")
    out["deploy_s_per_task"] = out["adapt_s_per_task"] + out["predict_s_per_task"]
    for s in SCENARIOS:
        out[f"deploy_{s}_s_per_task"] = _deploy_per_task(w, s, "seconds_s")
    return out


def row_flags(w: pd.DataFrame, cells: pd.DataFrame) -> dict:
    """Foreign load and shared-energy marks of one row (`cells`: its ledger cells rows)."""
    load = w["foreign_cpu_load"].max() if len(w) else np.nan
    reasons = []
    if "exclusive_energy" in cells and (cells["exclusive_energy"] == 0).any():
        reasons.append(
            "ran concurrently with other cells on the same CPU package: "
            "CPU and DRAM energy is the package's, shared"
        )
    attributed = sorted({a for a in w["attribution"] if a})
    if attributed:
        reasons.append(f"energy attributed among concurrent cells ({', '.join(attributed)})")
    return {
        "foreign_load_max": float(load) if pd.notna(load) else np.nan,
        "foreign_load_flag": bool(pd.notna(load) and load > FOREIGN_LOAD_THRESHOLD),
        "shared_energy": bool(reasons),
        "shared_energy_reason": "; ".join(reasons),
    }
