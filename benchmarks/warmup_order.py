"""Does a cell's deploy cost depend on its place in the grid? Two cells, both orders.

    PYTHONPATH=. METABENCH_DATA=/path/to/data python benchmarks/warmup_order.py \
        [--suite sinusoid-5shot] [--profile standard] [--cells scratch,maml] [--repeats 2]

Each order runs in a fresh Python process (a process's first calls are what a warm-up
must absorb): cell A then cell B, and B then A. For each cell the script prints its
adapt + predict seconds per task when it ran first and when it ran second, and their ratio
(first / second). Before the harness warmed each cell up in a `setup` window, the
sinusoid scratch cell adapted at 0.056 s/task first and 0.022 s/task second (ratio 2.5).
Not a test: timings on a shared machine are noisy; compare ratios within one run. The last
line is `order_ratio_max=<largest first/second ratio over cells and repeats>`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys
from bench.data import resolve_data_root
from bench.energy.base import TimeMeter
from bench.run.grid import Cell
from bench.run.harness import run_cell
from bench.suite import load_suite

suite_name, profile, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
suite, root, out = load_suite(suite_name, profile), resolve_data_root(None), {}
for m in methods:
    r = run_cell(Cell(suite, m, suite.seeds[0], "cpu", 1, "loop"), TimeMeter(), root)
    deploy = [w for w in r.windows if w.phase in ("adapt", "predict")]
    seconds = sum(w.measurement.seconds / w.repeats for w in deploy)
    tasks = sum(w.n_items for w in deploy if w.phase == "adapt")
    out[m] = seconds / tasks
print(json.dumps(out))
"""


def seconds_per_task(suite: str, profile: str, order: list[str]) -> dict[str, float]:
    """Deploy s/task of each cell, run in `order` in one fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, suite, profile, ",".join(order)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="sinusoid-5shot")
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--cells", default="scratch,maml", help="two methods of the suite")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    a, b = args.cells.split(",")
    worst = 0.0
    for rep in range(args.repeats):
        ab = seconds_per_task(args.suite, args.profile, [a, b])
        ba = seconds_per_task(args.suite, args.profile, [b, a])
        for cell, first, second in ((a, ab[a], ba[a]), (b, ba[b], ab[b])):
            ratio = first / second
            worst = max(worst, ratio)
            print(
                f"repeat {rep} {cell}: first {first * 1e3:.2f} ms/task, "
                f"second {second * 1e3:.2f} ms/task, ratio {ratio:.2f}"
            )
    print(f"order_ratio_max={worst:.2f}")


if __name__ == "__main__":
    main()
