"""metabench: list | run | report | compare | index | meters.

Bad input (flags, suite files, data directories) exits 2 with a one-paragraph message and
no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import shlex
import sys
from pathlib import Path

from bench.errors import MetabenchError

REPORTS_DIR = Path("reports")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors also exit 2, no traceback
        raise MetabenchError(f"{self.prog}: {message}")


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, found {text!r}"
        ) from None


def str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_energy_scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--energy-scope",
        choices=["node", "gpu"],
        default="node",
        help="what the headline's energy sums: node = GPU + CPU + DRAM (default; MLPerf "
        "Power measures the system), gpu = the accelerator only (as Zeus and the ML.ENERGY "
        "leaderboard report)",
    )


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="metabench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    sub.add_parser("list", help="suites, methods, datasets and profiles")

    run = sub.add_parser("run", help="run suites and write their report")
    run.add_argument("suites", nargs="+", metavar="SUITE_OR_PATH")
    run.add_argument("--methods", type=str_list, help="comma-separated subset of methods")
    run.add_argument("--seeds", type=int_list, help="comma-separated seeds (default: suite's)")
    run.add_argument("--profile", default="standard", choices=["smoke", "standard", "paper"])
    run.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    run.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        help="override the suites' precision (bf16 autocast is fast on GPUs and on CPUs with "
        "AMX or AVX512-BF16, slow elsewhere)",
    )
    run.add_argument(
        "--execution",
        choices=["auto", "loop", "batched", "graph"],
        help="override the suites' execution mode: loop (one task per call), batched (a whole "
        "meta batch or deploy chunk per call), graph (batched, replayed from a CUDA graph; "
        "CUDA only), auto (the faster of loop and batched measured for the device and method)",
    )
    run.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads per cell, on every executor (default: min(4, cores)); "
        "CPU scores are reproducible only at equal thread counts",
    )
    run.add_argument("--data-dir", help="data root (default: $METABENCH_DATA, then the cache)")
    run.add_argument("--out", type=Path, help="results directory (default: reports/<name>)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--executor",
        default="local",
        choices=["local", "dask", "dask-local"],
        help="local: cells in this process (default); dask: an existing Dask "
        "cluster (--scheduler); dask-local: a one-node Dask cluster (--workers)",
    )
    run.add_argument("--scheduler", help="Dask scheduler address for --executor dask")
    run.add_argument(
        "--workers",
        type=int,
        help="workers for --executor dask-local (default: one per GPU, or per core)",
    )
    run.add_argument(
        "--country",
        help="ISO 3166-1 alpha-3 code for the carbon intensity "
        "(default: codecarbon's config, else the world average)",
    )
    run.add_argument(
        "--region", help="region within --country where codecarbon has data (e.g. a US state)"
    )
    run.add_argument(
        "--carbon-intensity",
        type=float,
        metavar="G_PER_KWH",
        help="explicit carbon intensity in gCO2e/kWh (overrides --country)",
    )
    run.add_argument(
        "--pue", type=float, default=1.0, help="power usage effectiveness of the site (default 1.0)"
    )
    run.add_argument(
        "--sample-hz", type=float, default=20.0, help="power sampler rate in Hz (default 20)"
    )
    add_energy_scope(run)

    report = sub.add_parser("report", help="rebuild a run's report from its ledger")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--out", type=Path, help="where to write (default: RUN_DIR)")
    add_energy_scope(report)

    compare = sub.add_parser(
        "compare", help="the same cells of two or more runs side by side, with ratios"
    )
    compare.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    compare.add_argument(
        "--out", type=Path, help="write compare.csv, plots and compare.html here (default: none)"
    )

    index = sub.add_parser("index", help="write DIR/index.html listing the run folders under DIR")
    index.add_argument("runs_dir", type=Path, metavar="DIR", help="a folder of run folders")

    meters = sub.add_parser(
        "meters", help="every energy meter on this machine, with a live reading"
    )
    meters.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    meters.add_argument("--seconds", type=float, default=3.0, help="live reading length")
    return parser


def resolve_device(flag: str) -> str:
    import torch

    if flag == "cuda" and not torch.cuda.is_available():
        raise MetabenchError(
            "--device: expected a visible CUDA device, found none (use --device cpu or auto)"
        )
    if flag == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return flag


def default_run_dir(suites: list, profile: str) -> Path:
    """Deterministic, so that re-running the same command resumes the same run."""
    names = [s.name for s in suites]
    if len(names) <= 2:
        return REPORTS_DIR / f"{'+'.join(names)}-{profile}"
    digest = hashlib.sha256("|".join(sorted(names)).encode()).hexdigest()[:8]
    return REPORTS_DIR / f"{len(names)}suites-{digest}-{profile}"


def cmd_list(args: argparse.Namespace) -> int:
    from bench.data import DATASETS
    from bench.methods import METHODS
    from bench.suite import PROFILES, available_suites, load_suite

    print("suites:")
    for name, path in available_suites().items():
        s = load_suite(path, "standard")
        print(
            f"  {name:<20} {s.dataset}/{s.split} {s.task}, {s.n_way}-way {s.k_shot}-shot, "
            f"methods: {', '.join(m.name for m in s.methods)}"
        )
    print("methods:")
    for name in METHODS.names():
        cls = METHODS.get(name)
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        print(f"  {name:<12} {summary}")
    print("datasets:", ", ".join(DATASETS.names()))
    print("profiles:", ", ".join(PROFILES))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.data import resolve_data_root
    from bench.energy.carbon import resolve_intensity
    from bench.energy.composite import build_meter
    from bench.environment import snapshot
    from bench.report.writer import write_report
    from bench.run.executors import check_executor_flags, open_executor
    from bench.run.grid import DEFAULT_THREADS, expand_grid
    from bench.store import Ledger
    from bench.suite import load_suite

    check_executor_flags(args.executor, args.scheduler, args.workers)
    suites = [load_suite(s, args.profile) for s in args.suites]
    if args.precision:
        suites = [dataclasses.replace(s, precision=args.precision) for s in suites]
    data_root = resolve_data_root(args.data_dir)
    device = resolve_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise MetabenchError(f"--threads: expected a positive count, found {args.threads}")
    cells = expand_grid(
        suites,
        args.methods,
        args.seeds,
        device,
        threads=args.threads or DEFAULT_THREADS,
        execution=args.execution,
    )
    carbon = resolve_intensity(args.country, args.region, args.carbon_intensity, args.pue)
    run_dir = args.out or default_run_dir(suites, args.profile)
    ledger = Ledger(run_dir)
    command = shlex.join(["metabench", *sys.argv[1:]])
    run_id = ledger.start_run(command, snapshot(device))
    ledger.write_carbon(run_id, carbon)
    meter_factory = functools.partial(build_meter, device, sample_hz=args.sample_hz)
    with open_executor(
        args.executor,
        meter_factory,
        data_root,
        device=device,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=not args.no_progress,
    ) as executor:
        summary = executor.execute(cells, ledger, run_id)
    out = write_report(run_dir, energy_scope=args.energy_scope)
    print(
        f"{summary.done} cells run, {summary.skipped} already done, "
        f"{summary.failed} failed; report: {out}"
    )
    return 1 if summary.failed else 0


def cmd_meters(args: argparse.Namespace) -> int:
    """Inventory table, then one live window of `--seconds` per component."""
    import time

    from bench.energy.composite import build_meter

    meter = build_meter(resolve_device(args.device))
    try:
        print(format_inventory(meter.info()))
        with meter.window("live") as w:
            time.sleep(args.seconds)
        print(format_live(w.measurement))
    finally:
        meter.close()
    return 0


def format_inventory(infos: list) -> str:
    rows = [
        (
            "meter",
            "available",
            "kind",
            "source",
            "components",
            "resolution",
            "update",
            "why not / how to fix",
        )
    ]
    for i in infos:
        why = "; fix: ".join(x for x in (i.reason, i.fix) if x)
        rows.append(
            (
                i.name,
                "yes" if i.available else "no",
                i.kind,
                i.source,
                ",".join(i.components) or "-",
                i.resolution,
                f"{i.update_period_s:g} s" if i.update_period_s else "-",
                why,
            )
        )
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(c.ljust(wd) for c, wd in zip(r, widths, strict=False)) + "  " + r[-1]
        for r in rows
    )


def format_live(m) -> str:
    lines = [f"live reading over {m.seconds:.2f} s:"]
    for comp, j in m.joules_by_component.items():
        lines.append(
            f"  {comp:<10} {j / m.seconds:8.2f} W  {j:9.2f} J  "
            f"[{m.source_by_component[comp]}, {m.samples_by_component[comp]} samples]"
        )
    if not m.joules_by_component:
        lines.append("  no meter measures energy on this machine")
    lines += [f"  warning: {x}" for x in m.warnings]
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report.writer import write_report

    print(f"report: {write_report(args.run_dir, args.out, args.energy_scope)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.report.compare import compare

    print(compare(args.run_dirs, args.out))
    if args.out:
        print(f"compare: {args.out / 'compare.html'}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from bench.report.index import write_runs_index

    print(f"index: {write_runs_index(args.runs_dir)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        commands = {
            "list": cmd_list,
            "run": cmd_run,
            "report": cmd_report,
            "meters": cmd_meters,
            "index": cmd_index,
            "compare": cmd_compare,
        }
        return commands[args.command](args)
    except MetabenchError as e:
        print(f"metabench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("metabench: interrupted; completed cells are in the ledger", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
