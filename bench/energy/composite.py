"""The composite meter: every available source (NVML, RAPL, codecarbon estimate) behind one
Meter, one background sampler thread, and the power trace.

A *source* keeps cumulative energy per component (a hardware counter, or an accumulator
of power x time that it updates on every reading). A window reads every source at both
edges and subtracts, so any number of windows may be open at once (nesting is free).
The sampler thread reads each source at its own period between edges: that feeds the
integrated-power accumulators, tracks counter wraparound and resets, and records the power
trace. Every window also records whose work the machine did (bench/energy/load.py):
`details["process_cpu_share"]` and `details["foreign_cpu_load"]`.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import psutil

from bench.energy.base import (
    FAILED,
    Measurement,
    MeterBase,
    MeterError,
    MeterInfo,
    MeterUnavailable,
    Window,
)
from bench.energy.load import Usage, load_details, read_usage

DEFAULT_SAMPLE_HZ = 20.0
TRACE_LIMIT = 500_000  # samples kept between drains (~3 h of 1 GPU at 20 Hz); oldest dropped


@dataclass(frozen=True)
class TraceSample:
    """One power reading. `t_s` is on the meter's clock until `drain_trace` converts it to
    wall-clock time (time.time() seconds)."""

    t_s: float
    component: str
    kind: str  # instant | average | estimate
    watts: float


@dataclass(frozen=True)
class Edge:
    """A source's reading at one window edge: cumulative joules and sample counts per
    component (only differences between two edges mean anything), and extras."""

    t_s: float
    energy_j: Mapping[str, Mapping[str, float]]  # component -> {method: cumulative J}
    samples: Mapping[str, int]
    details: Mapping[str, object] = field(default_factory=dict)
    trace: tuple[TraceSample, ...] = ()
    # component -> (faults so far, the latest fault in words) of its cumulative counter: a
    # window whose edges differ spans a counter reset or jump (bench/energy/counter.py)
    faults: Mapping[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """One source's share of a Measurement."""

    joules_by_component: Mapping[str, float]
    source_by_component: Mapping[str, str]
    samples_by_component: Mapping[str, int]
    warnings: tuple[str, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)


class Source(Protocol):
    """One energy source. `sample` and `edge` are called under the composite's per-source
    lock (never concurrently); they raise MeterError when the hardware stops answering."""

    name: str
    components: tuple[str, ...]
    sample_period_s: float
    min_window_s: float  # shortest window the source resolves (s)

    def sample(self, t_s: float) -> list[TraceSample]: ...

    def edge(self, t_s: float) -> Edge: ...

    def measure(self, start: Edge, end: Edge) -> Part: ...

    def info(self) -> MeterInfo: ...

    def close(self) -> None: ...


def failed_part(source: Source, error: BaseException, window: str) -> Part:
    """Every component of `source` marked failed for this window: NaN joules, source
    `failed`, and a warning naming the error. The run goes on."""
    comps = source.components
    return Part(
        {c: math.nan for c in comps},
        dict.fromkeys(comps, FAILED),
        dict.fromkeys(comps, 0),
        (f"{source.name}: window '{window}' failed: {error}",),
    )


