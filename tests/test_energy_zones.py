"""RAPL zone layouts beyond package-N (issue 12, item 9), as fake powercap trees: multi-die
packages, dies that mirror the socket counter, MMIO mirrors, AMD, psys, and layouts that are
not recognised."""

from __future__ import annotations

from pathlib import Path

import pytest
from energy_fakes import FakeClock, powercap_zone, set_uj

from bench.energy import rapl
from bench.energy.base import MeterUnavailable
from bench.energy.composite import CompositeMeter, build_meter


def zones(root: Path, spec: dict[str, tuple[str, int]]) -> dict[str, Path]:
    """{'intel-rapl:0': ('package-0', uJ), 'intel-rapl:0:0': ('dram', uJ), ...}: sub-zones
    nested in their zone and also linked at the root, as /sys/class/powercap lists them."""
    out = {}
    for entry, (name, uj) in sorted(spec.items(), key=lambda kv: kv[0].count(":")):
        parts = entry.split(":")
        if len(parts) == 2:
            out[entry] = powercap_zone(root / entry, name, uj)
        else:
            out[entry] = powercap_zone(out[":".join(parts[:2])] / entry, name, uj)
            (root / entry).symlink_to(out[entry])
    return out


def window_j(root: Path, paths: dict[str, Path], add_uj: dict[str, int]) -> dict[str, float]:
    """Joules per component over one 10 s window in which each zone's counter grows by
    add_uj[zone] (mirrors grow with their original)."""
    clock = FakeClock(5.0)
    meter = CompositeMeter([rapl.RaplSource(root)], sample_hz=0, clock=clock)
    start = {z: int((p / "energy_uj").read_text()) for z, p in paths.items()}
    w = meter.begin("w")
    for z, add in add_uj.items():
        set_uj(paths[z], start[z] + add)
    clock.advance(10.0)
    return dict(meter.end(w).joules_by_component)


def test_multi_die_packages_sum_their_dies_once(tmp_path):
    root = tmp_path / "powercap"
    paths = zones(
        root,
        {
            "intel-rapl:0": ("package-0-die-0", 1_000_000),
            "intel-rapl:0:0": ("dram", 2_000_000),
            "intel-rapl:0:1": ("core", 3_000_000),
            "intel-rapl:1": ("package-0-die-1", 4_000_000),
            "intel-rapl:1:0": ("dram", 5_000_000),
            "intel-rapl:2": ("package-1-die-0", 6_000_000),
            "intel-rapl:3": ("package-1-die-1", 7_000_000),
            "intel-rapl:4": ("psys", 8_000_000),
        },
    )
    src = rapl.RaplSource(root)
    assert src.components == ("cpu:0", "cpu:1", "dram:0")
    assert "intel-rapl:4 (psys): the platform domain" in src.layout.describe()
    add = {
        "intel-rapl:0": 100_000_000,
        "intel-rapl:1": 150_000_000,
        "intel-rapl:2": 200_000_000,
        "intel-rapl:3": 50_000_000,
        "intel-rapl:0:0": 10_000_000,
        "intel-rapl:1:0": 20_000_000,
        "intel-rapl:0:1": 90_000_000,  # core: inside die 0's figure
        "intel-rapl:4": 900_000_000,  # psys: encloses everything
    }
    assert window_j(root, paths, add) == {
        "cpu:0": pytest.approx(250.0),
        "cpu:1": pytest.approx(250.0),
        "dram:0": pytest.approx(30.0),
    }


def test_dies_that_mirror_the_socket_counter_are_not_doubled(tmp_path):
    root = tmp_path / "powercap"
    paths = zones(
        root,
        {
            "intel-rapl:0": ("package-0-die-0", 7_654_321),
            "intel-rapl:1": ("package-0-die-1", 7_654_321),  # the same socket-wide counter
        },
    )
    src = rapl.RaplSource(root)
    assert src.components == ("cpu:0",) and len(src.domains[0].paths) == 1
    assert "reads the same counter as intel-rapl:0 (package-0-die-0)" in src.layout.describe()
    add = {"intel-rapl:0": 100_000_000, "intel-rapl:1": 100_000_000}
    assert window_j(root, paths, add) == {"cpu:0": pytest.approx(100.0)}


def test_mmio_mirror_of_the_msr_package_is_not_doubled(tmp_path):
    root = tmp_path / "powercap"
    paths = zones(
        root,
        {
            "intel-rapl:0": ("package-0", 1_000_000),
            "intel-rapl:0:0": ("core", 500_000),
            "intel-rapl:1": ("psys", 9_000_000),
            "intel-rapl-mmio:0": ("package-0", 1_000_123),  # another register, same domain
        },
    )
    (root / "intel-rapl").mkdir()  # control type directories are not zones
    (root / "intel-rapl-mmio").mkdir()
    src = rapl.RaplSource(root)
    assert src.components == ("cpu:0",)
    assert "intel-rapl-mmio:0 (package-0): mirror of intel-rapl:0 (package-0)" in (
        src.layout.describe()
    )
    add = {"intel-rapl:0": 40_000_000, "intel-rapl-mmio:0": 40_000_000}
    assert window_j(root, paths, add) == {"cpu:0": pytest.approx(40.0)}


def test_mmio_only_and_amd_rapl_layouts_are_counted(tmp_path):
    mmio = zones(tmp_path / "a", {"intel-rapl-mmio:0": ("package-0", 1_000_000)})
    assert rapl.RaplSource(tmp_path / "a").components == ("cpu:0",)
    amd = zones(
        tmp_path / "b",
        {"amd-rapl:0": ("package-0", 1_000_000), "amd-rapl:0:0": ("core", 10)},
    )
    assert rapl.RaplSource(tmp_path / "b").components == ("cpu:0",)
    assert window_j(tmp_path / "a", mmio, {"intel-rapl-mmio:0": 5_000_000}) == {
        "cpu:0": pytest.approx(5.0)
    }
    assert window_j(tmp_path / "b", amd, {"amd-rapl:0": 7_000_000}) == {"cpu:0": pytest.approx(7.0)}


def test_unrecognised_layout_names_the_zones_found(tmp_path):
    root = tmp_path / "powercap"
    zones(root, {"intel-rapl:0": ("psys", 1_000_000), "intel-rapl:1": ("gpu-thing", 2_000)})
    with pytest.raises(MeterUnavailable) as e:
        rapl.RaplSource(root)
    assert "no RAPL package zone" in e.value.reason
    assert "zones found: intel-rapl:0 (psys), intel-rapl:1 (gpu-thing)" in e.value.reason
    meter = build_meter("cpu", sample_hz=0, rapl_root=str(root), estimate=False)
    (info,) = [i for i in meter.info() if i.name == "rapl"]
    assert not info.available and "intel-rapl:1 (gpu-thing)" in info.reason
    meter.close()
