"""The Dask executors on a loopback LocalCluster (2 worker processes, one task each).

Tiny suites (a few test episodes) keep each cell to about a second; Omniglot loads once per
worker process. Every cell runs at its own torch thread count (Cell.threads, set by the
harness), so Dask scores equal local scores bit for bit.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("distributed")
import cloudpickle
from distributed import Client
from suite_files import sinusoid_suite

from bench.cli import main
from bench.energy.base import Measurement, MeterBase, TimeMeter, Window
from bench.errors import MetabenchError
from bench.options import RunOptions, check_run_options
from bench.run import dask_cluster
from bench.run import dask_executor as dx
from bench.run.executors import LocalExecutor
from bench.run.grid import DEFAULT_THREADS, Cell, expand_grid
from bench.store import Ledger
from bench.suite import load_suite

REPO = Path(__file__).resolve().parent.parent
# Workers unpickle this module's task wrappers by value: they need not import tests/.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TINY_PROFILES = """
[profiles.smoke]
n_test_episodes = 6
n_val_episodes = 2
n_checkpoints = 1
idle_s = 0
{methods}
[profiles.standard]
[profiles.paper]
"""
OMNIGLOT = """
dataset = "omniglot"
split = "vinyals"
task = "classification"
n_way = 5
k_shot = 1
n_query = 3
n_test_episodes = 600
seeds = [0]
target_score = 0.95
[methods.protonet]
lr = 0.001
[methods.scratch]
lr = 0.01
""" + TINY_PROFILES.format(
    methods="""
[profiles.smoke.methods.protonet]
meta_steps = 2
train_way = 5
train_shot = 1
train_query = 2
[profiles.smoke.methods.scratch]
steps = 1
"""
)


def data_root() -> Path:
    env = os.environ.get("METABENCH_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    if not (root / "omniglot").is_dir():
        pytest.skip(f"no Omniglot data under {root} (set METABENCH_DATA)")
    return root


def write_suites(folder: Path, seeds: tuple[int, ...] = (0, 1), steps: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    omni = folder / "omni-tiny.toml"
    omni.write_text(OMNIGLOT)
    smoke = {"n_test_episodes": 6, "n_checkpoints": 1}
    sin = sinusoid_suite(folder / "sin-tiny.toml", {"scratch": steps}, seeds, **smoke)
    return [omni, sin]


def grid(paths: list[Path]) -> list[Cell]:
    return expand_grid([load_suite(p, "smoke") for p in paths], None, None, "cpu")


def cells_table(run_dir: Path) -> dict[str, tuple]:
    with sqlite3.connect(run_dir / "ledger.sqlite") as con:
        rows = con.execute(
            "SELECT cell_key, status, fingerprint, score_mean, run_id, started_at, worker, "
            "exclusive_energy, torch_threads FROM cells"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def row_counts(run_dir: Path) -> dict[str, int]:
    with sqlite3.connect(run_dir / "ledger.sqlite") as con:
        return {
            t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("cells", "windows", "episodes", "checkpoints")
        }


@pytest.fixture(scope="module")
def client():
    cluster = dask_cluster.start_local_cluster(2, "cpu", 1, retries=dx.DEFAULT_RETRIES)
    with cluster, Client(cluster) as c:
        yield c


def dask_run(client, cells: list[Cell], run_dir: Path, **kwargs) -> dx.RunSummary:
    ledger = Ledger(run_dir)
    executor = dx.DaskExecutor(client, TimeMeter, data_root(), progress=False, **kwargs)
    return executor.execute(cells, ledger, ledger.start_run("test", {}))


# --- no cluster ------------------------------------------------------------------------


def test_executor_flags_are_checked() -> None:
    check_run_options(RunOptions(("s",), executor="dask", scheduler="tcp://127.0.0.1:8786"))
    for kind, scheduler, workers in [
        ("dask", None, None),
        ("local", "tcp://127.0.0.1:1", None),
        ("local", None, 2),
        ("dask-local", None, 0),
        ("spark", None, None),
    ]:
        with pytest.raises(MetabenchError, match="--"):
            options = RunOptions(("s",), executor=kind, scheduler=scheduler, workers=workers)
            check_run_options(options)
    assert main(["run", "sinusoid-5shot", "--executor", "dask", "--profile", "smoke"]) == 2


def test_gpu_workers_own_one_gpu_each() -> None:
    specs = dask_cluster.worker_specs(2, ["3", "5"], threads=4)
    options = [s["options"] for s in specs.values()]
    assert [o["env"]["CUDA_VISIBLE_DEVICES"] for o in options] == ["3", "5"]
    assert all(o["resources"] == {"GPU": 1} and o["nthreads"] == 1 for o in options)
    assert all(o["env"]["OMP_NUM_THREADS"] == "4" for o in options)
    cpu = dask_cluster.worker_specs(3, [], threads=1)
    assert all(
        "resources" not in s["options"] and s["options"]["env"]["OMP_NUM_THREADS"] == "1"
        for s in cpu.values()
    )


def test_dask_local_workers_fit_the_cores_at_the_cells_threads(monkeypatch) -> None:
    monkeypatch.setattr(dask_cluster, "cpu_count", lambda: 16)
    assert dask_cluster.default_workers("cpu", 4) == 4  # workers x threads <= cores
    assert dask_cluster.default_workers("cpu", 3) == 5
    assert dask_cluster.default_workers("cpu", 16) == 1
    monkeypatch.setattr(dask_cluster, "cpu_count", lambda: 2)
    assert dask_cluster.default_workers("cpu", 4) == 1  # at least one


def test_dask_local_workers_allocate_as_a_local_run(client) -> None:
    """Dask's Nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which made a Conv-4
    cell 2.3x slower there than in the driver; dask-local's workers run without it."""
    env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert len(env) == 2 and set(env.values()) == {None}


