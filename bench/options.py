"""The settings of a run, checked in one place for the command line and the Python API.

`check_run_options` runs before anything else: no suite is measured, no file or folder is
written, no dataset downloaded when a setting is wrong. Every error is a MetabenchError
naming the setting as the caller spells it (`--pue` on the command line, `pue=` from
Python), what was expected and what was found.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.devices import DEVICES, cpu_count
from bench.errors import MetabenchError
from bench.store import LEDGER_NAME, LOCK_NAME
from bench.suite import EXECUTIONS, MAX_SEED, NORMALIZATIONS, PRECISIONS, PROFILES

Naming = Callable[[str], str]  # field name -> how the caller spells the setting

EXECUTORS = ("local", "dask", "dask-local")
MAX_WORKERS = 4096
# Physically meaningful ranges of the CO2 and metering settings.
PUE_RANGE = (1.0, 5.0)  # power usage effectiveness: 1.0 (ideal) .. 5.0 (worse than any site)
INTENSITY_RANGE = (0.0, 2000.0)  # gCO2e/kWh: the dirtiest grids are near 1,100
SAMPLE_HZ_RANGE = (0.1, 1000.0)  # power readings per second
SECONDS_RANGE = (0.1, 3600.0)  # `metabench meters --seconds`
# Files that mark a folder as metabench's own (a run, or a report written by `report`).
RUN_MARKERS = (LEDGER_NAME,)
REPORT_MARKERS = (LEDGER_NAME, "summary.csv")
COMPARE_MARKERS = ("compare.csv",)
ENERGY_SCOPES = ("node", "gpu")


def cli_name(field: str) -> str:
    return "SUITE_OR_PATH" if field == "suites" else "--" + field.replace("_", "-")


def api_name(field: str) -> str:
    return f"{field}="


def respelled(e: MetabenchError, name: Naming) -> MetabenchError:
    """`e` with its leading flag (`--carbon-intensity: ...`, as code shared with the command
    line spells it) spelled as the caller does (`carbon_intensity=: ...` in Python)."""
    m = re.match(r"--([a-z][a-z-]*)", str(e))
    if not m:
        return e
    return MetabenchError(name(m[1].replace("-", "_")) + str(e)[m.end() :])


@dataclass(frozen=True)
class RunOptions:
    """Everything `metabench run` (or `bench.api.run`) is asked to do; defaults as the CLI."""

    suites: tuple[str, ...]
    methods: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    profile: str = "standard"
    device: str = "auto"
    precision: str | None = None
    normalization: str | None = None
    execution: str | None = None
    threads: int | None = None
    data_dir: str | None = None
    download: bool = True
    out: str | None = None
    executor: str = "local"
    scheduler: str | None = None
    workers: int | None = None
    wait_workers: int | None = None
    country: str | None = None
    region: str | None = None
    carbon_intensity: float | None = None
    pue: float = 1.0
    sample_hz: float = 20.0
    progress: bool = True
    energy_scope: str = "node"  # what the headline's energy sums (bench.report)


def check_run_options(o: RunOptions, name: Naming = cli_name) -> None:
    """Raise MetabenchError for the first setting that is wrong (see the module doc)."""
    check_list("suites", o.suites, str, name, what="suite names or .toml paths")
    if o.methods is not None:
        check_list("methods", o.methods, str, name, what="method names")
    if o.seeds is not None:
        check_list("seeds", o.seeds, int, name, what="seeds")
        for s in o.seeds:
            check_number("seeds", s, 0, MAX_SEED, name, integer=True)
    for field, value, allowed in (
        ("profile", o.profile, PROFILES),
        ("device", o.device, DEVICES),
        ("executor", o.executor, EXECUTORS),
        ("energy_scope", o.energy_scope, ENERGY_SCOPES),
    ):
        check_choice(field, value, allowed, name)
    for field, value, allowed in (
        ("precision", o.precision, PRECISIONS),
        ("normalization", o.normalization, NORMALIZATIONS),
        ("execution", o.execution, EXECUTIONS),
    ):
        if value is not None:
            check_choice(field, value, allowed, name)
    if o.threads is not None:
        cores = cpu_count() if o.executor != "dask" else MAX_WORKERS
        check_number("threads", o.threads, 1, cores, name, integer=True, unit="threads")
    check_executor(o, name)
    check_carbon(o, name)
    check_number("sample_hz", o.sample_hz, *SAMPLE_HZ_RANGE, name, unit="Hz")
    if o.data_dir is not None:
        check_folder("data_dir", o.data_dir, name)
    if o.out is not None:
        check_out(o.out, name)
    for field in ("download", "progress"):
        if not isinstance(getattr(o, field), bool):
            raise MetabenchError(
                f"{name(field)}: expected True or False, found {getattr(o, field)!r}"
            )


def check_list(field: str, values: object, kind: type, name: Naming, what: str) -> None:
    """A non-empty list of distinct values of `kind` (a duplicate would be computed twice)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise MetabenchError(f"{name(field)}: expected a list of {what}, found {values!r}")
    if not values:
        raise MetabenchError(f"{name(field)}: expected at least one of the {what}, found none")
    for v in values:
        if not isinstance(v, kind) or isinstance(v, bool) or (isinstance(v, str) and not v):
            raise MetabenchError(f"{name(field)}: expected {what}, found {v!r}")
    seen: set = set()
    for v in values:
        if v in seen:
            raise MetabenchError(
                f"{name(field)}: expected distinct {what}, found {v!r} twice (each cell runs "
                "once; list it once)"
            )
        seen.add(v)


