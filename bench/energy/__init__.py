"""Energy meters: one interface (base.py), one source per file (nvml.py with its NVML
boundary nvml_api.py, rapl.py with its zone layouts powercap.py, estimate.py), cumulative
counters and their faults (counter.py), whose CPU work it is (load.py), the composite meter
and factory (composite.py), CO2 (carbon.py), the idle baseline (idle.py) and power traces
(trace.py). See docs/energy.md."""

from bench.energy.base import FAILED, Measurement, Meter, MeterInfo, MeterUnavailable, TimeMeter
from bench.energy.composite import CompositeMeter, build_meter, inventory
from bench.energy.idle import net_by_component, net_j

__all__ = [
    "FAILED",
    "CompositeMeter",
    "Measurement",
    "Meter",
    "MeterInfo",
    "MeterUnavailable",
    "TimeMeter",
    "build_meter",
    "inventory",
    "net_by_component",
    "net_j",
]
