"""CPU and RAM energy *estimates*, attributed to this process, only where nothing measures.

codecarbon describes the hardware once per process (about 1-2 s): the CPU's TDP from its
table (8 W for an unknown CPU; for several sockets, TDP x sockets), the machine's RAM
power from its per-DIMM model (5 W a DIMM, DIMMs guessed from the RAM size) and the RAM
size. We never `start()` its tracker. Our sampler applies the power model every
`sample_period_s` and at every window edge and integrates power x time:

- `cpu:all`: P = TDP x (0.1 + 0.9 x p), with p this process's share of the machine's
  CPU capacity over the interval (its CPU time / all CPUs' time, bench/energy/load.py).
  This is the linear utilization model of Fan, Weber and Barroso (ISCA 2007, "Power
  provisioning for a warehouse-sized computer": P = P_idle + (P_busy - P_idle) u) with
  codecarbon's idle floor (10% of TDP) and TDP at full load. It is codecarbon's *process*
  tracking mode (TDP x the process's CPU time over total CPU capacity, codecarbon docs,
  "Methodology: Tracking Modes") plus that floor: keeping the machine on is charged to
  the window, and the idle baseline (same model, same process, nothing running) removes
  it again. Other processes' load changes nothing: a linear model splits power additively,
  so two workers sharing a package are charged their own shares and the package's dynamic
  power once. codecarbon's *machine* mode (TDP x (0.1 + 0.9 L^3) with the machine's load
  L) charges this process for everything else the machine runs; it is kept per window in
  `details[c]["machine_j"]` for comparison only.
- `dram:all`: P = RAM power x this process's resident memory / the machine's memory.
  codecarbon's RAM model is a constant (DIMM count), i.e. memory that is powered whether
  used or not: each process is charged for the share of it that it holds, so DRAM is
  counted once over all processes, not once per worker.

Every figure is labelled `estimate:codecarbon-process` (the label says it is this
process's share; `details["attribution"]` is kept for measured devices split between
concurrent cells, which an estimate never is). No network: the offline tracker only reads
codecarbon's packaged data (a test blocks sockets during a run). codecarbon swallows
exceptions and returns None, so every result is checked; its logging is silenced.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.energy.base import MeterInfo, MeterUnavailable
from bench.energy.composite import Edge, Part, TraceSample
from bench.energy.load import Shares, ShareTracker, Usage, read_usage

LABEL = "estimate:codecarbon-process"
SAMPLE_PERIOD_S = 0.5  # the load model needs no more; window edges read it anyway
IDLE_FRACTION = 0.1  # codecarbon's CPU floor: "minimum power consumption is 10% of TDP"
_HARDWARE: dict[str, Hardware] = {}  # detected once per process: detection costs ~1-2 s


@dataclass(frozen=True)
class Hardware:
    """What the estimates need to know about the machine."""

    tdp_w: float  # all CPU sockets together
    ram_w: float  # all DIMMs together
    memory_bytes: float
    description: str  # e.g. "codecarbon CPU(Intel Xeon > 8W [generic]), RAM 20 W / 31.3 GiB"


def silence_codecarbon() -> None:
    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def detect_hardware() -> Hardware:
    """The machine's TDP, RAM power and RAM size from codecarbon, cached per process."""
    if _HARDWARE:
        return _HARDWARE["hw"]
    try:
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.external.hardware import CPU
        from codecarbon.external.ram import RAM
    except ImportError as e:
        raise MeterUnavailable(
            f"codecarbon is not importable ({e})", "pip install codecarbon"
        ) from e
    silence_codecarbon()  # after the import, which sets up codecarbon's logger
    out_dir = Path(tempfile.gettempdir()) / "metabench-codecarbon"
    out_dir.mkdir(parents=True, exist_ok=True)  # codecarbon fails silently without it
    with warnings.catch_warnings():  # its deprecation notices are not the user's concern
        warnings.simplefilter("ignore")
        # never started or stopped, so it writes nothing into out_dir
        tracker = OfflineEmissionsTracker(
            country_iso_code="USA",
            output_dir=str(out_dir),
            log_level="error",
            tracking_mode="machine",  # the whole machine's TDP and RAM: we attribute
            allow_multiple_runs=True,
        )
    silence_codecarbon()  # the constructor installs its own level
    ready = getattr(tracker, "_ensure_hardware_ready", None)
    if ready is None:
        raise MeterUnavailable(
            "this codecarbon version has no _ensure_hardware_ready "
            "(metabench is written against codecarbon 3.x)"
        )
    ready()
    hardware = getattr(tracker, "_hardware", None) or []
    cpu = next((h for h in hardware if isinstance(h, CPU)), None)
    ram = next((h for h in hardware if isinstance(h, RAM)), None)
    if cpu is None or ram is None:
        raise MeterUnavailable(f"codecarbon detected no CPU/RAM power model (found {hardware})")
    _HARDWARE["hw"] = describe(cpu, ram)
    return _HARDWARE["hw"]


