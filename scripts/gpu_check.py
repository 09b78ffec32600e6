"""The Python half of scripts/gpu_check.sh (docs/gpu-validation.md).

    python scripts/gpu_check.py preflight --suites A,B --profile P --device cuda|cpu
    python scripts/gpu_check.py plan --suites A,B --methods M,N --profile P
    python scripts/gpu_check.py summary --run DIR --log FILE --suites A,B --methods M,N
        [--seeds 0] [--profile standard] [--run-target-s 120]

`preflight` runs before any step that takes minutes and stops the check at once (exit 2,
one message per problem) when the run could not succeed: a dependency of pyproject.toml
missing, of the wrong version or failing to import (the GPU image lacks codecarbon and its
dependencies: scripts/fetch_wheels.sh, carried as .whl), a suite's dataset not in the data
root (nothing is downloaded: the device has no internet), or no CUDA device.

`plan` prints the suites and methods of the comparison that this checkout has (one
message per one left out), as two lines `suites=A B` and `methods=M,N`: a method runs
when it is registered and in at least one chosen suite's method table.

`summary` prints, per suite and method of the run's summary.csv, the stream and batch
deploy energy per task, their ratio and the latency per task of both; the cells done out
of those planned (a method counts only on the suites whose table has it) and the run's
wall time; and PASS / FAIL against each target of the batched-execution issue, reading
the benchmarks' key=value lines from the check's log (a target whose step did not run in
this call is FAIL, "not measured"). Last line:
`targets_passed=<n> targets=<n> cells_done=<n> cells_planned=<n> run_wall_s=<s>`.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.metadata as metadata
import math
import re
import sqlite3
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
IMPORT_NAMES = {"nvidia-ml-py": "pynvml", "pillow": "PIL"}  # distribution -> module

# Targets (issue 13, "GPU-native execution"; docs/gpu-validation.md).
MAML_FAMILY = ("maml", "fomaml", "reptile", "anil", "metasgd")
TEN_X_METHODS = ("scratch", "transfer", *MAML_FAMILY)  # batch J/task >= 10x below stream
TEN_X = 10.0
RATIO_BATCHED_MIN = 1.5  # benchmarks/maml_step.py: reference / batched meta-step time
OPS_RATIO_MIN = 10.0  # benchmarks/deploy_batch.py: stream / batch aten ops per task
GRAPH_DIFF_MAX = 1e-6  # deploy_batch: graph replay vs eager batch, relative
KEY_VALUES = re.compile(r"^\s*(\w+=\S+)(\s+\w+=\S+)*\s*$")


# -- preflight -------------------------------------------------------------------------


def dependency_problems(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """Each dependency of `pyproject` that is missing, of a version outside its
    specifier, or whose module fails to import (a wheel installed without its own
    dependencies)."""
    from packaging.requirements import Requirement

    problems = []
    for spec in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name}: not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}: version {version}, needs {req.specifier}")
        module = IMPORT_NAMES.get(req.name, req.name.replace("-", "_"))
        try:
            importlib.import_module(module)
        except Exception as e:  # any failure to import is the finding
            problems.append(f"{req.name}: import {module} failed ({type(e).__name__}: {e})")
    return problems


def data_problems(suites: list[str], profile: str) -> list[str]:
    """The datasets of the suites that the data root lacks (never downloads). A suite this
    checkout does not have is left to `plan`, which skips it with a message."""
    from bench.data import data_root_origin, prepare_datasets, resolve_data_root
    from bench.errors import MetabenchError
    from bench.suite import load_suite

    needed: dict[str, list[str]] = {}
    for name in suites:
        try:
            needed.setdefault(load_suite(name, profile).dataset, []).append(name)
        except MetabenchError:
            continue
    try:
        prepare_datasets(needed, resolve_data_root(None), download=False, origin=data_root_origin())
    except MetabenchError as e:
        return [str(e)]
    return []


def device_problems(device: str) -> list[str]:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        return [f"torch {torch.__version__} sees no CUDA device (--device {device})"]
    return []


def preflight(args: argparse.Namespace) -> int:
    problems = dependency_problems()
    if not problems:  # bench imports them
        suites = split(args.suites)
        problems = data_problems(suites, args.profile) + device_problems(args.device)
    for p in problems:
        print(f"preflight: {p}")
    if problems:
        print(
            "preflight: FAILED, nothing else runs (missing wheels: scripts/fetch_wheels.sh and "
            "carry .whl; missing data: copy it into .data/ and carry .data; "
            "docs/gpu-validation.md)"
        )
        return 2
    print("preflight: ok (dependencies, data, device)")
    return 0


# -- plan ------------------------------------------------------------------------------


def suite_tables(suites: list[str], profile: str) -> dict[str, list[str]]:
    """{suite: its method table} for the suites this checkout has (a message per other)."""
    from bench.errors import MetabenchError
    from bench.suite import load_suite

    tables = {}
    for name in suites:
        try:
            tables[name] = [m.name for m in load_suite(name, profile).methods]
        except MetabenchError as e:
            print(f"run: suite {name} is not in this checkout: skipped ({e})")
    return tables


def plan(args: argparse.Namespace) -> int:
    from bench.methods import METHODS

    tables = suite_tables(split(args.suites), args.profile)
    methods = []
    for m in split(args.methods):
        if m not in METHODS:
            print(f"run: method {m} is not registered in this checkout: skipped")
        elif not any(m in table for table in tables.values()):
            print(f"run: method {m} is in none of the suites' method tables: skipped")
        else:
            methods.append(m)
    print(f"suites={' '.join(tables)}")
    print(f"methods={','.join(methods)}")
    return 0 if tables and methods else 1


def split(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


# -- summary ---------------------------------------------------------------------------


def key_values(log: Path) -> dict[str, str]:
    """The last value of every key on the log's pure `key=value ...` lines."""
    found: dict[str, str] = {}
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            if KEY_VALUES.match(line):
                found.update(token.split("=", 1) for token in line.split())
    return found


