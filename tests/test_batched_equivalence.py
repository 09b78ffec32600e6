"""Exact before fast: batched execution equals the loop, for every method.

In float64 on CPU, T = 3 tasks, each method built twice from the same seed, once with
execution "loop" (one task per call) and once "batched" (all tasks in one call): adapted
states, logits, per-episode scores and, for the meta-learners, the meta-gradients of one
meta batch (second order for MAML and Meta-SGD) and the parameters after one meta step
agree within 1e-10 relative + 1e-13 absolute. Backbones: Conv-4 (fewer channels),
the sinusoid MLP and the text encoder; both normalisation settings on Conv-4.

Negative control: `torch.func.vmap` over tasks with PyTorch's native BatchNorm gets the
second-order meta-gradient wrong (its batching rule drops the statistics' dependence on
the input in double backward); the same vmap code with BatchNorm as explicit tensor
operations, and the loop with native BatchNorm, are right. That is why the batched path
folds tasks into channels by hand instead.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from method_factory import ALL, SMALL, build_float64, random_tasks

import bench.methods.backbones as backbones
from bench.data.episodes import Episode
from bench.methods import METHODS, TaskSpec

T = 3
META = ["maml", "fomaml", "anil", "metasgd", "learned_opt"]  # meta-gradient methods
LEARNED_OPT = {"hidden": 4}
TASKS = {
    "conv4": TaskSpec("classification", 3, 2, 3, (1, 16, 16)),
    "conv4-transductive": TaskSpec(
        "classification", 3, 2, 3, (1, 16, 16), normalization="transductive"
    ),
    "mlp": TaskSpec("regression", 1, 5, 4, (1,)),
    "text": TaskSpec("classification", 3, 2, 3, (12,), backbone="text"),
}


@pytest.fixture(autouse=True)
def small_and_single_threaded(monkeypatch):
    """Fewer Conv-4 channels; one intra-op thread (on a shared 2-core machine OpenMP's
    spinning makes these small kernels many times slower)."""
    monkeypatch.setattr(backbones, "CONV4_HIDDEN", 8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, task: TaskSpec, execution: str):
    meta_batch = {} if name in SMALL else {"meta_batch": T}
    extra = LEARNED_OPT if name == "learned_opt" else {}
    return build_float64(
        name, dataclasses.replace(task, execution=execution), **meta_batch, **extra
    )


def tasks(task: TaskSpec, seed: int = 0):
    return random_tasks(task, T, seed)


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    a, b = a.detach(), b.detach()
    err = float((a - b).norm())
    assert err <= 1e-10 * float(b.norm()) + 1e-13, (
        f"{what}: |a-b| = {err:.3g}, |b| = {float(b.norm()):.3g}"
    )


def applicable(name: str, task: str) -> bool:
    return TASKS[task].kind in METHODS.get(name).task_kinds


CASES = [(n, t) for n in ALL for t in TASKS if applicable(n, t)]


@pytest.mark.parametrize("name, task", CASES)
def test_batched_deployment_equals_the_loop(name: str, task: str) -> None:
    spec = TASKS[task]
    loop, batched = build(name, spec, "loop"), build(name, spec, "batched")
    sx, sy, qx, _ = tasks(spec)
    assert batched.tasks_per_call(sx.shape[1], "adapt") >= T  # one call really holds every task
    state_loop, state_batched = loop.adapt_many(sx, sy), batched.adapt_many(sx, sy)
    assert state_loop.keys() == state_batched.keys()
    for key in state_loop:
        assert_close(state_batched[key], state_loop[key], f"adapted {key}")
    out_loop, out_batched = (
        loop.predict_many(state_loop, qx),
        batched.predict_many(state_batched, qx),
    )
    assert_close(out_batched, out_loop, "outputs")
    # The loop path is adapt / predict per task (the stream scenario), and a task's own
    # state is a slice of the batched one.
    for t in range(T):
        single = loop.predict(loop.adapt(sx[t], sy[t]), qx[t])
        assert torch.equal(single, out_loop[t])
        assert_close(
            batched.predict(batched.task_state(state_batched, t), qx[t]), single, "task_state"
        )
    if spec.kind == "classification":
        assert torch.equal(out_batched.argmax(-1), out_loop.argmax(-1))  # identical scores


def flat_grads(method) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in method.meta_parameters()])


@pytest.mark.parametrize("name, task", [(n, t) for n in META for t in TASKS if applicable(n, t)])
def test_batched_meta_gradient_equals_the_loop(name: str, task: str) -> None:
    spec = TASKS[task]
    loop, batched = build(name, spec, "loop"), build(name, spec, "batched")
    sx, sy, qx, qy = tasks(spec, seed=1)
    batch = Episode(sx, sy, qx, qy)
    assert batched.tasks_per_call(sx.shape[1] + qx.shape[1], "meta") >= T
    for method in (loop, batched):
        method.meta_backward(batch)
    assert_close(flat_grads(batched), flat_grads(loop), "meta-gradient")
    assert flat_grads(loop).abs().sum() > 0
    for method in (loop, batched):
        method.meta_step(batch, 1)  # Adam
    for (n, a), b in zip(batched.net.named_parameters(), loop.net.parameters(), strict=True):
        assert_close(a.detach(), b.detach(), f"after a meta step: {n}")
    out = [m.predict_many(m.adapt_many(sx, sy), qx) for m in (loop, batched)]
    assert_close(out[1], out[0], "outputs after a meta step")


@pytest.mark.parametrize("task", list(TASKS))
def test_batched_reptile_step_equals_the_loop(task: str) -> None:
    spec = TASKS[task]
    loop, batched = build("reptile", spec, "loop"), build("reptile", spec, "batched")
    batch = Episode(*tasks(spec, seed=2))
    for method in (loop, batched):
        method.meta_step(batch, 1)
    for (n, a), b in zip(batched.net.named_parameters(), loop.net.parameters(), strict=True):
        assert_close(a, b, f"after a Reptile step: {n}")


# -- negative control: vmap's double backward through native BatchNorm -------------------


def native_bn(h, gamma, beta):
    return F.batch_norm(h, None, None, gamma, beta, training=True)


def explicit_bn(h, gamma, beta):
    mean = h.mean((0, 2, 3), keepdim=True)
    var = (h - mean).square().mean((0, 2, 3), keepdim=True)
    return (h - mean) * torch.rsqrt(var + 1e-5) * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


def tiny_net(params, x, bn):
    h = F.conv2d(x, params["w1"], params["b1"], padding=1)
    h = torch.relu(bn(h, params["g1"], params["be1"]))
    return h.mean((2, 3)) @ params["w2"].T + params["b2"]


def meta_gradients(bn, vmapped: bool):
    """Second-order MAML meta-gradient (one inner SGD step) of a conv + BatchNorm net over
    T tasks, per-task loop with autograd or torch.func.vmap over tasks."""
    g = torch.Generator().manual_seed(0)
    params = {
        "w1": torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64),
        "b1": torch.randn(4, generator=g, dtype=torch.float64),
        "g1": 1 + 0.1 * torch.randn(4, generator=g, dtype=torch.float64),
        "be1": 0.1 * torch.randn(4, generator=g, dtype=torch.float64),
        "w2": torch.randn(3, 4, generator=g, dtype=torch.float64),
        "b2": torch.zeros(3, dtype=torch.float64),
    }
    params = {k: v.requires_grad_() for k, v in params.items()}
    sx = torch.randn(T, 6, 1, 6, 6, generator=g, dtype=torch.float64)
    qx = torch.randn(T, 9, 1, 6, 6, generator=g, dtype=torch.float64)
    sy, qy = torch.arange(3).repeat(2).expand(T, -1), torch.arange(3).repeat(3).expand(T, -1)

    def loss(p, x, y):
        return F.cross_entropy(tiny_net(p, x, bn), y)

    def task_loss(p, x1, y1, x2, y2, grad):
        grads = grad(p, x1, y1)
        return loss({k: p[k] - 0.3 * grads[k] for k in p}, x2, y2)

    if vmapped:
        inner = torch.func.grad(loss)
        losses = torch.func.vmap(lambda *a: task_loss(params, *a, inner))(sx, sy, qx, qy)
    else:

        def inner(p, x, y):
            g = torch.autograd.grad(loss(p, x, y), list(p.values()), create_graph=True)
            return dict(zip(p, g, strict=True))

        losses = torch.stack(
            [task_loss(params, sx[t], sy[t], qx[t], qy[t], inner) for t in range(T)]
        )
    return torch.cat(
        [g.reshape(-1) for g in torch.autograd.grad(losses.sum(), list(params.values()))]
    )


def test_vmap_double_backward_through_native_batchnorm_is_wrong() -> None:
    reference = meta_gradients(native_bn, vmapped=False)
    assert_close(meta_gradients(explicit_bn, vmapped=False), reference, "loop, explicit BN")
    assert_close(meta_gradients(explicit_bn, vmapped=True), reference, "vmap, explicit BN")
    wrong = meta_gradients(native_bn, vmapped=True)
    relative = float((wrong - reference).norm() / reference.norm())
    assert relative > 1e-4, (
        f"vmap through native BatchNorm now agrees ({relative:.2g}): the rule was fixed"
    )
