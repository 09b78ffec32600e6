"""Which Linux powercap zones hold RAPL energy, and which of them to add up.

Linux exposes RAPL through the powercap framework (kernel docs: Documentation/power/
powercap/powercap.rst; `/sys/class/powercap` holds one entry per zone, sub-zones included):

- control types `intel-rapl` (the MSR interface, also used for AMD since Linux 5.8),
  `intel-rapl-mmio` (the MMIO interface of recent Intel client parts, which *mirrors* the
  same package domain) and, on some kernels, `amd-rapl`;
- top-level zones `<type>:<n>` named `package-<k>`, `package-<k>-die-<d>` (multi-die
  CPUs: one zone per die) or `psys` (the platform domain, which encloses the packages);
- sub-zones `<type>:<n>:<m>` named `core`, `uncore` (parts of their package's figure)
  and `dram` (memory, outside the package figure).

Counted: every package, its dies summed once (`cpu:<k>`), and each package's DRAM
(`dram:<k>`, summed over dies too). Never counted: `core`/`uncore` (inside the package),
`psys` (encloses the packages), unknown sub-zones (assumed nested), a zone that another
control type already provides under the same name (the MMIO mirror of an MSR zone), and a
die zone whose counter reads the same as another die's of its package (CPUs that mirror
the socket counter on every die; the same check codecarbon makes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Preferred control type first: a zone name offered by several types is counted once, from
# the first of these that has it.
CONTROL_TYPES = ("intel-rapl", "amd-rapl", "intel-rapl-mmio")
ZONE_RE = re.compile(r"(?P<type>[a-z][a-z0-9-]*rapl[a-z0-9-]*):(?P<index>\d+(?::\d+)*)")
PACKAGE_RE = re.compile(r"package-(?P<pkg>\d+)(?:-die-(?P<die>\d+))?")
NESTED_IN_PACKAGE = {"core", "uncore"}


@dataclass(frozen=True)
class ZoneInfo:
    """One powercap zone: its sysfs entry, control type, index path and name."""

    path: Path
    control: str
    index: tuple[int, ...]
    name: str

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.name})"


@dataclass
class Layout:
    """The zones to count per component, and what was skipped and why."""

    counted: dict[str, list[ZoneInfo]] = field(default_factory=dict)  # component -> zones
    skipped: list[str] = field(default_factory=list)  # '<zone label>: <why>'
    found: list[str] = field(default_factory=list)  # every RAPL zone's label

    def describe(self) -> str:
        counted = "; ".join(
            f"{c} = {' + '.join(z.label for z in zs)}" for c, zs in self.counted.items()
        )
        return f"counted {counted or 'nothing'}" + (
            f"; skipped {'; '.join(self.skipped)}" if self.skipped else ""
        )


def scan(root: Path, read_name: Callable[[Path], str]) -> list[ZoneInfo]:
    """Every RAPL zone under `root` (top level and sub-zones, linked or nested), each once,
    sorted by control type preference and index."""
    seen: dict[str, ZoneInfo] = {}

    def visit(directory: Path) -> list[Path]:
        found = []
        for entry in sorted(directory.iterdir()):
            m = ZONE_RE.fullmatch(entry.name)
            if m is None or entry.name in seen or not entry.is_dir():
                continue
            index = tuple(int(i) for i in m.group("index").split(":"))
            seen[entry.name] = ZoneInfo(entry, m.group("type"), index, read_name(entry))
            found.append(entry)
        return found

    # Never a recursive glob: sysfs links back up (device/, subsystem/) and would cycle.
    for top in visit(root):
        visit(top)  # sub-zones nested inside their zone, where the root does not list them

    def order(z: ZoneInfo) -> tuple:
        rank = CONTROL_TYPES.index(z.control) if z.control in CONTROL_TYPES else len(CONTROL_TYPES)
        return (rank, z.control, z.index)

    return sorted(seen.values(), key=order)


def plan(zones: list[ZoneInfo], read_uj: Callable[[Path], int]) -> Layout:
    """Which zones make up each component (see the module docstring for the rules)."""
    layout = Layout(found=[z.label for z in zones])
    tops = {(z.control, z.index[0]): z for z in zones if len(z.index) == 1}
    owners: dict[tuple[int, int | None], ZoneInfo] = {}  # (package, die) -> counted zone
    for z in zones:
        if len(z.index) != 1:
            continue
        m = PACKAGE_RE.fullmatch(z.name)
        if z.name == "psys":
            layout.skipped.append(f"{z.label}: the platform domain, encloses the packages")
        elif m is None:
            layout.skipped.append(f"{z.label}: not a package zone")
        else:
            key = (int(m.group("pkg")), None if m.group("die") is None else int(m.group("die")))
            if key in owners:
                layout.skipped.append(f"{z.label}: mirror of {owners[key].label}")
                continue
            owners[key] = z
            layout.counted.setdefault(f"cpu:{key[0]}", []).append(z)
    for z in zones:
        if len(z.index) < 2:
            continue
        parent = tops.get((z.control, z.index[0]))
        if parent is None or owners.get(package_key(parent)) is not parent:
            continue  # a sub-zone of a skipped zone (psys, a mirror): skipped with it
        if z.name == "dram":
            layout.counted.setdefault(f"dram:{package_key(parent)[0]}", []).append(z)
        else:
            why = "inside" if z.name in NESTED_IN_PACKAGE else "unknown sub-zone, assumed inside"
            layout.skipped.append(f"{z.label}: {why} {parent.name}")
    drop_mirrored_dies(layout, read_uj)
    return layout


def package_key(z: ZoneInfo) -> tuple[int, int | None]:
    m = PACKAGE_RE.fullmatch(z.name)
    if m is None:
        return (-1, None)
    return (int(m.group("pkg")), None if m.group("die") is None else int(m.group("die")))


def drop_mirrored_dies(layout: Layout, read_uj: Callable[[Path], int]) -> None:
    """Within one component, a zone whose counter reads the same as an earlier zone's is a
    mirror of it. Read a, b, a again: b is a mirror of a when a1 <= b <= a2 (a monotone
    counter read in between); two independent counters land there by chance with a
    probability of about (a2 - a1) / (their whole range)."""
    for comp, zs in layout.counted.items():
        kept: list[ZoneInfo] = []
        for z in zs:
            mirror = next((k for k in kept if is_mirror(k, z, read_uj)), None)
            if mirror is None:
                kept.append(z)
            else:
                layout.skipped.append(f"{z.label}: reads the same counter as {mirror.label}")
        layout.counted[comp] = kept


def is_mirror(a: ZoneInfo, b: ZoneInfo, read_uj: Callable[[Path], int]) -> bool:
    a1 = read_uj(a.path / "energy_uj")
    value = read_uj(b.path / "energy_uj")
    a2 = read_uj(a.path / "energy_uj")
    return value > 0 and a1 <= value <= a2
