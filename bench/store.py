"""The results ledger: one SQLite file per results directory.

A cell's rows (cell, windows, checkpoints, episode scores) commit in one transaction when
the cell ends, so a run killed at any moment (kill -9 included) loses at most the cell in
flight, and a re-run skips the cells whose key is already stored as done.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from pathlib import Path

import pandas as pd

from bench.errors import MetabenchError
from bench.run.harness import CellResult
from bench.run.placement import Placement

LEDGER_NAME = "ledger.sqlite"
LOCK_NAME = ".metabench.lock"  # held by the run writing the folder (bench.run.folder)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at REAL, command TEXT, environment TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    cell_key TEXT PRIMARY KEY, run_id TEXT, suite TEXT, suite_path TEXT, suite_sha256 TEXT,
    profile TEXT, dataset TEXT, split TEXT, task TEXT, n_way INTEGER, k_shot INTEGER,
    n_query INTEGER, n_test INTEGER, target_score REAL, method TEXT, params TEXT,
    params_hash TEXT, seed INTEGER, device TEXT, score_name TEXT, fingerprint TEXT,
    score_mean REAL, score_ci95 REAL, status TEXT, error TEXT,
    started_at REAL, finished_at REAL
);
CREATE TABLE IF NOT EXISTS windows (
    cell_key TEXT, phase TEXT, idx INTEGER, n_items INTEGER, step INTEGER, name TEXT,
    start_s REAL, seconds REAL, joules TEXT, sources TEXT, samples TEXT, warnings TEXT,
    details TEXT,
    PRIMARY KEY (cell_key, phase, idx)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    cell_key TEXT, step INTEGER, val_score REAL, meta_seconds REAL, meta_joules REAL,
    PRIMARY KEY (cell_key, step)
);
CREATE TABLE IF NOT EXISTS episodes (
    cell_key TEXT, idx INTEGER, score REAL, PRIMARY KEY (cell_key, idx)
);
CREATE TABLE IF NOT EXISTS episode_metrics (
    cell_key TEXT, idx INTEGER, name TEXT, value REAL, PRIMARY KEY (cell_key, idx, name)
);
CREATE TABLE IF NOT EXISTS idle (
    run_id TEXT, component TEXT, watts REAL, source TEXT, seconds REAL,
    PRIMARY KEY (run_id, component)
);
CREATE TABLE IF NOT EXISTS carbon (
    run_id TEXT PRIMARY KEY, intensity_g_per_kwh REAL, source TEXT, pue REAL, region TEXT
);
CREATE TABLE IF NOT EXISTS samples (
    cell_key TEXT, t REAL, component TEXT, kind TEXT, watts REAL, phase TEXT
);
"""
# Columns added after the first release: ALTERed into older ledgers by `migrate`, so a
# ledger written before them still opens and resumes. cells.worker / host / gpu_uuid: where
# a cell ran (the executor's Placement; NULL for local runs before this column existed).
# cells.exclusive_energy: 1 when no other cell of the run shared the metered device while
# this cell ran (local sequential runs, GPU cells that own their GPU), 0 when cells ran
# concurrently on the same CPU package (their CPU/DRAM energy is shared). cells.torch_threads:
# torch's intra-op threads (CPU scores are bit-identical only at equal thread counts).
# cells.precision: the suite's precision (fp32, or bf16 autocast; NULL before it existed = fp32).
# cells.normalization: where batch-statistics BatchNorm took its statistics (support |
# transductive; NULL in ledgers written before it existed, which were all transductive).
# cells.execution: the resolved execution mode (loop | batched | graph; NULL before = loop).
ADDED_CELL_COLUMNS = {
    "worker": "TEXT",
    "host": "TEXT",
    "gpu_uuid": "TEXT",
    "exclusive_energy": "INTEGER",
    "torch_threads": "INTEGER",
    "precision": "TEXT",
    "normalization": "TEXT",
    "execution": "TEXT",
}
# windows.scenario: for adapt / predict windows, the deploy scenario (stream: one task at a
# time; batch: a chunk of tasks served together); NULL before it existed = stream.
# windows.repeats: how many times a pure pass ran inside the window to outlast the meter's
# resolution (its energy is divided by repeats x n_items); NULL before = 1.
ADDED_WINDOW_COLUMNS = {"scenario": "TEXT", "repeats": "INTEGER"}
# idle.watts_std: the idle baseline's noise, the sample std of the mean power of its slices
# (W; bench.energy.idle): a net figure within ~watts_std x seconds of 0 is idle noise. NULL
# before it existed = unknown.
ADDED_IDLE_COLUMNS = {"watts_std": "REAL"}
IDLE_INSERT = (
    "INTO idle (run_id, component, watts, source, seconds, watts_std) VALUES (?, ?, ?, ?, ?, ?)"
)
# windows.joules / sources / samples: JSON objects keyed by component (gpu:<id>, cpu:<pkg>,
# dram:<pkg>); windows.details: JSON of meter-specific extras (e.g. counter vs integrated
# power per GPU). idle: the idle baseline of a run, per component. carbon: the intensity,
# its source and the PUE used for CO2. samples: the power trace (kind: instant | average |
# estimate) with the phase each sample falls in. episode_metrics: per test episode, scores a
# source adds beyond the suite's score (e.g. rollout_mse of the dynamics suites).


