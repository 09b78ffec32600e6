"""Local executor vs dask-local on the same grid: per-cell scheduling overhead and speed-up.

    PYTHONPATH=. METABENCH_DATA=/path/to/data python benchmarks/executor_overhead.py \
        [--suites omniglot-5w1s,sinusoid-5shot] [--profile smoke] [--workers 2]

Scheduling overhead of a cell = the time the cell's worker was not running it although it
could have: dispatch gap (worker start - max(submission, the worker's previous cell end))
+ return gap (driver received - worker end; includes the driver's ledger write). Worker
time (the task itself: data loading on a fresh worker, the worker's idle window, the cell)
is not overhead. Speed-up = local wall time / dask wall time, both with data loading, the
cluster's start-up excluded (printed apart). Not a test: timings on a shared machine are
noisy. The last line is `overhead_ms_per_cell=<n> speedup=<n>`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from distributed import Client

from bench.data import resolve_data_root
from bench.energy.base import TimeMeter
from bench.run import dask_executor as dx
from bench.run.executors import LocalExecutor
from bench.run.grid import Cell, expand_grid
from bench.store import Ledger
from bench.suite import load_suite


def overhead_s(timings: list[dx.CellTiming]) -> list[tuple[float, float]]:
    """(dispatch gap, return gap) of each cell (seconds), per worker in start order."""
    by_worker: dict[str, list[dx.CellTiming]] = defaultdict(list)
    for t in timings:
        by_worker[t.worker].append(t)
    gaps = []
    for cells in by_worker.values():
        previous_end = 0.0
        for t in sorted(cells, key=lambda t: t.started_s):
            dispatch = t.started_s - max(t.submitted_s, previous_end)
            gaps.append((max(0.0, dispatch), t.received_s - t.finished_s))
            previous_end = t.finished_s
    return gaps


def run_local(cells: list[Cell], data_root: Path, out: Path) -> float:
    ledger = Ledger(out)
    start = time.perf_counter()
    LocalExecutor(TimeMeter, data_root, progress=False).execute(
        cells, ledger, ledger.start_run("bench-local", {})
    )
    return time.perf_counter() - start


def run_dask(
    cells: list[Cell], warm_cells: list[Cell], data_root: Path, out: Path, workers: int
) -> tuple[float, float, list[tuple[float, float]], list[tuple[float, float]]]:
    """Wall time of the grid, cluster start-up, the grid's gaps (cold workers: the first
    task also unpickles, i.e. imports, bench and torch), then gaps of `warm_cells` on the
    now warm workers: the steady-state overhead."""
    start = time.perf_counter()
    cluster, threads = dx.start_local_cluster(workers, "cpu", dx.DEFAULT_RETRIES)
    with cluster, Client(cluster) as client:
        startup = time.perf_counter() - start
        executor = dx.DaskExecutor(
            client, TimeMeter, data_root, torch_threads=threads, progress=False
        )
        ledger = Ledger(out)
        start = time.perf_counter()
        executor.execute(cells, ledger, ledger.start_run("bench-dask", {}))
        wall = time.perf_counter() - start
        cold = overhead_s(executor.timings)
        executor.timings.clear()
        executor.execute(warm_cells, ledger, ledger.start_run("bench-warm", {}))
    return wall, startup, cold, overhead_s(executor.timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default="omniglot-5w1s,sinusoid-5shot")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--warm-cells",
        type=int,
        default=16,
        help="short sinusoid cells run on the warm cluster for the overhead",
    )
    args = parser.parse_args()
    suites = [load_suite(s, args.profile) for s in args.suites.split(",")]
    cells = expand_grid(suites, None, None, "cpu")
    data_root = resolve_data_root(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        local_s = run_local(cells, data_root, Path(tmp) / "local")
        dask_s, startup_s, gaps = run_dask(cells, data_root, Path(tmp) / "dask", args.workers)
    overhead_ms = 1000 * statistics.mean(gaps)
    print(f"grid: {len(cells)} cells ({args.suites}, profile {args.profile})")
    print(f"local executor:      {local_s:8.2f} s")
    print(
        f"dask-local x{args.workers}:        {dask_s:8.2f} s  (+ {startup_s:.2f} s cluster start)"
    )
    print(f"per-cell overhead:   mean {overhead_ms:.1f} ms, max {1000 * max(gaps):.1f} ms")
    print(f"overhead_ms_per_cell={overhead_ms:.1f} speedup={local_s / dask_s:.2f}")


if __name__ == "__main__":
    main()