def check_choice(field: str, value: object, allowed: tuple[str, ...], name: Naming) -> None:
    if value not in allowed:
        raise MetabenchError(
            f"{name(field)}: expected one of {', '.join(allowed)}, found {value!r}"
        )


def check_number(
    field: str,
    value: object,
    low: float,
    high: float,
    name: Naming,
    *,
    integer: bool = False,
    unit: str = "",
) -> None:
    """low <= value <= high, finite, an int where `integer`."""
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok and not integer:
        ok = math.isfinite(value)
    if not ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        bounds = f"{low}..{high}" if integer else f"{low:g}..{high:g}"
        bounds += f" {unit}" if unit else ""
        raise MetabenchError(f"{name(field)}: expected {kind} in {bounds}, found {value!r}")


def check_executor(o: RunOptions, name: Naming) -> None:
    """--scheduler and --wait-workers go with dask, --workers with dask-local."""
    if o.executor == "dask" and not o.scheduler:
        raise MetabenchError(
            f"{name('executor')} dask: expected {name('scheduler')} ADDRESS (e.g. "
            "tcp://127.0.0.1:8786), found none"
        )
    if o.scheduler is not None:
        if o.executor != "dask":
            raise MetabenchError(
                f"{name('scheduler')}: only with {name('executor')} dask, found "
                f"{name('executor')} {o.executor}"
            )
        if not isinstance(o.scheduler, str) or not re.fullmatch(
            r"([a-z]+://)?[^\s/:]+(:\d+)?", o.scheduler
        ):
            raise MetabenchError(
                f"{name('scheduler')}: expected a Dask scheduler address like "
                f"tcp://HOST:8786, found {o.scheduler!r}"
            )
    for field, kind in (("workers", "dask-local"), ("wait_workers", "dask")):
        value = getattr(o, field)
        if value is None:
            continue
        if o.executor != kind:
            raise MetabenchError(
                f"{name(field)}: only with {name('executor')} {kind}, found "
                f"{name('executor')} {o.executor}"
            )
        check_number(field, value, 1, MAX_WORKERS, name, integer=True, unit="workers")


def check_carbon(o: RunOptions, name: Naming) -> None:
    """Formats and ranges; whether codecarbon knows the country is checked when resolved."""
    check_number("pue", o.pue, *PUE_RANGE, name)
    if o.carbon_intensity is not None:
        check_number("carbon_intensity", o.carbon_intensity, *INTENSITY_RANGE, name, unit="g/kWh")
    if o.country is not None and not (
        isinstance(o.country, str) and re.fullmatch(r"[A-Za-z]{3}", o.country)
    ):
        raise MetabenchError(
            f"{name('country')}: expected an ISO 3166-1 alpha-3 code such as FRA or USA, "
            f"found {o.country!r}"
        )
    if o.region is not None:
        if not isinstance(o.region, str) or not o.region.strip():
            raise MetabenchError(f"{name('region')}: expected a region name, found {o.region!r}")
        if o.country is None:
            raise MetabenchError(
                f"{name('region')}: expected {name('country')} too (a region is looked up "
                f"within a country), found {name('region')} {o.region!r} alone"
            )


def check_folder(field: str, value: object, name: Naming) -> None:
    if not isinstance(value, (str, Path)) or not str(value) or not Path(value).is_dir():
        raise MetabenchError(f"{name(field)}: expected an existing folder, found {str(value)!r}")


def check_out(
    value: object, name: Naming, field: str = "out", markers: tuple[str, ...] = RUN_MARKERS
) -> None:
    """A folder metabench may write into: new, empty, or its own (holding one of `markers`),
    so that no file of the user's is overwritten; and one it can create and write (the
    nearest existing folder on its path is probed with a folder made and removed at once)."""
    if not isinstance(value, (str, Path)) or not str(value):
        raise MetabenchError(f"{name(field)}: expected a folder path, found {value!r}")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise MetabenchError(f"{name(field)}: expected a folder, found the file {str(path)!r}")
    ours = any((path / m).is_file() for m in markers)
    # a lock alone: a run starting there (bench.run.folder says whether it still runs)
    if path.is_dir() and not ours and any(p.name != LOCK_NAME for p in path.iterdir()):
        raise MetabenchError(
            f"{name(field)}: expected a new or empty folder, or one metabench wrote (holding "
            f"{' or '.join(markers)}), found {str(path)!r} holding other files; choose another "
            "folder so that nothing of yours is overwritten"
        )
    check_writable(path, name, field)


def check_writable(path: Path, name: Naming, field: str) -> None:
    """`path` (existing or not) is a folder this process can create and write into."""
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise MetabenchError(
            f"{name(field)}: expected a folder path, found the file {str(existing)!r} in it"
        )
    if why := cannot_write(existing):
        where = "" if existing == path else f" (it would be created in {str(existing)!r})"
        raise MetabenchError(
            f"{name(field)}: expected a folder metabench can write, found {str(path)!r} "
            f"not writable{where}: making a folder there failed ({why})"
        )


def cannot_write(folder: Path) -> str | None:
    """None when a folder can be made inside `folder`, else the system's reason. Permission
    bits do not tell (root ignores them; /proc refuses anyway): the probe folder is created
    and removed at once."""
    try:
        probe = tempfile.mkdtemp(prefix=".metabench-probe-", dir=folder)
    except OSError as e:
        return e.strerror or str(e)
    os.rmdir(probe)
    return None
