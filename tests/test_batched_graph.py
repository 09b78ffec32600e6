"""CUDA graph execution ("graph"): a replayed adaptation and prediction equal eager
batched execution. Needs a CUDA device (skipped elsewhere); scripts/gpu_check.sh runs the
same comparison for every method on the standard shapes (benchmarks/deploy_batch.py,
column g-diff)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.methods import METHODS, TaskSpec
from benchmarks import deploy_batch as bench

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

TASK = TaskSpec("classification", 5, 1, 3, (1, 28, 28))


@pytest.mark.parametrize("name", ["scratch", "maml", "anil", "transfer", "protonet"])
def test_graph_replay_equals_eager_batched(name: str) -> None:
    device = torch.device("cuda")
    cls = METHODS.get(name)
    params = cls.Params(**({"steps": 3} if name in ("scratch", "transfer") else {}))
    eager, graphed = (
        cls(dataclasses.replace(TASK, execution=mode), params, device, seed=0)
        for mode in ("batched", "graph")
    )
    ep = bench.episodes(TASK, 8, TASK.n_query, device)
    graphed.warm_up(ep.support_x, ep.support_y, ep.query_x)  # the captures
    for seed in (1, 2):  # replays on new data, not the capture's
        ep = bench.episodes(TASK, 8, TASK.n_query, device, seed=seed)
        expected = bench.batch(eager, ep)
        assert torch.allclose(bench.batch(graphed, ep), expected, rtol=1e-5, atol=1e-6)
