"""Execution modes: "auto" resolves per device kind, backbone (from the dataset) and
method to the measured faster mode; explicit modes pass through; bad ones name the key."""

from __future__ import annotations

import pytest

from bench.errors import MetabenchError
from bench.run.execution import BACKBONES, CPU_DEFAULTS, resolve_execution
from bench.run.grid import expand_grid
from bench.suite import load_suite


def test_auto_takes_the_measured_default() -> None:
    for (backbone, method), mode in CPU_DEFAULTS.items():
        dataset = next(d for d, b in BACKBONES.items() if b == backbone)
        assert resolve_execution("auto", "cpu", method, "k", dataset) == mode
    assert resolve_execution("auto", "cpu", "maml", "k", "omniglot") == "loop"  # measured slower
    assert resolve_execution("auto", "cpu", "maml", "k", "a-user-dataset") == "loop"
    assert resolve_execution("auto", "cuda:0", "maml", "k", "omniglot") == "batched"
    assert resolve_execution("auto", "cuda", "my-method", "k", "a-user-dataset") == "batched"
    assert resolve_execution("batched", "cpu", "maml", "k", "omniglot") == "batched"


def test_graph_needs_cuda_and_modes_are_checked() -> None:
    with pytest.raises(MetabenchError, match=r"--execution.*needs --device cuda"):
        resolve_execution("graph", "cpu", "maml", "--execution", "omniglot")
    assert resolve_execution("graph", "cuda", "maml", "k", "omniglot") == "graph"
    with pytest.raises(MetabenchError, match=r"key 'x'.*'fast'"):
        resolve_execution("fast", "cpu", "maml", "key 'x'", "omniglot")


def test_cells_resolve_by_their_suites_dataset() -> None:
    suites = [load_suite("omniglot-5w1s", "standard"), load_suite("sinusoid-5shot", "standard")]
    for cell in expand_grid(suites, ["maml"], [0], "cpu"):
        expected = CPU_DEFAULTS.get((BACKBONES[cell.suite.dataset], "maml"), "loop")
        assert cell.execution == expected
