"""Per-window rows from the ledger: joules per component kind and in the chosen energy
scope, idle and net joules, CO2, sources, deploy scenario, repeats, foreign load; and the
two per-window CSVs (results.csv, trace.csv)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report.energy import idle_std_j, net_figure
from bench.report.ledger import (
    ENERGY_SCOPES,
    J_PER_KWH,
    KINDS,
    PHASES,
    SETTINGS,
    LedgerTables,
    component_kind,
    empty,
    is_estimated,
    is_process_share,
    join_sources,
    parse_json,
)

CELL_COLUMNS = ["cell_key", "run_id", "suite", "method", "seed", "task", "score_name", "n_test"]
WINDOW_COLUMNS = [
    "phase",
    "idx",
    "n_items",
    "repeats",
    "scenario",
    "step",
    "start_s",
    "seconds_s",
    "joules_j",
    "measured_j",
    "idle_w",
    "idle_std_w",
    "idle_j",
    "net_j",
    "net_note",
    "source",
    "co2_g",
    "warnings",
    *(f"{k}_{x}" for k in KINDS for x in ("j", "source")),
    "estimated",
    "foreign_cpu_load",
    "attribution",
    "host_attributed",
]


def _idle_by_run(idle: pd.DataFrame) -> dict[str, dict[str, tuple[float, float]]]:
    """run -> component -> (idle W, std of idle W or NaN where the ledger has none)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    has_std = "watts_std" in idle.columns
    for row in idle.itertuples():
        std = float(row.watts_std) if has_std and row.watts_std is not None else math.nan
        out.setdefault(row.run_id, {})[row.component] = (float(row.watts), std)
    return out


def _carbon_factor_by_run(carbon: pd.DataFrame) -> dict[str, float]:
    """g CO2 per joule for each run: intensity (g/kWh) x PUE / 3.6e6 J/kWh."""
    return {
        r.run_id: float(r.intensity_g_per_kwh) * float(r.pue) / J_PER_KWH
        for r in carbon.itertuples()
    }


def _kind_columns(joules: dict[str, float], sources: dict[str, str]) -> dict:
    """Joules and source per component kind (NaN / "none" when absent; NaN when failed)."""
    row: dict[str, object] = {}
    for kind in KINDS:
        comps = [c for c in joules if component_kind(c) == kind]
        row[f"{kind}_j"] = sum(joules[c] for c in comps) if comps else np.nan
        row[f"{kind}_source"] = join_sources(sources.get(c, "none") for c in comps)
    return row


def _scope_row(
    w: object,
    joules: dict[str, float],
    sources: dict[str, str],
    idle_w: dict[str, tuple[float, float]] | None,
    scope: str,
) -> dict:
    """Gross, idle and net joules of the components in the energy scope."""
    kinds = ENERGY_SCOPES[scope]
    comps = [c for c in joules if kinds is None or component_kind(c) in kinds]
    ok = bool(comps) and not any(math.isnan(joules[c]) for c in comps)
    gross = sum(joules[c] for c in comps) if ok else np.nan
    measured = sum(joules[c] for c in comps if not is_estimated(sources.get(c, ""))) if ok else 0
    # Net needs an idle figure for every component; a partial baseline would silently
    # inflate the net figure, so it is NaN instead.
    seconds = float(w.seconds)
    if ok and idle_w is not None and all(c in idle_w for c in comps):
        idle_watts = sum(idle_w[c][0] for c in comps)
        idle_std = math.sqrt(sum(idle_w[c][1] ** 2 for c in comps))
    else:
        idle_watts = idle_std = np.nan
    return {
        "joules_j": gross,
        "measured_j": measured if ok else np.nan,
        "idle_w": idle_watts,
        "idle_std_w": idle_std,
        "idle_j": idle_watts * seconds,
        "source": join_sources(sources.get(c, "none") for c in comps),
    }