class CompositeMeter(MeterBase):
    """All available sources behind one Meter. `sample_hz` <= 0 starts no thread (tests
    call `sample()` themselves with a fake clock). `usage` reads the CPU counters that give
    each window's process and foreign CPU shares (tests inject fakes)."""

    def __init__(
        self,
        sources: list[Source],
        *,
        sample_hz: float = DEFAULT_SAMPLE_HZ,
        clock: Callable[[], float] = time.perf_counter,
        unavailable: list[MeterInfo] | None = None,
        usage: Callable[[], Usage] = read_usage,
    ) -> None:
        self.sources = list(sources)
        self.unavailable = list(unavailable or [])
        self.clock = clock
        self.usage = usage
        self._wall_offset_s = time.time() - clock()
        self._locks = {s.name: threading.Lock() for s in self.sources}
        self._next_due = dict.fromkeys(self._locks, 0.0)
        self._trace: deque[TraceSample] = deque(maxlen=TRACE_LIMIT)
        self.sample_errors: dict[str, str] = {}
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        if sample_hz > 0 and self.sources:
            self._thread = threading.Thread(
                target=self._run, args=(1.0 / sample_hz,), name="metabench-sampler", daemon=True
            )
            self._thread.start()

    # -- sampler -------------------------------------------------------------------------
    def _run(self, period_s: float) -> None:
        while not self._halt.wait(period_s):
            self.sample()

    def sample(self) -> None:
        """One sampler tick: read every source whose period has elapsed. A source that
        fails is remembered (its windows fail at their edges); sampling goes on."""
        for src in self.sources:
            now = self.clock()
            if now < self._next_due[src.name]:
                continue
            self._next_due[src.name] = now + src.sample_period_s
            try:
                with self._locks[src.name]:
                    self._trace.extend(src.sample(self.clock()))
            except MeterError as e:
                self.sample_errors[src.name] = str(e)

    def drain_trace(self) -> list[TraceSample]:
        """The samples recorded since the last drain, with `t_s` in wall-clock seconds."""
        out = []
        while self._trace:
            s = self._trace.popleft()
            out.append(TraceSample(s.t_s + self._wall_offset_s, s.component, s.kind, s.watts))
        return out

    def close(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for src in self.sources:
            src.close()

    # -- windows -------------------------------------------------------------------------
    def _edge(self, src: Source) -> Edge | MeterError:
        try:
            with self._locks[src.name]:
                e = src.edge(self.clock())
        except MeterError as err:
            return err
        self._trace.extend(e.trace)
        return e

    def _usage(self) -> Usage | None:
        try:
            return self.usage()
        except (OSError, psutil.Error):  # /proc unreadable: the shares are unknown, not fatal
            return None

    def _start(self, window: Window) -> None:
        window.state = {s.name: self._edge(s) for s in self.sources}
        window.state[USAGE] = self._usage()

    def _stop(self, window: Window, seconds: float) -> Measurement:
        parts = []
        for src in self.sources:
            start, end = window.state[src.name], self._edge(src)
            err = next((x for x in (start, end) if isinstance(x, MeterError)), None)
            parts.append(
                failed_part(src, err, window.name) if err is not None else src.measure(start, end)
            )
        parts.append(Part({}, {}, {}, (), load_details(window.state[USAGE], self._usage())))
        return merge(window, seconds, parts)

    @property
    def min_window_s(self) -> float:
        """The shortest window every source resolves (s); the harness repeats a shorter
        pure pass inside its window until the window lasts this long."""
        return max((s.min_window_s for s in self.sources), default=0.0)

    def info(self) -> list[MeterInfo]:
        """Inventory rows of the sources in use and of those that were unavailable."""
        return [s.info() for s in self.sources] + self.unavailable


USAGE = " usage"  # window.state key of the CPU counters at the start edge (not a source name)


def merge(window: Window, seconds: float, parts: list[Part]) -> Measurement:
    joules, sources, samples, warnings, details = {}, {}, {}, [], {}
    for p in parts:
        joules.update(p.joules_by_component)
        sources.update(p.source_by_component)
        samples.update(p.samples_by_component)
        warnings += p.warnings
        for key, value in p.details.items():  # keyed-by-component maps (attribution) join
            old = details.get(key)
            both = isinstance(old, Mapping) and isinstance(value, Mapping)
            details[key] = {**old, **value} if both else value
    for comp, j in joules.items():
        if j == 0.0 and seconds > 0:  # never a bare 0 J: say it is below resolution
            warnings.append(
                f"{comp}: 0 J over {seconds:.3f} s is below the meter's "
                "resolution; meter a longer window"
            )
    return Measurement(
        window.name, window.start_s, seconds, joules, sources, samples, tuple(warnings), details
    )


def build_meter(
    device: str = "cpu",
    *,
    sample_hz: float = DEFAULT_SAMPLE_HZ,
    rapl_root: str | None = None,
    estimate: bool = True,
    clock: Callable[[], float] = time.perf_counter,
    attribute: bool | None = None,
) -> CompositeMeter:
    """The composite meter for a run on `device` ('cpu', 'cuda', 'cuda:N'): NVML for the
    GPUs the run uses, RAPL for CPU packages and DRAM, and codecarbon estimates (attributed
    to this process) for whatever of CPU and RAM nothing measures. `attribute`: split the
    RAPL packages' energy by this process's CPU time, for a process that shares them with
    other cells; None decides by `shares_package()`. Unavailable meters are kept with
    their reason in `meter.unavailable`."""
    sources, unavailable = make_sources(
        device, rapl_root=rapl_root, estimate=estimate, attribute=attribute
    )
    return CompositeMeter(sources, sample_hz=sample_hz, clock=clock, unavailable=unavailable)


def shares_package() -> bool:
    """True in a Dask worker process: its host may run other workers' cells on the same CPU
    package at the same time (dask-local always does), so measured package energy must be
    attributed. A local run executes its cells one after another in one process."""
    distributed = sys.modules.get("distributed")  # never imported just to ask
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:  # not inside a worker
        return False
    return True


def make_sources(
    device: str,
    *,
    rapl_root: str | None = None,
    estimate: bool = True,
    attribute: bool | None = None,
) -> tuple[list[Source], list[MeterInfo]]:
    from bench.energy import estimate as est
    from bench.energy import nvml, rapl

    share = shares_package() if attribute is None else attribute
    sources: list[Source] = []
    unavailable: list[MeterInfo] = []
    attempts: list[tuple[Callable[[], Source], Callable[[MeterUnavailable], MeterInfo]]] = [
        (lambda: nvml.NvmlSource(device), nvml.unavailable_info),
        (
            lambda: rapl.RaplSource(rapl_root or rapl.POWERCAP_ROOT, attribute=share),
            rapl.unavailable_info,
        ),
    ]
    for make, info in attempts:
        try:
            sources.append(make())
        except MeterUnavailable as e:
            unavailable.append(info(e))
    measured = {c.split(":")[0] for s in sources for c in s.components}
    need_cpu, need_ram = "cpu" not in measured, "dram" not in measured
    if not estimate:
        unavailable.append(est.unavailable_info(MeterUnavailable("estimates turned off")))
    elif not (need_cpu or need_ram):
        unavailable.append(
            est.unavailable_info(MeterUnavailable("not needed: RAPL measures CPU and DRAM"))
        )
    else:
        try:
            sources.append(est.CodecarbonSource(cpu=need_cpu, ram=need_ram))
        except MeterUnavailable as e:
            unavailable.append(est.unavailable_info(e))
    return sources, unavailable


def inventory(device: str = "cpu", *, rapl_root: str | None = None) -> list[MeterInfo]:
    """Every meter metabench knows, available or not (and why), for a run on `device`."""
    sources, unavailable = make_sources(device, rapl_root=rapl_root)
    try:
        return [s.info() for s in sources] + unavailable
    finally:
        for s in sources:
            s.close()
