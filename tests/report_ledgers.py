"""Ledgers for the report tests (tests/test_report*.py, tests/test_compare*.py): failed
cells, a 9-method grid shaped like the CPU reference, and the H200 ledger when present.
Built on tests/ledger_factory.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ledger_factory import ENVIRONMENT, RUN_ID, write_ledger

from bench.store import Ledger, insert_cell

REPO = Path(__file__).resolve().parent.parent
H200_RUN = REPO.parent / "shared" / "gpu-runs" / "h200-2026-11-30" / "run"

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "bench/run/harness.py", line 1, in run_cell\n'
    "RuntimeError: CUDA out of memory (synthetic)\n"
)


def add_failed(run_dir: Path, suite: str, method: str, seed: int = 0, error: str = TRACEBACK):
    """A failed cells row, as Ledger.write_failure stores it (no windows, no scores)."""
    con = Ledger(run_dir).connect()
    with con:
        if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", (RUN_ID,)).fetchone():
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?)",
                (RUN_ID, 1.7e9, f"metabench run {suite}", json.dumps(ENVIRONMENT)),
            )
        insert_cell(
            con,
            {
                "cell_key": f"{suite}/{method}/seed{seed}",
                "run_id": RUN_ID,
                "suite": suite,
                "suite_path": f"suites/{suite}.toml",
                "suite_sha256": "sha-" + suite,
                "profile": "smoke",
                "method": method,
                "params_hash": "ph",
                "seed": seed,
                "device": "cpu",
                "precision": "fp32",
                "status": "failed",
                "error": error,
                "finished_at": 1.7e9,
            },
        )
    con.close()
    return run_dir


def failed_only_ledger(run_dir: Path) -> Path:
    """Every cell failed: no done row at all."""
    write_ledger(run_dir, [])
    add_failed(run_dir, "toy", "maml")
    add_failed(run_dir, "toy", "scratch", error="ValueError: bad shape\n")
    return run_dir


def h200_copy(tmp: Path) -> Path:
    """A copy of the first H200 run's ledger (never written in place); skips without it."""
    ledger = H200_RUN / "ledger.sqlite"
    if not ledger.is_file():
        pytest.skip(f"the H200 ledger is not here ({ledger}): ../shared is absent")
    run = tmp / "h200"
    run.mkdir(parents=True)
    shutil.copy(ledger, run / "ledger.sqlite")
    return run
