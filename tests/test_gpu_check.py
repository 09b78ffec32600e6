"""scripts/gpu_check.sh and benchmarks/nvml_agreement.py, rehearsed without a GPU.

- The agreement arithmetic against the fake pynvml: on a constant power curve the counter
  and the integrated instant / average power agree within 0.5% per window; on a curve the
  power readings only partly cover, the disagreement shows up with its sign.
- The script with --fake-nvml: the quick steps (wheels, meters, NVML agreement, headline)
  in the default test run; the default steps (deploy_batch, maml_step and the smoke
  comparison too) are `slow`: they take minutes on a shared 2-core CPU.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from energy_fakes import FakeClock, FakeGpu, install, torch_props

from bench.energy.composite import CompositeMeter
from bench.energy.nvml import NvmlSource
from benchmarks import nvml_agreement as agree

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_check.sh"
UUID = "GPU-0000abcd-aaaa-bbbb-cccc-000000000001"
TICK_S = 0.05


def fake_meter(monkeypatch, power, energy):
    clock = FakeClock(12.5)
    gpu = FakeGpu(UUID, "00000000:3B:00.0", power, energy)
    install(monkeypatch, clock, [gpu], {0: torch_props(UUID, 0x3B)})
    return CompositeMeter([NvmlSource("cuda:0")], sample_hz=0, clock=clock), clock


def drive(meter: CompositeMeter, clock: FakeClock):
    """sleep and load functions that advance the fake clock with sampler ticks at 20 Hz."""

    def sleep(seconds: float) -> None:
        for _ in range(round(seconds / TICK_S)):
            clock.advance(TICK_S)
            meter.sample()

    def load_factory(device, size):
        def run(until_s: float) -> int:
            n = 0
            while clock() < until_s - 1e-9:
                clock.advance(TICK_S)
                meter.sample()
                n += 1
            return n

        return run

    return sleep, load_factory


def run_check(meter, clock, **kw):
    sleep, load_factory = drive(meter, clock)
    args = dict(idle_s=2.0, warmup_s=0.5, windows=4, window_s=5.0, size=8)
    args.update(kw)
    return agree.check(
        meter,
        torch.device("cpu"),
        sleep=sleep,
        load_factory=load_factory,
        log=lambda s: None,
        **args,
    )


def test_constant_power_counter_and_integrals_agree(monkeypatch):
    meter, clock = fake_meter(monkeypatch, lambda t: 300.0, lambda t: 300.0 * t)
    rows = run_check(meter, clock)
    assert [(r.phase, r.window) for r in rows] == [("idle", 0)] + [("load", i) for i in range(4)]
    for r in rows:
        assert r.counter_j == pytest.approx(300.0 * r.seconds, rel=1e-3)
        assert r.counter_w == pytest.approx(300.0, rel=1e-3)
        for j, d in (
            (r.instant_j, r.disagreement_instant),
            (r.average_j, r.disagreement_average),
            (r.meter_integrated_j, r.disagreement_meter),
        ):
            assert j == pytest.approx(r.counter_j, rel=0.005)
            assert abs(d) < 0.005
        assert r.n_instant >= round(r.seconds / TICK_S)
        assert r.temperature_c is not None and r.sm_clock_mhz == 1410


def test_power_that_misses_spikes_reads_low(monkeypatch):
    """Power sampled on the tick misses a spike between ticks that the counter sees: the
    integrated figures read low and the disagreement is negative (the A100/H100 case)."""

    def power(t: float) -> float:  # 200 W, readings never see the spikes
        return 200.0

    def energy(t: float) -> float:  # plus 10% more energy in short spikes
        return 220.0 * t

    meter, clock = fake_meter(monkeypatch, power, energy)
    rows = run_check(meter, clock, idle_s=0, windows=2)
    for r in rows:
        assert r.disagreement_instant == pytest.approx(200 / 220 - 1, abs=0.005)
        assert r.disagreement_average == pytest.approx(200 / 220 - 1, abs=0.005)


def test_integrate_clips_to_window_and_keeps_end_edge():
    from bench.energy.composite import TraceSample

    samples = [TraceSample(t, "gpu:0", "instant", 100.0) for t in (0.9, 1.0, 1.5, 2.0, 2.01)]
    j, n = agree.integrate(samples, "instant", 1.0, 2.0, end_slack_s=0.02)
    assert n == 4 and j == pytest.approx(101.0)
    assert agree.integrate(samples, "average", 1.0, 2.0) == (None, 0)


def test_csv_and_summary(monkeypatch, tmp_path):
    meter, clock = fake_meter(monkeypatch, lambda t: 250.0, lambda t: 250.0 * t)
    rows = run_check(meter, clock, windows=2)
    out = tmp_path / "a.csv"
    agree.write_csv(rows, out)
    read = list(csv.DictReader(out.open()))
    assert len(read) == 3 and read[0]["phase"] == "idle" and "disagreement_instant" in read[0]
    text = agree.summary(rows)
    assert "disagreement_instant: mean" in text and "idle power by the counter" in text


def script(
    tmp_path: Path, *args: str, timeout: int, data: Path | None = None
) -> subprocess.CompletedProcess:
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and coreutils timeout")
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    if data is not None:  # the Omniglot suites read it (no download)
        env["METABENCH_DATA"] = str(data)
    env.pop("OUT", None)
    return subprocess.run(
        ["bash", str(SCRIPT), "--fake-nvml", "--out", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


def test_gpu_check_fake_quick_steps(tmp_path):
    """The wheel, inventory and NVML-agreement path of the script, end to end (~30 s)."""
    p = script(tmp_path, "--steps", "env,meters,smi,agreement,summary", timeout=120)
    out = tmp_path / "out"
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "gpu_check.sh: all steps ok" in p.stdout
    assert sorted(f.name for f in out.iterdir()) == [
        "gpu_check.log",
        "nvml_agreement.csv",
        "steps.tsv",
    ]
    rows = list(csv.DictReader((out / "nvml_agreement.csv").open()))
    assert [r["phase"] for r in rows] == ["idle", "load", "load", "load"]
    assert all(abs(float(r["disagreement_instant"])) < 0.005 for r in rows)
    assert "[smi] skipped: --fake-nvml" in (out / "gpu_check.log").read_text()


@pytest.mark.slow
def test_gpu_check_fake_all_steps(tmp_path, data_root):
    """The default steps but maml_step, the smoke comparison on CPU included (minutes on a
    shared CPU)."""
    # maml_step (second order, meta batch 32) needs minutes on a shared CPU: left out
    steps = "install,env,meters,smi,batch,run,report,summary"
    p = script(tmp_path, "--steps", steps, timeout=900, data=data_root)
    out = tmp_path / "out"
    files = sorted(f.name for f in out.iterdir())
    assert len(files) <= 8 and all(f.is_file() for f in out.iterdir())
    assert {"gpu_check.log", "steps.tsv", "report.tar.gz", "summary.md"} <= set(files), p.stdout[
        -3000:
    ]
    log = (out / "gpu_check.log").read_text()
    assert "ops_ratio_min=" in log  # deploy_batch ran
    assert "run_wall_s=" in log and ", 0 failed" in log
    assert p.returncode == 0, p.stdout[-3000:]
