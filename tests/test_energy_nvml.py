"""NVML meter against a fake pynvml with a known power curve (no GPU needed)."""

from __future__ import annotations

import math

import pytest
from energy_fakes import FakeClock, FakeGpu, install, sine_power, torch_props

from bench.energy.base import FAILED, MeterUnavailable
from bench.energy.composite import CompositeMeter, build_meter
from bench.energy.nvml import NvmlSource

TICK_S = 0.05  # 20 Hz


def gpu(i: int, base_w: float = 150.0, **kw) -> FakeGpu:
    power, energy = sine_power(base_w, 50.0, 1.3)
    return FakeGpu(
        f"GPU-{i:08x}-aaaa-bbbb-cccc-{i:012x}", f"00000000:{0x10 + i:02X}:00.0", power, energy, **kw
    )


def run_window(meter: CompositeMeter, clock: FakeClock, seconds: float, name: str = "w"):
    """One window of `seconds` with sampler ticks at 20 Hz in between."""
    w = meter.begin(name)
    for _ in range(round(seconds / TICK_S)):
        clock.advance(TICK_S)
        meter.sample()
    return meter.end(w)


def meter_for(monkeypatch, gpus, device="cuda:0", devices=None, clock=None):
    clock = clock or FakeClock(0.37)
    devices = devices or {0: torch_props(gpus[0].uuid, 0x10)}
    install(monkeypatch, clock, gpus, devices)
    return CompositeMeter([NvmlSource(device)], sample_hz=0, clock=clock), clock


@pytest.mark.parametrize("has_counter", [True, False])
def test_energy_within_half_percent_of_analytic_integral(monkeypatch, has_counter):
    g = gpu(0, has_counter=has_counter)
    meter, clock = meter_for(monkeypatch, [g])
    t0 = clock()
    m = run_window(meter, clock, 3.0)
    exact_j = g.energy(clock()) - g.energy(t0)
    assert m.source_by_component["gpu:0"] == ("nvml-counter" if has_counter else "nvml-power")
    assert m.joules_by_component["gpu:0"] == pytest.approx(exact_j, rel=5e-3)
    d = m.details["gpu:0"]
    assert d["integrated_j"] == pytest.approx(exact_j, rel=5e-3)  # kept in both modes
    if has_counter:
        assert d["counter_j"] == pytest.approx(exact_j, rel=5e-3)
        assert abs(d["disagreement"]) < 5e-3
    else:
        assert d["counter_j"] is None and d["disagreement"] is None
    assert m.samples_by_component["gpu:0"] == 61  # 60 ticks + the end edge
    assert {"temperature_c", "sm_clock_mhz", "power_limit_w"} <= set(d["start"])
    assert d["end"]["power_limit_w"] == 300.0
    assert not m.warnings


def test_no_field_values_falls_back_to_power_usage(monkeypatch):
    g = gpu(0, has_counter=False, has_fields=False)
    meter, clock = meter_for(monkeypatch, [g])
    t0 = clock()
    m = run_window(meter, clock, 2.0)
    assert m.source_by_component["gpu:0"] == "nvml-power"
    assert m.joules_by_component["gpu:0"] == pytest.approx(
        g.energy(clock()) - g.energy(t0), rel=5e-3
    )
    kinds = {s.kind for s in meter.drain_trace()}
    assert kinds == {"average"}  # nvmlDeviceGetPowerUsage only


def test_trace_has_instant_and_average_power(monkeypatch):
    meter, clock = meter_for(monkeypatch, [gpu(0)])
    run_window(meter, clock, 0.5)
    trace = meter.drain_trace()
    assert {s.kind for s in trace} == {"instant", "average"}
    assert meter.drain_trace() == []


