"""Running the grid on Dask distributed: one task per cell, results streamed to the driver.

- The driver (this process) is the only writer of the ledger. It submits every cell that
  is not done yet and writes each one as it finishes (`as_completed`), so a killed driver
  loses only the cells in flight and a re-run skips the done keys.
- A worker runs `run_on_worker`: it builds its meter once per run from the pickled meter
  factory, measures its own idle baseline (`measure_idle`, an `idle` window), runs the cell with the
  harness, and sends back a `WorkerReply` (the CellResult is a few KB: scores, windows,
  checkpoints; never models or tensors).
- Energy integrity: a CUDA cell asks for the worker resource GPU=1, and GPU workers own one
  GPU each (CUDA_VISIBLE_DEVICES), so its NVML energy is its own. CPU cells on a host with
  several workers share the package: they are recorded with exclusive_energy = 0.
- Devices are checked on the workers (`check_worker_device`), never on the driver: the
  driver may be a login node without a GPU.
- Threads: each cell sets torch's intra-op threads to `Cell.threads` (the harness), as a
  local run does, so both score alike; dask-local starts cores // threads workers.
- A worker that dies mid-cell: the scheduler reschedules the cell on another worker up to
  `allowed_failures` times (then KilledWorker); a cell that raises is retried `retries`
  times. Either way a cell that keeps failing is recorded as failed and the run goes on.
"""

from __future__ import annotations

import dataclasses
import pickle
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.devices import check_worker_device
from bench.energy.base import Meter
from bench.energy.idle import IdlePower, measure_idle
from bench.run.dask_cluster import GPU_RESOURCE
from bench.run.executors import RunSummary, record_failure
from bench.run.grid import Cell
from bench.run.harness import CellResult, run_cell
from bench.run.placement import Placement, here
from bench.run.progress import Progress
from bench.store import Ledger

DEFAULT_RETRIES = 2  # extra attempts per cell, after a worker death or an exception


@dataclass(frozen=True)
class WorkerReply:
    """What a worker sends back for one cell. started_s / finished_s: worker wall clock
    (time.time()) around the whole task, data loading included."""

    result: CellResult
    placement: Placement
    idle: list[IdlePower]  # the worker's idle baseline, with its first cell of a run only
    started_s: float
    finished_s: float


@dataclass(frozen=True)
class CellTiming:
    """Driver-side times of one finished cell (for benchmarks/executor_overhead.py)."""

    label: str
    worker: str
    submitted_s: float
    received_s: float  # the driver got the reply
    written_s: float  # the driver committed the cell to the ledger
    started_s: float  # on the worker
    finished_s: float  # on the worker


# Worker-process state: one meter per (run, meter factory), so the idle baseline is taken
# once per worker and run, and a sampler thread is not started per cell.
_WORKER_METERS: dict[tuple[str, bytes], Meter] = {}


def worker_meter(
    run_id: str,
    factory: Callable[[], Meter],
    idle_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Meter, list[IdlePower]]:
    """This worker's meter for the run, and its idle baseline when it was just built."""
    key = (run_id, pickle.dumps(factory))
    if key in _WORKER_METERS:
        return _WORKER_METERS[key], []
    for stale in [k for k in _WORKER_METERS if k[0] != run_id]:
        # a long-lived worker of an earlier run: stop that meter's sampler thread
        getattr(_WORKER_METERS.pop(stale), "close", lambda: None)()
    meter = factory()
    idle = measure_idle(meter, idle_s, sleep)[0] if idle_s > 0 else []
    _WORKER_METERS[key] = meter
    return meter, idle


def run_on_worker(
    cell: Cell, meter_factory: Callable[[], Meter], data_root: Path, run_id: str
) -> WorkerReply:
    """The task of one cell, run inside a Dask worker process."""
    started = time.time()
    check_worker_device(cell.device, worker_address())
    meter, idle = worker_meter(run_id, meter_factory, cell.suite.idle_s)
    result = run_cell(cell, meter, data_root)
    return WorkerReply(result, here(cell.device, worker_address()), idle, started, time.time())


def worker_address() -> str:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # called outside a worker (tests of the task function)
        return "local"