def test_cells_pickle_and_replies_are_small(tmp_path: Path) -> None:
    cells = grid(write_suites(tmp_path))
    assert all(pickle.loads(pickle.dumps(c)).key == c.key for c in cells)
    reply = dx.run_on_worker(cells[-1], TimeMeter, data_root(), "run-x")
    assert reply.placement.worker == "local" and reply.idle == []  # idle_s = 0
    assert len(pickle.dumps(reply)) < 64 * 1024  # scores and windows, no tensors


class FakeJoulesMeter(MeterBase):
    """10 J on cpu:0 over 2 s in every window: 5 W of idle power."""

    def _stop(self, window: Window, seconds: float) -> Measurement:
        return Measurement(window.name, window.start_s, 2.0, {"cpu:0": 10.0}, {"cpu:0": "fake"})


def test_worker_meter_is_built_once_per_run_with_its_idle_window() -> None:
    meter, idle = dx.worker_meter("run-1", FakeJoulesMeter, 2.0, sleep=lambda s: None)
    assert [(i.component, i.watts, i.source) for i in idle] == [("cpu:0", 5.0, "fake")]
    assert dx.worker_meter("run-1", FakeJoulesMeter, 2.0) == (meter, [])
    other, _ = dx.worker_meter("run-2", TimeMeter, 0.0)
    assert other is not meter and all(k[0] == "run-2" for k in dx._WORKER_METERS)


def test_old_ledger_gets_the_new_columns(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "ledger.sqlite") as con:  # every ledger had these two
        con.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY)")
        con.execute("CREATE TABLE cells (cell_key TEXT PRIMARY KEY, status TEXT)")
        con.execute("INSERT INTO cells VALUES ('k', 'done')")
    con = Ledger(tmp_path).connect()
    cols = {r[1] for r in con.execute("PRAGMA table_info(cells)")}
    con.close()
    assert {"worker", "host", "gpu_uuid", "exclusive_energy", "torch_threads"} <= cols
    assert Ledger(tmp_path).done_keys() == {"k"}


# --- on the cluster --------------------------------------------------------------------


def test_dask_run_equals_local_run(client, tmp_path: Path) -> None:
    cells = grid(write_suites(tmp_path / "suites"))
    threads = torch.get_num_threads()
    try:  # each cell sets its own thread count, so local and Dask scores are bit-identical
        local = Ledger(tmp_path / "local")
        LocalExecutor(TimeMeter, data_root(), progress=False).execute(
            cells, local, local.start_run("test", {})
        )
    finally:
        torch.set_num_threads(threads)
    summary = dask_run(client, cells, tmp_path / "dask")
    assert (summary.done, summary.failed) == (len(cells), 0)
    ours, theirs = cells_table(tmp_path / "local"), cells_table(tmp_path / "dask")
    assert ours.keys() == theirs.keys() == {c.key for c in cells}
    for key in ours:
        assert ours[key][:3] == theirs[key][:3]  # status, fingerprint, score_mean
        assert theirs[key][5].startswith("tcp://127.0.0.1:")
        # two workers on one host share the CPU package; each ran at the cell's threads
        assert theirs[key][6:] == (0, cells[0].threads)
        assert ours[key][5:] == ("local", 1, cells[0].threads)
    assert row_counts(tmp_path / "local") == row_counts(tmp_path / "dask")


def kill_worker_once(marker: Path, label: str, cell: Cell, meter_factory, *args):
    """The task of one cell, except that `label`'s first attempt kills its own worker
    process in the middle of the cell (at its first `adapt` window)."""
    if cell.label == label and not marker.exists():
        marker.write_text(str(os.getpid()))
        meter_factory = functools.partial(KillingMeter, meter_factory)
    return dx.run_on_worker(cell, meter_factory, *args)


