"""CUDA graph execution ("graph"): a replayed adaptation and prediction equal eager
batched execution.

Graph replay runs the captured kernels, so it equals an eager call only if the eager call
runs the same arithmetic. Adam is the one place where the two could differ: a capture
needs `capturable=True` (step count and bias corrections as fp32 device tensors), whose
round-off differs from the eager default's Python-float step size and grows with the
training steps. So on CUDA every execution mode builds the capturable Adam
(`bench.methods.functional.make_optimizer`). On CPU, with torch's capturable code path
admitted for the CPU, these tests check that rule and its arithmetic: one optimizer in
every mode, capturable batched equals the loop in float64, and mixing the two Adams is
visible at the CUDA test's tolerance (the negative control of that test). The CUDA test
itself (skipped elsewhere) replays every method's graphs on new data; scripts/gpu_check.sh
runs it, and benchmarks/deploy_batch.py's g-diff column is the same comparison on the
standard shapes.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.optim.adam as torch_adam  # the module (torch.optim.adam is not bound)
from test_batched_equivalence import assert_close, tasks

import bench.methods.backbones as backbones
import bench.methods.functional as functional
from bench.methods import METHODS, TaskSpec
from benchmarks import deploy_batch as bench

TASK = TaskSpec("classification", 5, 1, 3, (1, 28, 28))
ALL = ["protonet", "scratch", "maml", "fomaml", "reptile", "anil", "metasgd"]
ALL += ["learned_opt", "transfer"]
ADAPTS_WITH_ADAM = ["scratch", "transfer"]
SMALL = {"scratch": {"steps": 3}, "transfer": {"steps": 3}, "learned_opt": {"hidden": 4}}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def build(name: str, execution: str, device: torch.device, task: TaskSpec = TASK, **kw):
    cls = METHODS.get(name)
    params = cls.Params(**{**SMALL.get(name, {}), **kw})
    return cls(dataclasses.replace(task, execution=execution), params, device, seed=0)


def admit_cpu(monkeypatch) -> None:
    """Treat the CPU as a capturable device: bench's rule and torch's own check (torch
    then runs its capturable Adam code on CPU tensors, step counts as tensors)."""
    monkeypatch.setattr(functional, "CAPTURABLE_DEVICES", ("cpu",))
    monkeypatch.setattr(
        torch_adam, "_get_capturable_supported_devices", lambda supports_xla=True: ["cpu"]
    )


@pytest.fixture
def capturable_cpu(monkeypatch):
    admit_cpu(monkeypatch)


@pytest.fixture
def adams(monkeypatch) -> list[dict]:
    """The defaults of every Adam built while the test runs."""
    built: list[dict] = []

    class Recording(torch.optim.Adam):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self.defaults)

    monkeypatch.setattr(torch.optim, "Adam", Recording)
    return built


@pytest.mark.parametrize("name", ["scratch", "transfer", "maml"])
def test_every_execution_mode_builds_the_same_adam(
    name, capturable_cpu, adams, monkeypatch
) -> None:
    """Deploy (scratch, transfer) and meta-training (MAML) Adams are capturable on a
    capturable device in loop, batched and graph mode alike, and not on the CPU."""
    monkeypatch.setattr(backbones, "CONV4_HIDDEN", 8)
    cpu = torch.device("cpu")
    for execution in ("loop", "batched", "graph"):
        kw = {"inner_steps": 1, "meta_batch": 2} if name == "maml" else {}
        method = build(name, execution, cpu, **kw)
        ep = bench.episodes(method.task, 2, 1, cpu)
        if name == "maml":
            method.meta_step(ep, 1)
        else:
            method.adapt_many(ep.support_x, ep.support_y)
    assert adams and all(d["capturable"] for d in adams)
    monkeypatch.setattr(functional, "CAPTURABLE_DEVICES", ("cuda",))  # the real rule
    adams.clear()
    build("scratch", "batched", cpu).adapt(ep.support_x[0], ep.support_y[0])
    assert adams and not any(d["capturable"] for d in adams)


@pytest.mark.parametrize("name", ADAPTS_WITH_ADAM)
def test_capturable_adam_batched_equals_the_loop(name, capturable_cpu, monkeypatch) -> None:
    """One capturable Adam over T tasks' stacked leaves is T independent ones (float64)."""
    monkeypatch.setattr(backbones, "CONV4_HIDDEN", 8)
    spec = TaskSpec("classification", 3, 2, 3, (1, 16, 16))
    loop, batched = (build(name, e, torch.device("cpu"), spec) for e in ("loop", "batched"))
    for method in (loop, batched):
        for value in vars(method).values():
            if isinstance(value, torch.nn.Module):
                value.double()
    sx, sy, qx, _ = tasks(spec)
    out = [m.predict_many(m.adapt_many(sx, sy), qx) for m in (loop, batched)]
    assert_close(out[1], out[0], "capturable Adam: batched vs loop")


def test_mixing_the_two_adams_fails_the_graph_tolerance(monkeypatch) -> None:
    """Negative control of the CUDA test below: scratch's eager code with the capturable
    and with the default Adam (fp32, that test's task) differs by more than its tolerance,
    so that test would catch a graph built with one Adam compared with eager runs of the
    other (the review of issue 13 found 2e-5 relative)."""
    cpu = torch.device("cpu")
    ep = bench.episodes(TASK, 8, TASK.n_query, cpu, seed=1)
    plain = bench.batch(build("scratch", "batched", cpu), ep)
    admit_cpu(monkeypatch)
    capturable = bench.batch(build("scratch", "batched", cpu), ep)
    assert not torch.allclose(capturable, plain, rtol=1e-5, atol=1e-6)


@needs_cuda
@pytest.mark.parametrize("name", ALL)
def test_graph_replay_equals_eager_batched(name: str) -> None:
    device = torch.device("cuda")
    eager, graphed = (build(name, mode, device) for mode in ("batched", "graph"))
    ep = bench.episodes(TASK, 8, TASK.n_query, device)
    graphed.warm_up(ep.support_x, ep.support_y, ep.query_x)  # the captures
    assert graphed.graphs is not None and graphed.graphs.graphs
    for seed in (1, 2):  # replays on new data, not the capture's
        ep = bench.episodes(TASK, 8, TASK.n_query, device, seed=seed)
        expected = bench.batch(eager, ep)
        assert torch.allclose(bench.batch(graphed, ep), expected, rtol=1e-5, atol=1e-6)
