"""metabench: list | run | report | compare | index | meters.

Bad input (flags, suite files, data folders) exits 2 with a one-paragraph message and no
traceback, before anything runs or is written. A run whose cells failed exits 1 with one
paragraph naming them; Ctrl-C exits 130 and prints the command that resumes the run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from bench import __version__
from bench.errors import MetabenchError

OUT_DEFAULT = (
    "reports/<suite>-<profile> in the current folder (two suites: <suite>+<suite>-<profile>; "
    "more: <n>suites-<hash>-<profile>)"
)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors also exit 2, no traceback
        raise MetabenchError(f"{message} (see `{self.prog} --help`)")


def int_list(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; '' -> [] (refused later with the flag's name)."""
    if not text.strip():
        return []
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, found {text!r}"
        ) from None


def str_list(text: str) -> list[str]:
    """'a, b' -> ['a', 'b']; '' -> []; 'a,,b' keeps the empty name (refused later)."""
    return [v.strip() for v in text.split(",")] if text.strip() else []


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
    parser.add_argument("--version", action="version", version=f"metabench {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        help="also show the log messages and warnings of the libraries metabench uses "
        "(default: off)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.add_parser("list", parents=[common], help="suites, methods, datasets and profiles")
    add_run_parser(sub, common)
    report = sub.add_parser(
        "report", parents=[common], help="rebuild a run's report from its ledger"
    )
    report.add_argument("run_dir", type=Path, help="a run folder (one holding ledger.sqlite)")
    report.add_argument(
        "--out",
        help="folder to write the report into: new, empty or an earlier report (default: RUN_DIR)",
    )
    add_energy_scope(report)
    compare = sub.add_parser(
        "compare",
        parents=[common],
        help="the same cells of two or more runs side by side, with ratios",
    )
    compare.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="two or more run folders"
    )
    compare.add_argument(
        "--out",
        help="write compare.csv, plots and compare.html into this folder: new, empty or an "
        "earlier comparison (default: none, print the ratios only)",
    )
    index = sub.add_parser(
        "index",
        parents=[common],
        help="write DIR/index.html listing the run folders under DIR",
    )
    index.add_argument("runs_dir", type=Path, metavar="DIR", help="a folder of run folders")
    meters = sub.add_parser(
        "meters", parents=[common], help="the energy meters a run here would use, live"
    )
    meters.add_argument(
        "--device",
        default="auto",
        choices=["cpu", "cuda", "auto"],
        help="the device of the run to meter (default: auto, cuda when torch sees a GPU)",
    )
    meters.add_argument(
        "--seconds", type=float, default=3.0, help="live reading length, 0.1-3600 (default: 3)"
    )
    return parser


