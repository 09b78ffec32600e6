"""Dynamics domain: physics, task draws, standardisation, rollout score, harness plumbing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import DATASETS
from bench.data.dynamics import (
    CARTPOLE,
    PENDULUM,
    ROLLOUT_STEPS,
    DynamicsSource,
    cartpole_deriv,
    rk4_step,
    training_stats,
)
from bench.data.episodes import EpisodeSampler, Shape
from bench.energy.base import TimeMeter
from bench.methods import METHODS
from bench.report.aggregate import LedgerTables, summary_table
from bench.run.grid import Cell
from bench.run.harness import run_cell
from bench.store import Ledger
from bench.suite import load_suite

SUITES = Path(__file__).parent.parent / "suites"


def pendulum_energy(m: float, length: float, state: np.ndarray) -> float:
    """Kinetic + potential energy (J), zero at rest hanging down."""
    theta, omega = state
    return 0.5 * m * length**2 * omega**2 + m * 9.81 * length * (1.0 - np.cos(theta))


def test_undamped_unforced_pendulum_conserves_energy() -> None:
    params = np.array([[1.3, 0.8, 0.0]])
    state = np.array([[2.0, 1.5]])
    e0 = pendulum_energy(1.3, 0.8, state[0])
    for _ in range(1000):
        state = rk4_step(PENDULUM, params, state, np.zeros(1))
    assert abs(pendulum_energy(1.3, 0.8, state[0]) - e0) / e0 < 1e-3


def test_cartpole_derivative_matches_hand_computation() -> None:
    # Upright at rest, cart 1 kg, pole 0.1 kg, 1 m long (half 0.5 m), no friction, F = 10 N:
    # temp = 10 / 1.1 = 9.090909; theta'' = -temp / (0.5 (4/3 - 0.1 / 1.1)) = -14.634146;
    # x'' = temp - 0.1 * 0.5 * theta'' / 1.1 = 9.756098.
    params = np.array([[1.0, 0.1, 1.0, 0.0]])
    d = cartpole_deriv(params, np.zeros((1, 4)), np.array([10.0]))
    np.testing.assert_allclose(d[0], [0.0, 9.756098, 0.0, -14.634146], atol=1e-5)
    # One RK4 step: x = x'' dt^2 / 2 up to O(dt^3); theta likewise.
    nxt = rk4_step(CARTPOLE, params, np.zeros((1, 4)), np.array([10.0]))[0]
    np.testing.assert_allclose(
        nxt[[0, 2]], [0.5 * 9.756098 * 0.02**2, -0.5 * 14.634146 * 0.02**2], rtol=1e-3
    )
    # (gravity speeds the fall as theta leaves upright: about 0.1% within the step)
    np.testing.assert_allclose(nxt[[1, 3]], [9.756098 * 0.02, -14.634146 * 0.02], rtol=2e-3)


def test_cartpole_friction_slows_the_cart() -> None:
    state = np.array([[0.0, 2.0, 0.0, 0.0]])
    with_mu = cartpole_deriv(np.array([[1.0, 0.1, 1.0, 0.5]]), state, np.zeros(1))
    assert with_mu[0, 1] < 0.0


@pytest.mark.parametrize("dataset", ["pendulum", "cartpole"])
def test_task_parameters_differ_and_are_reproducible(dataset: str) -> None:
    source = DATASETS.get(dataset).load(None, "in-dist")
    n_params = source.system.n_params

    def sampler(seed: int) -> EpisodeSampler:
        return EpisodeSampler(source, "test", Shape(1, 10, 50), seed, f"{dataset}|in-dist")

    a, b = sampler(0), sampler(0)
    params = np.stack([a.key(i)[:n_params] for i in range(20)])
    assert len(np.unique(params, axis=0)) == 20
    np.testing.assert_array_equal(a.key(3), b.key(3))
    assert not np.array_equal(a.key(3)[:n_params], sampler(1).key(3)[:n_params])
    low, high = np.array(source.system.params_train).T
    assert np.all((params >= low) & (params <= high))


def test_ood_test_tasks_leave_the_training_range_and_train_tasks_do_not() -> None:
    source = DATASETS.get("cartpole").load(None, "ood")
    low, high = np.array(CARTPOLE.params_train).T
    for part, outside in (("test", True), ("train", False), ("val", False)):
        s = EpisodeSampler(source, part, Shape(1, 10, 50), 0, "cartpole|ood")
        params = np.stack([s.key(i)[:4] for i in range(30)])
        out = np.any((params < low) | (params > high), axis=1)
        assert out.all() if outside else not out.any()


def test_episode_shapes_and_standardisation() -> None:
    source = DynamicsSource(CARTPOLE, "in-dist")
    ep = EpisodeSampler(source, "train", Shape(1, 10, 50), 0, "k").episode(0)
    assert ep.support_x.shape == (10, 5) and ep.support_y.shape == (10, 4)
    assert ep.query_x.shape == (50, 5) and ep.query_y.dtype == torch.float32
    again = training_stats(CARTPOLE)
    np.testing.assert_array_equal(again.y_std, source.stats.y_std)
    # Training-range targets are standardised: pooled over many tasks, mean ~0, std ~1.
    s = EpisodeSampler(source, "train", Shape(1, 50, 50), 1, "k")
    y = torch.cat([s.episode(i).query_y for i in range(60)])
    assert y.mean(0).abs().max() < 0.15
    assert ((y.std(0) - 1).abs() < 0.2).all()


class OracleMethod:
    """Predicts the simulator's exact standardised delta: the rollout error must vanish."""

    device = torch.device("cpu")

    def __init__(self, source: DynamicsSource) -> None:
        self.source = source

    def predict(self, params: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        st = self.source.stats
        raw = x.double().numpy() * st.x_std + st.x_mean
        state, action = raw[:, :-1], raw[:, -1]
        p = np.broadcast_to(params, (len(state), len(params)))
        delta = rk4_step(self.source.system, p, state, action) - state
        return torch.from_numpy((delta - st.y_mean) / st.y_std)


@pytest.mark.parametrize("system", [PENDULUM, CARTPOLE])
def test_rollout_error_is_zero_for_the_true_model(system) -> None:
    source = DynamicsSource(system, "in-dist")
    key = EpisodeSampler(source, "test", Shape(1, 10, 50), 0, "k").key(0)
    true = source.true_rollout(key)
    assert true.shape == (ROLLOUT_STEPS, system.n_state)
    scores = source.extra_scores(OracleMethod(source), source.unpack(key)["params"], key)
    assert scores["rollout_mse"] < 1e-8
    zero = source.model_rollout(lambda x: torch.zeros(1, system.n_state), key)
    assert source.rollout_error(zero, true) > 1e-4


def test_harness_stores_rollout_scores(tmp_path: Path) -> None:
    suite = load_suite(SUITES / "dynamics-pendulum-10shot.toml", "smoke")
    cell = Cell(suite, "scratch", 0, "cpu")
    result = run_cell(cell, TimeMeter(), tmp_path)
    names = {n for _, n, _ in result.episode_metrics}
    assert names == {"rollout_mse"}
    assert len(result.episode_metrics) == suite.n_test_episodes
    ledger = Ledger(tmp_path / "run")
    ledger.write_cell("r", result)
    names = ("cells", "windows", "episodes", "episode_metrics")
    summary = summary_table(LedgerTables(**{t: ledger.table(t) for t in names}))
    assert np.isfinite(summary.loc[0, "rollout_mse_mean"])
    assert summary.loc[0, "rollout_mse_ci95"] > 0


MAML_SUITE = """
dataset = "pendulum"
split = "in-dist"
task = "regression"
n_way = 1
k_shot = 10
n_query = 50
n_test_episodes = 40
seeds = [0]
target_score = 0.1
[methods.scratch]
steps = 10
[methods.maml]
meta_steps = 100
meta_batch = 5
meta_lr = 0.01
inner_lr = 0.01
inner_steps = 1
train_query = 5
test_inner_steps = 10
[profiles.smoke]
n_val_episodes = 5
n_checkpoints = 1
[profiles.standard]
[profiles.paper]
"""


@pytest.mark.skipif("maml" not in METHODS, reason="maml is not registered on this branch yet")
def test_maml_adapts_better_than_scratch_on_dynamics(tmp_path: Path) -> None:
    # Its own suite file, so the check does not depend on the shipped suites' budgets
    # (on the methods branch, 150 MAML steps gave 0.07 against scratch's 0.39).
    path = tmp_path / "pendulum-maml.toml"
    path.write_text(MAML_SUITE)
    suite = load_suite(path, "smoke")
    scores = {
        m: run_cell(Cell(suite, m, 0, "cpu"), TimeMeter(), tmp_path).score_mean
        for m in ("scratch", "maml")
    }
    assert scores["maml"] < 0.75 * scores["scratch"]
