"""Launch-boundness proxy (no GPU needed): aten operators dispatched per task.

Serving T = 32 tasks in one batched call dispatches at least 10x fewer operators per task
than serving them one at a time, for every method on the standard shapes and
hyperparameters of omniglot-5w1s, sinusoid-5shot and banking77-5w1s; a batched meta step
at meta batch 8 dispatches at most 1.2x the operators of meta batch 1 (a loop: 8x).
Operator counts are deterministic (they do not depend on the machine's load or on the
number of Conv-4 channels, reduced here for speed). benchmarks/deploy_batch.py prints the
same counts with the times.
"""

from __future__ import annotations

import pytest
import torch

import bench.methods.backbones as backbones
from bench.data.episodes import Episode
from bench.methods import METHODS
from bench.suite import load_suite
from benchmarks import deploy_batch as bench

T = 32
CASES = [(s, m.name) for s in bench.SUITES for m in load_suite(s, "standard").methods]
META_CASES = [(s, m) for s, m in CASES if hasattr(METHODS.get(m), "meta_step")]


@pytest.fixture(autouse=True)
def small_and_single_threaded(monkeypatch):
    monkeypatch.setattr(backbones, "CONV4_HIDDEN", 8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("suite_name, name", CASES)
def test_batch_dispatches_ten_times_fewer_ops_per_task(suite_name: str, name: str) -> None:
    suite = load_suite(suite_name, "standard")
    method = bench.build(suite, name, "batched", torch.device("cpu"))
    ep = bench.episodes(method.task, T, suite.n_query, torch.device("cpu"))
    # Every task dispatches the same operators when served alone: count a few.
    few = Episode(*(t[:4] for t in vars(ep).values()))
    stream = bench.count_ops(lambda: bench.stream(method, few)) / 4
    batch = bench.count_ops(lambda: bench.batch(method, ep)) / T
    assert stream / batch >= 10, f"{name}: {stream:.0f} vs {batch:.1f} ops per task"


def test_loop_execution_serves_many_tasks_one_at_a_time() -> None:
    suite = load_suite("sinusoid-5shot", "standard")
    method = bench.build(suite, "maml", "loop", torch.device("cpu"))
    ep = bench.episodes(method.task, 4, suite.n_query, torch.device("cpu"))
    stream = bench.count_ops(lambda: bench.stream(method, ep))
    assert bench.count_ops(lambda: bench.batch(method, ep)) >= stream


@pytest.mark.parametrize("suite_name, name", META_CASES)
def test_meta_step_ops_do_not_grow_with_the_meta_batch(suite_name: str, name: str) -> None:
    ops = bench.meta_ops(load_suite(suite_name, "standard"), name, torch.device("cpu"))
    assert ops[8] <= 1.2 * ops[1], ops


def test_deploy_batch_prints_its_figures_after_every_row() -> None:
    """The key=value line follows every row (a run cut short by its timeout keeps the
    figures so far); every flag has help."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(bench.__file__)
    p = subprocess.run(
        [sys.executable, str(script), "--suites", "sinusoid-5shot", "--methods",
         "scratch,maml", "--tasks", "2", "--repeats", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300, cwd=script.parent.parent,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    totals = [i for i, line in enumerate(lines) if line.startswith("ops_ratio_min=")]
    assert [lines[i].split()[-1] for i in totals] == ["rows=1", "rows=2"]
    assert [lines[i - 1].split()[0] for i in totals] == ["scratch", "maml"]
    assert totals[-1] == len(lines) - 1
    usage = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    options = usage.split("options:", 1)[1]
    for flag in ("--device", "--tasks", "--repeats", "--threads", "--suites", "--methods"):
        text = options.split(f"\n  {flag} ", 1)[1].split("\n  -", 1)[0]
        assert "(default" in text, f"{flag}: no help"
