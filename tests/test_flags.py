"""Every flag of every subcommand, with bad values: exit 2, one paragraph on stderr, no
traceback, nothing written. In-process (bench.cli.main) to stay fast; capfd catches what
libraries print to the real stderr (codecarbon's own ERROR log, for one)."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bench import __version__, cli
from bench.devices import cpu_count
from bench.errors import MetabenchError
from bench.options import RunOptions, api_name, check_run_options
from bench.run import session
from bench.store import Ledger
from bench.suite import available_suites

RUN = ["run", "sinusoid-5shot", "--profile", "smoke", "--no-progress"]
UNWRITABLE = "/proc/metabench-cannot-be-here"
# Flags without a value to get wrong.
SWITCHES = {"--no-download", "--no-progress", "--verbose", "-h", "--help", "--version"}


def bad_values(tmp: Path) -> tuple[dict[tuple[str, str], list[list[str]]], Path]:
    """(subcommand, flag) -> argument lists that must be refused, and a run folder. `tmp`
    holds a user's file and a user's folder that metabench must not overwrite."""
    a_file = tmp / "notes.txt"
    a_file.write_text("mine")
    a_folder = tmp / "site"
    a_folder.mkdir()
    (a_folder / "index.html").write_text("mine")
    run_dir = tmp / "a-run"
    Ledger(run_dir).start_run("test", {})
    other_run = tmp / "b-run"  # another run: its report must keep matching its ledger
    Ledger(other_run).start_run("test", {})
    copied_run = tmp / "a-run-copy"  # a copy of a-run: the same run ids
    shutil.copytree(run_dir, copied_run)
    corrupt = tmp / "corrupt"  # a ledger that is not SQLite
    corrupt.mkdir()
    (corrupt / "ledger.sqlite").write_text("garbage")
    foreign = tmp / "foreign"  # SQLite, but not metabench's
    foreign.mkdir()
    with sqlite3.connect(foreign / "ledger.sqlite") as con:
        con.execute("CREATE TABLE photos (id INTEGER)")
    copy = tmp / "copy" / "sinusoid-5shot.toml"  # the same suite name, another file
    copy.parent.mkdir()
    copy.write_text(available_suites()["sinusoid-5shot"].read_text())
    no_cuda = [] if torch.cuda.is_available() else [["cuda"]]
    # a folder that cannot be created (even by root): /proc refuses new entries
    unwritable = [[UNWRITABLE]] if Path("/proc").is_dir() else []
    bad_out = [[""], *unwritable, [str(corrupt)], [str(foreign)]]
    table = {
        ("run", "suites"): [
            ["no-such-suite"],
            ["no/such/suite.toml"],
            ["sinusoid-5shot", "sinusoid-5shot"],
            ["sinusoid-5shot", str(available_suites()["sinusoid-5shot"])],  # name and path
            ["sinusoid-5shot", str(copy)],  # the same name, another folder
            [str(tmp)],  # a folder
        ],
        ("run", "--methods"): [[""], ["scratch,scratch"], ["scratch,,maml"], ["protonett"]],
        ("run", "--seeds"): [[""], ["0,0"], ["-1"], ["-1,2"], ["a,b"], ["0,,1"], [str(2**63)]],
        ("run", "--profile"): [["huge"]],
        ("run", "--device"): [["tpu"], *no_cuda],
        ("run", "--precision"): [["fp16"]],
        ("run", "--normalization"): [["query"], [""]],
        ("run", "--execution"): [["fast"], ["graph"]],
        ("run", "--threads"): [["0"], ["-1"], ["two"], [str(cpu_count() + 1)]],
        ("run", "--data-dir"): [[str(tmp / "missing")], [str(a_file)]],
        ("run", "--out"): [[str(a_file)], [str(a_folder)], [str(a_file / "sub")], *bad_out],
        ("run", "--executor"): [["spark"], ["dask"]],
        ("run", "--scheduler"): [
            ["tcp://127.0.0.1:1"],
            ["not an address", "--executor", "dask", "--device", "cpu"],
            ["tcp://127.0.0.1:1", "--executor", "dask", "--device", "cpu"],  # nothing there
        ],
        ("run", "--workers"): [["2"], ["0", "--executor", "dask-local"], ["x"]],
        ("run", "--wait-workers"): [["2"], ["0", "--executor", "dask", "--scheduler", "h:1"]],
        ("run", "--country"): [["XX"], ["ZZZ"], ["1234"]],
        ("run", "--region"): [
            ["texas"],
            ["nowhere", "--country", "USA"],
            [" ", "--country", "USA"],
        ],
        ("run", "--carbon-intensity"): [["-1"], ["nan"], ["inf"], ["5000"], ["x"]],
        ("run", "--pue"): [["0.5"], ["nan"], ["100"], ["x"]],
        ("run", "--sample-hz"): [["0"], ["-5"], ["inf"], ["1e9"]],
        ("run", "--energy-scope"): [["cluster"]],
        ("report", "run_dir"): [
            [str(tmp / "missing")],
            [str(a_folder)],
            [""],
            [str(corrupt)],
            [str(foreign)],
        ],
        ("report", "--out"): [[str(a_file)], [str(a_folder)], [str(other_run)], *bad_out],
        ("report", "--energy-scope"): [["cluster"]],
        # subcommands of the report side (bench.report.compare, bench.report.index)
        ("compare", "run_dirs"): [
            [str(tmp / "missing")],
            [str(a_folder), str(run_dir)],
            [str(run_dir), str(run_dir)],  # a run compared with itself
            [str(run_dir), str(tmp / "a-run" / ".." / "a-run")],
            [str(run_dir), str(copied_run)],  # a copy of the same run
            [str(run_dir), ""],
            [str(run_dir), str(corrupt)],
        ],
        ("compare", "--out"): [[str(a_file)], *unwritable, [""]],
        ("index", "runs_dir"): [
            [str(tmp / "missing")],
            [str(a_file)],
            [""],
            *([["/proc"]] if unwritable else []),
        ],
        ("meters", "--device"): [["tpu"], *no_cuda],
        ("meters", "--seconds"): [["0"], ["-1"], ["nan"], ["1e9"], ["x"]],
        ("list", "extra"): [["extra"]],
        ("", "command"): [["frobnicate"], ["--frobnicate"]],
    }
    return table, run_dir


def argv_for(command: str, flag: str, values: list[str], run_dir: Path, out: Path) -> list[str]:
    if command == "run" and flag == "suites":
        return ["run", *values, "--profile", "smoke", "--out", str(out)]
    if command == "run":
        return [*RUN, "--out", str(out), flag, *values]
    if command == "report":
        return ["report", *values] if flag == "run_dir" else ["report", str(run_dir), flag, *values]
    if command == "compare":
        if flag == "run_dirs":
            return ["compare", *values]
        return ["compare", str(run_dir), str(run_dir.parent / "b-run"), flag, *values]
    if command == "index":
        return ["index", *values]
    if command == "meters":
        return ["meters", flag, *values]
    if command == "list":
        return ["list", *values]
    return values


def test_every_flag_with_bad_values_exits_2_in_one_paragraph(tmp_path, capfd) -> None:
    table, run_dir = bad_values(tmp_path)
    covered = {(cmd, flag) for cmd, flag in table}
    for cmd, action in all_actions():
        for flag in action.option_strings or [action.dest]:
            if flag not in SWITCHES:
                assert (cmd, flag) in covered, f"no bad value for {cmd} {flag} in the sweep"
    out = tmp_path / "out"
    for (cmd, flag), cases in table.items():
        for values in cases:
            argv = argv_for(cmd, flag, values, run_dir, out)
            code = cli.main(argv)
            stdout, stderr = capfd.readouterr()
            assert code == 2, (argv, stdout, stderr)
            assert stderr.startswith("metabench: error:"), (argv, stderr)
            assert "Traceback" not in stderr + stdout, (argv, stderr)
            assert "\n" not in stderr.strip(), (argv, stderr)  # one paragraph, one line
            assert not out.exists(), argv  # nothing written
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "site" / "index.html").read_text() == "mine"
    assert (tmp_path / "corrupt" / "ledger.sqlite").read_text() == "garbage"
    assert not (tmp_path / "b-run" / "summary.csv").exists()  # another run's report untouched
    assert not list(tmp_path.glob("**/.metabench-probe-*"))  # the write probes are gone


def all_actions():
    """(subcommand, action) for every argument of every subcommand."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            yield name, action


