"""Learning curves against cumulative meta-training energy, and what is read off them:
energy-to-target and iso-accuracy energy against a baseline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report.energy import total
from bench.report.ledger import SETTINGS, LedgerTables, empty, lower_is_better

CURVE_COLUMNS = [
    "suite",
    "method",
    "seed",
    *SETTINGS,
    "cell_key",
    "step",
    "val_score",
    "meta_j_cum",
    "meta_s_cum",
    "estimated",
    "target_score",
    "task",
]


def curves_from_windows(t: LedgerTables, ew: pd.DataFrame) -> pd.DataFrame:
    """Validation checkpoints with cumulative meta_train joules and seconds, from the
    meta_train windows `ew` (enriched windows), so the curve and E_meta use the same
    numbers and the same energy scope."""
    if ew.empty or t.checkpoints.empty:
        return empty(CURVE_COLUMNS)
    meta = ew[ew["phase"] == "meta_train"]
    done = t.done.set_index("cell_key")
    rows = []
    for c in t.checkpoints[t.checkpoints["cell_key"].isin(done.index)].itertuples():
        m = meta[(meta["cell_key"] == c.cell_key) & (meta["step"] <= c.step)]
        cell = done.loc[c.cell_key]
        rows.append(
            {
                **{k: cell[k] for k in ("suite", "method", "seed", *SETTINGS)},
                "cell_key": c.cell_key,
                "step": int(c.step),
                # NULL when validation diverged mid-training: a gap in the curve, no crash
                "val_score": _score(c.val_score),
                "meta_j_cum": total(m["joules_j"]) if len(m) else np.nan,
                "meta_s_cum": float(m["seconds_s"].sum()),
                "estimated": bool(m["estimated"].any()),
                "target_score": cell["target_score"],
                "task": cell["task"],
            }
        )
    if not rows:
        return empty(CURVE_COLUMNS)
    return pd.DataFrame(rows).sort_values(["suite", "method", "seed", "step"], ignore_index=True)


def _score(value: object) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def reached(score: float, target: float, lower_better: bool) -> bool:
    return score <= target if lower_better else score >= target


def first_reaching(curve: pd.DataFrame, target: float) -> dict[str, float]:
    """Energy and seconds at the first checkpoint of one cell's curve reaching `target`."""
    for row in curve.sort_values("step").itertuples():
        if reached(row.val_score, target, lower_is_better(row.task)):
            return {"joules": row.meta_j_cum, "seconds": row.meta_s_cum}
    return {"joules": np.nan, "seconds": np.nan}


def to_target(curve: pd.DataFrame) -> dict[str, float]:
    """first_reaching the suite's own target score."""
    return first_reaching(curve, float(curve["target_score"].iloc[0]))


def _over_seeds(curves: pd.DataFrame, target: float | None, n_seeds: int) -> tuple:
    """(mean joules, mean seconds, 'k/n seeds') over the seeds whose curve reaches target
    (None: the suite's target)."""
    hits = [
        to_target(c) if target is None else first_reaching(c, target)
        for _, c in curves.groupby("seed")
    ]
    ok = [h for h in hits if not math.isnan(h["seconds"])]
    joules = float(np.mean([h["joules"] for h in ok])) if ok else np.nan
    seconds = float(np.mean([h["seconds"] for h in ok])) if ok else np.nan
    return joules, seconds, f"{len(ok)}/{n_seeds} seeds"


def target_summary(curves: pd.DataFrame, n_seeds: int) -> dict[str, float | str]:
    """Energy-to-target of one row: mean over the seeds that reached the target."""
    if curves.empty:
        return {
            "energy_to_target_j": np.nan,
            "seconds_to_target_s": np.nan,
            "target_reached": "no checkpoints",
        }
    joules, seconds, reached_text = _over_seeds(curves, None, n_seeds)
    return {
        "energy_to_target_j": joules,
        "seconds_to_target_s": seconds,
        "target_reached": reached_text,
    }


def iso_energy(curves: pd.DataFrame, baseline_score: float, n_seeds: int) -> tuple[float, str]:
    """Iso-accuracy energy: meta_train energy at the first validation checkpoint whose
    score reaches a baseline's test score (mean over the seeds that do), and 'k/n seeds'.
    The curve scores validation episodes (held-out classes), the baseline test episodes:
    the comparison is as close as the two splits are alike."""
    if curves.empty:
        return np.nan, "no checkpoints"
    joules, _, reached_text = _over_seeds(curves, baseline_score, n_seeds)
    return joules, reached_text
