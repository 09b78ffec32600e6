"""The Method interface every learner implements, and the registry of methods.

A method is built for one task spec and one device from its hyperparameters (a frozen
`Params` dataclass whose fields the suite loader validates). The harness calls
`meta_train` once (the one-off phase), then per test task `adapt` (support set -> an
opaque adapted state; never mutates the method) and `predict` (adapted state, query
inputs -> scores), or for T tasks at once `adapt_many` / `predict_many`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch

from bench.data.episodes import EpisodeSampler
from bench.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")

T = TypeVar("T")
CheckpointFn = Callable[[int], None]
"""Called by meta_train with the number of steps done so far; the harness closes the
current energy window there and measures a validation score."""


@dataclass(frozen=True)
class TaskSpec:
    """What a method must know about the tasks of a suite.

    kind: "classification" (outputs: n_way logits) or "regression" (outputs: y_dim values).
    x_shape: shape of one input, e.g. (1, 28, 28) or (1,).
    """

    kind: str
    n_way: int
    k_shot: int
    n_query: int
    x_shape: tuple[int, ...]
    y_dim: int = 1
    backbone: str = "auto"  # "conv4", "mlp", or a dataset's own (e.g. "text"); auto: by x_shape
    precision: str = "fp32"  # or "bf16": the backbone runs under bf16 autocast (suite setting)
    # Where batch-statistics BatchNorm gets its statistics at adaptation and prediction:
    # "support" (the task's support set) or "transductive" (the batch itself); see
    # bench.suite.NORMALIZATIONS.
    normalization: str = "support"
    # How the method runs many tasks (the cell's resolved mode, bench.run.execution):
    # "loop" one task per call, "batched" a chunk of tasks per call (meta batches too),
    # "graph" batched with CUDA graph replay.
    execution: str = "loop"

    @property
    def out_dim(self) -> int:
        return self.n_way if self.kind == "classification" else self.y_dim


@dataclass(frozen=True)
class Params:
    """Hyperparameters shared by every method; subclasses add their own fields.

    Every numeric field must be positive unless its metadata says {"min": 0}.
    `meta_steps` is the meta-training budget in steps (0: nothing to meta-train).
    """

    meta_steps: int = dataclasses.field(default=0, metadata={"min": 0})


class Method:
    """Base class: subclasses set `name`, `Params`, `task_kinds` and implement the three
    calls. The method owns its parameters; `adapt` returns new state instead of mutating."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    task_kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # allowed values of str params

    def __init__(self, task: TaskSpec, params: Params, device: torch.device, seed: int) -> None:
        self.task = task
        self.params = params
        self.device = device
        self.seed = seed

    @property
    def meta_steps(self) -> int:
        return self.params.meta_steps

    def meta_train(self, train: EpisodeSampler, checkpoint: CheckpointFn, every: int) -> None:
        """One-off meta-training for `meta_steps` steps on episodes of `train` (or its data);
        call `checkpoint(step)` after every `every` steps and after the last one."""

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Any:
        """Support set [n_way * k_shot, *x_shape], labels or targets -> adapted state."""
        raise NotImplementedError

    def predict(self, adapted: Any, query_x: torch.Tensor) -> torch.Tensor:
        """Query inputs [n, *x_shape] -> logits [n, n_way] or predictions [n, y_dim]."""
        raise NotImplementedError

    # -- many tasks per call (batched execution) ----------------------------------------
    # The fallbacks loop over tasks, so a new method needs only adapt / predict. Built-in
    # methods override them with one batched computation whose results equal the loop's
    # (tests/test_batched_equivalence.py).

    def adapt_many(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Any:
        """T support sets at once: support_x [T, n_s, *x_shape], support_y [T, n_s] (labels)
        or [T, n_s, y_dim] (targets) -> an adapted state for the T tasks. Never mutates the
        method. Fallback: a list of `adapt` states."""
        return [self.adapt(x, y) for x, y in zip(support_x, support_y, strict=True)]

    def predict_many(self, adapted: Any, query_x: torch.Tensor) -> torch.Tensor:
        """query_x [T, n_q, *x_shape] with the state of `adapt_many` -> [T, n_q, out]."""
        return torch.stack(
            [self.predict(self.task_state(adapted, t), x) for t, x in enumerate(query_x)]
        )

    def task_state(self, adapted: Any, t: int) -> Any:
        """Task t's own state out of an `adapt_many` state, as `adapt` would return it
        (for per-task scores computed outside the metered windows, e.g. rollouts)."""
        return adapted[t]

    def warm_up(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor):
        """One throwaway adaptation and prediction of T tasks (shapes as in `adapt_many` /
        `predict_many`) before the first metered window: lazy initialisation, allocator
        growth, kernel selection (and, where a method captures CUDA graphs, the capture)
        then happen in the harness's `setup` window, never in a measured phase."""
        self.predict_many(self.adapt_many(support_x, support_y), query_x)

    def warm_up_meta(self, train: EpisodeSampler) -> None:
        """One throwaway pass of the meta-training path on the shapes of its first step
        (the loss of the first meta batch, or its first chunk, and its gradient, or the
        inner loops Reptile runs), so that lazy initialisation (CUDA context, cuBLAS /
        cuDNN handles and algorithm choice, allocator growth) is not billed to meta_train.

        Contract: the harness calls it once per cell with meta_steps > 0, with the
        `train` sampler it then passes to `meta_train`, inside a `setup` window (not part
        of E_meta) just before the first meta_train window opens. It changes nothing that
        meta-training reads: no parameter, buffer, `.grad`, optimizer state, module
        train / eval mode or torch RNG state; it takes no optimizer step. Meta-training
        after it trains exactly the model it would have trained without it
        (tests/test_methods_warmup.py). Default: nothing to warm up (no meta-training)."""


def seeded(seed: int, build: Callable[[], T]) -> T:
    """build() under torch's global RNG seeded with `seed`, the caller's RNG state left as it
    was: a method's initial weights depend on its seed only, not on what ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def should_checkpoint(step: int, every: int, last: int) -> bool:
    """True after every `every` steps and after the final step."""
    return step == last or (every > 0 and step % every == 0)


def register_builtin() -> None:
    from bench.methods import (  # noqa: F401
        learned_opt,
        maml,
        protonet,
        reptile,
        scratch,
        transfer,
    )
