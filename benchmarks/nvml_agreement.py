"""NVML energy checked against itself: the energy counter vs integrated power, per window.

On A100/H100 the power readings (NVML_FI_DEV_POWER_INSTANT / _AVERAGE,
nvmlDeviceGetPowerUsage) cover only part of each period, so integrating them can
under-read; the counter (nvmlDeviceGetTotalEnergyConsumption, mJ) is preferred. This
script measures how far apart they are on this GPU, through bench.energy's own NVML source
and composite meter (no second NVML implementation):

1. idle: one window of `--idle-s` seconds, nothing running;
2. load: `--warmup-s` of matmuls (not recorded), then `--windows` back-to-back windows of
   `--window-s` seconds of steady matmuls.

Per window it reports the counter's joules, the joules of the instant and of the average
power trace integrated with trapezoids, what the meter itself integrated (its
`integrated_j`, the instant field where available), and each one's disagreement
(integrated - counter) / counter. Writes a CSV (`--out`) and prints a table and a summary.

`--fake-nvml` rehearses on a machine without a GPU: a fake pynvml (tests/energy_fakes.py)
with a constant power curve on the real clock, and the load runs on the CPU.

Usage: python -m benchmarks.nvml_agreement [--device cuda] [--out nvml_agreement.csv]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from bench.energy.base import Measurement, Window
from bench.energy.composite import CompositeMeter, TraceSample
from bench.energy.nvml import NvmlSource, disagreement

FAKE_POWER_W = 250.0
FAKE_UUID = "GPU-00000000-fake-0000-0000-000000000000"


@dataclass(frozen=True)
class Row:
    """One window of the agreement check. Joules (J), watts (W), relative differences."""

    phase: str  # idle | load
    window: int
    component: str
    seconds: float
    counter_j: float | None
    instant_j: float | None  # instant-power trace integrated over the window
    average_j: float | None  # average-power trace integrated over the window
    meter_integrated_j: float | None  # what the NVML source integrated (its fallback figure)
    disagreement_instant: float | None  # (instant_j - counter_j) / counter_j
    disagreement_average: float | None
    disagreement_meter: float | None
    counter_w: float | None  # counter_j / seconds
    n_instant: int
    n_average: int
    temperature_c: float | None  # at the window's end edge
    sm_clock_mhz: float | None
    power_limit_w: float | None


def integrate(
    samples: Iterable[TraceSample],
    kind: str,
    start_s: float,
    end_s: float,
    end_slack_s: float = 0.02,
) -> tuple[float | None, int]:
    """Trapezoid integral (J) of one power kind's samples (t_s, W) that fall in
    [start_s, end_s + end_slack_s]; (None, n) with fewer than two samples. The window's
    edge readings are taken just after its edge times (the end edge a little after
    `end_s`, by the time it takes to read the meter): the slack keeps the end edge in."""
    pts = sorted(
        (s.t_s, s.watts)
        for s in samples
        if s.kind == kind and start_s <= s.t_s <= end_s + end_slack_s
    )
    if len(pts) < 2:
        return None, len(pts)
    j = sum(0.5 * (w0 + w1) * (t1 - t0) for (t0, w0), (t1, w1) in itertools.pairwise(pts))
    return j, len(pts)


def window_start_s(meter: CompositeMeter, w: Window) -> float:
    """The window's start on the trace's clock (drain_trace's wall-clock seconds): the
    meter clock at the start edge plus the meter's wall offset. Measurement.start_s is
    time.time(), which drifts from the meter clock by NTP slew; this does not."""
    offset = getattr(meter, "_wall_offset_s", None)
    return w.measurement.start_s if offset is None else w.start_perf + offset


def rows_for(
    phase: str, index: int, m: Measurement, trace: list[TraceSample], start_s: float
) -> list[Row]:
    """One row per GPU component of a closed window, from its measurement, the trace
    drained right after it and the window's start on the trace's clock (`window_start_s`)."""
    out = []
    end_s = start_s + m.seconds
    for comp, det in m.details.items():
        if not comp.startswith("gpu:") or not isinstance(det, dict):
            continue
        samples = [s for s in trace if s.component == comp]
        inst, n_i = integrate(samples, "instant", start_s, end_s)
        avg, n_a = integrate(samples, "average", start_s, end_s)
        counter = det.get("counter_j")
        end = det.get("end") or {}
        out.append(
            Row(
                phase,
                index,
                comp,
                m.seconds,
                counter,
                inst,
                avg,
                det.get("integrated_j"),
                None if inst is None else disagreement(counter, inst),
                None if avg is None else disagreement(counter, avg),
                disagreement(counter, det.get("integrated_j") or 0.0),
                None if counter is None or m.seconds <= 0 else counter / m.seconds,
                n_i,
                n_a,
                end.get("temperature_c"),
                end.get("sm_clock_mhz"),
                end.get("power_limit_w"),
            )
        )
    return out


def steady_load(device: torch.device, size: int) -> Callable[[float], int]:
    """A function that runs back-to-back matmuls until the meter clock passes `until_s`
    (synchronizing every few products so the window edges are where the work is);
    returns the number of products."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(until_s: float, clock: Callable[[], float] = time.perf_counter) -> int:
        n = 0
        while clock() < until_s:
            for _ in range(8):
                torch.mm(a, b)
            n += 8
            sync()
        return n

    return run


def check(
    meter: CompositeMeter,
    device: torch.device,
    *,
    idle_s: float,
    warmup_s: float,
    windows: int,
    window_s: float,
    size: int,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    load_factory: Callable[[torch.device, int], Callable[[float], int]] | None = None,
) -> list[Row]:
    """Idle window, warm-up, then `windows` load windows; rows for every GPU component.
    `sleep` and `load_factory` (device, size -> run(until_s)) are replaced by tests that
    drive a fake clock."""
    rows: list[Row] = []
    meter.drain_trace()
    if idle_s > 0:
        with meter.window("idle") as w:
            sleep(idle_s)
        rows += rows_for("idle", 0, w.measurement, meter.drain_trace(), window_start_s(meter, w))
    load = (load_factory or steady_load)(device, size)
    load(meter.clock() + warmup_s)
    meter.drain_trace()
    for i in range(windows):
        with meter.window(f"load-{i}") as w:
            n = load(meter.clock() + window_s)
        new = rows_for("load", i, w.measurement, meter.drain_trace(), window_start_s(meter, w))
        for r in new:
            log(f"  load window {i}: {n} matmuls, {fmt(r.counter_w, '.1f')} W by the counter")
        rows += new
        for warning in w.measurement.warnings:
            log(f"  warning: {warning}")
    return rows


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def table(rows: list[Row]) -> str:
    head = (
        f"{'phase':<5} {'win':>3} {'comp':<6} {'s':>6} {'counter J':>10} {'W':>7} "
        f"{'instant J':>10} {'d_inst':>8} {'average J':>10} {'d_avg':>8} "
        f"{'meter J':>10} {'d_meter':>8} {'n_i':>4} {'n_a':>4} {'temp C':>6} {'SM MHz':>6}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.phase:<5} {r.window:>3} {r.component:<6} {r.seconds:>6.2f} "
            f"{fmt(r.counter_j, '10.2f')} {fmt(r.counter_w, '7.1f')} "
            f"{fmt(r.instant_j, '10.2f')} {fmt(r.disagreement_instant, '+8.2%')} "
            f"{fmt(r.average_j, '10.2f')} {fmt(r.disagreement_average, '+8.2%')} "
            f"{fmt(r.meter_integrated_j, '10.2f')} {fmt(r.disagreement_meter, '+8.2%')} "
            f"{r.n_instant:>4} {r.n_average:>4} {fmt(r.temperature_c, '6.0f')} "
            f"{fmt(r.sm_clock_mhz, '6.0f')}"
        )
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """Mean and worst disagreement per power kind over the load windows."""
    load = [r for r in rows if r.phase == "load"]
    lines = []
    for name in ("disagreement_instant", "disagreement_average", "disagreement_meter"):
        vals = [getattr(r, name) for r in load if getattr(r, name) is not None]
        if not vals:
            lines.append(f"{name}: no values (counter or power field not supported)")
            continue
        worst = max(vals, key=abs)
        lines.append(
            f"{name}: mean {sum(vals) / len(vals):+.2%}, worst {worst:+.2%} "
            f"over {len(vals)} load windows"
        )
    idle = [r for r in rows if r.phase == "idle" and r.counter_w is not None]
    if idle:
        lines.append(
            "idle power by the counter: "
            + ", ".join(f"{r.component} {r.counter_w:.1f} W" for r in idle)
        )
    return "\n".join(lines)


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, [x.name for x in fields(Row)])
        w.writeheader()
        for r in rows:
            w.writerow(asdict(r))


