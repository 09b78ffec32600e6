"""Energy meters: one interface (base.py), one implementation per source."""

from bench.energy.base import Measurement, Meter, TimeMeter

__all__ = ["Measurement", "Meter", "TimeMeter"]