def test_cuda_visible_devices_remapping_picks_handle_by_uuid(monkeypatch):
    # CUDA_VISIBLE_DEVICES=3,1: torch's cuda:0 is NVML's 3 and cuda:1 is NVML's 1.
    gpus = [gpu(i, base_w=100.0 + 50 * i) for i in range(4)]
    devices = {0: torch_props(gpus[3].uuid, 0x13), 1: torch_props(gpus[1].uuid, 0x11)}
    meter, clock = meter_for(monkeypatch, gpus, device="cuda:1", devices=devices)
    t0 = clock()
    m = run_window(meter, clock, 2.0)
    assert m.details["gpu:1"]["start"]["uuid"] == gpus[1].uuid.removeprefix("GPU-")
    exact = {i: g.energy(clock()) - g.energy(t0) for i, g in enumerate(gpus)}
    assert m.joules_by_component["gpu:1"] == pytest.approx(exact[1], rel=5e-3)
    assert m.joules_by_component["gpu:1"] != pytest.approx(exact[0], rel=5e-3)


def test_pci_bus_id_used_when_torch_has_no_uuid(monkeypatch):
    gpus = [gpu(i, base_w=100.0 + 50 * i) for i in range(3)]
    props = torch_props("", 0x12)  # bus 0x12 is NVML index 2
    meter, clock = meter_for(monkeypatch, gpus, devices={0: props})
    t0 = clock()
    m = run_window(meter, clock, 1.0)
    exact = gpus[2].energy(clock()) - gpus[2].energy(t0)
    assert m.joules_by_component["gpu:0"] == pytest.approx(exact, rel=5e-3)


def test_unknown_device_is_unavailable(monkeypatch):
    install(monkeypatch, FakeClock(), [gpu(0)], {0: torch_props("GPU-ffff", 0x77)})
    with pytest.raises(MeterUnavailable, match="no NVML device"):
        NvmlSource("cuda:0")


def test_no_driver_means_unavailable(monkeypatch):
    install(monkeypatch, FakeClock(), [], {}, driver=False)
    with pytest.raises(MeterUnavailable, match="no NVIDIA driver"):
        NvmlSource("cuda:0")
    meter = build_meter("cuda:0", sample_hz=0, estimate=False, rapl_root="/nonexistent")
    (nvml,) = [i for i in meter.info() if i.name == "nvml"]
    assert not nvml.available and "driver" in nvml.reason
    meter.close()


def test_gpu_lost_mid_run_marks_window_failed_and_goes_on(monkeypatch):
    g = gpu(0)
    meter, clock = meter_for(monkeypatch, [g])
    ok = run_window(meter, clock, 1.0, "before")
    w = meter.begin("during")
    clock.advance(0.3)
    meter.sample()
    g.lost = True
    for _ in range(5):  # the sampler keeps running and does not raise
        clock.advance(TICK_S)
        meter.sample()
    lost = meter.end(w)
    after = run_window(meter, clock, 1.0, "after")
    assert ok.source_by_component["gpu:0"] == "nvml-counter"
    for m in (lost, after):
        assert m.source_by_component["gpu:0"] == FAILED
        assert math.isnan(m.joules_by_component["gpu:0"])
        assert m.failed and math.isnan(m.total_j)
        assert any("GPU is lost" in x for x in m.warnings)
    assert "nvml" in meter.sample_errors


def test_short_window_warns(monkeypatch):
    meter, clock = meter_for(monkeypatch, [gpu(0, has_counter=True)])
    w = meter.begin("short")
    clock.advance(0.02)
    m = meter.end(w)
    assert any("shorter than the energy counter's update period" in x for x in m.warnings)
    meter2, clock2 = meter_for(monkeypatch, [gpu(0, has_counter=False)])
    w = meter2.begin("short")
    clock2.advance(0.1)
    m2 = meter2.end(w)
    assert any("power samples" in x for x in m2.warnings)


def test_nested_windows_add_up(monkeypatch):
    meter, clock = meter_for(monkeypatch, [gpu(0, has_counter=False)])
    outer = meter.begin("outer")
    inner = [run_window(meter, clock, s, f"inner{i}") for i, s in enumerate((0.5, 1.0, 0.75))]
    m = meter.end(outer)
    assert m.joules_by_component["gpu:0"] == pytest.approx(
        sum(x.joules_by_component["gpu:0"] for x in inner), rel=1e-9
    )
    assert m.seconds == pytest.approx(sum(x.seconds for x in inner))


# -- counter resets and jumps (issue 12, item 6) -----------------------------------------


