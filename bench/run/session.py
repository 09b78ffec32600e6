"""One run, from checked settings to the written report: the engine of `metabench run` and
of `bench.api.run`.

`plan` does everything that can fail on bad input before anything runs: settings
(bench.options), suite files, the grid, the device, the carbon intensity, and every dataset
the cells need (found, verified, downloaded where allowed), and the run folder (one metabench
may write, not locked by another run). `execute` then connects the executor (a Dask
cluster: its scheduler and workers checked) and only then creates the run folder, locks
it, opens its ledger and hands the cells to the executor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.data import data_root_origin, prepare_datasets, resolve_data_root
from bench.devices import cpu_count, resolve_device
from bench.energy.carbon import CarbonIntensity, resolve_intensity
from bench.errors import MetabenchError
from bench.options import (
    Naming,
    RunOptions,
    check_out,
    check_run_options,
    cli_name,
    respelled,
)
from bench.registry import did_you_mean
from bench.run.executors import ERRORS_LOG, RunSummary
from bench.run.folder import RunLock, lock_holder, publish_report
from bench.run.grid import DEFAULT_THREADS, Cell, expand_grid
from bench.store import Ledger
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
    notes: tuple[str, ...] = ()  # printed when the run starts (duplicate cells, contention)


@dataclass(frozen=True)
class Outcome:
    """A finished run: its folder, what happened to its cells, and its report page."""

    run_dir: Path
    summary: RunSummary
    report: Path | None


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run. `stage`: "start" (before the run folder was touched: nothing
    written), "cells" (`run_dir` holds every cell finished before it) or "report" (every
    cell is kept; the earlier report, if any, was left as it was)."""

    def __init__(self, run_dir: Path, stage: str = "cells") -> None:
        super().__init__(str(run_dir))
        self.run_dir, self.stage = run_dir, stage


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
    check_methods(suites, o.methods, name)
    run_dir = Path(o.out) if o.out else default_run_dir(suites, o.profile)
    check_run_dir(run_dir, name if o.out else (lambda f: f"{name(f)} (default {run_dir})"))
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
    cells, notes = distinct_cells(cells)
    notes += skipped_methods(suites, methods)
    if note := contention_note(o, device, threads):
        notes.append(note)
    try:  # bench.energy.carbon names the flags as the command line spells them
        carbon = resolve_intensity(o.country, o.region, o.carbon_intensity, o.pue)
    except MetabenchError as e:
        raise respelled(e, name) from None
    needed: dict[str, list[str]] = {}
    for c in cells:
        needed.setdefault(c.suite.dataset, []).append(c.suite.name)
    prepare_datasets(needed, data_root, download=o.download, origin=data_root_origin(o.data_dir))
    return Plan(o, suites, cells, device, threads, data_root, carbon, run_dir, tuple(notes))


def check_distinct_suites(suites: list[Suite], name: Naming) -> None:
    """Two suites of one name (the same file twice, or a suite by name and by path) would
    run the same cells twice and share the report's rows."""
    seen: dict[str, str] = {}
    for s in suites:
        if s.name in seen:
            same = Path(seen[s.name]).resolve() == Path(s.path).resolve()
            found = s.path if same else f"{seen[s.name]} and {s.path}"
            raise MetabenchError(
                f"{name('suites')}: expected distinct suites, found the suite {s.name!r} "
                f"twice ({found}); list it once"
            )
        seen[s.name] = s.path


def check_methods(suites: list[Suite], methods, name: Naming) -> None:
    """Every requested method belongs to one of the suites (named as the caller spells it:
    --methods or methods=)."""
    known = list(dict.fromkeys(m.name for s in suites for m in s.methods))
    for m in methods or ():
        if m not in known:
            raise MetabenchError(
                f"{name('methods')}: expected methods of the chosen suites ({', '.join(known)}), "
                f"found {m!r}{did_you_mean(m, known)}"
            )


def skipped_methods(suites: list[Suite], methods: list[str] | None) -> list[str]:
    """A note per suite that does not list some of the requested methods (ProtoNets has
    no regression form): those cells are not planned, and the user should know."""
    notes = []
    for s in suites:
        missing = [m for m in methods or () if m not in {x.name for x in s.methods}]
        if missing:
            notes.append(f"{s.name} has no {', '.join(missing)}: not run for that suite")
    return notes


def check_run_dir(run_dir: Path, name: Naming) -> None:
    """The run folder is one metabench may write (new, empty or its own), holds no foreign
    or corrupt ledger, and no other run is writing into it."""
    check_out(run_dir, name)
    Ledger(run_dir).check()
    lock_holder(run_dir, name("out"))


def distinct_cells(cells: list[Cell]) -> tuple[list[Cell], list[str]]:
    """Each cell key once (two suite files with the same bytes under different names give
    the same keys): the first wins, and a note says which were dropped."""
    first: dict[str, Cell] = {}
    dropped = []
    for c in cells:
        if c.key in first:
            dropped.append(f"{c.label} (= {first[c.key].label})")
        else:
            first[c.key] = c
    if not dropped:
        return cells, []
    return list(first.values()), [
        f"{len(dropped)} cell(s) repeat an earlier cell's settings exactly and run once: "
        + ", ".join(dropped)
    ]


def contention_note(o: RunOptions, device: str, threads: int) -> str | None:
    """dask-local workers x threads beyond the cores: every cell competes for them."""
    if o.executor != "dask-local" or device != "cpu":
        return None
    from bench.run.dask_cluster import default_workers

    workers = o.workers or default_workers(device, threads)
    if workers * threads <= cpu_count():
        return None
    return (
        f"{workers} workers x {threads} threads exceed the {cpu_count()} cores: cell times "
        "and energy would include the contention (fewer --workers or --threads avoid it)"
    )


def execute(p: Plan, command: str) -> Outcome:
    """Connect the executor (and check its workers), then create the run folder, lock it,
    run the plan's cells into its ledger and write the report. Ctrl-C raises
    RunInterrupted (after the finished cells are safe in the ledger)."""
    from bench.energy.composite import build_meter
    from bench.environment import snapshot
    from bench.run.executors import open_executor

    o = p.options
    for note in p.notes:
        print(f"metabench: note: {note}", file=sys.stderr)
    meter_factory = functools.partial(build_meter, p.device, sample_hz=o.sample_hz)
    stage = "start"
    try:
        with (
            open_executor(
                o.executor,
                meter_factory,
                p.data_root,
                device=p.device,
                threads=p.threads,
                scheduler=o.scheduler,
                workers=o.workers,
                wait_workers=o.wait_workers,
                progress=o.progress,
            ) as executor,
            RunLock(p.run_dir, command),
        ):
            ledger = Ledger(p.run_dir)
            run_id = ledger.start_run(command, snapshot(p.device))
            stage = "cells"
            ledger.write_carbon(run_id, p.carbon)
            summary = executor.execute(p.cells, ledger, run_id)
        # Always a report: without a finished cell it says so and lists the failed cells.
        stage = "report"
        report = publish_report(p.run_dir, energy_scope=o.energy_scope)
    except KeyboardInterrupt:
        raise RunInterrupted(p.run_dir, stage) from None
    return Outcome(p.run_dir, summary, report)


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
