"""What a run prints on stderr while it works: an opening line, one line per finished or
failed cell, live bars (unless --no-progress) and an ETA in seconds.

The ETA adds, over the cells left, each cell's predicted seconds: its meta-training steps
at a seconds-per-step rate and its test episodes at a seconds-per-episode rate. Steps and
episodes are never added up as one unit of work: their costs differ by orders of magnitude.
A rate comes from the closest comparable cells timed so far (finished, or the running
cell's own measured phases), in this order:

1. the same suite and method: the estimate is exact (as good as past timings are);
2. the same method on the same dataset (another episode shape), then the same method on
   any dataset, then any method on the same dataset, then any cell at all: the rates are
   scaled by the samples per episode (n_way x (k_shot + n_query)) and the ETA is marked
   approximate ("~").

The running cell uses its own rates as soon as its phase has measured any (steps while it
meta-trains, episodes while it deploys: their count is known), else the prior above. Only
before anything at all has been timed is the ETA "unknown" (the first seconds of a run).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from bench.run.grid import Cell
from bench.run.harness import CellResult

META_PHASES = ("meta_train", "validate")


def cell_steps(cell: Cell) -> int:
    return cell.suite.method(cell.method).params.meta_steps


def samples(cell: Cell) -> int:
    """Samples per episode: what a step's or an episode's cost scales with, to first order."""
    s = cell.suite
    return s.n_way * (s.k_shot + s.n_query)


def comparable(cell: Cell) -> list[tuple]:
    """Keys of the cells whose rates `cell` may borrow, closest first (level 0: exact)."""
    s = cell.suite
    return [
        ("suite", s.name, cell.method),
        ("dataset", s.dataset, cell.method),
        ("method", cell.method),
        ("dataset", s.dataset),
        ("any",),
    ]


@dataclass
class Timing:
    """Wall seconds of a cell: up to the end of its last meta-training or validation
    window (building, data, meta-training) for `steps` steps, and from there on (deploying
    its test episodes, episode materialisation included) for `episodes` episodes. A running
    cell's timing covers the steps and episodes measured so far."""

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

    def timing(self, now: float) -> Timing:
        """What this cell has measured so far (a deploy-phase rate needs an episode)."""
        meta_end = self.deploy_started_s if self.deploy_started_s is not None else now
        deploy_s = now - self.deploy_started_s if self.deploy_started_s is not None else 0.0
        return Timing(self.steps, meta_end - self.started_s, self.episodes, deploy_s)


Part = tuple[float, bool] | None  # (seconds, exact) of a phase, None: not estimated


@dataclass(frozen=True)
class Estimate:
    """Seconds a cell still needs, summed over the phases estimated; `whole` when every
    phase was, `exact` when also none borrowed a rate from other suites or methods."""

    seconds: float
    exact: bool
    whole: bool

    @classmethod
    def of(cls, *parts: Part) -> Estimate:
        known = [p for p in parts if p is not None]
        whole = len(known) == len(parts)
        return cls(sum(p[0] for p in known), whole and all(p[1] for p in known), whole)


Rate = tuple[float, bool]  # (seconds per step or episode per sample, exact)


def scaled(rate: Rate | None, units: float, spent: float = 0.0) -> Part:
    """`units` (steps or episodes, times samples each) at `rate`, less `spent` seconds."""
    return None if rate is None else (max(0.0, rate[0] * units - spent), rate[1])