def describe(cpu: Any, ram: Any) -> Hardware:
    tdp = getattr(cpu, "_tdp", None)
    power = ram.total_power()
    if not tdp or tdp <= 0 or power is None or getattr(power, "W", None) is None:
        raise MeterUnavailable(f"codecarbon knows no TDP or RAM power here ({cpu!r}, {power!r})")
    memory = float(ram.machine_memory_GB) * 2**30
    return Hardware(
        float(tdp),
        float(power.W),
        memory,
        f"codecarbon {cpu!r}: TDP {tdp:g} W, RAM {power.W:g} W / {memory / 2**30:.1f} GiB",
    )


def cpu_w(tdp_w: float, process_share: float) -> float:
    """This process's CPU power (W): TDP x (0.1 + 0.9 p), p in [0, 1]."""
    return tdp_w * (IDLE_FRACTION + (1 - IDLE_FRACTION) * process_share)


def machine_cpu_w(tdp_w: float, machine_load: float) -> float:
    """codecarbon's machine mode (W): TDP x (0.1 + 0.9 L^3), all processes' load L."""
    return tdp_w * (IDLE_FRACTION + (1 - IDLE_FRACTION) * machine_load**3)


class CodecarbonSource:
    """Estimated CPU (`cpu:all`) and/or RAM (`dram:all`) energy of this process."""

    name = "codecarbon"
    # The process's CPU share comes from CPU-time counters that tick every 10 ms: twenty
    # ticks per window keep a share's quantization under 5%.
    min_window_s = 0.2

    def __init__(
        self,
        cpu: bool = True,
        ram: bool = True,
        sample_period_s: float = SAMPLE_PERIOD_S,
        *,
        hardware: Hardware | None = None,
        usage: Callable[[], Usage] = read_usage,
    ) -> None:
        self.hw = hardware or detect_hardware()
        self.components = tuple(c for c, on in (("cpu:all", cpu), ("dram:all", ram)) if on)
        self.sample_period_s = sample_period_s
        self.shares = ShareTracker(usage)
        self.total_j = dict.fromkeys(self.components, 0.0)
        self.machine_j = dict.fromkeys(self.components, 0.0)
        self.n_samples = dict.fromkeys(self.components, 0)
        self.last_t_s: float | None = None

    def _powers(self, s: Shares | None, now: Usage) -> dict[str, tuple[float, float]]:
        """{component: (this process's W, the machine-wide model's W)} over one interval;
        an interval shorter than one CPU tick counts as idle."""
        p, load = (0.0, 0.0) if s is None else (s.process, s.machine)
        hw = self.hw
        out = {
            "cpu:all": (cpu_w(hw.tdp_w, p), machine_cpu_w(hw.tdp_w, load)),
            "dram:all": (hw.ram_w * min(1.0, now.rss_bytes / hw.memory_bytes), hw.ram_w),
        }
        return {c: out[c] for c in self.components}

    def sample(self, t_s: float) -> list[TraceSample]:
        """Power since the previous reading, integrated into the totals."""
        s, now = self.shares.next()
        dt = 0.0 if self.last_t_s is None else t_s - self.last_t_s
        self.last_t_s = t_s
        out = []
        for comp, (watts, machine_w) in self._powers(s, now).items():
            self.total_j[comp] += watts * dt
            self.machine_j[comp] += machine_w * dt
            self.n_samples[comp] += 1
            out.append(TraceSample(t_s, comp, "estimate", watts))
        return out

    def edge(self, t_s: float) -> Edge:
        trace = self.sample(t_s)
        return Edge(
            t_s,
            {c: {"estimate": j, "machine": self.machine_j[c]} for c, j in self.total_j.items()},
            dict(self.n_samples),
            {},
            tuple(trace),
        )

    def measure(self, start: Edge, end: Edge) -> Part:
        def diff(c: str, key: str) -> float:
            return end.energy_j[c][key] - start.energy_j[c][key]

        comps = self.components
        return Part(
            {c: diff(c, "estimate") for c in comps},
            dict.fromkeys(comps, LABEL),
            {c: end.samples[c] - start.samples[c] for c in comps},
            (),
            {c: {"machine_j": diff(c, "machine")} for c in comps},
        )

    def info(self) -> MeterInfo:
        return MeterInfo(
            "codecarbon",
            self.components,
            True,
            "estimated",
            LABEL,
            f"model ({self.hw.description}) attributed to this process, power x time",
            self.sample_period_s,
        )

    def close(self) -> None:
        pass


def unavailable_info(e: MeterUnavailable) -> MeterInfo:
    return MeterInfo(
        "codecarbon",
        (),
        False,
        "estimated",
        LABEL,
        "model, power x time",
        SAMPLE_PERIOD_S,
        e.reason,
        e.fix,
    )
