"""The meter interface: named windows that return a frozen Measurement.

Components are named `gpu:<uuid-or-index>`, `cpu:<package>`, `dram:<package>`; sources are
`nvml-counter`, `nvml-power`, `rapl`, `estimate:<how>` or `none`. Windows may nest. Only
the harness opens windows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
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
        for name in ("joules_by_component", "source_by_component", "samples_by_component",
                     "details"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    # mappingproxy does not pickle, and measurements travel from Dask workers to the driver:
    # pickle plain dicts and wrap them again on arrival.
    def __getstate__(self) -> dict:
        return {k: dict(v) if isinstance(v, MappingProxyType) else v
                for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        self.__post_init__()

    @property
    def total_j(self) -> float | None:
        """Sum over components, or None when nothing measured energy."""
        values = self.joules_by_component.values()
        return sum(values) if values else None


@dataclass
class Window:
    """An open window; `measurement` is set when it closes."""

    name: str
    start_s: float
    start_perf: float
    state: dict = field(default_factory=dict)  # meter-specific start readings
    measurement: Measurement | None = None


class Meter(Protocol):
    def begin(self, name: str) -> Window: ...

    def end(self, window: Window) -> Measurement: ...

    def window(self, name: str) -> contextlib.AbstractContextManager[Window]: ...


def sync_device() -> None:
    """Wait for queued CUDA work so that a window edge is where the work really is."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class MeterBase:
    """Implements `window` on top of `begin`/`end`; subclasses read their sources in
    `_start(window)` and `_stop(window, seconds)`."""

    def begin(self, name: str) -> Window:
        sync_device()
        w = Window(name, time.time(), time.perf_counter())
        self._start(w)
        return w

    def end(self, window: Window) -> Measurement:
        sync_device()
        seconds = time.perf_counter() - window.start_perf
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