def reset_gpu(reset_at: float, start_j: float = 0.0, jump_j: float = 0.0) -> FakeGpu:
    """200 W throughout; the counter restarts from 0 at `reset_at` (or, with `jump_j`,
    leaps forward by that much instead)."""

    def energy(t: float) -> float:
        if jump_j:
            return start_j + 200.0 * t + (jump_j if t >= reset_at else 0.0)
        return 200.0 * (t - reset_at) if t >= reset_at else start_j + 200.0 * t

    return FakeGpu("GPU-1", "00000000:01:00.0", lambda t: 200.0, energy)


def reset_meter(monkeypatch, g: FakeGpu, t0: float):
    clock = FakeClock(t0)
    install(monkeypatch, clock, [g], {0: torch_props("GPU-1", 1)})
    return CompositeMeter([NvmlSource("cuda:0")], sample_hz=0, clock=clock), clock


def assert_integrated_with_reset_warning(m, joules: float = 400.0) -> None:
    assert m.source_by_component["gpu:0"] == "nvml-power"
    assert m.joules_by_component["gpu:0"] == pytest.approx(joules, rel=1e-3)
    assert m.details["gpu:0"]["counter_j"] is None and m.details["gpu:0"]["counter_fault"]
    (warning,) = [w for w in m.warnings if "energy counter" in w]
    assert "reset" in warning and "integrated power" in warning


@pytest.mark.parametrize("ticks", [True, False])
def test_counter_restarting_mid_window_reports_integrated_power(monkeypatch, ticks):
    """The issue's case: the counter restarts from 0 one second into a 2 s window at 200 W.
    Counter end - start is -199,800 J; integrated power reads 400 J and is what's reported,
    with or without sampler ticks between the edges."""
    g = reset_gpu(reset_at=1001.0)
    meter, clock = reset_meter(monkeypatch, g, 1000.0)
    assert g.energy(1002.0) - g.energy(1000.0) == pytest.approx(-199_800.0)
    if ticks:
        m = run_window(meter, clock, 2.0)
    else:
        w = meter.begin("w")
        clock.advance(2.0)
        m = meter.end(w)
    assert_integrated_with_reset_warning(m)
    assert m.total_j == pytest.approx(400.0, rel=1e-3)
    after = run_window(meter, clock, 1.0, "after")  # a window after the reset is fine again
    assert after.source_by_component["gpu:0"] == "nvml-counter"
    assert after.joules_by_component["gpu:0"] == pytest.approx(200.0, rel=1e-3)
    assert not any("reset" in x for x in after.warnings)


def test_reset_that_regrows_past_the_start_is_caught_between_samples(monkeypatch):
    """Counter 100 J at the start edge, restarts at 1.0 s, reads 300 J at the end edge:
    end - start = +200 J looks plausible, but the sampler saw it go back."""
    g = reset_gpu(reset_at=1.0)
    meter, clock = reset_meter(monkeypatch, g, 0.5)
    m = run_window(meter, clock, 2.0)
    assert g.energy(clock()) - g.energy(0.5) == pytest.approx(200.0)  # what the edges see
    assert_integrated_with_reset_warning(m)


def test_counter_jump_above_power_limit_is_not_energy(monkeypatch):
    """A forward leap of 50 kJ in one tick is 1 MW, past 2 x the 300 W enforced limit."""
    g = reset_gpu(reset_at=1001.0, start_j=5000.0, jump_j=50_000.0)
    meter, clock = reset_meter(monkeypatch, g, 1000.0)
    m = run_window(meter, clock, 2.0)
    assert_integrated_with_reset_warning(m)
    assert "limit" in m.details["gpu:0"]["counter_fault"]


def test_nested_window_outside_the_reset_keeps_the_counter(monkeypatch):
    g = reset_gpu(reset_at=1002.0)
    meter, clock = reset_meter(monkeypatch, g, 1000.0)
    outer = meter.begin("outer")
    inner = run_window(meter, clock, 1.0, "inner")  # ends before the reset
    run_window(meter, clock, 2.0, "spans")
    m = meter.end(outer)
    assert inner.source_by_component["gpu:0"] == "nvml-counter"
    assert inner.joules_by_component["gpu:0"] == pytest.approx(200.0, rel=1e-3)
    assert_integrated_with_reset_warning(m, joules=600.0)
