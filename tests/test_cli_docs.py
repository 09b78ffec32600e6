"""The docs match the code: every documented `metabench` command parses, the README names
every `run` flag and states the code's --out default, and no doc cites a file the
repository does not have."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from test_flags import all_actions

from bench import cli, cli_parser
from bench.errors import MetabenchError
from bench.options import check_run_options

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[Path, str]]:
    """`metabench ...` lines of the docs' code blocks, continuation lines joined."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```(?:sh|bash)\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("#", 1)[0].strip()
                line = re.sub(r"^(\w+=\S+\s+)+", "", line)  # VAR=value prefixes
                if line.startswith("metabench "):
                    found.append((doc, line))
    return found


def test_every_documented_command_parses() -> None:
    commands = documented_commands()
    assert len(commands) >= 8
    parser = cli.build_parser()
    for doc, line in commands:
        args = shlex.split(line.replace("...", "omniglot-5w1s"))[1:]
        if args == ["--version"]:
            continue
        try:
            parsed = parser.parse_args(args)
            if parsed.command == "run":  # the flags' combination too, as a run checks it
                check_run_options(cli.run_options(parsed))
        except MetabenchError as e:
            raise AssertionError(f"{doc.name}: {line}: {e}") from None


def test_readme_names_every_run_flag_and_the_out_default() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Command line")[1].split("\n## ")[0]
    for cmd, action in all_actions():
        if cmd == "run":
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in section or f", `{flag}`" in section, flag
    out_row = next(line for line in section.splitlines() if line.startswith("| `--out"))
    assert cli_parser.OUT_DEFAULT in out_row.replace("`", "")


def test_docs_stand_alone() -> None:
    for path in [*DOCS, *(REPO / "bench").rglob("*.py")]:
        assert "DESIGN.md" not in path.read_text(), path
