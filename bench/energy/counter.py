"""Cumulative hardware energy counters read at irregular times (NVML's total-energy counter,
RAPL's energy_uj), with the faults that must never become a joule figure.

Each reading adds the difference to the previous reading to a running total. A difference
is a *fault*, and is not added, when
- it is negative: the counter went backwards (a driver reload or GPU reset restarts NVML's
  counter from 0). A counter with a declared wrap (RAPL's max_energy_range_uj) first gets
  the wrap added: a negative difference is a wrap when the corrected difference is
  plausible, and a reset when it is not;
- it implies a mean power above `JUMP_FACTOR` x the device's power limit over the
  interval (counted as at least `min_period_s` long, so a counter that updates in steps,
  sometimes late, is not mistaken for a jump): a corrupt reading, or a reset misread as a
  wrap.
The source then knows that windows spanning the faulty interval have no counter figure:
NVML falls back to integrated power, RAPL marks the window failed.

Why a factor over the limit: power may exceed a sustained limit for short bursts (Intel
PL2 is up to ~2x PL1 on desktop parts); a reset misread as a wrap implies kilowatts to
megawatts, far past any factor.
"""

from __future__ import annotations

from dataclasses import dataclass

JUMP_FACTOR = 2.0


@dataclass
class CounterTrack:
    """One counter's running total (J) and faults (mutated under the source's lock)."""

    name: str  # for messages, e.g. 'gpu:0 energy counter' or 'intel-rapl:0 (package-0)'
    limit_w: float  # the device's power limit (W); JUMP_FACTOR x this is the jump bound
    wrap_j: float | None = None  # the counter wraps to 0 past this (J); None: never wraps
    min_period_s: float = 0.0  # shorter intervals count as this long in the jump test
    last_j: float | None = None
    last_t_s: float = 0.0
    total_j: float = 0.0
    faults: int = 0
    fault: str = ""  # what the latest fault was, in words (always contains 'reset')

    def update(self, raw_j: float, t_s: float) -> float | None:
        """Take one reading (J, at t_s seconds); the interval's energy (J), or None for the
        first reading and for a fault."""
        prev, self.last_j = self.last_j, raw_j
        prev_t, self.last_t_s = self.last_t_s, t_s
        if prev is None:
            return None
        dt = max(t_s - prev_t, self.min_period_s, 1e-9)
        delta = raw_j - prev
        wrapped = delta < 0 and self.wrap_j is not None
        if wrapped:
            delta += self.wrap_j
        bound_w = JUMP_FACTOR * self.limit_w
        if delta < 0:
            return self._fault(
                f"{self.name} went back from {prev:.3f} J to {raw_j:.3f} J (counter reset)"
            )
        if delta / dt > bound_w:
            what = "a reset (read as a wrap)" if wrapped else "a reset or corrupt reading"
            return self._fault(
                f"{self.name} jumped by {delta:.3f} J in {t_s - prev_t:.3f} s, a mean of "
                f"{delta / dt:.0f} W, above {JUMP_FACTOR:g} x the {self.limit_w:g} W "
                f"limit: {what}"
            )
        self.total_j += delta
        return delta

    def _fault(self, message: str) -> None:
        self.faults += 1
        self.fault = message
        return None
