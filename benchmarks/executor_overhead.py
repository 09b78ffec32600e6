"""Local executor vs dask-local on the same grid: per-cell scheduling overhead and speed-up.

    PYTHONPATH=. METABENCH_DATA=/path/to/data python benchmarks/executor_overhead.py \
        [--suites omniglot-5w1s,sinusoid-5shot] [--profile smoke] [--workers 2]

Scheduling overhead of a cell = the time the cell's worker was not running it although it
could have: dispatch gap (worker start - max(submission, the worker's previous cell end))
+ return gap (driver received - worker end; it includes waiting while the driver writes
earlier cells). The driver's own ledger write per cell is printed apart. Worker
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

VERBOSE = False


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
            if VERBOSE:
                print(
                    f"  {t.label} on {t.worker}: dispatch {1000 * gaps[-1][0]:.0f} ms, "
                    f"run {t.finished_s - t.started_s:.2f} s, return {1000 * gaps[-1][1]:.0f} ms, "
                    f"ledger write {1000 * (t.written_s - t.received_s):.0f} ms"
                )
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
) -> tuple[float, float, list[dx.CellTiming], list[dx.CellTiming]]:
    """Wall time of the grid, cluster start-up, the grid's gaps (cold workers: the first
    task also unpickles, i.e. imports, bench and torch), then gaps of `warm_cells` on the
    now warm workers: the steady-state overhead."""
    start = time.perf_counter()
    cluster = dx.start_local_cluster(workers, "cpu", cells[0].threads, dx.DEFAULT_RETRIES)
    with cluster, Client(cluster) as client:
        startup = time.perf_counter() - start
        executor = dx.DaskExecutor(client, TimeMeter, data_root, progress=False)
        ledger = Ledger(out)
        start = time.perf_counter()
        executor.execute(cells, ledger, ledger.start_run("bench-dask", {}))
        wall = time.perf_counter() - start
        cold = list(executor.timings)
        executor.timings.clear()
        executor.execute(warm_cells, ledger, ledger.start_run("bench-warm", {}))
    return wall, startup, cold, list(executor.timings)


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
    parser.add_argument("-v", "--verbose", action="store_true", help="print each cell's gaps")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    suites = [load_suite(s, args.profile) for s in args.suites.split(",")]
    # the same threads per cell on both executors (same scores), workers x threads <= cores
    threads = max(1, dx.cpu_count() // args.workers)
    cells = expand_grid(suites, None, None, "cpu", threads=threads)
    warm = expand_grid(
        [load_suite("sinusoid-5shot", "smoke")],
        None,
        list(range(1000, 1000 + args.warm_cells)),
        "cpu",
        threads=threads,
    )
    data_root = resolve_data_root(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        local_s = run_local(cells, data_root, Path(tmp) / "local")
        dask_s, startup_s, cold, steady = run_dask(
            cells, warm, data_root, Path(tmp) / "dask", args.workers
        )
    print(f"grid: {len(cells)} cells ({args.suites}, profile {args.profile})")
    print(f"local executor:      {local_s:8.2f} s")
    print(
        f"dask-local x{args.workers}:        {dask_s:8.2f} s  (+ {startup_s:.2f} s cluster start)"
    )
    print(f"grid cells, cold workers: {describe(overhead_s(cold))}")
    gaps = overhead_s(steady)
    print(f"{len(warm)} short cells, warm workers: {describe(gaps)}")
    write_ms = statistics.mean(1000 * (t.written_s - t.received_s) for t in steady)
    print(f"driver's ledger write per cell: mean {write_ms:.1f} ms")
    overhead_ms = 1000 * statistics.mean(d + r for d, r in gaps)
    print(f"overhead_ms_per_cell={overhead_ms:.1f} speedup={local_s / dask_s:.2f}")


def describe(gaps: list[tuple[float, float]]) -> str:
    total = [1000 * (d + r) for d, r in gaps]
    dispatch = statistics.mean(1000 * d for d, _ in gaps)
    back = statistics.mean(1000 * r for _, r in gaps)
    return (
        f"overhead mean {statistics.mean(total):.1f} ms (dispatch {dispatch:.1f} + "
        f"return {back:.1f}), median {statistics.median(total):.1f}, max {max(total):.1f}"
    )


if __name__ == "__main__":
    main()
