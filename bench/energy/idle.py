"""Idle baseline and gross/net arithmetic.

Before the first cell the machine sits idle for the profile's `idle_s` in one window; the
idle power of each component (W) is that window's joules / seconds, measured by the same
meter with the same attribution as the cells' windows (an estimate attributed to this
process has the same process, doing nothing, as its baseline). The window is cut into
`slices` consecutive sub-windows; the sample standard deviation of their mean powers is
the baseline's noise (`watts_std`, W): a window's net energy within about
watts_std x seconds of zero is indistinguishable from idle. A figure's net energy is
gross - idle W x seconds: what the work cost on top of keeping the machine on.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench.energy.base import Measurement, Meter

SLICE_S = 0.5  # the idle window is cut into slices of about this length
MAX_SLICES = 20


@dataclass(frozen=True)
class IdlePower:
    """Idle power of one component over the baseline window."""

    component: str
    watts: float
    source: str
    seconds: float
    watts_std: float = math.nan  # std of the slices' mean powers (W); NaN if unknown


def measure_idle(
    meter: Meter, seconds: float, sleep=time.sleep
) -> tuple[list[IdlePower], Measurement]:
    """Sleep `seconds` inside one window, cut into slices (nested windows); per-component
    idle power (W) and its noise."""
    n = min(MAX_SLICES, max(2, round(seconds / SLICE_S)))
    slices = []
    with meter.window("idle") as w:
        for i in range(n):
            with meter.window(f"idle-{i}") as s:
                sleep(seconds / n)
            slices.append(s.measurement)
    m = w.measurement
    return idle_from(m, slices), m


def idle_from(m: Measurement, slices: list[Measurement] = ()) -> list[IdlePower]:
    if m.seconds <= 0:
        return []
    return [
        IdlePower(c, j / m.seconds, m.source_by_component[c], m.seconds, spread(c, slices))
        for c, j in m.joules_by_component.items()
    ]


def spread(component: str, slices: list[Measurement]) -> float:
    """Sample std of the component's mean power over the slices (W); NaN with fewer than
    two usable slices."""
    watts = [
        s.joules_by_component[component] / s.seconds
        for s in slices
        if s.seconds > 0 and component in s.joules_by_component
    ]
    return statistics.stdev(watts) if len(watts) >= 2 else math.nan


def net_j(gross_j: float, idle_w: float, seconds: float) -> float:
    """Energy above idle: gross J - idle W x seconds (J). May be negative when the work
    ran below the idle baseline (noise); callers report it, not clip it (the report
    reads |net| below the baseline's noise as 'within idle noise')."""
    return gross_j - idle_w * seconds


def net_by_component(m: Measurement, idle_w: Mapping[str, float]) -> dict[str, float]:
    """Net joules of each component of a window; NaN where no idle power is known."""
    return {
        c: net_j(j, idle_w.get(c, math.nan), m.seconds) for c, j in m.joules_by_component.items()
    }
