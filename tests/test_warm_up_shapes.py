"""The deploy warm-up (`BatchedMethod.warm_up`, run in the harness's setup window) makes
one call of every shape the metered passes will make, and no more: warming up a whole
chunk used to cost as much as the chunk's metered adaptation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from method_factory import build_float64, random_tasks

from bench.methods import TaskSpec

MLP = TaskSpec("regression", 1, 5, 4, (1,), execution="batched")


def recorded_calls(method, monkeypatch) -> list[tuple[str, int]]:
    """(phase, tasks) of every batched call the method makes from now on."""
    calls: list[tuple[str, int]] = []
    for phase in ("adapt", "predict"):
        original = getattr(method, f"{phase}_tasks")

        def spy(*args, _phase=phase, _original=original):
            calls.append((_phase, len(args[-1])))
            return _original(*args)

        monkeypatch.setattr(method, f"{phase}_tasks", spy)
    return calls


@pytest.mark.parametrize("name", ["scratch", "maml", "transfer"])
def test_warm_up_makes_each_call_shape_once(name, monkeypatch) -> None:
    method = build_float64(name, MLP)
    caps = {"adapt": 4, "predict": 6}
    monkeypatch.setattr(method, "tasks_per_call", lambda rows, phase: caps[phase])
    sx, sy, qx, _ = random_tasks(MLP, 10)
    calls = recorded_calls(method, monkeypatch)
    method.predict_many(method.adapt_many(sx, sy), qx)
    metered = set(calls)  # adapt 4, 3, 3; predict 5, 5
    assert metered == {("adapt", 4), ("adapt", 3), ("predict", 5)}
    calls.clear()
    method.warm_up(sx, sy, qx)
    assert set(calls) == metered | {("adapt", 1), ("predict", 1)}  # and one task alone
    assert len(calls) == len(set(calls))  # each shape once: 9 tasks adapted, not 11


def test_warm_up_outputs_are_thrown_away(monkeypatch) -> None:
    """Warm-up changes nothing the metered passes compute (float64, same seed)."""
    sx, sy, qx, _ = random_tasks(MLP, 10)
    cold, warm = build_float64("scratch", MLP), build_float64("scratch", MLP)
    warm.warm_up(sx, sy, qx)
    expected = cold.predict_many(cold.adapt_many(sx, sy), qx)
    assert torch.equal(warm.predict_many(warm.adapt_many(sx, sy), qx), expected)


def test_loop_methods_keep_the_per_task_warm_up() -> None:
    loop = dataclasses.replace(MLP, execution="loop")
    method = build_float64("scratch", loop)
    sx, sy, qx, _ = random_tasks(loop, 3)
    method.warm_up(sx, sy, qx)  # the fallback: a loop over the tasks
