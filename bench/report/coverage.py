"""Which cells of a run did not finish, and why: the failed rows of the ledger with their
errors, so a page never shows the survivors of a run as if they were all of it."""

from __future__ import annotations

import pandas as pd

UNFINISHED_COLUMNS = ["suite", "method", "seed", "status", "error_line", "error", "cell_key"]


def last_line(error: object) -> str:
    """The line of a traceback that says what went wrong (its last non-empty line)."""
    lines = [x.strip() for x in str(error or "").splitlines() if x.strip()]
    return lines[-1] if lines else "no error recorded"


def unfinished_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells whose status is not done (failed), one row each with the error's last line
    and the full error text, sorted by suite, method and seed."""
    rows = cells[cells["status"] != "done"]
    out = pd.DataFrame(
        {
            "suite": rows["suite"],
            "method": rows["method"],
            "seed": rows["seed"],
            "status": rows["status"],
            "error_line": [last_line(e) for e in rows.get("error", [None] * len(rows))],
            "error": rows.get("error", pd.Series([""] * len(rows), index=rows.index)).fillna(""),
            "cell_key": rows["cell_key"],
        },
        columns=UNFINISHED_COLUMNS,
    )
    return out.sort_values(["suite", "method", "seed"], ignore_index=True)


CELL_COLUMNS = [
    "suite",
    "method",
    "seed",
    "status",
    "error",
    "profile",
    "device",
    "precision",
    "normalization",
    "execution",
    "torch_threads",
    "score_name",
    "score_mean",
    "score_ci95",
    "seconds",
    "cell_key",
    "run_id",
]


def cells_table(cells: pd.DataFrame) -> pd.DataFrame:
    """cells.csv: every cell of the ledger, done or not, with its status, its error (full
    text, empty when done), its settings and its wall time in seconds."""
    out = cells.assign(
        error=cells.get("error", pd.Series(index=cells.index, dtype=object)).fillna(""),
        seconds=cells["finished_at"] - cells["started_at"],
    )
    out = out.reindex(columns=CELL_COLUMNS)
    return out.sort_values(["suite", "method", "seed"], ignore_index=True)