def add_run_parser(sub, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common], help="run suites and write their report")
    run.add_argument(
        "suites",
        nargs="+",
        metavar="SUITE_OR_PATH",
        help="suite names (see `metabench list`) or suite .toml files",
    )
    run.add_argument(
        "--methods", type=str_list, help="comma-separated subset (default: every suite's own)"
    )
    run.add_argument(
        "--seeds", type=int_list, help="comma-separated seeds >= 0 (default: each suite's)"
    )
    run.add_argument(
        "--profile",
        default="standard",
        choices=["smoke", "standard", "paper"],
        help="budgets: smoke (seconds per suite), standard (default; what `make bench` runs), "
        "paper (the published settings, for GPUs)",
    )
    run.add_argument(
        "--device",
        default="auto",
        choices=["cpu", "cuda", "auto"],
        help="default: auto (cuda when torch sees a GPU); with --executor dask say cpu or "
        "cuda: the workers check it",
    )
    run.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        help="override the suites' precision (default: each suite's; bf16 autocast is fast on "
        "GPUs and on CPUs with AMX or AVX512-BF16, slow elsewhere)",
    )
    run.add_argument(
        "--normalization",
        choices=["support", "transductive"],
        help="override the suites' BatchNorm statistics rule (default: each suite's; support "
        "in the smoke and standard profiles, transductive in paper): support = the task's "
        "support set, so each query is predicted independently; transductive = the query "
        "batch, as in the MAML paper",
    )
    run.add_argument(
        "--execution",
        choices=["auto", "loop", "batched", "graph"],
        help="override the suites' execution mode (default: each suite's): loop (one task per "
        "call), batched (a meta batch or deploy chunk per call), graph (batched, replayed "
        "from a CUDA graph; CUDA only), auto (the faster of loop and batched measured for "
        "the device and method)",
    )
    run.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads per cell, on every executor (default: min(4, cores)); "
        "CPU scores are reproducible only at equal thread counts",
    )
    run.add_argument(
        "--data-dir",
        help="data root holding omniglot/, banking77/, clinc150/ (default: $METABENCH_DATA, "
        "else ~/.cache/metabench/data)",
    )
    run.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="never download a missing dataset; stop with a message instead (default: "
        "download from the official source and verify its checksum)",
    )
    run.add_argument("--out", help=f"results folder (default: {OUT_DEFAULT})")
    run.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars; the opening line and one line per cell stay (default: bars)",
    )
    run.add_argument(
        "--executor",
        default="local",
        choices=["local", "dask", "dask-local"],
        help="local: cells in this process (default); dask: an existing Dask cluster "
        "(--scheduler); dask-local: a one-node Dask cluster (--workers)",
    )
    run.add_argument(
        "--scheduler", help="Dask scheduler address for --executor dask (default: none)"
    )
    run.add_argument(
        "--workers",
        type=int,
        help="workers for --executor dask-local (default: one per GPU with --device cuda, "
        "else cores // --threads)",
    )
    run.add_argument(
        "--wait-workers",
        type=int,
        metavar="N",
        help="with --executor dask, wait until N workers joined before starting (default: 1)",
    )
    run.add_argument(
        "--country",
        help="ISO 3166-1 alpha-3 code for the carbon intensity (default: codecarbon's "
        "config, else the world average)",
    )
    run.add_argument(
        "--region",
        help="region within --country where codecarbon has data, e.g. a US state "
        "(default: none, the country's figure)",
    )
    run.add_argument(
        "--carbon-intensity",
        type=float,
        metavar="G_PER_KWH",
        help="explicit carbon intensity in gCO2e/kWh, 0-2000 (default: from --country)",
    )
    run.add_argument(
        "--pue",
        type=float,
        default=1.0,
        help="power usage effectiveness of the site, 1-5 (default: 1.0)",
    )
    run.add_argument(
        "--sample-hz",
        type=float,
        default=20.0,
        help="power sampler rate in Hz, 0.1-1000 (default: 20)",
    )
    add_energy_scope(run)


# RunOptions fields set from flags of the same name (suites, methods, seeds are converted).
RUN_FLAGS = (
    "profile",
    "device",
    "precision",
    "normalization",
    "execution",
    "threads",
    "data_dir",
    "download",
    "out",
    "executor",
    "scheduler",
    "workers",
    "wait_workers",
    "country",
    "region",
    "carbon_intensity",
    "pue",
    "sample_hz",
    "progress",
    "energy_scope",
)


def run_options(args: argparse.Namespace):
    from bench.options import RunOptions

    return RunOptions(
        suites=tuple(args.suites),
        methods=None if args.methods is None else tuple(args.methods),
        seeds=None if args.seeds is None else tuple(args.seeds),
        **{k: getattr(args, k) for k in RUN_FLAGS},
    )


