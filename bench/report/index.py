"""`metabench index DIR`: one page listing the run folders directly under DIR.

Written only where asked: `metabench run` and `metabench report` never write outside the
folder they are given, so a user's own DIR/index.html is never touched by them. This
command refuses to replace an index.html that it did not write itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from bench.errors import MetabenchError
from bench.report.html import render_index
from bench.store import LEDGER_NAME, Ledger

# The generator tag of the page; an index.html without it is the user's and is kept.
GENERATOR = "metabench runs index"
# The generator tag of a report page (templates/report.html.j2).
REPORT_GENERATOR = "metabench report"


def _ours(page: Path) -> bool:
    """A report page metabench wrote (not a user's site/index.html)."""
    if not page.is_file():
        return False
    with open(page, errors="replace") as f:  # the tag is in the head: a page can be MBs
        return f'content="{REPORT_GENERATOR}"' in f.read(2000)


def _is_run(folder: Path) -> bool:
    return folder.is_dir() and ((folder / LEDGER_NAME).is_file() or _ours(folder / "index.html"))


def _ledger_state(folder: Path) -> tuple[str, pd.DataFrame | None]:
    """Why the folder's ledger cannot be reported ("" when it can, or has no ledger), and
    its cells table (None when there is no readable ledger)."""
    if not (folder / LEDGER_NAME).is_file():
        return "", None
    try:
        ledger = Ledger(folder)
        ledger.check()
        return "", ledger.table("cells")
    except MetabenchError:
        return f"{LEDGER_NAME} is not a readable metabench ledger", None


def _cell_counts(cells: pd.DataFrame | None) -> tuple[str, list[str] | None]:
    """ "N done, M failed" and the failed cells as "suite / method / seed N" (a partly
    failed run says which); ("", None) when no ledger can tell."""
    if cells is None:
        return "", None
    done, failed = cells[cells["status"] == "done"], cells[cells["status"] == "failed"]
    failed = failed.sort_values(["suite", "method", "seed"])
    names = [f"{r.suite} / {r.method} / seed {r.seed}" for r in failed.itertuples()]
    return f"{len(done)} done, {len(failed)} failed", names


def _names(rows: pd.DataFrame, column: str) -> str:
    return ", ".join(sorted(set(rows.get(column, []))))


def _run_row(folder: Path) -> dict:
    page, summary, ledger = folder / "index.html", folder / "summary.csv", folder / LEDGER_NAME
    has_page = _ours(page)
    problem, cells = _ledger_state(folder)
    counts, failed = _cell_counts(cells)
    suites = methods = ""
    if summary.is_file() and summary.stat().st_size > 1:
        s = pd.read_csv(summary)
        suites, methods = _names(s, "suite"), _names(s, "method")
    elif cells is not None:  # no report yet (e.g. an interrupted run): the finished cells
        done = cells[cells["status"] == "done"]
        suites, methods = _names(done, "suite"), _names(done, "method")
    stamp = (page if has_page else ledger).stat().st_mtime
    return {
        "name": folder.name,
        "href": f"{folder.name}/index.html" if has_page else "",
        "problem": problem,
        "cells": counts,
        "failed": failed,
        "suites": suites,
        "methods": methods,
        "written": time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)),
        "mtime": stamp,
    }


def write_runs_index(runs_dir: Path) -> Path:
    """DIR/index.html: one row per run folder directly under DIR (a folder holding a
    ledger or a report page metabench wrote), newest first. Raises MetabenchError when DIR is not a
    folder, or when DIR/index.html exists and was not written by this command."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise MetabenchError(f"{runs_dir}: expected a folder of run folders, found none")
    index = runs_dir / "index.html"
    if index.exists() and GENERATOR not in index.read_text(errors="replace")[:2000]:
        raise MetabenchError(
            f"{index}: exists and was not written by `metabench index`; it is left as it is "
            "(move it, or index another folder)"
        )
    runs = [_run_row(p) for p in runs_dir.iterdir() if _is_run(p)]
    runs.sort(key=lambda r: r["mtime"], reverse=True)
    index.write_text(render_index(runs, GENERATOR))
    return index
