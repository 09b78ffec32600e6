"""The ledger's tables as DataFrames, and the small vocabulary every report module shares:
phases, baselines, settings that split summary rows, component kinds and source labels."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

PHASES = ("setup", "meta_train", "validate", "adapt", "predict")
DEPLOY_PHASES = ("adapt", "predict")
SCENARIOS = ("stream", "batch")
BASELINES = ("scratch", "transfer")
KINDS = ("gpu", "cpu", "dram")
# What the headline totals sum: None = every component of the window.
ENERGY_SCOPES: dict[str, tuple[str, ...] | None] = {"node": None, "gpu": ("gpu",)}
# Cell settings that change what is measured: a summary row pools seeds of one value of
# each, never across values (a transductive cell with a support cell, fp32 with bf16).
SETTINGS = ("profile", "device", "precision", "normalization", "execution", "torch_threads")
# What a NULL setting means in ledgers written before the column existed (threads: unknown).
SETTING_DEFAULTS = {"precision": "fp32", "normalization": "transductive", "execution": "loop"}
# Rows of one comparison group are compared with each other (break-even, Pareto front);
# execution and threads are not part of it: they change the cost, not the task or answer.
COMPARISON = ("suite", "profile", "device", "precision", "normalization")
J_PER_KWH = 3.6e6


def empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass(frozen=True)
class LedgerTables:
    """The ledger's tables as DataFrames (the writer reads them; the report code is pure)."""

    cells: pd.DataFrame
    windows: pd.DataFrame
    episodes: pd.DataFrame
    checkpoints: pd.DataFrame = field(
        default_factory=lambda: empty(
            ["cell_key", "step", "val_score", "meta_seconds", "meta_joules"]
        )
    )
    idle: pd.DataFrame = field(
        default_factory=lambda: empty(["run_id", "component", "watts", "source", "seconds"])
    )
    carbon: pd.DataFrame = field(
        default_factory=lambda: empty(["run_id", "intensity_g_per_kwh", "source", "pue", "region"])
    )
    samples: pd.DataFrame = field(
        default_factory=lambda: empty(["cell_key", "t", "component", "kind", "watts", "phase"])
    )
    runs: pd.DataFrame = field(
        default_factory=lambda: empty(["run_id", "started_at", "command", "environment"])
    )
    episode_metrics: pd.DataFrame = field(
        default_factory=lambda: empty(["cell_key", "idx", "name", "value"])
    )

    @property
    def done(self) -> pd.DataFrame:
        """Done cells, settings filled in (see done_cells)."""
        return done_cells(self.cells)


def done_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The done rows of a cells table with every setting filled in: older ledgers' NULLs
    (or missing columns) read as documented in SETTING_DEFAULTS."""
    done = cells[cells["status"] == "done"].copy()
    for col in SETTINGS:
        default = SETTING_DEFAULTS.get(col, "")
        if col not in done:
            done[col] = default
        done[col] = done[col].map(lambda v, d=default: _setting_text(v, d))
    return done


def _setting_text(value: object, default: str) -> str:
    """A setting as text: NULL -> default; 4.0 (an INTEGER column read with NULLs) -> "4"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def lower_is_better(task_or_score: str) -> bool:
    """Regression scores (MSE) improve downwards; accuracy upwards."""
    return task_or_score in ("regression", "mse")


def parse_json(text: object, default: object) -> object:
    """A JSON column's value; `default` for NULL, NaN or an empty string."""
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return default
    return json.loads(str(text))


def component_kind(component: str) -> str:
    """gpu:<uuid> -> gpu; cpu:0 -> cpu; dram:all -> dram."""
    return component.split(":", 1)[0]


def is_estimated(source: str) -> bool:
    """True when any '+'-joined part of a source label is a model estimate."""
    return any(s.startswith("estimate:") for s in source.split("+"))


def join_sources(labels: object) -> str:
    """The distinct parts of '+'-joined source labels, sorted and '+'-joined; 'none'."""
    found = sorted({p for label in labels for p in str(label).split("+") if p and p != "none"})
    return "+".join(found) if found else "none"
