"""Shared networks: Conv-4 for images, a 40-40 ReLU MLP for regression, a bag-of-n-grams
encoder for token ids (text).

Methods build their networks here so that every method compares the same architecture.
Each backbone has two forwards over the same parameter names: the module's own (one
parameter set; ProtoNets and transfer, with BatchNorm running statistics) and `folded`,
which evaluates T tasks' stacked parameters in one pass (grouped convolutions with each
task's BatchNorm statistics, batched matrix products, offset embedding gathers) for the
methods that adapt per-task parameters. One task is the case T = 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from bench.data.text import TEXT_CHAR_BUCKETS, TEXT_WORD_IDS
from bench.methods.base import TaskSpec
from bench.methods.functional import BatchStats, linear, nhwc, sub, task_batch_norm

CONV4_HIDDEN = 64  # channels of every Conv-4 layer (tests use fewer for speed)


def bf16_autocast(x: torch.Tensor) -> torch.autocast:
    """bf16 autocast on x's device, without autocast's weight-cast cache: each weight is
    cast once per forward anyway, and cached casts must not outlive a CUDA graph capture
    (PyTorch's CUDA graph notes)."""
    return torch.autocast(x.device.type, dtype=torch.bfloat16, cache_enabled=False)


class Backbone(nn.Module):
    """A network that maps inputs to features at the suite's precision: `body` runs under
    bf16 autocast for "bf16" (matmuls and convolutions in bf16, parameters and their
    gradients in fp32) and the features come back as fp32; "fp32" runs `body` as it is."""

    def __init__(self, precision: str = "fp32") -> None:
        super().__init__()
        self.precision = precision

    def body(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.precision == "fp32":
            return self.body(x)
        with bf16_autocast(x):
            return self.body(x).float()

    def folded_body(
        self, params: Mapping[str, torch.Tensor], x: torch.Tensor, stats: BatchStats
    ) -> torch.Tensor:
        raise NotImplementedError

    def activation_numel(self, x_shape: tuple[int, ...]) -> int:
        """Values a forward with gradients keeps per input row (an estimate, for the
        memory cap of batched execution)."""
        raise NotImplementedError

    def folded(
        self, params: Mapping[str, torch.Tensor], x: torch.Tensor, stats: BatchStats
    ) -> torch.Tensor:
        """T tasks at once: params {name: [T, *shape]} (this module's parameter names),
        x [T, n, *x_shape] -> features [T, n, out_features], every task with its own
        parameters and BatchNorm statistics (`stats` says which), at the suite's
        precision. Never reads or writes the module's own parameters or buffers."""
        if self.precision == "fp32":
            return self.folded_body(params, x, stats)
        with bf16_autocast(x):
            return self.folded_body(params, x, stats).float()


class ChannelsLastConv2d(nn.Conv2d):
    """A Conv2d whose weight always reaches oneDNN with NHWC strides.

    A [out, 1, k, k] weight (one input channel) is contiguous in both layouts, so after a
    functional update (MAML's inner loop) its strides may read as NCHW; the convolution
    then takes the NCHW path and the whole network runs 2x slower (measured on the
    first Conv-4 layer). Copying such a weight into NHWC strides costs out*k*k floats.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if w.stride(1) != 1 or not w.is_contiguous(memory_format=torch.channels_last):
            w = torch.empty_like(w, memory_format=torch.channels_last).copy_(w)
        return self._conv_forward(x, w, self.bias)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv 3x3 (no bias), BatchNorm, ReLU, maxpool 2.

    No convolution bias: the BatchNorm after it subtracts a per-channel mean, which
    removes any per-channel constant, so the network represents the same functions
    without one. A bias's true gradient would be exactly 0 (batch and support statistics),
    so it could only move by round-off, which Adam, scaling each entry by its own gradient
    history, turns into steps of up to the learning rate. Float32 training still depends
    on the kernels' rounding through the other parameters (docs/protocol.md, "Execution").
    The pool runs before the ReLU: max and ReLU commute (ReLU is monotone), so the output
    is identical and the ReLU touches 4x fewer values."""
    return nn.Sequential(
        ChannelsLastConv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.MaxPool2d(2),
        nn.ReLU(),
    )


class Conv4(Backbone):
    """4 x [conv 3x3 (64, no bias), BatchNorm, ReLU, maxpool 2]; [n, c, 28, 28] ->
    features [n, 64]. Parameters per block i: blocks.i.0.weight [64, in, 3, 3] and the
    BatchNorm's blocks.i.1.weight / blocks.i.1.bias [64]."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, precision: str = "fp32") -> None:
        super().__init__(precision)
        self.blocks = nn.Sequential(
            conv_block(in_channels, hidden),
            conv_block(hidden, hidden),
            conv_block(hidden, hidden),
            conv_block(hidden, hidden),
        )
        self.out_features = hidden
        # channels_last: the same fp32 arithmetic, ~1.4x faster on CPU (oneDNN kernels);
        # measured by benchmarks/conv4_layout.py.
        self.to(memory_format=torch.channels_last)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.contiguous(memory_format=torch.channels_last)).flatten(1)

    def activation_numel(self, x_shape):
        h, w = x_shape[1:]
        total = 0
        for _ in self.blocks:  # conv, BatchNorm and pool outputs of each block
            total += 2 * self.out_features * h * w + self.out_features * (h // 2) * (w // 2)
            h, w = h // 2, w // 2
        return total

    def folded_body(self, params, x, stats):
        # Tasks go into channels, [T, n, c, H, W] -> [n, T*c, H, W]: a convolution with
        # groups=T applies each task's own filters, and BatchNorm per channel is per task.
        # (Folding tasks into the batch dimension instead would pool their statistics.)
        T, n = x.shape[:2]
        h = x.transpose(0, 1).reshape(n, T * x.shape[2], *x.shape[3:])
        h = h.contiguous(memory_format=torch.channels_last)
        for i in range(len(self.blocks)):
            w = params[f"blocks.{i}.0.weight"]  # [T, out, in, k, k]
            out = w.shape[1]
            h = F.conv2d(h, nhwc(w.reshape(T * out, *w.shape[2:])), padding=1, groups=T)
            h = task_batch_norm(
                h, params[f"blocks.{i}.1.weight"], params[f"blocks.{i}.1.bias"], stats
            )
            h = torch.relu(F.max_pool2d(h, 2))  # pool before ReLU, as conv_block
        return h.reshape(n, T, -1).transpose(0, 1)


class MLP(Backbone):
    """ReLU MLP (40-40 for sinusoid, as in MAML); [n, in] -> features [n, hidden[-1]]."""

    def __init__(
        self, in_features: int, hidden: tuple[int, ...] = (40, 40), precision: str = "fp32"
    ) -> None:
        super().__init__(precision)
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        self.layers = nn.Sequential(*layers)
        self.out_features = in_features

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))

    def activation_numel(self, x_shape):
        return 3 * sum(m.out_features for m in self.layers if isinstance(m, nn.Linear))

    def folded_body(self, params, x, stats):
        h = x.flatten(2)
        for i in range(0, len(self.layers), 2):  # [Linear, ReLU] pairs
            h = torch.relu(linear(h, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]))
        return h


TEXT_EMBED_DIM = 32


class TextEncoder(Backbone):
    """Mean of word and character-trigram embeddings, then a linear layer and ReLU
    (fastText-like, trained from scratch); int64 ids [n, L] (0 = padding) -> [n, dim].

    A plain Embedding with a masked mean (not EmbeddingBag) keeps second-order gradients
    available to MAML-family methods.
    """

    def __init__(
        self,
        n_ids: int = TEXT_WORD_IDS + TEXT_CHAR_BUCKETS,
        dim: int = TEXT_EMBED_DIM,
        precision: str = "fp32",
    ) -> None:
        super().__init__(precision)
        self.embed = nn.Embedding(n_ids, dim, padding_idx=0)
        self.proj = nn.Linear(dim, dim)
        self.out_features = dim

    def body(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long()  # a method that casts inputs to float still gets valid indices
        mask = (ids != 0).unsqueeze(-1).to(self.embed.weight.dtype)  # [n, L, 1]
        summed = (self.embed(ids) * mask).sum(1)  # [n, dim]
        mean = summed / mask.sum(1).clamp_min(1.0)
        return torch.relu(self.proj(mean))

    def activation_numel(self, x_shape):
        return 3 * x_shape[0] * self.out_features + 3 * self.out_features

    def folded_body(self, params, x, stats):
        # Task t's ids index rows t*V.. of the tasks' tables stacked into one [T*V, dim]
        # table: one gather for all tasks. Padding rows get exactly zero gradient from the
        # mask, as with padding_idx in the module.
        ids = x.long()
        table = params["embed.weight"]  # [T, V, dim]
        T, V = table.shape[:2]
        offsets = torch.arange(0, T * V, V, device=ids.device).view(T, 1, 1)
        mask = (ids != 0).unsqueeze(-1).to(table.dtype)  # [T, n, L, 1]
        embedded = F.embedding(ids + offsets, table.reshape(T * V, -1))  # [T, n, L, dim]
        mean = (embedded * mask).sum(2) / mask.sum(2).clamp_min(1.0)
        return torch.relu(linear(mean, params["proj.weight"], params["proj.bias"]))


def backbone_for(task: TaskSpec) -> nn.Module:
    """The task's backbone: Conv-4 for image inputs [c, h, w], the 40-40 MLP for vectors,
    TextEncoder for token ids [L] (task.backbone "text", set by the text sources)."""
    kind = task.backbone
    if kind == "auto":
        kind = "conv4" if len(task.x_shape) == 3 else "mlp"
    if kind == "conv4":
        return Conv4(task.x_shape[0], CONV4_HIDDEN, precision=task.precision)
    if kind == "mlp":
        return MLP(math.prod(task.x_shape), precision=task.precision)
    if kind == "text":
        return TextEncoder(precision=task.precision)
    raise ValueError(f"unknown backbone {kind!r}")


def classifier(task: TaskSpec) -> nn.Sequential:
    """Backbone followed by a linear head: the network MAML-family methods adapt."""
    body = backbone_for(task)
    return nn.Sequential(body, nn.Linear(body.out_features, task.out_dim))


def folded_classifier(
    net: nn.Sequential, params: Mapping[str, torch.Tensor], x: torch.Tensor, stats: BatchStats
) -> torch.Tensor:
    """`classifier` evaluated folded: params {name: [T, ...]} (its parameter names),
    x [T, n, *x_shape] -> [T, n, out]. The head runs in fp32, as in the module."""
    features = net[0].folded(sub(params, "0."), x, stats)
    return linear(features, params["1.weight"], params["1.bias"])
