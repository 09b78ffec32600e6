"""Correctness of the meta-learners: meta-gradients, closed forms, no mutation in adapt."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from method_factory import ALL
from torch import nn
from torch.func import functional_call

from bench.data.episodes import Episode, EpisodeSampler, Shape
from bench.methods import METHODS, TaskSpec
from bench.methods.functional import expanded, task_loss
from bench.methods.transfer import ClassBatches

REGRESSION = TaskSpec("regression", 1, 5, 5, (1,))
CLASSIFICATION = TaskSpec("classification", 3, 2, 2, (1, 28, 28))


def regression_episode(seed: int = 0, dtype=torch.float64) -> Episode:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(10, 1, generator=g, dtype=dtype) * 10 - 5
    y = 2 * torch.sin(x + 0.5)
    return Episode(x[:5], y[:5], x[5:], y[5:])


def classification_episode(task: TaskSpec = CLASSIFICATION, seed: int = 0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    n_s, n_q = task.n_way * task.k_shot, task.n_way * task.n_query
    x = torch.rand(n_s + n_q, *task.x_shape, generator=g)
    y = torch.cat(
        [
            torch.arange(task.n_way).repeat_interleave(task.k_shot),
            torch.arange(task.n_way).repeat_interleave(task.n_query),
        ]
    )
    return Episode(x[:n_s], y[:n_s], x[n_s:], y[n_s:])


def build(name: str, task: TaskSpec = REGRESSION, dtype=torch.float64, **params):
    cls = METHODS.get(name)
    method = cls(task, cls.Params(**params), torch.device("cpu"), seed=0)
    for value in vars(method).values():
        if isinstance(value, nn.Module):
            value.to(dtype)
    return method


def meta_grad(method, ep: Episode) -> torch.Tensor:
    """Flat gradient of one task's meta-loss w.r.t. the meta-parameters."""
    params = method.meta_parameters()
    grads = torch.autograd.grad(method.task_meta_loss(ep), params)
    return torch.cat([g.reshape(-1) for g in grads])


class FixedSampler:
    """Stands in for EpisodeSampler: every episode is the same one."""

    def __init__(self, ep: Episode) -> None:
        self.ep = ep
        self.shape = Shape(1, len(ep.support_x), len(ep.query_x))

    def with_shape(self, shape):
        return self

    def episode(self, index: int) -> Episode:
        return self.ep


def test_maml_meta_gradient_matches_finite_differences() -> None:
    maml = build("maml", inner_steps=2, inner_lr=0.05)
    ep = regression_episode()
    params = maml.meta_parameters()
    grad = meta_grad(maml, ep)
    direction = torch.randn(
        grad.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    eps = 1e-6

    def loss_at(t: float) -> float:
        with torch.no_grad():
            shifted, start = {}, 0
            for n, p in maml.net.named_parameters():
                shifted[n] = p + t * direction[start : start + p.numel()].view_as(p)
                start += p.numel()
        adapted = maml.adapt_params(
            {n: s.unsqueeze(0).requires_grad_() for n, s in shifted.items()},
            ep.support_x[None],
            ep.support_y[None],
            2,
            create_graph=False,
        )
        with torch.no_grad():
            out = maml.apply(adapted, ep.query_x[None])[0]
        return float(task_loss(REGRESSION, out, ep.query_y))

    numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
    assert len(grad) == sum(p.numel() for p in params)
    assert float(grad @ direction) == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    # The second-order terms matter here: the first-order gradient misses the estimate.
    fo = meta_grad(build("fomaml", inner_steps=2, inner_lr=0.05), ep)
    assert abs(float(fo @ direction) - numeric) > 1e-3 * abs(numeric)


def test_fomaml_equals_maml_with_detached_inner_gradients() -> None:
    fomaml = build("fomaml", inner_steps=1, inner_lr=0.1)
    ep = regression_episode()
    theta = dict(fomaml.net.named_parameters())
    inner = task_loss(REGRESSION, functional_call(fomaml.net, theta, (ep.support_x,)), ep.support_y)
    g = torch.autograd.grad(inner, list(theta.values()))
    adapted = {n: p - 0.1 * gi.detach() for (n, p), gi in zip(theta.items(), g, strict=True)}
    outer = task_loss(REGRESSION, functional_call(fomaml.net, adapted, (ep.query_x,)), ep.query_y)
    expected = torch.cat([t.reshape(-1) for t in torch.autograd.grad(outer, list(theta.values()))])
    torch.testing.assert_close(meta_grad(fomaml, ep), expected)


def test_reptile_update_equals_closed_form_for_one_task_and_step() -> None:
    eps_outer, alpha = 0.7, 0.05
    reptile = build(
        "reptile", meta_steps=1, meta_batch=1, inner_steps=1, inner_lr=alpha, outer_lr=eps_outer
    )
    ep = regression_episode()
    theta = {n: p.detach().clone() for n, p in reptile.net.named_parameters()}
    x, y = torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y])
    leaves = {n: t.clone().requires_grad_() for n, t in theta.items()}
    loss = task_loss(REGRESSION, functional_call(reptile.net, leaves, (x,)), y)
    grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
    steps = []
    reptile.meta_train(FixedSampler(ep), steps.append, every=1)
    assert steps == [1]
    for n, p in reptile.net.named_parameters():
        torch.testing.assert_close(p.detach(), theta[n] - eps_outer * alpha * grads[n])


