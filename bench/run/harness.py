"""The harness: the one place that runs a cell and opens energy windows.

Phases (docs/protocol.md):
- `meta_train`: one window per stretch between validation checkpoints, so learning curves
  get cumulative time and energy on the x-axis. Validation runs in its own `validate`
  windows, which are not part of E_meta.
- `deploy`: test episodes in bulk chunks: one `adapt` window over the chunk's support
  sets, then one `predict` window over its query sets; each window's energy is divided
  among the chunk's episodes by the report. A chunk holds at least MIN_CHUNK episodes and
  grows (up to MAX_CHUNK, for memory) until its shorter window lasts MIN_WINDOW_S, so
  each window is long enough for the meter (at least 5 s or 32 episodes).
- The meter's power trace (if it keeps one) is drained at the cell's edges and stored
  with the phase each sample falls in.
- extra scores: a source may define `extra_scores(method, adapted, key) -> {name: value}`
  (e.g. the dynamics rollout error). The harness calls it per test episode after the
  chunk's `predict` window closes, so it is never part of E_deploy; the values go to the
  ledger's `episode_metrics` table.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.data import DATASETS
from bench.data.episodes import EpisodeSampler
from bench.energy.base import Measurement, Meter, is_bad
from bench.energy.trace import Span, TraceRow, trace_rows
from bench.methods import METHODS, Method, TaskSpec
from bench.run.grid import Cell
from bench.stats import ci95
from bench.suite import Suite

MIN_CHUNK = 32
MAX_CHUNK = 256  # adapted models and episodes of a chunk are held in memory at once
MIN_WINDOW_S = 5.0


@dataclass(frozen=True)
class WindowRecord:
    phase: str  # meta_train | validate | adapt | predict
    index: int  # order within the phase
    n_items: int  # steps (meta_train) or episodes (validate, adapt, predict) covered
    step: int  # meta-training steps done when the window closed
    measurement: Measurement
    scenario: str = ""  # adapt / predict: "stream" or "batch" (empty for other phases)
    repeats: int = 1  # passes inside the window; energy per item = J / (repeats x n_items)


@dataclass(frozen=True)
class Checkpoint:
    step: int
    val_score: float
    meta_seconds: float  # cumulative meta_train seconds (validation excluded)
    meta_joules: float | None  # cumulative meta_train joules; None when not measured


@dataclass
class CellResult:
    cell: Cell
    fingerprint: str
    episode_scores: list[float] = field(default_factory=list)
    episode_metrics: list[tuple[int, str, float]] = field(default_factory=list)  # idx, name, v
    windows: list[WindowRecord] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    trace: list[TraceRow] = field(default_factory=list)  # power samples with their phase
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def score_mean(self) -> float:
        return float(np.mean(self.episode_scores))

    @property
    def score_ci95(self) -> float:
        return ci95(self.episode_scores)


@functools.lru_cache(maxsize=4)
def load_source(dataset: str, root: Path, split: str):
    return DATASETS.get(dataset).load(root, split)


def build(cell: Cell, data_root: Path) -> tuple[Method, dict[str, EpisodeSampler]]:
    """The method for this cell and its train / val / test samplers (same seed, same
    stream key for every method)."""
    suite = cell.suite
    source = load_source(suite.dataset, data_root, suite.split)
    samplers = {
        part: EpisodeSampler(source, part, suite.shape, cell.seed, suite.episode_key, cell.device)
        for part in ("train", "val", "test")
    }
    task = TaskSpec(
        suite.task,
        suite.n_way,
        suite.k_shot,
        suite.n_query,
        source.x_shape,
        getattr(source, "y_dim", 1),
        getattr(source, "backbone", "auto"),
        suite.precision,
        suite.normalization,
        cell.execution,
    )
    config = suite.method(cell.method)
    method = METHODS.get(cell.method)(task, config.params, torch.device(cell.device), cell.seed)
    return method, samplers


def episode_score(suite: Suite, scores: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy (classification) or mean squared error (regression) on one query set."""
    if suite.task == "classification":
        return float((scores.argmax(dim=1) == y).float().mean())
    return float(torch.nn.functional.mse_loss(scores, y))


def next_chunk(start: int, n: int, size: int) -> range:
    """The chunk from `start` of about `size` episodes; a remainder shorter than MIN_CHUNK
    joins it."""
    end = min(n, start + max(size, 1))
    if n - end < MIN_CHUNK:
        end = n
    return range(start, end)


def chunk_size(seconds_per_episode: float) -> int:
    """Episodes for a window of MIN_WINDOW_S, within [MIN_CHUNK, MAX_CHUNK]."""
    if seconds_per_episode <= 0:
        return MAX_CHUNK
    return int(min(MAX_CHUNK, max(MIN_CHUNK, math.ceil(MIN_WINDOW_S / seconds_per_episode))))


