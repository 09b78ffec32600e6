"""From scratch: a freshly initialised network per test task, trained on its support set.

No meta-training. Every task starts from the same random initialisation (drawn once from
the cell's seed), so results do not depend on the order in which tasks are served.
BatchNorm uses batch statistics when predicting, as the MAML-family methods do.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from bench.methods.backbones import classifier
from bench.methods.base import METHODS, Method, Params, TaskSpec, seeded


@dataclasses.dataclass(frozen=True)
class ScratchParams(Params):
    steps: int = 50
    lr: float = 1e-2
    optimizer: str = "adam"


def task_loss(task: TaskSpec, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classification, MSE for regression."""
    if task.kind == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out, y)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    optimizers = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    return optimizers[name](params, lr=lr)


@METHODS.register("scratch")
class Scratch(Method):
    """From scratch: a fresh network per task, trained on its support set only."""

    name = "scratch"
    Params = ScratchParams
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"optimizer": ("adam", "sgd")}

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.template = seeded(seed, lambda: classifier(task).to(device))

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> nn.Module:
        net = copy.deepcopy(self.template).train()
        optimizer = make_optimizer(self.params.optimizer, net.parameters(), self.params.lr)
        for _ in range(self.params.steps):
            loss = task_loss(self.task, net(support_x), support_y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return net

    @torch.no_grad()
    def predict(self, adapted: nn.Module, query_x: torch.Tensor) -> torch.Tensor:
        return adapted.train()(query_x)
