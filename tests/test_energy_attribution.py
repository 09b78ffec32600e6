"""Estimates attributed to this process, not to whatever else the machine runs (issue 12,
item 7), with injected CPU counters (tests/energy_fakes.FakeUsage): no real timing."""

from __future__ import annotations

import math

import pytest
from energy_fakes import FakeClock, FakeUsage

from bench.energy.composite import CompositeMeter
from bench.energy.estimate import LABEL, CodecarbonSource, Hardware
from bench.energy.idle import measure_idle, net_by_component
from bench.energy.load import Usage, load_details, shares

TDP_W, RAM_W, MEMORY = 8.0, 20.0, 32 * 2**30  # the 8 W TDP; 20 W of DIMMs, 32 GiB
TICK_S = 0.5


def estimate_meter(usage: FakeUsage, clock: FakeClock) -> CompositeMeter:
    hw = Hardware(TDP_W, RAM_W, MEMORY, "fake: 8 W TDP, 20 W RAM")
    source = CodecarbonSource(hardware=hw, usage=usage)
    return CompositeMeter([source], sample_hz=0, clock=clock, usage=usage)


def sleeper(meter: CompositeMeter, clock: FakeClock):
    def sleep(seconds: float) -> None:
        for _ in range(round(seconds / TICK_S)):
            clock.advance(TICK_S)
            meter.sample()

    return sleep


def window(meter, clock, seconds: float, name: str = "w"):
    with meter.window(name) as w:
        sleeper(meter, clock)(seconds)
    return w.measurement


def test_sleeping_process_is_not_charged_for_foreign_load():
    """The issue's case: our process sleeps 4 s while another job loads the whole machine.
    The machine-wide model charges 32 J (the full 8 W TDP); attributed, the window costs the
    idle floor, 0.1 x 8 W x 4 s = 3.2 J, and says how much load was foreign."""
    clock = FakeClock(100.0)
    usage = FakeUsage(clock, process=0.0, foreign=1.0)
    m = window(estimate_meter(usage, clock), clock, 4.0)
    assert m.joules_by_component["cpu:all"] == pytest.approx(3.2)
    assert m.details["cpu:all"]["machine_j"] == pytest.approx(32.0)
    assert m.source_by_component == {"cpu:all": LABEL, "dram:all": LABEL}
    assert LABEL == "estimate:codecarbon-process"
    assert m.details["foreign_cpu_load"] == pytest.approx(1.0)
    assert m.details["process_cpu_share"] == pytest.approx(0.0)
    assert "attribution" not in m.details  # the label says it: no device split between cells
    # DRAM: the 2 GiB this process holds of 32 GiB, x 20 W, x 4 s
    assert m.joules_by_component["dram:all"] == pytest.approx(20.0 * 2 / 32 * 4)


def test_own_work_costs_the_same_with_or_without_foreign_load():
    """Half the machine's capacity is ours: 8 W x (0.1 + 0.9 x 0.5) x 4 s = 17.6 J, whether
    the other half idles or runs another job."""
    figures = []
    for foreign in (0.0, 0.5):
        clock = FakeClock(0.0)
        usage = FakeUsage(clock, process=0.5, foreign=foreign)
        m = window(estimate_meter(usage, clock), clock, 4.0)
        assert m.details["process_cpu_share"] == pytest.approx(0.5)
        assert m.details["foreign_cpu_load"] == pytest.approx(foreign)
        figures.append(m.joules_by_component["cpu:all"])
    assert figures == [pytest.approx(17.6), pytest.approx(17.6)]


