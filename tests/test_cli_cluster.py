"""The cluster recipe of docs/cluster.md, as written: a real `dask scheduler` and two
`dask worker` processes on loopback (started as the docs start them, each offering the
resource GPU=1), and the driver's documented command from a machine without a GPU.

The driver must not need a GPU: with --device cuda it starts, waits for its workers and
submits the cells; each worker checks its own device (here: none, so every cell fails with
one clear line, unless this machine has CUDA). The same cluster runs CPU cells.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from suite_files import sinusoid_suite

pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parent.parent
DASK = Path(sys.executable).parent / "dask"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """`dask scheduler` and two single-threaded `dask worker`s with GPU=1, as documented."""
    logs = tmp_path_factory.mktemp("dask-logs")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    commands = [[DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]]
    commands += [
        [DASK, "worker", address, "--nworkers", "1", "--nthreads", "1", "--resources",
         "GPU=1", "--name", f"gpu{i}", "--no-dashboard"]
        for i in range(2)
    ]  # fmt: skip
    procs = []
    try:
        for i, command in enumerate(commands):
            log = open(logs / f"{i}.log", "w")  # noqa: SIM115 (closed with the process)
            procs.append((subprocess.Popen(command, env=env, stdout=log, stderr=log), log))
            if i == 0:
                wait_for_port(port)
        yield address
    finally:
        for proc, log in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def wait_for_port(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"dask scheduler did not listen on {port}")


def driver(suite: Path, device: str, scheduler: str, out: Path) -> subprocess.CompletedProcess:
    """The documented driver command, run where no GPU is needed."""
    command = [
        Path(sys.executable).parent / "metabench", "run", suite, "--profile", "smoke",
        "--device", device, "--executor", "dask", "--scheduler", scheduler,
        "--wait-workers", "2", "--out", out, "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [str(c) for c in command], env=env, capture_output=True, text=True, timeout=300
    )


def test_documented_cluster_commands_run_from_a_driver_without_gpu(scheduler, tmp_path) -> None:
    suite = sinusoid_suite(tmp_path / "tiny.toml", {"scratch": 2}, seeds=(0, 1))
    cuda = driver(suite, "cuda", scheduler, tmp_path / "cuda")
    assert "Traceback" not in cuda.stderr
    assert cuda.returncode != 2 and "error: --device" not in cuda.stderr  # the driver ran
    if torch.cuda.is_available():
        assert cuda.returncode == 0, cuda.stderr
    else:  # the workers, not the driver, found no GPU: each cell says so in one line
        assert cuda.returncode == 1, cuda.stderr
        failed = [line for line in cuda.stderr.splitlines() if line.startswith("FAILED")]
        assert len(failed) == 2, cuda.stderr
        assert all("worker tcp://127.0.0.1:" in line and "CUDA device" in line for line in failed)
        assert "2 of 2 cells failed" in cuda.stderr
    cpu = driver(suite, "cpu", scheduler, tmp_path / "cpu")
    assert cpu.returncode == 0, cpu.stderr
    assert "2 cells run, 0 already done, 0 failed" in cpu.stdout
    with sqlite3.connect(tmp_path / "cpu" / "ledger.sqlite") as con:
        workers = {w for (w,) in con.execute("SELECT worker FROM cells WHERE status='done'")}
    assert workers and all(w.startswith("tcp://127.0.0.1:") for w in workers)
