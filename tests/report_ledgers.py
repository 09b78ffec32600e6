"""Ledgers for the report tests (tests/test_report*.py, tests/test_compare*.py): failed
cells, a 9-method grid shaped like the CPU reference, and the H200 ledger (committed, gzipped).
Built on tests/ledger_factory.py."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from ledger_factory import ENVIRONMENT, RUN_ID, write_ledger

from bench.store import Ledger, insert_cell

REPO = Path(__file__).resolve().parent.parent
H200_GZ = REPO / "docs" / "results" / "h200-2026-11-30" / "ledger.sqlite.gz"
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
    """A copy of the first H200 run's ledger (never written in place): the committed
    docs/results/h200-2026-11-30/ledger.sqlite.gz, else ../shared's raw run folder; skips
    without either."""
    run = tmp / "h200"
    run.mkdir(parents=True)
    if H200_GZ.is_file():
        with gzip.open(H200_GZ) as src, (run / "ledger.sqlite").open("wb") as dst:
            shutil.copyfileobj(src, dst)
        return run
    ledger = H200_RUN / "ledger.sqlite"
    if not ledger.is_file():
        pytest.skip(f"the H200 ledger is not here ({H200_GZ}, {ledger})")
    shutil.copy(ledger, run / "ledger.sqlite")
    return run


CPU_REFERENCE = REPO / "docs" / "results" / "cpu-2core-standard"


def _episode_scores(mean: float, ci95: float, n: int) -> list[float]:
    """n scores whose mean is `mean` and whose 95% CI (1.96 s / sqrt n) is about `ci95`."""
    spread = ci95 * math.sqrt(n) / 1.96
    return [mean + spread * (1 if i % 2 else -1) for i in range(n - n % 2)] + [mean] * (n % 2)


def cpu_reference_ledger(
    run_dir: Path,
    suites: tuple[str, ...] | None = None,
    normalizations: tuple[str | None, ...] = (None,),
) -> Path:
    """A ledger rebuilt from the committed CPU reference (docs/results/cpu-2core-standard:
    14 suites x 9 methods, codecarbon estimates): every energy window of results.csv as
    it was measured, the suite settings and scores of summary.csv; episode scores and
    validation checkpoints are synthetic (same mean and CI; a curve rising to the final
    score at each meta_train window's step), which the ledger's CSVs do not hold.
    `normalizations`: one copy of every cell per value (None: NULL, read as transductive,
    the H200 run's setting, so that compare matches the two; the 2026-12-01 reference
    itself ran support; "support" copies score 10% lower), so a suite mixes both."""
    results = pd.read_csv(CPU_REFERENCE / "results.csv")
    summary = pd.read_csv(CPU_REFERENCE / "summary.csv")
    if suites:
        results = results[results["suite"].isin(suites)]
        summary = summary[summary["suite"].isin(suites)]
    con = Ledger(run_dir).connect()
    with con:
        run_id = str(results["run_id"].iloc[0])
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?)",
            (run_id, 1.7e9, "metabench run suites/*.toml --profile standard", json.dumps(ENV)),
        )
        for comp, watts in (("cpu:0", 0.8), ("dram:0", 20.0)):
            con.execute(
                "INSERT INTO idle (run_id, component, watts, source, seconds) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, comp, watts, "estimate:codecarbon", 10.0),
            )
        con.execute(
            "INSERT INTO carbon VALUES (?, ?, ?, ?, ?)",
            (run_id, 475.0, "codecarbon:world_average", 1.0, "WORLD"),
        )
        for (suite, method), w in results.groupby(["suite", "method"]):
            row = summary[(summary["suite"] == suite) & (summary["method"] == method)].iloc[0]
            for norm in normalizations:
                _reference_cell(con, run_id, row, w, norm)
    con.close()
    return run_dir


def _reference_cell(
    con, run_id: str, row: pd.Series, w: pd.DataFrame, normalization: str | None = None
) -> None:
    first = w.iloc[0]
    key = str(first["cell_key"]) + (f"/{normalization}" if normalization else "")
    if normalization == "support":
        row = row.copy()
        row["score_mean"] *= 1.1 if row["task"] == "regression" else 0.9
    insert_cell(
        con,
        {
            "cell_key": key,
            "run_id": run_id,
            "suite": row["suite"],
            "suite_path": f"suites/{row['suite']}.toml",
            "suite_sha256": "sha-" + row["suite"],
            "profile": "standard",
            "dataset": row["suite"].split("-")[0],
            "split": "test",
            "task": row["task"],
            "n_way": 5,
            "k_shot": 1,
            "n_query": 15,
            "n_test": int(row["n_test"]),
            "target_score": float(row["target_score"]),
            "method": row["method"],
            "params": "{}",
            "params_hash": None,  # not in the CSVs
            "seed": int(first["seed"]),
            "device": "cpu",
            "precision": row["precision"],
            "score_name": row["score_name"],
            "fingerprint": first["fingerprint"],
            "score_mean": float(row["score_mean"]),
            "score_ci95": float(row["score_ci95"]),
            "status": "done",
            "started_at": float(w["start_s"].min()),
            "finished_at": float((w["start_s"] + w["seconds_s"]).max()),
            "torch_threads": 2,
            "normalization": normalization,
        },
    )
    windows = []
    for r in w.itertuples():
        joules = {c: float(v) for c, v in (("cpu:0", r.cpu_j), ("dram:0", r.dram_j)) if v == v}
        sources = dict.fromkeys(joules, r.source)
        windows.append(
            (key, r.phase, int(r.idx), int(r.n_items), int(r.step), r.phase, float(r.start_s),
             float(r.seconds_s), json.dumps(joules), json.dumps(sources), "{}", "[]", "{}")
        )  # fmt: skip
    con.executemany(f"INSERT INTO windows {WINDOW_COLUMNS} VALUES ({', '.join('?' * 13)})", windows)
    n = int(row["n_test"])
    scores = _episode_scores(float(row["score_mean"]), float(row["score_ci95"]), n)
    con.executemany(
        "INSERT INTO episodes VALUES (?, ?, ?)", [(key, i, v) for i, v in enumerate(scores)]
    )
    if row.get("rollout_mse_mean") == row.get("rollout_mse_mean"):
        rollout = _episode_scores(float(row["rollout_mse_mean"]), float(row["rollout_mse_ci95"]), n)
        con.executemany(
            "INSERT INTO episode_metrics VALUES (?, ?, ?, ?)",
            [(key, i, "rollout_mse", v) for i, v in enumerate(rollout)],
        )
    steps = sorted(set(w.loc[w["phase"] == "validate", "step"]))
    final = float(row["score_mean"])
    start = 2.0 * final if row["task"] == "regression" else 0.5 * final
    con.executemany(
        "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)",
        [
            (key, int(s), start + (final - start) * (i + 1) / len(steps), 0, None)
            for i, s in enumerate(steps)
        ],
    )


WINDOW_COLUMNS = (
    "(cell_key, phase, idx, n_items, step, name, start_s, seconds, joules, sources, samples, "
    "warnings, details)"
)
ENV = {**ENVIRONMENT, "hostname": "cpu-2core-reference (rebuilt from its CSVs)"}
