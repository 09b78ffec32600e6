"""Few-shot adaptation of a learned dynamics model (Nagabandi et al. 2019).

A task is a simulated system with its own physical parameters: a pendulum (mass, length,
damping) or a cart-pole (cart mass, pole mass, pole length, cart friction). Transitions are
simulated in numpy with one RK4 step of dt = 0.02 s from states drawn uniformly over the usual
ranges under random bounded controls (uniform within the actuator limit).

- Input: (state with angles wrapped to [-pi, pi), action); target: next_state - state.
  Both are standardised with statistics of meta-training tasks only: a fixed set of
  `STATS_TASKS` tasks from the training parameter range, drawn from a fixed seed, so the
  statistics are a constant of the dataset (never of the test tasks).
- Splits: "in-dist" (test tasks from the training parameter range) and "ood" (test tasks
  from a wider range with at least one parameter outside the training range). The train
  and val parts always draw from the training range.
- Scores: the harness's regression score is the MSE on standardised targets, i.e. the
  normalised MSE of one-step prediction (1.0 = predicting the training mean). `extra_scores`
  adds `rollout_mse`: a 50-step open-loop rollout of the adapted model from a held-out start
  state under held-out random actions, error per step and state dimension in units of the
  training state standard deviation (angles compared modulo 2 pi), averaged over the steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import DATASETS
from bench.data.episodes import stable_int

DT_S = 0.02
GRAVITY = 9.81  # m/s^2
ROLLOUT_STEPS = 50
STATS_TASKS = 64  # training tasks behind the standardisation statistics
STATS_TRANSITIONS = 200  # transitions per statistics task
# A diverging model's predicted states are clipped to this many training stds from the
# training mean, so its rollout error is large but finite (a mean and CI stay defined).
ROLLOUT_CLIP_STD = 100.0

Deriv = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class System:
    """One family of simulated systems.

    params_train / params_ood: per parameter (low, high); state_range: per state dimension
    (low, high) for sampling start states; action_max: |u| bound (N m or N); angle_dims:
    state dimensions that are angles (wrapped for inputs and errors).
    """

    name: str
    param_names: tuple[str, ...]
    params_train: tuple[tuple[float, float], ...]
    params_ood: tuple[tuple[float, float], ...]
    state_names: tuple[str, ...]
    state_range: tuple[tuple[float, float], ...]
    action_max: float
    angle_dims: tuple[int, ...]
    deriv: Deriv

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    @property
    def n_state(self) -> int:
        return len(self.state_names)


def pendulum_deriv(params: np.ndarray, state: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Pendulum, theta = 0 hanging down: m l^2 theta'' = u - b theta' - m g l sin(theta).

    params [n, 3] (mass kg, length m, damping N m s), state [n, 2] (theta rad, omega rad/s),
    action [n] (torque N m) -> d(state)/dt [n, 2].
    """
    m, length, b = params[:, 0], params[:, 1], params[:, 2]
    theta, omega = state[:, 0], state[:, 1]
    inertia = m * length**2
    alpha = (action - b * omega - m * GRAVITY * length * np.sin(theta)) / inertia
    return np.stack([omega, alpha], axis=1)


