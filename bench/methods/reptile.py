"""Reptile (Nichol et al. 2018): move the initialisation towards task-adapted weights.

Per meta step, each task of the meta batch runs `inner_steps` plain SGD steps (the shared
inner loop, no graph) on all of its data (support + query); the initialisation moves by
eps * mean(phi_i - theta), with eps annealed linearly from `outer_lr` to 0 as in the
paper. The meta batch's tasks adapt together in chunks of the execution mode's size.
Test-time adaptation is the same inner loop on the support set; BatchNorm follows the
suite's normalization rule, as for MAML. Deviation from the paper: SGD instead of Adam in
the inner loop, so that Reptile shares MAML's inner loop.
"""

from __future__ import annotations

import dataclasses

import torch

from bench.data.episodes import Episode
from bench.methods.base import METHODS
from bench.methods.batched import chunks, slice_episode
from bench.methods.functional import task_leaves
from bench.methods.maml import MAML, MAMLParams


@dataclasses.dataclass(frozen=True)
class ReptileParams(MAMLParams):
    outer_lr: float = 1.0  # eps at step 1, annealed linearly to 0
    inner_lr: float = 0.1
    inner_steps: int = 5
    test_inner_steps: int = 10


@METHODS.register("reptile")
class Reptile(MAML):
    """Reptile (Nichol et al. 2018): move the initialisation towards task-adapted weights."""

    name = "reptile"
    Params = ReptileParams

    def task_bytes(self, rows: int, phase: str) -> float:
        return super().task_bytes(rows, "adapt" if phase == "meta" else phase)  # no graph kept

    @torch.no_grad()
    def meta_step(self, batch: Episode, step: int) -> None:
        """theta += eps * mean_t(phi_t - theta) over the stacked meta batch, phi_t after
        `inner_steps` SGD steps on task t's support and query data; eps annealed."""
        eps = self.params.outer_lr * (1 - (step - 1) / self.params.meta_steps)
        B = batch.support_x.shape[0]
        rows = batch.support_x.shape[1] + batch.query_x.shape[1]
        moved = {n: torch.zeros_like(t) for n, t in self.initial().items()}
        for c in chunks(B, self.tasks_per_call(rows, "meta")):
            for n, d in self.displacement(slice_episode(batch, c)).items():
                moved[n] += d
        for n, t in self.initial().items():
            t.add_(moved[n], alpha=eps / B)

    @torch.no_grad()
    def displacement(self, batch: Episode) -> dict[str, torch.Tensor]:
        """sum_t (phi_t - theta) over the stacked tasks of `batch`, phi_t after
        `inner_steps` SGD steps on task t's support and query data; theta unchanged."""
        x = torch.cat([batch.support_x, batch.query_x], 1)
        y = torch.cat([batch.support_y, batch.query_y], 1)
        theta = self.initial()
        with torch.enable_grad():
            phi = self.adapt_params(
                task_leaves(theta, len(x)), x, y, self.params.inner_steps, False
            )
        return {n: (phi[n].detach() - t).sum(0) for n, t in theta.items()}

    def warm_up_meta(self, train) -> None:
        """The first chunk's inner loops of the first meta step, the result discarded."""
        self.displacement(self.first_chunk(train))
