"""Transfer baseline (Chen et al. 2019, "A Closer Look at Few-shot Classification").

meta_train is ordinary supervised pretraining of the backbone: for classification, a
linear (or, for Baseline++, cosine) classifier over all base classes of the train part,
on random batches drawn deterministically from the cell seed; for regression, the pooled
data of sampled training tasks. Per test task, a new head on the frozen backbone's
features is fine-tuned on the support set. The backbone runs in eval mode when adapting
and predicting (BatchNorm running statistics from pretraining), as in the paper.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.data.episodes import EpisodeSampler, stable_int
from bench.methods.backbones import backbone_for
from bench.methods.base import METHODS, CheckpointFn, Params, seeded, should_checkpoint
from bench.methods.batched import State, TaskBatched, activation_bytes
from bench.methods.functional import (
    Tensors,
    buffers_kept,
    linear,
    make_optimizer,
    task_leaves,
    task_loss,
    task_losses,
)


@dataclasses.dataclass(frozen=True)
class TransferParams(Params):
    meta_steps: int = 500  # pretraining steps
    batch_size: int = 64
    lr: float = 1e-3
    head: str = "linear"  # "linear" (Baseline) or "cosine" (Baseline++)
    scale: float = 10.0  # cosine head temperature
    steps: int = 100  # fine-tuning steps per task
    head_lr: float = 0.01


class CosineHead(nn.Module):
    """Baseline++: scale * cos(feature, class weight); [n, d] -> [n, out]."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / in_features**0.5)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T


def make_head(kind: str, in_features: int, out_features: int, scale: float) -> nn.Module:
    if kind == "cosine":
        return CosineHead(in_features, out_features, scale)
    return nn.Linear(in_features, out_features)


class ClassBatches:
    """Deterministic random batches over every sample of every class of one part.

    batch(i) is a pure function of (stream key, part, seed, i): a numpy Generator picks
    samples uniformly over the part's pooled samples.
    """

    def __init__(self, sampler: EpisodeSampler) -> None:
        self.sampler = sampler
        counts = sampler.source.counts(sampler.part)
        self.n_classes = len(counts)
        self.ends = np.cumsum(counts)
        self.starts = self.ends - counts

    def indices(self, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """classes [size] and sample indices [size] of batch `index`."""
        s = self.sampler
        rng = np.random.default_rng(
            [stable_int(s.stream_key), stable_int(s.part), stable_int("pretrain"), s.seed, index]
        )
        flat = rng.integers(0, self.ends[-1], size=size)
        classes = np.searchsorted(self.ends, flat, side="right")
        return classes, flat - self.starts[classes]

    def batch(self, index: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x [size, *x_shape] and labels [size] (class indices of the part) on the device."""
        classes, samples = self.indices(index, size)
        x = self.sampler.source.gather(self.sampler.part, classes, samples[:, None])[:, 0]
        d = self.sampler.device
        return x.to(d), torch.as_tensor(classes, dtype=torch.long, device=d)


@METHODS.register("transfer")
class Transfer(TaskBatched):
    """Transfer (Chen et al. 2019): supervised pretraining, then a new head per task."""

    name = "transfer"
    Params = TransferParams
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"head": ("linear", "cosine")}

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.body = seeded(seed, lambda: backbone_for(task).to(device))
        self.loss = functools.partial(task_loss, task)
        self.losses = functools.partial(task_losses, task)
        self.start_head = seeded(  # every task's head starts from this one
            seed + 2,
            lambda: make_head(params.head, self.body.out_features, task.out_dim, params.scale),
        ).to(device)

    def pretrain_head(self, train: EpisodeSampler) -> nn.Module:
        """The pretraining head over all base classes (regression: y_dim outputs), drawn
        from the cell's seed + 1."""
        p, out_dim = self.params, self.pretrain_out(train)
        return seeded(
            self.seed + 1,
            lambda: make_head(p.head, self.body.out_features, out_dim, p.scale).to(self.device),
        )

    def meta_train(self, train: EpisodeSampler, checkpoint: CheckpointFn, every: int) -> None:
        p = self.params
        draw = self.batch_drawer(train)
        head = self.pretrain_head(train)
        optimizer = make_optimizer(
            "adam", [*self.body.parameters(), *head.parameters()], p.lr, self.device
        )
        for step in range(1, p.meta_steps + 1):
            self.body.train()
            x, y = draw(step - 1)
            loss = self.loss(head(self.body(x)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if should_checkpoint(step, every, p.meta_steps):
                checkpoint(step)

    def warm_up_meta(self, train: EpisodeSampler) -> None:
        """The first pretraining batch's loss and gradient, discarded; running statistics
        and the body's mode restored."""
        head = self.pretrain_head(train)
        x, y = self.batch_drawer(train)(0)
        with buffers_kept(self.body):
            self.body.train()
            loss = self.loss(head(self.body(x)), y)
            torch.autograd.grad(loss, [*self.body.parameters(), *head.parameters()])

    def pretrain_out(self, train: EpisodeSampler) -> int:
        """Outputs of the pretraining head: all base classes, or y_dim for regression."""
        if self.task.kind == "classification":
            return len(train.source.counts(train.part))
        return self.task.out_dim

    def batch_drawer(self, train: EpisodeSampler):
        """index -> (x, y) pretraining batch."""
        if self.task.kind == "classification":
            batches = ClassBatches(train)
            return lambda i: batches.batch(i, self.params.batch_size)

        def pooled(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            # Regression: pool the support and query points of training tasks until the
            # batch is full (tasks are whole episodes of the train part).
            per_task = train.shape.k_shot + train.shape.n_query
            n_tasks = max(1, -(-self.params.batch_size // per_task))
            eps = [train.episode(i * n_tasks + j) for j in range(n_tasks)]
            x = torch.cat([t for e in eps for t in (e.support_x, e.query_x)])
            y = torch.cat([t for e in eps for t in (e.support_y, e.query_y)])
            return x, y

        return pooled

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen backbone (eval mode: per-sample BatchNorm with the running
        statistics, so tasks fold into the batch exactly): x [T, n, ...] -> [T, n, d]."""
        self.body.eval()
        return self.body(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def head_scores(self, head: Tensors, features: torch.Tensor) -> torch.Tensor:
        """T heads at once: weight [T, out, d] (+ bias [T, out]), features [T, n, d]."""
        if self.params.head == "cosine":
            w = F.normalize(head["weight"], dim=2)
            return self.params.scale * torch.bmm(F.normalize(features, dim=2), w.transpose(1, 2))
        return linear(features, head["weight"], head["bias"])

    def task_bytes(self, rows: int, phase: str) -> float:
        return activation_bytes(self.body, self.task, rows) / 2  # no gradients kept

    def adapt_tasks(self, support_x: torch.Tensor, support_y: torch.Tensor) -> State:
        p = self.params
        feats = self.features(support_x)  # the frozen backbone runs once per task
        start = dict(self.start_head.named_parameters())
        head = task_leaves(start, len(support_x), copy=True)
        optimizer = make_optimizer("adam", head.values(), p.head_lr, self.device)
        with torch.enable_grad():
            for _ in range(p.steps):
                loss = self.losses(self.head_scores(head, feats), support_y).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return {n: t.detach() for n, t in head.items()}

    @torch.no_grad()
    def predict_tasks(self, state: State, query_x: torch.Tensor) -> torch.Tensor:
        return self.head_scores(state, self.features(query_x))
