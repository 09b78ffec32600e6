"""The ledger's tables as DataFrames, and the small vocabulary every report module shares:
phases, baselines, settings that split summary rows, component kinds and source labels."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import PurePath

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
CELL_SETTINGS = ("profile", "device", "precision", "normalization", "execution", "torch_threads")
# ... and the variant: "" unless two suite files of one suite name are both current for a
# method (then "params <hash>" or "file <name>", see current_cells).
SETTINGS = (*CELL_SETTINGS, "variant")
# What one experiment of a method is, beyond its settings: its hyperparameters (for the
# profile) and the task. Cells of one suite file, method and settings that agree on all of
# these are seeds of one experiment, whichever version of the file ran them.
EXPERIMENT = (
    "params_hash", "dataset", "split", "task", "n_way", "k_shot", "n_query", "n_test",
    "target_score",
)  # fmt: skip
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
        """The current done cells, settings filled in (see current_cells)."""
        return current_cells(self.cells)[0]

    @property
    def superseded(self) -> pd.DataFrame:
        """Done cells left out because a later version of their suite file replaced them."""
        return current_cells(self.cells)[1]


def done_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The current done cells of a cells table (see current_cells)."""
    return current_cells(cells)[0]


def current_cells(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current, superseded): the done rows of a cells table, every setting filled in
    (older ledgers' NULLs or missing columns read as SETTING_DEFAULTS says), split so that
    no summary row pools two cells of one seed.

    Editing a suite file and running it again into the same folder stores new cells beside
    the old ones (the file's hash is part of the cell key). Per suite file (suite_path),
    method and settings, the most recently finished cell names the current experiment
    (EXPERIMENT: hyperparameters and task); cells of another experiment are superseded,
    and of the current one each seed keeps its most recently finished cell. Two suite files
    with one suite name are both current: their rows are told apart by `variant`.
    Superseded rows carry the `variant` of the current row that replaced them."""
    done = cells[cells["status"] == "done"].copy()
    for col in CELL_SETTINGS:
        default = SETTING_DEFAULTS.get(col, "")
        if col not in done:
            done[col] = default
        done[col] = done[col].map(lambda v, d=default: _setting_text(v, d))
    for col in ("suite_path", "params_hash"):  # NULL stays NULL (compare: matches any)
        if col not in done:
            done[col] = None
    done["variant"] = ""
    if done.empty:
        return done, done.copy()
    finished = done.get("finished_at", pd.Series(index=done.index, dtype=float))
    started = done.get("started_at", pd.Series(index=done.index, dtype=float))
    order = pd.to_numeric(finished.fillna(started), errors="coerce").fillna(0.0)
    exp = done[[c for c in EXPERIMENT if c in done]].map(str).agg("|".join, axis=1)
    path = done["suite_path"].fillna("").astype(str)
    done = done.assign(_t=order, _exp=exp, _path=path).sort_values("_t", kind="stable")
    scope = ["suite", "_path", "method", *CELL_SETTINGS]
    latest = done.groupby(scope, dropna=False)["_exp"].transform("last")
    current = done[done["_exp"] == latest].drop_duplicates([*scope, "seed"], keep="last")
    current = _with_variants(current)
    superseded = done.drop(index=current.index).drop(columns="variant")
    superseded = superseded.merge(
        current[[*scope, "variant"]].drop_duplicates(scope), on=scope, how="left"
    )
    drop = ["_t", "_exp", "_path"]
    return current.drop(columns=drop).sort_index(), superseded.drop(columns=drop)


def _with_variants(current: pd.DataFrame) -> pd.DataFrame:
    """`variant` of each current cell: "" where its suite, method and settings have one
    current experiment; else "params <first 8 of params_hash>" when the hyperparameters
    tell the suite files apart, or "file <suite file name>" when they do not."""
    current = current.copy()
    for _, g in current.groupby(["suite", "method", *CELL_SETTINGS], dropna=False):
        versions = g[["_path", "_exp"]].drop_duplicates()
        if len(versions) < 2:
            continue
        params = g["params_hash"].fillna("").astype(str)
        if params.groupby([g["_path"], g["_exp"]]).first().nunique() == len(versions):
            current.loc[g.index, "variant"] = "params " + params.str[:8]
        else:
            names = g["_path"].map(lambda p: PurePath(p).name)
            unique = names.nunique() == versions["_path"].nunique()
            current.loc[g.index, "variant"] = "file " + (names if unique else g["_path"])
    return current


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


def is_process_share(source: str) -> bool:
    """True when every '+'-joined part of a source label is an estimate attributed to the
    metered process (e.g. estimate:codecarbon-process: this process's CPU time and memory),
    not the package's or the machine's whole figure."""
    parts = [p for p in source.split("+") if p and p != "none"]
    return bool(parts) and all(p.startswith("estimate:") and p.endswith("-process") for p in parts)


def join_sources(labels: object) -> str:
    """The distinct parts of '+'-joined source labels, sorted and '+'-joined; 'none'."""
    found = sorted({p for label in labels for p in str(label).split("+") if p and p != "none"})
    return "+".join(found) if found else "none"
