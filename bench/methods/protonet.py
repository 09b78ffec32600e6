"""Prototypical Networks (Snell et al. 2017): classify by distance to class-mean embeddings.

Episodic meta-training on larger episodes than the test shape (the paper trains Omniglot
with 60-way episodes); at test time BatchNorm uses its running statistics (eval mode), so
every query's prediction is its own, and T tasks share one encoder pass.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.data.episodes import Episode, EpisodeSampler, Shape
from bench.methods.backbones import backbone_for
from bench.methods.base import METHODS, CheckpointFn, Params, seeded, should_checkpoint
from bench.methods.batched import State, TaskBatched, activation_bytes
from bench.methods.functional import buffers_kept, make_optimizer


@dataclasses.dataclass(frozen=True)
class ProtoNetParams(Params):
    meta_steps: int = 400
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": anneal to 0 over meta_steps (short budgets)
    train_way: int = 60
    train_shot: int = 5
    train_query: int = 5


def prototypes(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class means of T tasks: features [T, n, d], labels [T, n] in 0..n_way-1 ->
    [T, n_way, d] (one index_add over the tasks' classes offset by t * n_way)."""
    T, n, d = features.shape
    flat = (labels + n_way * torch.arange(T, device=labels.device).unsqueeze(1)).reshape(-1)
    sums = features.new_zeros(T * n_way, d).index_add_(0, flat, features.reshape(T * n, d))
    # counts by index_add, not bincount: bincount reads its input's maximum back to the
    # host, which a CUDA graph capture forbids
    ones = features.new_ones(T * n, 1)
    counts = features.new_zeros(T * n_way, 1).index_add_(0, flat, ones).clamp_min(1)
    return (sums / counts).view(T, n_way, d)


def logits(features: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Negative squared Euclidean distance: [T, n, d], [T, n_way, d] -> [T, n, n_way]."""
    return -torch.cdist(features, protos).pow(2)


@METHODS.register("protonet")
class ProtoNet(TaskBatched):
    """Prototypical Networks (Snell et al. 2017): nearest class-mean embedding."""

    name = "protonet"
    Params = ProtoNetParams
    task_kinds = ("classification",)
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"lr_schedule": ("constant", "cosine")}

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.encoder = seeded(seed, lambda: backbone_for(task).to(device))

    def train_episodes(self, train: EpisodeSampler) -> EpisodeSampler:
        p = self.params
        return train.with_shape(Shape(p.train_way, p.train_shot, p.train_query))

    def episode_loss(self, ep: Episode) -> torch.Tensor:
        """The training loss of one episode: the encoder in training mode (BatchNorm
        batch statistics, running statistics updated) over support and queries, queries
        classified by the support's prototypes."""
        self.encoder.train()
        features = self.encoder(torch.cat([ep.support_x, ep.query_x]))
        support, query = features[: len(ep.support_y)], features[len(ep.support_y) :]
        protos = prototypes(support[None], ep.support_y[None], self.params.train_way)
        return F.cross_entropy(logits(query[None], protos)[0], ep.query_y)

    def meta_train(self, train: EpisodeSampler, checkpoint: CheckpointFn, every: int) -> None:
        p = self.params
        episodes = self.train_episodes(train)
        optimizer = make_optimizer("adam", self.encoder.parameters(), p.lr, self.device)
        schedule = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, p.meta_steps)
            if p.lr_schedule == "cosine"
            else None
        )
        for step in range(1, p.meta_steps + 1):
            loss = self.episode_loss(episodes.episode(step - 1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule:
                schedule.step()
            if should_checkpoint(step, every, p.meta_steps):
                checkpoint(step)

    def warm_up_meta(self, train: EpisodeSampler) -> None:
        """The first training episode's loss and gradient, discarded; running statistics
        and the module's mode restored."""
        with buffers_kept(self.encoder):
            loss = self.episode_loss(self.train_episodes(train).episode(0))
            torch.autograd.grad(loss, list(self.encoder.parameters()))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode encoder (per-sample BatchNorm with running statistics, so tasks fold
        into the batch exactly): x [T, n, ...] -> [T, n, d]."""
        self.encoder.eval()
        return self.encoder(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def task_bytes(self, rows: int, phase: str) -> float:
        return activation_bytes(self.encoder, self.task, rows) / 2  # no gradients kept

    def adapt_tasks(self, support_x: torch.Tensor, support_y: torch.Tensor) -> State:
        return {"prototypes": prototypes(self.embed(support_x), support_y, self.task.n_way)}

    @torch.no_grad()
    def predict_tasks(self, state: State, query_x: torch.Tensor) -> torch.Tensor:
        return logits(self.embed(query_x), state["prototypes"])