def test_every_argument_has_help_with_its_default() -> None:
    for cmd, action in all_actions():
        if action.option_strings and set(action.option_strings) & {"-h", "--help"}:
            continue
        assert action.help, f"{cmd} {action.option_strings or action.dest}: no help"
        if action.option_strings:
            assert "default" in action.help, f"{cmd} {action.option_strings}: no default"


def test_no_arguments_print_usage_and_version(capsys) -> None:
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: metabench") and "run" in err and "Traceback" not in err
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"metabench {__version__}"


def test_unknown_region_is_one_line_and_verbose_shows_the_library_log(
    capfd, tmp_path, monkeypatch
) -> None:
    argv = [*RUN, "--out", str(tmp_path / "o"), "--country", "USA", "--region", "nowhere"]
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "--region" in err and "codecarbon ERROR" not in err
    assert cli.main([*argv, "--verbose"]) == 2
    assert "nowhere" in capfd.readouterr().err
    # before the command too (checked on the switch: codecarbon's log handler holds the
    # stderr of the test that first imported it, so its lines need not reach capfd here)
    asked = []
    real = session.quiet_libraries
    monkeypatch.setattr(session, "quiet_libraries", lambda v: asked.append(v) or real(v))
    assert cli.main(["--verbose", *argv]) == 2 and asked == [True]


@given(
    st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=6),
)
def test_seed_lists_are_refused_unless_distinct_and_in_range(seeds: list[int]) -> None:
    good = bool(seeds) and len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)
    options = RunOptions(("sinusoid-5shot",), seeds=tuple(seeds))
    if good:
        check_run_options(options)
    else:
        with pytest.raises(MetabenchError, match=r"^seeds=: expected"):
            check_run_options(options, api_name)


def test_a_value_that_starts_with_a_dash_says_how_to_pass_it(capsys) -> None:
    assert cli.main([*RUN, "--seeds", "-1,2"]) == 2
    err = capsys.readouterr().err
    assert "--seeds=-1,2" in err and "seeds must be >= 0" in err and err.count("\n") == 1


def test_verbose_goes_before_or_after_the_command() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["--verbose", "list"]).verbose
    assert parser.parse_args(["list", "--verbose"]).verbose
    assert not parser.parse_args(["list"]).verbose


def test_the_default_run_folder_is_checked_like_out(tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "reports" / "sinusoid-5shot-smoke" / "index.html"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    argv = ["run", "sinusoid-5shot", "--profile", "smoke", "--methods", "scratch"]
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert "--out (default reports/sinusoid-5shot-smoke): expected a new or empty" in err
    assert mine.read_text() == "mine"
    shutil.rmtree(tmp_path / "reports")
    (tmp_path / "reports").write_text("mine")  # a file where the folder would go
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert "found the file 'reports'" in err and "Traceback" not in err
    assert (tmp_path / "reports").read_text() == "mine"