def _window_row(
    w: object,
    idle_w: dict[str, tuple[float, float]] | None,
    g_per_j: float,
    scope: str,
) -> dict:
    joules = {k: float(v) for k, v in parse_json(w.joules, {}).items()}
    sources = parse_json(w.sources, {})
    details = parse_json(getattr(w, "details", None), {})
    row = _scope_row(w, joules, sources, idle_w, scope)
    repeats = getattr(w, "repeats", None)
    repeats = 1 if repeats is None or pd.isna(repeats) else int(repeats)
    scenario = getattr(w, "scenario", None)
    if w.phase in ("adapt", "predict"):
        scenario = scenario if isinstance(scenario, str) and scenario else "stream"
    else:
        scenario = ""
    details = details if isinstance(details, dict) else {}
    load = details.get("foreign_cpu_load")
    # {"cpu:0": "process-cpu-time", ...}: energy split among concurrent cells' processes
    split = details.get("attribution") or {}
    split = split if isinstance(split, dict) else {}
    attribution = "+".join(sorted(set(map(str, split.values()))))
    return {
        "cell_key": w.cell_key,
        "phase": w.phase,
        "idx": int(w.idx),
        "n_items": int(w.n_items),
        "repeats": repeats,
        "scenario": scenario,
        "step": int(w.step),
        "start_s": float(w.start_s),
        "seconds_s": float(w.seconds),
        **row,
        "co2_g": row["joules_j"] * g_per_j,
        "warnings": "; ".join(parse_json(w.warnings, [])),
        **_kind_columns(joules, sources),
        "estimated": is_estimated(row["source"]),
        "foreign_cpu_load": float(load) if isinstance(load, (int, float)) else np.nan,
        "attribution": attribution,
        "host_attributed": _host_attributed(joules, sources, split),
    }


def _host_attributed(joules: dict, sources: dict, split: dict) -> bool | None:
    """Is every CPU and DRAM figure of the window this process's share: split by CPU time
    (details["attribution"]) or estimated for the process (is_process_share)? None when
    the window has no CPU or DRAM figure."""
    host = [c for c in joules if component_kind(c) in ("cpu", "dram")]
    if not host:
        return None
    return all(c in split or is_process_share(str(sources.get(c, ""))) for c in host)


def enrich_windows(t: LedgerTables, energy_scope: str = "node") -> pd.DataFrame:
    """One row per window of a done cell with the cell's identity and settings.

    joules_j / idle_w / net_j / co2_g / source / estimated cover the components of
    `energy_scope` ("node": every component; "gpu": the accelerator only); net_j follows
    energy.net_figure (NaN within the idle noise band or below the baseline, net_note
    saying which), so it is never negative; <kind>_j and
    <kind>_source every component kind. items_done = repeats x n_items (the tasks a
    window's energy is divided by); j_per_item and s_per_item are per such task.
    """
    if energy_scope not in ENERGY_SCOPES:
        raise ValueError(f"energy_scope must be one of {sorted(ENERGY_SCOPES)}: {energy_scope}")
    done = t.done
    idle, carbon = _idle_by_run(t.idle), _carbon_factor_by_run(t.carbon)
    run_of = dict(zip(done["cell_key"], done["run_id"], strict=True))
    windows = t.windows[t.windows["cell_key"].isin(done["cell_key"])]
    rows = [
        _window_row(
            w, idle.get(run_of[w.cell_key]), carbon.get(run_of[w.cell_key], np.nan), energy_scope
        )
        for w in windows.itertuples()
    ]
    frame = pd.DataFrame(rows, columns=["cell_key", *WINDOW_COLUMNS])
    out = done[CELL_COLUMNS + list(SETTINGS)].merge(frame, on="cell_key")
    # net of idle as in the summary: a figure within the idle noise band reads as such
    nets = [
        net_figure(*v) for v in zip(out["joules_j"], out["idle_j"], idle_std_j(out), strict=True)
    ]
    out["net_j"] = [n for n, _ in nets]
    out["net_note"] = [note for _, note in nets]
    out["items_done"] = out["repeats"] * out["n_items"]
    out["j_per_item"] = out["joules_j"] / out["items_done"]
    out["s_per_item"] = out["seconds_s"] / out["items_done"]
    return out


def results_table(t: LedgerTables, energy_scope: str = "node") -> pd.DataFrame:
    """results.csv: one tidy row per cell, phase and window."""
    ew = enrich_windows(t, energy_scope)
    ew["phase"] = pd.Categorical(ew["phase"], PHASES, ordered=True)
    scores = t.done[["cell_key", "score_mean", "score_ci95", "fingerprint"]]
    out = ew.merge(scores, on="cell_key")
    return out.sort_values(["suite", "method", "seed", "phase", "idx"]).reset_index(drop=True)


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
        return empty(cols)
    s = t.samples.rename(columns={"t": "t_s", "watts": "power_w"})
    s = t.done[["cell_key", "suite", "method", "seed"]].merge(s, on="cell_key")
    s["t_rel_s"] = s["t_s"] - s.groupby("cell_key")["t_s"].transform("min")
    return s[cols].sort_values(["suite", "method", "seed", "t_s"], ignore_index=True)
