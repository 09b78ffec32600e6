"""Many tasks per call: one adaptation code path for one task and for T tasks.

A `TaskBatched` method implements `adapt_tasks` / `predict_tasks` over T stacked tasks and
gets the rest of the Method interface from them: `adapt` / `predict` are the case T = 1,
and `adapt_many` / `predict_many` split T into equal chunks whose size the cell's
execution mode sets (`TaskSpec.execution`): one task per chunk for "loop", as many as
the memory cap allows for "batched" and "graph" (the latter replays each chunk's work as
a CUDA graph, bench.methods.graphs). The adapted state is a dict of stacked tensors
[T, ...], so one task's state is a slice of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from bench.data.episodes import Episode
from bench.methods.base import Method
from bench.methods.graphs import GraphCache

State = dict[str, torch.Tensor]  # every entry [T, ...]

# Bytes of activations one batched call may hold: the chunk cap is this over a method's
# estimate of bytes per task (`task_bytes`). On CPU a fixed figure that keeps a chunk well
# inside a shared 24 GB machine; on CUDA a share of the memory this process can still get
# when the method is built (free on the device plus what PyTorch's allocator holds unused).
CPU_CALL_BYTES = 2.0e9
CUDA_CALL_SHARE = 0.5
MAX_TASKS = 1024


def call_bytes(device: torch.device) -> float:
    """The activation budget of one batched call on `device`, in bytes."""
    if device.type != "cuda":
        return CPU_CALL_BYTES
    free, _total = torch.cuda.mem_get_info(device)
    unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return CUDA_CALL_SHARE * (free + unused)


def activation_bytes(backbone, task, rows: int) -> float:
    """Estimated bytes of one forward's saved activations for `rows` inputs."""
    element = next(backbone.parameters()).element_size()
    return rows * backbone.activation_numel(task.x_shape) * element


def chunks(n: int, cap: int) -> list[slice]:
    """0..n in ceil(n / cap) chunks of equal size (the first ones one larger when n does
    not divide): equal shapes let one CUDA graph capture serve a whole cell."""
    k = max(1, math.ceil(n / max(1, cap)))
    sizes = [n // k + (i < n % k) for i in range(k)]
    out, start = [], 0
    for s in sizes:
        out.append(slice(start, start + s))
        start += s
    return out


def cat_states(states: list[State]) -> State:
    if len(states) == 1:
        return states[0]
    return {k: torch.cat([s[k] for s in states]) for k in states[0]}


def slice_state(state: Mapping[str, torch.Tensor], index: slice | torch.Tensor) -> State:
    return {k: v[index] for k, v in state.items()}


def stack_episodes(episodes: list[Episode]) -> Episode:
    """T episodes of one shape -> one Episode of stacked tensors [T, ...]."""
    return Episode(
        *(torch.stack([getattr(e, f) for e in episodes]) for f in Episode.__dataclass_fields__)
    )


def slice_episode(ep: Episode, index: slice) -> Episode:
    return Episode(ep.support_x[index], ep.support_y[index], ep.query_x[index], ep.query_y[index])


class TaskBatched(Method):
    """Base of the built-in methods: T tasks per call, one code path for every T."""

    def __init__(self, task, params, device, seed) -> None:
        super().__init__(task, params, device, seed)
        self.graphs = GraphCache() if task.execution == "graph" and device.type == "cuda" else None
        # Read once: a cell's chunk sizes, and so its CUDA graphs' shapes, stay fixed.
        self.call_bytes = call_bytes(device)

    # -- what a method implements ------------------------------------------------------
    def adapt_tasks(self, support_x: torch.Tensor, support_y: torch.Tensor) -> State:
        """support_x [T, n_s, *x_shape], support_y [T, n_s] or [T, n_s, y_dim] -> state."""
        raise NotImplementedError

    def predict_tasks(self, state: State, query_x: torch.Tensor) -> torch.Tensor:
        """query_x [T, n_q, *x_shape] -> [T, n_q, out]."""
        raise NotImplementedError

    def task_bytes(self, rows: int, phase: str) -> float:
        """Estimated peak bytes one task with `rows` inputs holds in a call of `phase`
        ("adapt", "predict" or "meta": a meta-training chunk), activations and per-task
        parameters; sets the chunk cap of batched execution. 0: no cap."""
        return 0.0

    # -- the interface, derived ----------------------------------------------------------
    def tasks_per_call(self, rows: int, phase: str) -> int:
        """Chunk size for tasks of `rows` inputs in `phase`: 1 for "loop", else the
        memory cap (`call_bytes` over `task_bytes`, at most MAX_TASKS)."""
        if self.task.execution == "loop":
            return 1
        per_task = self.task_bytes(rows, phase)
        if per_task <= 0:
            return MAX_TASKS
        return int(max(1, min(MAX_TASKS, self.call_bytes // per_task)))

    def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), replayed from a CUDA graph in "graph" mode."""
        if self.graphs is None:
            return fn(*args)
        return self.graphs.call(name, fn, *args)

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> State:
        return self.run("adapt", self.adapt_tasks, support_x[None], support_y[None])

    def predict(self, adapted: State, query_x: torch.Tensor) -> torch.Tensor:
        return self.run("predict", self.predict_tasks, adapted, query_x[None])[0]

    def adapt_many(self, support_x: torch.Tensor, support_y: torch.Tensor) -> State:
        parts = chunks(len(support_x), self.tasks_per_call(support_x.shape[1], "adapt"))
        return cat_states(
            [self.run("adapt", self.adapt_tasks, support_x[c], support_y[c]) for c in parts]
        )

    def predict_many(self, adapted: State, query_x: torch.Tensor) -> torch.Tensor:
        parts = chunks(len(query_x), self.tasks_per_call(query_x.shape[1], "predict"))
        outs = [
            self.run("predict", self.predict_tasks, slice_state(adapted, c), query_x[c])
            for c in parts
        ]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def task_state(self, adapted: State, t: int) -> State:
        return slice_state(adapted, slice(t, t + 1))

    def call_sizes(self, n_tasks: int, rows: int, phase: str) -> list[int]:
        """The distinct numbers of tasks per call when `n_tasks` tasks of `rows` inputs go
        through `adapt_many` ("adapt") or `predict_many` ("predict")."""
        return sorted({c.stop - c.start for c in chunks(n_tasks, self.tasks_per_call(rows, phase))})

    def warm_up(self, support_x, support_y, query_x) -> None:
        """Throwaway calls of every shape `adapt_many` and `predict_many` make for these T
        tasks, one call per distinct shape (and, in "graph" mode, their CUDA graph
        captures), and of one task alone, outside the metered windows. One call per shape
        suffices: a whole chunk cost as much as its metered pass (a 200-task chunk of
        from-scratch on 20-way Omniglot spent 50 s warming up)."""
        n = len(support_x)
        for t in self.call_sizes(n, support_x.shape[1], "adapt"):
            state, adapted = self.run("adapt", self.adapt_tasks, support_x[:t], support_y[:t]), t
        for t in self.call_sizes(n, query_x.shape[1], "predict"):
            index = torch.arange(t, device=query_x.device) % adapted  # states repeated up to t
            self.run("predict", self.predict_tasks, slice_state(state, index), query_x[:t])
        self.predict(self.adapt(support_x[0], support_y[0]), query_x[0])
