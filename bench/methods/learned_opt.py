"""A model-based meta-learner: a coordinate-wise LSTM optimiser (Ravi & Larochelle 2017).

Every parameter entry of the base network (the learner) is one coordinate; one small
LSTM, shared by all coordinates, reads the learner's preprocessed gradient and loss
(Andrychowicz et al. 2016: log|g| / p and sign(g) * min(e^p |g|, 1)-style scaling) and
drives Ravi & Larochelle's cell update, in which the learner's parameters are the cell
state:

    theta_t = f_t * theta_{t-1} - i_t * g_t,
    i_t = sigmoid(W_i [h_t, theta_{t-1}, i_{t-1}] + b_i),
    f_t = sigmoid(W_f [h_t, theta_{t-1}, f_{t-1}] + b_f).

b_f starts high (f ~ 1) and b_i at logit(inner_lr), so the untrained optimiser is SGD
with the suite's inner learning rate. The optimiser's weights and the learner's initial
parameters (theta_0, as in the paper) are meta-trained by Adam through the unrolled inner
loop; as in both papers the gradients fed to the optimiser are treated as constants
(no second derivatives). BatchNorm follows the suite's normalization rule, as for MAML.
T tasks adapt at once: their coordinates form one LSTM batch of T * P rows.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from bench.methods.base import METHODS, seeded
from bench.methods.functional import Tensors
from bench.methods.maml import MAML, MAMLParams

PREPROC_P = 10.0


@dataclasses.dataclass(frozen=True)
class LearnedOptParams(MAMLParams):
    inner_lr: float = 0.1  # the initial input-gate value (the untrained optimiser's lr)
    inner_steps: int = 3
    test_inner_steps: int = 3  # the optimiser is trained for a fixed unroll
    hidden: int = 8


def preprocess(x: torch.Tensor, p: float = PREPROC_P) -> torch.Tensor:
    """Andrychowicz et al.'s scale-free encoding: x [n] -> [n, 2]."""
    big = x.abs() >= math.exp(-p)
    log_part = torch.where(big, x.abs().clamp_min(1e-30).log() / p, torch.full_like(x, -1.0))
    sign_part = torch.where(big, x.sign(), x * math.exp(p))
    return torch.stack([log_part, sign_part], dim=1)


class LSTMOptimizer(nn.Module):
    """Coordinate-wise two-layer meta-learner; all coordinates share the weights."""

    def __init__(self, hidden: int, inner_lr: float) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(4, hidden)  # inputs: preprocessed gradient (2), loss (2)
        self.gate_i = nn.Linear(hidden + 2, 1)  # [h, theta, i_prev]
        self.gate_f = nn.Linear(hidden + 2, 1)  # [h, theta, f_prev]
        with torch.no_grad():
            for gate in (self.gate_i, self.gate_f):
                gate.weight.mul_(0.01)  # start close to plain SGD
            self.gate_i.bias.fill_(math.log(inner_lr / (1 - inner_lr)))
            self.gate_f.bias.fill_(6.0)

    def initial_state(self, n: int, ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(h, c, i, f) for n coordinates: [n, hidden] x 2, [n, 1] x 2."""
        h = ref.new_zeros(n, self.cell.hidden_size)
        i = torch.sigmoid(self.gate_i.bias).expand(n, 1)
        f = torch.sigmoid(self.gate_f.bias).expand(n, 1)
        return h, h, i, f

    def forward(
        self,
        theta: torch.Tensor,
        grad: torch.Tensor,
        loss: torch.Tensor,
        state: tuple[torch.Tensor, ...],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """T tasks' flat learner parameters theta, grad [T, P], their losses [T] -> new
        theta [T, P], state (the LSTM runs over all T * P coordinates at once)."""
        T, P = theta.shape
        h, c, i_prev, f_prev = state
        loss_in = preprocess(loss).unsqueeze(1).expand(T, P, 2).reshape(T * P, 2)
        inputs = torch.cat([preprocess(grad.reshape(-1)), loss_in], dim=1)
        h, c = self.cell(inputs, (h, c))
        t = theta.reshape(T * P, 1)
        i = torch.sigmoid(self.gate_i(torch.cat([h, t, i_prev], dim=1)))
        f = torch.sigmoid(self.gate_f(torch.cat([h, t, f_prev], dim=1)))
        new = f * t - i * grad.reshape(T * P, 1)
        return new.view(T, P), (h, c, i, f)


def flatten(params: Tensors) -> torch.Tensor:
    """Stacked params {name: [T, ...]} -> [T, P]."""
    return torch.cat([t.flatten(1) for t in params.values()], dim=1)


def unflatten(flat: torch.Tensor, like: Tensors) -> Tensors:
    """[T, P] -> {name: [T, ...]} shaped as `like`'s entries (views)."""
    out, start = {}, 0
    for n, t in like.items():
        size = t[0].numel()
        out[n] = flat[:, start : start + size].view(t.shape[0], *t.shape[1:])
        start += size
    return out


@METHODS.register("learned_opt")
class LearnedOptimizer(MAML):
    """Model-based: a coordinate-wise LSTM (Ravi & Larochelle 2017) outputs the updates."""

    name = "learned_opt"
    Params = LearnedOptParams

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.optimizer = seeded(
            seed + 1, lambda: LSTMOptimizer(params.hidden, params.inner_lr).to(device)
        )

    def meta_parameters(self) -> list[nn.Parameter]:
        return [*self.net.parameters(), *self.optimizer.parameters()]

    def task_bytes(self, rows: int, phase: str) -> float:
        # The coordinate-wise LSTM holds ~(6 * hidden + 10) values per learner parameter,
        # for every unrolled step when meta-training differentiates through them.
        if phase == "predict":
            return super().task_bytes(rows, phase)
        n_params = sum(p.numel() for p in self.net.parameters())
        steps = self.params.inner_steps + 1 if phase == "meta" else 1
        return (
            super().task_bytes(rows, phase) + n_params * (6 * self.params.hidden + 10) * 4 * steps
        )

    def adapt_params(self, params, x, y, steps, create_graph, stats=None) -> Tensors:
        """Unrolled learned optimisation of T tasks from stacked `params` on their support
        sets x [T, n, *x_shape], y.

        With `create_graph` (meta-training) the updates stay differentiable w.r.t. the
        optimiser's weights and theta_0; the learner's gradients are constants either way.
        """
        theta = flatten(params)
        if not create_graph:
            theta = theta.detach()
        state = self.optimizer.initial_state(theta.numel(), theta)
        for _ in range(steps):
            if not create_graph:
                theta = theta.detach().requires_grad_()
            losses = self.losses(self.apply(unflatten(theta, params), x), y)
            (grad,) = torch.autograd.grad(losses.sum(), theta)
            with torch.set_grad_enabled(create_graph):
                theta, state = self.optimizer(theta, grad, losses.detach(), state)
        adapted = unflatten(theta, params)
        if stats is not None and self.support_norm:
            with torch.no_grad():
                self.apply(adapted, x, stats)
        return adapted
