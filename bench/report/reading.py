"""Reading the summary table's answers: break-even status and interval per baseline, the
Pareto front, the energy columns of a scope, the score's direction. Pure functions of
summary rows (bench/report/aggregate.py computes them); the headline, plots and tables
share them so they never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.report import fmt

BASELINES = ("scratch", "transfer")
# The scopes of --energy-scope: node = every metered component (GPU + CPU + DRAM; MLPerf
# Power measures the system), gpu = the accelerator only (what Zeus and the ML.ENERGY
# leaderboard report).
SCOPES = ("node", "gpu")


@dataclass(frozen=True)
class BreakEven:
    """One method against one baseline (the summary's breakeven_vs_<b>_* columns).

    status: after | from_first_task | never | until | less_accurate | baseline |
    no_baseline | not_measured | not_comparable; n, lo, hi: N* and its 95% interval in
    tasks (NaN unless status is after or until); note: the reason in words."""

    base: str
    status: str
    n: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    note: str = ""

    @property
    def has_number(self) -> bool:
        return self.status in ("after", "until") and not math.isnan(self.n)

    def text(self) -> str:
        """The break-even in words, the same in every table, plot and summary.md:
        "after 120 tasks (95% CI 90 to 170)", "until 40 tasks (95% CI 8 to no limit)",
        "from the first task", "never", "less accurate", ..."""
        words, interval = self.parts()
        return f"{words} ({interval})" if interval else words

    def parts(self) -> tuple[str, str]:
        """(words, interval): text() with its 95% interval apart ("" when none), for a
        table cell that prints the interval on a second line."""
        if self.has_number:
            # until: an infinite end means cheaper for every N
            open_end = "no limit" if self.status == "until" else "never"
            words, interval = fmt.tasks_parts(self.n, self.lo, self.hi, open_end=open_end)
            return f"{self.status} {words}", interval
        return self._status_words(), ""

    def _status_words(self) -> str:
        return {
            "from_first_task": "from the first task",
            "never": "never",
            "less_accurate": "less accurate",
            "baseline": "baseline",
            "no_baseline": f"no {self.base} run",
            "not_measured": "not measured",
            "not_comparable": "not comparable",
        }.get(self.status, self.status.replace("_", " "))


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def breakeven(row: pd.Series, base: str) -> BreakEven:
    """The break-even of one summary row against `base`."""
    prefix = f"breakeven_vs_{base}"
    note = row.get(f"{prefix}_note")
    return BreakEven(
        base,
        str(row.get(f"{prefix}_status", "not_measured")),
        _float(row.get(f"{prefix}_n")),
        _float(row.get(f"{prefix}_lo")),
        _float(row.get(f"{prefix}_hi")),
        note if isinstance(note, str) else "",
    )


def lower_better(rows: pd.DataFrame | pd.Series) -> bool:
    value = rows["lower_is_better"]
    return bool(value.iloc[0] if isinstance(value, pd.Series) else value)


def pareto_front(points: pd.DataFrame, energy: str, lower: bool) -> pd.DataFrame:
    """The rows not dominated in (less `energy`, better score), sorted by energy; a row
    with equal energy and score to a kept one is kept too (a tie is not dominated)."""
    p = points.dropna(subset=[energy, "score_mean"])
    p = p.sort_values([energy, "score_mean"], ascending=[True, lower])
    keep, best, best_energy = [], None, None
    for idx, r in p.iterrows():
        score, e = r["score_mean"], r[energy]
        better = best is None or (score < best if lower else score > best)
        tie = best is not None and score == best and e == best_energy
        if better or tie:
            keep.append(idx)
            best, best_energy = score, e
    return p.loc[keep]
