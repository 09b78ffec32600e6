"""Functional pieces shared by the gradient-based meta-learners.

Parameters live in plain dicts (name -> tensor) and networks are evaluated with
`torch.func.functional_call`, so adaptation builds new tensors and never mutates a module.
One inner loop (`inner_loop`) serves meta-training (with `create_graph=True` for
second-order MAML) and test-time adaptation (without a graph) for MAML, first-order
MAML, ANIL, Meta-SGD and Reptile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.func import functional_call

Tensors = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def batch_stats_only(net: nn.Module) -> nn.Module:
    """Make every BatchNorm use batch statistics always, as in the MAML paper.

    Dropping the running buffers means no call (adaptation, prediction) ever writes state
    into the module, which is what lets `adapt` leave the method untouched.
    """
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return net


def forward(module: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """module evaluated with `params` in place of its own: x [n, *x_shape] -> [n, out]."""
    return functional_call(module, dict(params), (x,))


def sub(params: Mapping[str, torch.Tensor], prefix: str) -> Tensors:
    """The entries under `prefix` (e.g. "1." for a Sequential's head), prefix removed."""
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def inner_loop(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    steps: int,
    lr: float | Mapping[str, torch.Tensor],
    *,
    names: list[str] | None = None,
    create_graph: bool = False,
    first_order: bool = False,
) -> Tensors:
    """`steps` gradient steps on loss_fn(module(x; params), y); returns new parameters.

    x: [n, *x_shape]; y: [n] labels or [n, y_dim] targets. `names` selects the parameters
    that move (default: all; ANIL passes the head's). `lr` is a scalar or a per-parameter
    tensor (Meta-SGD). With `create_graph` the result is differentiable through the
    gradients (second-order MAML); `first_order` detaches the inner gradients (FOMAML),
    so the result still depends on `params` through the identity path only.
    """
    names = list(params) if names is None else names
    current = dict(params)
    for _ in range(steps):
        loss = loss_fn(forward(module, current, x), y)
        grads = torch.autograd.grad(
            loss, [current[n] for n in names], create_graph=create_graph and not first_order
        )
        for n, g in zip(names, grads, strict=True):
            step_lr = lr[n] if isinstance(lr, Mapping) else lr
            current[n] = current[n] - step_lr * (g.detach() if first_order else g)
    return current


def detached(params: Mapping[str, torch.Tensor], trainable: set[str] | None = None) -> Tensors:
    """Fresh leaf copies for test-time adaptation; `trainable` (default all) require grad."""
    return {
        n: p.detach().requires_grad_(trainable is None or n in trainable) for n, p in params.items()
    }
