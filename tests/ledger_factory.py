"""Synthetic ledgers with known numbers, written through bench.store.Ledger + SQL inserts,
so report tests depend neither on the meters nor on running any method."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.store import Ledger, insert_cell

RUN_ID = "20260101-000000-abcdef"
ENVIRONMENT = {
    "hostname": "synthetic",
    "cpu": "Test CPU",
    "cpu_count": 2,
    "device": "cpu",
    "gpus": [],
    "versions": {"torch": "2.13.0+cpu", "metabench": "0.1.0"},
    "git_commit": "0" * 40,
}


@dataclass(frozen=True)
class Win:
    """One window: phase, items covered, step, seconds, joules per component, source."""

    phase: str
    n_items: int
    seconds: float
    joules: dict[str, float] = field(default_factory=dict)
    source: str | dict[str, str] = "rapl"  # one source for all components, or per component
    step: int = 0
    warnings: tuple[str, ...] = ()
    scenario: str | None = None  # adapt / predict: stream | batch (None: as old ledgers)
    repeats: int | None = None
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CellSpec:
    suite: str
    method: str
    scores: list[float]
    windows: list[Win]
    checkpoints: list[tuple[int, float]] = field(default_factory=list)
    seed: int = 0
    task: str = "classification"
    target_score: float = 0.8
    fingerprint: str = "fp-a"
    samples: list[tuple[float, str, float, str]] = field(default_factory=list)  # t, comp, W, ph
    precision: str | None = None  # None: NULL, as in ledgers older than the column
    normalization: str | None = None
    execution: str | None = None
    exclusive_energy: int | None = 1
    torch_threads: int | None = None
    # The suite file's version and the method's hyperparameters (None: the defaults below)
    params_hash: str | None = None
    suite_sha256: str | None = None
    suite_path: str | None = None
    finished_at: float = 1.7e9 + 60
    n_test: int | None = None  # None: len(scores)

    @property
    def key(self) -> str:
        settings = (
            self.precision,
            self.normalization,
            self.execution,
            self.torch_threads,
            self.params_hash,
            self.suite_sha256,
        )
        extra = "/".join(str(v) for v in settings if v is not None)
        return f"{self.suite}/{self.method}/seed{self.seed}" + (f"/{extra}" if extra else "")


def write_ledger(
    run_dir: Path,
    specs: list[CellSpec],
    idle_w: dict[str, float] | None = None,
    carbon: tuple[float, float] | None = None,
    idle_std_w: dict[str, float] | None = None,
) -> Path:
    """A ledger in run_dir holding these cells; idle_w: component -> W (idle_std_w: its
    std, in the idle table's watts_std column); carbon: (g/kWh, PUE)."""
    ledger = Ledger(run_dir)
    con = ledger.connect()
    with con:
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?)",
            (RUN_ID, 1.7e9, "metabench run toy --profile smoke", json.dumps(ENVIRONMENT)),
        )
        if idle_std_w and "watts_std" not in {r[1] for r in con.execute("PRAGMA table_info(idle)")}:
            con.execute("ALTER TABLE idle ADD COLUMN watts_std REAL")
        for comp, watts in (idle_w or {}).items():
            con.execute(
                "INSERT INTO idle (run_id, component, watts, source, seconds) "
                "VALUES (?, ?, ?, ?, ?)",
                (RUN_ID, comp, watts, "rapl", 5),
            )
            if idle_std_w:
                con.execute(
                    "UPDATE idle SET watts_std = ? WHERE component = ?", (idle_std_w[comp], comp)
                )
        if carbon:
            con.execute(
                "INSERT INTO carbon VALUES (?, ?, ?, ?, ?)",
                (RUN_ID, carbon[0], "explicit", carbon[1], "test"),
            )
        for spec in specs:
            _insert_cell(con, spec)
    con.close()
    return run_dir


