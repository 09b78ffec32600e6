"""Deployment one task per call (stream) against T tasks per call (batch), per method.

On the standard shapes and hyperparameters of omniglot-5w1s (Conv-4), sinusoid-5shot (the
MLP) and banking77-5w1s (the text encoder), for every method of the suite:

- stream: T tasks served one at a time (`adapt` + `predict` per task), in tasks/s;
- batch: the same T tasks in one call (`adapt_many` + `predict_many`, execution
  "batched"), in tasks/s, and batch / stream;
- aten operators dispatched per task by each (a `TorchDispatchMode` counter; forward,
  backward and optimizer alike): the CPU-measurable proxy for GPU kernel launches, which
  set a GPU's time for networks this small. Deterministic, unlike time;
- for the meta-learners, the ops of one meta step at meta batch 8 over meta batch 1
  (batched execution; the loop grows 8x);
- out-diff: the relative difference of stream's and batch's outputs (float32 / bf16
  round-off, grown by the training steps; float64 equality is tests/test_batched_equivalence.py);
- on CUDA, a "graph" column: batch replayed from CUDA graphs (execution "graph"), and
  g-diff, the relative difference of its outputs from eager batch on new tasks (not the
  capture's: a replay that missed its inputs would show); the same arithmetic, so ~0.

Inputs are random tensors of the suites' shapes (the cost does not depend on the values).
Times are the best of --repeats, stream and batch interleaved so that both see the same
machine load; compare ratios within one run. After every row, and as the last line, the
figures over the rows so far (a run cut short by a timeout keeps its last line):
`ops_ratio_min=<smallest stream/batch ops-per-task ratio> meta_ops_growth_max=<largest
ops(meta batch 8)/ops(meta batch 1)> speed_ratio_min=<smallest batch/stream tasks/s>
[graph_diff_max=<largest g-diff>, CUDA] rows=<methods measured>`.

Usage: python benchmarks/deploy_batch.py [--device cpu|cuda] [--tasks 32] [--repeats 3]
       [--threads N] [--suites omniglot-5w1s,...] [--methods maml,...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.cli_parser import positive_int
from bench.data.episodes import Episode
from bench.data.omniglot import OmniglotSource
from bench.data.sinusoid import SinusoidSource
from bench.data.text import TextSource
from bench.devices import torch_device
from bench.errors import MetabenchError
from bench.methods import METHODS, TaskSpec
from bench.run.grid import DEFAULT_THREADS
from bench.suite import Suite, load_suite

SUITES = ("omniglot-5w1s", "sinusoid-5shot", "banking77-5w1s")
INPUTS = {  # dataset -> (x_shape, backbone), as its source declares them
    "omniglot": (OmniglotSource.x_shape, "auto"),
    "sinusoid": (SinusoidSource.x_shape, "auto"),
    "banking77": (TextSource.x_shape, TextSource.backbone),
}
META_BATCHES = (1, 8)


class OpCounter(TorchDispatchMode):
    """Counts aten operators dispatched while active (autograd's backward included)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], object]) -> int:
    with OpCounter() as counter:
        fn()
    return counter.ops


def task_spec(suite: Suite, execution: str) -> TaskSpec:
    x_shape, backbone = INPUTS[suite.dataset]
    return TaskSpec(
        suite.task,
        suite.n_way,
        suite.k_shot,
        suite.n_query,
        x_shape,
        1,
        backbone,
        suite.precision,
        suite.normalization,
        execution,
    )


def build(suite: Suite, name: str, execution: str, device: torch.device):
    cls = METHODS.get(name)
    return cls(task_spec(suite, execution), suite.method(name).params, device, seed=0)


def episodes(task: TaskSpec, T: int, n_query: int, device: torch.device, seed: int = 0):
    """T random tasks of the task's shape with n_query queries per class: Episode of
    stacked tensors [T, ...]."""
    g = torch.Generator().manual_seed(seed)
    n_s, n_q = task.n_way * task.k_shot, task.n_way * n_query
    if task.backbone == "text":
        ids = torch.randint(1, 2048, (T, n_s + n_q, *task.x_shape), generator=g)
        ids[..., 12:] = 0  # utterances of 12 tokens, padding after
        x = ids.float()
    else:
        x = torch.rand(T, n_s + n_q, *task.x_shape, generator=g)
    if task.kind == "classification":
        labels = torch.arange(task.n_way)
        y = torch.cat([labels.repeat_interleave(task.k_shot), labels.repeat_interleave(n_query)])
        y = y.expand(T, -1).contiguous()
    else:
        y = torch.sin(x)
    x, y = x.to(device), y.to(device)
    return Episode(x[:, :n_s], y[:, :n_s], x[:, n_s:], y[:, n_s:])


def stream(method, ep: Episode) -> list[torch.Tensor]:
    """Tasks served one at a time."""
    return [
        method.predict(method.adapt(sx, sy), qx)
        for sx, sy, qx in zip(ep.support_x, ep.support_y, ep.query_x, strict=True)
    ]


def batch(method, ep: Episode) -> torch.Tensor:
    """All tasks in one call (chunked only by the method's memory cap)."""
    return method.predict_many(method.adapt_many(ep.support_x, ep.support_y), ep.query_x)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """(seconds, result) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def meta_ops(suite: Suite, name: str, device: torch.device) -> dict[int, int] | None:
    """Ops of one meta step at each meta batch of META_BATCHES (batched execution), or
    None for methods without a batched meta step."""
    method = build(suite, name, "batched", device)
    if not hasattr(method, "meta_step"):
        return None
    query = method.params.train_query
    batches = {b: episodes(method.task, b, query, device, seed=b) for b in META_BATCHES}
    method.meta_step(batches[max(META_BATCHES)], 1)  # optimizer state, allocator
    return {b: count_ops(lambda e=e: method.meta_step(e, 2)) for b, e in batches.items()}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def measure(suite: Suite, name: str, T: int, repeats: int, device: torch.device) -> dict:
    method = build(suite, name, "batched", device)
    ep = episodes(method.task, T, suite.n_query, device)
    method.warm_up(ep.support_x, ep.support_y, ep.query_x)
    # Every task dispatches the same operators when served alone: count a few.
    few = Episode(*(t[: min(4, T)] for t in vars(ep).values()))
    row = {
        "stream_ops": count_ops(lambda: stream(method, few)) / len(few.support_x),
        "batch_ops": count_ops(lambda: batch(method, ep)) / T,
    }
    best = {"stream": float("inf"), "batch": float("inf")}
    out = {}
    for _ in range(repeats):  # interleaved: both see the same load
        for mode, serve in (("stream", stream), ("batch", batch)):
            seconds, out[mode] = timed(lambda serve=serve: serve(method, ep), device)
            best[mode] = min(best[mode], seconds)
    row.update({k: T / v for k, v in best.items()})
    # float32 / bf16 round-off, grown by training steps; float64 equality is
    # tests/test_batched_equivalence.py
    row["diff"] = relative(torch.stack(out["stream"]), out["batch"])
    if device.type == "cuda":
        graphed = build(suite, name, "graph", device)
        graphed.warm_up(ep.support_x, ep.support_y, ep.query_x)  # the captures
        row["graph"] = T / min(timed(lambda: batch(graphed, ep), device)[0] for _ in range(repeats))
        fresh = episodes(method.task, T, suite.n_query, device, seed=1)
        row["graph_diff"] = relative(batch(graphed, fresh), batch(method, fresh))
    row["meta"] = meta_ops(suite, name, device)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu or cuda[:N] (default: cuda if available, else cpu); on CUDA the graph "
        "column and g-diff too",
    )
    parser.add_argument(
        "--tasks",
        type=positive_int,
        default=32,
        help="T: tasks served one per call (stream) and in one call (batch) (default: 32)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        help="timed passes per mode; the best counts (default: 3)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=DEFAULT_THREADS,
        help=f"torch intra-op threads (default: {DEFAULT_THREADS}, the harness's default)",
    )
    parser.add_argument(
        "--suites",
        default=",".join(SUITES),
        help="comma-separated suites whose standard shapes and hyperparameters are used "
        f"(default: {','.join(SUITES)})",
    )
    parser.add_argument(
        "--methods",
        default="",
        help="comma-separated methods (default: every method of each suite)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:  # bad input: one line and exit 2, before anything is measured
        device = torch_device(args.device)
        suites = [load_suite(name, "standard") for name in args.suites.split(",")]
    except MetabenchError as e:
        parser.error(str(e))
    chosen = [m for m in args.methods.split(",") if m]
    print(f"device={device} threads={torch.get_num_threads()} tasks={args.tasks}")
    graph = " graph/s  g-diff" if device.type == "cuda" else ""
    ops_ratios, growths, speed_ratios, graph_diffs = [], [], [], []
    for suite in suites:
        print(f"\n{suite.name} (standard: {suite.precision}, normalization={suite.normalization})")
        print(
            f"{'method':<12} {'stream/s':>9} {'batch/s':>9} {'speed':>6}{graph} "
            f"{'ops/task stream':>16} {'batch':>8} {'ratio':>6} {'out-diff':>8}  meta ops B=1 -> 8"
        )
        for config in suite.methods:
            if chosen and config.name not in chosen:
                continue
            r = measure(suite, config.name, args.tasks, args.repeats, device)
            ops_ratio, speed = r["stream_ops"] / r["batch_ops"], r["batch"] / r["stream"]
            ops_ratios.append(ops_ratio)
            speed_ratios.append(speed)
            if "graph_diff" in r:
                graph_diffs.append(r["graph_diff"])
            g = f" {r['graph']:8.1f} {r['graph_diff']:7.1e}" if "graph" in r else ""
            meta = ""
            if r["meta"]:
                one, many = r["meta"][1], r["meta"][max(META_BATCHES)]
                growths.append(many / one)
                meta = f"{one} -> {many} ({many / one:.2f}x)"
            print(
                f"{config.name:<12} {r['stream']:9.1f} {r['batch']:9.1f} {speed:6.2f}{g} "
                f"{r['stream_ops']:16.0f} {r['batch_ops']:8.1f} {ops_ratio:6.1f} {r['diff']:8.1e}  "
                f"{meta}",
            )
            print(totals(ops_ratios, growths, speed_ratios, graph_diffs), flush=True)
    if not ops_ratios:
        parser.error(f"no method of --methods {args.methods!r} is in --suites {args.suites!r}")


def totals(ops_ratios, growths, speed_ratios, graph_diffs) -> str:
    """The key=value line over the rows measured so far."""
    line = (
        f"ops_ratio_min={min(ops_ratios):.1f} meta_ops_growth_max={max(growths, default=1.0):.2f} "
        f"speed_ratio_min={min(speed_ratios):.2f}"
    )
    if graph_diffs:
        line += f" graph_diff_max={max(graph_diffs):.2g}"
    return f"{line} rows={len(ops_ratios)}"


if __name__ == "__main__":
    main()
