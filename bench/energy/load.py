"""Whose work is the machine doing? This process's share of the machine's CPU capacity, the
other processes' share, and this process's resident memory: what the meters use to
attribute shared CPU-package and DRAM energy to the process that runs the cell.

All readings are cumulative counters (CPU seconds since boot or since the process
started), so a share over an interval is the ratio of two differences:

- machine capacity: the sum of every field of /proc/stat's cpu line (all logical CPUs,
  idle included; psutil.cpu_times()), less guest time (already inside user time);
- machine busy time: capacity less idle and iowait (the rule of codecarbon's
  SystemCPULoadMeter, so steal time from other VMs counts as busy);
- this process: user + system time of all its threads (psutil.Process.cpu_times).
  Child processes are not counted: metabench computes in-process, and each Dask worker
  meters itself (a driver counting its workers would bill them twice).

Shares are clamped to [0, 1] and the machine's busy share to at least the process's (the
two counters are read a few microseconds apart). Both counters tick at USER_HZ (10 ms of
one CPU), so a share over an interval shorter than a few ticks is coarse; sums over many
intervals are not biased by that.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from bench.energy.base import MeterError


@dataclass(frozen=True)
class Usage:
    """Cumulative readings at one instant (seconds of CPU time, bytes)."""

    process_cpu_s: float  # this process, all threads
    machine_busy_s: float  # all processes, all logical CPUs
    machine_total_s: float  # capacity: busy + idle, all logical CPUs
    rss_bytes: float  # this process's resident set now (not cumulative)


@dataclass(frozen=True)
class Shares:
    """Shares of the machine's CPU capacity over one interval (each 0..1)."""

    process: float  # used by this process
    machine: float  # used by all processes (>= process)

    @property
    def foreign(self) -> float:
        """Used by other processes."""
        return self.machine - self.process

    @property
    def of_busy(self) -> float:
        """This process's share of the CPU time anything used (0 when nothing ran):
        the pro-rata key for splitting a measured package's energy."""
        return self.process / self.machine if self.machine > 0 else 0.0


_PROCESS: dict[int, psutil.Process] = {}  # by pid: a forked child must not read its parent


def read_usage() -> Usage:
    """This process's and the machine's CPU counters now, and this process's RSS."""
    pid = os.getpid()
    proc = _PROCESS.get(pid) or _PROCESS.setdefault(pid, psutil.Process(pid))
    with proc.oneshot():
        own = proc.cpu_times()
        rss = proc.memory_info().rss
    m = psutil.cpu_times()
    total = sum(m) - getattr(m, "guest", 0.0) - getattr(m, "guest_nice", 0.0)
    busy = total - m.idle - getattr(m, "iowait", 0.0)
    return Usage(own.user + own.system, busy, total, float(rss))


def shares(a: Usage, b: Usage) -> Shares | None:
    """Shares over the interval from reading `a` to reading `b`; None when the machine's
    counters did not move (an interval shorter than one tick)."""
    capacity = b.machine_total_s - a.machine_total_s
    if capacity <= 0:
        return None
    process = min(max((b.process_cpu_s - a.process_cpu_s) / capacity, 0.0), 1.0)
    machine = min(max((b.machine_busy_s - a.machine_busy_s) / capacity, process), 1.0)
    return Shares(process, machine)


class ShareTracker:
    """Shares over consecutive intervals: each `next()` covers the time since the previous
    call (None the first time, or for an interval shorter than one tick). One per source,
    read under that source's lock."""

    def __init__(self, usage: Callable[[], Usage] = read_usage) -> None:
        self.usage = usage
        self.last: Usage | None = None

    def next(self) -> tuple[Shares | None, Usage]:
        try:
            now = self.usage()
        except (OSError, psutil.Error) as e:  # /proc unreadable: this reading fails, typed
            raise MeterError(f"cannot read CPU usage counters: {e}") from e
        prev, self.last = self.last, now
        return (None if prev is None else shares(prev, now)), now


def load_details(a: Usage | None, b: Usage | None) -> dict[str, float | None]:
    """The window-level keys of Measurement.details: `process_cpu_share` and
    `foreign_cpu_load` (means over the window, 0..1; None when unknown)."""
    s = shares(a, b) if a is not None and b is not None else None
    return {
        "process_cpu_share": None if s is None else s.process,
        "foreign_cpu_load": None if s is None else s.foreign,
    }
