"""Episodes: a pure function of (suite, part, seed, index).

Every draw uses a fresh `numpy.random.Generator` seeded from a `SeedSequence` of stable
integers, never global RNG state, so every method, run order and executor sees the same
episodes. Classification sampling reads only per-class sample counts (never images); the
drawn indices are the episode's *key*, and the sha256 of all keys of an episode set is its
fingerprint, stored with every result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Shape:
    """Episode shape: n_way classes (1 for regression), k_shot support and n_query query
    samples per class."""

    n_way: int
    k_shot: int
    n_query: int


@dataclass(frozen=True)
class Episode:
    """One few-shot task, tensors on the target device.

    support_x: [n_way * k_shot, *x_shape]; support_y: [n_way * k_shot] (int64 labels in
    0..n_way-1) or [n_way * k_shot, y_dim] (float targets); query_x / query_y likewise with
    n_query per class.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor


class ClassificationSource(Protocol):
    """Images (or other inputs) grouped by class, for each part of a split."""

    kind: str  # "classification"
    x_shape: tuple[int, ...]

    def counts(self, part: str) -> np.ndarray:
        """Samples per class in `part`, int array [n_classes]."""
        ...

    def gather(self, part: str, classes: np.ndarray, samples: np.ndarray) -> torch.Tensor:
        """Inputs for classes [n] and sample indices [n, m] -> float tensor [n, m, *x_shape]."""
        ...


class RegressionSource(Protocol):
    """A family of regression tasks drawn from a generator."""

    kind: str  # "regression"
    x_shape: tuple[int, ...]
    y_dim: int

    def draw(self, part: str, rng: np.random.Generator, n_support: int, n_query: int) -> np.ndarray:
        """The task's key: a float64 array from which `materialize` builds the episode."""
        ...

    def materialize(self, part: str, key: np.ndarray, n_support: int) -> tuple[torch.Tensor, ...]:
        """key -> (support_x, support_y, query_x, query_y) float32 CPU tensors."""
        ...


def stable_int(text: str) -> int:
    """A 63-bit integer from text, stable across processes (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def draw_class_episode(
    rng: np.random.Generator, counts: np.ndarray, shape: Shape
) -> tuple[np.ndarray, np.ndarray]:
    """Pick shape.n_way distinct classes and k_shot + n_query distinct samples of each.

    Returns classes [n_way] and samples [n_way, k_shot + n_query]; samples[:, :k_shot] are
    the support set.
    """
    per_class = shape.k_shot + shape.n_query
    eligible = np.flatnonzero(counts >= per_class)
    if len(eligible) < shape.n_way:
        raise ValueError(
            f"only {len(eligible)} classes have {per_class} samples; {shape.n_way} needed"
        )
    classes = rng.choice(eligible, size=shape.n_way, replace=False)
    samples = np.stack([rng.choice(counts[c], size=per_class, replace=False) for c in classes])
    return classes, samples


class EpisodeSampler:
    """Episodes of one part of one suite's dataset for one seed and stream.

    `episode(i)` is a pure function of (stream_key, part, seed, shape, i): the stream key
    names the suite's episode-relevant settings, so two suites that share them share
    episodes, and `stream` separates e.g. meta-training episodes of different shapes.
    """

    def __init__(
        self,
        source: ClassificationSource | RegressionSource,
        part: str,
        shape: Shape,
        seed: int,
        stream_key: str,
        device: torch.device | str = "cpu",
    ) -> None:
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        self.source = source
        self.part = part
        self.shape = shape
        self.seed = seed
        self.stream_key = stream_key
        self.device = torch.device(device)
        self._base = [stable_int(stream_key), stable_int(part), seed]

    def with_shape(self, shape: Shape) -> EpisodeSampler:
        """The same part and seed with another episode shape (e.g. 60-way training)."""
        return EpisodeSampler(
            self.source, self.part, shape, self.seed, self.stream_key, self.device
        )

    def rng(self, index: int) -> np.random.Generator:
        s = self.shape
        return np.random.default_rng([*self._base, s.n_way, s.k_shot, s.n_query, index])

    def key(self, index: int) -> np.ndarray:
        """What episode `index` is made of: class and sample indices, or task parameters."""
        s = self.shape
        if self.source.kind == "classification":
            classes, samples = draw_class_episode(self.rng(index), self.source.counts(self.part), s)
            return np.concatenate([classes[:, None], samples], axis=1)
        return self.source.draw(self.part, self.rng(index), s.k_shot, s.n_query)

    def episode(self, index: int) -> Episode:
        return self.materialize(self.key(index))

    def materialize(self, key: np.ndarray) -> Episode:
        s = self.shape
        if self.source.kind == "classification":
            x = self.source.gather(self.part, key[:, 0], key[:, 1:])  # [n_way, k+q, *x]
            labels = torch.arange(s.n_way).unsqueeze(1).expand(s.n_way, s.k_shot + s.n_query)
            sx, qx = x[:, : s.k_shot], x[:, s.k_shot :]
            sy, qy = labels[:, : s.k_shot], labels[:, s.k_shot :]
            sx, qx = sx.reshape(-1, *sx.shape[2:]), qx.reshape(-1, *qx.shape[2:])
            sy, qy = sy.reshape(-1), qy.reshape(-1)
        else:
            sx, sy, qx, qy = self.source.materialize(self.part, key, s.k_shot)
        d = self.device
        return Episode(sx.to(d), sy.to(d), qx.to(d), qy.to(d))

    def fingerprint(self, n: int) -> str:
        """sha256 of the keys of episodes 0..n-1: equal fingerprints, identical episodes."""
        h = hashlib.sha256()
        h.update(f"{self.part}|{self.shape}|{n}".encode())
        for i in range(n):
            h.update(np.ascontiguousarray(self.key(i)).tobytes())
        return h.hexdigest()