def test_idle_baseline_uses_the_same_attribution_and_net_is_not_negative():
    """Idle measured while a foreign job loads the machine is this process's idle floor
    (0.8 W), not the machine's 8 W, so the sleeping window's net is ~0 J, not -28.8 J."""
    clock = FakeClock(0.0)
    usage = FakeUsage(clock, process=0.0, foreign=1.0)
    meter = estimate_meter(usage, clock)
    idle, _ = measure_idle(meter, 2.0, sleep=sleeper(meter, clock))
    by = {i.component: i for i in idle}
    assert by["cpu:all"].watts == pytest.approx(0.8)
    assert by["cpu:all"].source == LABEL
    assert by["cpu:all"].watts_std == pytest.approx(0.0, abs=1e-9)  # a constant model: no noise
    usage.foreign = 0.0  # the foreign job ends: the baseline would have been the same
    m = window(meter, clock, 4.0)
    net = net_by_component(m, {c: i.watts for c, i in by.items()})
    assert net["cpu:all"] == pytest.approx(0.0, abs=1e-9)
    assert net["dram:all"] == pytest.approx(0.0, abs=1e-9)


def test_idle_noise_is_the_spread_of_the_slices():
    """Idle power alternating between two levels: the baseline is their mean and its noise
    the std of the slices' mean powers."""
    clock = FakeClock(0.0)
    usage = FakeUsage(clock)
    meter = estimate_meter(usage, clock)

    def sleep(seconds: float) -> None:  # one 0.5 s slice at a time: p = 0 or 0.5
        usage.process = 0.5 if usage.process == 0.0 else 0.0
        sleeper(meter, clock)(seconds)

    idle, _ = measure_idle(meter, 2.0, sleep=sleep)  # 4 slices of 0.5 s
    cpu = next(i for i in idle if i.component == "cpu:all")
    low, high = 0.8, 8.0 * (0.1 + 0.9 * 0.5)
    assert cpu.watts == pytest.approx((low + high) / 2)
    assert cpu.watts_std == pytest.approx(math.sqrt(4 / 3) * (high - low) / 2)


def test_shares_clamp_and_unknown():
    a = Usage(1.0, 10.0, 100.0, 0.0)
    assert shares(a, a) is None  # no tick passed
    s = shares(a, Usage(2.0, 10.5, 102.0, 0.0))  # busy counter read before our own: clamp
    assert (s.process, s.machine, s.foreign) == (0.5, 0.5, 0.0)
    assert load_details(None, a) == {"process_cpu_share": None, "foreign_cpu_load": None}


# -- two worker processes on one CPU package (issue 12, item 8) ---------------------------


def test_two_workers_sharing_a_package_count_dynamic_cpu_and_dram_once():
    """dask-local with 2 workers on a 2-CPU package, each using one CPU for 4 s. Each is
    charged its own share; over both, the CPU energy above idle is the package's dynamic
    energy once (0.9 x 8 W x 4 s) and DRAM is each worker's resident share of the 20 W,
    not 20 W each."""
    clock = FakeClock(0.0)
    workers = [FakeUsage(clock, process=0.5, foreign=0.5) for _ in range(2)]
    meters = [estimate_meter(u, clock) for u in workers]
    idle_w = {}
    for i, meter in enumerate(meters):
        for u in workers:  # both idle while each measures its baseline
            u.process = u.foreign = 0.0
        idle, _ = measure_idle(meter, 1.0, sleep=sleeper(meter, clock))
        idle_w[i] = {x.component: x.watts for x in idle}
    for u in workers:
        u.process, u.foreign = 0.5, 0.5
    windows = [meter.begin("cell") for meter in meters]
    for _ in range(8):  # 4 s, both samplers ticking
        clock.advance(TICK_S)
        for meter in meters:
            meter.sample()
    ms = [meter.end(w) for meter, w in zip(meters, windows, strict=True)]
    nets = [net_by_component(m, idle_w[i]) for i, m in enumerate(ms)]
    assert [m.joules_by_component["cpu:all"] for m in ms] == [pytest.approx(17.6)] * 2
    assert sum(n["cpu:all"] for n in nets) == pytest.approx(0.9 * 8.0 * 4.0)
    assert sum(m.details["cpu:all"]["machine_j"] for m in ms) == pytest.approx(64.0)  # before
    dram = [m.joules_by_component["dram:all"] for m in ms]
    assert sum(dram) == pytest.approx(2 * 20.0 * (2 / 32) * 4.0)
    assert sum(dram) < 20.0 * 4.0  # never more than the DIMMs draw
    assert all(m.details["foreign_cpu_load"] == pytest.approx(0.5) for m in ms)