class KillingMeter:
    min_window_s = 0.0

    def __init__(self, factory) -> None:
        self.inner = factory()

    def begin(self, name: str):
        if name == "adapt":
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.begin(name)

    def end(self, window):
        return self.inner.end(window)

    def window(self, name: str):
        return self.inner.window(name)


def test_worker_killed_mid_cell_is_retried_once_written(client, tmp_path: Path) -> None:
    cells = grid(write_suites(tmp_path / "suites"))
    victim = cells[0]  # omni-tiny/protonet: meta_train, then killed at its first adapt
    marker = tmp_path / "killed"
    task = functools.partial(kill_worker_once, marker, victim.label)
    summary = dask_run(client, cells, tmp_path / "run", task=task)
    assert marker.exists()  # a worker died in the middle of the cell...
    assert (summary.done, summary.failed) == (len(cells), 0)  # ...and a retry finished it
    table = cells_table(tmp_path / "run")
    assert {k: v[0] for k, v in table.items()} == {c.key: "done" for c in cells}
    counts = row_counts(tmp_path / "run")  # nothing written twice
    assert counts["cells"] == len(cells)
    assert counts["episodes"] == sum(c.suite.n_test_episodes for c in cells)


def test_cell_failing_every_time_is_recorded_and_run_goes_on(client, tmp_path: Path) -> None:
    cells = grid(write_suites(tmp_path / "suites"))
    task = functools.partial(always_fail, cells[-1].label)
    summary = dask_run(client, cells, tmp_path / "run", task=task, retries=1)
    assert (summary.done, summary.failed) == (len(cells) - 1, 1)
    status = {k: (v[0]) for k, v in cells_table(tmp_path / "run").items()}
    assert status[cells[-1].key] == "failed"
    with sqlite3.connect(tmp_path / "run" / "ledger.sqlite") as con:
        (error,) = con.execute("SELECT error FROM cells WHERE status='failed'").fetchone()
    assert "deliberate failure" in error


def always_fail(label: str, cell: Cell, *args):
    if cell.label == label:
        raise RuntimeError(f"deliberate failure of {label}")
    return dx.run_on_worker(cell, *args)


def test_killed_driver_resumes_without_recomputing(client, tmp_path: Path) -> None:
    suites = write_suites(tmp_path / "suites", seeds=(0, 1, 2, 3, 4, 5), steps=20)[1:]
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "METABENCH_DATA": str(data_root())}
    # The driver joins the test's cluster as a user's driver joins a remote one; kill -9
    # of its process group then kills the driver alone, and the workers live on.
    command = [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        *map(str, suites),
        "--profile",
        "smoke",
        "--out",
        str(run_dir),
        "--no-progress",
        "--device",
        "cpu",
        "--executor",
        "dask",
        "--scheduler",
        client.scheduler.address,
    ]
    driver = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not before_kill(run_dir) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    done_before = before_kill(run_dir)
    cells = grid(suites)
    assert 1 <= len(done_before) < len(cells), "the driver was not killed mid-run"
    summary = dask_run(client, cells, run_dir)
    assert (summary.skipped, summary.done) == (len(done_before), len(cells) - len(done_before))
    after = cells_table(run_dir)
    assert all(after[k] == row for k, row in done_before.items())  # not recomputed
    assert all(row[0] == "done" for row in after.values()) and len(after) == len(cells)


def before_kill(run_dir: Path) -> dict[str, tuple]:
    """The done cells of the ledger so far (empty until the first cell is written)."""
    try:
        return {k: v for k, v in cells_table(run_dir).items() if v[0] == "done"}
    except sqlite3.OperationalError:  # no ledger or no table yet
        return {}


def test_dask_local_reproduces_a_local_run_at_default_settings(tmp_path: Path) -> None:
    """The same command on both executors, no thread flag: the same cells, bit-identical
    scores (dask-local starts cores // threads workers; each cell sets its threads)."""
    suites = [str(p) for p in write_suites(tmp_path / "suites")]
    args = ["run", *suites, "--profile", "smoke", "--no-progress"]
    args += ["--data-dir", str(data_root()), "--device", "cpu"]
    threads = torch.get_num_threads()
    try:
        assert main([*args, "--out", str(tmp_path / "local")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main([*args, "--out", str(tmp_path / "dask"), "--executor", "dask-local"]) == 0
    local, dask = cells_table(tmp_path / "local"), cells_table(tmp_path / "dask")
    assert local.keys() == dask.keys() and len(local) == 4
    for key in local:
        assert local[key][:3] == dask[key][:3]  # status, fingerprint, score_mean
        assert local[key][-1] == dask[key][-1] == DEFAULT_THREADS  # torch_threads