def test_anil_inner_loop_leaves_the_body_alone() -> None:
    anil = build("anil", task=CLASSIFICATION, dtype=torch.float32, inner_steps=2)
    ep = classification_episode()
    start = expanded(anil.initial(), 1)
    adapted = anil.adapt_params(start, ep.support_x[None], ep.support_y[None], 2, True)
    body = [n for n in start if n.startswith("0.")]
    head = [n for n in start if n.startswith("1.")]
    assert body and head
    assert all(adapted[n] is start[n] for n in body)  # no inner-loop update of the body
    assert all(not torch.equal(adapted[n], start[n]) for n in head)
    # Only the head is differentiated in the inner loop; the body still learns from the
    # outer (query) loss.
    assert anil.inner_names() == set(head)
    scores = anil.query_scores(adapted, ep.support_x[None], ep.query_x[None])[0]
    loss = task_loss(CLASSIFICATION, scores, ep.query_y)
    loss.backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in anil.net.named_parameters()
        if n.startswith("0.") and "weight" in n
    )


@pytest.mark.parametrize("name, owned", [("metasgd", "lrs"), ("learned_opt", "optimizer")])
def test_meta_learned_optimiser_parts_receive_meta_gradients(name: str, owned: str) -> None:
    method = build(name, inner_steps=2)
    method.task_meta_loss(regression_episode()).backward()
    extra = list(getattr(method, owned).parameters())
    assert extra
    assert all(p.grad is not None for p in extra)
    assert sum(float(p.grad.abs().sum()) for p in extra) > 0
    if name == "metasgd":  # one learned rate per parameter entry
        assert sum(p.numel() for p in extra) == sum(p.numel() for p in method.net.parameters())


def state_hash(method) -> str:
    """sha256 over every tensor the method owns (module parameters and buffers)."""
    h = hashlib.sha256()
    for key, value in sorted(vars(method).items()):
        if isinstance(value, nn.Module):
            for name, t in value.state_dict().items():
                h.update(f"{key}.{name}".encode())
                h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


SMALL = {"protonet": {}, "scratch": {"steps": 2}, "transfer": {"steps": 2}}  # keep it quick


def test_every_method_is_registered() -> None:
    assert set(ALL) <= set(METHODS.names())


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("task", [CLASSIFICATION, REGRESSION], ids=["cls", "reg"])
def test_adapt_never_changes_the_method(name: str, task: TaskSpec) -> None:
    cls = METHODS.get(name)
    if task.kind not in cls.task_kinds:
        pytest.skip(f"{name} does not support {task.kind}")
    method = cls(
        task, cls.Params(**SMALL.get(name, {"test_inner_steps": 2})), torch.device("cpu"), seed=0
    )
    if task.kind == "classification":
        ep = classification_episode(task)
    else:
        ep = dataclasses.replace(regression_episode(dtype=torch.float32))
    before = state_hash(method)
    adapted = method.adapt(ep.support_x, ep.support_y)
    scores = method.predict(adapted, ep.query_x)
    assert scores.shape == (len(ep.query_x), task.out_dim)
    assert torch.isfinite(scores).all()
    assert state_hash(method) == before


class CountingSource:
    """A classification source whose inputs encode (class, sample) for checking."""

    kind = "classification"
    x_shape = (2,)

    def __init__(self, counts: list[int]) -> None:
        self._counts = np.array(counts)

    def counts(self, part: str) -> np.ndarray:
        return self._counts

    def gather(self, part: str, classes: np.ndarray, samples: np.ndarray) -> torch.Tensor:
        c = np.broadcast_to(classes[:, None], samples.shape)
        return torch.as_tensor(np.stack([c, samples], axis=-1), dtype=torch.float32)


def test_transfer_batches_are_deterministic_and_valid() -> None:
    source = CountingSource([3, 1, 5])
    sampler = EpisodeSampler(source, "train", Shape(2, 1, 1), seed=4, stream_key="k")
    batches = ClassBatches(sampler)
    x, y = batches.batch(7, 200)
    x2, y2 = ClassBatches(sampler).batch(7, 200)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(y, batches.batch(8, 200)[1])
    assert torch.equal(x[:, 0].long(), y)  # the label is the gathered class
    assert set(y.tolist()) == {0, 1, 2}
    assert all(
        0 <= s < c
        for s, c in zip(x[:, 1].long().tolist(), source.counts("train")[y].tolist(), strict=True)
    )


@pytest.mark.parametrize("normalization", ["support", "transductive"])
def test_maml_meta_gradient_through_batchnorm_matches_finite_differences(
    normalization: str, monkeypatch
) -> None:
    """Second order through Conv-4's BatchNorm, whose statistics depend on the parameters
    (under "support": the support statistics under the adapted parameters normalise the
    queries)."""
    import bench.methods.backbones as backbones

    monkeypatch.setattr(backbones, "CONV4_HIDDEN", 4)
    task = TaskSpec("classification", 2, 2, 3, (1, 16, 16), normalization=normalization)
    maml = build("maml", task=task, inner_steps=2, inner_lr=0.3)
    ep = classification_episode(task)
    ep = Episode(*(t.double() if t.is_floating_point() else t for t in vars(ep).values()))
    grad = meta_grad(maml, ep)
    direction = torch.randn(
        grad.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    params = maml.meta_parameters()

    def shift(t: float) -> None:
        with torch.no_grad():
            start = 0
            for p in params:
                p.add_(t * direction[start : start + p.numel()].view_as(p))
                start += p.numel()

    def loss_at(t: float) -> float:
        shift(t)
        try:
            return float(maml.task_meta_loss(ep))
        finally:
            shift(-t)

    # A small step: the inner gradient of a ReLU / max-pool network jumps where a unit
    # switches, and so does the meta-loss (here within 1e-5 along this direction).
    eps = 1e-7
    numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
    assert float(grad @ direction) == pytest.approx(numeric, rel=1e-6, abs=1e-9)
