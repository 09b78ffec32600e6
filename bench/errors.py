"""The one error type for bad input: suite files, CLI flags, data directories, checksums.

The CLI prints its message without a traceback and exits 2.
"""

from __future__ import annotations


class MetabenchError(Exception):
    """Bad input. The message names the file, the key, what was expected and what was found."""


def input_error(where: str, key: str | None, expected: str, found: object) -> MetabenchError:
    """Build the standard message: '<where>: key '<key>': expected <expected>, found <found>'."""
    at = f"{where}: key '{key}'" if key else where
    return MetabenchError(f"{at}: expected {expected}, found {found!r}")
