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
    assert m.details["attribution"] == {"cpu:all": "process-cpu-time", "dram:all": "process-rss"}
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