def cell_identity(run_id: str, cell) -> dict:
    """The columns that say which cell a row is, for done and failed cells alike."""
    suite = cell.suite
    return {
        "cell_key": cell.key,
        "run_id": run_id,
        "suite": suite.name,
        "suite_path": suite.path,
        "suite_sha256": suite.sha256,
        "profile": suite.profile,
        "method": cell.method,
        "params_hash": cell.params_hash,
        "seed": cell.seed,
        "device": cell.device,
        "precision": suite.precision,
        "normalization": suite.normalization,
        "execution": cell.execution,
        "torch_threads": cell.threads,
    }


def insert_cell(con: sqlite3.Connection, row: dict) -> None:
    """One cells row from {column: value} (column names come from code, never from input)."""
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    con.execute(f"INSERT INTO cells ({columns}) VALUES ({marks})", tuple(row.values()))


class Ledger:
    """The SQLite ledger of one results directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEDGER_NAME

    def connect(self) -> sqlite3.Connection:
        """The ledger, created with its tables if new. Raises MetabenchError naming the file
        when it cannot be created or opened, or is not a metabench ledger."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=60)
        except (OSError, sqlite3.Error) as e:
            raise self._error(e) from None
        try:
            check_schema(con, self.path)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(SCHEMA)
            migrate(con)
        except (MetabenchError, sqlite3.Error) as e:
            con.close()
            raise e if isinstance(e, MetabenchError) else self._error(e) from None
        return con

    def require(self) -> None:
        """The folder holds a metabench ledger (read only). Raises MetabenchError naming the
        folder when it holds none, or the file when it is not a metabench ledger."""
        if not self.path.is_file():
            raise MetabenchError(
                f"{self.run_dir}: expected a run folder holding {LEDGER_NAME}, found none "
                "(run `metabench run` first)"
            )
        self.check()

    def check(self) -> None:
        """An existing ledger file is a metabench ledger (read only; before a run writes
        anything). Raises MetabenchError naming the file."""
        if not self.path.is_file():
            return
        try:
            con = sqlite3.connect(self.path, timeout=60)  # reading writes nothing
        except sqlite3.Error as e:
            raise self._error(e) from None
        try:
            check_schema(con, self.path)
        except sqlite3.Error as e:
            raise self._error(e) from None
        finally:
            con.close()

    def _error(self, e: BaseException) -> MetabenchError:
        if type(e) in (sqlite3.DatabaseError, sqlite3.NotSupportedError):  # not SQLite
            return MetabenchError(
                f"{self.path}: expected a metabench ledger (SQLite), found a file that is not "
                f"one ({e}); move it away, or choose another folder"
            )
        return MetabenchError(f"{self.path}: could not open the ledger ({e})")

    def start_run(self, command: str, environment: dict) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self.connect() as con:
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?)",
                (run_id, time.time(), command, json.dumps(environment)),
            )
        return run_id

    def done_keys(self) -> set[str]:
        if not self.path.exists():
            return set()
        with self.connect() as con:
            return {k for (k,) in con.execute("SELECT cell_key FROM cells WHERE status='done'")}

    def write_cell(
        self, run_id: str, result: CellResult, placement: Placement | None = None
    ) -> None:
        """All rows of one cell in one transaction (with where it ran, if given)."""
        cell, suite = result.cell, result.cell.suite
        with self._transaction() as con:
            self._delete(con, cell.key)
            insert_cell(
                con,
                {
                    **cell_identity(run_id, cell),
                    "dataset": suite.dataset,
                    "split": suite.split,
                    "task": suite.task,
                    "n_way": suite.n_way,
                    "k_shot": suite.k_shot,
                    "n_query": suite.n_query,
                    "n_test": suite.n_test_episodes,
                    "target_score": suite.target_score,
                    "params": json.dumps(cell.params, sort_keys=True),
                    "score_name": suite.score_name,
                    "fingerprint": result.fingerprint,
                    "score_mean": result.score_mean,
                    "score_ci95": result.score_ci95,
                    "status": "done",
                    "started_at": result.started_at,
                    "finished_at": result.finished_at,
                },
            )
            con.executemany(
                "INSERT INTO windows (cell_key, phase, idx, n_items, step, name, start_s, "
                "seconds, joules, sources, samples, warnings, details, scenario, repeats) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cell.key,
                        w.phase,
                        w.index,
                        w.n_items,
                        w.step,
                        w.measurement.name,
                        w.measurement.start_s,
                        w.measurement.seconds,
                        json.dumps(dict(w.measurement.joules_by_component)),
                        json.dumps(dict(w.measurement.source_by_component)),
                        json.dumps(dict(w.measurement.samples_by_component)),
                        json.dumps(list(w.measurement.warnings)),
                        json.dumps(dict(w.measurement.details)),
                        w.scenario or None,
                        w.repeats,
                    )
                    for w in result.windows
                ],
            )
            con.executemany(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                [
                    (cell.key, c.step, c.val_score, c.meta_seconds, c.meta_joules)
                    for c in result.checkpoints
                ],
            )
            con.executemany(
                "INSERT INTO episodes VALUES (?, ?, ?)",
                [(cell.key, i, s) for i, s in enumerate(result.episode_scores)],
            )
            con.executemany(
                "INSERT INTO episode_metrics VALUES (?, ?, ?, ?)",
                [(cell.key, i, n, v) for i, n, v in result.episode_metrics],
            )
            con.executemany(
                "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (cell.key, r.t, r.component, r.kind, r.watts, r.phase)
                    for r in getattr(result, "trace", ())
                ],
            )
            write_placement(con, cell.key, placement)

    def write_idle(self, run_id: str, idle: list) -> None:
        """The run's idle baseline: one row per component (bench.energy.idle.IdlePower)."""
        with self._transaction() as con:
            con.execute("DELETE FROM idle WHERE run_id = ?", (run_id,))
            con.executemany("INSERT " + IDLE_INSERT, idle_rows(run_id, idle))

    def write_carbon(self, run_id: str, carbon) -> None:
        """The run's carbon intensity, its source and PUE (bench.energy.carbon)."""
        with self._transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO carbon VALUES (?, ?, ?, ?, ?)",
                (run_id, carbon.g_per_kwh, carbon.source, carbon.pue, carbon.region),
            )

    @contextlib.contextmanager
    def _transaction(self):
        con = self.connect()
        try:
            with con:
                yield con
        finally:
            con.close()

    def write_failure(
        self, run_id: str, cell, error: str, placement: Placement | None = None
    ) -> None:
        """A cell that raised: recorded as failed (a re-run tries it again)."""
        with self._transaction() as con:
            self._delete(con, cell.key)
            insert_cell(
                con,
                {
                    **cell_identity(run_id, cell),
                    "status": "failed",
                    "error": error,
                    "finished_at": time.time(),
                },
            )
            write_placement(con, cell.key, placement)

    def write_worker_idle(self, run_id: str, idle: list) -> None:
        """A Dask worker's idle baseline (bench.energy.idle.IdlePower rows), added to the
        run's: the first worker to report a component wins (the workers of one host share
        its CPU package; GPU components are distinct by UUID)."""
        with self._transaction() as con:
            con.executemany("INSERT OR IGNORE " + IDLE_INSERT, idle_rows(run_id, idle))

    @staticmethod
    def _delete(con: sqlite3.Connection, key: str) -> None:
        for table in ("cells", "windows", "checkpoints", "episodes", "episode_metrics", "samples"):
            con.execute(f"DELETE FROM {table} WHERE cell_key = ?", (key,))

    def table(self, name: str) -> pd.DataFrame:
        """A whole table as a DataFrame (the report reads the ledger only through this)."""
        with self._transaction() as con:
            return pd.read_sql_query(f"SELECT * FROM {name}", con)


