"""Write a run directory's report files from its ledger alone (nothing re-runs)."""

from __future__ import annotations

from pathlib import Path

from bench.errors import MetabenchError
from bench.report.aggregate import results_table, summary_table
from bench.store import LEDGER_NAME, Ledger


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """results.csv and summary.csv into `out` (default: the run directory)."""
    run_dir = Path(run_dir)
    if not (run_dir / LEDGER_NAME).is_file():
        raise MetabenchError(f"{run_dir}: expected a run directory holding {LEDGER_NAME}, "
                             "found none (run `metabench run` first)")
    out = Path(out or run_dir)
    out.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(run_dir)
    cells, windows, episodes, metrics = (
        ledger.table(t) for t in ("cells", "windows", "episodes", "episode_metrics"))
    results_table(cells, windows).to_csv(out / "results.csv", index=False)
    summary_table(cells, windows, episodes, metrics).to_csv(out / "summary.csv", index=False)
    return out
