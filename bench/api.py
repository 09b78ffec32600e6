"""The Python API, for notebooks: run a grid, load a run folder into its tidy tables.

    import bench

    outcome = bench.run_suites(["sinusoid-5shot"], profile="smoke", methods=["scratch"], seeds=[0])
    tables = bench.load_run(outcome.run_dir)
    tables.summary        # one row per suite, method and setting, pooled over seeds
    tables.breakeven      # N* against each baseline: a number (NaN unless one) and why

`run_suites` takes the settings of `metabench run` as keyword arguments (same names, same
defaults, same checks: bench.options, shared with the command line) and raises
MetabenchError naming the argument (`pue=`) before anything runs. The tables come from the
report's own functions (bench.report.aggregate): a notebook and `metabench report` agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import MetabenchError
from bench.options import RunOptions, api_name
from bench.run.session import Outcome

__all__ = ["Outcome", "RunTables", "load_run", "run_suites"]


@dataclass(frozen=True)
class RunTables:
    """A run folder's tables (pandas DataFrames), as the report computes them.

    summary: one row per suite, method and setting, pooled over seeds (summary.csv);
    results: one row per cell, phase and energy window (results.csv); trace: power samples
    in watts with the phase each falls in (trace.csv); learning_curves: validation score
    against cumulative meta-training seconds and joules, per cell; cells: the ledger's
    cells table, done and failed (with the error of each failed cell); ledger: every
    ledger table, raw (bench.report.aggregate.LedgerTables).
    """

    run_dir: Path
    summary: pd.DataFrame
    results: pd.DataFrame
    trace: pd.DataFrame
    learning_curves: pd.DataFrame
    cells: pd.DataFrame
    ledger: object

    @property
    def breakeven(self) -> pd.DataFrame:
        """Suite, method and the summary's break-even columns: `breakeven_vs_<baseline>_n`
        (tasks after which meta-training has paid for itself; NaN unless a number),
        `_lo` / `_hi` (its 95% interval), `_status` (after, never, ... : why) and `_note`."""
        cols = [c for c in self.summary.columns if c.startswith("breakeven_vs_")]
        keys = [c for c in ("suite", "method") if c in self.summary.columns]
        return self.summary[keys + cols]


def load_run(run_dir: str | Path) -> RunTables:
    """Load a run folder (one holding ledger.sqlite) into its tables. Nothing is written.

    Raises MetabenchError when the folder holds no ledger, or one that is not metabench's.
    """
    from bench.report import aggregate
    from bench.report.writer import load_tables
    from bench.store import Ledger

    run_dir = Path(run_dir)
    Ledger(run_dir).require()
    t = load_tables(run_dir)
    finished = not t.done.empty
    return RunTables(
        run_dir=run_dir,
        summary=aggregate.summary_table(t) if finished else pd.DataFrame(),
        results=aggregate.results_table(t),
        trace=aggregate.trace_table(t),
        learning_curves=aggregate.learning_curves(t) if finished else pd.DataFrame(),
        cells=t.cells,
        ledger=t,
    )


def names(field: str, value: object, what: str, example: str) -> tuple:
    """suites= / methods=: one name, or a list or tuple of names (checked by bench.options).
    Raises MetabenchError naming the keyword for anything else (None, a number, a set)."""
    if isinstance(value, (str, Path)):
        return (str(value),)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) if isinstance(v, Path) else v for v in value)
    raise MetabenchError(
        f"{field}=: expected a {what} or a list of them, found {value!r} "
        f"(e.g. {field}={example!r} or {field}=[{example!r}])"
    )


def seed_list(value: object) -> tuple:
    """seeds=: a list or tuple of integers (checked by bench.options). A bare integer is
    refused: seeds=3 could mean seed 3 or three seeds."""
    if isinstance(value, (list, tuple, range)):
        return tuple(value)
    raise MetabenchError(
        f"seeds=: expected a list of integers >= 0, found {value!r} (one seed: seeds=[0]; "
        "three: seeds=[0, 1, 2])"
    )


def run_suites(
    suites: str | Sequence[str],
    *,
    methods: str | Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    verbose: bool = False,
    **settings,
) -> Outcome:
    """Run suites x methods x seeds, as `metabench run` does, and write the report.

    suites: a suite name (see `metabench list`) or .toml path, or a list of them; methods:
    a method name or a list of them (default: every suite's own); seeds: a list of integers
    >= 0 (default: each suite's; a bare integer is refused). settings: every other
    `metabench run` flag as a keyword (profile="standard", device="auto", out=None,
    data_dir=None, download=True, precision, normalization, execution, threads, executor="local",
    scheduler, workers, wait_workers, country, region, carbon_intensity, pue=1.0,
    sample_hz=20.0, progress=True; see bench.options.RunOptions). Re-running the same
    call resumes: finished cells are skipped.

    Returns the Outcome (run_dir, summary of done/skipped/failed cells with the first line
    of each error, report path). Raises MetabenchError for a bad setting, suite or dataset
    or keyword (before anything runs), and KeyboardInterrupt
    (bench.run.session.RunInterrupted, with run_dir) on Ctrl-C.
    """
    import dataclasses

    from bench.registry import did_you_mean
    from bench.run import session

    known = [f.name for f in dataclasses.fields(RunOptions)]
    for key in settings:
        if key not in known:
            raise MetabenchError(
                f"{key}=: unknown setting{did_you_mean(key, known)}; expected one of "
                f"{', '.join(known)}"
            )
    options = RunOptions(
        suites=names("suites", suites, "suite name or .toml path", "sinusoid-5shot"),
        methods=None if methods is None else names("methods", methods, "method name", "maml"),
        seeds=None if seeds is None else seed_list(seeds),
        **settings,
    )
    with session.quiet_libraries(verbose):
        plan = session.plan(options, api_name)
        return session.execute(plan, command=f"bench.run_suites({options!r})")
