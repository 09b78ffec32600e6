"""How far two execution modes' trained models drift apart in float32 (not a speed test).

Every execution mode computes the same function (float64: tests/test_batched_equivalence.py),
but in float32 the loop and the batched kernels round differently (~1e-7 relative), and
meta-training amplifies round-off: Adam divides each gradient entry by its own running
scale, so an entry whose true gradient is ~0 turns round-off into full steps of up to the
learning rate, and the trained models then follow different trajectories. This script
meta-trains each method once per mode on the suite's real data (its profile's budgets, seed
0, the cell's own `meta_train`), then serves the same test episodes one at a time, and
prints per method: the relative difference of the meta-parameters after training, each
mode's mean test score, and the test episodes whose scores differ.

Last line: `param_drift_max=<largest relative parameter difference over methods>
score_diff_max=<largest |mean score difference|> episodes_differ_max=<largest share of
test episodes scored differently>`.

Usage: python benchmarks/execution_drift.py [--suite omniglot-5w1s] [--profile smoke]
       [--methods fomaml,maml] [--modes loop,batched] [--episodes 40] [--seed 0] [--threads 2]
       [--meta-steps N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import torch

from bench.run.grid import Cell
from bench.run.harness import build, episode_score, same_score
from bench.suite import load_suite

REPO = Path(__file__).resolve().parent.parent


def trained(suite, name: str, execution: str, seed: int, threads: int, data: Path, steps: int):
    """The method of one cell after its meta-training (`steps` meta steps, 0: the
    profile's), and its test sampler."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)  # as the harness, for methods that use the global RNG
    method, samplers = build(Cell(suite, name, seed, "cpu", threads, execution), data)
    if steps:
        method.params = dataclasses.replace(method.params, meta_steps=steps)
    method.meta_train(samplers["train"], lambda step: None, 0)
    return method, samplers["test"]


def scores(suite, method, sampler, n: int) -> list[float]:
    """Per-episode test scores, one task per call (the stream scenario)."""
    out = []
    with torch.no_grad():
        for i in range(n):
            ep = sampler.episode(i)
            pred = method.predict(method.adapt(ep.support_x, ep.support_y), ep.query_x)
            out.append(episode_score(suite, pred, ep.query_y))
    return out


def flat(method) -> torch.Tensor:
    """Every parameter of the method's modules (what meta-training learned), flat."""
    modules = [v for v in vars(method).values() if isinstance(v, torch.nn.Module)]
    return torch.cat([p.detach().reshape(-1) for m in modules for p in m.parameters()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--suite", default="omniglot-5w1s", help="suite name (default: %(default)s)"
    )
    parser.add_argument("--profile", default="smoke", help="suite profile (default: %(default)s)")
    parser.add_argument(
        "--methods",
        default="fomaml,maml",
        help="comma-separated meta-learners (default: %(default)s)",
    )
    parser.add_argument(
        "--modes",
        default="loop,batched",
        help="the two execution modes compared (default: %(default)s)",
    )
    parser.add_argument(
        "--episodes", type=int, default=40, help="test episodes scored (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="cell seed (default: %(default)s)")
    parser.add_argument(
        "--meta-steps",
        type=int,
        default=0,
        help="meta steps instead of the profile's (default: 0, the profile's)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)"
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("METABENCH_DATA", str(REPO.parent / "shared" / "data")),
        help="data root holding omniglot/ (default: $METABENCH_DATA, else ../shared/data)",
    )
    args = parser.parse_args()
    suite = load_suite(args.suite, args.profile)
    modes = args.modes.split(",")
    if len(modes) != 2:
        parser.error(f"--modes: expected two modes, found {args.modes!r}")
    print(
        f"{args.suite} ({args.profile}: {suite.precision}), seed {args.seed}, "
        f"{modes[0]} vs {modes[1]}"
    )
    print(f"{'method':<12} {'param drift':>11} {modes[0]:>8} {modes[1]:>8}  episodes differing")
    drifts, diffs, shares = [], [], []
    for name in args.methods.split(","):
        runs = [
            trained(suite, name, m, args.seed, args.threads, Path(args.data_dir), args.meta_steps)
            for m in modes
        ]
        a, b = (flat(method) for method, _ in runs)
        drift = float((a - b).norm() / a.norm())
        s = [scores(suite, method, sampler, args.episodes) for method, sampler in runs]
        mean = [sum(x) / len(x) for x in s]
        differ = sum(not same_score(x, y) for x, y in zip(*s, strict=True))
        drifts.append(drift)
        diffs.append(abs(mean[0] - mean[1]))
        shares.append(differ / args.episodes)
        print(
            f"{name:<12} {drift:11.3g} {mean[0]:8.3f} {mean[1]:8.3f}  {differ} of {args.episodes}",
            flush=True,
        )
    print(
        f"param_drift_max={max(drifts):.3g} score_diff_max={max(diffs):.3f} "
        f"episodes_differ_max={max(shares):.2f}"
    )


if __name__ == "__main__":
    main()
