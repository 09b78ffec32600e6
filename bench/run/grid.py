"""The grid: one cell per (suite, method, seed).

A cell's key hashes everything that determines its result (suite file hash, profile,
method, hyperparameters, seed, device kind, precision, normalization, execution mode,
torch threads), so a re-run finds and skips completed cells and never mixes settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass

from bench.errors import MetabenchError
from bench.registry import did_you_mean
from bench.run.execution import resolve_execution
from bench.suite import Suite

# torch intra-op threads per cell, whatever the executor: CPU float sums (so scores) depend
# on the thread count, and a Dask run must reproduce a local run.
DEFAULT_THREADS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class Cell:
    suite: Suite
    method: str
    seed: int
    device: str  # "cpu" or "cuda" (resolved, never "auto")
    threads: int = 1  # torch intra-op threads the cell runs with
    execution: str = "loop"  # resolved mode: loop | batched | graph (bench.run.execution)

    @property
    def params(self) -> dict:
        return dataclasses.asdict(self.suite.method(self.method).params)

    @property
    def params_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def key(self) -> str:
        parts = [
            self.suite.sha256,
            self.suite.profile,
            self.method,
            self.params_hash,
            str(self.seed),
            self.device,
            self.suite.precision,
            self.suite.normalization,
            self.execution,
            f"threads={self.threads}",
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        return f"{self.suite.name}/{self.method}/seed{self.seed}"


def expand_grid(
    suites: list[Suite],
    methods: list[str] | None,
    seeds: list[int] | None,
    device: str,
    *,
    threads: int = DEFAULT_THREADS,
    execution: str | None = None,
) -> list[Cell]:
    """Cells in a stable order: suite, then method in suite order, then seed.

    `execution` (the --execution flag) overrides every suite's requested mode; each cell
    resolves it for its device and method.
    """
    cells = []
    for suite in suites:
        names = [m.name for m in suite.methods]
        chosen = names if not methods else [m for m in methods if m in names]
        if methods:
            unknown = [
                m
                for m in methods
                if m not in names and all(m not in [x.name for x in s.methods] for s in suites)
            ]
            if unknown:
                raise MetabenchError(
                    f"--methods: expected methods of the chosen suites ({', '.join(names)}), "
                    f"found {unknown[0]!r}{did_you_mean(unknown[0], names)}"
                )
        requested = execution or suite.execution
        where = (
            "--execution"
            if execution
            else f"{suite.path}: key 'profiles.{suite.profile}.execution'"
        )
        for method in chosen:
            mode = resolve_execution(requested, device, method, where, suite.dataset)
            for seed in seeds if seeds is not None else suite.seeds:
                cells.append(Cell(suite, method, seed, device, threads, mode))
    return cells
