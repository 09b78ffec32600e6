"""Tiny suite files for end-to-end tests: a few sinusoid episodes at smoke budgets, so a
run through the CLI, the Python API or Dask takes seconds."""

from __future__ import annotations

import json
from pathlib import Path

SINUSOID = {
    "dataset": "sinusoid",
    "split": "default",
    "task": "regression",
    "n_way": 1,
    "k_shot": 5,
    "n_query": 20,
    "n_test_episodes": 600,
    "target_score": 0.5,
}


def sinusoid_suite(
    path: Path, steps: dict[str, int], seeds: tuple[int, ...] = (0,), **smoke: object
) -> Path:
    """Write a sinusoid suite to `path`: each method of `steps` at lr 0.01, its smoke
    profile running that many steps on 4 test and 2 validation episodes with no idle
    baseline (`smoke` overrides or adds smoke-profile keys). Returns `path`."""
    smoke = {"n_test_episodes": 4, "n_val_episodes": 2, "idle_s": 0, **smoke}
    lines = [f"{k} = {json.dumps(v)}" for k, v in {**SINUSOID, "seeds": list(seeds)}.items()]
    for method in steps:
        lines += [f"[methods.{method}]", "lr = 0.01"]
    lines += ["[profiles.smoke]", *(f"{k} = {json.dumps(v)}" for k, v in smoke.items())]
    for method, n in steps.items():
        lines += [f"[profiles.smoke.methods.{method}]", f"steps = {n}"]
    lines += ["[profiles.standard]", "[profiles.paper]"]
    path.write_text("\n".join(lines) + "\n")
    return path
