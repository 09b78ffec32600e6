"""A run killed with SIGKILL mid-way resumes and ends with the results of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SEEDS = "0,1,2,3"
N_CELLS = 4


def suite_file(tmp_path: Path) -> Path:
    text = (REPO / "suites" / "sinusoid-5shot.toml").read_text()
    text = text.replace("n_test_episodes = 40", "n_test_episodes = 60")
    path = tmp_path / "resume-suite.toml"
    path.write_text(text)
    return path


def command(suite: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        str(suite),
        "--profile",
        "smoke",
        "--methods",
        "scratch",
        "--seeds",
        SEEDS,
        "--out",
        str(out),
        "--no-progress",
        "--data-dir",
        str(out.parent),
    ]


def done_cells(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(ledger, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def episode_scores(out: Path) -> pd.DataFrame:
    with sqlite3.connect(out / "ledger.sqlite") as con:
        return pd.read_sql_query(
            "SELECT c.seed, c.fingerprint, e.idx, e.score FROM episodes e "
            "JOIN cells c USING (cell_key) ORDER BY c.seed, e.idx",
            con,
        )


def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    suite = suite_file(tmp_path)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    proc = subprocess.Popen(
        command(suite, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while done_cells(killed / "ledger.sqlite") < 1 and time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = done_cells(killed / "ledger.sqlite")
    assert 1 <= at_kill < N_CELLS, f"{at_kill} cells done when killed: the kill was not mid-run"

    resumed = subprocess.run(command(suite, killed), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    left = N_CELLS - at_kill
    assert f"{left} cell{'s' if left > 1 else ''} run, {at_kill} already done" in resumed.stdout

    uninterrupted = subprocess.run(command(suite, clean), env=env, capture_output=True, text=True)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    pd.testing.assert_frame_equal(episode_scores(killed), episode_scores(clean))
