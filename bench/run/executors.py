"""Executors run the grid's cells and stream each finished cell into the ledger.

The driver is the only writer of the ledger. `LocalExecutor` runs cells one after another
in this process; `bench.run.dask_executor.DaskExecutor` runs them on a Dask cluster.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.energy.base import Meter
from bench.energy.idle import measure_idle
from bench.errors import MetabenchError
from bench.run.grid import Cell
from bench.run.harness import run_cell
from bench.run.placement import here
from bench.run.progress import Progress, describe_meters
from bench.store import Ledger

ERRORS_LOG = "errors.log"  # in the run folder: the full traceback of every failed cell


@dataclass
class RunSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (cell label, first line)


def first_line(exc: BaseException) -> str:
    """The line a user reads first: 'TypeName: first line of the message' (our own
    MetabenchError messages stand without their type)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, MetabenchError) and line:
        return line
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def record_failure(
    ledger: Ledger,
    run_id: str,
    cell: Cell,
    exc: BaseException,
    trace: str,
    summary: RunSummary,
    progress: Progress,
    where: str = "",
) -> None:
    """A failed cell: its traceback into the ledger and the run's errors.log, one line on
    stderr, and a place in the summary. The run goes on."""
    ledger.write_failure(run_id, cell, trace)
    with open(ledger.run_dir / ERRORS_LOG, "a") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"=== {stamp} run {run_id} cell {cell.label} ({cell.key}){where}\n{trace}\n")
    summary.failed += 1
    summary.failures.append((cell.label, first_line(exc)))
    progress.cell_failed(cell, first_line(exc), where)


class LocalExecutor:
    """Cells in order in this process."""

    def __init__(
        self,
        meter_factory: Callable[[], Meter],
        data_root: Path,
        progress: bool | Progress = True,
    ) -> None:
        self.meter_factory = meter_factory
        self.data_root = data_root
        self.progress = progress if isinstance(progress, Progress) else Progress(bool(progress))

    def execute(self, cells: list[Cell], ledger: Ledger, run_id: str) -> RunSummary:
        summary = RunSummary()
        done = ledger.done_keys()
        todo = [c for c in cells if c.key not in done]
        summary.skipped = len(cells) - len(todo)
        meter = self.meter_factory()
        infos = getattr(meter, "info", list)()
        self.progress.open(todo, summary.skipped, ledger.run_dir, describe_meters(infos))
        try:
            if todo:
                record_idle(meter, ledger, run_id, todo)
            for cell in todo:
                self._cell(cell, meter, ledger, run_id, summary)
        finally:
            self.progress.close()
            getattr(meter, "close", lambda: None)()  # stops the sampler thread
        return summary

    def _cell(
        self, cell: Cell, meter: Meter, ledger: Ledger, run_id: str, summary: RunSummary
    ) -> None:
        tick = self.progress.cell_started(cell)
        try:
            result = run_cell(cell, meter, self.data_root, tick)
        except Exception as e:  # a broken cell is recorded; the run goes on
            trace = traceback.format_exc()
            record_failure(ledger, run_id, cell, e, trace, summary, self.progress)
            return
        ledger.write_cell(run_id, result, here(cell.device))
        summary.done += 1
        self.progress.cell_finished(result)


def record_idle(meter: Meter, ledger: Ledger, run_id: str, cells: list[Cell]) -> None:
    """Idle baseline before the first cell: the longest `idle_s` of the cells' suites
    (profile setting: smoke 1 s, standard 10 s), one row per component in `idle`."""
    seconds = max(c.suite.idle_s for c in cells)
    if seconds <= 0:
        return
    idle, _ = measure_idle(meter, seconds)
    ledger.write_idle(run_id, idle)


@contextlib.contextmanager
def open_executor(
    kind: str,
    meter_factory: Callable[[], Meter],
    data_root: Path,
    *,
    device: str = "cpu",
    threads: int = 1,
    scheduler: str | None = None,
    workers: int | None = None,
    wait_workers: int | None = None,
    progress: bool = True,
) -> Iterator:
    """The executor for `--executor KIND` (local | dask | dask-local; the flags are checked
    by bench.options); a Dask client (and a one-node cluster for dask-local) lives as long
    as the context. Entering it connects and checks the cluster (scheduler, GPU workers for
    a CUDA device): a MetabenchError then comes before the run folder exists."""
    if kind == "local":
        yield LocalExecutor(meter_factory, data_root, progress=progress)
        return
    from distributed import Client

    from bench.run import dask_cluster
    from bench.run import dask_executor as dx

    if kind == "dask":
        with dask_cluster.connect(scheduler, wait_workers or 1, progress) as client:
            dask_cluster.require_gpu_workers(client, device)
            yield dx.DaskExecutor(client, meter_factory, data_root, progress=progress)
        return
    if kind != "dask-local":
        raise MetabenchError(f"--executor: expected local, dask or dask-local, found {kind!r}")
    cluster = dask_cluster.start_local_cluster(workers, device, threads, dx.DEFAULT_RETRIES)
    with cluster, Client(cluster) as client:
        yield dx.DaskExecutor(client, meter_factory, data_root, progress=progress)
