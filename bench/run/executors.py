"""Executors run the grid's cells and stream each finished cell into the ledger.

The driver is the only writer of the ledger. `LocalExecutor` runs cells one after another
in this process; `bench.run.dask_executor.DaskExecutor` runs them on a Dask cluster.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bench.energy.base import Meter
from bench.energy.idle import measure_idle
from bench.errors import MetabenchError
from bench.run.grid import Cell
from bench.run.harness import cell_work, run_cell
from bench.run.placement import here
from bench.store import Ledger


@dataclass
class RunSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0


class LocalExecutor:
    """Cells in order in this process, with a progress bar per cell and for the run."""

    def __init__(
        self, meter_factory: Callable[[], Meter], data_root: Path, progress: bool = True
    ) -> None:
        self.meter_factory = meter_factory
        self.data_root = data_root
        self.progress = progress

    def execute(self, cells: list[Cell], ledger: Ledger, run_id: str) -> RunSummary:
        summary = RunSummary()
        done = ledger.done_keys()
        todo = [c for c in cells if c.key not in done]
        summary.skipped = len(cells) - len(todo)
        meter = self.meter_factory()
        try:
            if todo:
                record_idle(meter, ledger, run_id, todo)
            self._cells(todo, meter, ledger, run_id, summary)
        finally:
            getattr(meter, "close", lambda: None)()  # stops the sampler thread
        return summary

    def _cells(
        self, todo: list[Cell], meter: Meter, ledger: Ledger, run_id: str, summary: RunSummary
    ) -> None:
        disable = not self.progress
        total = tqdm(
            total=sum(cell_work(c) for c in todo),
            desc="run",
            unit="step",
            position=0,
            disable=disable,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        with total:
            for cell in todo:
                with tqdm(
                    total=cell_work(cell),
                    desc=cell.label,
                    unit="step",
                    position=1,
                    leave=False,
                    disable=disable,
                    file=sys.stderr,
                    dynamic_ncols=True,
                ) as bar:

                    def tick(n: int, bar=bar) -> None:
                        bar.update(n)
                        total.update(n)

                    try:
                        result = run_cell(cell, meter, self.data_root, tick)
                    except Exception:  # a broken cell is recorded; the run goes on
                        ledger.write_failure(run_id, cell, traceback.format_exc())
                        summary.failed += 1
                        tqdm.write(
                            f"FAILED {cell.label}:\n{traceback.format_exc()}", file=sys.stderr
                        )
                        continue
                ledger.write_cell(run_id, result, here(cell.device))
                summary.done += 1
                tqdm.write(
                    f"{cell.label}: {result.cell.suite.score_name} "
                    f"{result.score_mean:.4f} +- {result.score_ci95:.4f}",
                    file=sys.stderr,
                )


def record_idle(meter: Meter, ledger: Ledger, run_id: str, cells: list[Cell]) -> None:
    """Idle baseline before the first cell: the longest `idle_s` of the cells' suites
    (profile setting: smoke 1 s, standard 10 s), one row per component in `idle`."""
    seconds = max(c.suite.idle_s for c in cells)
    if seconds <= 0:
        return
    idle, _ = measure_idle(meter, seconds)
    ledger.write_idle(run_id, idle)


EXECUTORS = ("local", "dask", "dask-local")


@contextlib.contextmanager
def open_executor(
    kind: str,
    meter_factory: Callable[[], Meter],
    data_root: Path,
    *,
    device: str = "cpu",
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Iterator:
    """The executor for `--executor KIND`; a Dask client (and a LocalCluster for
    dask-local) lives as long as the context."""
    check_executor_flags(kind, scheduler, workers)
    if kind == "local":
        yield LocalExecutor(meter_factory, data_root, progress=progress)
        return
    from distributed import Client

    from bench.run import dask_executor as dx

    if kind == "dask":
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as e:
            raise MetabenchError(f"--scheduler: could not connect to {scheduler!r}: {e}") from None
        with client:
            yield dx.DaskExecutor(client, meter_factory, data_root, progress=progress)
        return
    cluster, threads = dx.start_local_cluster(workers, device, dx.DEFAULT_RETRIES)
    with cluster, Client(cluster) as client:
        yield dx.DaskExecutor(
            client, meter_factory, data_root, torch_threads=threads, progress=progress
        )


def check_executor_flags(kind: str, scheduler: str | None, workers: int | None) -> None:
    if kind not in EXECUTORS:
        raise MetabenchError(f"--executor: expected one of {', '.join(EXECUTORS)}, found {kind!r}")
    if kind == "dask" and not scheduler:
        raise MetabenchError(
            "--executor dask: expected --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786), found none"
        )
    if kind != "dask" and scheduler:
        raise MetabenchError(f"--scheduler: only with --executor dask, found --executor {kind}")
    if workers is not None and (kind != "dask-local" or workers < 1):
        raise MetabenchError(
            f"--workers: expected a positive count with --executor dask-local, "
            f"found {workers} with --executor {kind}"
        )
