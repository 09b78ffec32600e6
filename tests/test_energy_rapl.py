"""RAPL meter against a fake powercap tree (tests run as root, so unreadability is
simulated at the single read point)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from energy_fakes import FakeClock, powercap_zone, set_uj

from bench.energy import rapl
from bench.energy.base import FAILED, MeterUnavailable
from bench.energy.composite import CompositeMeter, build_meter

MAX_UJ = 1_000_000_000  # wraps at 1 kJ


def zone(path: Path, name: str, energy_uj: int) -> Path:
    return powercap_zone(path, name, energy_uj, MAX_UJ)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """Like sysfs: package-0 with core and dram nested, the sub-zones also linked at the
    top level, and a psys zone that encloses the package."""
    root = tmp_path / "powercap"
    pkg = zone(root / "intel-rapl:0", "package-0", 5_000_000)
    core = zone(pkg / "intel-rapl:0:0", "core", 1_000_000)
    dram = zone(pkg / "intel-rapl:0:1", "dram", 2_000_000)
    (root / "intel-rapl:0:0").symlink_to(core)
    (root / "intel-rapl:0:1").symlink_to(dram)
    psys = zone(root / "intel-rapl:1", "psys", 9_000_000)
    (root / "intel-rapl").mkdir()  # the control type directory, not a zone
    return {"root": root, "pkg": pkg, "core": core, "dram": dram, "psys": psys}


def test_discovers_packages_and_dram_once(tree):
    src = rapl.RaplSource(tree["root"])
    assert src.components == ("cpu:0", "dram:0")  # no core (nested), no psys (encloses)


def test_window_energy_and_wraparound(tree):
    clock = FakeClock(10.0)
    meter = CompositeMeter([rapl.RaplSource(tree["root"])], sample_hz=0, clock=clock)
    w = meter.begin("w")
    for pkg_uj, dram_uj in [(MAX_UJ - 1_000_000, 3_000_000), (MAX_UJ + 4_000_000, 3_500_000)]:
        set_uj(tree["pkg"], pkg_uj)  # the second step wraps past max_energy_range_uj
        set_uj(tree["dram"], dram_uj)
        set_uj(tree["core"], 7_000_000)  # nested: must not show up anywhere
        set_uj(tree["psys"], 990_000_000)
        clock.advance(10.0)  # 99.4 W, then 0.9 W: well inside any bound
        meter.sample()
    m = meter.end(w)
    assert m.joules_by_component == {
        "cpu:0": pytest.approx((MAX_UJ + 4_000_000 - 5_000_000) / 1e6),
        "dram:0": pytest.approx(1.5),
    }
    assert m.source_by_component == {"cpu:0": "rapl", "dram:0": "rapl"}
    watts = [s.watts for s in meter.drain_trace() if s.component == "cpu:0"]
    assert all(x >= 0 for x in watts)  # wraparound never shows as negative power


def test_unreadable_counter_says_why_and_how_to_fix(tree, monkeypatch):
    real = rapl.read_text

    def deny(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "read_text", deny)
    with pytest.raises(MeterUnavailable) as e:
        rapl.RaplSource(tree["root"])
    assert "permission denied" in e.value.reason
    assert "chmod o+r" in e.value.fix and "root" in e.value.fix
    meter = build_meter("cpu", sample_hz=0, rapl_root=str(tree["root"]), estimate=False)
    (info,) = [i for i in meter.info() if i.name == "rapl"]
    assert not info.available and "chmod" in info.fix
    meter.close()


def test_directory_in_place_of_counter_is_a_clear_reason(tree):
    (tree["dram"] / "energy_uj").unlink()
    (tree["dram"] / "energy_uj").mkdir()  # unreadable as a file, even for root
    with pytest.raises(MeterUnavailable, match=r"cannot read .*energy_uj"):
        rapl.RaplSource(tree["root"])


def test_no_powercap_is_unavailable(tmp_path):
    with pytest.raises(MeterUnavailable, match=r"no .*intel-rapl"):
        rapl.RaplSource(tmp_path)


# -- counter resets and jumps (issue 12, item 6) -----------------------------------------


def step(meter, clock, tree, pkg_uj: int, dt: float = 0.05) -> None:
    set_uj(tree["pkg"], pkg_uj)
    clock.advance(dt)
    meter.sample()


def assert_cpu_failed_with_reset(m) -> None:
    assert m.source_by_component["cpu:0"] == FAILED
    assert math.isnan(m.joules_by_component["cpu:0"]) and math.isnan(m.total_j)
    (warning,) = [w for w in m.warnings if w.startswith("cpu:0")]
    assert "reset" in warning and "failed" in warning
    assert m.source_by_component["dram:0"] == "rapl"  # the other zone is unaffected


def test_reset_between_samples_fails_the_window_not_the_run(tree):
    """The package counter restarts (5.5 J -> 0.1 J) between two sampler readings and
    regrows past its start value before the end edge: end - start = +3 J looks plausible,
    but read as a wrap the drop would mean 994.6 J in 50 ms (19.9 kW): a reset."""
    clock = FakeClock(10.0)
    meter = CompositeMeter([rapl.RaplSource(tree["root"])], sample_hz=0, clock=clock)
    w = meter.begin("w")
    step(meter, clock, tree, 5_500_000)
    step(meter, clock, tree, 100_000)  # reset
    step(meter, clock, tree, 8_000_000)  # regrown past the start's 5 J
    m = meter.end(w)
    assert_cpu_failed_with_reset(m)
    assert all(s.watts < 1000 for s in meter.drain_trace())  # no 19.9 kW trace sample
    w = meter.begin("after")
    step(meter, clock, tree, 9_000_000)
    after = meter.end(w)
    assert after.source_by_component["cpu:0"] == "rapl"
    assert after.joules_by_component["cpu:0"] == pytest.approx(1.0)


def test_reset_misread_as_wrap_is_bounded_by_the_zone_limit(tree):
    """A reset over a 2 s interval reads as a wrap of 995 J (497 W): under the 1000 W
    default bound, but above twice the zone's stated limit (PL2 = 100 W)."""
    (tree["pkg"] / "constraint_0_max_power_uw").write_text("65000000\n")
    (tree["pkg"] / "constraint_1_power_limit_uw").write_text("100000000\n")
    assert rapl.limit_w(tree["pkg"]) == 100.0 and rapl.limit_w(tree["dram"]) == 500.0
    clock = FakeClock(10.0)
    meter = CompositeMeter([rapl.RaplSource(tree["root"])], sample_hz=0, clock=clock)
    w = meter.begin("w")
    step(meter, clock, tree, 100_000, dt=2.0)
    assert_cpu_failed_with_reset(meter.end(w))


def test_forward_jump_is_not_energy(tree):
    clock = FakeClock(10.0)
    meter = CompositeMeter([rapl.RaplSource(tree["root"])], sample_hz=0, clock=clock)
    w = meter.begin("w")
    step(meter, clock, tree, 605_000_000)  # +600 J in 50 ms: 12 kW
    m = meter.end(w)
    assert_cpu_failed_with_reset(m)
    assert "limit" in m.warnings[0]
