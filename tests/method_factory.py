"""The built-in methods at test size for exactness tests: every method, small budgets,
float64 on the CPU, and random tasks stacked along a leading task axis."""

from __future__ import annotations

import torch
from torch import nn

from bench.methods import METHODS, Method, TaskSpec

ALL = [
    "protonet",
    "scratch",
    "maml",
    "fomaml",
    "reptile",
    "anil",
    "metasgd",
    "learned_opt",
    "transfer",
]
# Few steps: exactness does not need a trained model. Every other method gets INNER.
SMALL = {"protonet": {}, "scratch": {"steps": 3}, "transfer": {"steps": 3}}
INNER = {"test_inner_steps": 2, "inner_steps": 2}


def build_float64(name: str, task: TaskSpec, **params: object) -> Method:
    """Method `name` for `task` on the CPU, seed 0, its small budget (SMALL, else INNER)
    updated by `params`, every module cast to float64."""
    cls = METHODS.get(name)
    params = cls.Params(**{**SMALL.get(name, INNER), **params})
    method = cls(task, params, torch.device("cpu"), seed=0)
    for value in vars(method).values():
        if isinstance(value, nn.Module):
            value.to(torch.float64)
    return method


def random_tasks(task: TaskSpec, n_tasks: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """`n_tasks` random episodes of `task`'s shape, stacked: support_x [T, n_s, *x],
    support_y [T, n_s], query_x [T, n_q, *x], query_y [T, n_q] (float64; labels int64 for
    classification, sin(3x) for regression; text token ids with padding after 8 tokens)."""
    g = torch.Generator().manual_seed(seed)
    n_s, n_q = task.n_way * task.k_shot, task.n_way * task.n_query
    if task.backbone == "text":
        ids = torch.randint(1, 2048, (n_tasks, n_s + n_q, *task.x_shape), generator=g)
        ids[..., 8:] = 0  # padding
        x = ids.to(torch.float64)
    else:
        x = torch.rand(n_tasks, n_s + n_q, *task.x_shape, generator=g, dtype=torch.float64)
    if task.kind == "classification":
        labels = torch.arange(task.n_way)
        y = torch.cat(
            [labels.repeat_interleave(task.k_shot), labels.repeat_interleave(task.n_query)]
        ).expand(n_tasks, -1)
    else:
        y = torch.sin(3 * x)
    return x[:, :n_s], y[:, :n_s], x[:, n_s:], y[:, n_s:]