def cmd_run(args: argparse.Namespace) -> int:
    from bench.run import session

    p = session.plan(run_options(args))
    outcome = session.execute(p, shlex.join(["metabench", *args.argv]))
    s = outcome.summary
    report = outcome.report
    print(f"{s.done} cells run, {s.skipped} already done, {s.failed} failed; report: {report}")
    if s.failed:
        print(f"metabench: {session.failure_paragraph(outcome)}", file=sys.stderr)
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench.data import DATASETS
    from bench.methods import METHODS
    from bench.suite import PROFILES, available_suites, load_suite

    rows = []
    for name, path in available_suites().items():
        s = load_suite(path, "standard")
        shape = (
            f"{s.n_way}-way {s.k_shot}-shot classification"
            if s.task == "classification"
            else f"{s.k_shot}-shot regression"
        )
        rows.append((name, f"{s.dataset}/{s.split}", shape, ", ".join(m.name for m in s.methods)))
    print("suites:")
    print(columns(rows) or "  (none found)")
    methods = []
    for name in METHODS.names():
        doc = (METHODS.get(name).__doc__ or "").strip().split("\n\n")[0]
        methods.append((name, " ".join(doc.split())))
    methods += [(name, f"not loaded: {why}") for name, why in sorted(METHODS.broken.items())]
    print("methods:")
    print(columns(methods))
    print("datasets:", ", ".join(DATASETS.names()))
    print("profiles:", ", ".join(p + (" (default)" if p == "standard" else "") for p in PROFILES))
    return 0


def columns(rows: list[tuple[str, ...]]) -> str:
    """Rows as two-space-indented columns, each as wide as its longest entry."""
    if not rows:
        return ""
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]) - 1)]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
        for r in rows
    )


def cmd_meters(args: argparse.Namespace) -> int:
    """The device a run would use, the meters it would read, then one live window."""
    import time

    from bench.devices import cpu_only_torch_note, resolve_device
    from bench.energy.composite import build_meter
    from bench.options import SECONDS_RANGE, check_number

    check_number("seconds", args.seconds, *SECONDS_RANGE, lambda f: f"--{f}", unit="s")
    device = resolve_device(args.device)
    print(f"a run here uses device '{device}' (--device {args.device})")
    if note := cpu_only_torch_note():
        print(f"note: {note}")
    meter = build_meter(device)
    try:
        print(format_inventory(meter.info()))
        with meter.window("live") as w:
            time.sleep(args.seconds)
        print(format_live(w.measurement))
    finally:
        meter.close()
    return 0


def format_inventory(infos: list) -> str:
    header = ("meter", "available", "kind", "source", "components", "resolution", "update")
    rows = [(*header, "why not / how to fix")]
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
    return columns(rows)


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
    from bench.options import REPORT_MARKERS, check_out
    from bench.report.writer import write_report

    if args.out is not None:
        check_out(args.out, lambda f: f"--{f}", markers=REPORT_MARKERS)
    out = args.out and Path(args.out)
    print(f"report: {write_report(args.run_dir, out, args.energy_scope)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.options import COMPARE_MARKERS, check_out
    from bench.report.compare import compare

    if args.out is not None:
        check_out(args.out, lambda f: f"--{f}", markers=COMPARE_MARKERS)
    out = args.out and Path(args.out)
    print(compare(args.run_dirs, out))
    if out:
        print(f"compare: {out / 'compare.html'}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from bench.report.index import write_runs_index

    print(f"index: {write_runs_index(args.runs_dir)}")
    return 0


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "report": cmd_report,
    "compare": cmd_compare,
    "index": cmd_index,
    "meters": cmd_meters,
}


def main(argv: list[str] | None = None) -> int:
    from bench.run.session import quiet_libraries

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if not argv:  # no command: the usage, as an error
            parser.print_help(sys.stderr)
            return 2
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        args.argv = argv
        with quiet_libraries(args.verbose):
            return COMMANDS[args.command](args)
    except MetabenchError as e:
        print(f"metabench: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt as e:
        print(interrupted_message(argv, getattr(e, "run_dir", None)), file=sys.stderr)
        return 130


def interrupted_message(argv: list[str], run_dir: Path | None) -> str:
    """Where the finished cells are and the exact command that resumes the run."""
    if run_dir is None:
        return "metabench: interrupted"
    resume = ["metabench", *argv]
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        resume += ["--out", str(Path(run_dir).resolve())]
    return (
        f"metabench: interrupted; the cells finished so far are kept in {run_dir}. Resume "
        f"with (from {os.getcwd()}): {shlex.join(resume)}"
    )


if __name__ == "__main__":
    sys.exit(main())