def number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def planned_cells(
    suites: list[str], methods: list[str], seeds: list[int], profile: str
) -> list[tuple[str, str, int]]:
    """(suite, method, seed) of every cell the run plans: as `metabench run`, a method
    runs only on the suites whose method table has it (sinusoid has no ProtoNet: the
    standard comparison is 26 cells, not 3 x 9)."""
    return [
        (suite, m, seed)
        for suite, table in suite_tables(suites, profile).items()
        for m in methods
        if m in table
        for seed in seeds
    ]


def cells_done(run_dir: Path, planned: list[tuple[str, str, int]]) -> int:
    """Planned cells that the run's ledger holds as done."""
    ledger = run_dir / "ledger.sqlite"
    if not ledger.is_file():
        return 0
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT suite, method, seed FROM cells WHERE status = 'done'")
        done = set(rows.fetchall())
    finally:
        con.close()
    return len(done & set(planned))


def fmt(x: float, spec: str = ".3g") -> str:
    return "-" if math.isnan(x) else format(x, spec)


def deploy_table(rows: list[dict]) -> list[str]:
    """Per suite and method: stream / batch J per task, ratio, latency per task."""
    out = [
        f"{'suite':<16} {'method':<12} {'execution':<9} {'stream J/task':>13} "
        f"{'batch J/task':>12} {'ratio':>7} {'stream s/task':>13} {'batch s/task':>12}"
    ]
    for r in rows:
        out.append(
            f"{r['suite']:<16} {r['method']:<12} {r.get('execution', ''):<9} "
            f"{fmt(r['stream_j']):>13} {fmt(r['batch_j']):>12} {fmt(r['ratio'], '.1f'):>7} "
            f"{fmt(r['stream_s']):>13} {fmt(r['batch_s']):>12}"
        )
    return out


def read_rows(summary_csv: Path) -> list[dict]:
    rows = []
    if summary_csv.is_file():
        with summary_csv.open(newline="") as f:
            for r in csv.DictReader(f):
                stream, batch = (
                    number(r.get(f"e_deploy_{s}_j_per_task")) for s in ("stream", "batch")
                )
                rows.append(
                    {
                        **r,
                        "stream_j": stream,
                        "batch_j": batch,
                        "ratio": stream / batch if batch > 0 else math.nan,
                        "stream_s": number(r.get("deploy_stream_s_per_task")),
                        "batch_s": number(r.get("deploy_batch_s_per_task")),
                    }
                )
    return rows


def ten_x(rows: list[dict], pairs: list[tuple[str, str]]) -> tuple[bool, str]:
    """Batch J/task >= 10x below stream for every planned (suite, method) of the target."""
    wanted = [(s, m) for s, m in pairs if m in TEN_X_METHODS]
    ratios = {(r["suite"], r["method"]): r["ratio"] for r in rows}
    short = []
    for s, m in wanted:
        ratio = ratios.get((s, m), math.nan)
        if math.isnan(ratio):
            short.append(f"{m} on {s}: no stream and batch figures")
        elif ratio < TEN_X:
            short.append(f"{m} on {s} {ratio:.1f}x")
    if not wanted:
        return False, "none of scratch, transfer and the MAML family was planned"
    if short:
        return False, f"{len(short)} of {len(wanted)} below 10x: " + "; ".join(short)
    worst = min(ratios[w] for w in wanted)
    return True, f"all {len(wanted)} at least 10x (smallest {worst:.1f}x)"


