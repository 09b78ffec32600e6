"""The harness's deploy protocol: warm-up outside the metered phases, equal chunks, the two
deploy scenarios on the same episodes, repeats that never change a score, and cells whose
scores are not finite fail."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from bench.energy.base import TimeMeter
from bench.methods.scratch import Scratch
from bench.run.deploy import STREAM_SAMPLE, chunks
from bench.run.grid import Cell
from bench.run.harness import CellDiverged, run_cell
from bench.suite import load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"


class OpenWindows(TimeMeter):
    """A time meter that knows which windows are open, and can ask for a minimum window."""

    def __init__(self, min_window_s: float = 0.0) -> None:
        self.open: list[str] = []
        self.seen: set[str] = set()
        self.min_window_s = min_window_s

    def _start(self, window) -> None:
        self.open.append(window.name)
        self.seen.add(window.name)

    def _stop(self, window, seconds):
        self.open.remove(window.name)
        return super()._stop(window, seconds)


def sinusoid(n_test: int = 12, **changes):
    suite = load_suite(SUITES / "sinusoid-5shot.toml", "smoke")
    return dataclasses.replace(suite, n_test_episodes=n_test, **changes)


def run(suite, meter, method: str = "scratch", execution: str = "loop", data_root=Path(".")):
    return run_cell(Cell(suite, method, 0, "cpu", 1, execution), meter, data_root)


def deploy_windows(result) -> list:
    return [w for w in result.windows if w.phase in ("adapt", "predict")]


def test_chunks_are_equal_to_one_task_and_at_least_three() -> None:
    assert [len(c) for c in chunks(600)] == [200, 200, 200]
    assert [len(c) for c in chunks(2000)] == [250] * 8
    assert [len(c) for c in chunks(40)] == [14, 13, 13]
    assert [len(c) for c in chunks(601)] == [201, 200, 200]
    assert [len(c) for c in chunks(2)] == [1, 1]
    for n in (1, 2, 40, 601, 2000):
        assert [i for c in chunks(n) for i in c] == list(range(n))


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
    original = MAML.adapt_tasks  # every batched adaptation (warm-up, adapt, adapt_many)

    def adapt_tasks(self, x, y):
        seen.append(list(meter.open))
        return original(self, x, y)

    monkeypatch.setattr(MAML, "adapt_tasks", adapt_tasks)
    result = run(sinusoid(), meter, "maml", "batched")
    assert seen[0] == ["setup"]
    assert [w.phase for w in result.windows][:2] == ["setup", "meta_train"]


def test_first_meta_step_path_runs_in_the_setup_window(monkeypatch) -> None:
    """The first meta step's lazy initialisation (CUDA context, cuDNN algorithm choice) is
    not billed to meta_train: warm_up_meta runs inside the cell's first setup window, and
    from-scratch (no meta-training) never calls it."""
    from bench.methods.base import Method

    meter, seen = OpenWindows(), []
    original = Method.warm_up_meta

    def warm_up_meta(self, train):
        seen.append((type(self).__name__, list(meter.open)))
        return original(self, train)

    monkeypatch.setattr(Method, "warm_up_meta", warm_up_meta)
    from bench.methods.maml import MAML

    monkeypatch.setattr(MAML, "warm_up_meta", warm_up_meta)
    run(sinusoid(), meter, "maml", "batched")
    run(sinusoid(), meter)
    assert seen == [("MAML", ["setup"])]


def test_two_cells_cost_the_same_per_task_in_either_order(monkeypatch) -> None:
    """A first-call cost (here a fake 1 s the first time a process adapts) must not be
    billed to whichever cell happens to run first: run two cells in both orders and
    compare their deploy seconds per task."""
    first_call = {"done": False}
    original = Scratch.adapt_tasks

    def adapt_tasks(self, x, y):
        if not first_call["done"]:
            first_call["done"] = True
            time.sleep(1.0)
        return original(self, x, y)

    monkeypatch.setattr(Scratch, "adapt_tasks", adapt_tasks)

    def seconds_per_task(suite) -> float:
        r = run(suite, TimeMeter())
        deploy = deploy_windows(r)
        return sum(w.measurement.seconds / w.repeats for w in deploy) / suite.n_test_episodes

    a, b = sinusoid(), sinusoid(n_test=15)
    timings = {}
    for order in ((a, b), (b, a)):
        first_call["done"] = False  # a fresh process
        for suite in order:
            timings.setdefault(suite.n_test_episodes, []).append(seconds_per_task(suite))
    for first, second in timings.values():
        assert abs(first - second) < 1.0 / 12 / 2, timings  # half the fake cost per task


def test_repeats_fill_the_window_and_never_change_scores() -> None:
    once = run(sinusoid(), OpenWindows(0.0))
    repeated = run(sinusoid(), OpenWindows(0.05))
    assert once.episode_scores == repeated.episode_scores
    deploy = deploy_windows(repeated)
    assert all(w.repeats >= 1 for w in deploy)
    assert any(w.repeats > 1 for w in deploy)  # a 4-task sinusoid predict lasts << 50 ms
    assert all(w.measurement.seconds >= 0.05 for w in deploy)
    assert all(w.repeats == 1 for w in once.windows)


def test_loop_streams_every_task_in_at_least_three_windows() -> None:
    loop = run(sinusoid(), OpenWindows())
    deploy = deploy_windows(loop)
    assert {w.scenario for w in deploy} == {"stream"}
    assert [w.n_items for w in deploy if w.phase == "adapt"] == [4, 4, 4]
    assert len(loop.episode_scores) == 12


def test_batched_serves_every_task_in_batch_and_a_sample_in_stream() -> None:
    n = 2 * STREAM_SAMPLE
    loop = run(sinusoid(n), OpenWindows())
    batched = run(sinusoid(n), OpenWindows(), execution="batched")
    deploy = deploy_windows(batched)
    per_chunk = -(-STREAM_SAMPLE // 3)
    assert [(w.phase, w.scenario, w.n_items) for w in deploy[:4]] == [
        ("adapt", "stream", per_chunk),
        ("predict", "stream", per_chunk),
        ("adapt", "batch", 43),
        ("predict", "batch", 43),
    ]
    streamed = sum(w.n_items for w in deploy if w.phase == "adapt" and w.scenario == "stream")
    assert streamed == 3 * per_chunk and streamed < n
    assert sum(w.n_items for w in deploy if w.phase == "adapt" and w.scenario == "batch") == n
    assert batched.episode_scores == pytest.approx(loop.episode_scores, rel=1e-4, abs=1e-6)
    assert not any(w.measurement.warnings for w in deploy)


def test_a_stream_scenario_that_disagrees_is_flagged(monkeypatch) -> None:
    def predict_many(self, adapted, query_x):
        out = torch.stack(
            [self.predict(self.task_state(adapted, t), x) for t, x in enumerate(query_x)]
        )
        return out + 1.0  # every batch prediction off by one: every MSE changes

    monkeypatch.setattr(Scratch, "predict_many", predict_many)
    result = run(sinusoid(), OpenWindows(), execution="batched")
    last = [w for w in result.windows if w.phase == "predict" and w.scenario == "batch"][-1]
    assert any("4 of 4 sampled episodes" in x for x in last.measurement.warnings)


def test_a_cell_whose_scores_are_not_finite_fails(monkeypatch) -> None:
    def predict_tasks(self, state, query_x):
        return torch.full((*query_x.shape[:2], 1), float("nan"))

    monkeypatch.setattr(Scratch, "predict_tasks", predict_tasks)
    with pytest.raises(CellDiverged, match=r"diverged: 12 of 12 test episodes scored mse"):
        run(sinusoid(), OpenWindows())


def test_a_meta_learner_that_blows_up_stops_at_its_first_nan_checkpoint(monkeypatch) -> None:
    from bench.methods.maml import MAML

    def predict_many(self, state, query_x):
        return torch.full((*query_x.shape[:2], 1), float("nan"))

    monkeypatch.setattr(MAML, "predict_many", predict_many)
    meter = OpenWindows()
    with pytest.raises(CellDiverged, match=r"validation mse = nan at meta-step \d+ of \d+"):
        run(sinusoid(), meter, "maml", "batched")
    # no deploy window was opened: the cell stopped at its first checkpoint
    assert "adapt" not in meter.seen


@pytest.mark.parametrize("execution", ["loop", "batched"])
def test_extra_scores_use_the_recorded_scenarios_states(data_root: Path, execution: str) -> None:
    suite = load_suite(SUITES / "dynamics-pendulum-10shot.toml", "smoke")
    suite = dataclasses.replace(suite, n_test_episodes=4)
    result = run_cell(Cell(suite, "scratch", 0, "cpu", 1, execution), TimeMeter(), data_root)
    names = sorted(i for i, name, _ in result.episode_metrics if name == "rollout_mse")
    assert names == [0, 1, 2, 3]
