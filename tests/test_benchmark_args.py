"""The benchmarks refuse bad input as the CLI does: one line naming the flag, exit 2, no
traceback, nothing measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
BAD = [
    ("deploy_batch.py", ["--tasks", "0"], "--tasks: expected an integer >= 1"),
    ("deploy_batch.py", ["--repeats", "-1"], "--repeats: expected an integer >= 1"),
    ("deploy_batch.py", ["--suites", "nosuch"], "suite 'nosuch'"),
    ("deploy_batch.py", ["--device", "tpu"], "--device: expected one of cpu, cuda, auto"),
    ("maml_step.py", ["--repeats", "0"], "--repeats: expected an integer >= 1"),
]
if not torch.cuda.is_available():
    BAD += [
        (script, ["--device", "cuda"], "--device: expected a visible CUDA device")
        for script in ("deploy_batch.py", "maml_step.py")
    ]


@pytest.mark.parametrize("script, args, message", BAD)
def test_bad_benchmark_input_is_one_line_and_exit_2(script, args, message) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""  # nothing measured, not even the table's header
