"""Warm-ups outside the metered phases change nothing, and the batched call's memory cap.

`warm_up_meta` runs the meta-training path once (the first meta step's shapes) so that
lazy initialisation is not billed to meta_train: it must leave every parameter, buffer,
`.grad`, optimizer state, module mode and the RNG as they were, and meta-training after it
must train exactly the same model (float32 on CPU: bitwise); and it must do the work (a
differentiable forward and a backward through it). On CUDA the chunk cap reads
the device's free memory once, when the method is built.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch
from torch import nn

import bench.methods.backbones as backbones
import bench.methods.batched as batched
from bench.methods import METHODS, TaskSpec
from bench.run.grid import Cell
from bench.run.harness import build
from bench.suite import load_suite

META_TRAINED = ["protonet", "maml", "fomaml", "reptile", "anil", "metasgd", "learned_opt"]
META_TRAINED += ["transfer"]


def fingerprint(method) -> str:
    """A digest of everything a warm-up must not change: every module's mode, parameters,
    buffers and `.grad`, every optimizer's state tensors and hyperparameters, torch's RNG."""
    h = hashlib.sha256()

    def tensor(t: torch.Tensor | None) -> None:
        h.update(b"none" if t is None else t.detach().cpu().numpy().tobytes())

    for name, value in sorted(vars(method).items()):
        h.update(name.encode())
        if isinstance(value, nn.Module):
            h.update(f"training={value.training}".encode())
            for key, t in value.state_dict(keep_vars=True).items():
                h.update(key.encode())
                tensor(t)
                tensor(getattr(t, "grad", None))
        elif isinstance(value, torch.optim.Optimizer):
            state = value.state_dict()
            h.update(repr(state["param_groups"]).encode())
            for index, entries in sorted(state["state"].items()):
                for key, v in sorted(entries.items()):
                    h.update(f"{index}.{key}".encode())
                    if isinstance(v, torch.Tensor):
                        tensor(v)
                    else:
                        h.update(repr(v).encode())
        elif value is None:
            h.update(b"None")
    tensor(torch.get_rng_state())
    return h.hexdigest()


def small_cell(name: str, data_root, monkeypatch, execution: str):
    """A method of the omniglot-5w1s smoke cell (8 Conv-4 channels, 3 meta steps)."""
    monkeypatch.setattr(backbones, "CONV4_HIDDEN", 8)
    suite = load_suite("omniglot-5w1s", "smoke")
    method, samplers = build(Cell(suite, name, 0, "cpu", 1, execution), data_root)
    method.params = dataclasses.replace(method.params, meta_steps=3)
    return method, samplers["train"]


@pytest.mark.parametrize("execution", ["loop", "batched"])
@pytest.mark.parametrize("name", META_TRAINED)
def test_warm_up_meta_changes_nothing(name, execution, data_root, monkeypatch) -> None:
    torch.manual_seed(0)
    warmed, train = small_cell(name, data_root, monkeypatch, execution)
    before = fingerprint(warmed)
    warmed.warm_up_meta(train)
    assert fingerprint(warmed) == before
    cold, _ = small_cell(name, data_root, monkeypatch, execution)
    for method in (warmed, cold):
        torch.manual_seed(0)
        method.meta_train(train, lambda step: None, 0)
    assert fingerprint(warmed) == fingerprint(cold)
    # Again with what meta-training leaves: optimizer state, `.grad`, running statistics.
    before = fingerprint(warmed)
    warmed.warm_up_meta(train)
    assert fingerprint(warmed) == before


@pytest.mark.parametrize("name", META_TRAINED)
def test_warm_up_meta_runs_a_forward_and_a_backward(name, data_root, monkeypatch) -> None:
    """Not a no-op: tensors are saved for backward (a differentiable forward) and read
    back (a backward through it)."""
    method, train = small_cell(name, data_root, monkeypatch, "batched")
    counts = {"saved": 0, "read": 0}

    def pack(t: torch.Tensor) -> torch.Tensor:
        counts["saved"] += 1
        return t

    def unpack(t: torch.Tensor) -> torch.Tensor:
        counts["read"] += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        method.warm_up_meta(train)
    assert counts["saved"] > 0 and counts["read"] > 0, counts


def test_methods_without_meta_training_have_nothing_to_warm_up(data_root, monkeypatch) -> None:
    method, train = small_cell("scratch", data_root, monkeypatch, "batched")
    before = fingerprint(method)
    method.warm_up_meta(train)
    assert fingerprint(method) == before


def test_cuda_call_budget_is_a_share_of_the_memory_the_process_can_get(monkeypatch) -> None:
    """Free device memory plus what the allocator holds unused, halved; the CPU's is fixed."""
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 * gib, 141 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 12 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * gib)
    assert batched.call_bytes(torch.device("cuda")) == 0.5 * 110 * gib
    assert batched.call_bytes(torch.device("cpu")) == batched.CPU_CALL_BYTES


def test_chunk_cap_follows_the_call_budget(monkeypatch) -> None:
    monkeypatch.setattr(backbones, "CONV4_HIDDEN", 8)
    cls = METHODS.get("scratch")
    task = TaskSpec("classification", 5, 1, 15, (1, 28, 28), execution="batched")
    scratch = cls(task, cls.Params(), torch.device("cpu"), seed=0)
    per_task = scratch.task_bytes(5, "adapt")
    scratch.call_bytes = 10.5 * per_task
    assert scratch.tasks_per_call(5, "adapt") == 10
    scratch.call_bytes = 1e30
    assert scratch.tasks_per_call(5, "adapt") == batched.MAX_TASKS