def install_fake_nvml(power_w: float = FAKE_POWER_W):
    """Put a fake pynvml with one GPU at constant `power_w` on the real clock into
    sys.modules, and make torch describe CUDA device 0 as that GPU. Returns the module."""
    from tests.energy_fakes import FakeGpu, make_pynvml, torch_props

    t0 = time.perf_counter()
    gpu = FakeGpu(FAKE_UUID, "00000000:3B:00.0", lambda t: power_w, lambda t: power_w * t)
    nv = make_pynvml(lambda: time.perf_counter() - t0, [gpu])
    sys.modules["pynvml"] = nv
    torch.cuda.get_device_properties = lambda i: torch_props(FAKE_UUID, 0x3B)
    return nv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="torch device whose GPU is metered")
    p.add_argument("--idle-s", type=float, default=10.0)
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--windows", type=int, default=12)
    p.add_argument("--window-s", type=float, default=5.0)
    p.add_argument(
        "--size", type=int, default=0, help="matmul size (default 8192 on CUDA, 256 on CPU)"
    )
    p.add_argument("--sample-hz", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=Path("nvml_agreement.csv"))
    p.add_argument(
        "--fake-nvml",
        action="store_true",
        help="rehearse without a GPU: fake pynvml, load on the CPU",
    )
    args = p.parse_args(argv)

    if args.fake_nvml:
        install_fake_nvml()
        metered, load_device = "cuda:0", torch.device("cpu")
        torch.set_num_threads(1)  # a rehearsal on a shared CPU: keep the load light
    else:
        metered = args.device
        load_device = torch.device(args.device)
        if load_device.type == "cuda":
            torch.cuda.init()
    size = args.size or (8192 if load_device.type == "cuda" else 256)
    source = NvmlSource(metered)  # raises MeterUnavailable with the reason
    info = source.info()
    print(
        f"NVML: {', '.join(f'{g.component}={g.name} ({g.uuid})' for g in source.gpus)}; "
        f"source {info.source}; power fields "
        f"{[g.fields for g in source.gpus]} (empty: nvmlDeviceGetPowerUsage only)"
    )
    meter = CompositeMeter([source], sample_hz=args.sample_hz)
    try:
        rows = check(
            meter,
            load_device,
            idle_s=args.idle_s,
            warmup_s=args.warmup_s,
            windows=args.windows,
            window_s=args.window_s,
            size=size,
        )
    finally:
        meter.close()
    if meter.sample_errors:
        print(f"sampler errors: {meter.sample_errors}")
    write_csv(rows, args.out)
    print(table(rows))
    print(summary(rows))
    print(f"wrote {args.out}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
