"""The meter interface: named windows that return a frozen Measurement.

Components are named `gpu:<uuid-or-index>`, `cpu:<package>`, `dram:<package>`; sources are
`nvml-counter`, `nvml-power`, `rapl`, `estimate:<how>`, `none` (nothing measures it: no
meter at all, or a MIG slice's GPU, whose joules are then NaN), or `failed` (the source
broke during the window, or its counter reset: its joules are NaN and a warning says why).
Windows may nest:
several may be open at once, and each reads its own start and end. Only the harness opens
windows.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import torch


@dataclass(frozen=True)
class Measurement:
    """What one window measured. joules_by_component and source_by_component share keys;
    an empty mapping means nothing measured energy (time only, source `none`)."""

    name: str
    start_s: float  # wall-clock time.time() at the start edge, to align power traces
    seconds: float
    joules_by_component: Mapping[str, float] = field(default_factory=dict)
    source_by_component: Mapping[str, str] = field(default_factory=dict)
    samples_by_component: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)  # meter-specific extras

    def __post_init__(self) -> None:
        for name in (
            "joules_by_component",
            "source_by_component",
            "samples_by_component",
            "details",
        ):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    # mappingproxy does not pickle, and measurements travel from Dask workers to the driver:
    # pickle plain dicts and wrap them again on arrival.
    def __getstate__(self) -> dict:
        return {
            k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in self.__dict__.items()
        }

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        self.__post_init__()

    @property
    def total_j(self) -> float | None:
        """Sum over components, or None when nothing measured energy; NaN when a component
        failed (a partial sum would silently under-read)."""
        values = self.joules_by_component.values()
        return sum(values) if values else None

    @property
    def failed(self) -> bool:
        """True when any component's figure is marked failed."""
        return FAILED in self.source_by_component.values()


FAILED = "failed"  # source label of a component whose reading broke during the window


class MeterUnavailable(Exception):
    """A meter cannot run on this machine; `reason` says why and `fix` how to change that."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(reason + (f" (fix: {fix})" if fix else ""))
        self.reason, self.fix = reason, fix


class MeterError(Exception):
    """A meter that was working failed to read (e.g. a GPU fell off the bus)."""


@dataclass(frozen=True)
class MeterInfo:
    """One inventory row: what a meter measures on this machine, or why it cannot."""

    name: str  # nvml | rapl | codecarbon | time
    components: tuple[str, ...]
    available: bool
    kind: str  # measured | estimated | none
    source: str  # label its figures carry (e.g. nvml-counter, estimate:codecarbon-process)
    resolution: str  # smallest energy step, in words with units
    update_period_s: float | None  # how often the underlying reading changes
    reason: str = ""  # why unavailable (empty when available)
    fix: str = ""  # how to make it available


def is_bad(joules: float | None) -> bool:
    """True for a missing or failed (NaN) energy figure."""
    return joules is None or math.isnan(joules)


@dataclass
class Window:
    """An open window; `measurement` is set when it closes."""

    name: str
    start_s: float
    start_perf: float
    state: dict = field(default_factory=dict)  # meter-specific start readings
    measurement: Measurement | None = None


class Meter(Protocol):
    min_window_s: float  # shortest window the meter resolves (s)

    def begin(self, name: str) -> Window: ...

    def end(self, window: Window) -> Measurement: ...

    def window(self, name: str) -> contextlib.AbstractContextManager[Window]: ...


def sync_device() -> None:
    """Wait for queued CUDA work so that a window edge is where the work really is."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class MeterBase:
    """Implements `window` on top of `begin`/`end`; subclasses read their sources in
    `_start(window)` and `_stop(window, seconds)`. `clock` (seconds, monotonic) times the
    windows; tests replace it with a fake clock shared with fake hardware."""

    clock: Callable[[], float] = staticmethod(time.perf_counter)
    min_window_s: float = 0.0  # time resolves any window; meters of energy say more

    def begin(self, name: str) -> Window:
        sync_device()
        w = Window(name, time.time(), self.clock())
        self._start(w)
        return w

    def end(self, window: Window) -> Measurement:
        sync_device()
        seconds = self.clock() - window.start_perf
        window.measurement = self._stop(window, seconds)
        return window.measurement

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[Window]:
        w = self.begin(name)
        try:
            yield w
        finally:
            self.end(w)

    def _start(self, window: Window) -> None:
        pass

    def _stop(self, window: Window, seconds: float) -> Measurement:
        return Measurement(window.name, window.start_s, seconds)


class TimeMeter(MeterBase):
    """Measures time only: every window's energy is absent (source `none`)."""

    def close(self) -> None:
        pass
