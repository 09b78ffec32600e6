"""The deploy phase: test episodes served to an adapted method, metered per scenario.

Two scenarios, as MLPerf Inference separates SingleStream from Offline (MLCommons,
"MLPerf Inference Rules", scenarios):

- `stream`: one task at a time (a single new task arrives): `adapt` then `predict` per task.
- `batch`: a chunk of T tasks served together: `adapt_many` then `predict_many`. Run only
  when the cell's execution mode computes many tasks per call; under `loop` the batch
  scenario would repeat the stream scenario's calls one for one, so it is not measured
  (the report says so).

Both scenarios see the same episodes; per-episode scores must agree (a mismatch becomes a
warning on the window, never a silent difference). Episodes are materialised before the
windows open (data loading is not the method's cost). Chunks have equal sizes (one CUDA
graph capture serves a cell). A pass shorter than the minimum window is repeated inside its
window until the window lasts `min_window_s`; `adapt` and `predict` never mutate the
method, so every pass computes the same thing, and the report divides the window's energy
by repeats x tasks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from bench.data.episodes import Episode

MAX_CHUNK = 256  # tasks per chunk: adapted states and episodes of a chunk stay in memory
STREAM, BATCH = "stream", "batch"


def chunks(n: int, cap: int) -> list[range]:
    """n episodes in the fewest equal chunks of at most `cap` (the last may be shorter by
    the remainder): 600 at cap 256 -> 3 x 200."""
    count = max(1, math.ceil(n / max(cap, 1)))
    size = math.ceil(n / count)
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


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
    """A chunk's episodes stacked along a leading task dimension T."""

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


class StreamPasses:
    """The stream scenario's two pure passes over a chunk: `adapt` every task one at a
    time, then `predict` every task with its own state (kept in `states`)."""

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
