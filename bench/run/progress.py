"""What a run prints on stderr while it works: an opening line, one line per finished or
failed cell, live bars (unless --no-progress) and an ETA in seconds.

The ETA adds, over the cells left, each cell's predicted seconds: its meta-training steps
at the seconds per step, and its test episodes at the seconds per episode, that finished
cells of the same suite and method took (the running cell's own live rates count too).
A cell whose suite and method has not been timed yet is not guessed: the ETA then says
"at least" and how many cells it leaves out. Steps and episodes are never added up as one
unit of work, as their costs differ by orders of magnitude.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from bench.run.grid import Cell
from bench.run.harness import CellResult

META_PHASES = ("meta_train", "validate")


def cell_steps(cell: Cell) -> int:
    return cell.suite.method(cell.method).params.meta_steps


def timing_key(cell: Cell) -> tuple[str, str]:
    return (cell.suite.name, cell.method)


@dataclass
class Timing:
    """Wall seconds a finished cell took: up to the end of its last meta-training or
    validation window (building, data, meta-training), and from there to its end
    (deploying its test episodes, episode materialisation included)."""

    steps: int
    meta_s: float
    episodes: int
    deploy_s: float


def timing_of(result: CellResult) -> Timing:
    cell, start, end = result.cell, result.started_at, result.finished_at
    meta_ends = [
        w.measurement.start_s + w.measurement.seconds
        for w in result.windows
        if w.phase in META_PHASES
    ]
    split = min(max(meta_ends, default=start), end)
    return Timing(cell_steps(cell), split - start, cell.suite.n_test_episodes, end - split)


@dataclass
class Live:
    """The running cell of a local run: work done so far and when each phase began."""

    cell: Cell
    started_s: float
    steps: int = 0
    episodes: int = 0
    deploy_started_s: float | None = None


@dataclass
class EtaModel:
    """Seconds left, from the timings of finished cells (per suite and method)."""

    timings: dict[tuple[str, str], list[Timing]] = field(default_factory=dict)

    def observe(self, cell: Cell, timing: Timing) -> None:
        self.timings.setdefault(timing_key(cell), []).append(timing)

    def rates(self, cell: Cell) -> tuple[float, float] | None:
        """(seconds of the meta phase, seconds per test episode) for `cell`, or None."""
        seen = self.timings.get(timing_key(cell))
        if not seen:
            return None
        steps = cell_steps(cell)
        meta = sum(t.meta_s * (steps / t.steps if t.steps else 1.0) for t in seen) / len(seen)
        per_episode = sum(t.deploy_s / max(1, t.episodes) for t in seen) / len(seen)
        return meta, per_episode

    def predict(self, cell: Cell) -> float | None:
        rates = self.rates(cell)
        if rates is None:
            return None
        return rates[0] + rates[1] * cell.suite.n_test_episodes

    def left(self, live: Live, now: float) -> tuple[float, bool]:
        """(seconds the running cell still needs, whether that is all of it): from the
        timings of its suite and method, else from its own live rates, phase by phase."""
        cell, rates = live.cell, self.rates(live.cell)
        steps, episodes = cell_steps(cell), cell.suite.n_test_episodes
        if live.deploy_started_s is None:  # building, or meta-training
            spent = now - live.started_s
            if rates is not None:
                return max(0.0, rates[0] - spent) + rates[1] * episodes, True
            if live.steps == 0:
                return 0.0, False
            return spent / live.steps * max(0, steps - live.steps), False  # deploy unknown
        per_episode = rates[1] if rates is not None else None
        if live.episodes:
            per_episode = (now - live.deploy_started_s) / live.episodes
        if per_episode is None:
            return 0.0, False
        return per_episode * (episodes - live.episodes), True

    def remaining(
        self, pending: list[Cell], live: list[Live], now: float, workers: int = 1
    ) -> tuple[float, int]:
        """(known seconds left on `workers` parallel workers, cells whose time is not or
        only partly known)."""
        known, untimed = 0.0, 0
        for cell in pending:
            seconds = self.predict(cell)
            known += seconds or 0.0
            untimed += seconds is None
        for x in live:
            seconds, whole = self.left(x, now)
            known += seconds
            untimed += not whole
        return known / max(1, workers), untimed


def format_eta(seconds: float, untimed: int) -> str:
    """'ETA 412 s', or a lower bound and how many cells it leaves (partly) out: those of
    a suite and method not timed yet."""
    cells = f"{untimed} cell{'s' if untimed > 1 else ''}"
    if untimed and seconds == 0:
        return f"ETA unknown until a cell of each suite and method has run ({cells} untimed)"
    if untimed:
        return f"ETA at least {seconds:.0f} s ({cells} not timed yet)"
    return f"ETA {seconds:.0f} s"


def describe_meters(infos: list) -> str:
    """'measured by rapl (cpu:0, dram:0), estimated by codecarbon (ram)' from MeterInfo rows."""
    parts = []
    for kind in ("measured", "estimated"):
        used = [i for i in infos if i.available and i.kind == kind]
        if used:
            names = ", ".join(f"{i.name} ({', '.join(i.components) or '-'})" for i in used)
            parts.append(f"{kind} by {names}")
    return ", ".join(parts) or "not metered (time only)"


class Progress:
    """The run's lines and bars on `stream`. Local runs report ticks of the running cell
    (`cell_started`); Dask runs only finished cells."""

    def __init__(
        self,
        bars: bool = True,
        *,
        workers: int = 1,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bars, self.workers, self.clock = bars, workers, clock
        self.stream = stream or sys.stderr
        self.eta = EtaModel()
        self.pending: list[Cell] = []
        self.live: dict[str, Live] = {}
        self.total_bar: tqdm | None = None
        self.cell_bar: tqdm | None = None

    def open(self, todo: list[Cell], skipped: int, out: object, meters: str) -> None:
        """The opening line, then the run's bar."""
        self.pending = list(todo)
        self.write(
            f"metabench: {len(todo)} cell{'s' if len(todo) != 1 else ''} to run, {skipped} "
            f"already done; output: {out}; energy: {meters}"
        )
        if self.bars and todo:
            self.total_bar = tqdm(
                total=len(todo),
                desc="run",
                unit="cell",
                position=0,
                file=self.stream,
                dynamic_ncols=True,
                bar_format="{desc}: {n_fmt}/{total_fmt} cells |{bar}| {elapsed}{postfix}",
            )
            self.refresh()

    def cell_started(self, cell: Cell) -> Callable[[int], None]:
        """Marks `cell` running; returns the harness's tick (meta-training steps first,
        then test episodes, as `harness.cell_work` counts them)."""
        self.pending = [c for c in self.pending if c.key != cell.key]
        steps = cell_steps(cell)
        live = self.live[cell.key] = Live(cell, self.clock())
        if steps == 0:  # nothing to meta-train: the cell deploys from its start
            live.deploy_started_s = live.started_s
        if self.bars:
            self.cell_bar = tqdm(
                total=steps or cell.suite.n_test_episodes,
                desc=f"{cell.label} {'meta-train' if steps else 'deploy'}",
                unit="step" if steps else "episode",
                position=1,
                leave=False,
                file=self.stream,
                dynamic_ncols=True,
            )

        def tick(n: int) -> None:
            meta = max(0, min(n, steps - live.steps))
            live.steps += meta
            live.episodes += n - meta
            if live.deploy_started_s is None and live.steps >= steps:
                live.deploy_started_s = self.clock()
                self._to_deploy(cell)
            if self.cell_bar is not None:
                self.cell_bar.n = live.episodes if live.deploy_started_s is not None else live.steps
                self.cell_bar.refresh()
            self.refresh()

        return tick

    def _to_deploy(self, cell: Cell) -> None:
        if self.cell_bar is not None and cell_steps(cell):
            self.cell_bar.unit = "episode"
            self.cell_bar.set_description(f"{cell.label} deploy", refresh=False)
            self.cell_bar.reset(total=cell.suite.n_test_episodes)

    def cell_finished(self, result: CellResult, where: str = "") -> None:
        cell = result.cell
        self._done(cell)
        self.eta.observe(cell, timing_of(result))
        self.write(
            f"{cell.label}{where}: {cell.suite.score_name} {result.score_mean:.4f} "
            f"+- {result.score_ci95:.4f}"
        )
        self.refresh()

    def cell_failed(self, cell: Cell, first_line: str, where: str = "") -> None:
        self._done(cell)
        self.write(f"FAILED {cell.label}{where}: {first_line}")
        self.refresh()

    def _done(self, cell: Cell) -> None:
        self.pending = [c for c in self.pending if c.key != cell.key]
        self.live.pop(cell.key, None)
        if self.cell_bar is not None:
            self.cell_bar.close()
            self.cell_bar = None
        if self.total_bar is not None:
            self.total_bar.update(1)

    def eta_text(self) -> str:
        return format_eta(
            *self.eta.remaining(self.pending, list(self.live.values()), self.clock(), self.workers)
        )

    def refresh(self) -> None:
        if self.total_bar is not None:
            self.total_bar.set_postfix_str(self.eta_text(), refresh=True)

    def write(self, line: str) -> None:
        tqdm.write(line, file=self.stream)

    def close(self) -> None:
        for bar in (self.cell_bar, self.total_bar):
            if bar is not None:
                bar.close()
        self.cell_bar = self.total_bar = None