class CellRunner:
    """Runs one cell against one meter, collecting windows, checkpoints and scores."""

    def __init__(
        self,
        cell: Cell,
        meter: Meter,
        data_root: Path,
        tick: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.cell, self.meter, self.tick = cell, meter, tick
        self.method, self.samplers = build(cell, data_root)
        self.suite = cell.suite
        self.result = CellResult(
            cell, self.samplers["test"].fingerprint(self.suite.n_test_episodes)
        )
        self._counts: dict[str, int] = {}
        self._meta = {"seconds": 0.0, "joules": 0.0, "measured": True, "step": 0}

    def record(self, phase: str, n_items: int, step: int, m: Measurement) -> None:
        index = self._counts.get(phase, 0)
        self._counts[phase] = index + 1
        self.result.windows.append(WindowRecord(phase, index, n_items, step, m))

    def run(self) -> CellResult:
        self.result.started_at = time.time()
        torch.set_num_threads(self.cell.threads)  # the cell's setting on every executor
        torch.manual_seed(self.cell.seed)  # for methods that use torch's global RNG in training
        drain = getattr(self.meter, "drain_trace", list)
        drain()  # samples from before this cell (idle baseline, previous cell) are not ours
        self.meta_train()
        self.deploy()
        self.result.finished_at = time.time()
        spans = [
            Span(w.phase, w.measurement.start_s, w.measurement.start_s + w.measurement.seconds)
            for w in self.result.windows
        ]
        self.result.trace = trace_rows(drain(), spans)
        return self.result

    def meta_train(self) -> None:
        steps = self.method.meta_steps
        if steps == 0:
            return
        every = max(1, math.ceil(steps / self.suite.n_checkpoints))
        self._window = self.meter.begin("meta_train")

        def checkpoint(step: int) -> None:
            self.close_meta_window(step)
            self.result.checkpoints.append(
                Checkpoint(
                    step,
                    self.validate(step),
                    self._meta["seconds"],
                    self._meta["joules"] if self._meta["measured"] else None,
                )
            )
            self._window = self.meter.begin("meta_train")

        self.method.meta_train(self.samplers["train"], checkpoint, every)
        if self._meta["step"] < steps:  # a method that skipped the final checkpoint
            self.close_meta_window(steps)

    def close_meta_window(self, step: int) -> None:
        m = self.meter.end(self._window)
        self.record("meta_train", step - self._meta["step"], step, m)
        self.tick(step - self._meta["step"])
        self._meta["step"] = step
        self._meta["seconds"] += m.seconds
        if is_bad(m.total_j):  # not measured, or a component failed in this window
            self._meta["measured"] = False
        else:
            self._meta["joules"] += m.total_j

    def validate(self, step: int) -> float:
        sampler, n = self.samplers["val"], self.suite.n_val_episodes
        with self.meter.window("validate") as w:
            scores = [self.evaluate(sampler.episode(i)) for i in range(n)]
        self.record("validate", n, step, w.measurement)
        return float(np.mean(scores))

    def evaluate(self, ep) -> float:
        adapted = self.method.adapt(ep.support_x, ep.support_y)
        return episode_score(self.suite, self.method.predict(adapted, ep.query_x), ep.query_y)

    def deploy(self) -> None:
        sampler = self.samplers["test"]
        step = self.method.meta_steps
        extra = getattr(sampler.source, "extra_scores", None)
        n, start, size = self.suite.n_test_episodes, 0, MIN_CHUNK
        while start < n:
            chunk = next_chunk(start, n, size)
            start = chunk.stop
            keys = [sampler.key(i) for i in chunk]
            episodes = [sampler.materialize(k) for k in keys]
            with self.meter.window("adapt") as w:
                adapted = [self.method.adapt(e.support_x, e.support_y) for e in episodes]
            self.record("adapt", len(chunk), step, w.measurement)
            with self.meter.window("predict") as w:
                outputs = [self.method.predict(a, e.query_x) for a, e in zip(adapted, episodes)]
            self.record("predict", len(chunk), step, w.measurement)
            shorter_s = min(
                self.result.windows[-1].measurement.seconds,
                self.result.windows[-2].measurement.seconds,
            )
            size = chunk_size(shorter_s / len(chunk))
            self.result.episode_scores += [
                episode_score(self.suite, o, e.query_y) for o, e in zip(outputs, episodes)
            ]
            if extra is not None:  # outside every window: evaluation, not deployment cost
                self.result.episode_metrics += [
                    (i, name, float(v))
                    for i, k, a in zip(chunk, keys, adapted, strict=True)
                    for name, v in extra(self.method, a, k).items()
                ]
            self.tick(len(chunk))


def run_cell(
    cell: Cell, meter: Meter, data_root: Path, tick: Callable[[int], None] = lambda n: None
) -> CellResult:
    """Run one cell: meta_train with validation checkpoints, then the deploy phase."""
    return CellRunner(cell, meter, data_root, tick).run()


def cell_work(cell: Cell) -> int:
    """Units of progress in a cell: meta-training steps plus test episodes."""
    return cell.suite.method(cell.method).params.meta_steps + cell.suite.n_test_episodes
