"""Idle baseline, net energy, CO2, power-trace rows, and a metered smoke run with no
network (sockets blocked) writing labelled energy, idle and samples into the ledger."""

from __future__ import annotations

import json
import math
import socket

import pytest
from energy_fakes import FakeClock, FakeGpu, install, torch_props

from bench.energy import carbon, estimate
from bench.energy.composite import CompositeMeter, TraceSample
from bench.energy.idle import measure_idle, net_by_component, net_j
from bench.energy.nvml import NvmlSource
from bench.energy.trace import Span, trace_rows
from bench.errors import MetabenchError


def constant_gpu_meter(monkeypatch, watts: dict[str, float]):
    """A fake GPU whose power is watts['now'] (changeable), integrated power mode."""
    clock = FakeClock()
    g = FakeGpu(
        "GPU-1", "00000000:01:00.0", lambda t: watts["now"], lambda t: 0.0, has_counter=False
    )
    install(monkeypatch, clock, [g], {0: torch_props("GPU-1", 1)})
    return CompositeMeter([NvmlSource("cuda:0")], sample_hz=0, clock=clock), clock


def test_idle_baseline_and_net_energy(monkeypatch):
    watts = {"now": 60.0}
    meter, clock = constant_gpu_meter(monkeypatch, watts)

    def fake_sleep(seconds: float) -> None:
        for _ in range(round(seconds / 0.05)):
            clock.advance(0.05)
            meter.sample()

    idle, _m = measure_idle(meter, 2.0, sleep=fake_sleep)
    assert [(i.component, i.source) for i in idle] == [("gpu:0", "nvml-power")]
    assert idle[0].watts == pytest.approx(60.0) and idle[0].seconds == pytest.approx(2.0)
    watts["now"] = 200.0
    with meter.window("work") as w:
        fake_sleep(3.0)
    work = w.measurement
    assert work.joules_by_component["gpu:0"] == pytest.approx(600.0, rel=1e-3)
    assert net_by_component(work, {"gpu:0": idle[0].watts}) == {
        "gpu:0": pytest.approx(420.0, rel=1e-3)
    }
    assert net_j(100.0, 10.0, 3.0) == 70.0
    assert math.isnan(net_by_component(work, {})["gpu:0"])  # no idle figure: no net


def test_co2_arithmetic():
    assert carbon.co2_g(3.6e6, 50.0, 1.5) == pytest.approx(75.0)  # 1 kWh x 50 g/kWh x 1.5
    c = carbon.resolve_intensity(override_g_per_kwh=400.0, pue=1.2)
    assert (c.source, c.g_per_kwh, c.pue) == ("override", 400.0, 1.2)
    assert c.co2_g(1.8e6) == pytest.approx(0.5 * 400.0 * 1.2)


def test_intensity_from_codecarbon_offline_data(monkeypatch):
    from codecarbon.input import DataSource

    mix = DataSource().get_global_energy_mix_data()
    fra = carbon.resolve_intensity("fra")
    assert fra.source == "codecarbon:country:FRA"
    assert fra.g_per_kwh == pytest.approx(mix["FRA"]["carbon_intensity"])
    monkeypatch.setattr(carbon, "configured_country", lambda: None)
    world = carbon.resolve_intensity()
    assert world.source == "codecarbon:world_average" and world.g_per_kwh > 0
    with pytest.raises(MetabenchError, match="--country"):
        carbon.resolve_intensity("XXX")
    with pytest.raises(MetabenchError, match="--pue"):
        carbon.resolve_intensity("FRA", pue=0.5)


def test_trace_rows_get_phase_and_stay_small():
    spans = [Span("meta_train", 0.0, 10.0), Span("validate", 4.0, 5.0), Span("adapt", 12.0, 20.0)]
    samples = [TraceSample(t / 100, "gpu:0", "instant", 100.0 + t % 7) for t in range(2100)]
    rows = trace_rows(samples, spans, max_rows=500)
    assert len(rows) <= 700  # groups never straddle a phase change
    by_phase = {r.phase for r in rows}
    assert by_phase == {"meta_train", "validate", "none", "adapt"}
    assert all(r.phase == "validate" for r in rows if 4.05 < r.t < 4.95)  # innermost wins
    assert sum(r.watts for r in rows) / len(rows) == pytest.approx(103.0, abs=0.5)


def test_smoke_run_without_network_stores_labelled_energy(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("a socket was opened during a metered run")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(estimate, "_HARDWARE", {})  # detect hardware again, offline

    from bench.cli import main
    from bench.store import Ledger

    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "sinusoid-5shot",
            "--profile",
            "smoke",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--no-progress",
            "--carbon-intensity",
            "300",
            "--pue",
            "1.1",
        ]
    )
    assert rc == 0
    ledger = Ledger(out)
    windows = ledger.table("windows")
    assert len(windows) > 0
    label = "estimate:codecarbon-process"
    for _, w in windows.iterrows():
        sources = json.loads(w["sources"])
        assert sources == {"cpu:all": label, "dram:all": label}
        assert all(j > 0 for j in json.loads(w["joules"]).values())
        details = json.loads(w["details"])
        for key in ("process_cpu_share", "foreign_cpu_load"):  # None: shorter than a CPU tick
            assert details[key] is None or 0 <= details[key] <= 1
        assert "attribution" not in details  # a local run splits no device between cells
    shares = [json.loads(d)["process_cpu_share"] for d in windows["details"]]
    assert any(x is not None and x > 0 for x in shares)  # the cells' work is this process's
    idle = ledger.table("idle")
    assert set(idle["component"]) == {"cpu:all", "dram:all"}
    assert (idle["source"] == label).all() and (idle["watts"] > 0).all()
    assert (idle["watts_std"] >= 0).all()
    samples = ledger.table("samples")
    assert len(samples) > 0 and {"adapt", "predict"} <= set(
        samples["phase"]
    )  # scratch: no meta_train
    assert (samples.groupby("cell_key").size() <= 5000).all()
    c = ledger.table("carbon").iloc[0]
    assert (c["intensity_g_per_kwh"], c["source"], c["pue"]) == (300.0, "override", 1.1)


def test_min_window_is_the_slowest_sources():
    """The harness repeats a pure pass until a window lasts the meter's minimum: NVML's
    counter needs ten of its ~0.1 s updates, RAPL ten of its ~1 ms ones, a model attributed
    by CPU time twenty of the CPU-time counters' 10 ms ticks."""
    from bench.energy.composite import CompositeMeter
    from bench.energy.estimate import CodecarbonSource
    from bench.energy.nvml import NvmlSource
    from bench.energy.rapl import RaplSource

    def meter(*classes):
        m = CompositeMeter([], sample_hz=0)
        m.sources = [type("S", (), {"min_window_s": c.min_window_s})() for c in classes]
        return m

    assert meter().min_window_s == 0.0
    assert meter(CodecarbonSource).min_window_s == 0.2
    assert meter(RaplSource).min_window_s == RaplSource.COUNTER_WINDOW_S == 0.01
    assert meter(CodecarbonSource, RaplSource, NvmlSource).min_window_s == 1.0
