"""CPU package and DRAM energy from RAPL through Linux powercap.

Layout (`/sys/class/powercap`): top-level zones `intel-rapl:<n>` (also on AMD), each with
`name` (`package-<k>` or `psys`), `energy_uj` and `max_energy_range_uj`, and sub-zones
`intel-rapl:<n>:<m>` nested inside (`core`, `uncore`, `dram`). Packages become
`cpu:<k>`, their `dram` sub-zones `dram:<k>`. `core` and `uncore` are parts of the package
figure and `psys` encloses the packages, so none of those is added (no double counting).
`energy_uj` wraps at `max_energy_range_uj`: every reading (the sampler's and the window
edges') adds its wrap-corrected delta to an accumulator, so a window may span any number
of wraps as long as the sampler reads more often than once per wrap (minutes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.energy.base import MeterError, MeterInfo, MeterUnavailable
from bench.energy.composite import Edge, Part, TraceSample

POWERCAP_ROOT = "/sys/class/powercap"
UPDATE_PERIOD_S = 0.001  # RAPL counters update about every millisecond
PERMISSION_FIX = (
    "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*/intel-rapl:*/energy_uj (until reboot), "
    "or run metabench as root"
)
NESTED_IN_PACKAGE = {"core", "uncore"}  # counted inside the package figure already


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


@dataclass
class Domain:
    """One counted zone and its accumulator (mutated only under the composite's lock)."""

    component: str  # cpu:<k> | dram:<k>
    path: Path
    max_range_uj: int
    last_uj: int = 0
    last_t_s: float | None = None
    total_j: float = 0.0
    n_samples: int = 0

    def read(self, t_s: float) -> TraceSample | None:
        """Add the wrap-corrected delta since the last reading; the average power over that
        interval (W) is the trace sample."""
        raw = read_int(self.path / "energy_uj")
        delta_uj = raw - self.last_uj
        if delta_uj < 0:  # wrapped around at max_energy_range_uj
            delta_uj += self.max_range_uj
        first = self.last_t_s is None
        self.last_uj, self.n_samples = raw, self.n_samples + 1
        if first:
            self.last_t_s = t_s
            return None
        self.total_j += delta_uj / 1e6
        dt, self.last_t_s = t_s - self.last_t_s, t_s
        return TraceSample(t_s, self.component, "average", delta_uj / 1e6 / dt) if dt > 0 else None


def zone_name(zone: Path) -> str:
    return read_text(zone / "name").strip()


def discover(root: Path) -> list[Domain]:
    """The counted domains under `root`: packages and their dram sub-zones."""
    domains = []
    zones = sorted(p for p in root.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
    for zone in zones:
        name = zone_name(zone)
        m = re.fullmatch(r"package-(\d+)", name)
        if m is None:
            continue  # psys (platform) encloses the packages: adding it would count twice
        pkg = m.group(1)
        domains.append(make_domain(f"cpu:{pkg}", zone))
        for sub in sorted(zone.glob(f"{zone.name}:*")):
            sub_name = zone_name(sub)
            if sub_name == "dram":
                domains.append(make_domain(f"dram:{pkg}", sub))
            elif sub_name not in NESTED_IN_PACKAGE:
                continue  # unknown sub-zone: assume nested too, never add it
    return domains


def make_domain(component: str, zone: Path) -> Domain:
    return Domain(component, zone, read_int(zone / "max_energy_range_uj"))


class RaplSource:
    """RAPL energy of every CPU package and its DRAM."""

    name = "rapl"

    def __init__(self, root: str | Path = POWERCAP_ROOT, sample_period_s: float = 0.0) -> None:
        self.root = Path(root)
        if not any(self.root.glob("intel-rapl:*")):
            raise MeterUnavailable(
                f"no {self.root}/intel-rapl:* zones (not an Intel/AMD host with the "
                "intel_rapl driver, or a VM/container without powercap)",
                "run on bare metal with the intel_rapl_common module loaded",
            )
        self.domains = discover(self.root)
        if not self.domains:
            raise MeterUnavailable(f"no package-* zone under {self.root}")
        for d in self.domains:
            d.read(0.0)  # baseline reading; also checks that the counter is readable
            d.last_t_s = None
        self.components = tuple(d.component for d in self.domains)
        self.sample_period_s = sample_period_s

    def sample(self, t_s: float) -> list[TraceSample]:
        return [s for d in self.domains if (s := self._read(d, t_s)) is not None]

    @staticmethod
    def _read(d: Domain, t_s: float) -> TraceSample | None:
        try:
            return d.read(t_s)
        except MeterUnavailable as e:  # readable at start, not now: a failure mid-run
            raise MeterError(str(e)) from e

    def edge(self, t_s: float) -> Edge:
        trace = self.sample(t_s)
        return Edge(
            t_s,
            {d.component: {"counter": d.total_j} for d in self.domains},
            {d.component: d.n_samples for d in self.domains},
            {},
            tuple(trace),
        )

    def measure(self, start: Edge, end: Edge) -> Part:
        joules = {
            c: end.energy_j[c]["counter"] - start.energy_j[c]["counter"] for c in self.components
        }
        samples = {c: end.samples[c] - start.samples[c] for c in self.components}
        return Part(joules, dict.fromkeys(self.components, "rapl"), samples)

    def info(self) -> MeterInfo:
        return MeterInfo(
            "rapl",
            self.components,
            True,
            "measured",
            "rapl",
            "energy unit of the CPU (~15-61 uJ)",
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