@pytest.fixture
def package(tmp_path):
    from energy_fakes import powercap_zone

    root = tmp_path / "powercap"
    pkg = powercap_zone(root / "intel-rapl:0", "package-0", 1_000_000)
    dram = powercap_zone(pkg / "intel-rapl:0:0", "dram", 1_000_000)
    return root, pkg, dram


def test_measured_package_is_split_by_cpu_time_and_labelled(package):
    """RAPL cannot split a package between processes: with attribution each process gets
    the package's (and DRAM's) energy x its share of the CPU time used. Workers at 75% and
    25% of the busy time share 100 J of package and 20 J of DRAM as 75/25 and 15/5."""
    from energy_fakes import set_uj

    from bench.energy.rapl import RaplSource

    root, pkg, dram = package
    clock = FakeClock(0.0)
    loads = {"a": 0.75, "b": 0.25}
    usages = {k: FakeUsage(clock, process=p, foreign=1.0 - p) for k, p in loads.items()}
    meters = {
        k: CompositeMeter(
            [RaplSource(root, attribute=True, usage=u)], sample_hz=0, clock=clock, usage=u
        )
        for k, u in usages.items()
    }
    windows = {k: m.begin("cell") for k, m in meters.items()}
    for i in range(1, 9):  # 4 s at 25 W of package and 5 W of DRAM
        set_uj(pkg, 1_000_000 + i * 12_500_000)
        set_uj(dram, 1_000_000 + i * 2_500_000)
        clock.advance(TICK_S)
        for m in meters.values():
            m.sample()
    ms = {k: m.end(windows[k]) for k, m in meters.items()}
    for k, m in ms.items():
        assert m.joules_by_component["cpu:0"] == pytest.approx(100.0 * loads[k])
        assert m.joules_by_component["dram:0"] == pytest.approx(20.0 * loads[k])
        assert m.source_by_component["cpu:0"] == "rapl"
        assert m.details["attribution"] == {
            "cpu:0": "process-cpu-time",
            "dram:0": "process-cpu-time",
        }
        assert m.details["cpu:0"]["measured_j"] == pytest.approx(100.0)
    assert sum(m.total_j for m in ms.values()) == pytest.approx(120.0)  # counted once


def test_a_dask_worker_attributes_its_package(package, monkeypatch):
    """The meter a Dask worker builds splits the package; a local run's does not."""
    import sys
    import types

    from bench.energy.composite import make_sources, shares_package

    root = str(package[0])
    local, _ = make_sources("cpu", rapl_root=root, estimate=False)
    assert not shares_package() and not local[0].attribute
    fake = types.ModuleType("distributed")
    fake.get_worker = lambda: object()
    monkeypatch.setitem(sys.modules, "distributed", fake)
    worker, _ = make_sources("cpu", rapl_root=root, estimate=False)
    assert shares_package() and worker[0].attribute
    assert "attributed by process-cpu-time" in worker[0].info().resolution


def test_unreadable_cpu_counters_fail_the_window_not_the_run():
    clock = FakeClock(0.0)
    usage = FakeUsage(clock)
    broken = {"now": False}

    def flaky():
        if broken["now"]:
            raise OSError("/proc/stat: no such file")
        return usage()

    hw = Hardware(TDP_W, RAM_W, MEMORY, "fake")
    meter = CompositeMeter(
        [CodecarbonSource(hardware=hw, usage=flaky)], sample_hz=0, clock=clock, usage=flaky
    )
    w = meter.begin("w")
    broken["now"] = True
    clock.advance(1.0)
    meter.sample()  # the sampler remembers the error and goes on
    m = meter.end(w)
    assert m.failed and math.isnan(m.joules_by_component["cpu:all"])
    assert any("CPU usage counters" in x for x in m.warnings)
    assert m.details["process_cpu_share"] is None
