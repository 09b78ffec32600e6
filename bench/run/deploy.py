"""The deploy phase: test episodes served to an adapted method, metered per scenario.

Two scenarios, as MLPerf Inference separates SingleStream from Offline (MLCommons,
"MLPerf Inference Rules", scenarios):

- `stream`: one task at a time (a single new task arrives): `adapt` then `predict` per task.
- `batch`: a chunk of T tasks served together: `adapt_many` then `predict_many`. Run only
  when the cell's execution mode computes many tasks per call; under `loop` the batch
  scenario would repeat the stream scenario's calls one for one, so it is not measured
  (the report says so).

Under `loop` the stream scenario serves every test task and its scores are recorded. When
the execution batches, the batch scenario serves every task (its scores are recorded) and
the stream scenario a fixed sample of STREAM_SAMPLE tasks, spread over the chunks: enough
for its energy and latency per task, without serving hundreds of tasks one by one per cell
(on a GPU that is launch overhead, not measurement). Both scenarios score the sampled
episodes; an episode scored differently beyond float32 rounding becomes a warning on the
window, never a silent difference.

The test tasks are served in at least DEPLOY_WINDOWS chunks of equal size (+-1 task; one
CUDA graph capture per shape, every shape warmed up before the first window), so each
scenario's energy per task has several windows for its bootstrap interval. Episodes are
materialised before the windows open (data loading is not the method's cost). A pass
shorter than the meter's shortest resolvable window is repeated inside its window until
the window lasts that long; `adapt` and `predict` never mutate the method, so every pass
computes the same thing, and the report divides the window's energy by repeats x tasks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from bench.data.episodes import Episode

MAX_CHUNK = 256  # tasks per chunk: adapted states and episodes of a chunk stay in memory
DEPLOY_WINDOWS = 3  # at least this many chunks, so energy per task has a bootstrap interval
STREAM_SAMPLE = 64  # tasks served one at a time when the batch scenario serves every task
STREAM, BATCH = "stream", "batch"


def chunks(n: int, cap: int = MAX_CHUNK, at_least: int = DEPLOY_WINDOWS) -> list[range]:
    """0..n in the fewest chunks of at most `cap` but at least `at_least` (never more
    than n), sizes equal to within one (larger first): 600 -> 3 x 200, 40 -> 14, 13, 13."""
    count = min(n, max(at_least, math.ceil(n / max(cap, 1))))
    sizes = [n // count + (i < n % count) for i in range(count)]
    starts = [sum(sizes[:i]) for i in range(count)]
    return [range(s, s + size) for s, size in zip(starts, sizes, strict=True)]


def repeated(pass_fn: Callable[[], Any], min_seconds: float) -> tuple[Any, int]:
    """Run `pass_fn` until `min_seconds` have elapsed (at least once); its last result and
    the number of passes. Only for pure passes: every pass returns the same result."""
    start, repeats = time.perf_counter(), 0
    while True:
        result = pass_fn()
        repeats += 1
        if time.perf_counter() - start >= min_seconds:
            return result, repeats


@dataclass(frozen=True)
class Stacked:
    """Episodes stacked along a leading task dimension T."""

    support_x: torch.Tensor  # [T, n_s, *x_shape]
    support_y: torch.Tensor  # [T, n_s] labels or [T, n_s, y_dim] targets
    query_x: torch.Tensor  # [T, n_q, *x_shape]

    @staticmethod
    def of(episodes: list[Episode]) -> Stacked:
        return Stacked(
            torch.stack([e.support_x for e in episodes]),
            torch.stack([e.support_y for e in episodes]),
            torch.stack([e.query_x for e in episodes]),
        )

    def first(self, t: int) -> Stacked:
        """The first t tasks (a smaller chunk's shape)."""
        return Stacked(self.support_x[:t], self.support_y[:t], self.query_x[:t])


class StreamPasses:
    """The stream scenario's two pure passes over some episodes: `adapt` every task one at
    a time, then `predict` every task with its own state (kept in `states`)."""

    def __init__(self, method, episodes: list[Episode]) -> None:
        self.method, self.episodes = method, episodes
        self.states: list[Any] = []

    @property
    def n_tasks(self) -> int:
        return len(self.episodes)

    def adapt(self) -> list[Any]:
        self.states = [self.method.adapt(e.support_x, e.support_y) for e in self.episodes]
        return self.states

    def predict(self) -> list[torch.Tensor]:
        pairs = zip(self.states, self.episodes, strict=True)
        return [self.method.predict(s, e.query_x) for s, e in pairs]

    def task_states(self) -> list[Any]:
        return self.states


class BatchPasses:
    """The batch scenario's two pure passes: `adapt_many` over the whole chunk, then
    `predict_many`; outputs split per task."""

    def __init__(self, method, stacked: Stacked) -> None:
        self.method, self.stacked = method, stacked
        self.state: Any = None

    @property
    def n_tasks(self) -> int:
        return len(self.stacked.query_x)

    def adapt(self) -> Any:
        self.state = self.method.adapt_many(self.stacked.support_x, self.stacked.support_y)
        return self.state

    def predict(self) -> list[torch.Tensor]:
        return list(self.method.predict_many(self.state, self.stacked.query_x))

    def task_states(self) -> list[Any]:
        return [self.method.task_state(self.state, t) for t in range(self.n_tasks)]


class DeployPhase:
    """Serves a cell's test episodes; `runner` is the harness's CellRunner (its meter,
    method, suite, result and `record`)."""

    def __init__(self, runner, score: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
        self.runner, self.score = runner, score
        self.method = runner.method
        self.batched = runner.cell.execution != "loop"

    def run(self) -> None:
        sampler = self.runner.samplers["test"]
        parts = chunks(self.runner.suite.n_test_episodes)
        per_chunk = math.ceil(STREAM_SAMPLE / len(parts))
        for chunk in parts:
            keys = [sampler.key(i) for i in chunk]
            episodes = [sampler.materialize(k) for k in keys]
            stacked = Stacked.of(episodes) if self.batched else None
            if chunk is parts[0]:
                self.warm_up(episodes[0], stacked, sorted({len(c) for c in parts}))
            stream = StreamPasses(self.method, episodes[:per_chunk] if self.batched else episodes)
            stream_scores = self.scores(self.serve(STREAM, stream), stream.episodes)
            scoring = stream
            scores = stream_scores
            if stacked is not None:
                scoring = BatchPasses(self.method, stacked)
                scores = self.scores(self.serve(BATCH, scoring), episodes)
                self.check_same_scores(stream_scores, scores[: len(stream_scores)])
            self.runner.result.episode_scores += scores
            self.extra_scores(chunk, keys, scoring.task_states())
            self.runner.tick(len(chunk))

    def scores(self, outputs: list[torch.Tensor], episodes: list[Episode]) -> list[float]:
        return [self.score(o, e.query_y) for o, e in zip(outputs, episodes, strict=True)]

    def warm_up(self, first: Episode, stacked: Stacked | None, sizes: list[int]) -> None:
        """A throwaway adaptation and prediction of every shape the deploy windows will
        serve (one task; and each chunk size when batched) inside a `setup` window: lazy
        initialisation, allocator growth and any CUDA graph capture are not E_deploy."""
        with self.runner.meter.window("setup") as w:
            self.method.warm_up(first.support_x[None], first.support_y[None], first.query_x[None])
            for t in sizes if stacked is not None else []:
                s = stacked.first(t)
                self.method.warm_up(s.support_x, s.support_y, s.query_x)
        tasks = 1 + (sum(sizes) if stacked is not None else 0)
        self.runner.record("setup", tasks, 0, w.measurement)

    def serve(self, scenario: str, passes: StreamPasses | BatchPasses) -> list[torch.Tensor]:
        """One adapt and one predict window of a scenario, each pass repeated until the
        window outlasts the meter's minimum; the outputs of the predict pass."""
        r = self.runner
        for phase, pass_fn in (("adapt", passes.adapt), ("predict", passes.predict)):
            with r.meter.window(phase) as w:
                out, repeats = repeated(pass_fn, r.min_window_s)
            r.record(
                phase, passes.n_tasks, self.method.meta_steps, w.measurement, scenario, repeats
            )
        return out

    def check_same_scores(self, stream: list[float], batch: list[float]) -> None:
        """The sampled episodes are scored by both scenarios: they must agree. A mismatch
        (float rounding at a decision boundary) is a warning on the batch predict window."""
        differ = sum(not same_score(a, b) for a, b in zip(stream, batch, strict=True))
        if not differ:
            return
        windows = self.runner.result.windows
        last = windows[-1]
        warning = (
            f"stream scenario: {differ} of {len(stream)} sampled episodes scored differently "
            "from the batch scenario (float32 round-off of one task per call against many, "
            "amplified by the adaptation's training steps; the batch scores are recorded)"
        )
        m = dataclasses.replace(last.measurement, warnings=(*last.measurement.warnings, warning))
        windows[-1] = dataclasses.replace(last, measurement=m)

    def extra_scores(self, chunk: range, keys: list, states: list) -> None:
        """A source's extra per-episode scores (e.g. rollouts) from the recorded
        scenario's adapted states, outside every window: evaluation, not deployment."""
        extra = getattr(self.runner.samplers["test"].source, "extra_scores", None)
        if extra is None:
            return
        self.runner.result.episode_metrics += [
            (i, name, float(v))
            for i, key, adapted in zip(chunk, keys, states, strict=True)
            for name, v in extra(self.method, adapted, key).items()
        ]


def same_score(a: float, b: float) -> bool:
    """Two scores of one episode agree: equal up to float32 rounding (an MSE computed by
    grouped and ungrouped kernels differs in its last bits; an accuracy changes in steps of
    one query, 1 / n_query or more, which this never hides)."""
    return abs(a - b) <= 1e-6 + 1e-4 * abs(b)
