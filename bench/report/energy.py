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
# The CPU-time counters behind foreign_cpu_load tick every 10 ms (USER_HZ): over fewer than
# 20 ticks a share is quantized by more than 5% (a 5 ms window reads 0 or 1), so shorter
# windows are left out of the row's load (the meters' process-attributed sources refuse to
# bill windows below the same 0.2 s; older ledgers hold such windows).
LOAD_MIN_WINDOW_S = 0.2
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


def idle_std_j(w: pd.DataFrame) -> pd.Series:
    """Idle std (J) of each window: its idle std W (fallback: a share of idle W) x seconds."""
    std_w = w["idle_std_w"].where(w["idle_std_w"].notna(), IDLE_FALLBACK_REL_STD * w["idle_w"])
    return std_w * w["seconds_s"]


def _net(w: pd.DataFrame, n_seeds: int, scenario: str) -> dict:
    w = w.assign(idle_std_j=idle_std_j(w))
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


def foreign_load_columns(w: pd.DataFrame) -> dict:
    """The CPU share other processes used while the row's cells ran: the seconds-weighted
    mean of the windows' foreign_cpu_load and its largest value, over the windows of at
    least LOAD_MIN_WINDOW_S that recorded one; flagged above FOREIGN_LOAD_THRESHOLD."""
    ok = w[w["foreign_cpu_load"].notna() & (w["seconds_s"] >= LOAD_MIN_WINDOW_S)]
    seconds = float(ok["seconds_s"].sum())
    if not seconds:
        return {"foreign_load": np.nan, "foreign_load_max": np.nan}
    mean = float((ok["foreign_cpu_load"] * ok["seconds_s"]).sum()) / seconds
    top = float(ok["foreign_cpu_load"].max())
    out = {"foreign_load": mean, "foreign_load_max": top}
    flag = mean > FOREIGN_LOAD_THRESHOLD
    note = (
        f"other processes used {mean:.0%} of the machine's CPU while these cells ran "
        f"(time-weighted; up to {top:.0%} in one window): contention may have inflated "
        "its time and energy"
    )
    return out | {"foreign_load_flag": flag, "foreign_load_note": note if flag else ""}


def sharing(w: pd.DataFrame, cells: pd.DataFrame) -> dict:
    """Whose CPU and DRAM energy the row's figures are (`cells`: its ledger cells rows):
    own (no other cell shared the package), attributed (cells shared it and every CPU and
    DRAM figure is this process's share: split by CPU time, or estimated for the process),
    or shared (cells shared it and some figure is the whole package's or machine's, so
    it is counted once per concurrent cell)."""
    concurrent = "exclusive_energy" in cells and bool((cells["exclusive_energy"] == 0).any())
    host = w[w["host_attributed"].notna()]
    whole = host[~host["host_attributed"].astype(bool)]
    split = sorted({a for a in w["attribution"] if a})
    if concurrent and len(whole):
        sources = join_sources(pd.concat([whole["cpu_source"], whole["dram_source"]]))
        how = "shared"
        why = (
            "ran on an executor whose concurrent cells share the CPU package, without "
            "attribution: its CPU "
            f"and DRAM figures ({sources}) are the whole package's, counted once per "
            "concurrent cell"
        )
    elif (concurrent and len(host)) or split:
        how = "attributed"
        parts = []
        if split:
            parts.append(
                f"package energy split among the processes by CPU time ({'+'.join(split)})"
            )
        estimated = join_sources(host.loc[~host["attribution"].astype(bool), "cpu_source"])
        if estimated != "none":
            parts.append(f"estimated for this process's CPU time and memory ({estimated})")
        where = (
            "ran on an executor whose concurrent cells share the CPU package; "
            if concurrent
            else ""
        )
        why = f"{where}its CPU and DRAM figures are this process's share: " + "; ".join(parts)
    else:
        how, why = "own", ""
    return {"energy_sharing": how, "shared_energy": how == "shared", "shared_energy_reason": why}


def row_flags(w: pd.DataFrame, cells: pd.DataFrame) -> dict:
    """Foreign load and energy-sharing marks of one row (`cells`: its ledger cells rows)."""
    unflagged = {"foreign_load_flag": False, "foreign_load_note": ""}
    return unflagged | foreign_load_columns(w) | sharing(w, cells)
