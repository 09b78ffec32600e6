"""CPU package and DRAM energy from RAPL through Linux powercap.

Zones: `bench/energy/powercap.py` decides which zones make up each component (`cpu:<k>`:
package k, its dies summed once; `dram:<k>`: its DRAM), whatever the layout (MSR or MMIO
control type, multi-die, psys); a layout with no package says which zones it found.

Counters: each zone's `energy_uj` is a `CounterTrack` (bench/energy/counter.py) that wraps
at the zone's `max_energy_range_uj`. Every reading (the sampler's, at its period, and the
window edges') adds its difference, so a window may span any number of wraps as long as
the sampler reads more often than once per wrap (minutes). A difference that goes back
beyond the declared wrap, or implies a mean power above twice the zone's power limit, is a
reset or a corrupt reading: RAPL has no second reading of the zone, so the windows that
span it get a `failed` figure (NaN) and a warning naming the reset.

Attribution (`attribute=True`, the meter of a process that shares the package with other
cells, e.g. a Dask worker): the hardware cannot split a package between processes, so each
interval's energy is split pro rata by CPU time: this process gets the interval's energy x
its share of the CPU time anything used in that interval (bench/energy/load.py). The
figure is then labelled attributed in `details` (`details["attribution"][c] =
"process-cpu-time"`, the whole measured figure in `details[c]["measured_j"]`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.energy.base import FAILED, MeterError, MeterInfo, MeterUnavailable
from bench.energy.composite import Edge, Part, TraceSample
from bench.energy.counter import CounterTrack
from bench.energy.load import ShareTracker, Usage, read_usage
from bench.energy.powercap import Layout, ZoneInfo, plan, scan

POWERCAP_ROOT = "/sys/class/powercap"
UPDATE_PERIOD_S = 0.001  # RAPL counters update about every millisecond
# A zone that states no power limit: above the TDP of any current server package (AMD
# EPYC 9965 and Intel Xeon 6980P: 500 W), so twice this is no bound on real power.
DEFAULT_LIMIT_W = 500.0
# Intervals shorter than this count as this long in the jump test: the counter updates in
# steps of ~1 ms of energy, sometimes late, so two readings microseconds apart may see a
# step of a few ms; a reset read as a wrap still implies kilowatts or more.
JUMP_MIN_PERIOD_S = 0.05
ATTRIBUTION = "process-cpu-time"
PERMISSION_FIX = (
    "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*/intel-rapl:*/energy_uj (until reboot), "
    "or run metabench as root"
)


def read_text(path: Path) -> str:
    """One sysfs file's text (the single read point; tests replace it)."""
    return path.read_text()


def read_int(path: Path) -> int:
    try:
        return int(read_text(path).strip())
    except PermissionError as e:
        raise MeterUnavailable(
            f"cannot read {path}: permission denied (since Linux 5.10, CVE-2020-8694, RAPL "
            "energy counters are readable by root only)",
            PERMISSION_FIX,
        ) from e
    except (OSError, ValueError) as e:
        raise MeterUnavailable(f"cannot read {path}: {e}") from e


def zone_name(zone: Path) -> str:
    return read_text(zone / "name").strip()


def limit_w(zone: Path) -> float:
    """The zone's largest stated power (W): its constraints' max_power_uw and
    power_limit_uw (PL1, PL2, peak); DEFAULT_LIMIT_W where it states none."""
    values = []
    for f in zone.glob("constraint_*_*_uw"):
        if f.name.endswith(("_max_power_uw", "_power_limit_uw")):
            try:
                values.append(int(read_text(f).strip()) / 1e6)
            except (OSError, ValueError):
                continue  # constraints may be unreadable or absent: the default bound holds
    return max((v for v in values if v > 0), default=DEFAULT_LIMIT_W)


def zone_counter(z: ZoneInfo) -> CounterTrack:
    return CounterTrack(
        z.label, limit_w(z.path), read_int(z.path / "max_energy_range_uj") / 1e6, JUMP_MIN_PERIOD_S
    )


@dataclass
class Domain:
    """One component (a package with its dies, or its DRAM) and its running totals
    (mutated only under the composite's lock)."""

    component: str  # cpu:<k> | dram:<k>
    paths: list[Path]
    counters: list[CounterTrack]
    attributed_j: float = 0.0
    n_samples: int = 0
    last_t_s: float | None = None

    @property
    def total_j(self) -> float:
        return sum(c.total_j for c in self.counters)

    @property
    def faults(self) -> tuple[int, str]:
        return sum(c.faults for c in self.counters), next(
            (c.fault for c in self.counters if c.fault), ""
        )

    def read(self, t_s: float, share: float) -> TraceSample | None:
        """Read every zone; add this process's `share` of the interval's energy to the
        attributed total. The interval's mean power (W) is the trace sample."""
        deltas = [
            c.update(read_int(p / "energy_uj") / 1e6, t_s)
            for p, c in zip(self.paths, self.counters, strict=True)
        ]
        self.n_samples += 1
        prev_t, self.last_t_s = self.last_t_s, t_s
        if any(d is None for d in deltas) or prev_t is None or t_s <= prev_t:
            return None  # the first reading, or a fault (the counter track says which)
        joules = sum(deltas)
        self.attributed_j += joules * share
        return TraceSample(t_s, self.component, "average", joules / (t_s - prev_t))


