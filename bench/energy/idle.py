"""Idle baseline and gross/net arithmetic.

Before the first cell the machine sits idle for the profile's `idle_s` in one window; the
idle power of each component (W) is that window's joules / seconds. A figure's net energy
is gross - idle W x seconds: what the work cost on top of keeping the machine on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench.energy.base import Measurement, Meter


@dataclass(frozen=True)
class IdlePower:
    """Idle power of one component over the baseline window."""

    component: str
    watts: float
    source: str
    seconds: float


def measure_idle(
    meter: Meter, seconds: float, sleep=time.sleep
) -> tuple[list[IdlePower], Measurement]:
    """Sleep `seconds` inside one window; per-component idle power (W)."""
    with meter.window("idle") as w:
        sleep(seconds)
    m = w.measurement
    return idle_from(m), m


def idle_from(m: Measurement) -> list[IdlePower]:
    if m.seconds <= 0:
        return []
    return [
        IdlePower(c, j / m.seconds, m.source_by_component[c], m.seconds)
        for c, j in m.joules_by_component.items()
    ]


def net_j(gross_j: float, idle_w: float, seconds: float) -> float:
    """Energy above idle: gross J - idle W x seconds (J). May be negative when the work
    ran below the idle baseline (noise); callers report it, not clip it."""
    return gross_j - idle_w * seconds


def net_by_component(m: Measurement, idle_w: Mapping[str, float]) -> dict[str, float]:
    """Net joules of each component of a window; NaN where no idle power is known."""
    return {
        c: net_j(j, idle_w.get(c, math.nan), m.seconds) for c, j in m.joules_by_component.items()
    }
