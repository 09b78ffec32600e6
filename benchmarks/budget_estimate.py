"""Predict the wall time of every cell of a profile from a few timed steps.

For each suite and method it builds the cell exactly as the harness does (the profile's
hyperparameters), times `--steps` meta-training steps and `--episodes` test episodes
(adapt + predict, plus the source's extra scores), and extrapolates:

    cell_s = meta_steps * s_per_step + (n_checkpoints * n_val + n_test) * s_per_episode

Prints one line per cell, a total per suite, and as last line `total_min=<minutes>`.
Use it to size a profile's budgets before a long run (e.g. `make bench` within an hour).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from bench.data import resolve_data_root
from bench.run.execution import resolve_execution
from bench.run.grid import Cell
from bench.run.harness import build
from bench.suite import available_suites, load_suite


def time_cell(cell: Cell, data_root: Path, steps: int, episodes: int) -> tuple[float, float]:
    """Seconds per meta-training step and per test episode for this cell's settings."""
    config = cell.suite.method(cell.method)
    n_steps = min(steps, config.params.meta_steps)
    params = dataclasses.replace(config.params, meta_steps=n_steps)
    suite = dataclasses.replace(cell.suite, methods=(dataclasses.replace(config, params=params),))
    method, samplers = build(dataclasses.replace(cell, suite=suite), data_root)
    per_step = 0.0
    if n_steps:
        start = time.perf_counter()
        method.meta_train(samplers["train"], lambda step: None, 10**9)
        per_step = (time.perf_counter() - start) / n_steps
    sampler = samplers["test"]
    extra = getattr(sampler.source, "extra_scores", None)
    start = time.perf_counter()
    for i in range(episodes):
        key = sampler.key(i)
        ep = sampler.materialize(key)
        adapted = method.adapt(ep.support_x, ep.support_y)
        method.predict(adapted, ep.query_x)
        if extra:
            extra(method, adapted, key)
    return per_step, (time.perf_counter() - start) / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", help="default: every suite in suites/")
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    data_root = resolve_data_root(args.data_dir)
    names = args.suites or list(available_suites())
    total_s = 0.0
    for name in names:
        suite = load_suite(name, args.profile)
        suite_s = 0.0
        for config in suite.methods:
            mode = resolve_execution(suite.execution, "cpu", config.name, name, suite.dataset)
            cell = dataclasses.replace(
                Cell(suite, config.name, suite.seeds[0], "cpu"), execution=mode
            )
            per_step, per_episode = time_cell(cell, data_root, args.steps, args.episodes)
            n_episodes = (
                suite.n_checkpoints * suite.n_val_episodes * bool(config.params.meta_steps)
                + suite.n_test_episodes
            )
            cell_s = config.params.meta_steps * per_step + n_episodes * per_episode
            suite_s += cell_s
            print(
                f"{suite.name:<28} {config.name:<12} meta {config.params.meta_steps:>5} x "
                f"{per_step * 1e3:8.1f} ms  episodes {n_episodes:>4} x {per_episode * 1e3:7.1f} ms"
                f"  = {cell_s:7.1f} s",
                flush=True,
            )
        print(f"{suite.name:<28} {'TOTAL':<12} {suite_s / 60:.1f} min", flush=True)
        total_s += suite_s
    print(f"threads={torch.get_num_threads()} total_min={total_s / 60:.1f}")


if __name__ == "__main__":
    main()
