"""Gradient-based meta-learning of an initialisation: MAML, first-order MAML, ANIL, Meta-SGD.

- MAML (Finn et al. 2017): second-order meta-gradient through the inner loop.
- FOMAML: the same code with the inner gradients detached.
- ANIL (Raghu et al. 2020): the inner loop moves the linear head only; the body's
  features are computed once per task and the body is meta-learned by the outer loop.
- Meta-SGD (Li et al. 2017): a learned learning rate per parameter entry, meta-trained
  with the initialisation.

The network is `classifier(task)` (backbone + linear head), always evaluated folded over
T tasks (`folded_classifier`), one task being T = 1. BatchNorm has no running statistics;
under the suite's `normalization = "support"` every task normalises with its support
set's statistics under the current parameters, when adapting, predicting and in the
meta-training query loss alike ("transductive": each batch with its own, as in the MAML
paper). Meta-training draws a meta batch of episodes of the suite's shape (with
`train_query` queries per class) and steps Adam on the mean query loss; the meta batch
runs in chunks of the execution mode's size (one backward per chunk).
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from bench.data.episodes import Episode, EpisodeSampler, Shape
from bench.methods.backbones import classifier, folded_classifier
from bench.methods.base import METHODS, CheckpointFn, Params, seeded, should_checkpoint
from bench.methods.batched import (
    State,
    TaskBatched,
    activation_bytes,
    chunks,
    slice_episode,
    stack_episodes,
)
from bench.methods.functional import (
    BatchStats,
    Tensors,
    batch_stats_only,
    expanded,
    has_batchnorm,
    inner_loop,
    linear,
    make_optimizer,
    sub,
    task_leaves,
    task_losses,
)


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
class MAML(TaskBatched):
    """MAML (Finn et al. 2017), second order; subclasses change what moves in the inner
    loop and how."""

    name = "maml"
    Params = MAMLParams
    first_order = False

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.net = seeded(seed, lambda: batch_stats_only(classifier(task)).to(device))
        self.losses = functools.partial(task_losses, task)
        self.support_norm = task.normalization == "support" and has_batchnorm(self.net)
        self.meta_optimizer: torch.optim.Optimizer | None = None

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batched step's loss: the sum of the T tasks' mean losses."""
        return self.losses(out, y).sum()

    def apply(self, params, x, stats: BatchStats | None = None) -> torch.Tensor:
        """The network on T tasks: params {name: [T, ...]}, x [T, n, ...] -> [T, n, out]."""
        return folded_classifier(self.net, params, x, BatchStats() if stats is None else stats)

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
        self,
        params: Tensors,
        x: torch.Tensor,
        y: torch.Tensor,
        steps: int,
        create_graph: bool,
        stats: BatchStats | None = None,
    ) -> Tensors:
        """Inner loop from stacked `params` on T support sets x [T, n, *x_shape], y ->
        adapted params. Under "support", `stats` (if given) receives the support
        statistics under the adapted parameters (what prediction normalises with)."""
        adapted = inner_loop(
            self.apply,
            params,
            x,
            y,
            self.loss,
            steps,
            self.inner_lrs(detach=not create_graph),
            create_graph=create_graph,
            first_order=self.first_order,
        )
        if stats is not None and self.support_norm:
            with torch.no_grad():
                self.apply(adapted, x, stats)
        return adapted

    def query_scores(
        self, params: Tensors, support_x: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Meta-training query outputs [T, n_q, out] of adapted params. Under "support"
        one pass over [support; query] whose statistics come from the support rows: the
        same normalisation as at test time, differentiable through the statistics."""
        if not self.support_norm:
            return self.apply(params, query_x)
        n_s = support_x.shape[1]
        rows = BatchStats(rows=n_s)
        return self.apply(params, torch.cat([support_x, query_x], 1), rows)[:, n_s:]

    # -- meta-training ---------------------------------------------------------------
    def meta_loss(self, batch: Episode) -> torch.Tensor:
        """Sum over the T tasks of `batch` (tensors [T, ...]) of the query loss after the
        training-time inner loop; differentiable w.r.t. the meta-parameters."""
        T = batch.support_x.shape[0]
        adapted = self.adapt_params(
            expanded(self.initial(), T),
            batch.support_x,
            batch.support_y,
            self.params.inner_steps,
            create_graph=True,
        )
        scores = self.query_scores(adapted, batch.support_x, batch.query_x)
        return self.loss(scores, batch.query_y)

    def task_meta_loss(self, ep: Episode) -> torch.Tensor:
        """One task's meta-loss (an Episode of unstacked tensors)."""
        return self.meta_loss(stack_episodes([ep]))

    def meta_backward(self, batch: Episode) -> None:
        """Gradients of the mean query loss over a stacked meta batch into the
        meta-parameters' .grad: one backward per chunk of tasks (the execution mode's
        size; a chunk's graph is freed at once)."""
        B = batch.support_x.shape[0]
        rows = batch.support_x.shape[1] + batch.query_x.shape[1]
        for c in chunks(B, self.tasks_per_call(rows, "meta")):
            (self.meta_loss(slice_episode(batch, c)) / B).backward()

    def meta_step(self, batch: Episode, step: int) -> None:
        """Meta step `step` (1-based) on a stacked meta batch: `meta_backward`, then one
        Adam step (`meta_lr`)."""
        if step == 1 or self.meta_optimizer is None:
            self.meta_optimizer = make_optimizer(
                "adam", self.meta_parameters(), self.params.meta_lr, self.device
            )
        self.meta_optimizer.zero_grad(set_to_none=True)
        self.meta_backward(batch)
        self.meta_optimizer.step()

    def meta_batch(self, train: EpisodeSampler, step: int) -> Episode:
        """The stacked meta batch of meta step `step` (1-based): `meta_batch` consecutive
        training episodes with `train_query` queries per class."""
        p = self.params
        episodes, first = train_episodes(train, p.train_query), (step - 1) * p.meta_batch
        return stack_episodes([episodes.episode(first + b) for b in range(p.meta_batch)])

    def meta_train(self, train: EpisodeSampler, checkpoint: CheckpointFn, every: int) -> None:
        p = self.params
        for step in range(1, p.meta_steps + 1):
            self.meta_step(self.meta_batch(train, step), step)
            if should_checkpoint(step, every, p.meta_steps):
                checkpoint(step)

    def first_chunk(self, train: EpisodeSampler) -> Episode:
        """The first meta step's first chunk of tasks (the shapes the meta-step runs)."""
        batch = self.meta_batch(train, 1)
        rows = batch.support_x.shape[1] + batch.query_x.shape[1]
        return slice_episode(
            batch, chunks(len(batch.support_x), self.tasks_per_call(rows, "meta"))[0]
        )

    def warm_up_meta(self, train: EpisodeSampler) -> None:
        """The meta-loss of the first chunk of the first meta batch and its gradient
        (second order where the method is), discarded."""
        loss = self.meta_loss(self.first_chunk(train))
        torch.autograd.grad(loss, self.meta_parameters(), allow_unused=True)

    def task_bytes(self, rows: int, phase: str) -> float:
        # Forward activations; test-time SGD keeps about one step's graph, second-order
        # meta-training every inner step's graph and their double backward.
        act = activation_bytes(self.net[0], self.task, rows)
        if phase == "predict":
            return act / 2
        return 2 * act * ((self.params.inner_steps + 1) if phase == "meta" else 1)

    # -- deployment --------------------------------------------------------------------
    def adapt_tasks(self, support_x: torch.Tensor, support_y: torch.Tensor) -> State:
        T = support_x.shape[0]
        stats = BatchStats(record=True)
        with torch.enable_grad():
            start = task_leaves(self.initial(), T, self.inner_names())
            adapted = self.adapt_params(
                start, support_x, support_y, self.params.test_inner_steps, False, stats
            )
        state = {n: adapted[n].detach() for n in self.inner_names()}
        return {**state, **{k: v.detach() for k, v in stats.state().items()}}

    @torch.no_grad()
    def predict_tasks(self, state: State, query_x: torch.Tensor) -> torch.Tensor:
        T = query_x.shape[0]
        params = {**expanded(self.initial(), T), **state}
        stats = BatchStats.from_state(state) if self.support_norm else BatchStats()
        return self.apply(params, query_x, stats)


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
    """Almost No Inner Loop: the inner loop adapts the head (net[1]) on body features,
    computed once per task (with the support statistics, which the head does not move)."""

    name = "anil"
    Params = ANILParams

    def inner_names(self) -> set[str]:
        return {n for n in self.initial() if n.startswith("1.")}

    def head_loop(self, head: Tensors, features, y, steps: int, create_graph: bool) -> Tensors:
        return inner_loop(
            lambda h, f: linear(f, h["weight"], h["bias"]),
            head,
            features,
            y,
            self.loss,
            steps,
            self.inner_lrs(detach=not create_graph),
            create_graph=create_graph,
        )

    def meta_loss(self, batch: Episode) -> torch.Tensor:
        # One body pass over [support; query] (support statistics under "support") gives
        # both feature sets; the head adapts on the first and is scored on the second.
        theta = expanded(self.initial(), batch.support_x.shape[0])
        body, n_s = sub(theta, "0."), batch.support_x.shape[1]
        if self.support_norm:
            x = torch.cat([batch.support_x, batch.query_x], 1)
            features = self.net[0].folded(body, x, BatchStats(rows=n_s))
            support, query = features[:, :n_s], features[:, n_s:]
        else:
            support = self.net[0].folded(body, batch.support_x, BatchStats())
            query = self.net[0].folded(body, batch.query_x, BatchStats())
        head = self.head_loop(
            sub(theta, "1."), support, batch.support_y, self.params.inner_steps, True
        )
        return self.loss(linear(query, head["weight"], head["bias"]), batch.query_y)

    def adapt_params(self, params, x, y, steps, create_graph, stats=None):
        # The body's statistics are the support's under the body's parameters, which
        # the inner loop leaves alone: the features pass records them.
        record = stats if stats is not None and self.support_norm else BatchStats()
        features = self.net[0].folded(sub(params, "0."), x, record)
        head = self.head_loop(sub(params, "1."), features, y, steps, create_graph)
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
        # [*shape] rates broadcast over the tasks' [T, *shape] parameters
        return {
            n: (self.lrs[key(n)].detach() if detach else self.lrs[key(n)])
            for n, _ in self.net.named_parameters()
        }


def key(name: str) -> str:
    """ParameterDict keys may not contain dots."""
    return name.replace(".", "__")
