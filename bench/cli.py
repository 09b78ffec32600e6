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

from bench.cli_parser import UsageError, build_parser, run_options, usage_message
from bench.errors import MetabenchError


def cmd_run(args: argparse.Namespace) -> int:
    from bench.run import session

    p = session.plan(run_options(args))
    outcome = session.execute(p, shlex.join(["metabench", *args.argv]))
    s = outcome.summary
    report = outcome.report
    run = "1 cell run" if s.done == 1 else f"{s.done} cells run"
    print(f"{run}, {s.skipped} already done, {s.failed} failed; report: {report}")
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
    from bench.run.folder import lock_holder, publish_report
    from bench.store import Ledger

    Ledger(args.run_dir).require()
    if args.out is not None:
        check_report_out(args.run_dir, args.out)
    if args.out is None or args.out.resolve() == args.run_dir.resolve():
        # a running `metabench run` rewrites this folder's report when it ends
        lock_holder(args.run_dir, "")
    print(f"report: {publish_report(args.run_dir, args.out, args.energy_scope)}")
    return 0


def check_report_out(run_dir: Path, out: Path) -> None:
    """--out of `report`: the run folder itself, or a folder that is not another run's (its
    summary.csv would no longer match its own ledger), new, empty or an earlier report."""
    from bench.options import check_out
    from bench.store import LEDGER_NAME

    if out.resolve() == run_dir.resolve():
        return
    if (out / LEDGER_NAME).exists():
        raise MetabenchError(
            f"--out {out}: expected a folder for the report of {run_dir}, found the folder of "
            f"another run (it holds its own {LEDGER_NAME}, which its report must match); "
            "choose another folder"
        )
    check_out(out, lambda f: f"--{f}", markers=("summary.csv",))


def ledger_identity(ledger) -> tuple:
    """What a copied run folder shares with its original: its run ids, cells and windows."""
    import pandas as pd

    def digest(name: str) -> int:
        rows = ledger.table(name).astype(str)
        return int(pd.util.hash_pandas_object(rows, index=False).sum())

    return frozenset(ledger.table("runs")["run_id"]), digest("cells"), digest("windows")


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.options import COMPARE_MARKERS, check_out
    from bench.report.compare import compare
    from bench.store import Ledger

    seen: dict[object, Path] = {}
    for run_dir in args.run_dirs:
        ledger = Ledger(run_dir)
        ledger.check()  # an older report folder has results.csv and no ledger
        # the same folder by two paths, or a copy of one (same ledger): x1.0 everywhere
        keys = [run_dir.resolve()] + ([ledger_identity(ledger)] if ledger.path.is_file() else [])
        for key in keys:
            if (same := seen.get(key)) is not None:
                raise MetabenchError(
                    f"RUN_DIR: expected distinct runs, found {str(run_dir)!r} and "
                    f"{str(same)!r} holding the same runs (one folder twice, or a copy: a "
                    "run compared with itself is x1.0)"
                )
            seen[key] = run_dir
    if args.out is not None:
        check_out(args.out, lambda f: f"--{f}", markers=COMPARE_MARKERS)
    print(compare(args.run_dirs, args.out))
    if args.out:
        print(f"compare: {args.out / 'compare.html'}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from bench.options import check_writable
    from bench.report.index import write_runs_index

    if args.runs_dir.is_dir():
        check_writable(args.runs_dir, lambda f: f, "DIR")
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
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from bench.run.session import quiet_libraries  # slow (torch): Ctrl-C is caught

        parser = build_parser()
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
    except UsageError as e:
        print(f"metabench: error: {usage_message(e, argv)}", file=sys.stderr)
        return 2
    except MetabenchError as e:
        print(f"metabench: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt as e:
        print(interrupted_message(argv, e), file=sys.stderr)
        return 130


def interrupted_message(argv: list[str], e: BaseException | None = None) -> str:
    """What Ctrl-C left (where the finished cells are, whether a report is whole) and the
    exact command that resumes or repeats the work, to run from the current folder."""
    command = next((a for a in argv if not a.startswith("-")), "")
    run_dir, stage = getattr(e, "run_dir", None), getattr(e, "stage", "start")
    again = ["metabench", *argv]
    if command == "run" and run_dir is not None and stage != "start":
        if not any(a == "--out" or a.startswith("--out=") for a in argv):
            again += ["--out", str(Path(run_dir).resolve())]
        if stage == "report":
            return (
                f"metabench: interrupted while writing the report; every cell is kept in "
                f"{run_dir} and its earlier report, if any, was left as it was. Write the "
                f"report with (from {os.getcwd()}): "
                f"{shlex.join(['metabench', 'report', str(run_dir)])}"
            )
        return (
            f"metabench: interrupted; the cells finished so far are kept in {run_dir}. Resume "
            f"with (from {os.getcwd()}): {shlex.join(again)}"
        )
    left = {
        "run": "before the run started; nothing was written",
        "report": "; the report was left as it was (it is moved into place only when whole)",
    }.get(command, "before it finished")
    sep = "" if left.startswith(";") else " "
    return (
        f"metabench: interrupted{sep}{left}. Run it again with (from {os.getcwd()}): "
        f"{shlex.join(again)}"
    )


if __name__ == "__main__":
    sys.exit(main())