class DaskExecutor:
    """Runs cells as Dask tasks on `client`'s cluster and streams results into the ledger."""

    def __init__(
        self,
        client,
        meter_factory: Callable[[], Meter],
        data_root: Path,
        *,
        retries: int = DEFAULT_RETRIES,
        progress: bool | Progress = True,
        task: Callable[..., WorkerReply] = run_on_worker,
    ) -> None:
        self.client = client
        self.meter_factory = meter_factory
        self.data_root = Path(data_root)
        self.retries = retries
        self.progress = progress
        self.task = task  # tests swap in a task that kills its worker once
        self.timings: list[CellTiming] = []

    def execute(self, cells: list[Cell], ledger: Ledger, run_id: str) -> RunSummary:
        from distributed import as_completed

        done = ledger.done_keys()
        todo = [c for c in cells if c.key not in done]
        summary = RunSummary(skipped=len(cells) - len(todo))
        hosts = WorkerHosts(self.client)
        progress = self.progress
        if not isinstance(progress, Progress):
            progress = Progress(bool(progress), workers=max(1, len(hosts.host_of)))
        progress.open(
            todo, summary.skipped, ledger.run_dir, "metered on each worker by its own meters"
        )
        submitted = {}
        try:
            for cell in todo:
                submitted[self.submit(cell, run_id)] = (cell, time.time())
            for future in as_completed(list(submitted)):
                cell, submitted_s = submitted.pop(future)  # drop it: the result can be freed
                self.record(future, cell, submitted_s, ledger, run_id, hosts, summary, progress)
                future.release()
        finally:
            progress.close()
        return summary

    def submit(self, cell: Cell, run_id: str):
        """One task per cell; a CUDA cell needs a worker with a free GPU=1 resource."""
        resources = {GPU_RESOURCE: 1} if cell.device.startswith("cuda") else None
        return self.client.submit(
            self.task,
            cell,
            self.meter_factory,
            self.data_root,
            run_id,
            key=f"cell-{cell.label}-{cell.key}-{run_id}",
            resources=resources,
            retries=self.retries,
            pure=False,
        )

    def record(
        self,
        future,
        cell: Cell,
        submitted_s: float,
        ledger: Ledger,
        run_id: str,
        hosts: WorkerHosts,
        summary: RunSummary,
        progress: Progress,
    ) -> None:
        """Write one finished cell (or its failure) into the ledger."""
        if future.status != "finished":
            exc = future.exception()
            record_failure(ledger, run_id, cell, exc, remote_error(future), summary, progress)
            return
        reply: WorkerReply = future.result()
        received_s = time.time()
        placement = dataclasses.replace(
            reply.placement, exclusive_energy=hosts.exclusive(cell, reply.placement.worker)
        )
        if reply.idle:
            ledger.write_worker_idle(run_id, reply.idle)
        ledger.write_cell(run_id, reply.result, placement)
        summary.done += 1
        self.timings.append(
            CellTiming(
                cell.label,
                placement.worker,
                submitted_s,
                received_s,
                time.time(),
                reply.started_s,
                reply.finished_s,
            )
        )
        progress.cell_finished(reply.result, f" on {placement.worker}")


def remote_error(future) -> str:
    """The remote exception with its traceback (KilledWorker: the worker died each time)."""
    exc = future.exception()
    return "".join(traceback.format_exception(type(exc), exc, future.traceback()))


class WorkerHosts:
    """How many workers share each host, to mark CPU energy as shared or exclusive."""

    def __init__(self, client) -> None:
        self.client = client
        self.refresh()

    def refresh(self) -> None:
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        self.host_of = {addr: info["host"] for addr, info in workers.items()}
        self.count = Counter(self.host_of.values())

    def exclusive(self, cell: Cell, worker: str) -> bool:
        """A GPU cell owns its GPU (GPU=1 resource); a CPU cell owns the package only when
        its worker is alone on its host. Unknown workers count as sharing."""
        if cell.device.startswith("cuda"):
            return True
        if worker not in self.host_of:
            self.refresh()  # a worker that joined after the run started
        host = self.host_of.get(worker)
        return host is not None and self.count[host] == 1