def targets(kv: dict[str, str], rows, pairs, planned: int, done: int, target_s) -> list:
    """(passed, name, detail) per target; `pairs`: the planned (suite, method)."""
    wall = number(kv.get("run_wall_s"))
    ratio_batched, ops = number(kv.get("ratio_batched")), number(kv.get("ops_ratio_min"))
    graph = number(kv.get("graph_diff_max"))
    unmeasured = "not measured in this call"
    ten_x_ok, ten_x_detail = ten_x(rows, pairs)
    return [
        (
            planned > 0 and done >= planned and wall <= target_s,
            f"run: {planned} cells within {target_s:g} s",
            f"{done} of {planned} cells done, "
            + (
                "run time not measured in this call"
                if math.isnan(wall)
                else f"run_wall_s={wall:.0f}"
            ),
        ),
        (
            ten_x_ok,
            f"batch J/task >= {TEN_X:g}x below stream (scratch, transfer, MAML family)",
            ten_x_detail,
        ),
        (
            ratio_batched >= RATIO_BATCHED_MIN,
            f"maml_step ratio_batched >= {RATIO_BATCHED_MIN}",
            unmeasured if math.isnan(ratio_batched) else f"ratio_batched={ratio_batched:.2f}",
        ),
        (
            ops >= OPS_RATIO_MIN,
            f"deploy_batch ops_ratio_min >= {OPS_RATIO_MIN:g}",
            unmeasured if math.isnan(ops) else f"ops_ratio_min={ops:.1f}",
        ),
        (
            graph <= GRAPH_DIFF_MAX,
            f"graph replay vs eager: graph_diff_max <= {GRAPH_DIFF_MAX:g}",
            unmeasured if math.isnan(graph) else f"graph_diff_max={graph:.2g}",
        ),
    ]


def summary(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    suites, methods = split(args.suites), split(args.methods)
    seeds = [int(s) for s in split(args.seeds)]
    cells = planned_cells(suites, methods, seeds, args.profile)
    pairs = list(dict.fromkeys((s, m) for s, m, _ in cells))
    planned = len(cells)
    rows = [r for r in read_rows(run_dir / "summary.csv") if r["suite"] in suites]
    done, kv = cells_done(run_dir, cells), key_values(Path(args.log))
    print("deploy energy and latency per task, stream (one task per call) vs batch:")
    print("\n".join(deploy_table(rows)) if rows else f"  no summary.csv rows in {run_dir}")
    print(f"cells done: {done} of {planned}; run wall time: {kv.get('run_wall_s', '-')} s")
    results = targets(kv, rows, pairs, planned, done, args.run_target_s)
    for passed, name, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
    n_passed = sum(bool(r[0]) for r in results)
    print(
        f"targets_passed={n_passed} targets={len(results)} cells_done={done} "
        f"cells_planned={planned} run_wall_s={kv.get('run_wall_s', 'nan')}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("preflight", help="stop early when the run could not succeed")
    pre.add_argument("--suites", required=True, help="comma-separated suites the check runs")
    pre.add_argument("--profile", required=True, help="suite profile (smoke, standard, ...)")
    pre.add_argument("--device", required=True, help="cuda or cpu (--fake-nvml)")
    pre.set_defaults(fn=preflight)
    pla = sub.add_parser("plan", help="the suites and methods this checkout can run")
    pla.add_argument("--suites", required=True, help="comma-separated suites wanted")
    pla.add_argument("--methods", required=True, help="comma-separated methods wanted")
    pla.add_argument("--profile", required=True, help="suite profile (smoke, standard, ...)")
    pla.set_defaults(fn=plan)
    summ = sub.add_parser("summary", help="deploy figures and PASS / FAIL per target")
    summ.add_argument("--run", required=True, help="the run folder (summary.csv, ledger.sqlite)")
    summ.add_argument("--log", required=True, help="gpu_check.log (the key=value lines)")
    summ.add_argument("--suites", required=True, help="comma-separated suites planned")
    summ.add_argument("--methods", required=True, help="comma-separated methods planned")
    summ.add_argument("--seeds", default="0", help="comma-separated seeds planned (default 0)")
    summ.add_argument(
        "--profile", default="standard", help="the run's suite profile (default standard)"
    )
    summ.add_argument(
        "--run-target-s", type=float, default=120.0, help="run time target (default 120 s)"
    )
    summ.set_defaults(fn=summary)
    args = parser.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
