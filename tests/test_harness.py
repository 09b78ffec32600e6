"""The harness's deploy protocol: warm-up outside the metered phases, equal chunks, the two
deploy scenarios on the same episodes, and repeats that never change a score."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from bench.energy.base import TimeMeter
from bench.methods.scratch import Scratch
from bench.run.deploy import chunks
from bench.run.grid import Cell
from bench.run.harness import run_cell
from bench.suite import load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"


class OpenWindows(TimeMeter):
    """A time meter that knows which windows are open, and can ask for a minimum window."""

    def __init__(self, min_window_s: float = 0.0) -> None:
        self.open: list[str] = []
        self.min_window_s = min_window_s

    def _start(self, window) -> None:
        self.open.append(window.name)

    def _stop(self, window, seconds):
        self.open.remove(window.name)
        return super()._stop(window, seconds)


def sinusoid(n_test: int = 12, **changes):
    suite = load_suite(SUITES / "sinusoid-5shot.toml", "smoke")
    return dataclasses.replace(suite, n_test_episodes=n_test, **changes)


def run(suite, meter, method: str = "scratch", execution: str = "loop", data_root=Path(".")):
    return run_cell(Cell(suite, method, 0, "cpu", 1, execution), meter, data_root)


def test_chunks_are_equal_and_cover_every_episode() -> None:
    assert [len(c) for c in chunks(600, 256)] == [200, 200, 200]
    assert [len(c) for c in chunks(40, 256)] == [40]
    assert [len(c) for c in chunks(601, 256)] == [201, 201, 199]
    assert [i for c in chunks(601, 256) for i in c] == list(range(601))


def test_first_call_of_a_cell_happens_in_a_setup_window(monkeypatch) -> None:
    """A process's first adaptation is slow (lazy initialisation): it must never land in a
    metered window. The fake records the windows open at its first call."""
    meter, seen = OpenWindows(), []
    original = Scratch.adapt

    def adapt(self, x, y):
        if not seen:
            seen.append(list(meter.open))
        return original(self, x, y)

    monkeypatch.setattr(Scratch, "adapt", adapt)
    result = run(sinusoid(), meter)
    assert seen == [["setup"]]
    phases = [w.phase for w in result.windows]
    assert phases[0] == "setup" and phases.count("setup") == 2  # cell start, deploy start


def test_meta_learner_is_warmed_up_before_its_first_meta_train_window(monkeypatch) -> None:
    from bench.methods.maml import MAML

    meter, seen = OpenWindows(), []
    original = MAML.adapt

    def adapt(self, x, y):
        seen.append(list(meter.open))
        return original(self, x, y)

    monkeypatch.setattr(MAML, "adapt", adapt)
    result = run(sinusoid(), meter, "maml")
    assert seen[0] == ["setup"]
    assert [w.phase for w in result.windows][:2] == ["setup", "meta_train"]


def test_repeats_fill_the_window_and_never_change_scores() -> None:
    once = run(sinusoid(), OpenWindows(0.0))
    repeated = run(sinusoid(), OpenWindows(0.05))
    assert once.episode_scores == repeated.episode_scores
    deploy = [w for w in repeated.windows if w.phase in ("adapt", "predict")]
    assert all(w.repeats >= 1 for w in deploy)
    assert any(w.repeats > 1 for w in deploy)  # a 12-task sinusoid predict lasts << 50 ms
    assert all(w.measurement.seconds >= 0.05 for w in deploy)
    assert all(w.repeats == 1 for w in once.windows)


def test_batch_scenario_runs_only_when_execution_batches() -> None:
    loop = run(sinusoid(), OpenWindows())
    assert {w.scenario for w in loop.windows if w.phase in ("adapt", "predict")} == {"stream"}
    batched = run(sinusoid(), OpenWindows(), execution="batched")
    deploy = [w for w in batched.windows if w.phase in ("adapt", "predict")]
    assert [(w.phase, w.scenario) for w in deploy] == [
        ("adapt", "stream"),
        ("predict", "stream"),
        ("adapt", "batch"),
        ("predict", "batch"),
    ]
    assert all(w.n_items == 12 for w in deploy)
    assert batched.episode_scores == loop.episode_scores
    assert not any(w.measurement.warnings for w in deploy)


def test_a_batch_scenario_that_disagrees_is_flagged(monkeypatch) -> None:
    def predict_many(self, adapted, query_x):
        out = torch.stack(
            [self.predict(self.task_state(adapted, t), x) for t, x in enumerate(query_x)]
        )
        return out + 1.0  # every prediction off by one: every MSE changes

    monkeypatch.setattr(Scratch, "predict_many", predict_many)
    result = run(sinusoid(), OpenWindows(), execution="batched")
    last = [w for w in result.windows if w.phase == "predict" and w.scenario == "batch"][-1]
    assert any("12 of 12 episode scores differ" in x for x in last.measurement.warnings)


@pytest.mark.parametrize("execution", ["loop", "batched"])
def test_extra_scores_use_the_stream_states(data_root: Path, execution: str) -> None:
    suite = load_suite(SUITES / "dynamics-pendulum-10shot.toml", "smoke")
    suite = dataclasses.replace(suite, n_test_episodes=4)
    result = run_cell(Cell(suite, "scratch", 0, "cpu", 1, execution), TimeMeter(), data_root)
    assert sorted(i for i, name, _ in result.episode_metrics if name == "rollout_mse") == [
        0,
        1,
        2,
        3,
    ]
