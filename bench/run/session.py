"""One run, from checked settings to the written report: the engine of `metabench run` and
of `bench.api.run`.

`plan` does everything that can fail on bad input before anything runs: settings
(bench.options), suite files, the grid, the device, the carbon intensity, and every dataset
the cells need (found, verified, downloaded where allowed). Only then does `execute` create
the run folder and its ledger and hand the cells to an executor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.data import data_root_origin, prepare_datasets, resolve_data_root
from bench.devices import resolve_device
from bench.energy.carbon import CarbonIntensity, resolve_intensity
from bench.errors import MetabenchError
from bench.options import Naming, RunOptions, check_run_options, cli_name
from bench.run.executors import ERRORS_LOG, RunSummary
from bench.run.grid import DEFAULT_THREADS, Cell, expand_grid
from bench.suite import Suite, load_suite

REPORTS_DIR = Path("reports")


@dataclass(frozen=True)
class Plan:
    options: RunOptions
    suites: list[Suite]
    cells: list[Cell]
    device: str
    threads: int
    data_root: Path
    carbon: CarbonIntensity
    run_dir: Path


@dataclass(frozen=True)
class Outcome:
    """A finished run: its folder, what happened to its cells, and its report page."""

    run_dir: Path
    summary: RunSummary
    report: Path | None


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; `run_dir` holds every cell finished before it."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def default_run_dir(suites: list[Suite], profile: str) -> Path:
    """reports/<suite>[+<suite>]-<profile>, or reports/<n>suites-<hash>-<profile> for more
    than two suites. Deterministic, so that re-running the same command resumes the run."""
    names = [s.name for s in suites]
    if len(names) <= 2:
        return REPORTS_DIR / f"{'+'.join(names)}-{profile}"
    digest = hashlib.sha256("|".join(sorted(names)).encode()).hexdigest()[:8]
    return REPORTS_DIR / f"{len(names)}suites-{digest}-{profile}"


def plan(o: RunOptions, name: Naming = cli_name) -> Plan:
    """Check everything and find every dataset; raises MetabenchError, creates nothing
    (except datasets downloaded into the data root)."""
    check_run_options(o, name)
    suites = [load_suite(s, o.profile) for s in o.suites]
    check_distinct_suites(suites, name)
    overrides = {
        k: v for k, v in (("precision", o.precision), ("normalization", o.normalization)) if v
    }
    suites = [dataclasses.replace(s, **overrides) for s in suites]
    data_root = resolve_data_root(o.data_dir)
    device = resolve_device(o.device, name("device"), local=o.executor != "dask")
    threads = o.threads or DEFAULT_THREADS
    seeds = list(o.seeds) if o.seeds is not None else None
    methods = list(o.methods) if o.methods is not None else None
    cells = expand_grid(suites, methods, seeds, device, threads=threads, execution=o.execution)
    carbon = resolve_intensity(o.country, o.region, o.carbon_intensity, o.pue)
    needed: dict[str, list[str]] = {}
    for c in cells:
        needed.setdefault(c.suite.dataset, []).append(c.suite.name)
    prepare_datasets(needed, data_root, download=o.download, origin=data_root_origin(o.data_dir))
    run_dir = Path(o.out) if o.out else default_run_dir(suites, o.profile)
    return Plan(o, suites, cells, device, threads, data_root, carbon, run_dir)


def check_distinct_suites(suites: list[Suite], name: Naming) -> None:
    """The same suite file twice would run its cells twice."""
    seen: dict[str, str] = {}
    for s in suites:
        path = str(Path(s.path).resolve())
        if path in seen:
            raise MetabenchError(
                f"{name('suites')}: expected distinct suites, found {s.path} twice"
            )
        seen[path] = s.name


def execute(p: Plan, command: str) -> Outcome:
    """Run the plan's cells into its run folder, then write the report. Ctrl-C raises
    RunInterrupted after the finished cells are safe in the ledger."""
    from bench.energy.composite import build_meter
    from bench.environment import snapshot
    from bench.report.writer import write_report
    from bench.run.executors import open_executor
    from bench.store import Ledger

    o = p.options
    ledger = Ledger(p.run_dir)
    try:
        run_id = ledger.start_run(command, snapshot(p.device))
        ledger.write_carbon(run_id, p.carbon)
        meter_factory = functools.partial(build_meter, p.device, sample_hz=o.sample_hz)
        with open_executor(
            o.executor,
            meter_factory,
            p.data_root,
            device=p.device,
            threads=p.threads,
            scheduler=o.scheduler,
            workers=o.workers,
            wait_workers=o.wait_workers,
            progress=o.progress,
        ) as executor:
            summary = executor.execute(p.cells, ledger, run_id)
    except KeyboardInterrupt:
        raise RunInterrupted(p.run_dir) from None
    # Always a report: without a finished cell it says so and lists the failed cells.
    return Outcome(p.run_dir, summary, write_report(p.run_dir, energy_scope=o.energy_scope))


def failure_paragraph(outcome: Outcome) -> str:
    """One paragraph: which cells failed, the first line of each error, where the full
    tracebacks are, and that a re-run retries them."""
    s = outcome.summary
    by_error: dict[str, list[str]] = {}
    for label, line in s.failures:
        by_error.setdefault(line, []).append(label)
    cells = "; ".join(f"{', '.join(labels)} ({line})" for line, labels in by_error.items())
    total = s.done + s.failed + s.skipped
    return (
        f"{s.failed} of {total} cells failed: {cells}. Full tracebacks: "
        f"{outcome.run_dir / ERRORS_LOG} (and the `error` column of the ledger's cells "
        "table). Re-running the same command retries the failed cells and keeps the others."
    )


@contextlib.contextmanager
def quiet_libraries(verbose: bool = False) -> Iterator[None]:
    """Third-party log records and Python warnings stay off stderr unless `verbose`:
    metabench's own messages say what went wrong (codecarbon, for one, logs an ERROR with a
    traceback for an unknown region before raising). The previous state is restored."""
    if verbose:
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