def idle_rows(run_id: str, idle: list) -> list[tuple]:
    """idle table rows of bench.energy.idle.IdlePower baselines."""
    return [
        (run_id, i.component, i.watts, i.source, i.seconds, getattr(i, "watts_std", None))
        for i in idle
    ]


def check_schema(con: sqlite3.Connection, path: Path) -> None:
    """An empty database (a new ledger) or one with metabench's runs and cells tables;
    sqlite3.DatabaseError when the file is not SQLite at all."""
    tables = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return
    cells = {row[1] for row in con.execute("PRAGMA table_info(cells)")}
    if not {"runs", "cells"} <= tables or not {"cell_key", "status"} <= cells:
        raise MetabenchError(
            f"{path}: expected a metabench ledger (tables runs and cells), found an SQLite "
            f"database with the tables {', '.join(sorted(tables))}; move it away, or choose "
            "another folder"
        )


def migrate(con: sqlite3.Connection) -> None:
    """Add the columns of ADDED_CELL_COLUMNS / ADDED_WINDOW_COLUMNS / ADDED_IDLE_COLUMNS an
    older ledger lacks."""
    for table, added in (
        ("cells", ADDED_CELL_COLUMNS),
        ("windows", ADDED_WINDOW_COLUMNS),
        ("idle", ADDED_IDLE_COLUMNS),
    ):
        have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
        for name, kind in added.items():
            if name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def write_placement(con: sqlite3.Connection, key: str, placement: Placement | None) -> None:
    """Where a cell ran, into its `cells` row (inside the caller's transaction)."""
    if placement is None:
        return
    con.execute(
        "UPDATE cells SET worker = ?, host = ?, gpu_uuid = ?, exclusive_energy = ?, "
        "torch_threads = ? WHERE cell_key = ?",
        (
            placement.worker,
            placement.host,
            placement.gpu_uuid,
            int(placement.exclusive_energy),
            placement.torch_threads,
            key,
        ),
    )