@dataclass
class EtaModel:
    """Seconds left, from the timings of finished cells and of the running cells."""

    timings: dict[tuple, list[tuple[Timing, int]]] = field(default_factory=dict)

    def observe(self, cell: Cell, timing: Timing) -> None:
        for key in comparable(cell):
            self.timings.setdefault(key, []).append((timing, samples(cell)))

    def rate(self, cell: Cell, per: Callable[[Timing], float | None], live=()) -> Rate | None:
        """Mean seconds per step or episode (`per`, None where the timing has none) per
        sample, from the closest comparable timings (and `live` (cell, timing) pairs)."""
        extra: dict[tuple, list[tuple[Timing, int]]] = {}
        for other, timing in live:
            for key in comparable(other):
                extra.setdefault(key, []).append((timing, samples(other)))
        for level, key in enumerate(comparable(cell)):
            seen = [
                r / n
                for t, n in (*self.timings.get(key, ()), *extra.get(key, ()))
                if (r := per(t)) is not None
            ]
            if seen:
                return sum(seen) / len(seen), level == 0
        return None

    def estimate(self, cell: Cell, live: Iterable[tuple[Cell, Timing]] = ()) -> Estimate:
        """The whole of `cell`: meta-training (a cell without steps: its set-up time, 0
        when no such cell was timed) plus its test episodes."""
        live = list(live)
        steps, n = cell_steps(cell), samples(cell)
        meta = self.rate(cell, per_step if steps else setup_s, live)
        if meta is None and not steps:
            meta = (0.0, False)
        deploy = self.rate(cell, per_episode, live)
        return Estimate.of(
            scaled(meta, n * (steps or 1)), scaled(deploy, n * cell.suite.n_test_episodes)
        )

    def left(self, live: Live, now: float, others=()) -> Estimate:
        """Seconds the running cell still needs: its own rate for the phase it is in once
        that phase has measured any, else its comparable cells' rates; the test episodes
        left are known either way."""
        cell, n, others = live.cell, samples(live.cell), list(others)
        steps, episodes = cell_steps(cell), cell.suite.n_test_episodes
        deploy = self.rate(cell, per_episode, others)
        if live.deploy_started_s is None:  # building, or meta-training
            spent = now - live.started_s
            if live.steps:
                meta: Part = (spent / live.steps * (steps - live.steps), True)
            else:
                meta = scaled(self.rate(cell, per_step if steps else setup_s, others),
                              n * (steps or 1), spent)  # fmt: skip
            return Estimate.of(meta, scaled(deploy, n * episodes))
        spent = now - live.deploy_started_s
        if live.episodes:
            return Estimate.of((spent / live.episodes * (episodes - live.episodes), True))
        return Estimate.of(scaled(deploy, n * episodes, spent))

    def remaining(
        self, pending: list[Cell], live: list[Live], now: float, workers: int = 1
    ) -> tuple[float, int, int]:
        """(seconds left on `workers` parallel workers, cells estimated from other suites
        or methods, cells not (wholly) estimated: nothing comparable was timed yet)."""
        measured = [(x.cell, x.timing(now)) for x in live]
        estimates = [self.estimate(c, measured) for c in pending]
        estimates += [self.left(x, now, measured) for x in live]
        seconds = sum(e.seconds for e in estimates)
        approximate = sum(e.whole and not e.exact for e in estimates)
        unknown = sum(not e.whole for e in estimates)
        return seconds / max(1, workers), approximate, unknown


def per_step(t: Timing) -> float | None:
    return t.meta_s / t.steps if t.steps else None


def setup_s(t: Timing) -> float | None:
    """A step-free cell's time before its deploy phase (building, data)."""
    return t.meta_s if not t.steps and t.episodes else None


def per_episode(t: Timing) -> float | None:
    return t.deploy_s / t.episodes if t.episodes else None


def format_eta(seconds: float, approximate: int = 0, unknown: int = 0) -> str:
    """'ETA 412 s'; 'ETA ~412 s (approximate: ...)' when rates were borrowed; 'ETA over
    412 s (...)' while some cells have a phase nothing comparable was timed for; never a
    bound of 0 s."""
    text = f"{seconds:.0f} s" + (f" ({seconds / 3600:.1f} h)" if seconds >= 3600 else "")
    cells = f"{unknown} cell{'s' if unknown != 1 else ''}"
    if unknown and seconds < 1:
        return f"ETA not known yet (nothing comparable to {cells} timed so far)"
    if unknown:
        return f"ETA over {text} ({cells} not timed yet)"
    if approximate:
        many = f"{approximate} cell{'s' if approximate != 1 else ''}"
        return f"ETA ~{text} (approximate: {many} from other suites or methods)"
    return f"ETA {text}"


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
        live = list(self.live.values())
        return format_eta(*self.eta.remaining(self.pending, live, self.clock(), self.workers))

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
