"""Gradient-based meta-learning of an initialisation: MAML, first-order MAML, ANIL, Meta-SGD.

- MAML (Finn et al. 2017): second-order meta-gradient through the inner loop.
- FOMAML: the same code with the inner gradients detached.
- ANIL (Raghu et al. 2020): the inner loop moves the linear head only; the body's
  features are computed once per task and the body is meta-learned by the outer loop.
- Meta-SGD (Li et al. 2017): a learned learning rate per parameter entry, meta-trained
  with the initialisation.

The network is `classifier(task)` (backbone + linear head) with BatchNorm reduced to batch
statistics (as in the MAML paper): support and query batches normalise themselves, and no
call writes buffers. Meta-training draws a meta batch of episodes of the suite's shape
(with `train_query` queries per class) and steps Adam on the mean query loss.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from bench.data.episodes import Episode, EpisodeSampler, Shape
from bench.methods.backbones import classifier
from bench.methods.base import METHODS, CheckpointFn, Method, Params, seeded, should_checkpoint
from bench.methods.functional import (
    Tensors,
    batch_stats_only,
    detached,
    forward,
    inner_loop,
    sub,
)
from bench.methods.scratch import task_loss


@dataclasses.dataclass(frozen=True)
class MAMLParams(Params):
    meta_steps: int = 200
    meta_batch: int = 4
    meta_lr: float = 1e-3
    inner_lr: float = 0.4
    inner_steps: int = 1
    test_inner_steps: int = 3
    train_query: int = 15  # query samples per class in meta-training episodes


def train_episodes(train: EpisodeSampler, train_query: int) -> EpisodeSampler:
    """Meta-training episodes: the suite's way and shot with `train_query` queries."""
    return train.with_shape(Shape(train.shape.n_way, train.shape.k_shot, train_query))


@METHODS.register("maml")
class MAML(Method):
    """MAML (Finn et al. 2017), second order; subclasses change what moves in the inner
    loop and how."""

    name = "maml"
    Params = MAMLParams
    first_order = False

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.net = seeded(seed, lambda: batch_stats_only(classifier(task)).to(device))
        self.loss = functools.partial(task_loss, task)

    # -- what is meta-learned, and the inner loop over it -----------------------------
    def meta_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())

    def initial(self) -> Tensors:
        return dict(self.net.named_parameters())

    def inner_lrs(self, detach: bool) -> float | Tensors:
        return self.params.inner_lr

    def inner_names(self) -> set[str]:
        """Parameters the inner loop moves (all of them for MAML)."""
        return set(self.initial())

    def adapt_params(
        self, params: Tensors, x: torch.Tensor, y: torch.Tensor, steps: int, create_graph: bool
    ) -> Tensors:
        """Inner loop from `params` on a support set x [n, *x_shape], y -> adapted params."""
        return inner_loop(
            self.net,
            params,
            x,
            y,
            self.loss,
            steps,
            self.inner_lrs(detach=not create_graph),
            create_graph=create_graph,
            first_order=self.first_order,
        )

    def query_scores(self, params: Tensors, x: torch.Tensor) -> torch.Tensor:
        return forward(self.net, params, x)

    # -- the three calls ---------------------------------------------------------------
    def task_meta_loss(self, ep: Episode) -> torch.Tensor:
        """Query loss after the training-time inner loop; differentiable w.r.t. the
        meta-parameters."""
        adapted = self.adapt_params(
            self.initial(), ep.support_x, ep.support_y, self.params.inner_steps, create_graph=True
        )
        return self.loss(self.query_scores(adapted, ep.query_x), ep.query_y)

    def meta_train(self, train: EpisodeSampler, checkpoint: CheckpointFn, every: int) -> None:
        p = self.params
        episodes = train_episodes(train, p.train_query)
        optimizer = torch.optim.Adam(self.meta_parameters(), lr=p.meta_lr)
        for step in range(1, p.meta_steps + 1):
            optimizer.zero_grad(set_to_none=True)
            for b in range(p.meta_batch):
                # One backward per task frees its graph at once; gradients add up to
                # the gradient of the mean loss.
                (
                    self.task_meta_loss(episodes.episode((step - 1) * p.meta_batch + b))
                    / p.meta_batch
                ).backward()
            optimizer.step()
            if should_checkpoint(step, every, p.meta_steps):
                checkpoint(step)

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Tensors:
        with torch.enable_grad():
            start = detached(self.initial(), self.inner_names())
            adapted = self.adapt_params(
                start, support_x, support_y, self.params.test_inner_steps, create_graph=False
            )
        return {n: t.detach() for n, t in adapted.items()}

    @torch.no_grad()
    def predict(self, adapted: Tensors, query_x: torch.Tensor) -> torch.Tensor:
        return self.query_scores(adapted, query_x)


@METHODS.register("fomaml")
class FOMAML(MAML):
    """First-order MAML: inner gradients detached, meta-gradient = query gradient at the
    adapted parameters."""

    name = "fomaml"
    first_order = True


@dataclasses.dataclass(frozen=True)
class ANILParams(MAMLParams):
    test_inner_steps: int = 10  # head-only steps on cached features are cheap


@METHODS.register("anil")
class ANIL(MAML):
    """Almost No Inner Loop: the inner loop adapts the head (net[1]) on body features."""

    name = "anil"
    Params = ANILParams

    def inner_names(self) -> set[str]:
        return {n for n in self.initial() if n.startswith("1.")}

    def adapt_params(self, params, x, y, steps, create_graph):
        features = forward(self.net[0], sub(params, "0."), x)
        head = inner_loop(
            self.net[1],
            sub(params, "1."),
            features,
            y,
            self.loss,
            steps,
            self.inner_lrs(detach=not create_graph),
            create_graph=create_graph,
        )
        return {**params, **{f"1.{k}": v for k, v in head.items()}}


@METHODS.register("metasgd")
class MetaSGD(MAML):
    """Meta-SGD: per-entry inner learning rates (initialised to inner_lr) meta-learned
    together with the initialisation."""

    name = "metasgd"

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.lrs = torch.nn.ParameterDict(
            {
                key(n): torch.nn.Parameter(torch.full_like(p, params.inner_lr))
                for n, p in self.net.named_parameters()
            }
        )

    def meta_parameters(self) -> list[torch.nn.Parameter]:
        return [*self.net.parameters(), *self.lrs.parameters()]

    def inner_lrs(self, detach: bool) -> Tensors:
        return {
            n: (self.lrs[key(n)].detach() if detach else self.lrs[key(n)])
            for n, _ in self.net.named_parameters()
        }


def key(name: str) -> str:
    """ParameterDict keys may not contain dots."""
    return name.replace(".", "__")
