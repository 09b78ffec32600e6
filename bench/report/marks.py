"""The marks a summary row carries wherever a reader meets it (headline, answer and detail
tables, summary.md), each explained by a legend line beside it:

- † transductive normalization in a suite that mixes normalizations (in the row's label:
  bench/report/tables.py);
- ⚠ foreign CPU load: other processes used more than 10% of the machine's CPU while the
  row's cells ran (time-weighted; `foreign_load_flag`, `foreign_load_note`);
- ‡ shared energy: the row's CPU and DRAM figures are a CPU package's that concurrent
  cells shared, or this process's attributed share of it (`shared_energy`,
  `energy_sharing`, `shared_energy_reason`).

Columns absent from an older summary read as unflagged.
"""

from __future__ import annotations

import pandas as pd

FOREIGN = "⚠"
SHARED = "‡"


def _flag(r: pd.Series, key: str) -> bool:
    """A boolean column's value (numpy or Python; NaN, None, absent or text: False)."""
    value = r.get(key)
    if isinstance(value, str) or value is None:
        return False
    return bool(pd.notna(value) and value)


def foreign(r: pd.Series) -> bool:
    return _flag(r, "foreign_load_flag")


def shared(r: pd.Series) -> bool:
    """True where the row's CPU and DRAM energy is not its own alone: counted once per
    concurrent cell (`shared_energy`) or split among the processes (`energy_sharing` =
    attributed)."""
    return _flag(r, "shared_energy") or r.get("energy_sharing") == "attributed"


def row_marks(r: pd.Series) -> str:
    """ " ⚠", " ‡", " ⚠ ‡" or "" for one summary row."""
    marks = [m for m, on in ((FOREIGN, foreign(r)), (SHARED, shared(r))) if on]
    return (" " + " ".join(marks)) if marks else ""


def _load_text(r: pd.Series) -> str:
    mean, top = r.get("foreign_load"), r.get("foreign_load_max")
    if isinstance(mean, float) and mean == mean:
        return f"{mean:.0%} time-weighted" + (
            f", up to {top:.0%}" if isinstance(top, float) and top == top else ""
        )
    return f"up to {top:.0%}" if isinstance(top, float) and top == top else "load not recorded"


def foreign_legend(s: pd.DataFrame) -> str:
    """The legend line of ⚠ for the rows of `s`, naming the flagged ones ("" if none)."""
    rows = [r for _, r in s.iterrows() if foreign(r)]
    if not rows:
        return ""
    named = ", ".join(f"{r.get('label', r['method'])} ({_load_text(r)})" for r in rows)
    return (
        f"{FOREIGN}: run while other processes used more than 10% of the machine's CPU: "
        f"{named}. Contention may have inflated these rows' time and energy several-fold "
        "(multi-threaded batched rows most: docs/protocol.md, Execution): do not rank them; "
        "the Warnings section lists them per cell."
    )


def shared_legend(s: pd.DataFrame) -> str:
    """The legend line of ‡ with each distinct reason and its rows ("" if none)."""
    rows = [r for _, r in s.iterrows() if shared(r)]
    if not rows:
        return ""
    by_reason: dict[str, list[str]] = {}
    for r in rows:
        reason = r.get("shared_energy_reason")
        reason = reason if isinstance(reason, str) and reason else "energy shared among cells"
        by_reason.setdefault(reason, []).append(str(r.get("label", r["method"])))
    parts = [f"{', '.join(names)}: {reason}" for reason, names in by_reason.items()]
    return f"{SHARED}: CPU and DRAM energy not this row's alone. " + "; ".join(parts) + "."


def legends(s: pd.DataFrame) -> list[str]:
    """The legend lines of the marks present in `s` (⚠, ‡)."""
    return [x for x in (foreign_legend(s), shared_legend(s)) if x]