def discover(root: Path) -> tuple[list[Domain], Layout]:
    """The counted domains under `root` and the layout that chose them."""
    layout = plan(scan(root, zone_name), read_int)
    domains = [
        Domain(comp, [z.path for z in zones], [zone_counter(z) for z in zones])
        for comp, zones in layout.counted.items()
    ]
    return domains, layout


class RaplSource:
    """RAPL energy of every CPU package and its DRAM; split by CPU time when `attribute`."""

    name = "rapl"
    # The counters update about every millisecond: ten updates per window.
    # The counters update about every millisecond: ten updates per window. Split by CPU
    # time (`attribute`), a window needs the CPU-time counters' twenty 10 ms ticks.
    COUNTER_WINDOW_S, ATTRIBUTED_WINDOW_S = 0.01, 0.2
    min_window_s = COUNTER_WINDOW_S

    def __init__(
        self,
        root: str | Path = POWERCAP_ROOT,
        sample_period_s: float = 0.0,
        *,
        attribute: bool = False,
        usage: Callable[[], Usage] = read_usage,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir() or not any(self.root.glob("*rapl*:*")):
            raise MeterUnavailable(
                f"no {self.root}/intel-rapl:* zones (not an Intel/AMD host with the "
                "intel_rapl driver, or a VM/container without powercap)",
                "run on bare metal with the intel_rapl_common module loaded",
            )
        self.domains, self.layout = discover(self.root)
        if not any(d.component.startswith("cpu:") for d in self.domains):
            raise MeterUnavailable(
                f"no RAPL package zone (package-<k> or package-<k>-die-<d>) under "
                f"{self.root}; zones found: {', '.join(self.layout.found) or 'none'}",
                "report this layout to metabench with `ls /sys/class/powercap` and the zones' "
                "`name` files",
            )
        for d in self.domains:  # every counted counter must be readable now
            for p in d.paths:
                read_int(p / "energy_uj")
        self.components = tuple(d.component for d in self.domains)
        self.sample_period_s = sample_period_s
        self.attribute = attribute
        self.min_window_s = self.ATTRIBUTED_WINDOW_S if attribute else self.COUNTER_WINDOW_S
        self.shares = ShareTracker(usage) if attribute else None

    def sample(self, t_s: float) -> list[TraceSample]:
        share = 1.0
        if self.shares is not None:
            s, _ = self.shares.next()
            share = 0.0 if s is None else s.of_busy
        try:
            return [x for d in self.domains if (x := d.read(t_s, share)) is not None]
        except MeterUnavailable as e:  # readable at start, not now: a failure mid-run
            raise MeterError(str(e)) from e

    def edge(self, t_s: float) -> Edge:
        trace = self.sample(t_s)
        return Edge(
            t_s,
            {
                d.component: {"counter": d.total_j, "attributed": d.attributed_j}
                for d in self.domains
            },
            {d.component: d.n_samples for d in self.domains},
            {},
            tuple(trace),
            {d.component: d.faults for d in self.domains},
        )

    def measure(self, start: Edge, end: Edge) -> Part:
        joules, sources, warnings, details, attribution = {}, {}, [], {}, {}
        for c in self.components:
            measured = end.energy_j[c]["counter"] - start.energy_j[c]["counter"]
            (n0, _), (n1, fault) = start.faults[c], end.faults[c]
            if n1 > n0:
                joules[c], sources[c] = math.nan, FAILED
                warnings.append(
                    f"{c}: {fault}; RAPL has no other reading of this zone, so the "
                    "window's figure is failed"
                )
            elif self.attribute:
                joules[c] = end.energy_j[c]["attributed"] - start.energy_j[c]["attributed"]
                sources[c] = "rapl"
                details[c] = {"measured_j": measured, "attribution": ATTRIBUTION}
                attribution[c] = ATTRIBUTION
            else:
                joules[c], sources[c] = measured, "rapl"
        if attribution:
            details["attribution"] = attribution
        samples = {c: end.samples[c] - start.samples[c] for c in self.components}
        return Part(joules, sources, samples, tuple(warnings), details)

    def info(self) -> MeterInfo:
        how = f", attributed by {ATTRIBUTION}" if self.attribute else ""
        return MeterInfo(
            "rapl",
            self.components,
            True,
            "measured",
            "rapl",
            f"energy unit of the CPU (~15-61 uJ){how}",
            UPDATE_PERIOD_S,
        )

    def close(self) -> None:
        pass


def unavailable_info(e: MeterUnavailable) -> MeterInfo:
    return MeterInfo(
        "rapl",
        (),
        False,
        "measured",
        "rapl",
        "energy unit of the CPU (~15-61 uJ)",
        UPDATE_PERIOD_S,
        e.reason,
        e.fix,
    )
