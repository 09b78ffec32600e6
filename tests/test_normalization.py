"""The BatchNorm statistics rule (suite setting `normalization`), for every method.

"support": a task's queries are normalised with its support set's statistics, so
predicting each query alone equals predicting the whole query batch; "transductive"
(the MAML paper's protocol): the query batch's own statistics, so it does not. ProtoNets
and transfer evaluate in eval mode (running statistics) and are per-query under both.
The text and MLP backbones have no BatchNorm, so their predictions are per-query under
both settings; the transductive control therefore runs on the Conv-4 task. Everything
in float64, where "equal" means a relative difference of at most 1e-12.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from method_factory import ALL, build_float64, random_tasks

import bench.methods.backbones as backbones
from bench.methods import TaskSpec
from bench.methods.functional import expanded

BATCH_STATS = set(ALL) - {"protonet", "transfer"}  # methods whose BatchNorm uses batch statistics
IMAGE = TaskSpec("classification", 3, 2, 4, (1, 28, 28))  # Omniglot-shaped (Conv-4)
TEXT = TaskSpec("classification", 3, 2, 4, (12,), backbone="text")


@pytest.fixture(autouse=True)
def small_conv4(monkeypatch):
    monkeypatch.setattr(backbones, "CONV4_HIDDEN", 8)  # the same network, fewer channels


def build(name: str, task: TaskSpec, normalization: str):
    return build_float64(name, dataclasses.replace(task, normalization=normalization))


def task_data(task: TaskSpec, seed: int = 0):
    """support_x [n_s, *x], support_y [n_s], query_x [n_q, *x] of one task, float64."""
    sx, sy, qx, _ = random_tasks(task, 1, seed)
    return sx[0], sy[0], qx[0]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def alone_vs_batch(method, task: TaskSpec) -> float:
    sx, sy, qx = task_data(task)
    state = method.adapt(sx, sy)
    batch = method.predict(state, qx)
    alone = torch.cat([method.predict(state, qx[i : i + 1]) for i in range(len(qx))])
    return relative(alone, batch)


@pytest.mark.parametrize("task", [IMAGE, TEXT], ids=["conv4", "text"])
@pytest.mark.parametrize("name", ALL)
def test_support_statistics_make_every_query_its_own(name: str, task: TaskSpec) -> None:
    assert alone_vs_batch(build(name, task, "support"), task) <= 1e-12


@pytest.mark.parametrize("name", ALL)
def test_transductive_queries_depend_on_each_other_on_conv4(name: str) -> None:
    diff = alone_vs_batch(build(name, IMAGE, "transductive"), IMAGE)
    if name in BATCH_STATS:
        assert diff > 1e-3  # each query alone is normalised by itself: a different output
    else:
        assert diff <= 1e-12  # eval-mode BatchNorm (running statistics) is per query


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil", "metasgd", "learned_opt"])
def test_meta_training_queries_are_scored_as_at_test_time(name: str) -> None:
    """Train as you test: the meta-training query scores under "support" are the test-time
    predictions after the same adaptation, and each query's score is its own, so the
    number of meta-training queries per class cannot change what a query sees."""
    method = build(name, IMAGE, "support")
    sx, sy, qx = task_data(IMAGE)
    sx, sy, qx = sx[None], sy[None], qx[None]
    steps = method.params.inner_steps
    assert steps == method.params.test_inner_steps
    adapted = method.adapt_params(expanded(method.initial(), 1), sx, sy, steps, True)
    train = method.query_scores(adapted, sx, qx)
    test = method.predict_tasks(method.adapt_tasks(sx, sy), qx)
    assert relative(train.detach(), test) <= 1e-12
    one = torch.cat(
        [method.query_scores(adapted, sx, qx[:, i : i + 1]) for i in range(qx.shape[1])], 1
    )
    assert relative(one.detach(), train.detach()) <= 1e-12
