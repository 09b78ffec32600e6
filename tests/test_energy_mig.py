"""MIG slices (issue 12, item 10): NVML's energy counter and power cover the whole card, so a
slice's GPU energy is reported as not measured, never as the slice's, and `metabench meters`
says why. Fake pynvml with MIG devices (tests/energy_fakes.py)."""

from __future__ import annotations

import math

import pytest
from energy_fakes import FakeClock, FakeGpu, install, torch_props

from bench.energy.composite import CompositeMeter
from bench.energy.nvml import NvmlSource

CARD = "GPU-0000cafe-aaaa-bbbb-cccc-000000000001"
SLICES = ("MIG-00000001-1111-2222-3333-000000000001", "MIG-00000001-1111-2222-3333-000000000002")


def mig_card(**kw) -> FakeGpu:
    """A card at 300 W in MIG mode with two slices (whole-card power and counter)."""
    return FakeGpu(
        CARD, "00000000:3B:00.0", lambda t: 300.0, lambda t: 300.0 * t, mig_slices=SLICES, **kw
    )


def slice_meter(monkeypatch, props):
    clock = FakeClock(10.0)
    install(monkeypatch, clock, [mig_card()], {0: props})
    return CompositeMeter([NvmlSource("cuda:0")], sample_hz=0, clock=clock), clock


@pytest.mark.parametrize(
    "props",
    [torch_props(SLICES[1], 0x3B), torch_props("", 0x3B)],  # matched by MIG UUID / by PCI id
    ids=["mig-uuid", "pci"],
)
def test_slice_gpu_energy_is_not_measured(monkeypatch, props):
    meter, clock = slice_meter(monkeypatch, props)
    w = meter.begin("w")
    for _ in range(20):
        clock.advance(0.05)
        meter.sample()
    m = meter.end(w)
    assert m.source_by_component["gpu:0"] == "none"
    assert math.isnan(m.joules_by_component["gpu:0"]) and math.isnan(m.total_j)
    assert not m.failed  # not a broken reading: never a measurement of the slice
    d = m.details["gpu:0"]
    assert d["whole_card_j"] == pytest.approx(300.0, rel=1e-3)  # the card's, for reference
    assert "not attributable to the slice" in d["mig"]
    (warning,) = [x for x in m.warnings if x.startswith("gpu:0")]
    assert "not measured" in warning and "whole card" in warning
    info = meter.info()[0]
    assert not info.available and info.kind == "none" and info.source == "none"
    assert "MIG slice" in info.reason and "not attributable to the slice" in info.reason
    assert "-mig 0" in info.fix


def test_whole_gpu_beside_a_mig_card_is_measured(monkeypatch):
    clock = FakeClock(10.0)
    whole = FakeGpu("GPU-2", "00000000:3C:00.0", lambda t: 100.0, lambda t: 100.0 * t)
    install(monkeypatch, clock, [mig_card(), whole], {0: torch_props("GPU-2", 0x3C)})
    meter = CompositeMeter([NvmlSource("cuda:0")], sample_hz=0, clock=clock)
    w = meter.begin("w")
    clock.advance(1.0)
    m = meter.end(w)
    assert m.source_by_component["gpu:0"] == "nvml-counter"
    assert m.joules_by_component["gpu:0"] == pytest.approx(100.0)
    assert "mig" not in m.details["gpu:0"] and meter.info()[0].available


def test_meters_command_says_the_energy_is_not_attributable(monkeypatch, capsys):
    import torch

    from bench.cli import main

    install(monkeypatch, FakeClock(10.0), [mig_card()], {0: torch_props(SLICES[0], 0x3B)})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert main(["meters", "--device", "cuda", "--seconds", "0.1"]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.strip().startswith("nvml")]
    assert " no " in row and "not attributable to the slice" in row and "-mig 0" in row
