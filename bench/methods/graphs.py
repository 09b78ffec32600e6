"""CUDA graph replay of whole adaptation and prediction calls ("graph" execution).

One call of a batched method (k optimizer steps and the support statistics, or one
prediction) launches hundreds of small kernels; on a GPU their launch overhead, not the
arithmetic, sets the time. `GraphCache.call` captures such a call once per input
signature (`torch.cuda.graph`, after warm-up passes on a side stream, as the PyTorch
CUDA-graph notes prescribe) and afterwards copies the inputs into the captured buffers,
replays and returns clones of the captured outputs. Captured code must not synchronise
with the host and must allocate its optimizer state on the device (Adam with
`capturable=True`, on CUDA in every execution mode:
`bench.methods.functional.make_optimizer`). Capture happens in the
method's `warm_up`, which the harness runs in its `setup` window, so no metered phase
pays for it. Only CUDA; validated on the device by `benchmarks/deploy_batch.py --device
cuda` (replay equals eager).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

WARMUP_PASSES = 2


class GraphCache:
    """Captured CUDA graphs by (name, input shapes and dtypes)."""

    def __init__(self) -> None:
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list, Any]] = {}

    def call(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) for tensor pytrees args, replayed from a graph (captured on the first
        call with this signature). Returns fresh tensors (clones of the graph's outputs)."""
        flat, spec = tree_flatten(args)
        key = (name, spec, tuple((tuple(t.shape), t.dtype) for t in flat))
        if key not in self.graphs:
            self.graphs[key] = capture(fn, flat, spec)
        graph, static_in, static_out = self.graphs[key]
        for buffer, t in zip(static_in, flat, strict=True):
            buffer.copy_(t)
        graph.replay()
        return tree_map(torch.clone, static_out)


def capture(fn: Callable[..., Any], flat: list[torch.Tensor], spec) -> tuple:
    static_in = [t.detach().clone() for t in flat]
    args = tree_unflatten(static_in, spec)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_PASSES):  # lazy initialisation and kernel choice, not captured
            fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn(*args)
    return graph, static_in, static_out
