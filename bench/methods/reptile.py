"""Reptile (Nichol et al. 2018): move the initialisation towards task-adapted weights.

Per meta step, each task of the meta batch runs `inner_steps` plain SGD steps (the shared
inner loop, no graph) on all of its data (support + query); the initialisation moves by
eps * mean(phi_i - theta), with eps annealed linearly from `outer_lr` to 0 as in the
paper. Test-time adaptation is the same inner loop on the support set. BatchNorm uses
batch statistics (as for MAML). Deviation from the paper: SGD instead of Adam in the
inner loop, so that Reptile shares MAML's inner loop.
"""

from __future__ import annotations

import dataclasses

import torch

from bench.data.episodes import EpisodeSampler
from bench.methods.base import METHODS, CheckpointFn, should_checkpoint
from bench.methods.functional import Tensors, detached, inner_loop
from bench.methods.maml import MAML, MAMLParams, train_episodes


@dataclasses.dataclass(frozen=True)
class ReptileParams(MAMLParams):
    outer_lr: float = 1.0  # eps at step 1, annealed linearly to 0
    inner_lr: float = 0.1
    inner_steps: int = 5
    test_inner_steps: int = 10


def reptile_update(theta: Tensors, adapted: list[Tensors], eps: float) -> Tensors:
    """theta + eps * mean_i(phi_i - theta), entry by entry."""
    return {
        n: t + eps * torch.stack([phi[n] - t for phi in adapted]).mean(0) for n, t in theta.items()
    }


@METHODS.register("reptile")
class Reptile(MAML):
    """Reptile (Nichol et al. 2018): move the initialisation towards task-adapted weights."""

    name = "reptile"
    Params = ReptileParams

    def adapt_task(self, x: torch.Tensor, y: torch.Tensor, steps: int) -> Tensors:
        """Plain SGD from the current initialisation; x [n, *x_shape] -> phi (detached)."""
        with torch.enable_grad():
            phi = inner_loop(
                self.net, detached(self.initial()), x, y, self.loss, steps, self.params.inner_lr
            )
        return {n: t.detach() for n, t in phi.items()}

    def meta_train(self, train: EpisodeSampler, checkpoint: CheckpointFn, every: int) -> None:
        p = self.params
        episodes = train_episodes(train, p.train_query)
        for step in range(1, p.meta_steps + 1):
            adapted = []
            for b in range(p.meta_batch):
                ep = episodes.episode((step - 1) * p.meta_batch + b)
                x, y = torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y])
                adapted.append(self.adapt_task(x, y, p.inner_steps))
            eps = p.outer_lr * (1 - (step - 1) / p.meta_steps)
            with torch.no_grad():
                theta = {n: t.detach() for n, t in self.initial().items()}
                for n, new in reptile_update(theta, adapted, eps).items():
                    self.initial()[n].copy_(new)
            if should_checkpoint(step, every, p.meta_steps):
                checkpoint(step)

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Tensors:
        return self.adapt_task(support_x, support_y, self.params.test_inner_steps)
