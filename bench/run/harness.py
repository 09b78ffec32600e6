"""The harness: the one place that runs a cell and opens energy windows.

Phases (docs/protocol.md):
- `setup`: a throwaway adaptation and prediction before the cell's first metered window,
  and again (stream and batch shapes) before the first deploy window: warm-up, and any
  capture or compilation, are reported apart and billed to neither E_meta nor E_deploy.
- `meta_train`: one window per stretch between validation checkpoints, so learning curves
  get cumulative time and energy on the x-axis. Validation runs in its own `validate`
  windows, which are not part of E_meta.
- deploy (bench/run/deploy.py): test episodes in equal chunks; per chunk and scenario
  (`stream`, and `batch` when the execution mode batches) one `adapt` window over the
  chunk's support sets, then one `predict` window over its query sets, each pass repeated
  until the window outlasts the meter's resolution. The report divides a window's energy
  by repeats x tasks.
- The meter's power trace (if it keeps one) is drained at the cell's edges and stored
  with the phase each sample falls in.
- extra scores: a source may define `extra_scores(method, adapted, key) -> {name: value}`
  (e.g. the dynamics rollout error). The harness calls it per test episode after the
  chunk's windows close, so it is never part of E_deploy; the values go to the ledger's
  `episode_metrics` table.
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
from bench.run.deploy import BatchPasses, DeployPhase, Stacked, StreamPasses
from bench.run.grid import Cell
from bench.stats import ci95
from bench.suite import Suite


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
        # Shortest deploy window the meter resolves (NVML's counter updates every 20-100
        # ms); a time-only meter resolves any window.
        self.min_window_s = meter.min_window_s
        self._meta = {"seconds": 0.0, "joules": 0.0, "measured": True, "step": 0}

    def record(
        self,
        phase: str,
        n_items: int,
        step: int,
        m: Measurement,
        scenario: str = "",
        repeats: int = 1,
    ) -> None:
        index = self._counts.get(phase, 0)
        self._counts[phase] = index + 1
        self.result.windows.append(WindowRecord(phase, index, n_items, step, m, scenario, repeats))

    def run(self) -> CellResult:
        self.result.started_at = time.time()
        torch.set_num_threads(self.cell.threads)  # the cell's setting on every executor
        torch.manual_seed(self.cell.seed)  # for methods that use torch's global RNG in training
        drain = getattr(self.meter, "drain_trace", list)
        drain()  # samples from before this cell (idle baseline, previous cell) are not ours
        self.warm_up_first()
        self.meta_train()
        self.deploy()
        self.result.finished_at = time.time()
        spans = [
            Span(w.phase, w.measurement.start_s, w.measurement.start_s + w.measurement.seconds)
            for w in self.result.windows
        ]
        self.result.trace = trace_rows(drain(), spans)
        return self.result

    def warm_up_first(self) -> None:
        """Before the cell's first metered window, one throwaway adaptation and prediction
        in the shape validation will use (one episode per call under `loop`, all
        validation episodes at once otherwise) in a `setup` window: a process's first calls
        (allocator, kernel selection, lazy imports, any capture) are not billed to the
        first cell of a grid, nor to meta-training. A meta-trained method also runs its
        first meta step's path once (`Method.warm_up_meta`, which changes no state)."""
        sampler = self.samplers["val"]
        n = 1 if self.cell.execution == "loop" else self.suite.n_val_episodes
        s = Stacked.of([sampler.episode(i) for i in range(n)])
        with self.meter.window("setup") as w:
            if self.method.meta_steps > 0:
                self.method.warm_up_meta(self.samplers["train"])
            self.method.warm_up(s.support_x, s.support_y, s.query_x)
        self.record("setup", n, 0, w.measurement)

    def meta_train(self) -> None:
        steps = self.method.meta_steps
        if steps == 0:
            return
        every = max(1, math.ceil(steps / self.suite.n_checkpoints))
        self._window = self.meter.begin("meta_train")

        def checkpoint(step: int) -> None:
            self.close_meta_window(step)
            score = self.validate(step)
            if not math.isfinite(score):  # no step after this one can recover: stop now
                raise CellDiverged(
                    f"diverged: validation {self.suite.score_name} = {score} at meta-step "
                    f"{step} of {steps} (training blew up; lower the method's learning rates "
                    f"in {self.suite.path})"
                )
            self.result.checkpoints.append(
                Checkpoint(
                    step,
                    score,
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
        """Mean validation score, in the cell's execution mode (one task per call under
        `loop`, whole chunks otherwise)."""
        sampler, n = self.samplers["val"], self.suite.n_val_episodes
        episodes = [sampler.episode(i) for i in range(n)]
        with self.meter.window("validate") as w:
            if self.cell.execution == "loop":
                passes = StreamPasses(self.method, episodes)
            else:
                passes = BatchPasses(self.method, Stacked.of(episodes))
            passes.adapt()
            outputs = passes.predict()
        self.record("validate", n, step, w.measurement)
        return float(
            np.mean([episode_score(self.suite, o, e.query_y) for o, e in zip(outputs, episodes)])
        )

    def deploy(self) -> None:
        """The deploy phase (bench/run/deploy.py), then the scores' sanity check."""
        DeployPhase(self, functools.partial(episode_score, self.suite)).run()
        scores = np.asarray(self.result.episode_scores, dtype=float)
        if not np.isfinite(scores).all():
            bad = int((~np.isfinite(scores)).sum())
            raise CellDiverged(
                f"diverged: {bad} of {len(scores)} test episodes scored "
                f"{self.suite.score_name} = nan or inf (training blew up; lower the "
                f"method's learning rates in {self.suite.path})"
            )


class CellDiverged(RuntimeError):
    """A cell whose scores are not finite: recorded as failed, never ranked."""


def run_cell(
    cell: Cell, meter: Meter, data_root: Path, tick: Callable[[int], None] = lambda n: None
) -> CellResult:
    """Run one cell: meta_train with validation checkpoints, then the deploy phase."""
    return CellRunner(cell, meter, data_root, tick).run()


def cell_work(cell: Cell) -> int:
    """Units of progress in a cell: meta-training steps plus test episodes."""
    return cell.suite.method(cell.method).params.meta_steps + cell.suite.n_test_episodes
