"""From scratch: a freshly initialised network per test task, trained on its support set.

No meta-training. Every task starts from the same random initialisation (drawn once from
the cell's seed), so results do not depend on the order in which tasks are served. T
tasks train at once: their parameters are stacked leaves [T, ...] of one optimizer
stepping on the sum of the tasks' losses, which is T independent optimizers (Adam and
SGD act entry by entry; each task's entries get only its own loss's gradient; the step
count is shared and equal). BatchNorm follows the suite's normalization rule, as for
MAML: with "support", queries are normalised with the support set's statistics under the
trained parameters.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import torch

from bench.methods.backbones import classifier, folded_classifier
from bench.methods.base import METHODS, Params, seeded
from bench.methods.batched import State, TaskBatched, activation_bytes
from bench.methods.functional import (
    BatchStats,
    batch_stats_only,
    has_batchnorm,
    make_optimizer,
    task_leaves,
    task_losses,
)


@dataclasses.dataclass(frozen=True)
class ScratchParams(Params):
    steps: int = 50
    lr: float = 1e-2
    optimizer: str = "adam"


@METHODS.register("scratch")
class Scratch(TaskBatched):
    """From scratch: a fresh network per task, trained on its support set only."""

    name = "scratch"
    Params = ScratchParams
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"optimizer": ("adam", "sgd")}

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.template = seeded(seed, lambda: batch_stats_only(classifier(task)).to(device))
        self.losses = functools.partial(task_losses, task)
        self.support_norm = task.normalization == "support" and has_batchnorm(self.template)

    def apply(self, params, x, stats: BatchStats) -> torch.Tensor:
        return folded_classifier(self.template, params, x, stats)

    def task_bytes(self, rows: int, phase: str) -> float:
        # Per task: parameters (+ gradients and Adam's two moments while adapting).
        n_params = sum(p.numel() * p.element_size() for p in self.template.parameters())
        act = activation_bytes(self.template[0], self.task, rows)
        return act / 2 + n_params if phase == "predict" else 2 * act + 4 * n_params

    def adapt_tasks(self, support_x: torch.Tensor, support_y: torch.Tensor) -> State:
        p = self.params
        leaves = task_leaves(dict(self.template.named_parameters()), len(support_x), copy=True)
        optimizer = make_optimizer(p.optimizer, leaves.values(), p.lr, self.device)
        with torch.enable_grad():
            for _ in range(p.steps):
                loss = self.losses(self.apply(leaves, support_x, BatchStats()), support_y).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        state = {n: t.detach() for n, t in leaves.items()}
        if self.support_norm:
            stats = BatchStats(record=True)
            with torch.no_grad():
                self.apply(state, support_x, stats)
            state.update(stats.state())
        return state

    @torch.no_grad()
    def predict_tasks(self, state: State, query_x: torch.Tensor) -> torch.Tensor:
        stats = BatchStats.from_state(state) if self.support_norm else BatchStats()
        return self.apply(state, query_x, stats)
