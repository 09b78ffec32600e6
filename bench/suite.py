"""Suites as TOML files, loaded into frozen dataclasses for one profile.

A suite file holds the dataset, split, task kind, episode shape, test protocol, seeds,
target score, the methods with their hyperparameters (`[methods.NAME]`), and per-profile
budgets (`[profiles.smoke|standard|paper]`, each may override the test protocol and, under
`[profiles.P.methods.NAME]`, any hyperparameter). Every error names the file and the key,
what was expected and what was found; unknown keys get a "did you mean".
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from bench.data import DATASETS
from bench.data.episodes import Shape
from bench.errors import MetabenchError, input_error
from bench.methods import METHODS, Params
from bench.registry import did_you_mean

PROFILES = ("smoke", "standard", "paper")
MAX_SEED = 2**63 - 1  # the ledger stores seeds as SQLite's signed 64-bit integers
TASK_KINDS = ("classification", "regression")


def shipped_suites_dir() -> Path:
    """The suites shipped with metabench: package data of an installed wheel (bench/suites,
    mapped from the top-level suites/ at build time), else the source checkout's suites/."""
    packaged = resources.files("bench").joinpath("suites")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "suites"


SUITES_DIR = Path(os.environ.get("METABENCH_SUITES") or shipped_suites_dir())

# key -> (type, required). Counts (COUNT_KEYS) must be positive.
TOP_KEYS = {
    "name": (str, False),
    "description": (str, False),
    "dataset": (str, True),
    "split": (str, True),
    "task": (str, True),
    "n_way": (int, True),
    "k_shot": (int, True),
    "n_query": (int, True),
    "n_test_episodes": (int, True),
    "n_val_episodes": (int, False),
    "seeds": (list, True),
    "target_score": ((int, float), True),
    "methods": (dict, True),
    "profiles": (dict, True),
}
PROFILE_KEYS = {
    "n_test_episodes": (int, False),
    "n_val_episodes": (int, False),
    "n_checkpoints": (int, False),
    "idle_s": ((int, float), False),
    "precision": (str, False),
    "normalization": (str, False),
    "execution": (str, False),
    "methods": (dict, False),
}
PROFILE_DEFAULTS = {
    "n_val_episodes": 100,
    "n_checkpoints": 10,
    "idle_s": 10.0,
    "precision": "fp32",
    "normalization": "support",
    "execution": "auto",
}
# fp32, or bf16 autocast around every method's backbone (parameters and optimizer state
# stay fp32). One setting per suite and profile, so every method of a suite runs at the
# same precision; it is stored with each cell and shown in the report.
PRECISIONS = ("fp32", "bf16")
# Where BatchNorm takes its statistics when a method adapts and predicts with batch
# statistics: "support" (the task's support set, so each query's prediction is independent
# of the other queries: TaskNorm/MetaBN, Bronskill et al., ICML 2020) or "transductive"
# (the batch being normalised, so queries share statistics: the MAML paper's protocol).
NORMALIZATIONS = ("support", "transductive")
# How a method's tasks run: "loop" (one task per call), "batched" (a whole meta batch or
# deploy chunk per kernel launch), "graph" (batched and replayed from a CUDA graph; CUDA
# only), or "auto" (the faster of loop and batched for the device and method, as measured
# by benchmarks/deploy_batch.py).
EXECUTIONS = ("auto", "loop", "batched", "graph")
COUNT_KEYS = {"n_way", "k_shot", "n_query", "n_test_episodes", "n_val_episodes", "n_checkpoints"}


@dataclass(frozen=True)
class MethodConfig:
    name: str
    params: Params


@dataclass(frozen=True)
class Suite:
    """One suite resolved for one profile. `sha256` hashes the file's bytes."""

    name: str
    path: str
    sha256: str
    profile: str
    dataset: str
    split: str
    task: str
    n_way: int
    k_shot: int
    n_query: int
    n_test_episodes: int
    n_val_episodes: int
    n_checkpoints: int
    idle_s: float
    seeds: tuple[int, ...]
    target_score: float
    methods: tuple[MethodConfig, ...]
    description: str = ""
    precision: str = "fp32"
    normalization: str = "support"
    execution: str = "auto"  # requested; a cell resolves it for its device and method

    @property
    def shape(self) -> Shape:
        return Shape(self.n_way, self.k_shot, self.n_query)

    @property
    def higher_is_better(self) -> bool:
        """Accuracy for classification (higher is better), MSE for regression (lower)."""
        return self.task == "classification"

    @property
    def score_name(self) -> str:
        return "accuracy" if self.task == "classification" else "mse"

    @property
    def episode_key(self) -> str:
        """What determines the episodes (not the methods or budgets): the stream key."""
        return f"{self.dataset}|{self.split}|{self.task}"

    def method(self, name: str) -> MethodConfig:
        for m in self.methods:
            if m.name == name:
                return m
        raise MetabenchError(
            f"{self.path}: key 'methods': expected one of {[m.name for m in self.methods]}, "
            f"found {name!r}{did_you_mean(name, [m.name for m in self.methods])}"
        )