def _insert_cell(con, s: CellSpec) -> None:
    score_name = "accuracy" if s.task == "classification" else "mse"
    mean = sum(s.scores) / len(s.scores) if s.scores else None
    insert_cell(
        con,
        {
            "cell_key": s.key,
            "run_id": RUN_ID,
            "suite": s.suite,
            "suite_path": s.suite_path or f"suites/{s.suite}.toml",
            "suite_sha256": s.suite_sha256 or hashlib.sha256(s.suite.encode()).hexdigest(),
            "profile": "smoke",
            "dataset": "toy",
            "split": "default",
            "task": s.task,
            "n_way": 5,
            "k_shot": 1,
            "n_query": 15,
            "n_test": s.n_test or len(s.scores),
            "target_score": s.target_score,
            "method": s.method,
            "params": "{}",
            "params_hash": s.params_hash or "ph",
            "seed": s.seed,
            "device": "cpu",
            "score_name": score_name,
            "fingerprint": s.fingerprint,
            "score_mean": mean,
            "score_ci95": 0.0,
            "status": "done",
            "started_at": 1.7e9,
            "finished_at": s.finished_at,
            "precision": s.precision,
            "normalization": s.normalization,
            "execution": s.execution,
            "exclusive_energy": s.exclusive_energy,
            "torch_threads": s.torch_threads,
        },
    )
    counts: dict[str, int] = {}
    start = 1.7e9
    for w in s.windows:
        idx = counts.get(w.phase, 0)
        counts[w.phase] = idx + 1
        sources = w.source if isinstance(w.source, dict) else {c: w.source for c in w.joules}
        con.execute(
            "INSERT INTO windows (cell_key, phase, idx, n_items, step, name, start_s, seconds, "
            "joules, sources, samples, warnings, details, scenario, repeats) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                s.key,
                w.phase,
                idx,
                w.n_items,
                w.step,
                w.phase,
                start,
                w.seconds,
                json.dumps(w.joules),
                json.dumps(sources),
                json.dumps({}),
                json.dumps(list(w.warnings)),
                json.dumps(w.details),
                w.scenario,
                w.repeats,
            ),
        )
        start += w.seconds
    for step, val in s.checkpoints:
        con.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)", (s.key, step, val, 0, None))
    con.executemany(
        "INSERT INTO episodes VALUES (?, ?, ?)", [(s.key, i, v) for i, v in enumerate(s.scores)]
    )
    con.executemany(
        "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?)",
        [(s.key, t, c, "instant", watts, ph) for t, c, watts, ph in s.samples],
    )


def cpu(j: float) -> dict[str, float]:
    return {"cpu:0": j}


def toy_specs() -> list[CellSpec]:
    """Known numbers (see tests/test_aggregate.py for the hand-computed expectations).

    toy (classification, n_test=4, target 0.8): protonet E_meta 400 J, E_deploy 3 J/task;
    scratch E_meta 0, E_deploy 11 J/task; transfer E_meta 200 J, E_deploy 2.5 J/task
    (estimated). toy-sine (regression): energy not measured.
    """
    samples = [
        (1.7e9 + i, comp, w, "meta_train" if i < 20 else "adapt")
        for i in range(0, 24, 2)
        for comp, w in (("cpu:0", 20.0 + i), ("dram:0", 3.0))
    ]
    return [
        CellSpec(
            "toy",
            "protonet",
            [1.0, 0.5, 1.0, 0.5],
            [
                Win("meta_train", 5, 10.0, cpu(100.0), step=5),
                Win("validate", 4, 2.0, cpu(50.0), step=5),
                Win("meta_train", 5, 10.0, cpu(300.0), step=10),
                Win("validate", 4, 2.0, cpu(50.0), step=10),
                Win("adapt", 4, 2.0, cpu(8.0), step=10),
                Win("predict", 4, 1.0, cpu(4.0), step=10),
            ],
            checkpoints=[(5, 0.6), (10, 0.85)],
            samples=samples,
        ),
        CellSpec(
            "toy",
            "scratch",
            [0.5, 0.5, 0.5, 0.5],
            [
                Win("adapt", 4, 20.0, cpu(40.0)),
                Win("predict", 4, 2.0, cpu(4.0)),
            ],
        ),
        CellSpec(
            "toy",
            "transfer",
            [0.75, 0.75, 0.5, 1.0],
            [
                Win(
                    "meta_train",
                    10,
                    10.0,
                    cpu(200.0),
                    source="estimate:codecarbon",
                    step=10,
                    warnings=("window shorter than the meter's update period",),
                ),
                Win("adapt", 4, 2.0, cpu(8.0), source="estimate:codecarbon", step=10),
                Win("predict", 4, 1.0, cpu(2.0), source="estimate:codecarbon", step=10),
            ],
            checkpoints=[(10, 0.7)],
        ),
        CellSpec(
            "toy-sine",
            "scratch",
            [0.5, 1.5],
            [
                Win("adapt", 2, 1.0, {}, source="none"),
                Win("predict", 2, 1.0, {}, source="none"),
            ],
            task="regression",
            target_score=0.5,
            fingerprint="fp-s",
        ),
    ]


def toy_ledger(run_dir: Path) -> Path:
    return write_ledger(run_dir, toy_specs(), idle_w={"cpu:0": 1.0}, carbon=(400.0, 1.5))