def cartpole_deriv(params: np.ndarray, state: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Cart-pole (Barto et al. 1983, as in gym's CartPole), theta = 0 upright, with viscous
    cart friction: the force on the cart is u - mu x'.

    params [n, 4] (cart mass kg, pole mass kg, pole length m (full), friction N s/m),
    state [n, 4] (x m, x' m/s, theta rad, theta' rad/s), action [n] (force N)
    -> d(state)/dt [n, 4].
    """
    m_cart, m_pole, length, mu = params.T
    x_dot, theta, theta_dot = state[:, 1], state[:, 2], state[:, 3]
    half = length / 2.0  # gym's "length" is the half-length to the pole's centre of mass
    total = m_cart + m_pole
    sin, cos = np.sin(theta), np.cos(theta)
    force = action - mu * x_dot
    temp = (force + m_pole * half * theta_dot**2 * sin) / total
    theta_acc = (GRAVITY * sin - cos * temp) / (half * (4.0 / 3.0 - m_pole * cos**2 / total))
    x_acc = temp - m_pole * half * theta_acc * cos / total
    return np.stack([x_dot, x_acc, theta_dot, theta_acc], axis=1)


PENDULUM = System(
    name="pendulum",
    param_names=("mass_kg", "length_m", "damping_nms"),
    params_train=((0.5, 1.5), (0.5, 1.5), (0.0, 0.3)),
    params_ood=((0.25, 2.5), (0.25, 2.0), (0.0, 0.8)),
    state_names=("theta_rad", "omega_rad_s"),
    state_range=((-np.pi, np.pi), (-8.0, 8.0)),
    action_max=2.0,
    angle_dims=(0,),
    deriv=pendulum_deriv,
)
CARTPOLE = System(
    name="cartpole",
    param_names=("cart_mass_kg", "pole_mass_kg", "pole_length_m", "friction_ns_m"),
    params_train=((0.5, 1.5), (0.05, 0.2), (0.6, 1.4), (0.0, 0.5)),
    params_ood=((0.25, 3.0), (0.02, 0.5), (0.3, 2.5), (0.0, 1.5)),
    state_names=("x_m", "x_dot_m_s", "theta_rad", "theta_dot_rad_s"),
    state_range=((-2.4, 2.4), (-3.0, 3.0), (-np.pi, np.pi), (-4.0, 4.0)),
    action_max=10.0,
    angle_dims=(2,),
    deriv=cartpole_deriv,
)
SYSTEMS = {s.name: s for s in (PENDULUM, CARTPOLE)}
SPLITS = ("in-dist", "ood")


def rk4_step(
    system: System, params: np.ndarray, state: np.ndarray, action: np.ndarray, dt_s: float = DT_S
) -> np.ndarray:
    """One classical Runge-Kutta step with the action held constant (zero-order hold).

    params [n, P], state [n, S], action [n] -> next state [n, S] (float64).
    """
    f = system.deriv
    k1 = f(params, state, action)
    k2 = f(params, state + 0.5 * dt_s * k1, action)
    k3 = f(params, state + 0.5 * dt_s * k2, action)
    k4 = f(params, state + dt_s * k3, action)
    return state + dt_s / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def wrap_angles(system: System, state: np.ndarray) -> np.ndarray:
    """Angles of state [..., S] wrapped to [-pi, pi); other dimensions unchanged."""
    out = np.array(state, dtype=np.float64, copy=True)
    for d in system.angle_dims:
        out[..., d] = (out[..., d] + np.pi) % (2.0 * np.pi) - np.pi
    return out


def uniform(
    rng: np.random.Generator, ranges: tuple[tuple[float, float], ...], n: int
) -> np.ndarray:
    """n points uniform in the box `ranges` -> [n, len(ranges)]."""
    low, high = np.array(ranges).T
    return rng.uniform(low, high, size=(n, len(ranges)))


def draw_params(system: System, rng: np.random.Generator, ood: bool) -> np.ndarray:
    """One task's parameters [P]: from the training range, or (ood) from the wider range with
    at least one parameter outside the training range (rejection sampling)."""
    if not ood:
        return uniform(rng, system.params_train, 1)[0]
    low, high = np.array(system.params_train).T
    while True:
        p = uniform(rng, system.params_ood, 1)[0]
        if np.any((p < low) | (p > high)):
            return p


@dataclass(frozen=True)
class Stats:
    """Standardisation: x = (input - x_mean) / x_std with input [S + 1] = (wrapped state,
    action); y = (delta - y_mean) / y_std with delta [S]."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray


def training_stats(system: System) -> Stats:
    """Statistics of STATS_TASKS training-range tasks x STATS_TRANSITIONS transitions, from a
    fixed seed: deterministic and independent of any suite's test tasks."""
    rng = np.random.default_rng(stable_int(f"dynamics-stats|{system.name}"))
    params = np.repeat(uniform(rng, system.params_train, STATS_TASKS), STATS_TRANSITIONS, 0)
    n = len(params)
    state = uniform(rng, system.state_range, n)
    action = rng.uniform(-system.action_max, system.action_max, size=n)
    x = np.concatenate([wrap_angles(system, state), action[:, None]], axis=1)
    y = rk4_step(system, params, state, action) - state
    return Stats(x.mean(0), x.std(0), y.mean(0), y.std(0))


class DynamicsSource:
    """Regression source: one task = one system instance, K support + Q query transitions.

    Key layout (float64): [params (P), states (N x S), actions (N), rollout start (S),
    rollout actions (ROLLOUT_STEPS)] with N = n_support + n_query.
    """

    kind = "regression"
    backbone = "mlp"

    def __init__(self, system: System, split: str) -> None:
        self.system = system
        self.split = split
        self.stats = training_stats(system)
        self.x_shape = (system.n_state + 1,)
        self.y_dim = system.n_state

    def draw(self, part: str, rng: np.random.Generator, n_support: int, n_query: int) -> np.ndarray:
        s, n = self.system, n_support + n_query
        params = draw_params(s, rng, ood=self.split == "ood" and part == "test")
        states = uniform(rng, s.state_range, n)
        actions = rng.uniform(-s.action_max, s.action_max, size=n)
        start = uniform(rng, s.state_range, 1)[0]
        rollout_actions = rng.uniform(-s.action_max, s.action_max, size=ROLLOUT_STEPS)
        return np.concatenate([params, states.ravel(), actions, start, rollout_actions])

    def unpack(self, key: np.ndarray) -> dict[str, np.ndarray]:
        """The key's fields: params [P], states [N, S], actions [N], start [S], plan [50]."""
        s = self.system
        p, ns = s.n_params, s.n_state
        n = (len(key) - p - ns - ROLLOUT_STEPS) // (ns + 1)
        states_end = p + n * ns
        return {
            "params": key[:p],
            "states": key[p:states_end].reshape(n, ns),
            "actions": key[states_end : states_end + n],
            "start": key[states_end + n : states_end + n + ns],
            "plan": key[states_end + n + ns :],
        }

    def inputs(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Standardised model inputs: state [n, S], action [n] -> [n, S + 1]."""
        x = np.concatenate([wrap_angles(self.system, state), action[:, None]], axis=1)
        return (x - self.stats.x_mean) / self.stats.x_std

    def materialize(self, part: str, key: np.ndarray, n_support: int) -> tuple[torch.Tensor, ...]:
        f = self.unpack(key)
        params = np.broadcast_to(f["params"], (len(f["actions"]), len(f["params"])))
        delta = rk4_step(self.system, params, f["states"], f["actions"]) - f["states"]
        x = torch.from_numpy(self.inputs(f["states"], f["actions"])).float()
        y = torch.from_numpy((delta - self.stats.y_mean) / self.stats.y_std).float()
        return x[:n_support], y[:n_support], x[n_support:], y[n_support:]

    def true_rollout(self, key: np.ndarray) -> np.ndarray:
        """The simulator's trajectory from the key's start state: [ROLLOUT_STEPS, S]."""
        f = self.unpack(key)
        state, out = f["start"][None, :], []
        for u in f["plan"]:
            state = rk4_step(self.system, f["params"][None, :], state, np.array([u]))
            out.append(state[0])
        return np.stack(out)

    def model_rollout(
        self, step: Callable[[torch.Tensor], torch.Tensor], key: np.ndarray
    ) -> np.ndarray:
        """Open-loop rollout of a learned model: `step` maps standardised inputs [1, S + 1]
        to standardised deltas [1, S]; returns predicted states [ROLLOUT_STEPS, S]."""
        f, st = self.unpack(key), self.stats
        low = st.x_mean[:-1] - ROLLOUT_CLIP_STD * st.x_std[:-1]
        high = st.x_mean[:-1] + ROLLOUT_CLIP_STD * st.x_std[:-1]
        state, out = f["start"][None, :], []
        for u in f["plan"]:
            x = torch.from_numpy(self.inputs(state, np.array([u]))).float()
            y = step(x).detach().double().cpu().numpy().reshape(1, -1)
            state = np.clip(state + y * st.y_std + st.y_mean, low, high)
            out.append(state[0])
        return np.stack(out)

    def rollout_error(self, predicted: np.ndarray, true: np.ndarray) -> float:
        """Mean squared error [T, S] x [T, S] -> scalar, per dimension in units of the training
        state std (angle differences wrapped to [-pi, pi))."""
        diff = predicted - true
        for d in self.system.angle_dims:
            diff[:, d] = (diff[:, d] + np.pi) % (2.0 * np.pi) - np.pi
        return float(np.mean((diff / self.stats.x_std[:-1]) ** 2))

    def extra_scores(self, method, adapted, key: np.ndarray) -> dict[str, float]:
        """Scores beyond the one-step MSE: {"rollout_mse": 50-step open-loop error}.

        Called by the harness after the deploy windows (not metered): the rollout is an
        evaluation of the adapted model, not part of serving a task.
        """
        device = getattr(method, "device", torch.device("cpu"))
        with torch.no_grad():
            predicted = self.model_rollout(lambda x: method.predict(adapted, x.to(device)), key)
        return {"rollout_mse": self.rollout_error(predicted, self.true_rollout(key))}


class _Dynamics:
    """Registry entry shared by the systems: regression tasks, splits in-dist and ood."""

    system: System
    task_kinds = ("regression",)
    splits = SPLITS
    samples_per_class = None  # unbounded: every task simulates fresh transitions

    @staticmethod
    def n_classes(split: str, part: str) -> int:
        return 1

    @classmethod
    def load(cls, root: Path | None, split: str) -> DynamicsSource:
        return _cached_source(cls.system.name, split)


@functools.lru_cache(maxsize=8)
def _cached_source(system: str, split: str) -> DynamicsSource:
    return DynamicsSource(SYSTEMS[system], split)


@DATASETS.register("pendulum")
class Pendulum(_Dynamics):
    system = PENDULUM


@DATASETS.register("cartpole")
class CartPole(_Dynamics):
    system = CARTPOLE
