"""Prototypical Networks (Snell et al. 2017): classify by distance to class-mean embeddings.

Episodic meta-training on larger episodes than the test shape (the paper trains Omniglot
with 60-way episodes); at test time BatchNorm uses its running statistics (eval mode).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.data.episodes import EpisodeSampler, Shape
from bench.methods.backbones import backbone_for
from bench.methods.base import METHODS, CheckpointFn, Method, Params, seeded, should_checkpoint


@dataclasses.dataclass(frozen=True)
class ProtoNetParams(Params):
    meta_steps: int = 400
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": anneal to 0 over meta_steps (short budgets)
    train_way: int = 60
    train_shot: int = 5
    train_query: int = 5


def prototypes(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class means: features [n, d], labels [n] in 0..n_way-1 -> [n_way, d]."""
    sums = torch.zeros(n_way, features.shape[1], device=features.device, dtype=features.dtype)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=n_way).clamp_min(1).unsqueeze(1)
    return sums / counts


def logits(features: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Negative squared Euclidean distance: [n, d], [n_way, d] -> [n, n_way]."""
    return -torch.cdist(features, protos).pow(2)


@METHODS.register("protonet")
class ProtoNet(Method):
    """Prototypical Networks (Snell et al. 2017): nearest class-mean embedding."""

    name = "protonet"
    Params = ProtoNetParams
    task_kinds = ("classification",)
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"lr_schedule": ("constant", "cosine")}

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.encoder = seeded(seed, lambda: backbone_for(task).to(device))

    def meta_train(self, train: EpisodeSampler, checkpoint: CheckpointFn, every: int) -> None:
        p = self.params
        episodes = train.with_shape(Shape(p.train_way, p.train_shot, p.train_query))
        optimizer = torch.optim.Adam(self.encoder.parameters(), lr=p.lr)
        schedule = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, p.meta_steps)
            if p.lr_schedule == "cosine"
            else None
        )
        for step in range(1, p.meta_steps + 1):
            self.encoder.train()
            ep = episodes.episode(step - 1)
            features = self.encoder(torch.cat([ep.support_x, ep.query_x]))
            support, query = features[: len(ep.support_y)], features[len(ep.support_y) :]
            loss = F.cross_entropy(
                logits(query, prototypes(support, ep.support_y, p.train_way)), ep.query_y
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule:
                schedule.step()
            if should_checkpoint(step, every, p.meta_steps):
                checkpoint(step)

    @torch.no_grad()
    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> torch.Tensor:
        self.encoder.eval()
        return prototypes(self.encoder(support_x), support_y, self.task.n_way)

    @torch.no_grad()
    def predict(self, adapted: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        self.encoder.eval()
        return logits(self.encoder(query_x), adapted)