def available_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.toml"))}


def resolve_suite_path(name_or_path: str) -> Path:
    """A path to a TOML file, or the name of a suite in suites/."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            found = "a directory" if path.is_dir() else "no such file"
            raise MetabenchError(f"{path}: expected a suite TOML file, found {found}")
        return path
    suites = available_suites()
    if name_or_path not in suites:
        raise MetabenchError(
            f"suite {name_or_path!r}: expected a suite name or a .toml path, found neither"
            f"{did_you_mean(name_or_path, list(suites))}; known suites: {', '.join(suites)}"
        )
    return suites[name_or_path]


def load_suite(name_or_path: str | Path, profile: str = "standard") -> Suite:
    """Parse and validate a suite file (every profile of it) and resolve one profile."""
    path = resolve_suite_path(str(name_or_path))
    where = str(path)
    if profile not in PROFILES:
        raise input_error("--profile", None, f"one of {PROFILES}", profile)
    raw_bytes = path.read_bytes()
    try:
        data = tomllib.loads(raw_bytes.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MetabenchError(f"{where}: expected valid TOML, found a syntax error: {e}") from None
    check_keys(where, "", data, TOP_KEYS)
    dataset = DATASETS.get(data["dataset"], where=f"{where}: key 'dataset'")
    check_protocol(where, data, dataset)
    profiles = data["profiles"]
    check_keys(where, "profiles", profiles, {p: (dict, True) for p in PROFILES})
    for name in data["methods"]:
        check_method(where, name, data)
    for pname in PROFILES:
        check_profile(where, pname, profiles[pname], data, dataset)
    return resolve(path, hashlib.sha256(raw_bytes).hexdigest(), data, profile)


def check_type(where: str, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    # bool is an int subclass in Python; a count of `true` is a mistake.
    ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
    if not ok:
        names = (
            expected.__name__
            if isinstance(expected, type)
            else " or ".join(t.__name__ for t in expected)
        )
        raise input_error(where, key, f"a value of type {names}", value)
    if key.rsplit(".", 1)[-1] in COUNT_KEYS and value <= 0:
        raise input_error(where, key, "a positive count", value)


Schema = dict[str, tuple[type | tuple[type, ...], bool]]  # key -> (type, required)


def check_keys(where: str, prefix: str, table: dict, schema: Schema) -> None:
    """Unknown keys (with a suggestion), missing required keys, wrong types."""
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in schema:
            raise MetabenchError(
                f"{where}: key '{full}': unknown key{did_you_mean(key, list(schema))}; "
                f"expected one of {', '.join(schema)}"
            )
        check_type(where, full, value, schema[key][0])
    for key, (_, required) in schema.items():
        if required and key not in table:
            full = f"{prefix}.{key}" if prefix else key
            raise input_error(where, full, "a value (required key)", "nothing")


def check_protocol(where: str, data: dict, dataset: Any) -> None:
    """Task kind, split, episode shape against what the dataset can give."""
    if data["task"] not in dataset.task_kinds:
        raise input_error(
            where, "task", f"one of {dataset.task_kinds} for {data['dataset']}", data["task"]
        )
    if data["split"] not in dataset.splits:
        raise MetabenchError(
            f"{where}: key 'split': expected one of {dataset.splits}, found "
            f"{data['split']!r}{did_you_mean(data['split'], dataset.splits)}"
        )
    seeds = data["seeds"]
    if not seeds or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in seeds
    ):
        expected = f"a non-empty list of integers in 0..{MAX_SEED} (the ledger's range)"
        raise input_error(where, "seeds", expected, seeds)
    twice = next((s for i, s in enumerate(seeds) if s in seeds[:i]), None)
    if twice is not None:
        raise input_error(
            where, "seeds", f"distinct seeds (each cell runs once), {twice} listed twice", seeds
        )
    for part in ("test", "val"):
        n_classes = dataset.n_classes(data["split"], part)
        if data["n_way"] > n_classes:
            raise input_error(
                where,
                "n_way",
                f"at most {n_classes} (classes in the {data['split']} {part} part)",
                data["n_way"],
            )
    if data["task"] == "regression" and data["n_way"] != 1:
        raise input_error(where, "n_way", "1 for a regression task", data["n_way"])
    per_class = dataset.samples_per_class
    if per_class is not None and data["k_shot"] + data["n_query"] > per_class:
        raise input_error(
            where,
            "k_shot + n_query",
            f"at most {per_class} (samples per class of {data['dataset']})",
            data["k_shot"] + data["n_query"],
        )


def check_method(where: str, name: str, data: dict) -> None:
    cls = METHODS.get(name, where=f"{where}: key 'methods.{name}'")
    if data["task"] not in cls.task_kinds:
        raise input_error(
            where,
            f"methods.{name}",
            f"a method for {data['task']} tasks ({name} supports {', '.join(cls.task_kinds)})",
            name,
        )
    check_params(where, f"methods.{name}", cls, data["methods"][name])


def check_params(where: str, prefix: str, cls: Any, params: dict) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    for key, value in params.items():
        full = f"{prefix}.{key}"
        if key not in fields:
            raise MetabenchError(
                f"{where}: key '{full}': unknown hyperparameter of {cls.name}"
                f"{did_you_mean(key, list(fields))}; expected one of {', '.join(fields)}"
            )
        default = fields[key].default
        expected: type | tuple[type, ...] = (
            (int, float) if isinstance(default, float) else type(default)
        )
        check_type(where, full, value, expected)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low = fields[key].metadata.get("min")
            if (low is None and value <= 0) or (low is not None and value < low):
                bound = "a positive number" if low is None else f"a number >= {low}"
                raise input_error(where, full, bound, value)
        if key in cls.choices and value not in cls.choices[key]:
            raise input_error(where, full, f"one of {cls.choices[key]}", value)


def check_profile(where: str, pname: str, profile: dict, data: dict, dataset: Any) -> None:
    prefix = f"profiles.{pname}"
    check_keys(where, prefix, profile, PROFILE_KEYS)
    for key, allowed in (
        ("precision", PRECISIONS),
        ("normalization", NORMALIZATIONS),
        ("execution", EXECUTIONS),
    ):
        if key in profile and profile[key] not in allowed:
            raise input_error(where, f"{prefix}.{key}", f"one of {allowed}", profile[key])
    for name, params in profile.get("methods", {}).items():
        if name not in data["methods"]:
            raise MetabenchError(
                f"{where}: key '{prefix}.methods.{name}': expected a method listed under "
                f"[methods]{did_you_mean(name, list(data['methods']))}; found {name!r}"
            )
        check_type(where, f"{prefix}.methods.{name}", params, dict)
        check_params(where, f"{prefix}.methods.{name}", METHODS.get(name), params)


def resolve(path: Path, sha256: str, data: dict, profile: str) -> Suite:
    prof = {
        **PROFILE_DEFAULTS,
        **{k: v for k, v in data.items() if k == "n_val_episodes"},
        **data["profiles"][profile],
    }
    overrides = prof.get("methods", {})
    methods = tuple(
        MethodConfig(name, METHODS.get(name).Params(**{**params, **overrides.get(name, {})}))
        for name, params in data["methods"].items()
    )
    return Suite(
        name=data.get("name", path.stem),
        path=str(path),
        sha256=sha256,
        profile=profile,
        dataset=data["dataset"],
        split=data["split"],
        task=data["task"],
        n_way=data["n_way"],
        k_shot=data["k_shot"],
        n_query=data["n_query"],
        n_test_episodes=prof.get("n_test_episodes", data["n_test_episodes"]),
        n_val_episodes=prof["n_val_episodes"],
        n_checkpoints=prof["n_checkpoints"],
        idle_s=float(prof["idle_s"]),
        seeds=tuple(data["seeds"]),
        target_score=float(data["target_score"]),
        methods=methods,
        description=data.get("description", ""),
        precision=prof["precision"],
        normalization=prof["normalization"],
        execution=prof["execution"],
    )
