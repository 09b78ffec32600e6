"""Which cells of a run did not finish, and why: the failed rows of the ledger with their
errors, and the cells the run's command asked for that never ran (stopped before them),
so a page never shows the survivors of a run as if they were all of it."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd

from bench.report.styles import display_name

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


# --------------------------------------------------------------------------- plan


def planned_cells(runs: pd.DataFrame) -> set[tuple[str, str, int]] | None:
    """(suite, method, seed) of every cell the run commands in `runs` asked for, read back
    through the command-line parser and the suite files found here; None when no command
    can be read that way (then nothing is reported missing)."""
    from bench.cli import build_parser
    from bench.errors import MetabenchError
    from bench.suite import load_suite

    planned: set[tuple[str, str, int]] = set()
    known = False
    for command in runs.get("command", pd.Series(dtype=object)).dropna():
        words = shlex.split(str(command))
        try:
            args, _ = build_parser().parse_known_args(words[1:])
        except (MetabenchError, SystemExit):
            continue
        if getattr(args, "command", None) != "run":
            continue
        for name in args.suites:
            try:
                suite = load_suite(name, args.profile)
            except MetabenchError:
                try:  # a path from another machine: the same suite by its file name
                    suite = load_suite(Path(name).stem, args.profile)
                except MetabenchError:
                    continue
            known = True
            names = [m.name for m in suite.methods]
            chosen = [m for m in (args.methods or names) if m in names]
            for seed in args.seeds if args.seeds is not None else suite.seeds:
                planned.update((suite.name, m, int(seed)) for m in chosen)
    return planned if known else None


def absent_lines(cells: pd.DataFrame, runs: pd.DataFrame) -> dict[str, list[str]]:
    """Per suite, sentences naming its methods that failed (with the error) or that the
    run's command asked for but never ran (stopped or killed before them)."""
    out: dict[str, list[str]] = {}
    for r in unfinished_cells(cells).itertuples():
        out.setdefault(r.suite, []).append(
            f"{display_name(r.method)} (seed {r.seed}) {r.status}: {r.error_line}."
        )
    planned = planned_cells(runs)
    if planned is None:
        return out
    present = set(zip(cells["suite"], cells["method"], cells["seed"].astype(int), strict=True))
    for suite in sorted({p[0] for p in planned}):
        mine = {p for p in planned if p[0] == suite}
        gone = sorted(mine - present)
        if not gone:
            continue
        if len(gone) == len(mine):
            text = f"None of its {len(mine)} planned cells ran: the run stopped before this suite."
        else:
            several = len({seed for _, _, seed in mine}) > 1
            by_method: dict[str, list[int]] = {}
            for _, method, seed in gone:
                by_method.setdefault(method, []).append(seed)
            names = [
                display_name(m) + (f" (seeds {', '.join(map(str, v))})" if several else "")
                for m, v in by_method.items()
            ]
            text = (
                f"Never ran (the run stopped before them): {', '.join(names)}; "
                "the lines below leave them out."
            )
        out.setdefault(suite, []).append(text)
    return out
