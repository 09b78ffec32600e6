"""Functional pieces shared by every method that adapts per-task parameters.

Parameters live in plain dicts (name -> tensor). A *stacked* dict holds T tasks' copies,
each entry [T, *shape], and a task-folded network (`Backbone.folded`) evaluates all T at
once on inputs [T, n, *x_shape]; one task is the case T = 1, so the loop and the batched
execution run the same code. One inner loop (`inner_loop`) serves meta-training (with
`create_graph=True` for second-order MAML) and test-time adaptation for MAML, first-order
MAML, ANIL, Meta-SGD, Reptile and from-scratch (with an optimizer over stacked leaves).

BatchNorm is written out as tensor operations (`task_batch_norm`), so its statistics stay
differentiable to any order, and each task gets its own statistics: either those of its
support set (the TaskNorm / MetaBN rule of Bronskill et al., ICML 2020, "TaskNorm:
Rethinking Batch Normalization for Meta-Learning") or those of the batch itself
(transductive, as in the MAML paper's code); `BatchStats` says which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from bench.methods.base import TaskSpec

Tensors = dict[str, torch.Tensor]
# (stacked params {name: [T, ...]}, x [T, n, *x_shape]) -> outputs [T, n, out]
Apply = Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor]
# (outputs [T, n, out], targets [T, n] or [T, n, y_dim]) -> scalar: sum over tasks
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BN_EPS = 1e-5  # nn.BatchNorm2d's default
# Device kinds where Adam runs its capturable arithmetic in every execution mode.
CAPTURABLE_DEVICES = ("cuda",)


@dataclass
class BatchStats:
    """Where every BatchNorm layer of one folded forward pass takes its statistics.

    given: per layer (mean, var), each [T, C]: normalise with these (a task's support
        statistics, stored by `adapt`). Otherwise the statistics of the first `rows` rows
        of every task (the support rows of a [support; query] batch) or, with rows None,
        of all rows (plain batch statistics).
    record: keep the (mean, var) [T, C] each layer normalised with in `used`, in order
        (always kept for `given` and `rows`).
    """

    given: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    rows: int | None = None
    record: bool = False
    used: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def state(self) -> Tensors:
        """The statistics used, as stacked state entries "stats.<layer>.mean|var" [T, C]."""
        out = {}
        for i, (mean, var) in enumerate(self.used):
            out[f"stats.{i}.mean"], out[f"stats.{i}.var"] = mean, var
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor]) -> BatchStats:
        """Given statistics out of a state written by `state()`."""
        n = sum(1 for k in state if k.startswith("stats.") and k.endswith(".mean"))
        return cls(given=[(state[f"stats.{i}.mean"], state[f"stats.{i}.var"]) for i in range(n)])


def task_batch_norm(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stats: BatchStats
) -> torch.Tensor:
    """BatchNorm of T tasks folded into channels, each with its own statistics.

    h [n, T*C, H, W]; weight, bias [T, C]. Statistics per task and channel over the rows
    and pixels that `stats` names (biased variance, eps 1e-5, as nn.BatchNorm2d in
    training mode). Plain batch statistics run PyTorch's fused kernel (exact to every
    order under autograd; torch.func.vmap's batching rule of it is not, see
    tests/test_batched_equivalence.py); support statistics are explicit tensor
    operations, differentiable through the statistics; given statistics without a
    gradient to carry run the fused inference kernel.
    """
    T, C = weight.shape
    w, b = weight.reshape(T * C), bias.reshape(T * C)
    if stats.given is None and stats.rows is None and not stats.record:
        return F.batch_norm(h, None, None, w, b, True, 0.0, BN_EPS)
    if stats.given is not None:
        mean, var = stats.given[len(stats.used)]
    else:
        ref = h if stats.rows is None else h[: stats.rows]
        if ref.dtype in (torch.bfloat16, torch.float16):  # statistics in fp32 under autocast
            ref = ref.float()
        mean = ref.mean((0, 2, 3), keepdim=True)
        var = (ref - mean).square().mean((0, 2, 3))  # two passes: no cancellation
        mean, var = mean.view(T, C), var.view(T, C)
    stats.used.append((mean, var))
    mean, var = mean.reshape(T * C), var.reshape(T * C)
    if not (torch.is_grad_enabled() and (mean.requires_grad or var.requires_grad)):
        return F.batch_norm(h, mean, var, w, b, False, 0.0, BN_EPS)
    return NormWithStats.apply(h, mean, var, w, b)


class NormWithStats(torch.autograd.Function):
    """(h - mean) / sqrt(var + eps) * w + b with statistics given as inputs [C] that
    carry gradients (h [n, C, H, W]), in PyTorch's fused kernels: the forward is
    inference-mode batch_norm, the backward its fused backward (gradients of h, w, b)
    plus the statistics' gradients from its reductions:
    dL/dmean = -w / sqrt(var + eps) * sum(g), dL/dvar = -w / (2 (var + eps)) * sum(g * x_hat).
    The same values as the explicit formula, in about a third of the memory passes; first
    order only (meta-training's query loss is differentiated once; the inner loop's
    double backward runs through plain batch statistics).
    """

    @staticmethod
    def forward(ctx, h, mean, var, w, b):
        ctx.save_for_backward(h, mean, var, w)
        return F.batch_norm(h, mean, var, w, b, False, 0.0, BN_EPS)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        h, mean, var, w = ctx.saved_tensors
        g_h, g_w, g_b = torch.ops.aten.native_batch_norm_backward(
            g, h, w, mean, var, None, None, False, BN_EPS, [True, True, True]
        )
        inv = torch.rsqrt(var + BN_EPS)
        return g_h, -w * inv * g_b, -0.5 * w * inv.square() * g_w, g_w, g_b


def linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """T linear layers at once: h [T, n, in], weight [T, out, in], bias [T, out] -> [T, n, out]."""
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


def nhwc(w: torch.Tensor) -> torch.Tensor:
    """A conv weight [out, in, k, k] with NHWC strides, copied only when it lacks them.

    A weight with one input channel is contiguous in both layouts, so after a functional
    update its strides may read as NCHW; oneDNN then takes the NCHW path and Conv-4 runs
    2x slower on CPU (measured on the first layer).
    """
    if w.stride(1) == 1 and w.is_contiguous(memory_format=torch.channels_last):
        return w
    return torch.empty_like(w, memory_format=torch.channels_last).copy_(w)


def make_optimizer(
    name: str, params: Iterable[torch.Tensor], lr: float, device: torch.device
) -> torch.optim.Optimizer:
    """Adam ("adam") or plain SGD ("sgd") over `params`, the same on a device whatever the
    execution mode.

    On CUDA Adam is `capturable`: its step count and bias corrections are fp32 device
    tensors, as a CUDA graph capture needs (bench.methods.graphs). That arithmetic differs
    from the eager default (a Python-float step size) by round-off, which training steps
    grow (2e-5 relative in scratch's outputs after 3 steps on an Omniglot task), so eager
    batched and loop use it too: graph replay then equals eager execution
    (tests/test_batched_graph.py).
    """
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, capturable=device.type in CAPTURABLE_DEVICES)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


@contextmanager
def buffers_kept(*modules: nn.Module) -> Iterator[None]:
    """Inside, the modules may run in training mode (BatchNorm updating its running
    statistics); on leaving, their buffers and train / eval modes are as they were (a
    warm-up pass that must change nothing)."""
    saved = [({n: b.clone() for n, b in m.named_buffers()}, m.training) for m in modules]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (buffers, training) in zip(modules, saved, strict=True):
                for n, b in m.named_buffers():
                    b.copy_(buffers[n])
                m.train(training)


def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def batch_stats_only(net: nn.Module) -> nn.Module:
    """Drop every BatchNorm's running buffers: methods that evaluate the network folded
    never use them, and no call may write state into the module (adapt never mutates)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return net


def task_loss(task: TaskSpec, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One task: cross-entropy (classification) or MSE (regression); out [n, out]."""
    if task.kind == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out, y)


def task_losses(task: TaskSpec, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each task's mean loss: out [T, n, out], y [T, n] labels or [T, n, y_dim] -> [T].

    Summed over tasks this is the loss of one batched step: each task's parameters get
    exactly their own task's gradient (a mean over tasks would scale it by 1/T, which
    Adam's eps and SGD would both see).
    """
    T, n = out.shape[:2]
    if task.kind == "classification":
        per_row = F.cross_entropy(out.reshape(T * n, -1), y.reshape(T * n), reduction="none")
        return per_row.view(T, n).mean(1)
    return F.mse_loss(out, y, reduction="none").reshape(T, -1).mean(1)


def sub(params: Mapping[str, torch.Tensor], prefix: str) -> Tensors:
    """The entries under `prefix` (e.g. "1." for a Sequential's head), prefix removed."""
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def expanded(params: Mapping[str, torch.Tensor], T: int) -> Tensors:
    """T tasks' views of shared parameters, [T, *shape], no copy; still differentiable
    w.r.t. the originals (meta-training: the meta-gradient sums over the tasks)."""
    return {n: p.unsqueeze(0).expand(T, *p.shape) for n, p in params.items()}


def task_leaves(
    params: Mapping[str, torch.Tensor],
    T: int,
    trainable: set[str] | None = None,
    copy: bool = False,
) -> Tensors:
    """Fresh leaves [T, *shape] for test-time adaptation, detached from `params`.

    `trainable` (default all) require grad. Without `copy` they are expanded views (plain
    SGD never writes into them); with it, per-task memory an optimizer can step in place,
    laid out per task as the original is (Conv-4's channels_last weights stay NHWC).
    """
    out = {}
    for n, p in params.items():
        t = p.detach().unsqueeze(0).expand(T, *p.shape)
        if copy:
            t = torch.empty_strided(
                (T, *p.shape), (p.numel(), *p.stride()), dtype=p.dtype, device=p.device
            ).copy_(t)
        out[n] = t.requires_grad_(trainable is None or n in trainable)
    return out


def inner_loop(
    apply: Apply,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    steps: int,
    lr: float | Mapping[str, torch.Tensor],
    *,
    names: list[str] | set[str] | None = None,
    create_graph: bool = False,
    first_order: bool = False,
) -> Tensors:
    """`steps` SGD steps of T tasks at once on loss_fn(apply(params, x), y); returns the
    new stacked parameters.

    params {name: [T, ...]}; x [T, n, *x_shape]; y [T, n] or [T, n, y_dim]; loss_fn sums
    the tasks' losses, so one gradient holds every task's own. `names` selects the
    parameters that move (default: all; ANIL passes the head's). `lr` is a scalar or a
    per-parameter tensor (Meta-SGD; broadcast over tasks). With `create_graph` the result
    is differentiable through the gradients (second-order MAML); `first_order` detaches
    the inner gradients (FOMAML), so the result still depends on `params` through the
    identity path only.
    """
    names = list(params) if names is None else [n for n in params if n in names]
    current = dict(params)
    for _ in range(steps):
        loss = loss_fn(apply(current, x), y)
        grads = torch.autograd.grad(
            loss, [current[n] for n in names], create_graph=create_graph and not first_order
        )
        for n, g in zip(names, grads, strict=True):
            step_lr = lr[n] if isinstance(lr, Mapping) else lr
            current[n] = current[n] - step_lr * (g.detach() if first_order else g)
    return current
