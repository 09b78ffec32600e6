"""Meter overhead: the same CPU training loop with and without the full meter.

Full meter = `build_meter("cpu")`: the sampler thread at 20 Hz, codecarbon's CPU and RAM
estimate models read every 0.5 s and at every window edge (plus NVML and RAPL where the
machine has them), one window per 50 steps as the harness opens them. Runs are
interleaved (unmetered, metered, unmetered, ...) and the median of each is compared.
The last line is `ratio=<median metered / median unmetered>` (target <= 1.01).

    PYTHONPATH=. python benchmarks/meter_overhead.py [--repeats 7] [--steps 400]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.energy.composite import build_meter

WINDOW_STEPS = 50


def train(steps: int, meter=None) -> float:
    """Seconds for `steps` Adam steps of a 784-256-256-10 MLP on a batch of 128."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
    t0 = time.perf_counter()
    window = meter.begin("meta_train") if meter else None
    for step in range(1, steps + 1):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        if meter and step % WINDOW_STEPS == 0:
            meter.end(window)
            window = meter.begin("meta_train")
    if meter:
        meter.end(window)
    return time.perf_counter() - t0


def direct_costs(sample_hz: float, n: int = 2000) -> tuple[float, float]:
    """Seconds per sampler tick and per window (begin + end), timed on a threadless meter
    whose sources are all due on every tick (an upper bound: codecarbon is due every
    0.5 s only). Less noisy than the end-to-end ratio on a shared machine."""
    meter = build_meter("cpu", sample_hz=0)
    try:
        for src in meter.sources:
            src.sample_period_s = 0.0
        t0 = time.perf_counter()
        for _ in range(n):
            meter.sample()
        tick_s = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for _ in range(n):
            meter.end(meter.begin("x"))
        edge_s = (time.perf_counter() - t0) / n
    finally:
        meter.close()
    return tick_s, edge_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--sample-hz", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a shared machine: one thread keeps the noise down
    meter = build_meter("cpu", sample_hz=args.sample_hz)  # hardware detection not timed
    print("sources:", ", ".join(f"{i.name}({i.source})" for i in meter.info() if i.available))
    train(50)  # warm-up
    plain, metered = [], []
    try:
        for r in range(args.repeats):
            plain.append(train(args.steps))
            metered.append(train(args.steps, meter))
            print(f"repeat {r}: unmetered {plain[-1]:.3f} s, metered {metered[-1]:.3f} s")
    finally:
        meter.close()
    tick_s, edge_s = direct_costs(args.sample_hz)
    print(
        f"direct cost: one sampler tick {tick_s * 1e6:.0f} us "
        f"({tick_s * args.sample_hz * 100:.3f}% of a core at {args.sample_hz:g} Hz), "
        f"one window (begin+end) {edge_s * 1e6:.0f} us"
    )
    a, b = statistics.median(plain), statistics.median(metered)
    print(f"median unmetered {a:.3f} s, metered {b:.3f} s over {args.repeats} interleaved repeats")
    print(f"ratio={b / a:.4f}")


if __name__ == "__main__":
    main()
