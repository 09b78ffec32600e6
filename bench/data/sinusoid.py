"""Sinusoid regression exactly as in the MAML paper (Finn et al. 2017, section 5.1).

A task is y = A sin(x - phi) with amplitude A ~ U[0.1, 5.0], phase phi ~ U[0, pi]; inputs
x ~ U[-5, 5]. Every part draws from the same task distribution; parts (and seeds) differ
only in the random stream.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.data import DATASETS

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, np.pi)
X_RANGE = (-5.0, 5.0)


class SinusoidSource:
    kind = "regression"
    x_shape = (1,)
    y_dim = 1

    def draw(self, part: str, rng: np.random.Generator, n_support: int, n_query: int) -> np.ndarray:
        """Key: [amplitude, phase, x_1 .. x_{n_support + n_query}] (float64)."""
        amplitude = rng.uniform(*AMPLITUDE)
        phase = rng.uniform(*PHASE)
        x = rng.uniform(*X_RANGE, size=n_support + n_query)
        return np.concatenate([[amplitude, phase], x])

    def materialize(self, part: str, key: np.ndarray, n_support: int) -> tuple[torch.Tensor, ...]:
        amplitude, phase, x = key[0], key[1], key[2:]
        y = amplitude * np.sin(x - phase)
        xt = torch.from_numpy(x).float().unsqueeze(1)
        yt = torch.from_numpy(y).float().unsqueeze(1)
        return xt[:n_support], yt[:n_support], xt[n_support:], yt[n_support:]


@DATASETS.register("sinusoid")
class Sinusoid:
    task_kinds = ("regression",)
    splits = ("default",)
    samples_per_class = None  # unbounded: every task draws fresh inputs

    @staticmethod
    def n_classes(split: str, part: str) -> int:
        return 1

    @staticmethod
    def load(root, split: str) -> SinusoidSource:
        return SinusoidSource()
