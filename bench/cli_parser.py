"""The command line's grammar: every subcommand, flag, default and help text, and how
argparse's own complaints become one-paragraph errors (bench.cli runs the commands)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench import __version__
from bench.errors import MetabenchError

DESCRIPTION = "metabench: list | run | report | compare | index | meters."
OUT_DEFAULT = (
    "reports/<suite>-<profile> in the current folder (two suites: <suite>+<suite>-<profile>; "
    "more: <n>suites-<hash>-<profile>)"
)


class UsageError(MetabenchError):
    """argparse's own complaint; main() adds a hint from the command line and the help."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message, self.prog = message, prog


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors also exit 2, no traceback
        raise UsageError(message, self.prog)


def usage_message(e: UsageError, argv: list[str]) -> str:
    """argparse's message, and for a value that starts with '-' (argparse takes `-1,2` for
    a flag) how to pass it; then where the help is."""
    hint = ""
    m = re.fullmatch(r"argument (--[\w-]+)(?:/-\w)?: expected one argument", e.message)
    if m and m[1] in argv:
        after = argv[argv.index(m[1]) + 1 : argv.index(m[1]) + 2]
        if after and after[0].startswith("-"):
            hint = f"; a value that starts with '-' goes after '=': {m[1]}={after[0]}"
            if m[1] == "--seeds":
                hint += ", though seeds must be >= 0"
    return f"{e.message}{hint} (see `{e.prog} --help`)"


def folder_path(text: str) -> Path:
    """A folder argument; '' (which Path would read as the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a folder path, found {text!r}")
    return Path(text)


def positive_int(text: str) -> int:
    """An integer >= 1 (a count: tasks, repeats)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return value


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
    parser = ArgumentParser(prog="metabench", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"metabench {__version__}")
    verbose = (
        "also show the log messages and warnings of the libraries metabench uses, before or "
        "after the command (default: off)"
    )
    parser.add_argument("--verbose", action="store_true", help=verbose)
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: the subcommand's default must not undo a --verbose given before it
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.add_parser("list", parents=[common], help="suites, methods, datasets and profiles")
    add_run_parser(sub, common)
    report = sub.add_parser(
        "report", parents=[common], help="rebuild a run's report from its ledger"
    )
    report.add_argument(
        "run_dir", type=folder_path, help="a run folder (one holding ledger.sqlite)"
    )
    report.add_argument(
        "--out",
        type=folder_path,
        help="folder to write the report into: new, empty or an earlier report, never another "
        "run's folder (default: RUN_DIR)",
    )
    add_energy_scope(report)
    compare = sub.add_parser(
        "compare",
        parents=[common],
        help="the same cells of two or more runs side by side, with ratios",
    )
    compare.add_argument(
        "run_dirs",
        nargs="+",
        type=folder_path,
        metavar="RUN_DIR",
        help="two or more distinct run folders",
    )
    compare.add_argument(
        "--out",
        type=folder_path,
        help="write compare.csv, plots and compare.html into this folder: new, empty or an "
        "earlier comparison (default: none, print the ratios only)",
    )
    index = sub.add_parser(
        "index",
        parents=[common],
        help="write DIR/index.html listing the run folders under DIR",
    )
    index.add_argument("runs_dir", type=folder_path, metavar="DIR", help="a folder of run folders")
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
